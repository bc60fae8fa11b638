import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { requireTransaction } from '../../kernel/database/database.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { APPROVAL_REQUEST_TTL_MS, operatorOf, statusAt } from '../../kernel/four-eyes.js';
import { newId } from '../../kernel/ids.js';
import { formatAmount, parseCurrency } from '../../kernel/money.js';
import type { Page } from '../../kernel/pagination.js';
import { ACCOUNT_PURPOSES, type AccountPurpose } from './domain/chart.js';
import { addMoved, type CauseKind, isProviderCause, movedPerCurrency } from './domain/posting.js';
import { ledgerErrors } from './errors.js';
import type { AccountRef, BatchItemResult, LedgerService, PostingInput, PostResult } from './service.js';
import {
  type ApprovalThreshold,
  addMovedAlone,
  approvalThresholds,
  decidePostingRequest,
  findPostingRequest,
  insertPostingRequest,
  listPostingRequests,
  type PostingRequestQuery,
  removeApprovalThreshold,
  type StoredPostingRequest,
  saveApprovalThreshold,
} from './store/approvals-store.js';
import type { LedgerTransaction } from './store/ledger-store.js';

/** Money an operator moves by hand: one posting, the reversal of a transaction, or a batch. */
export type HandMovement =
  | { readonly action: 'post'; readonly posting: PostingInput }
  | {
      readonly action: 'reverse';
      readonly transactionId: string;
      readonly idempotencyKey: string;
      readonly description?: string;
    }
  | { readonly action: 'batch'; readonly atomic: boolean; readonly postings: readonly PostingInput[] };

/**
 * A movement by hand that waits for, or got, a second operator's decision; `expired` when it
 * was still pending at its expiry.
 */
export type PostingRequest = Omit<StoredPostingRequest, 'action' | 'content' | 'status'> & {
  readonly status: StoredPostingRequest['status'] | 'expired';
  readonly movement: HandMovement;
};

/**
 * Four eyes on money moved by hand. Per currency, an operator may move up to a threshold alone
 * in a day (UTC), counting every posting, reversal and batch it made by hand that day; beyond
 * it, the movement is filed as a posting request and made only when another operator approves
 * it. Replays move nothing and count nothing; approved requests do not count against anyone.
 */
export function createLedgerApprovals(deps: { ledger: LedgerService }) {
  const { ledger } = deps;
  /**
   * Counts what the acting operator just moved alone, in its transaction, and refuses (rolling
   * the movement back with it) when that takes the day above a currency's threshold.
   *
   * @throws DomainError `ledger.posting_needs_approval`
   */
  async function countAlone(ctx: Context, transactions: readonly LedgerTransaction[]): Promise<void> {
    const userId = operatorOf(ctx, () => new Error('only operators move money by hand'));
    const moved = new Map<string, bigint>();
    for (const transaction of transactions) addMoved(moved, movedPerCurrency(transaction.entries));
    if (moved.size === 0) return;
    const thresholds = new Map(
      (await approvalThresholds(ctx.db, [...moved.keys()])).map((threshold) => [
        threshold.currency,
        threshold,
      ]),
    );
    const day = ctx.now.toISOString().slice(0, 10);
    // In currency order: one operator's concurrent movements lock its rows in the same order.
    for (const [currency, minor] of [...moved].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const total = await addMovedAlone(ctx.db, { userId, currency, day, minor });
      const threshold = thresholds.get(currency);
      if (threshold && total > threshold.approvalAboveMinor) {
        throw ledgerErrors.postingNeedsApproval(currency, threshold.approvalAboveMinor, total - minor, minor);
      }
    }
  }

  /** Makes a movement as the acting user, counting nothing; one result per transaction. */
  async function move(ctx: Context, movement: HandMovement): Promise<BatchItemResult[]> {
    const single = ({ transaction, replayed }: PostResult): BatchItemResult[] => [
      { status: replayed ? 'replayed' : 'posted', transaction },
    ];
    switch (movement.action) {
      case 'post':
        return single(await ledger.post(ctx, movement.posting));
      case 'reverse':
        return single(
          await ledger.reverse(ctx, movement.transactionId, {
            idempotencyKey: movement.idempotencyKey,
            ...(movement.description !== undefined ? { description: movement.description } : {}),
          }),
        );
      case 'batch':
        return ledger.postBatch(ctx, movement.postings, { atomic: movement.atomic });
    }
  }

  /**
   * What a movement would move per currency, checked as far as it can be without moving it:
   * each posting's accounts exist or can be opened, in its currencies, and it balances with
   * amounts in range (`LedgerService.checkPostings`); a transaction to reverse exists, is not a
   * reversal and was not reversed.
   */
  async function movesOf(ctx: Context, movement: HandMovement): Promise<Map<string, bigint>> {
    /** What a posting moves: its entries each name their currency, as the API has them do. */
    const moved = (posting: PostingInput) =>
      movedPerCurrency(
        posting.entries.map((entry) => {
          if (entry.currency === undefined)
            throw new Error('a posting by hand names the currency of each entry');
          return { currency: entry.currency, direction: entry.direction, amountMinor: entry.amountMinor };
        }),
      );
    switch (movement.action) {
      case 'post': {
        const [errors = []] = await ledger.checkPostings(ctx, [movement.posting]);
        if (errors.length > 0) throw ledgerErrors.postingInvalid(errors);
        return moved(movement.posting);
      }
      case 'batch': {
        const checks = await ledger.checkPostings(ctx, movement.postings);
        const refused = checks.flatMap((errors, index) => {
          if (errors.length === 0) return [];
          const error = ledgerErrors.postingInvalid(errors);
          return [{ index, code: error.code, message: error.message }];
        });
        if (refused.length > 0) throw ledgerErrors.batchRejected(refused);
        const totals = new Map<string, bigint>();
        for (const posting of movement.postings) addMoved(totals, moved(posting));
        return totals;
      }
      case 'reverse': {
        const original = await ledger.transaction(ctx, movement.transactionId);
        if (original.cause.kind === 'reversal') throw ledgerErrors.reversalNotReversible(original.id);
        if (isProviderCause(original.cause.kind))
          throw ledgerErrors.notReversible(original.id, original.cause.kind);
        const [reversal] = await ledger.transactionsFor(ctx, { kind: 'reversal', id: original.id });
        if (reversal) throw ledgerErrors.alreadyReversed(original.id, reversal.id);
        return movedPerCurrency(original.entries);
      }
    }
  }

  /** A request and the operator user asking for it; to anyone else it does not exist. */
  async function requested(ctx: Context, id: string, options: { lock?: boolean } = {}) {
    const by = operatorOf(ctx, () => ledgerErrors.postingRequestNotFound(id));
    const stored = await findPostingRequest(ctx.db, id, options);
    if (!stored) throw ledgerErrors.postingRequestNotFound(id);
    return { request: fromStored(stored, ctx.now), by };
  }

  /** A request still to decide: pending, not expired. */
  async function undecided(ctx: Context, id: string) {
    const found = await requested(ctx, id, { lock: true });
    const { request } = found;
    if (request.status === 'expired') throw ledgerErrors.postingRequestExpired(id, request.expiresAt);
    if (request.status !== 'pending') throw ledgerErrors.postingRequestDecided(id, request.status);
    return found;
  }

  /** A request's event, for operators only. */
  async function announce(ctx: Context, type: string, request: PostingRequest) {
    await appendEvent(ctx, {
      type,
      subjectId: request.id,
      data: {
        id: request.id,
        action: request.movement.action,
        moves: movesJson(request.moves),
        reason: request.reason,
        status: request.status,
        ...(request.transactionIds !== null ? { transaction_ids: request.transactionIds } : {}),
        ...(request.decisionReason !== null ? { decision_reason: request.decisionReason } : {}),
      },
      audience: [],
    });
  }

  return {
    /** Posts one transaction by hand (see `LedgerService.post`), counted against the threshold. */
    async post(ctx: Context, posting: PostingInput): Promise<PostResult> {
      const result = await ledger.post(ctx, posting);
      if (!result.replayed) await countAlone(ctx, [result.transaction]);
      return result;
    },

    /** Reverses a transaction by hand (see `LedgerService.reverse`), counted against the threshold. */
    async reverse(
      ctx: Context,
      transactionId: string,
      input: { idempotencyKey: string; description?: string },
    ): Promise<PostResult> {
      const result = await ledger.reverse(ctx, transactionId, input);
      if (!result.replayed) await countAlone(ctx, [result.transaction]);
      return result;
    },

    /**
     * Posts a batch by hand (see `LedgerService.postBatch`). The batch is one movement: what its
     * posted items move counts at once, and beyond the threshold the whole batch is refused,
     * atomic or not.
     */
    async postBatch(
      ctx: Context,
      postings: readonly PostingInput[],
      options: { atomic: boolean },
    ): Promise<BatchItemResult[]> {
      const results = await ledger.postBatch(ctx, postings, options);
      await countAlone(
        ctx,
        results.flatMap((result) => (result.status === 'posted' ? [result.transaction] : [])),
      );
      return results;
    },

    thresholds: (ctx: Context): Promise<ApprovalThreshold[]> => approvalThresholds(ctx.db),

    /**
     * Sets what one operator may move by hand alone in a day (UTC), in a currency.
     *
     * @throws DomainError `ledger.approval_threshold_negative`
     */
    async setThreshold(
      ctx: Context,
      currency: string,
      approvalAboveMinor: bigint,
    ): Promise<ApprovalThreshold> {
      requireTransaction(ctx.db);
      if (approvalAboveMinor < 0n) throw ledgerErrors.approvalThresholdNegative();
      const by = operatorOf(ctx, () => new Error('only operators set approval thresholds'));
      const threshold = await saveApprovalThreshold(ctx.db, {
        currency,
        approvalAboveMinor,
        updatedBy: by,
        updatedAt: ctx.now,
      });
      await recordAudit(ctx, {
        action: 'ledger.approval_threshold.set',
        targetId: currency,
        outcome: 'succeeded',
        details: { approval_above_minor: approvalAboveMinor.toString() },
      });
      return threshold;
    },

    /**
     * Removes a currency's threshold: money in it moves by hand without a second operator again.
     *
     * @throws DomainError `ledger.approval_threshold_not_found`
     */
    async removeThreshold(ctx: Context, currency: string): Promise<void> {
      requireTransaction(ctx.db);
      if (!(await removeApprovalThreshold(ctx.db, currency)))
        throw ledgerErrors.approvalThresholdNotFound(currency);
      await recordAudit(ctx, {
        action: 'ledger.approval_threshold.remove',
        targetId: currency,
        outcome: 'succeeded',
      });
    },

    /**
     * Files a movement by hand for another operator to approve, whatever it moves. Nothing moves
     * until then; what can be checked without moving it is checked now (`movesOf`).
     *
     * @throws DomainError `ledger.entries_must_balance`, `ledger.batch_rejected`,
     *   `ledger.transaction_not_found`, `ledger.reversal_not_reversible`, `ledger.already_reversed`
     */
    async request(ctx: Context, movement: HandMovement, reason: string): Promise<PostingRequest> {
      requireTransaction(ctx.db);
      const by = operatorOf(ctx, () => new Error('only operators file posting requests'));
      const moves = await movesOf(ctx, movement);
      const request = fromStored(
        await insertPostingRequest(ctx.db, {
          id: newId('lpr'),
          action: movement.action,
          content: contentOf(movement),
          moves,
          reason,
          requestedBy: by,
          requestedAt: ctx.now,
          expiresAt: new Date(ctx.now.getTime() + APPROVAL_REQUEST_TTL_MS),
        }),
        ctx.now,
      );
      await announce(ctx, 'posting_request.created', request);
      await recordAudit(ctx, {
        action: 'ledger.posting_request.create',
        targetId: request.id,
        outcome: 'succeeded',
        details: { action: movement.action, moves: movesJson(moves) },
      });
      return request;
    },

    get: async (ctx: Context, id: string): Promise<PostingRequest> => (await requested(ctx, id)).request,

    list(ctx: Context, query: PostingRequestQuery): Promise<Page<PostingRequest>> {
      operatorOf(ctx, () => new Error('only operators read posting requests'));
      return listPostingRequests(ctx.db, query, ctx.now).then((page) => ({
        ...page,
        items: page.items.map((stored) => fromStored(stored, ctx.now)),
      }));
    },

    /**
     * Makes the movement a request asks for, as the approving operator, who may not be the one
     * who filed it; it does not count against anyone's threshold. When the movement is refused
     * (a posting, a reversal or an atomic batch: funds short, say), nothing changes and the
     * request stays pending. A batch of items standing alone is approved whatever its items'
     * outcomes, which the results give.
     *
     * @throws DomainError `ledger.posting_request_not_found`, `ledger.self_approval`,
     *   `ledger.posting_request_decided`, and as the movement's own call
     */
    async approve(
      ctx: Context,
      id: string,
    ): Promise<{ request: PostingRequest; results: BatchItemResult[] }> {
      requireTransaction(ctx.db);
      const { request, by } = await undecided(ctx, id);
      if (request.requestedBy === by) throw ledgerErrors.selfApproval(id);
      const results = await move(ctx, request.movement);
      const approved = fromStored(
        await decidePostingRequest(ctx.db, request.id, {
          status: 'approved',
          by,
          at: ctx.now,
          transactionIds: results.flatMap((result) =>
            result.status === 'rejected' ? [] : [result.transaction.id],
          ),
        }),
        ctx.now,
      );
      await announce(ctx, 'posting_request.approved', approved);
      await recordAudit(ctx, {
        action: 'ledger.posting_request.approve',
        targetId: request.id,
        outcome: 'succeeded',
        details: {
          action: request.movement.action,
          moves: movesJson(request.moves),
          requested_by: request.requestedBy,
          transaction_ids: approved.transactionIds,
        },
      });
      return { request: approved, results };
    },

    /**
     * Turns a request down, with a reason; nothing moves. The operator who filed it may
     * withdraw it this way too.
     *
     * @throws DomainError `ledger.posting_request_not_found`, `ledger.posting_request_decided`
     */
    async reject(ctx: Context, id: string, reason: string): Promise<PostingRequest> {
      requireTransaction(ctx.db);
      const { request, by } = await undecided(ctx, id);
      const rejected = fromStored(
        await decidePostingRequest(ctx.db, request.id, { status: 'rejected', by, at: ctx.now, reason }),
        ctx.now,
      );
      await announce(ctx, 'posting_request.rejected', rejected);
      await recordAudit(ctx, {
        action: 'ledger.posting_request.reject',
        targetId: request.id,
        outcome: 'succeeded',
        details: { reason },
      });
      return rejected;
    },
  };
}

export type LedgerApprovals = ReturnType<typeof createLedgerApprovals>;

/** Amounts per currency as the API writes them, in currency order. */
export function movesJson(moves: ReadonlyMap<string, bigint>): { amount: string; currency: string }[] {
  return [...moves]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([currency, minor]) => ({ amount: formatAmount(minor, parseCurrency(currency)), currency }));
}

/*
 * A request's content is its movement in JSON: amounts as strings of minor units, accounts by id
 * or by key. Written once when filed and read back when decided.
 */

interface StoredEntry {
  account: string | { purpose: string; owner_id: string; currency: string };
  currency: string | null;
  direction: 'debit' | 'credit';
  amount_minor: string;
}
interface StoredPosting {
  idempotency_key: string;
  description: string | null;
  cause: { kind: string; id: string };
  entries: StoredEntry[];
  metadata: Record<string, string>;
}

const postingContent = (posting: PostingInput): StoredPosting => ({
  idempotency_key: posting.idempotencyKey,
  description: posting.description ?? null,
  cause: { kind: posting.cause.kind, id: posting.cause.id },
  entries: posting.entries.map((entry) => ({
    account:
      typeof entry.account === 'string'
        ? entry.account
        : {
            purpose: entry.account.purpose,
            owner_id: entry.account.ownerId,
            currency: entry.account.currency,
          },
    currency: entry.currency ?? null,
    direction: entry.direction,
    amount_minor: entry.amountMinor.toString(),
  })),
  metadata: { ...(posting.metadata ?? {}) },
});

const postingOf = (stored: StoredPosting): PostingInput => ({
  idempotencyKey: stored.idempotency_key,
  ...(stored.description !== null ? { description: stored.description } : {}),
  cause: { kind: stored.cause.kind as CauseKind, id: stored.cause.id },
  entries: stored.entries.map((entry) => {
    const account: AccountRef =
      typeof entry.account === 'string'
        ? (entry.account as AccountRef)
        : {
            purpose: purposeOf(entry.account.purpose),
            ownerId: entry.account.owner_id,
            currency: entry.account.currency,
          };
    return {
      account,
      ...(entry.currency !== null ? { currency: entry.currency } : {}),
      direction: entry.direction,
      amountMinor: BigInt(entry.amount_minor),
    };
  }),
  metadata: stored.metadata,
});

function purposeOf(purpose: string): AccountPurpose {
  if (!(ACCOUNT_PURPOSES as readonly string[]).includes(purpose))
    throw new Error(`unknown purpose ${purpose}`);
  return purpose as AccountPurpose;
}

function contentOf(movement: HandMovement): unknown {
  switch (movement.action) {
    case 'post':
      return { posting: postingContent(movement.posting) };
    case 'reverse':
      return {
        transaction_id: movement.transactionId,
        idempotency_key: movement.idempotencyKey,
        description: movement.description ?? null,
      };
    case 'batch':
      return { atomic: movement.atomic, postings: movement.postings.map(postingContent) };
  }
}

function fromStored(stored: StoredPostingRequest, now: Date): PostingRequest {
  const { action, content, status, ...rest } = stored;
  const data = content as Record<string, unknown>;
  let movement: HandMovement;
  switch (action) {
    case 'post':
      movement = { action, posting: postingOf(data.posting as StoredPosting) };
      break;
    case 'reverse':
      movement = {
        action,
        transactionId: data.transaction_id as string,
        idempotencyKey: data.idempotency_key as string,
        ...(data.description !== null ? { description: data.description as string } : {}),
      };
      break;
    case 'batch':
      movement = {
        action,
        atomic: data.atomic as boolean,
        postings: (data.postings as StoredPosting[]).map(postingOf),
      };
      break;
  }
  return { ...rest, status: statusAt(status, stored.expiresAt, now), movement };
}
