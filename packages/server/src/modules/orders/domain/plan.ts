import { allocate, applyBasisPointsHalfUp } from '../../../kernel/money.js';

export const HOUR_MS = 60 * 60 * 1000;

/** A step as scheduling sees it. */
export interface ScheduledStep {
  readonly key: string;
  readonly after: readonly string[];
  readonly leadTimeHours: number;
}

/**
 * When a step must be done at the latest: the order's deadline, or the latest start of a step
 * that follows it, whichever is earlier. A plan is made from the last steps back, so the steps
 * after this one already have their latest starts in `latestStartMs`.
 */
export function dueByMs(
  key: string,
  steps: readonly ScheduledStep[],
  latestStartMs: ReadonlyMap<string, number>,
  deadlineMs: number,
): number {
  let due = deadlineMs;
  for (const step of steps) {
    if (!step.after.includes(key)) continue;
    const start = latestStartMs.get(step.key);
    if (start !== undefined && start < due) due = start;
  }
  return due;
}

/**
 * The expected schedule: a step starts when all its predecessors are done (or at `fromMs`, or
 * at the time given for it in `fixedStartMs`) and takes its lead time. Lead times add up along
 * the critical path; the last finish is when the whole order is expected done.
 */
export function expectedTimes(
  steps: readonly ScheduledStep[],
  order: readonly string[],
  fromMs: number,
  fixed: ReadonlyMap<string, { startMs: number; finishMs: number }> = new Map(),
): Map<string, { startMs: number; finishMs: number }> {
  const byKey = new Map(steps.map((step) => [step.key, step]));
  const result = new Map<string, { startMs: number; finishMs: number }>();
  for (const key of order) {
    const step = byKey.get(key);
    if (!step) continue;
    const known = fixed.get(key);
    if (known) {
      result.set(key, known);
      continue;
    }
    let startMs = fromMs;
    for (const before of step.after) {
      const finish = result.get(before)?.finishMs ?? fromMs;
      if (finish > startMs) startMs = finish;
    }
    result.set(key, { startMs, finishMs: startMs + step.leadTimeHours * HOUR_MS });
  }
  return result;
}

export function successorMap(steps: readonly ScheduledStep[]): Map<string, string[]> {
  const successors = new Map<string, string[]>();
  for (const step of steps) {
    for (const before of step.after) successors.set(before, [...(successors.get(before) ?? []), step.key]);
  }
  return successors;
}

/** The steps whose predecessors are all among `finished`, and which are not themselves finished. */
export function readySteps(steps: readonly ScheduledStep[], finished: ReadonlySet<string>): ScheduledStep[] {
  return steps.filter((step) => !finished.has(step.key) && step.after.every((key) => finished.has(key)));
}

/** An order's price from its legs' costs (each leg's gross price), and each leg's margin. */
export interface PriceSplit {
  readonly costMinor: bigint;
  readonly marginMinor: bigint;
  readonly totalMinor: bigint;
  /** The margin shared over the legs in proportion to their cost, by largest remainder. */
  readonly legMarginsMinor: readonly bigint[];
}

export type PriceRule =
  | { readonly kind: 'cost_plus'; readonly marginBps: number }
  | { readonly kind: 'fixed'; readonly unitPriceMinor: bigint };

/**
 * The customer's price: cost plus a margin in basis points (rounded half up), or a fixed price
 * per unit, whose difference with the cost is the margin. Null when a fixed price is below cost.
 */
export function priceOrder(
  rule: PriceRule,
  legCostsMinor: readonly bigint[],
  quantity: number,
): PriceSplit | null {
  const costMinor = legCostsMinor.reduce((sum, cost) => sum + cost, 0n);
  const totalMinor =
    rule.kind === 'cost_plus'
      ? costMinor + applyBasisPointsHalfUp(costMinor, BigInt(rule.marginBps))
      : rule.unitPriceMinor * BigInt(quantity);
  const marginMinor = totalMinor - costMinor;
  if (marginMinor < 0n) return null;
  const weights = costMinor > 0n ? legCostsMinor : legCostsMinor.map(() => 1n);
  return { costMinor, marginMinor, totalMinor, legMarginsMinor: allocate(marginMinor, weights) };
}
