import { applyBasisPointsHalfUp } from '../../../kernel/money.js';

/*
 * The pure rules of payouts: when a partner is due, and how one run splits what a partner is
 * owed between what it owes back (netting), the rolling reserve and the payout itself.
 */

export const PAYOUT_SCHEDULES = ['daily', 'weekly', 'manual'] as const;
export type PayoutSchedule = (typeof PAYOUT_SCHEDULES)[number];

/** Weekdays in ISO order: Monday is 1, Sunday is 7. */
export const WEEKDAYS = [
  'monday',
  'tuesday',
  'wednesday',
  'thursday',
  'friday',
  'saturday',
  'sunday',
] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export const PAYOUT_STATUSES = ['pending', 'sent', 'paid', 'failed', 'returned'] as const;
/**
 * `pending`: the money left the payable and is in transit, the provider has not yet confirmed
 * it received the payout; `sent`: the provider accepted it and will report the outcome; `paid`:
 * the provider paid it; `failed`: the provider did not, and the money went back to the payable;
 * `returned`: paid, then sent back by the partner's bank (a closed account found out days
 * later), and the money went back to the payable. `failed` and `returned` are final; `paid` is
 * final but for a return.
 */
export type PayoutStatus = (typeof PAYOUT_STATUSES)[number];
/** Statuses after which no callback changes a payout, but a bank's return of a paid one. */
export const FINAL_PAYOUT_STATUSES: readonly PayoutStatus[] = ['paid', 'failed', 'returned'];

/** Why a run paid a partner nothing. */
export const SKIP_REASONS = [
  'no_settings',
  'not_due',
  'owes_receivable',
  'below_minimum',
  'no_destination',
  // The last payout to the destination failed or came back because the account cannot be paid.
  'destination_failed',
  'destination_held',
  // The run failed on this partner (logged): nothing of it moved, and the next run tries again.
  'failed',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export const BPS_MAX = 10_000;
export const RESERVE_DAYS_MAX = 365;
export const DESTINATION_LENGTH_MAX = 200;
/** Partners one explicit run may name. */
export const RUN_PARTNERS_MAX = 500;
/**
 * How long a partner's payouts wait after its payout destination changed. The partner is told
 * of every change, and this is its time to object: a stolen key, or an operator acting on its
 * behalf, could otherwise send its money elsewhere at the next run.
 */
export const DESTINATION_HOLD_MS = 72 * 60 * 60 * 1000;

/**
 * Until when payouts wait once a destination is set: any change holds them for
 * `DESTINATION_HOLD_MS`, its removal included, and so does a destination set after a removal,
 * however long ago that was. Only the partner's first destination, or the same one again,
 * changes nothing.
 */
export function destinationHeldUntil(
  current: {
    readonly destination: string | null;
    readonly destinationHeldUntil: Date | null;
    /** Whether a destination was ever set, the present one included. */
    readonly hadDestination: boolean;
  },
  next: string | null,
  now: Date,
): Date | null {
  if (next === current.destination || !current.hadDestination) return current.destinationHeldUntil;
  return new Date(now.getTime() + DESTINATION_HOLD_MS);
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The UTC calendar date of an instant, `YYYY-MM-DD`: schedules count days in UTC. */
export const utcDate = (at: Date): string => at.toISOString().slice(0, 10);

/** The ISO weekday of an instant in UTC. */
export function weekdayOf(at: Date): Weekday {
  return WEEKDAYS[(at.getUTCDay() + 6) % 7] as Weekday;
}

export const addDays = (at: Date, days: number): Date => new Date(at.getTime() + days * DAY_MS);

/**
 * Whether a scheduled run at `now` pays this partner: daily partners once per UTC day, weekly
 * partners once a week on their weekday, manual partners never (an operator names them). A
 * weekly partner whose weekday passed without a run (the job was down that day) is paid by the
 * next run, and then again on its weekday.
 */
export function isDue(
  settings: {
    readonly schedule: PayoutSchedule;
    readonly weekday: Weekday | null;
    readonly lastRunOn: string | null;
  },
  now: Date,
): boolean {
  if (settings.schedule === 'manual') return false;
  if (settings.lastRunOn !== null && settings.lastRunOn >= utcDate(now)) return false;
  if (settings.schedule === 'daily') return true;
  if (settings.weekday === null) return false;
  const since = (WEEKDAYS.indexOf(weekdayOf(now)) - WEEKDAYS.indexOf(settings.weekday) + 7) % 7;
  // Never run yet: its first weekday starts it. Otherwise: not run since its latest weekday.
  if (settings.lastRunOn === null) return since === 0;
  return settings.lastRunOn < utcDate(addDays(now, -since));
}

export interface PayoutPlanInput {
  /** The partner payable after matured reserve holds were released into it. */
  readonly payableMinor: bigint;
  readonly receivableMinor: bigint;
  /** Earnings credited to the payable since the previous run: the base of the reserve. */
  readonly newEarningsMinor: bigint;
  readonly reserveBps: number;
  readonly reserveDays: number;
  readonly minimumMinor: bigint;
  readonly hasDestination: boolean;
  /** A payout to the destination failed for a reason that says it cannot be paid. */
  readonly destinationFailed: boolean;
  /** The destination changed too recently to be paid to (`destinationHeldUntil`). */
  readonly destinationHeld: boolean;
}

export interface PayoutPlan {
  /** Moved from the payable to settle the receivable. */
  readonly nettedMinor: bigint;
  /** Moved from the payable to the reserve until its release date. */
  readonly reservedMinor: bigint;
  /** Paid out; zero when `skipped` says why not. */
  readonly payoutMinor: bigint;
  readonly skipped: SkipReason | null;
}

/**
 * Splits a partner's payable: first what it owes is settled from it (netting), then the reserve
 * share of its new earnings is held back (never more than is left), and what remains is paid if
 * nothing is still owed and it reaches the minimum. Every part is non-negative and they never
 * exceed the payable.
 */
export function planPayout(input: PayoutPlanInput): PayoutPlan {
  const payable = input.payableMinor > 0n ? input.payableMinor : 0n;
  const receivable = input.receivableMinor > 0n ? input.receivableMinor : 0n;
  const nettedMinor = payable < receivable ? payable : receivable;
  let left = payable - nettedMinor;
  const share =
    input.reserveDays > 0 && input.reserveBps > 0 && input.newEarningsMinor > 0n
      ? applyBasisPointsHalfUp(input.newEarningsMinor, BigInt(input.reserveBps))
      : 0n;
  const reservedMinor = share < left ? share : left;
  left -= reservedMinor;
  let skipped: SkipReason | null = null;
  if (receivable > nettedMinor) skipped = 'owes_receivable';
  else if (left <= 0n || left < input.minimumMinor) skipped = 'below_minimum';
  else if (!input.hasDestination) skipped = 'no_destination';
  else if (input.destinationFailed) skipped = 'destination_failed';
  else if (input.destinationHeld) skipped = 'destination_held';
  return { nettedMinor, reservedMinor, payoutMinor: skipped ? 0n : left, skipped };
}
