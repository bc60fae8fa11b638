import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LapsingHolds, type TimedHold } from './lapsing-holds.js';

const MINUTE_MS = 60_000;
const period = Date.UTC(2026, 5, 1);

const hold = (
  reservationId: string,
  quantity: number,
  expiresAtMs: number,
  offerId = 'off_a',
): TimedHold => ({
  reservationId,
  offerId,
  periodStartMs: period,
  quantity,
  expiresAtMs,
});

describe('LapsingHolds', () => {
  it('counts a hold until its time runs out, then only what is left', () => {
    const holds = new LapsingHolds();
    holds.hold(hold('rsv_1', 3, 10 * MINUTE_MS));
    holds.hold(hold('rsv_2', 2, 20 * MINUTE_MS));
    expect(holds.count('off_a', period, 5)).toBe(5);

    expect(holds.lapse(10 * MINUTE_MS - 1)).toEqual({ counts: [], reservationIds: [] });
    expect(holds.lapse(10 * MINUTE_MS)).toEqual({
      counts: [{ offerId: 'off_a', periodStartMs: period, reserved: 2 }],
      reservationIds: ['rsv_1'],
    });
    // A new hold raises the counter; the lapsed one still does not count.
    holds.hold(hold('rsv_3', 4, 30 * MINUTE_MS));
    expect(holds.count('off_a', period, 9)).toBe(6);
    expect(holds.lapse(25 * MINUTE_MS).counts).toEqual([
      { offerId: 'off_a', periodStartMs: period, reserved: 4 },
    ]);
    // Lapsing again at the same time finds nothing new.
    expect(holds.lapse(25 * MINUTE_MS)).toEqual({ counts: [], reservationIds: [] });
  });

  it('lets the counter decide once a hold is settled, lapsed or not', () => {
    const holds = new LapsingHolds();
    holds.hold(hold('rsv_1', 3, 10 * MINUTE_MS));
    holds.hold(hold('rsv_2', 2, 10 * MINUTE_MS));
    holds.count('off_a', period, 5);
    holds.lapse(11 * MINUTE_MS);
    expect(holds.count('off_a', period, 5)).toBe(0);
    // The sweep expires the first: the counter no longer has it, and it is not taken off twice.
    holds.settle('rsv_1');
    expect(holds.count('off_a', period, 2)).toBe(0);
    holds.settle('rsv_2');
    expect(holds.count('off_a', period, 0)).toBe(0);
    expect(holds.size).toBe(0);

    // A hold confirmed before its time keeps counting, as the counter says, and never lapses.
    holds.hold(hold('rsv_3', 4, 20 * MINUTE_MS));
    expect(holds.count('off_a', period, 4)).toBe(4);
    holds.settle('rsv_3');
    expect(holds.lapse(30 * MINUTE_MS)).toEqual({ counts: [], reservationIds: [] });
    expect(holds.count('off_a', period, 4)).toBe(4);
  });

  it('takes a hold heard of again as the same hold, and one heard of after its time as lapsed', () => {
    const holds = new LapsingHolds();
    holds.lapse(15 * MINUTE_MS);
    holds.hold(hold('rsv_1', 3, 10 * MINUTE_MS));
    holds.hold(hold('rsv_1', 3, 10 * MINUTE_MS));
    expect(holds.size).toBe(1);
    expect(holds.count('off_a', period, 3)).toBe(0);
    // Settling an unknown hold changes nothing.
    holds.settle('rsv_unknown');
    expect(holds.count('off_a', period, 3)).toBe(0);
  });

  it('keeps offer-periods apart, and passes through counters with no hold', () => {
    const holds = new LapsingHolds();
    holds.hold(hold('rsv_1', 3, 10 * MINUTE_MS, 'off_a'));
    holds.hold(hold('rsv_2', 1, 10 * MINUTE_MS, 'off_b'));
    holds.count('off_a', period, 3);
    // off_b's counter was never heard: nothing to tell the index about it yet.
    const { counts, reservationIds } = holds.lapse(10 * MINUTE_MS);
    expect(counts).toEqual([{ offerId: 'off_a', periodStartMs: period, reserved: 0 }]);
    expect(reservationIds.sort()).toEqual(['rsv_1', 'rsv_2']);
    expect(holds.count('off_b', period, 1)).toBe(0);
    expect(holds.count('off_c', period, 7)).toBe(7);
    expect(holds.count('off_a', period + 1, 7)).toBe(7);
  });

  it('forgets holds lapsed long ago that were never settled, counting them again', () => {
    const holds = new LapsingHolds();
    holds.hold(hold('rsv_1', 3, 10 * MINUTE_MS));
    holds.hold(hold('rsv_2', 2, 50 * MINUTE_MS));
    holds.count('off_a', period, 5);
    holds.lapse(60 * MINUTE_MS);
    expect(holds.count('off_a', period, 5)).toBe(0);
    expect(holds.forgetLapsedBefore(30 * MINUTE_MS)).toEqual([
      { offerId: 'off_a', periodStartMs: period, reserved: 3 },
    ]);
    expect(holds.size).toBe(1);
    expect(holds.forgetLapsedBefore(60 * MINUTE_MS)).toEqual([
      { offerId: 'off_a', periodStartMs: period, reserved: 5 },
    ]);
    expect(holds.size).toBe(0);
    expect(holds.count('off_a', period, 5)).toBe(5);
  });

  it('counts what a naive model counts, after any sequence of holds, settlements and time', () => {
    type Step =
      | { kind: 'hold'; id: number; offer: number; quantity: number; expiresAtMs: number; reserved: number }
      | { kind: 'settle'; id: number; reserved: number }
      | { kind: 'count'; offer: number; reserved: number }
      | { kind: 'lapse'; byMs: number }
      | { kind: 'forget'; beforeMs: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({
        kind: fc.constant('hold' as const),
        id: fc.nat(15),
        offer: fc.nat(2),
        quantity: fc.integer({ min: 1, max: 5 }),
        expiresAtMs: fc.nat(100),
        reserved: fc.nat(40),
      }),
      fc.record({ kind: fc.constant('settle' as const), id: fc.nat(15), reserved: fc.nat(40) }),
      fc.record({ kind: fc.constant('count' as const), offer: fc.nat(2), reserved: fc.nat(40) }),
      fc.record({ kind: fc.constant('lapse' as const), byMs: fc.nat(10) }),
      fc.record({ kind: fc.constant('forget' as const), beforeMs: fc.nat(100) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const holds = new LapsingHolds();
        // The model: every hold tracked, lapsed once time passed its expiry; each offer's last counter.
        const model = new Map<string, { offer: string; quantity: number; expiresAtMs: number }>();
        const counters = new Map<string, number>();
        let nowMs = Number.NEGATIVE_INFINITY;
        const expected = (offer: string) =>
          Math.max(
            0,
            (counters.get(offer) ?? 0) -
              [...model.values()]
                .filter((h) => h.offer === offer && h.expiresAtMs <= nowMs)
                .reduce((sum, h) => sum + h.quantity, 0),
          );
        const told = new Map<string, number>();
        // As an event does: the counter's new total comes with each hold and settlement.
        const heard = (offer: string, reserved: number) => {
          counters.set(offer, reserved);
          told.set(offer, holds.count(offer, period, reserved));
        };
        for (const s of steps) {
          if (s.kind === 'hold') {
            const id = `rsv_${s.id}`;
            const offer = `off_${s.offer}`;
            // The same reservation is always the same hold.
            const known = model.get(id);
            const held = known ?? { offer, quantity: s.quantity, expiresAtMs: s.expiresAtMs };
            holds.hold(hold(id, held.quantity, held.expiresAtMs, held.offer));
            model.set(id, held);
            heard(held.offer, s.reserved);
          } else if (s.kind === 'settle') {
            const settled = model.get(`rsv_${s.id}`);
            holds.settle(`rsv_${s.id}`);
            model.delete(`rsv_${s.id}`);
            if (settled) heard(settled.offer, s.reserved);
          } else if (s.kind === 'count') {
            heard(`off_${s.offer}`, s.reserved);
          } else if (s.kind === 'lapse') {
            nowMs = Math.max(nowMs, (Number.isFinite(nowMs) ? nowMs : 0) + s.byMs);
            const { counts, reservationIds } = holds.lapse(nowMs);
            for (const c of counts) told.set(c.offerId, c.reserved);
            for (const id of reservationIds) expect(model.get(id)?.expiresAtMs).toBeLessThanOrEqual(nowMs);
          } else {
            for (const c of holds.forgetLapsedBefore(s.beforeMs)) told.set(c.offerId, c.reserved);
            for (const [id, h] of model)
              if (h.expiresAtMs <= nowMs && h.expiresAtMs < s.beforeMs) model.delete(id);
          }
          // What the index was last told for every offer whose counter it heard is the model's count.
          for (const offer of counters.keys()) expect(told.get(offer), offer).toBe(expected(offer));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
