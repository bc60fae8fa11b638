import type { Selectable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { PartnerId, PayoutBatchId, PayoutId } from '../../../kernel/ids.js';
import type { PageRequest } from '../../../kernel/pagination.js';
import type { PayoutSchedule, PayoutStatus, Weekday } from '../domain/payout.js';
import type { PayoutBatchesTable, PayoutSettingsTable, PayoutsTable } from './tables.js';

/** How and when a partner is paid. */
export interface PayoutSettings {
  readonly partnerId: PartnerId;
  readonly schedule: PayoutSchedule;
  readonly weekday: Weekday | null;
  readonly minimumMinor: bigint;
  readonly currency: string;
  readonly destination: string | null;
  /** Payouts wait until then after the destination changed (`destinationHeldUntil`). */
  readonly destinationHeldUntil: Date | null;
  /** Whether a destination was ever set, the present one included. */
  readonly hadDestination: boolean;
  /**
   * A payout to the destination failed, or came back, for a reason that says the account cannot
   * be paid: no payout goes there until a destination is set again (the same one, once fixed).
   */
  readonly destinationFailure: { readonly code: string; readonly at: Date } | null;
  readonly reserveBps: number;
  readonly reserveDays: number;
  readonly lastRunOn: string | null;
  readonly earningsCursor: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** Money sent to a partner's destination through the provider. */
export interface Payout {
  readonly id: PayoutId;
  readonly batchId: PayoutBatchId;
  readonly partnerId: PartnerId;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly destination: string;
  readonly status: PayoutStatus;
  readonly failureCode: string | null;
  readonly providerId: string | null;
  readonly attempts: number;
  /** What the same run settled of the partner's receivable before paying. */
  readonly nettedMinor: bigint;
  /** What the same run held back in the partner's reserve. */
  readonly reservedMinor: bigint;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly settledAt: Date | null;
  /** When the partner's bank sent it back after the provider paid it (status `returned`). */
  readonly returnedAt: Date | null;
}

/** One payout run. */
export interface PayoutBatch {
  readonly id: PayoutBatchId;
  readonly createdAt: Date;
  readonly actor: { readonly kind: string; readonly id: string | null };
  readonly partnerIds: readonly PartnerId[] | null;
  readonly includeManual: boolean;
  readonly payoutCount: number;
}

export const toSettings = (row: Selectable<PayoutSettingsTable>): PayoutSettings => ({
  partnerId: row.partner_id as PartnerId,
  schedule: row.schedule,
  weekday: row.weekday,
  minimumMinor: row.minimum_minor,
  currency: row.currency,
  destination: row.destination,
  destinationHeldUntil: row.destination_held_until,
  hadDestination: row.had_destination,
  destinationFailure:
    row.destination_failure_code !== null && row.destination_failed_at !== null
      ? { code: row.destination_failure_code, at: row.destination_failed_at }
      : null,
  reserveBps: row.reserve_bps,
  reserveDays: row.reserve_days,
  lastRunOn: row.last_run_on,
  earningsCursor: row.earnings_cursor,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const toPayout = (row: Selectable<PayoutsTable>): Payout => ({
  id: row.id as PayoutId,
  batchId: row.batch_id as PayoutBatchId,
  partnerId: row.partner_id as PartnerId,
  amountMinor: row.amount_minor,
  currency: row.currency,
  destination: row.destination,
  status: row.status,
  failureCode: row.failure_code,
  providerId: row.provider_id,
  attempts: row.attempts,
  nettedMinor: row.netted_minor,
  reservedMinor: row.reserved_minor,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  settledAt: row.settled_at,
  returnedAt: row.returned_at,
});

export const toBatch = (row: Selectable<PayoutBatchesTable>): PayoutBatch => ({
  id: row.id as PayoutBatchId,
  createdAt: row.created_at,
  actor: { kind: row.actor_kind, id: row.actor_id },
  partnerIds: row.partner_ids as PartnerId[] | null,
  includeManual: row.include_manual,
  payoutCount: row.payout_count,
});

export async function findSettings(
  db: Executor,
  partnerId: string,
  forUpdate = false,
): Promise<PayoutSettings | undefined> {
  let query = db.selectFrom('payout_settings').selectAll().where('partner_id', '=', partnerId);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toSettings(row) : undefined;
}

export async function findPayout(db: Executor, id: string, forUpdate = false): Promise<Payout | undefined> {
  let query = db.selectFrom('payouts').selectAll().where('id', '=', id);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toPayout(row) : undefined;
}

export interface PayoutFilter extends PageRequest {
  readonly partnerId?: string | undefined;
  readonly batchId?: string | undefined;
  readonly status?: PayoutStatus | undefined;
}

/** Payouts newest first; `after` is the id of the last payout already read. */
export async function listPayouts(db: Executor, filter: PayoutFilter): Promise<Payout[]> {
  let query = db.selectFrom('payouts').selectAll();
  if (filter.partnerId !== undefined) query = query.where('partner_id', '=', filter.partnerId);
  if (filter.batchId !== undefined) query = query.where('batch_id', '=', filter.batchId);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.after !== undefined) query = query.where('id', '<', filter.after);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  return rows.map(toPayout);
}

export async function listBatches(db: Executor, page: PageRequest): Promise<PayoutBatch[]> {
  let query = db.selectFrom('payout_batches').selectAll();
  if (page.after !== undefined) query = query.where('id', '<', page.after);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(page.limit + 1)
    .execute();
  return rows.map(toBatch);
}

/** Payouts the provider has not settled yet, oldest first. */
export async function unsettledPayoutIds(
  db: Executor,
  limit: number,
  createdBefore: Date,
  after?: string,
): Promise<PayoutId[]> {
  let select = db
    .selectFrom('payouts')
    .select('id')
    .where('status', 'in', ['pending', 'sent'])
    .where('created_at', '<=', createdBefore);
  if (after !== undefined) select = select.where('id', '>', after);
  const rows = await select.orderBy('id').limit(limit).execute();
  return rows.map((row) => row.id as PayoutId);
}

/** Payouts changed at or after `since`, by id after `after`, for reconciliation. */
export async function payoutsChangedSince(
  db: Executor,
  since: Date,
  after: string | null,
  limit: number,
): Promise<Payout[]> {
  let query = db.selectFrom('payouts').selectAll().where('updated_at', '>=', since);
  if (after !== null) query = query.where('id', '>', after);
  const rows = await query.orderBy('id').limit(limit).execute();
  return rows.map(toPayout);
}
