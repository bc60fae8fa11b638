import { unreachable } from '../../../kernel/assert.js';

/** The length of time one offer's capacity is counted over. */
export const CAPACITY_PERIODS = ['day', 'week', 'month'] as const;
export type CapacityPeriod = (typeof CAPACITY_PERIODS)[number];

export const RESERVATION_STATUSES = ['held', 'confirmed', 'released', 'expired'] as const;
export type ReservationStatus = (typeof RESERVATION_STATUSES)[number];

/** Statuses whose quantity counts against the offer-period's capacity. */
export const LIVE_RESERVATION_STATUSES: readonly ReservationStatus[] = ['held', 'confirmed'];

/** Longest a hold may last before it expires by itself: one week. */
export const HOLD_MINUTES_MAX = 7 * 24 * 60;

const DAY_MS = 24 * 60 * 60 * 1000;

/** Pure: the start (UTC) of the capacity period containing `at` (day: 00:00; week: Monday 00:00; month: the 1st). */
export function periodStart(period: CapacityPeriod, at: Date): Date {
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  const day = at.getUTCDate();
  switch (period) {
    case 'day':
      return new Date(Date.UTC(year, month, day));
    case 'week': {
      // getUTCDay counts from Sunday; weeks start on Monday (ISO 8601).
      const daysSinceMonday = (at.getUTCDay() + 6) % 7;
      return new Date(Date.UTC(year, month, day) - daysSinceMonday * DAY_MS);
    }
    case 'month':
      return new Date(Date.UTC(year, month, 1));
    default:
      return unreachable(period);
  }
}

/** Pure: the start of the period after the one that starts at `start`. */
export function periodEnd(period: CapacityPeriod, start: Date): Date {
  switch (period) {
    case 'day':
      return new Date(start.getTime() + DAY_MS);
    case 'week':
      return new Date(start.getTime() + 7 * DAY_MS);
    case 'month':
      return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
    default:
      return unreachable(period);
  }
}

/** Whether a hold has run out at `now`: a hold lasts until, not including, its expiry. */
export function holdHasExpired(expiresAt: Date | null, now: Date): boolean {
  return expiresAt !== null && expiresAt.getTime() <= now.getTime();
}
