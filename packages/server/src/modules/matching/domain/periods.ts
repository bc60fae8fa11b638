/**
 * Capacity periods as plain arithmetic on epoch milliseconds, so that the index can find the
 * period of a piece of work without allocating a `Date` per candidate. They follow the
 * catalog's `periodStart`: a day starts at 00:00 UTC, a week on Monday 00:00 UTC, a month on
 * the 1st at 00:00 UTC.
 */
export type CapacityPeriod = 'day' | 'week' | 'month';

/** Periods as small integers, the way the index stores them in a typed array. */
export const PERIOD_CODES: Readonly<Record<CapacityPeriod, number>> = { day: 0, week: 1, month: 2 };
export const PERIOD_NAMES: readonly CapacityPeriod[] = ['day', 'week', 'month'];

export const HOUR_MS = 60 * 60 * 1000;
export const DAY_MS = 24 * HOUR_MS;
/** 1970-01-05, the first Monday after the epoch, as days since the epoch: weeks count from it. */
const FIRST_MONDAY_DAY = 4;

/** The start (UTC, epoch ms) of the capacity period, given by its code, that contains `atMs`. */
export function periodStartMs(periodCode: number, atMs: number): number {
  return periodStartDay(periodCode, Math.floor(atMs / DAY_MS)) * DAY_MS;
}

/** The same in whole days since the epoch. */
export function periodStartDay(periodCode: number, day: number): number {
  if (periodCode === 0) return day;
  if (periodCode === 1) return day - ((((day - FIRST_MONDAY_DAY) % 7) + 7) % 7);
  return day - (dayOfMonth(day) - 1);
}

/**
 * The day of the month (1–31) of a day counted from the epoch, in the proleptic Gregorian
 * calendar, without a `Date` (H. Hinnant's `civil_from_days`: eras of 400 years starting on
 * 1 March, so that the leap day falls at the end of a year).
 */
function dayOfMonth(day: number): number {
  const z = day + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra -
      Math.floor(dayOfEra / 1_460) +
      Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  return dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
}
