import currencyCodes from 'currency-codes';
import { assert } from './assert.js';
import { invalid } from './errors.js';

/** An ISO 4217 currency code such as `EUR`. */
export type Currency = string & { readonly __currency: unique symbol };

/** An amount of money: integer minor units (cents for EUR, yen for JPY) and a currency. */
export interface Money {
  readonly amountMinor: bigint;
  readonly currency: Currency;
}

/**
 * Minor-unit exponents from the ISO 4217 list. Codes that are not money (gold, testing, "no
 * currency") are left out: Baton never books them.
 */
const EXPONENTS: ReadonlyMap<string, number> = new Map(
  currencyCodes.data
    .filter((entry) => !entry.countries.every((country) => country.startsWith('Zz')))
    .map((entry) => [entry.code, entry.digits]),
);

/** Amounts beyond this many minor units are refused: far above any real transaction, and safe in int8. */
export const AMOUNT_MINOR_MAX = 10n ** 15n;

/**
 * Checks that `code` is an ISO 4217 currency Baton can book.
 *
 * @throws DomainError `money.unknown_currency`
 */
export function parseCurrency(code: string): Currency {
  if (!EXPONENTS.has(code)) {
    throw invalid('money.unknown_currency', `${code} is not an ISO 4217 currency code.`);
  }
  return code as Currency;
}

export function isCurrency(code: string): code is Currency {
  return EXPONENTS.has(code);
}

/** The number of decimal places of a currency's minor unit (2 for EUR, 0 for JPY, 3 for BHD). */
export function currencyExponent(currency: Currency): number {
  const exponent = EXPONENTS.get(currency);
  assert(exponent !== undefined, `currency ${currency} was not validated`);
  return exponent;
}

const DECIMAL = /^(-)?(\d{1,16})(?:\.(\d+))?$/;

/**
 * Parses a decimal amount in major units ("12.34") into minor units, refusing more decimal
 * places than the currency has: "0.001" EUR is an error, never silently rounded.
 *
 * @throws DomainError `money.invalid_amount`, `money.too_many_decimals`, `money.amount_too_large`
 */
export function parseAmount(text: string, currency: Currency): bigint {
  const match = DECIMAL.exec(text);
  if (!match) {
    throw invalid('money.invalid_amount', `"${text}" is not a decimal amount such as "12.50".`);
  }
  const [, sign, whole, fraction = ''] = match;
  const exponent = currencyExponent(currency);
  if (fraction.length > exponent) {
    throw invalid(
      'money.too_many_decimals',
      `${currency} has ${exponent} decimal places; "${text}" has ${fraction.length}.`,
    );
  }
  const minor = BigInt(`${whole}${fraction.padEnd(exponent, '0')}`) * (sign ? -1n : 1n);
  if (minor > AMOUNT_MINOR_MAX || minor < -AMOUNT_MINOR_MAX) {
    throw invalid('money.amount_too_large', `"${text}" is beyond the largest amount Baton books.`);
  }
  return minor;
}

/** Formats minor units as a decimal string with exactly the currency's decimal places. */
export function formatAmount(amountMinor: bigint, currency: Currency): string {
  const exponent = currencyExponent(currency);
  const negative = amountMinor < 0n;
  const digits = (negative ? -amountMinor : amountMinor).toString().padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent);
  const fraction = digits.slice(digits.length - exponent);
  return `${negative ? '-' : ''}${whole}${exponent > 0 ? `.${fraction}` : ''}`;
}

export function money(amountMinor: bigint, currency: Currency): Money {
  return { amountMinor, currency };
}

/**
 * Adds amounts of one currency.
 *
 * @throws DomainError `money.currency_mismatch`
 */
export function add(a: Money, b: Money): Money {
  requireSameCurrency(a, b);
  return money(a.amountMinor + b.amountMinor, a.currency);
}

/**
 * Subtracts `b` from `a`, both of one currency.
 *
 * @throws DomainError `money.currency_mismatch`
 */
export function subtract(a: Money, b: Money): Money {
  requireSameCurrency(a, b);
  return money(a.amountMinor - b.amountMinor, a.currency);
}

function requireSameCurrency(a: Money, b: Money): void {
  if (a.currency !== b.currency) {
    throw invalid('money.currency_mismatch', `Cannot combine ${a.currency} with ${b.currency}.`);
  }
}

/**
 * Splits `total` in proportion to `weights` by the largest-remainder method: every part is
 * the floor of its exact share, and the units left over go one each to the parts with the
 * largest remainders (earlier parts first on ties). The parts always sum to `total`, and no
 * part is negative when `total` is not.
 */
export function allocate(total: bigint, weights: readonly bigint[]): bigint[] {
  assert(weights.length > 0, 'allocate needs at least one weight');
  assert(
    weights.every((weight) => weight >= 0n),
    'allocate weights must not be negative',
  );
  const weightSum = weights.reduce((sum, weight) => sum + weight, 0n);
  assert(weightSum > 0n, 'allocate needs a positive weight');
  if (total < 0n) return allocate(-total, weights).map((part) => -part);

  const parts = weights.map((weight) => (total * weight) / weightSum);
  const remainders = weights.map((weight, index) => ({ index, remainder: (total * weight) % weightSum }));
  let leftover = total - parts.reduce((sum, part) => sum + part, 0n);
  remainders.sort((a, b) =>
    a.remainder === b.remainder ? a.index - b.index : a.remainder > b.remainder ? -1 : 1,
  );
  for (const { index } of remainders) {
    if (leftover === 0n) break;
    parts[index] = (parts[index] as bigint) + 1n;
    leftover -= 1n;
  }
  return parts;
}

/**
 * `amountMinor × bps / 10 000`, rounded half up (away from zero for negative amounts), the
 * rounding named in the fee rules.
 */
export function applyBasisPointsHalfUp(amountMinor: bigint, bps: bigint): bigint {
  const product = amountMinor * bps;
  const negative = product < 0n;
  const magnitude = negative ? -product : product;
  const rounded = (magnitude + 5_000n) / 10_000n;
  return negative ? -rounded : rounded;
}
