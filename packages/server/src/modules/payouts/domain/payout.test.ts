import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  DESTINATION_HOLD_MS,
  destinationHeldUntil,
  isDue,
  planPayout,
  WEEKDAYS,
  weekdayOf,
} from './payout.js';

const base = {
  payableMinor: 10_000n,
  receivableMinor: 0n,
  newEarningsMinor: 10_000n,
  reserveBps: 0,
  reserveDays: 0,
  minimumMinor: 0n,
  hasDestination: true,
  destinationFailed: false,
  destinationHeld: false,
};

describe('payout schedules', () => {
  const monday = new Date('2026-06-01T09:00:00Z');
  it('reads weekdays in UTC', () => {
    expect(weekdayOf(monday)).toBe('monday');
    expect(weekdayOf(new Date('2026-06-07T23:59:59Z'))).toBe('sunday');
  });

  it('pays daily partners once per day, weekly ones on their weekday, manual ones never by schedule', () => {
    expect(isDue({ schedule: 'daily', weekday: null, lastRunOn: null }, monday)).toBe(true);
    expect(isDue({ schedule: 'daily', weekday: null, lastRunOn: '2026-06-01' }, monday)).toBe(false);
    expect(isDue({ schedule: 'daily', weekday: null, lastRunOn: '2026-05-31' }, monday)).toBe(true);
    expect(isDue({ schedule: 'weekly', weekday: 'monday', lastRunOn: null }, monday)).toBe(true);
    expect(isDue({ schedule: 'weekly', weekday: 'tuesday', lastRunOn: null }, monday)).toBe(false);
    expect(isDue({ schedule: 'manual', weekday: null, lastRunOn: null }, monday)).toBe(false);
  });

  it('pays a weekly partner whose weekday passed without a run at the next run, and then on its weekday', () => {
    const weekly = (weekday: 'monday' | 'tuesday' | 'saturday', lastRunOn: string | null) => ({
      schedule: 'weekly' as const,
      weekday,
      lastRunOn,
    });
    // Its Saturday (2026-05-30) had no run: Monday pays it, once.
    expect(isDue(weekly('saturday', '2026-05-23'), monday)).toBe(true);
    expect(isDue(weekly('saturday', '2026-06-01'), monday)).toBe(false);
    // Paid on its Saturday: nothing until the next one.
    expect(isDue(weekly('saturday', '2026-05-30'), monday)).toBe(false);
    // Paid late on a Monday: due again on its next Saturday, not before.
    const saturday = new Date('2026-06-06T06:00:00Z');
    expect(isDue(weekly('saturday', '2026-06-01'), new Date('2026-06-05T06:00:00Z'))).toBe(false);
    expect(isDue(weekly('saturday', '2026-06-01'), saturday)).toBe(true);
    // Its weekday today, run last week: due; run today already: not again.
    expect(isDue(weekly('monday', '2026-05-25'), monday)).toBe(true);
    expect(isDue(weekly('monday', '2026-06-01'), monday)).toBe(false);
    // Never run: it starts on its weekday, not before.
    expect(isDue(weekly('tuesday', null), monday)).toBe(false);
  });

  test.prop([
    fc.integer({ min: 0, max: 400 }),
    fc.constantFrom(...WEEKDAYS),
    fc.array(fc.boolean(), { minLength: 56, maxLength: 56 }),
  ])(
    'pays a weekly partner once per week of its own, the first run on or after its weekday',
    (start, weekday, runs) => {
      // Eight weeks of daily runs, some of them missed (the job was down that day).
      const days = runs.map((ran, n) => ({ ran, at: new Date(Date.UTC(2026, 0, 1 + start + n, 6)) }));
      let lastRunOn: string | null = null;
      const paid = new Set<number>();
      days.forEach(({ ran, at }, n) => {
        if (!ran || !isDue({ schedule: 'weekly', weekday, lastRunOn }, at)) return;
        paid.add(n);
        lastRunOn = at.toISOString().slice(0, 10);
      });
      const first = Math.min(...paid);
      const isWeekday = (n: number) => weekdayOf(days[n]?.at as Date) === weekday;
      const sorted = [...paid].sort((a, b) => a - b);
      // Between two payments, its weekday came: never twice in one week of its own.
      for (let i = 1; i < sorted.length; i++) {
        const between = Array.from({ length: (sorted[i] as number) - (sorted[i - 1] as number) }, (_, k) =>
          isWeekday((sorted[i - 1] as number) + 1 + k),
        );
        expect(between).toContain(true);
      }
      // After the first payment, each weekday is paid by the first run on or after it.
      for (let n = first + 1; n < days.length; n++) {
        if (!isWeekday(n)) continue;
        const firstRun = days.findIndex((day, k) => k >= n && day.ran);
        if (firstRun >= 0) expect(paid.has(firstRun)).toBe(true);
      }
    },
  );
});

describe('planning a payout', () => {
  it('nets a receivable first and pays nothing while some of it is left', () => {
    expect(planPayout({ ...base, payableMinor: 3_000n, receivableMinor: 5_000n })).toEqual({
      nettedMinor: 3_000n,
      reservedMinor: 0n,
      payoutMinor: 0n,
      skipped: 'owes_receivable',
    });
    expect(planPayout({ ...base, receivableMinor: 4_000n })).toMatchObject({
      nettedMinor: 4_000n,
      payoutMinor: 6_000n,
      skipped: null,
    });
  });

  it('holds the reserve share of new earnings only, rounded half up', () => {
    expect(
      planPayout({
        ...base,
        payableMinor: 20_000n,
        newEarningsMinor: 10_005n,
        reserveBps: 1_000,
        reserveDays: 7,
      }),
    ).toMatchObject({ reservedMinor: 1_001n, payoutMinor: 18_999n });
  });

  it('pays nothing under the minimum, and nothing without a destination', () => {
    expect(planPayout({ ...base, minimumMinor: 10_001n }).skipped).toBe('below_minimum');
    expect(planPayout({ ...base, hasDestination: false }).skipped).toBe('no_destination');
    expect(planPayout({ ...base, payableMinor: 0n, minimumMinor: 0n }).skipped).toBe('below_minimum');
  });

  it('pays nothing to a destination a payout failed on, but nets and holds the reserve as ever', () => {
    expect(
      planPayout({
        ...base,
        receivableMinor: 1_000n,
        reserveBps: 1_000,
        reserveDays: 7,
        destinationFailed: true,
        destinationHeld: true,
      }),
    ).toEqual({ nettedMinor: 1_000n, reservedMinor: 1_000n, payoutMinor: 0n, skipped: 'destination_failed' });
  });

  it('pays nothing to a destination changed too recently, and holds only a change of an existing one', () => {
    expect(planPayout({ ...base, destinationHeld: true })).toEqual({
      nettedMinor: 0n,
      reservedMinor: 0n,
      payoutMinor: 0n,
      skipped: 'destination_held',
    });
    // Netting and the reserve go on: only the payout waits.
    expect(planPayout({ ...base, receivableMinor: 4_000n, destinationHeld: true })).toMatchObject({
      nettedMinor: 4_000n,
      payoutMinor: 0n,
      skipped: 'destination_held',
    });
    const now = new Date('2026-06-01T09:00:00Z');
    const held = new Date(now.getTime() + DESTINATION_HOLD_MS);
    const first = { destination: null, destinationHeldUntil: null, hadDestination: false };
    const set = { destination: 'ba_a', destinationHeldUntil: null, hadDestination: true };
    expect(destinationHeldUntil(first, 'ba_first', now)).toBeNull();
    expect(destinationHeldUntil(set, 'ba_a', now)).toBeNull();
    expect(destinationHeldUntil(set, 'ba_b', now)).toEqual(held);
    // Setting the same destination again does not cut a hold short, nor lengthen it.
    const earlier = new Date(now.getTime() - 1000);
    expect(
      destinationHeldUntil({ ...set, destination: 'ba_b', destinationHeldUntil: earlier }, 'ba_b', now),
    ).toEqual(earlier);
    // Removing the destination holds too: whatever is set next is paid only after the hold.
    expect(destinationHeldUntil(set, null, now)).toEqual(held);
    // And a destination set after a removal holds again, however long ago the removal was: a
    // removal waited out is no way around the hold.
    const removedLongAgo = { destination: null, destinationHeldUntil: earlier, hadDestination: true };
    expect(destinationHeldUntil(removedLongAgo, 'ba_c', now)).toEqual(held);
    expect(destinationHeldUntil(removedLongAgo, null, now)).toEqual(earlier);
  });

  test.prop([
    fc.bigInt({ min: 0n, max: 10n ** 12n }),
    fc.bigInt({ min: 0n, max: 10n ** 12n }),
    fc.bigInt({ min: 0n, max: 10n ** 12n }),
    fc.integer({ min: 0, max: 10_000 }),
    fc.bigInt({ min: 0n, max: 10n ** 12n }),
  ])(
    'never splits more than the payable, and no part is negative',
    (payable, receivable, earnings, bps, minimum) => {
      const plan = planPayout({
        ...base,
        payableMinor: payable,
        receivableMinor: receivable,
        newEarningsMinor: earnings,
        reserveBps: bps,
        reserveDays: 1,
        minimumMinor: minimum,
      });
      for (const part of [plan.nettedMinor, plan.reservedMinor, plan.payoutMinor])
        expect(part >= 0n).toBe(true);
      expect(plan.nettedMinor + plan.reservedMinor + plan.payoutMinor <= payable).toBe(true);
      if (plan.payoutMinor > 0n)
        expect(plan.payoutMinor >= minimum && receivable === plan.nettedMinor).toBe(true);
    },
  );
});
