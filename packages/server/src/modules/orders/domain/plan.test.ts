import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { dueByMs, expectedTimes, HOUR_MS, priceOrder, readySteps, type ScheduledStep } from './plan.js';
import { CLOSED_LEGS, canTransition, FINISHED_LEGS, WORK_ORDER_STATUSES } from './work-order.js';

/** A random DAG: each step may come after any of the steps before it in the list. */
const dag = fc.integer({ min: 1, max: 8 }).chain((size) =>
  fc
    .tuple(
      ...Array.from({ length: size }, (_, index) =>
        fc.record({
          after: fc.subarray(Array.from({ length: index }, (_, before) => `s${before}`)),
          leadTimeHours: fc.integer({ min: 0, max: 96 }),
        }),
      ),
    )
    .map((steps) => steps.map((step, index): ScheduledStep => ({ key: `s${index}`, ...step }))),
);

describe('planning an order', () => {
  test.prop([dag, fc.integer({ min: 0, max: 10 ** 6 })])(
    'starts every step when all its predecessors are expected done, and never before the start',
    (steps, fromMs) => {
      const times = expectedTimes(
        steps,
        steps.map((step) => step.key),
        fromMs,
      );
      for (const step of steps) {
        const own = times.get(step.key) as { startMs: number; finishMs: number };
        expect(own.startMs).toBeGreaterThanOrEqual(fromMs);
        expect(own.finishMs - own.startMs).toBe(step.leadTimeHours * HOUR_MS);
        const ready = Math.max(fromMs, ...step.after.map((key) => times.get(key)?.finishMs ?? fromMs));
        expect(own.startMs).toBe(ready);
      }
    },
  );

  test.prop([dag, fc.integer({ min: 10 ** 6, max: 10 ** 9 })])(
    'is due by the deadline, and no later than any following step must start',
    (steps, deadlineMs) => {
      const latest = new Map<string, number>();
      const due = new Map<string, number>();
      for (const step of [...steps].reverse()) {
        const dueBy = dueByMs(step.key, steps, latest, deadlineMs);
        due.set(step.key, dueBy);
        latest.set(step.key, dueBy - step.leadTimeHours * HOUR_MS);
      }
      for (const step of steps) {
        expect(due.get(step.key)).toBeLessThanOrEqual(deadlineMs);
        for (const before of step.after) {
          expect(due.get(before)).toBeLessThanOrEqual(latest.get(step.key) as number);
        }
      }
    },
  );

  test.prop([
    fc.array(fc.bigInt({ min: 0n, max: 10n ** 9n }), { minLength: 1, maxLength: 8 }),
    fc.integer({ min: 0, max: 10_000 }),
  ])('shares a cost-plus margin over the legs so that the parts sum to it', (costs, marginBps) => {
    const split = priceOrder({ kind: 'cost_plus', marginBps }, costs, 1);
    expect(split).not.toBeNull();
    const { costMinor, marginMinor, totalMinor, legMarginsMinor } = split as NonNullable<typeof split>;
    expect(costMinor).toBe(costs.reduce((sum, cost) => sum + cost, 0n));
    expect(totalMinor).toBe(costMinor + marginMinor);
    expect(legMarginsMinor.reduce((sum, part) => sum + part, 0n)).toBe(marginMinor);
    expect(legMarginsMinor.every((part) => part >= 0n)).toBe(true);
  });

  it('prices a fixed offering per unit, and refuses a price below the partners’ cost', () => {
    expect(priceOrder({ kind: 'fixed', unitPriceMinor: 1_500n }, [1_200n, 600n, 300n], 2)).toEqual({
      costMinor: 2_100n,
      marginMinor: 900n,
      totalMinor: 3_000n,
      legMarginsMinor: [514n, 257n, 129n],
    });
    expect(priceOrder({ kind: 'fixed', unitPriceMinor: 1_000n }, [1_200n, 900n], 2)).toBeNull();
    // Half up: 15 % of 3.33 is 0.4995.
    expect(priceOrder({ kind: 'cost_plus', marginBps: 1500 }, [333n], 1)?.marginMinor).toBe(50n);
  });

  it('sends out the steps whose predecessors are all finished', () => {
    const steps: ScheduledStep[] = [
      { key: 'cooking', after: [], leadTimeHours: 1 },
      { key: 'packaging', after: [], leadTimeHours: 1 },
      { key: 'courier', after: ['cooking', 'packaging'], leadTimeHours: 1 },
    ];
    expect(readySteps(steps, new Set()).map((step) => step.key)).toEqual(['cooking', 'packaging']);
    expect(readySteps(steps, new Set(['cooking'])).map((step) => step.key)).toEqual(['packaging']);
    expect(readySteps(steps, new Set(['cooking', 'packaging'])).map((step) => step.key)).toEqual(['courier']);
  });
});

describe("a work order's lifecycle", () => {
  it('allows exactly the transitions of the state machine', () => {
    const allowed = new Set([
      'offered→accepted',
      'offered→declined',
      'offered→expired',
      'offered→cancelled',
      'accepted→in_progress',
      'accepted→cancelled',
      'in_progress→delivered',
      // Withdrawn by an operator once overdue.
      'in_progress→cancelled',
      'delivered→confirmed',
      'delivered→rejected',
    ]);
    for (const from of WORK_ORDER_STATUSES) {
      for (const to of WORK_ORDER_STATUSES) {
        expect(canTransition(from, to), `${from}→${to}`).toBe(allowed.has(`${from}→${to}`));
      }
    }
  });

  it('lets the steps after a leg start only once its work exists', () => {
    expect(FINISHED_LEGS).toEqual(['done', 'refunded']);
    expect(CLOSED_LEGS).toEqual(expect.arrayContaining(['done', 'refunded', 'cancelled']));
  });
});
