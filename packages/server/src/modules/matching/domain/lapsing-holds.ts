import TinyQueue from 'tinyqueue';

/** A hold on an offer's capacity that lapses at a given time unless it is confirmed first. */
export interface TimedHold {
  readonly reservationId: string;
  readonly offerId: string;
  readonly periodStartMs: number;
  readonly quantity: number;
  readonly expiresAtMs: number;
}

/** What the index should count as booked in an offer-period: its counter less its lapsed holds. */
export interface CountedPeriod {
  readonly offerId: string;
  readonly periodStartMs: number;
  readonly reserved: number;
}

interface Tracked extends TimedHold {
  lapsed: boolean;
}

/** An offer-period with holds being tracked: its counter's last total and what of it lapsed. */
interface PeriodState {
  readonly offerId: string;
  readonly periodStartMs: number;
  /** The counter's total as last heard, or null before the first. */
  reserved: number | null;
  lapsedQuantity: number;
  holds: number;
}

/**
 * The holds whose time is running out, so that the index stops counting a hold the moment it
 * lapses. The catalog's counter of an offer-period counts a hold until it is settled: confirmed,
 * released, or expired by the sweep that runs every minute (or by the next hold in that
 * period). The database never lets a lapsed hold stand in the way of a new one, so until the
 * sweep's event arrives the index would hide capacity that is free.
 *
 * Holds are learnt from the catalog's events and settled by them; `count` turns each counter
 * total heard into what the index should count, and `lapse` says which offer-periods count less
 * now that time has passed. Time only moves forward here: a hold once lapsed stays lapsed, as
 * it does in the catalog, which refuses to confirm it.
 */
export class LapsingHolds {
  readonly #holds = new Map<string, Tracked>();
  readonly #periods = new Map<string, PeriodState>();
  readonly #byExpiry = new TinyQueue<Tracked>([], (a, b) => a.expiresAtMs - b.expiresAtMs);
  #lapsedUpToMs = Number.NEGATIVE_INFINITY;

  /** Holds being tracked, lapsed or not. */
  get size(): number {
    return this.#holds.size;
  }

  /** Tracks a hold (again: changes nothing). One whose time ran out already counts as lapsed at once. */
  hold(hold: TimedHold): void {
    if (this.#holds.has(hold.reservationId)) return;
    const tracked: Tracked = { ...hold, lapsed: false };
    this.#holds.set(hold.reservationId, tracked);
    const key = periodKey(hold.offerId, hold.periodStartMs);
    let state = this.#periods.get(key);
    if (!state) {
      state = {
        offerId: hold.offerId,
        periodStartMs: hold.periodStartMs,
        reserved: null,
        lapsedQuantity: 0,
        holds: 0,
      };
      this.#periods.set(key, state);
    }
    state.holds++;
    if (hold.expiresAtMs <= this.#lapsedUpToMs) {
      tracked.lapsed = true;
      state.lapsedQuantity += hold.quantity;
    } else {
      this.#byExpiry.push(tracked);
    }
  }

  /** A hold was confirmed, released or expired: the counter's next total says what it left. */
  settle(reservationId: string): void {
    const tracked = this.#holds.get(reservationId);
    if (!tracked) return;
    this.#holds.delete(reservationId);
    const key = periodKey(tracked.offerId, tracked.periodStartMs);
    const state = this.#periods.get(key) as PeriodState;
    if (tracked.lapsed) state.lapsedQuantity -= tracked.quantity;
    if (--state.holds === 0) this.#periods.delete(key);
    // A settled hold left in the queue is skipped when it comes out.
  }

  /** What to count for an offer-period whose counter's total is `reserved`, remembered for `lapse`. */
  count(offerId: string, periodStartMs: number, reserved: number): number {
    const state = this.#periods.get(periodKey(offerId, periodStartMs));
    if (!state) return reserved;
    state.reserved = reserved;
    return Math.max(0, reserved - state.lapsedQuantity);
  }

  /**
   * Lapses the holds whose time ran out by `nowMs`. Returns the offer-periods that now count
   * less (those whose counter was heard), and the reservations of the holds that lapsed.
   */
  lapse(nowMs: number): { counts: CountedPeriod[]; reservationIds: string[] } {
    if (nowMs > this.#lapsedUpToMs) this.#lapsedUpToMs = nowMs;
    const changed = new Set<PeriodState>();
    const reservationIds: string[] = [];
    for (;;) {
      const next = this.#byExpiry.peek();
      if (!next || next.expiresAtMs > this.#lapsedUpToMs) break;
      this.#byExpiry.pop();
      if (this.#holds.get(next.reservationId) !== next || next.lapsed) continue;
      next.lapsed = true;
      const state = this.#periods.get(periodKey(next.offerId, next.periodStartMs)) as PeriodState;
      state.lapsedQuantity += next.quantity;
      changed.add(state);
      reservationIds.push(next.reservationId);
    }
    return { counts: countsOf(changed), reservationIds };
  }

  /**
   * Stops tracking holds that lapsed before `ms` and were never settled (the sweep's event
   * was lost): their offer-periods count them again, as the database does. Returns those.
   */
  forgetLapsedBefore(ms: number): CountedPeriod[] {
    const changed = new Set<PeriodState>();
    for (const tracked of [...this.#holds.values()]) {
      if (!tracked.lapsed || tracked.expiresAtMs >= ms) continue;
      const state = this.#periods.get(periodKey(tracked.offerId, tracked.periodStartMs)) as PeriodState;
      this.settle(tracked.reservationId);
      changed.add(state);
    }
    return countsOf(changed);
  }
}

function countsOf(states: ReadonlySet<PeriodState>): CountedPeriod[] {
  return [...states].flatMap((state) =>
    state.reserved === null
      ? []
      : [
          {
            offerId: state.offerId,
            periodStartMs: state.periodStartMs,
            reserved: Math.max(0, state.reserved - state.lapsedQuantity),
          },
        ],
  );
}

const periodKey = (offerId: string, periodStartMs: number) => `${offerId}@${periodStartMs}`;
