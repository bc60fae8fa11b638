/*
 * Partner subscriptions (access fees). A subscription starts with its plan's trial, if any,
 * which is never billed; its paid periods then follow one another from the end of the trial,
 * the billing anchor. Periods are billed in arrears: a period is charged once it has ended, so
 * a subscription cancelled at period end pays for the period it used and nothing after.
 */

export const PLAN_INTERVALS = ['month', 'year'] as const;
export type PlanInterval = (typeof PLAN_INTERVALS)[number];

export const SUBSCRIPTION_STATUSES = ['trialing', 'active', 'canceled'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];

/** The longest trial a plan may give. */
export const TRIAL_DAYS_MAX = 365;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The start of paid period `index` (0 is the first) of a subscription anchored at `anchor`.
 * Months are calendar months counted from the anchor, not added one after another, so an
 * anchor on the 31st bills on the last day of shorter months and is back on the 31st after.
 */
export function periodStartAt(anchor: Date, interval: PlanInterval, index: number): Date {
  const months = interval === 'month' ? index : index * 12;
  const year = anchor.getUTCFullYear();
  const month = anchor.getUTCMonth() + months;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  const day = Math.min(anchor.getUTCDate(), lastDay);
  return new Date(
    Date.UTC(
      year,
      month,
      day,
      anchor.getUTCHours(),
      anchor.getUTCMinutes(),
      anchor.getUTCSeconds(),
      anchor.getUTCMilliseconds(),
    ),
  );
}

/** When a trial of `trialDays` that starts at `start` ends: the billing anchor. */
export function trialEnd(start: Date, trialDays: number): Date {
  return new Date(start.getTime() + trialDays * DAY_MS);
}
