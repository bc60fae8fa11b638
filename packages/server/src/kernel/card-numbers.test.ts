import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { containsCardNumber, maskCardNumbers } from './card-numbers.js';

/** Appends the Luhn check digit to a payload of digits: the test's own oracle. */
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

/** Card schemes' prefixes and a length each: Visa, Mastercard (both ranges), Amex, Discover, JCB, Diners, UnionPay, Mir. */
const SCHEMES: readonly (readonly [string, number])[] = [
  ['4', 16],
  ['51', 16],
  ['55', 16],
  ['2221', 16],
  ['34', 15],
  ['37', 15],
  ['6011', 16],
  ['3528', 16],
  ['36', 14],
  ['62', 16],
  ['62', 19],
  ['2200', 16],
];

const cardNumber = fc
  .tuple(fc.constantFrom(...SCHEMES), fc.stringMatching(/^[0-9]{18}$/))
  .map(([[prefix, length], random]) => withCheckDigit(`${prefix}${random}`.slice(0, length - 1)));
/** Text around a number that neither touches it with a letter or digit nor holds digits itself. */
const around = fc.stringMatching(/^([a-z ,.:;!?()]{0,20}[ ,.:;!?()])?$/);
const after = fc.stringMatching(/^([ ,.:;!?()][a-z ,.:;!?()]{0,20})?$/);

describe('card numbers', () => {
  it('finds the test cards of the card schemes, however they are written', () => {
    for (const text of [
      '4242424242424242',
      '4111 1111 1111 1111',
      '5555-5555-5555-4444',
      '378282246310005',
      '3782 822463 10005',
      '6011111111111117',
      '3566002020360505',
      '36227206271667',
      '6200000000000005',
      '2200000000000004',
      ' 4000 0566 5566 5556 ',
      'my card is 4111 1111 1111 1111, expiring 12/28',
      'tok_4242424242424242',
      'card:5555555555554444.',
      'cards 4111111111111111, 5555555555554444',
    ])
      expect(containsCardNumber(text), text).toBe(true);
  });

  it('leaves tokens, ids, digests, phone numbers, barcodes, dates and long numbers alone', () => {
    for (const text of [
      'pm_card_ok',
      'tok_1N3T00LkdIwHu7ixt44h1F8k',
      'ord_01m7ze3tt2f6cb7w1cdxgvk6a9',
      'b119f649-5994-4813-8983-f4ec2cb5be39', // UUIDs whose digit groups once passed for Maestro
      '1efac7dc-1896-4bf3-b95e-575290113506',
      '4242424242424241', // the check digit is off
      '42424242424',
      '4242  4242 4242 4242', // two spaces are not a card's grouping
      'a4242424242424242', // part of a word or an id
      '4242424242424242f',
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      'ab4111111111111111cd',
      '+1 415 555 2671 0042',
      '+4915112345678',
      '4006381333931', // an EAN-13 barcode
      '41111111111111111111', // twenty digits: no card number
      '2026-11-21T16:20:29.123Z',
      '99999999999999999999.999',
      '0.4111111111111111', // a random number, printed
      'carol-0.4242424242424242@customer.test',
      '4111111111111111.25', // an amount
      '4111111111111111,25',
      '1732200000000',
      'DE89 3704 0044 0532 0130 00',
      '',
    ])
      expect(containsCardNumber(text), text).toBe(false);
  });

  test.prop([cardNumber, around, after, fc.constantFrom('', ' ', '-')])(
    'finds a scheme’s number with a right check digit, alone or in text, together or grouped as printed',
    (number, before, behind, separator) => {
      // Printed cards group 14 and 15 digits 4-6-4 and 4-6-5, the others by four.
      const groups =
        number.length < 16
          ? [number.slice(0, 4), number.slice(4, 10), number.slice(10)]
          : (number.match(/.{1,4}/g) as string[]);
      expect(containsCardNumber(`${before}${groups.join(separator)}${behind}`)).toBe(true);
    },
  );

  test.prop([cardNumber, fc.integer({ min: 1, max: 9 }), around, after])(
    'and none whose check digit is off',
    (number, off, before, behind) => {
      const wrong = `${number.slice(0, -1)}${(Number(number.at(-1)) + off) % 10}`;
      expect(containsCardNumber(`${before}${wrong}${behind}`)).toBe(false);
    },
  );

  it('masks card numbers and keeps the rest', () => {
    expect(maskCardNumbers('/v1/orders?q=4111 1111 1111 1111&limit=10')).toBe(
      '/v1/orders?q=[card number]&limit=10',
    );
    expect(maskCardNumbers('pay 378282246310005 or 4242424242424241')).toBe(
      'pay [card number] or 4242424242424241',
    );
  });
});
