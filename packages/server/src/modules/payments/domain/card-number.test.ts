import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { looksLikeCardNumber } from './card-number.js';

/** Appends the Luhn check digit to a payload of digits. */
function withCheckDigit(payload: string): string {
  let sum = 0;
  for (let index = 0; index < payload.length; index++) {
    let digit = Number(payload[payload.length - 1 - index]);
    if (index % 2 === 0) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return `${payload}${(10 - (sum % 10)) % 10}`;
}

describe('card numbers', () => {
  it('knows the test cards of the card schemes, however they are spaced', () => {
    for (const number of [
      '4242424242424242',
      '4111 1111 1111 1111',
      '5555-5555-5555-4444',
      '378282246310005',
      '6011111111111117',
      '3566002020360505',
      ' 4000 0566 5566 5556 ',
    ])
      expect(looksLikeCardNumber(number), number).toBe(true);
  });

  it('does not take tokens, short numbers or numbers failing the check for cards', () => {
    for (const text of [
      'pm_card_ok',
      'tok_4242424242424242',
      '4242424242424241',
      '42424242424',
      '4242  4242 4242 4242',
      '',
      '1234',
    ])
      expect(looksLikeCardNumber(text), text).toBe(false);
  });

  test.prop([fc.stringMatching(/^[0-9]{11,18}$/)])(
    'finds every number of 12 to 19 digits with a valid check digit',
    (payload) => {
      expect(looksLikeCardNumber(withCheckDigit(payload))).toBe(true);
    },
  );

  test.prop([fc.stringMatching(/^[0-9]{11,18}$/), fc.integer({ min: 1, max: 9 })])(
    'and none whose check digit is off',
    (payload, off) => {
      const number = withCheckDigit(payload);
      const wrong = `${payload}${(Number(number.at(-1)) + off) % 10}`;
      expect(looksLikeCardNumber(wrong)).toBe(false);
    },
  );
});
