import type { FieldError } from '../../../kernel/errors.js';
import { isDomainError } from '../../../kernel/errors.js';
import { type Money, money, parseAmount, parseCurrency } from '../../../kernel/money.js';
import type { CapacityPeriod } from './capacity.js';

export const OFFER_STATUSES = ['draft', 'active', 'paused', 'non_compliant'] as const;
export type OfferStatus = (typeof OFFER_STATUSES)[number];

/** The statuses a partner or operator sets; `non_compliant` is only ever set by revalidation. */
export const SETTABLE_OFFER_STATUSES = ['draft', 'active', 'paused'] as const;
export type SettableOfferStatus = (typeof SETTABLE_OFFER_STATUSES)[number];

/** The statuses an offer may be created or imported with. */
export const INITIAL_OFFER_STATUSES = ['draft', 'active'] as const;
export type InitialOfferStatus = (typeof INITIAL_OFFER_STATUSES)[number];

/** Most offers one bulk import carries. */
export const IMPORT_ITEMS_MAX = 1000;
/** Most regions one offer serves. */
export const REGIONS_MAX = 100;
/** Largest quantity (and capacity) an offer names: far beyond any order, and exact as a JSON number. */
export const QUANTITY_MAX = 1_000_000_000_000;
/** Longest lead time an offer may promise, in hours: a year. */
export const LEAD_TIME_HOURS_MAX = 366 * 24;
export const EXTERNAL_REF_LENGTH_MAX = 200;

/** Region codes are the operator's: short, lowercase, like `eu-west`. */
export const REGION_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** A price as a caller writes it: a decimal string in major units and an ISO 4217 code. */
export interface PriceInput {
  readonly amount: string;
  readonly currency: string;
}

/** What an offer promises, as a caller states it; checked by `checkTerms`. */
export interface OfferTerms {
  readonly unitPrice: PriceInput;
  readonly minQuantity: bigint;
  readonly maxQuantity: bigint;
  readonly leadTimeHours: number;
  readonly regions: readonly string[];
  readonly capacityPerPeriod: bigint;
  readonly capacityPeriod: CapacityPeriod;
}

/** The service levels of a capability that bound an offer's terms. */
export interface ServiceLevelLimits {
  readonly maxLeadTimeHours: number | null;
}

/**
 * Checks an offer's own terms and parses its price. Every broken rule is reported against the
 * field that breaks it (JSON Pointers into the API's form of the offer), so a caller can fix all
 * of them at once.
 */
export function checkTerms(terms: OfferTerms): { price: Money | null; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const price = parsePrice(terms.unitPrice, errors);
  const quantity = (path: string, value: bigint, minimum: bigint) => {
    if (value < minimum) errors.push({ path, rule: 'minimum', message: `must be at least ${minimum}` });
    else if (value > BigInt(QUANTITY_MAX)) {
      errors.push({ path, rule: 'maximum', message: `must be at most ${QUANTITY_MAX}` });
    }
  };
  quantity('/min_quantity', terms.minQuantity, 1n);
  quantity('/max_quantity', terms.maxQuantity, 1n);
  if (terms.minQuantity >= 1n && terms.maxQuantity >= 1n && terms.minQuantity > terms.maxQuantity) {
    errors.push({
      path: '/max_quantity',
      rule: 'minimum',
      message: `must be at least min_quantity (${terms.minQuantity})`,
    });
  }
  quantity('/capacity_per_period', terms.capacityPerPeriod, 1n);
  if (!Number.isInteger(terms.leadTimeHours) || terms.leadTimeHours < 0) {
    errors.push({
      path: '/lead_time_hours',
      rule: 'minimum',
      message: 'must be a whole number of hours, 0 or more',
    });
  } else if (terms.leadTimeHours > LEAD_TIME_HOURS_MAX) {
    errors.push({
      path: '/lead_time_hours',
      rule: 'maximum',
      message: `must be at most ${LEAD_TIME_HOURS_MAX}`,
    });
  }
  errors.push(...checkRegions(terms.regions));
  return { price, errors };
}

/** Checks the terms a capability's service levels bound; also run when a new version is published. */
export function checkServiceLevels(leadTimeHours: number, limits: ServiceLevelLimits): FieldError[] {
  if (limits.maxLeadTimeHours !== null && leadTimeHours > limits.maxLeadTimeHours) {
    return [
      {
        path: '/lead_time_hours',
        rule: 'maximum',
        message: `must be at most ${limits.maxLeadTimeHours}, the capability's longest lead time`,
      },
    ];
  }
  return [];
}

/** Moves attribute errors, which point into the attributes document, under `/attributes`. */
export function attributeErrors(errors: readonly FieldError[]): FieldError[] {
  return errors.map((error) => ({ ...error, path: `/attributes${error.path}` }));
}

function checkRegions(regions: readonly string[]): FieldError[] {
  const errors: FieldError[] = [];
  if (regions.length === 0)
    errors.push({ path: '/regions', rule: 'minItems', message: 'must name a region' });
  if (regions.length > REGIONS_MAX) {
    errors.push({ path: '/regions', rule: 'maxItems', message: `must name at most ${REGIONS_MAX} regions` });
  }
  const seen = new Set<string>();
  regions.forEach((region, index) => {
    if (!REGION_PATTERN.test(region)) {
      errors.push({
        path: `/regions/${index}`,
        rule: 'pattern',
        message: 'must be a region code such as "eu-west" (lowercase letters, digits, dashes)',
      });
    } else if (seen.has(region)) {
      errors.push({
        path: `/regions/${index}`,
        rule: 'uniqueItems',
        message: `repeats the region ${region}`,
      });
    }
    seen.add(region);
  });
  return errors;
}

function parsePrice(input: PriceInput, errors: FieldError[]): Money | null {
  let currency: ReturnType<typeof parseCurrency>;
  try {
    currency = parseCurrency(input.currency);
  } catch (error) {
    if (!isDomainError(error)) throw error;
    errors.push({
      path: '/unit_price/currency',
      rule: 'currency',
      message: 'must be an ISO 4217 currency code',
    });
    return null;
  }
  try {
    const amountMinor = parseAmount(input.amount, currency);
    if (amountMinor < 0n) {
      errors.push({ path: '/unit_price/amount', rule: 'minimum', message: 'must not be negative' });
      return null;
    }
    return money(amountMinor, currency);
  } catch (error) {
    if (!isDomainError(error)) throw error;
    const rule =
      error.code === 'money.too_many_decimals'
        ? 'precision'
        : error.code === 'money.amount_too_large'
          ? 'maximum'
          : 'format';
    errors.push({ path: '/unit_price/amount', rule, message: error.message });
    return null;
  }
}

/**
 * The status of a conforming offer after a change: the one asked for, or else the one it had,
 * except that an offer that conformed again leaves `non_compliant` for `paused`, so that its
 * partner decides when it is matchable again.
 */
export function statusAfterChange(
  current: OfferStatus,
  requested: SettableOfferStatus | undefined,
): OfferStatus {
  if (requested !== undefined) return requested;
  return current === 'non_compliant' ? 'paused' : current;
}
