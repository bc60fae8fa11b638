import type { Selectable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { AllocationId, CustomerId, OfferId, PartnerId, ReservationId } from '../../../kernel/ids.js';
import type { MatchingSettings } from '../domain/settings.js';
import type { AllocationsTable, MatchingSettingsTable } from './tables.js';

/** A capability's settings as stored, with when and by whom they were last set. */
export interface StoredSettings {
  readonly capability: string;
  readonly settings: MatchingSettings;
  readonly updatedAt: Date;
  readonly updatedBy: string | null;
}

/** A piece of demand given to an offer, with the capacity reserved for it. */
export interface Allocation {
  readonly id: AllocationId;
  readonly capability: string;
  readonly region: string;
  readonly partnerId: PartnerId;
  readonly offerId: OfferId;
  readonly reservationId: ReservationId;
  readonly quantity: bigint;
  readonly customerId: CustomerId | null;
  readonly reference: string | null;
  readonly rank: number;
  readonly score: number;
  readonly allocatedAt: Date;
  readonly skipped: readonly { readonly offerId: string; readonly code: string }[];
}

export const toStoredSettings = (row: Selectable<MatchingSettingsTable>): StoredSettings => ({
  capability: row.capability,
  settings: {
    weights: {
      price: row.weight_price,
      quality: row.weight_quality,
      reliability: row.weight_reliability,
      leadTime: row.weight_lead_time,
      affinity: row.weight_affinity,
    },
    exposureCapShare: row.exposure_cap_share,
    exposureWindowDays: row.exposure_window_days,
    exposureMinAllocations: row.exposure_min_allocations,
    newEntrantBoost: row.new_entrant_boost,
    newEntrantDays: row.new_entrant_days,
    maxPerPartner: row.max_per_partner,
  },
  updatedAt: row.updated_at,
  updatedBy: row.updated_by,
});

export const toAllocation = (row: Selectable<AllocationsTable>): Allocation => ({
  id: row.id as AllocationId,
  capability: row.capability,
  region: row.region,
  partnerId: row.partner_id as PartnerId,
  offerId: row.offer_id as OfferId,
  reservationId: row.reservation_id as ReservationId,
  quantity: row.quantity,
  customerId: row.customer_id as CustomerId | null,
  reference: row.reference,
  rank: row.rank,
  score: row.score,
  allocatedAt: row.allocated_at,
  skipped: row.skipped.map((entry) => ({ offerId: entry.offer_id, code: entry.code })),
});

export async function findSettings(db: Executor, capability: string): Promise<StoredSettings | undefined> {
  const row = await db
    .selectFrom('matching_settings')
    .selectAll()
    .where('capability', '=', capability)
    .executeTakeFirst();
  return row ? toStoredSettings(row) : undefined;
}

export async function listSettings(db: Executor): Promise<StoredSettings[]> {
  const rows = await db.selectFrom('matching_settings').selectAll().orderBy('capability').execute();
  return rows.map(toStoredSettings);
}

/** Replaces a capability's settings. */
export async function saveSettings(
  db: Executor,
  stored: { capability: string; settings: MatchingSettings; updatedAt: Date; updatedBy: string | null },
): Promise<StoredSettings> {
  const { settings } = stored;
  const values = {
    weight_price: settings.weights.price,
    weight_quality: settings.weights.quality,
    weight_reliability: settings.weights.reliability,
    weight_lead_time: settings.weights.leadTime,
    weight_affinity: settings.weights.affinity,
    exposure_cap_share: settings.exposureCapShare,
    exposure_window_days: settings.exposureWindowDays,
    exposure_min_allocations: settings.exposureMinAllocations,
    new_entrant_boost: settings.newEntrantBoost,
    new_entrant_days: settings.newEntrantDays,
    max_per_partner: settings.maxPerPartner,
    updated_at: stored.updatedAt,
    updated_by: stored.updatedBy,
  };
  const row = await db
    .insertInto('matching_settings')
    .values({ capability: stored.capability, ...values })
    .onConflict((oc) => oc.column('capability').doUpdateSet(values))
    .returningAll()
    .executeTakeFirstOrThrow();
  return toStoredSettings(row);
}

/** Writes several allocations in one statement. */
export async function insertAllocations(
  db: Executor,
  allocations: readonly Allocation[],
  allocatedBy: string | null,
): Promise<void> {
  if (allocations.length === 0) return;
  await db
    .insertInto('allocations')
    .values(
      allocations.map((allocation) => ({
        id: allocation.id,
        capability: allocation.capability,
        region: allocation.region,
        partner_id: allocation.partnerId,
        offer_id: allocation.offerId,
        reservation_id: allocation.reservationId,
        quantity: allocation.quantity,
        customer_id: allocation.customerId,
        reference: allocation.reference,
        rank: allocation.rank,
        score: allocation.score,
        allocated_at: allocation.allocatedAt,
        allocated_by: allocatedBy,
        skipped: JSON.stringify(
          allocation.skipped.map((entry) => ({ offer_id: entry.offerId, code: entry.code })),
        ),
      })),
    )
    .execute();
}

/** Allocations made since `from`, oldest first, a page at a time (by their insertion order). */
export async function listAllocationsSince(
  db: Executor,
  from: Date,
  page: { afterSeq: bigint; limit: number },
): Promise<(Allocation & { seq: bigint })[]> {
  const rows = await db
    .selectFrom('allocations')
    .selectAll()
    .where('allocated_at', '>=', from)
    .where('seq', '>', page.afterSeq)
    .orderBy('seq')
    .limit(page.limit)
    .execute();
  return rows.map((row) => ({ ...toAllocation(row), seq: row.seq }));
}
