import { type Selectable, sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import { statusAt } from '../../../kernel/four-eyes.js';
import type { OrderId, RefundRequestId, UserId } from '../../../kernel/ids.js';
import { type Page, pageOf } from '../../../kernel/pagination.js';
import type { RefundRequestStatus, RefundRequestsTable, RefundThresholdsTable } from './tables.js';

/** Above this amount of its currency, a refund by hand needs a second operator's approval. */
export interface RefundThreshold {
  readonly currency: string;
  readonly approvalAboveMinor: bigint;
  readonly updatedBy: string;
  readonly updatedAt: Date;
}

/** A refund by hand that waits for, or got, a second operator's decision. */
export interface RefundRequest {
  readonly id: RefundRequestId;
  readonly orderId: OrderId;
  readonly stepKey: string | null;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly reason: string;
  readonly status: RefundRequestStatus;
  readonly requestedBy: UserId;
  readonly requestedAt: Date;
  /** Still pending then, it can no longer be decided: it has expired. */
  readonly expiresAt: Date;
  readonly decidedBy: UserId | null;
  readonly decidedAt: Date | null;
  readonly decisionReason: string | null;
  readonly refundedMinor: bigint | null;
  readonly subsidyReturnedMinor: bigint | null;
}

const toThreshold = (row: Selectable<RefundThresholdsTable>): RefundThreshold => ({
  currency: row.currency,
  approvalAboveMinor: BigInt(row.approval_above_minor),
  updatedBy: row.updated_by,
  updatedAt: row.updated_at,
});

/** A request as of `now`: one still pending at its expiry is `expired`. */
const toRequest = (row: Selectable<RefundRequestsTable>, now: Date): RefundRequest => ({
  id: row.id as RefundRequestId,
  orderId: row.order_id as OrderId,
  stepKey: row.step_key,
  amountMinor: BigInt(row.amount_minor),
  currency: row.currency,
  reason: row.reason,
  status: statusAt(row.status, row.expires_at, now),
  requestedBy: row.requested_by as UserId,
  requestedAt: row.requested_at,
  expiresAt: row.expires_at,
  decidedBy: row.decided_by as UserId | null,
  decidedAt: row.decided_at,
  decisionReason: row.decision_reason,
  refundedMinor: row.refunded_minor === null ? null : BigInt(row.refunded_minor),
  subsidyReturnedMinor: row.subsidy_returned_minor === null ? null : BigInt(row.subsidy_returned_minor),
});

export async function refundThresholds(db: Executor): Promise<RefundThreshold[]> {
  return (await db.selectFrom('refund_thresholds').selectAll().orderBy('currency').execute()).map(
    toThreshold,
  );
}

export async function refundThreshold(db: Executor, currency: string): Promise<RefundThreshold | null> {
  const row = await db
    .selectFrom('refund_thresholds')
    .selectAll()
    .where('currency', '=', currency)
    .executeTakeFirst();
  return row ? toThreshold(row) : null;
}

export async function saveRefundThreshold(
  db: Executor,
  threshold: RefundThreshold,
): Promise<RefundThreshold> {
  const row = {
    currency: threshold.currency,
    approval_above_minor: threshold.approvalAboveMinor,
    updated_by: threshold.updatedBy,
    updated_at: threshold.updatedAt,
  };
  return toThreshold(
    await db
      .insertInto('refund_thresholds')
      .values(row)
      .onConflict((conflict) => conflict.column('currency').doUpdateSet(row))
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

/** Whether there was one to remove. */
export async function removeRefundThreshold(db: Executor, currency: string): Promise<boolean> {
  const removed = await db
    .deleteFrom('refund_thresholds')
    .where('currency', '=', currency)
    .executeTakeFirst();
  return removed.numDeletedRows > 0n;
}

/**
 * Adds a refund by hand to what its operator gave back alone that day, and returns the day's
 * total, this refund included. The row stays locked until the transaction ends, so one
 * operator's concurrent refunds take turns on it.
 */
export async function addRefundedAlone(
  db: Executor,
  refunded: { userId: UserId; currency: string; day: string; minor: bigint },
): Promise<bigint> {
  const row = await db
    .insertInto('refunded_alone_daily')
    .values({
      user_id: refunded.userId,
      currency: refunded.currency,
      day: refunded.day,
      refunded_minor: refunded.minor,
    })
    .onConflict((conflict) =>
      conflict.columns(['user_id', 'currency', 'day']).doUpdateSet({
        refunded_minor: sql`refunded_alone_daily.refunded_minor + excluded.refunded_minor`,
      }),
    )
    .returning('refunded_minor')
    .executeTakeFirstOrThrow();
  return BigInt(row.refunded_minor);
}

export async function insertRefundRequest(
  db: Executor,
  request: Pick<
    RefundRequest,
    | 'id'
    | 'orderId'
    | 'stepKey'
    | 'amountMinor'
    | 'currency'
    | 'reason'
    | 'requestedBy'
    | 'requestedAt'
    | 'expiresAt'
  >,
): Promise<RefundRequest> {
  return toRequest(
    await db
      .insertInto('refund_requests')
      .values({
        id: request.id,
        order_id: request.orderId,
        step_key: request.stepKey,
        amount_minor: request.amountMinor,
        currency: request.currency,
        reason: request.reason,
        status: 'pending',
        requested_by: request.requestedBy,
        requested_at: request.requestedAt,
        expires_at: request.expiresAt,
        decided_by: null,
        decided_at: null,
        decision_reason: null,
        refunded_minor: null,
        subsidy_returned_minor: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow(),
    request.requestedAt,
  );
}

export async function findRefundRequest(
  db: Executor,
  id: string,
  options: { now: Date; lock?: boolean },
): Promise<RefundRequest | null> {
  let query = db.selectFrom('refund_requests').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toRequest(row, options.now) : null;
}

/** Records a pending request's decision. */
export async function decideRefundRequest(
  db: Executor,
  id: RefundRequestId,
  decision:
    | { status: 'approved'; by: UserId; at: Date; refundedMinor: bigint; subsidyReturnedMinor: bigint }
    | { status: 'rejected'; by: UserId; at: Date; reason: string },
): Promise<RefundRequest> {
  return toRequest(
    await db
      .updateTable('refund_requests')
      .set({
        status: decision.status,
        decided_by: decision.by,
        decided_at: decision.at,
        ...(decision.status === 'approved'
          ? { refunded_minor: decision.refundedMinor, subsidy_returned_minor: decision.subsidyReturnedMinor }
          : { decision_reason: decision.reason }),
      })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .returningAll()
      .executeTakeFirstOrThrow(),
    decision.at,
  );
}

export interface RefundRequestQuery {
  /** `expired`: pending past its expiry; `pending`: pending and not yet expired. */
  readonly status?: RefundRequestStatus | undefined;
  readonly orderId?: string | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

/** Oldest first. */
export async function listRefundRequests(
  db: Executor,
  query: RefundRequestQuery,
  now: Date,
): Promise<Page<RefundRequest>> {
  let select = db
    .selectFrom('refund_requests')
    .selectAll()
    .orderBy('id')
    .limit(query.limit + 1);
  if (query.status === 'expired')
    select = select.where('status', '=', 'pending').where('expires_at', '<=', now);
  else if (query.status !== undefined) select = select.where('status', '=', query.status);
  if (query.status === 'pending') select = select.where('expires_at', '>', now);
  if (query.orderId !== undefined) select = select.where('order_id', '=', query.orderId);
  if (query.after !== undefined) select = select.where('id', '>', query.after);
  return pageOf(await select.execute(), query.limit, (row) => toRequest(row, now));
}
