import { type Selectable, sql } from 'kysely';
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
