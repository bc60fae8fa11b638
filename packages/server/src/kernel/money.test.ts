import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainError } from './errors.js';
import { allocate, applyBasisPointsHalfUp, formatAmount, parseAmount, parseCurrency } from './money.js';

const EUR = parseCurrency('EUR');
const JPY = parseCurrency('JPY');
const BHD = parseCurrency('BHD');

describe('allocate', () => {
  it('always gives parts that sum to the whole and are never negative', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        fc
          .array(fc.bigInt({ min: 0n, max: 10n ** 6n }), { minLength: 1, maxLength: 20 })
          .filter((w) => w.some((x) => x > 0n)),
        (total, weights) => {
          const parts = allocate(total, weights);
          expect(parts.reduce((sum, part) => sum + part, 0n)).toBe(total);
          expect(parts.every((part) => part >= 0n)).toBe(true);
          // No part is more than one unit away from its exact share.
          const weightSum = weights.reduce((s, w) => s + w, 0n);
          parts.forEach((part, i) => {
            const exactFloor = (total * (weights[i] as bigint)) / weightSum;
            expect(part - exactFloor >= 0n && part - exactFloor <= 1n).toBe(true);
          });
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('splits a negative total symmetrically', () => {
    expect(allocate(-100n, [1n, 1n, 1n])).toEqual([-34n, -33n, -33n]);
  });

  it('gives the leftover unit to the largest remainder', () => {
    expect(allocate(100n, [1n, 2n])).toEqual([33n, 67n]);
    expect(allocate(10n, [3n, 3n, 3n])).toEqual([4n, 3n, 3n]);
  });
});

describe('amounts', () => {
  it('round-trips every amount through its decimal form in each exponent', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 14n), max: 10n ** 14n }),
        fc.constantFrom(EUR, JPY, BHD),
        (minor, cur) => {
          expect(parseAmount(formatAmount(minor, cur), cur)).toBe(minor);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('respects the currency exponent', () => {
    expect(formatAmount(1234n, EUR)).toBe('12.34');
    expect(formatAmount(5n, EUR)).toBe('0.05');
    expect(formatAmount(-5n, EUR)).toBe('-0.05');
    expect(formatAmount(1234n, JPY)).toBe('1234');
    expect(formatAmount(1234n, BHD)).toBe('1.234');
    expect(parseAmount('12.3', EUR)).toBe(1230n);
  });

  it('rejects more decimals than the currency has, never rounding', () => {
    expect(() => parseAmount('0.001', EUR)).toThrow(
      expect.objectContaining({ code: 'money.too_many_decimals' }) as unknown as DomainError,
    );
    expect(() => parseAmount('1.5', JPY)).toThrow(
      expect.objectContaining({ code: 'money.too_many_decimals' }),
    );
  });

  it('rejects malformed amounts and unknown currencies', () => {
    for (const bad of ['', '1e3', '12,50', ' 1', '0x10', '1.', '.5', 'NaN']) {
      expect(() => parseAmount(bad, EUR)).toThrow(expect.objectContaining({ code: 'money.invalid_amount' }));
    }
    expect(() => parseCurrency('XAU')).toThrow(expect.objectContaining({ code: 'money.unknown_currency' }));
    expect(() => parseCurrency('eur')).toThrow(expect.objectContaining({ code: 'money.unknown_currency' }));
  });
});

describe('basis points', () => {
  it('rounds half up, symmetric around zero', () => {
    expect(applyBasisPointsHalfUp(1000n, 1250n)).toBe(125n);
    expect(applyBasisPointsHalfUp(1n, 5000n)).toBe(1n);
    expect(applyBasisPointsHalfUp(1n, 4999n)).toBe(0n);
    expect(applyBasisPointsHalfUp(-1n, 5000n)).toBe(-1n);
  });
});
