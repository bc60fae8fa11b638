import { type Selectable, sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { PostingRequestId, UserId } from '../../../kernel/ids.js';
import { type Page, pageOf } from '../../../kernel/pagination.js';
import type {
  LedgerApprovalThresholdsTable,
  LedgerPostingRequestsTable,
  PostingRequestAction,
  PostingRequestStatus,
} from './tables.js';

/** Per currency, what one operator may move by hand alone in a day (UTC). */
export interface ApprovalThreshold {
  readonly currency: string;
  readonly approvalAboveMinor: bigint;
  readonly updatedBy: string;
  readonly updatedAt: Date;
}

/** A movement by hand, as filed: its content is the action's own, written by the approvals. */
export interface StoredPostingRequest {
  readonly id: PostingRequestId;
  readonly action: PostingRequestAction;
  readonly content: unknown;
  /** What it moves per currency, in minor units. */
  readonly moves: ReadonlyMap<string, bigint>;
  readonly reason: string;
  readonly status: PostingRequestStatus;
  readonly requestedBy: UserId;
  readonly requestedAt: Date;
  /** Still pending then, it can no longer be decided: it has expired. */
  readonly expiresAt: Date;
  readonly decidedBy: UserId | null;
  readonly decidedAt: Date | null;
  readonly decisionReason: string | null;
  /** Once approved: the transactions it posted (or found posted under their keys), in order. */
  readonly transactionIds: readonly string[] | null;
}

const toThreshold = (row: Selectable<LedgerApprovalThresholdsTable>): ApprovalThreshold => ({
  currency: row.currency,
  approvalAboveMinor: BigInt(row.approval_above_minor),
  updatedBy: row.updated_by,
  updatedAt: row.updated_at,
});

const toRequest = (row: Selectable<LedgerPostingRequestsTable>): StoredPostingRequest => ({
  id: row.id as PostingRequestId,
  action: row.action,
  content: row.content,
  moves: new Map(Object.entries(row.moves).map(([currency, minor]) => [currency, BigInt(minor)])),
  reason: row.reason,
  status: row.status,
  requestedBy: row.requested_by as UserId,
  requestedAt: row.requested_at,
  expiresAt: row.expires_at,
  decidedBy: row.decided_by as UserId | null,
  decidedAt: row.decided_at,
  decisionReason: row.decision_reason,
  transactionIds: row.transaction_ids,
});

export async function approvalThresholds(
  db: Executor,
  currencies?: readonly string[],
): Promise<ApprovalThreshold[]> {
  if (currencies?.length === 0) return [];
  let select = db.selectFrom('ledger_approval_thresholds').selectAll().orderBy('currency');
  if (currencies) select = select.where('currency', 'in', currencies);
  return (await select.execute()).map(toThreshold);
}

export async function saveApprovalThreshold(
  db: Executor,
  threshold: ApprovalThreshold,
): Promise<ApprovalThreshold> {
  const row = {
    currency: threshold.currency,
    approval_above_minor: threshold.approvalAboveMinor,
    updated_by: threshold.updatedBy,
    updated_at: threshold.updatedAt,
  };
  return toThreshold(
    await db
      .insertInto('ledger_approval_thresholds')
      .values(row)
      .onConflict((conflict) => conflict.column('currency').doUpdateSet(row))
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

/** Whether there was one to remove. */
export async function removeApprovalThreshold(db: Executor, currency: string): Promise<boolean> {
  const removed = await db
    .deleteFrom('ledger_approval_thresholds')
    .where('currency', '=', currency)
    .executeTakeFirst();
  return removed.numDeletedRows > 0n;
}

/**
 * Adds to what an operator moved by hand alone in a currency on a day (UTC), and returns the
 * day's total. The day's row stays locked until the caller's transaction ends, so the same
 * operator's movements are counted one after another.
 */
export async function addMovedAlone(
  db: Executor,
  moved: { userId: UserId; currency: string; day: string; minor: bigint },
): Promise<bigint> {
  const row = await db
    .insertInto('ledger_moved_alone')
    .values({ user_id: moved.userId, currency: moved.currency, day: moved.day, moved_minor: moved.minor })
    .onConflict((conflict) =>
      conflict
        .columns(['user_id', 'currency', 'day'])
        .doUpdateSet({ moved_minor: sql`ledger_moved_alone.moved_minor + excluded.moved_minor` }),
    )
    .returning('moved_minor')
    .executeTakeFirstOrThrow();
  return BigInt(row.moved_minor);
}

export async function insertPostingRequest(
  db: Executor,
  request: Pick<
    StoredPostingRequest,
    'id' | 'action' | 'content' | 'moves' | 'reason' | 'requestedBy' | 'requestedAt' | 'expiresAt'
  >,
): Promise<StoredPostingRequest> {
  return toRequest(
    await db
      .insertInto('ledger_posting_requests')
      .values({
        id: request.id,
        action: request.action,
        content: JSON.stringify(request.content),
        moves: JSON.stringify(
          Object.fromEntries([...request.moves].map(([currency, minor]) => [currency, minor.toString()])),
        ),
        reason: request.reason,
        status: 'pending',
        requested_by: request.requestedBy,
        requested_at: request.requestedAt,
        expires_at: request.expiresAt,
        decided_by: null,
        decided_at: null,
        decision_reason: null,
        transaction_ids: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

export async function findPostingRequest(
  db: Executor,
  id: string,
  options: { lock?: boolean } = {},
): Promise<StoredPostingRequest | null> {
  let query = db.selectFrom('ledger_posting_requests').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toRequest(row) : null;
}

/** Records a pending request's decision. */
export async function decidePostingRequest(
  db: Executor,
  id: PostingRequestId,
  decision:
    | { status: 'approved'; by: UserId; at: Date; transactionIds: readonly string[] }
    | { status: 'rejected'; by: UserId; at: Date; reason: string },
): Promise<StoredPostingRequest> {
  return toRequest(
    await db
      .updateTable('ledger_posting_requests')
      .set({
        status: decision.status,
        decided_by: decision.by,
        decided_at: decision.at,
        ...(decision.status === 'approved'
          ? { transaction_ids: [...decision.transactionIds] }
          : { decision_reason: decision.reason }),
      })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

export interface PostingRequestQuery {
  /** `expired`: pending past its expiry; `pending`: pending and not yet expired. */
  readonly status?: PostingRequestStatus | 'expired' | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

/** Oldest first. */
export async function listPostingRequests(
  db: Executor,
  query: PostingRequestQuery,
  now: Date,
): Promise<Page<StoredPostingRequest>> {
  let select = db
    .selectFrom('ledger_posting_requests')
    .selectAll()
    .orderBy('id')
    .limit(query.limit + 1);
  if (query.status === 'expired')
    select = select.where('status', '=', 'pending').where('expires_at', '<=', now);
  else if (query.status !== undefined) select = select.where('status', '=', query.status);
  if (query.status === 'pending') select = select.where('expires_at', '>', now);
  if (query.after !== undefined) select = select.where('id', '>', query.after);
  return pageOf(await select.execute(), query.limit, toRequest);
}
