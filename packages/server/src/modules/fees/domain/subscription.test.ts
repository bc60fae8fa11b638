import { describe, expect, it } from 'vitest';
import { periodStartAt, trialEnd } from './subscription.js';

const at = (iso: string) => new Date(iso);

describe('subscription periods', () => {
  it('count calendar months from the anchor, ending on the last day of shorter months', () => {
    const anchor = at('2026-01-31T10:00:00Z');
    expect(periodStartAt(anchor, 'month', 0)).toEqual(anchor);
    expect(periodStartAt(anchor, 'month', 1)).toEqual(at('2026-02-28T10:00:00Z'));
    // Back on the 31st after a short month: periods never drift.
    expect(periodStartAt(anchor, 'month', 2)).toEqual(at('2026-03-31T10:00:00Z'));
    expect(periodStartAt(anchor, 'month', 12)).toEqual(at('2027-01-31T10:00:00Z'));
  });

  it('count years from the anchor, a 29 February anchor ending on 28 February', () => {
    const anchor = at('2028-02-29T00:00:00Z');
    expect(periodStartAt(anchor, 'year', 1)).toEqual(at('2029-02-28T00:00:00Z'));
    expect(periodStartAt(anchor, 'year', 4)).toEqual(at('2032-02-29T00:00:00Z'));
  });

  it('start paying when the trial ends', () => {
    expect(trialEnd(at('2026-06-01T09:00:00Z'), 14)).toEqual(at('2026-06-15T09:00:00Z'));
    expect(trialEnd(at('2026-06-01T09:00:00Z'), 0)).toEqual(at('2026-06-01T09:00:00Z'));
  });
});
