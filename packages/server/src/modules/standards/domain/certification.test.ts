import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coveredUntil, DAY_MS, evidenceErrors, grantPeriod, type ValidityPeriod } from './certification.js';

const START = Date.parse('2026-01-01T00:00:00Z');
const instant = fc.integer({ min: 0, max: 3 * 365 }).map((days) => new Date(START + days * DAY_MS));
const validityDays = fc.integer({ min: 1, max: 3660 });

describe('grant periods', () => {
  it('starts a renewal of a still valid certification exactly when that one ends', () => {
    fc.assert(
      fc.property(instant, validityDays, fc.integer({ min: 1, max: 1000 }), (now, days, aheadHours) => {
        const heldUntil = new Date(now.getTime() + aheadHours * 3_600_000);
        const period = grantPeriod(now, days, heldUntil);
        expect(period.validFrom).toEqual(heldUntil);
        expect(period.validUntil.getTime() - period.validFrom.getTime()).toBe(days * DAY_MS);
      }),
    );
  });

  it('starts at once when nothing is held, or what was held has already ended', () => {
    fc.assert(
      fc.property(instant, validityDays, fc.integer({ min: 0, max: 1000 }), (now, days, agoHours) => {
        const ended = new Date(now.getTime() - agoHours * 3_600_000);
        for (const heldUntil of [null, ended]) {
          const period = grantPeriod(now, days, heldUntil);
          expect(period.validFrom).toEqual(now);
          expect(period.validUntil).toEqual(new Date(now.getTime() + days * DAY_MS));
        }
      }),
    );
  });
});

describe('cover', () => {
  /** Periods laid end to end from `start`, each `days[i]` long. */
  function chain(start: Date, days: readonly number[]): ValidityPeriod[] {
    const periods: ValidityPeriod[] = [];
    let from = start;
    for (const length of days) {
      const until = new Date(from.getTime() + length * DAY_MS);
      periods.push({ validFrom: from, validUntil: until });
      from = until;
    }
    return periods;
  }

  it('runs to the end of the last of back-to-back renewals, from any instant they cover', () => {
    fc.assert(
      fc.property(
        instant,
        fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 6 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (start, days, fraction) => {
          const periods = chain(start, days);
          const end = periods.at(-1)!.validUntil;
          const at = new Date(start.getTime() + Math.floor(fraction * (end.getTime() - start.getTime())));
          // The order they are read in does not matter.
          expect(coveredUntil([...periods].reverse(), at)).toEqual(end);
        },
      ),
    );
  });

  it('stops at a gap, and is null before the first period and from the end of the last', () => {
    const first = { validFrom: new Date(START), validUntil: new Date(START + 10 * DAY_MS) };
    const later = { validFrom: new Date(START + 11 * DAY_MS), validUntil: new Date(START + 20 * DAY_MS) };
    expect(coveredUntil([first, later], new Date(START + DAY_MS))).toEqual(first.validUntil);
    expect(coveredUntil([first, later], new Date(START - 1))).toBeNull();
    expect(coveredUntil([first, later], first.validUntil)).toBeNull();
    expect(coveredUntil([first, later], later.validFrom)).toEqual(later.validUntil);
    expect(coveredUntil([first, later], later.validUntil)).toBeNull();
  });
});

describe('evidence', () => {
  const items = [
    { key: 'licence', description: 'The operating licence number' },
    { key: 'insurance', description: 'A link to the liability insurance certificate' },
  ];

  it('names each item that is missing or blank, and each item the program does not ask for', () => {
    expect(evidenceErrors(items, { licence: 'L-1', insurance: 'https://docs.example/ins.pdf' })).toEqual({
      missing: [],
      unexpected: [],
    });
    const { missing, unexpected } = evidenceErrors(items, { licence: '   ', shoe_size: '42' });
    expect(missing.map((error) => [error.path, error.rule])).toEqual([
      ['/evidence/licence', 'required'],
      ['/evidence/insurance', 'required'],
    ]);
    expect(missing[1]?.message).toContain('liability insurance');
    expect(unexpected.map((error) => error.path)).toEqual(['/evidence/shoe_size']);
  });
});
