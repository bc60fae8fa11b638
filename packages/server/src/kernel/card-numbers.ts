import cardValidator from 'card-validator';

/*
 * Card numbers never touch Baton: the payment provider holds them, Baton keeps the provider's
 * tokens. A card number sent by mistake, as a payment method, in a description or anywhere
 * else, is refused before anything stores or logs it, and one in a URL is masked in the logs.
 *
 * A card number here is what a data-loss scanner takes for one: 13 to 19 digits, written
 * together or in groups of 3 to 6 separated by one space or dash, that card-validator
 * recognises as a number of a card scheme (its prefix, its length, and the Luhn check digit,
 * UnionPay's included). Digits written together are taken whole (a longer number holds no card
 * number); of groups, any run of consecutive ones may make one. Digits that touch a letter (an
 * id, a hexadecimal digest), follow a `+` (a phone number) or are a part of a decimal number
 * (`0.4111…`) are left alone.
 */

/** Digits in groups joined by one space or dash, not right after a letter, a digit, a `+` or a decimal point. */
const DIGIT_RUNS = /(?<![\p{L}\p{N}+]|\d[.,])\d+(?:[ -]\d+)*/gu;
/** What may not follow a card number: a letter, a digit, or a decimal point and a digit. */
const CONTINUED = /^(?:[\p{L}\p{N}]|[.,]\d)/u;
const SEPARATORS = /[ -]/;
const DIGITS_MIN = 13;
const DIGITS_MAX = 19;
const GROUP_MIN = 3;
const GROUP_MAX = 6;

const isCardNumber = (digits: string) =>
  digits.length >= DIGITS_MIN &&
  digits.length <= DIGITS_MAX &&
  cardValidator.number(digits, { luhnValidateUnionPay: true }).isValid;

/** The card number in one run of digit groups, if a run of whole groups is one. */
function cardInRun(run: string): boolean {
  const groups = run.split(SEPARATORS);
  if (groups.length === 1) return isCardNumber(run);
  for (let start = 0; start < groups.length; start++) {
    let digits = '';
    for (let end = start; end < groups.length; end++) {
      const group = groups[end] as string;
      if (group.length < GROUP_MIN || group.length > GROUP_MAX) break;
      digits += group;
      if (digits.length > DIGITS_MAX) break;
      if (isCardNumber(digits)) return true;
    }
  }
  return false;
}

/** Whether a run found at `index` of `text` is a card number: whole, and not continued by a letter or decimals. */
function isCardRun(text: string, run: string, index: number): boolean {
  const end = index + run.length;
  return !CONTINUED.test(text.slice(end, end + 2)) && cardInRun(run);
}

/** Whether `text` holds a payment card number anywhere in it. */
export function containsCardNumber(text: string): boolean {
  for (const match of text.matchAll(DIGIT_RUNS)) if (isCardRun(text, match[0], match.index)) return true;
  return false;
}

/** `text` with every run of digits that holds a card number replaced by a mark. */
export function maskCardNumbers(text: string): string {
  return text.replaceAll(DIGIT_RUNS, (run, index: number) =>
    isCardRun(text, run, index) ? '[card number]' : run,
  );
}
