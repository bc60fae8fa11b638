import { type Selectable, sql } from 'kysely';
import { assert } from '../../../kernel/assert.js';
import type { Executor, Tx } from '../../../kernel/database/database.js';
import type { FieldError } from '../../../kernel/errors.js';
import type { OfferId, PartnerId, ReservationId } from '../../../kernel/ids.js';
import { type Currency, type Money, money } from '../../../kernel/money.js';
import type { CapacityPeriod, ReservationStatus } from '../domain/capacity.js';
import type { OfferStatus } from '../domain/offer.js';
import type { OffersTable, ReservationsTable } from './tables.js';

/** A partner's offer to provide a capability, on its terms. */
export interface Offer {
  readonly id: OfferId;
  readonly partnerId: PartnerId;
  readonly capabilityKey: string;
  readonly capabilityVersion: number;
  readonly externalRef: string | null;
  readonly attributes: Record<string, unknown>;
  readonly unitPrice: Money;
  readonly minQuantity: bigint;
  readonly maxQuantity: bigint;
  readonly leadTimeHours: number;
  readonly regions: readonly string[];
  readonly capacityPerPeriod: bigint;
  readonly capacityPeriod: CapacityPeriod;
  readonly status: OfferStatus;
  /** Why the offer does not conform to its capability's current version; empty when it does. */
  readonly complianceErrors: readonly FieldError[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** A quantity of an offer's capacity in one period, held until it expires, or confirmed. */
export interface Reservation {
  readonly id: ReservationId;
  readonly offerId: OfferId;
  readonly partnerId: PartnerId;
  readonly periodStart: Date;
  readonly quantity: bigint;
  readonly status: ReservationStatus;
  readonly expiresAt: Date | null;
  readonly reference: string | null;
  readonly createdAt: Date;
}

export const toOffer = (row: Selectable<OffersTable>): Offer => ({
  id: row.id as OfferId,
  partnerId: row.partner_id as PartnerId,
  capabilityKey: row.capability_key,
  capabilityVersion: row.capability_version,
  externalRef: row.external_ref,
  attributes: row.attributes,
  unitPrice: money(row.unit_price_minor, row.currency as Currency),
  minQuantity: row.min_quantity,
  maxQuantity: row.max_quantity,
  leadTimeHours: row.lead_time_hours,
  regions: row.regions,
  capacityPerPeriod: row.capacity_per_period,
  capacityPeriod: row.capacity_period,
  status: row.status,
  complianceErrors: row.compliance_errors,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const toReservation = (row: Selectable<ReservationsTable>): Reservation => ({
  id: row.id as ReservationId,
  offerId: row.offer_id as OfferId,
  partnerId: row.partner_id as PartnerId,
  periodStart: row.period_start,
  quantity: row.quantity,
  status: row.status,
  expiresAt: row.expires_at,
  reference: row.reference,
  createdAt: row.created_at,
});

/**
 * Loads an offer, only among `partnerId`'s offers when given, so that a scoped caller never
 * locks another partner's row. `share` keeps its terms (capacity, status) fixed until the
 * transaction ends while letting concurrent reservations of it proceed; `update` is for
 * changing it.
 */
export async function findOffer(
  db: Executor,
  id: OfferId,
  lock: 'none' | 'share' | 'update' = 'none',
  partnerId: PartnerId | null = null,
): Promise<Offer | undefined> {
  let query = db.selectFrom('offers').selectAll().where('id', '=', id);
  if (partnerId !== null) query = query.where('partner_id', '=', partnerId);
  if (lock === 'share') query = query.forShare();
  if (lock === 'update') query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toOffer(row) : undefined;
}

export async function findOfferByExternalRef(
  db: Executor,
  partnerId: PartnerId,
  externalRef: string,
): Promise<Offer | undefined> {
  const row = await db
    .selectFrom('offers')
    .selectAll()
    .where('partner_id', '=', partnerId)
    .where('external_ref', '=', externalRef)
    .forUpdate()
    .executeTakeFirst();
  return row ? toOffer(row) : undefined;
}

export async function findReservation(db: Executor, id: ReservationId): Promise<Reservation | undefined> {
  const row = await db.selectFrom('reservations').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toReservation(row) : undefined;
}

/** The held and confirmed total of one offer-period, 0 when nothing was ever reserved in it. */
export async function reservedIn(db: Executor, offerId: OfferId, start: Date): Promise<bigint> {
  const row = await db
    .selectFrom('capacity_counters')
    .select('reserved')
    .where('offer_id', '=', offerId)
    .where('period_start', '=', start)
    .executeTakeFirst();
  return row?.reserved ?? 0n;
}

/**
 * Changes an offer-period's counter by `delta` and returns the new total. The counter exists
 * whenever a reservation of the period does, since reserving creates it.
 */
export async function adjustCounter(tx: Tx, offerId: string, start: Date, delta: bigint): Promise<bigint> {
  const row = await tx
    .updateTable('capacity_counters')
    .set({ reserved: sql<bigint>`reserved + ${delta}::int8` })
    .where('offer_id', '=', offerId)
    .where('period_start', '=', start)
    .returning('reserved')
    .executeTakeFirstOrThrow();
  return row.reserved;
}

/** One hold of a batch as `holdAll` writes it. */
export interface HoldRow {
  readonly id: string;
  readonly offerId: string;
  readonly quantity: bigint;
  /** The period to hold in if the offer counts capacity per day, week or month; null when that period is over. */
  readonly periodStarts: Readonly<Record<CapacityPeriod, Date | null>>;
  readonly expiresAt: Date;
  readonly reference: string | null;
}

/** What `holdAll` found and did, for the service to judge each hold and announce it. */
export interface HoldAllResult {
  /** The offers named, as they were read under a share lock. */
  readonly offers: ReadonlyMap<
    string,
    {
      readonly partnerId: PartnerId;
      readonly status: OfferStatus;
      readonly minQuantity: bigint;
      readonly maxQuantity: bigint;
      readonly capacityPerPeriod: bigint;
      readonly capacityPeriod: CapacityPeriod;
    }
  >;
  /** The counters that took their holds, by `counterKey`, with their new totals. */
  readonly counted: ReadonlyMap<string, bigint>;
  /** Lapsed holds of those offer-periods, expired on the way. */
  readonly lapsed: readonly Omit<Reservation, 'status' | 'expiresAt' | 'reference' | 'createdAt'>[];
  /** Whether the reservations were written: only when every hold was counted. */
  readonly written: boolean;
}

/** The key of an offer-period's counter in `HoldAllResult.counted`. */
export const counterKey = (offerId: string, periodStart: Date): string =>
  `${offerId}@${periodStart.getTime()}`;

/**
 * Holds capacity for every row in one statement, all or nothing: the offers are share-locked
 * (in id order), lapsed holds of the offer-periods concerned expire (locked in id order) and
 * give their quantity back, each counter grows by what its rows ask for only if that stays
 * within the offer's capacity (a conditional upsert, counters in offer-period order), and the
 * reservations are written only if every counter took its rows and every row passed the offer's
 * checks (active, quantity within range, period not over).
 *
 * When not every row passed, counters that did grow keep their growth and lapsed holds stay
 * expired: the caller gives the growth back (`adjustCounters`) and announces the expiries.
 */
export async function holdAll(tx: Tx, rows: readonly HoldRow[], now: Date): Promise<HoldAllResult> {
  const column = <T>(pick: (row: HoldRow) => T) => rows.map(pick);
  const { rows: result } = await sql<{
    offers: OfferJsonRow[] | null;
    counted: { offer_id: string; period_start: string; reserved: string }[] | null;
    lapsed:
      | { id: string; offer_id: string; partner_id: string; period_start: string; quantity: string }[]
      | null;
    written: number;
  }>`
    with req as (
      select * from unnest(
        ${column((row) => row.id)}::text[],
        ${column((row) => row.offerId)}::text[],
        ${column((row) => row.quantity.toString())}::int8[],
        ${column((row) => row.periodStarts.day)}::timestamptz[],
        ${column((row) => row.periodStarts.week)}::timestamptz[],
        ${column((row) => row.periodStarts.month)}::timestamptz[],
        ${column((row) => row.expiresAt)}::timestamptz[],
        ${column((row) => row.reference)}::text[]
      ) as r(id, offer_id, quantity, day_start, week_start, month_start, expires_at, reference)
    ),
    o as (
      select id, partner_id, status, min_quantity, max_quantity, capacity_per_period, capacity_period
      from offers where id in (select offer_id from req) order by id for share
    ),
    ok as (
      select req.id, req.offer_id, o.partner_id, req.quantity, req.expires_at, req.reference,
        o.capacity_per_period,
        case o.capacity_period
          when 'day' then req.day_start
          when 'week' then req.week_start
          else req.month_start
        end as period_start
      from req join o on o.id = req.offer_id
      where o.status = 'active' and req.quantity between o.min_quantity and o.max_quantity
    ),
    want as (
      select offer_id, period_start, sum(quantity)::int8 as quantity, min(capacity_per_period) as capacity
      from ok where period_start is not null
      group by offer_id, period_start
    ),
    due as (
      select r.id from reservations r
      join want w on w.offer_id = r.offer_id and w.period_start = r.period_start
      where r.status = 'held' and r.expires_at <= ${now}
      order by r.id
      for update of r
    ),
    lapsed as (
      update reservations set status = 'expired', settled_at = ${now}
      where id in (select id from due) and status = 'held'
      returning id, offer_id, partner_id, period_start, quantity
    ),
    freed as (
      select offer_id, period_start, sum(quantity)::int8 as quantity from lapsed group by offer_id, period_start
    ),
    counted as (
      insert into capacity_counters as c (offer_id, period_start, reserved)
      -- Joined with what expired so that the expiries are done before the first counter is locked.
      select w.offer_id, w.period_start, w.quantity
      from want w left join freed f on f.offer_id = w.offer_id and f.period_start = w.period_start
      where w.quantity <= w.capacity
      order by w.offer_id, w.period_start
      on conflict (offer_id, period_start) do update
        set reserved = c.reserved + excluded.reserved - coalesce(
          (select f.quantity from freed f where f.offer_id = excluded.offer_id and f.period_start = excluded.period_start), 0)
        where c.reserved + excluded.reserved - coalesce(
          (select f.quantity from freed f where f.offer_id = excluded.offer_id and f.period_start = excluded.period_start), 0)
          <= (select w.capacity from want w where w.offer_id = excluded.offer_id and w.period_start = excluded.period_start)
      returning c.offer_id, c.period_start, c.reserved
    ),
    complete as (
      select (select count(*) from counted) = (select count(*) from want)
        and (select count(*) from ok where period_start is not null) = ${rows.length} as complete
    ),
    written as (
      insert into reservations
        (id, offer_id, partner_id, period_start, quantity, status, expires_at, reference, created_at, settled_at)
      select id, offer_id, partner_id, period_start, quantity, 'held', expires_at, reference, ${now}, null
      from ok where (select complete from complete)
      returning id
    )
    select
      (select json_agg(json_build_object(
        'id', id, 'partner_id', partner_id, 'status', status, 'min_quantity', min_quantity::text,
        'max_quantity', max_quantity::text, 'capacity_per_period', capacity_per_period::text,
        'capacity_period', capacity_period)) from o) as offers,
      (select json_agg(json_build_object(
        'offer_id', offer_id, 'period_start', period_start, 'reserved', reserved::text)) from counted) as counted,
      (select json_agg(json_build_object(
        'id', id, 'offer_id', offer_id, 'partner_id', partner_id, 'period_start', period_start,
        'quantity', quantity::text)) from lapsed) as lapsed,
      (select count(*) from written)::int4 as written
  `.execute(tx);
  const row = result[0];
  assert(row !== undefined, 'holding capacity answers one row');
  return {
    offers: new Map(
      (row.offers ?? []).map((offer) => [
        offer.id,
        {
          partnerId: offer.partner_id as PartnerId,
          status: offer.status,
          minQuantity: BigInt(offer.min_quantity),
          maxQuantity: BigInt(offer.max_quantity),
          capacityPerPeriod: BigInt(offer.capacity_per_period),
          capacityPeriod: offer.capacity_period,
        },
      ]),
    ),
    counted: new Map(
      (row.counted ?? []).map((counter) => [
        counterKey(counter.offer_id, new Date(counter.period_start)),
        BigInt(counter.reserved),
      ]),
    ),
    lapsed: (row.lapsed ?? [])
      .map((lapsed) => ({
        id: lapsed.id as ReservationId,
        offerId: lapsed.offer_id as OfferId,
        partnerId: lapsed.partner_id as PartnerId,
        periodStart: new Date(lapsed.period_start),
        quantity: BigInt(lapsed.quantity),
      }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    written: row.written === rows.length,
  };
}

interface OfferJsonRow {
  readonly id: string;
  readonly partner_id: string;
  readonly status: OfferStatus;
  readonly min_quantity: string;
  readonly max_quantity: string;
  readonly capacity_per_period: string;
  readonly capacity_period: CapacityPeriod;
}

/**
 * Changes several offer-periods' counters at once by their deltas (in offer-period order, as
 * every writer of several counters locks them) and returns their new totals by `counterKey`.
 */
export async function adjustCounters(
  tx: Tx,
  deltas: readonly { offerId: string; periodStart: Date; delta: bigint }[],
): Promise<Map<string, bigint>> {
  if (deltas.length === 0) return new Map();
  const ordered = [...deltas].sort((a, b) =>
    a.offerId !== b.offerId
      ? a.offerId < b.offerId
        ? -1
        : 1
      : a.periodStart.getTime() - b.periodStart.getTime(),
  );
  const { rows } = await sql<{ offer_id: string; period_start: Date; reserved: bigint }>`
    update capacity_counters as c set reserved = c.reserved + d.delta
    from (
      select * from unnest(
        ${ordered.map((entry) => entry.offerId)}::text[],
        ${ordered.map((entry) => entry.periodStart)}::timestamptz[],
        ${ordered.map((entry) => entry.delta.toString())}::int8[]
      ) as d(offer_id, period_start, delta)
      order by offer_id, period_start
    ) as d
    where c.offer_id = d.offer_id and c.period_start = d.period_start
    returning c.offer_id, c.period_start, c.reserved
  `.execute(tx);
  return new Map(rows.map((row) => [counterKey(row.offer_id, row.period_start), row.reserved]));
}

/**
 * Confirms the holds among `ids` that are held and not expired at `now` (only `partnerId`'s
 * when given), in one statement; returns the confirmed reservations with their counter's total.
 */
export async function confirmHeld(
  tx: Tx,
  ids: readonly string[],
  now: Date,
  partnerId: PartnerId | null,
): Promise<{ reservation: Reservation; reserved: bigint }[]> {
  if (ids.length === 0) return [];
  let query = tx
    .updateTable('reservations as r')
    .set({ status: 'confirmed', expires_at: null, settled_at: now })
    .where('r.id', 'in', [...ids])
    .where('r.status', '=', 'held')
    .where('r.expires_at', '>', now);
  if (partnerId !== null) query = query.where('r.partner_id', '=', partnerId);
  const rows = await query
    .returningAll()
    .returning((eb) =>
      eb
        .selectFrom('capacity_counters as c')
        .select('c.reserved')
        .whereRef('c.offer_id', '=', 'r.offer_id')
        .whereRef('c.period_start', '=', 'r.period_start')
        .as('counter_reserved'),
    )
    .execute();
  return rows.map((row) => ({ reservation: toReservation(row), reserved: row.counter_reserved ?? 0n }));
}

/** SQLSTATE of a unique violation. */
const UNIQUE_VIOLATION = '23505';

/**
 * Runs `work` in a savepoint and answers `onUniqueViolation()` when it breaks a unique
 * constraint: the statement's failure is undone, and the transaction goes on.
 */
export async function catchingUniqueViolation<T>(
  tx: Tx,
  work: () => Promise<T>,
  onUniqueViolation: () => T,
): Promise<T> {
  await sql`savepoint unique_check`.execute(tx);
  try {
    const result = await work();
    await sql`release savepoint unique_check`.execute(tx);
    return result;
  } catch (error) {
    // Undo the failed statement either way, so the transaction stays usable for the caller.
    await sql`rollback to savepoint unique_check`.execute(tx);
    await sql`release savepoint unique_check`.execute(tx);
    if ((error as { code?: unknown }).code !== UNIQUE_VIOLATION) throw error;
    return onUniqueViolation();
  }
}
