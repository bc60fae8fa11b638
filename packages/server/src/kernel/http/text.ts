import { containsCardNumber } from '../card-numbers.js';
import type { FieldError } from '../errors.js';

/*
 * Text a request may not carry into Baton, wherever it hides in the body, the path or the
 * query; requests are checked before anything else reads them, so that such text is a clear 400,
 * never a failed statement nor a stored secret.
 *
 * - Text PostgreSQL cannot store. JSON may carry the NUL character (`\u0000`) and unpaired
 *   UTF-16 surrogates (`\ud800`), and a URL may carry `%00`; a `text` or `jsonb` column refuses
 *   the first, and the second would be stored as U+FFFD, silently changed.
 * - Payment card numbers (see `containsCardNumber`): the payment provider holds them, Baton keeps
 *   its tokens. The number is not repeated in the answer.
 */

// In a `u` regular expression a surrogate pair is one code point: `\p{Cs}` finds only unpaired ones.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the NUL character is what it looks for.
const UNSTORABLE = /[\u0000\p{Cs}]/u;

const CARD_NUMBER =
  'holds what looks like a payment card number: send the payment provider’s token, never the number';

/** Calls `visit` with every string, object key (`key` true) and whole number of a parsed JSON value or query, by JSON Pointer. */
function eachText(
  value: unknown,
  path: string,
  visit: (text: string, path: string, key: boolean) => void,
): void {
  if (typeof value === 'string') visit(value, path, false);
  else if (typeof value === 'number' && Number.isSafeInteger(value)) visit(String(value), path, false);
  else if (Array.isArray(value)) {
    value.forEach((item, index) => {
      eachText(item, `${path}/${index}`, visit);
    });
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      visit(key, child, true);
      eachText(item, child, visit);
    }
  }
}

/** Every place in a parsed JSON value or query whose text PostgreSQL cannot store. */
export const unstorableText = (value: unknown, path: string): FieldError[] => textErrors(value, path, false);

/** Every place in a parsed JSON value or query that Baton refuses to take: `unstorableText`, and card numbers. */
export const refusedText = (value: unknown, path: string): FieldError[] => textErrors(value, path, true);

/** One walk over `value`: its unstorable text, and with `cards` its card numbers. */
function textErrors(value: unknown, path: string, cards: boolean): FieldError[] {
  const found: FieldError[] = [];
  eachText(value, path, (text, at, key) => {
    const name = key ? 'the name ' : '';
    if (UNSTORABLE.test(text)) found.push({ path: at, rule: 'text', message: `${name}${problemOf(text)}` });
    if (cards && containsCardNumber(text))
      found.push({ path: at, rule: 'card_number', message: `${name}${CARD_NUMBER}` });
  });
  return found;
}

const problemOf = (text: string) =>
  text.includes('\u0000')
    ? 'contains the NUL character (U+0000), which cannot be stored'
    : 'contains an unpaired surrogate: not valid Unicode';
