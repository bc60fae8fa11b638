import type { FieldError } from '../errors.js';

/*
 * Text that PostgreSQL cannot store. JSON may carry the NUL character (`\u0000`) and unpaired
 * UTF-16 surrogates (`\ud800`), and a URL may carry `%00`; a `text` or `jsonb` column refuses
 * the first, and the second would be stored as U+FFFD, silently changed. Requests are checked
 * for both before anything else reads them, so that such text is a clear 400 wherever it hides,
 * never a failed statement.
 */

// In a `u` regular expression a surrogate pair is one code point: `\p{Cs}` finds only unpaired ones.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the NUL character is what it looks for.
const UNSTORABLE = /[\u0000\p{Cs}]/u;

/** Every string, object key included, of a parsed JSON value or query that cannot be stored, by JSON Pointer. */
export function unstorableText(value: unknown, path: string, found: FieldError[] = []): FieldError[] {
  if (typeof value === 'string') {
    if (UNSTORABLE.test(value)) found.push({ path, rule: 'text', message: problemOf(value) });
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => {
      unstorableText(item, `${path}/${index}`, found);
    });
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
      if (UNSTORABLE.test(key))
        found.push({ path: child, rule: 'text', message: `the name ${problemOf(key)}` });
      unstorableText(item, child, found);
    }
  }
  return found;
}

const problemOf = (text: string) =>
  text.includes('\u0000')
    ? 'contains the NUL character (U+0000), which cannot be stored'
    : 'contains an unpaired surrogate: not valid Unicode';
