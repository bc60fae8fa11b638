import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CAPACITY_PERIODS, periodStart } from '../../catalog/index.js';
import { PERIOD_CODES, periodStartMs } from './periods.js';

describe('capacity periods in the index', () => {
  it('start exactly where the catalog counts capacity, for any time and period', () => {
    // The index finds an offer's reserved units by period start; a different start would make
    // it read the wrong period's reservations.
    fc.assert(
      fc.property(
        fc.constantFrom(...CAPACITY_PERIODS),
        fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2100, 0, 1) }),
        (period, atMs) => {
          expect(periodStartMs(PERIOD_CODES[period], atMs)).toBe(
            periodStart(period, new Date(atMs)).getTime(),
          );
        },
      ),
      { numRuns: 2000 },
    );
  });
});
