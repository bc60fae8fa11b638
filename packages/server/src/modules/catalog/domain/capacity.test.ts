import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CAPACITY_PERIODS, periodEnd, periodStart } from './capacity.js';

const at = (iso: string) => new Date(iso);

describe('capacity periods', () => {
  it('start at midnight UTC, on Mondays for weeks and on the 1st for months', () => {
    expect(periodStart('day', at('2026-06-03T23:59:59.999Z'))).toEqual(at('2026-06-03T00:00:00Z'));
    expect(periodStart('week', at('2026-06-03T12:00:00Z'))).toEqual(at('2026-06-01T00:00:00Z'));
    expect(periodStart('week', at('2026-06-01T00:00:00Z'))).toEqual(at('2026-06-01T00:00:00Z'));
    // A Sunday belongs to the week that began the Monday before, across a month and a year.
    expect(periodStart('week', at('2026-05-31T22:00:00Z'))).toEqual(at('2026-05-25T00:00:00Z'));
    expect(periodStart('week', at('2027-01-03T08:00:00Z'))).toEqual(at('2026-12-28T00:00:00Z'));
    expect(periodStart('month', at('2028-02-29T18:00:00Z'))).toEqual(at('2028-02-01T00:00:00Z'));
  });

  it('end where the next period starts, months by the calendar', () => {
    expect(periodEnd('day', at('2026-06-03T00:00:00Z'))).toEqual(at('2026-06-04T00:00:00Z'));
    expect(periodEnd('week', at('2026-12-28T00:00:00Z'))).toEqual(at('2027-01-04T00:00:00Z'));
    expect(periodEnd('month', at('2028-02-01T00:00:00Z'))).toEqual(at('2028-03-01T00:00:00Z'));
    expect(periodEnd('month', at('2026-12-01T00:00:00Z'))).toEqual(at('2027-01-01T00:00:00Z'));
  });

  it('always contain the moment they are computed from, and start where their own start does', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...CAPACITY_PERIODS),
        fc.date({ min: at('2000-01-01T00:00:00Z'), max: at('2100-01-01T00:00:00Z'), noInvalidDate: true }),
        (period, moment) => {
          const start = periodStart(period, moment);
          const end = periodEnd(period, start);
          expect(start.getTime()).toBeLessThanOrEqual(moment.getTime());
          expect(end.getTime()).toBeGreaterThan(moment.getTime());
          expect(periodStart(period, start)).toEqual(start);
          expect(periodStart(period, new Date(end.getTime() - 1))).toEqual(start);
          expect(start.getUTCHours() + start.getUTCMinutes() + start.getUTCSeconds()).toBe(0);
          if (period === 'week') expect(start.getUTCDay()).toBe(1);
          if (period === 'month') expect(start.getUTCDate()).toBe(1);
        },
      ),
    );
  });
});
