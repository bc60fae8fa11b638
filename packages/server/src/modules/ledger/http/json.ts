import { z } from 'zod';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import type { PostingRequest } from '../approvals.js';
import { CAUSE_KINDS } from '../domain/posting.js';
import type { Balance, BatchItemResult, PostingInput, Statement } from '../service.js';
import type { ApprovalThreshold } from '../store/approvals-store.js';
import type { Account, LedgerTransaction } from '../store/ledger-store.js';

export const AccountJson = z
  .object({
    id: z.string(),
    purpose: z.string(),
    owner_kind: z.enum(['platform', 'partner', 'order', 'programme']),
    owner_id: z.string(),
    currency: z.string(),
    normal_side: z.enum(['debit', 'credit']).describe('The side on which the balance grows.'),
    non_negative: z.boolean().describe('The balance may never go below zero.'),
    created_at: timestamp,
  })
  .meta({ id: 'LedgerAccount' });

export const accountJson = (account: Account): z.input<typeof AccountJson> => ({
  id: account.id,
  purpose: account.purpose,
  owner_kind: account.ownerKind,
  owner_id: account.ownerId,
  currency: account.currency,
  normal_side: account.normalSide,
  non_negative: account.nonNegative,
  created_at: iso(account.createdAt),
});

export const BalanceJson = z
  .object({ account: AccountJson, balance: MoneyJson, as_of: timestamp })
  .meta({ id: 'LedgerBalance' });

export const balanceJson = (balance: Balance): z.input<typeof BalanceJson> => ({
  account: accountJson(balance.account),
  balance: moneyJson(balance.balanceMinor, balance.account.currency),
  as_of: iso(balance.asOf),
});

const EntryJson = z.object({
  account_id: z.string(),
  direction: z.enum(['debit', 'credit']),
  amount: MoneyJson,
});

export const TransactionJson = z
  .object({
    id: z.string(),
    idempotency_key: z.string(),
    description: z.string(),
    cause: z.object({ kind: z.enum(CAUSE_KINDS), id: z.string() }),
    metadata: z
      .record(z.string(), z.string())
      .describe('The poster’s record of the transaction; empty for partners (the platform’s own).'),
    posted_at: timestamp,
    entries: z
      .array(EntryJson)
      .describe('Every entry for operators; for a partner, only those on its own accounts.'),
    content_hash: z.string().describe('Hex SHA-256 of the transaction, the link the hash chain covers.'),
  })
  .meta({ id: 'LedgerTransaction' });

export const transactionJson = (transaction: LedgerTransaction): z.input<typeof TransactionJson> => ({
  id: transaction.id,
  idempotency_key: transaction.idempotencyKey,
  description: transaction.description,
  cause: { kind: transaction.cause.kind, id: transaction.cause.id },
  metadata: { ...transaction.metadata },
  posted_at: iso(transaction.postedAt),
  entries: transaction.entries.map((entry) => ({
    account_id: entry.accountId,
    direction: entry.direction,
    amount: moneyJson(entry.amountMinor, entry.currency),
  })),
  content_hash: transaction.contentHash,
});

export const StatementLineJson = z
  .object({
    id: z.string().describe('The line’s cursor: `<transaction id>.<position>`.'),
    transaction_id: z.string(),
    description: z.string(),
    cause: z.object({ kind: z.enum(CAUSE_KINDS), id: z.string() }),
    posted_at: timestamp,
    direction: z.enum(['debit', 'credit']),
    amount: MoneyJson,
    balance_after: MoneyJson,
  })
  .meta({ id: 'LedgerStatementLine' });

export const statementLineJson =
  (account: Account) =>
  (line: Statement['lines']['items'][number]): z.input<typeof StatementLineJson> => ({
    id: line.id,
    transaction_id: line.transactionId,
    description: line.description,
    cause: { kind: line.cause.kind, id: line.cause.id },
    posted_at: iso(line.postedAt),
    direction: line.amountMinor > 0n ? 'debit' : 'credit',
    amount: moneyJson(line.amountMinor > 0n ? line.amountMinor : -line.amountMinor, account.currency),
    balance_after: moneyJson(line.balanceAfterMinor, account.currency),
  });

export const BatchResultJson = z.object({
  index: z.number().int(),
  status: z.enum(['posted', 'replayed', 'rejected']),
  transaction: TransactionJson.optional(),
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).optional(),
});

export const batchResultJson = (index: number, result: BatchItemResult): z.input<typeof BatchResultJson> =>
  result.status === 'rejected'
    ? {
        index,
        status: 'rejected',
        error: { code: result.error.code, message: result.error.message, details: result.error.details },
      }
    : { index, status: result.status, transaction: transactionJson(result.transaction) };

export const ApprovalThresholdJson = z
  .object({
    approval_above: MoneyJson.describe(
      'What one operator may move by hand alone in a day (UTC); beyond it, a second operator approves.',
    ),
    updated_by: z.string(),
    updated_at: timestamp,
  })
  .meta({ id: 'LedgerApprovalThreshold' });

export const approvalThresholdJson = (
  threshold: ApprovalThreshold,
): z.input<typeof ApprovalThresholdJson> => ({
  approval_above: moneyJson(threshold.approvalAboveMinor, threshold.currency),
  updated_by: threshold.updatedBy,
  updated_at: iso(threshold.updatedAt),
});

/** A transaction to post, as it was filed. */
const FiledTransactionJson = z
  .object({
    idempotency_key: z.string(),
    description: z.string(),
    cause: z.object({ kind: z.enum(CAUSE_KINDS), id: z.string() }),
    entries: z.array(
      z.object({
        account_id: z.string().optional(),
        account: z.object({ purpose: z.string(), owner_id: z.string() }).optional(),
        direction: z.enum(['debit', 'credit']),
        amount: MoneyJson,
      }),
    ),
    metadata: z.record(z.string(), z.string()),
  })
  .meta({ id: 'FiledLedgerTransaction' });

const filedJson = (posting: PostingInput): z.input<typeof FiledTransactionJson> => ({
  idempotency_key: posting.idempotencyKey,
  description: posting.description ?? '',
  cause: { kind: posting.cause.kind, id: posting.cause.id },
  entries: posting.entries.map((entry) => {
    const currency = entry.currency ?? (typeof entry.account === 'string' ? '' : entry.account.currency);
    return {
      ...(typeof entry.account === 'string'
        ? { account_id: entry.account }
        : { account: { purpose: entry.account.purpose, owner_id: entry.account.ownerId } }),
      direction: entry.direction,
      amount: moneyJson(entry.amountMinor, currency),
    };
  }),
  metadata: { ...(posting.metadata ?? {}) },
});

export const POSTING_REQUEST_STATUSES = ['pending', 'approved', 'rejected', 'expired'] as const;

export const PostingRequestJson = z
  .object({
    id: z.string(),
    action: z.enum(['post', 'reverse', 'batch']),
    transaction: FiledTransactionJson.optional().describe('`post`: the transaction to post.'),
    transaction_id: z.string().optional().describe('`reverse`: the transaction to reverse.'),
    idempotency_key: z.string().optional().describe('`reverse`: the reversal’s key.'),
    description: z.string().optional().describe('`reverse`: the reversal’s description, if given.'),
    atomic: z.boolean().optional().describe('`batch`: all or none, or each item alone.'),
    transactions: z.array(FiledTransactionJson).optional().describe('`batch`: the transactions to post.'),
    moves: z
      .array(MoneyJson)
      .describe('What it moves, per currency: the sum of its debits (a reversal: of the original’s).'),
    reason: z.string(),
    status: z.enum(POSTING_REQUEST_STATUSES),
    requested_by: z.string().describe('The operator user who filed it.'),
    requested_at: timestamp,
    expires_at: timestamp.describe(
      'Seven days after it was filed: still pending then, it is `expired` and can no longer be decided.',
    ),
    decided_by: z.string().nullable().describe('The other operator user who approved or rejected it.'),
    decided_at: timestamp.nullable(),
    decision_reason: z.string().nullable().describe('Why it was rejected.'),
    transaction_ids: z
      .array(z.string())
      .nullable()
      .describe('Once approved: the transactions it posted, or found posted under their keys, in order.'),
  })
  .meta({ id: 'LedgerPostingRequest' });

export const postingRequestJson = (request: PostingRequest): z.input<typeof PostingRequestJson> => {
  const { movement } = request;
  return {
    id: request.id,
    action: movement.action,
    ...(movement.action === 'post' ? { transaction: filedJson(movement.posting) } : {}),
    ...(movement.action === 'reverse'
      ? {
          transaction_id: movement.transactionId,
          idempotency_key: movement.idempotencyKey,
          ...(movement.description !== undefined ? { description: movement.description } : {}),
        }
      : {}),
    ...(movement.action === 'batch'
      ? { atomic: movement.atomic, transactions: movement.postings.map(filedJson) }
      : {}),
    moves: [...request.moves]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([currency, minor]) => moneyJson(minor, currency)),
    reason: request.reason,
    status: request.status,
    requested_by: request.requestedBy,
    requested_at: iso(request.requestedAt),
    expires_at: iso(request.expiresAt),
    decided_by: request.decidedBy,
    decided_at: isoOrNull(request.decidedAt),
    decision_reason: request.decisionReason,
    transaction_ids: request.transactionIds === null ? null : [...request.transactionIds],
  };
};
