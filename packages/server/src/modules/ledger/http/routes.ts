import { z } from 'zod';
import { recordAudit } from '../../../kernel/audit/audit-log.js';
import { DomainError } from '../../../kernel/errors.js';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { idSchema, MoneyInput, page, pageQuery, timestamp, toPage } from '../../../kernel/http/schemas.js';
import type { AccountId } from '../../../kernel/ids.js';
import { parseAmount, parseCurrency } from '../../../kernel/money.js';
import type { LedgerApprovals } from '../approvals.js';
import { ACCOUNT_PURPOSES } from '../domain/chart.js';
import {
  BATCH_MAX,
  CAUSE_KINDS,
  DESCRIPTION_LENGTH_MAX,
  ENTRIES_MAX,
  IDEMPOTENCY_KEY_LENGTH_MAX,
  METADATA_VALUE_LENGTH_MAX,
} from '../domain/posting.js';
import { ledgerErrors } from '../errors.js';
import type { AccountRef, LedgerService, PostingInput } from '../service.js';
import {
  AccountJson,
  accountJson,
  BalanceJson,
  BatchResultJson,
  balanceJson,
  batchResultJson,
  StatementLineJson,
  statementLineJson,
  TransactionJson,
  transactionJson,
} from './json.js';

export const LEDGER = ['Ledger'];
const READERS = { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES } as const;
/** Manual postings move money by hand: the operator's finance staff and administrators only. */
export const POSTERS = { operator: ['admin', 'finance'] } as const;
/** What every movement by hand says about four eyes. */
const FOUR_EYES =
  ' Four eyes: beyond what one operator may move by hand alone in a day (UTC) in a currency ' +
  '(`GET /v1/ledger/approval-thresholds`), the call is refused with `403 ledger.posting_needs_approval` and nothing ' +
  'moves; file it as a posting request (`POST /v1/ledger/posting-requests`) for another operator to approve.';
/**
 * Partners see only their own accounts: metadata is the platform's record (a leg's release keeps
 * its margin, commission, fee version and escrow total there) and is never shown to them, nor is
 * any entry on an account not theirs.
 */
const PARTNER_VIEW =
  'and of each only the entries on its own accounts (so they need not balance) and no metadata: ' +
  '`metadata` is always empty for partners, being the platform’s own record (margins, fees, totals).';
const BATCH_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

const accountIdParams = z.strictObject({ account_id: idSchema('acc') });
export const transactionIdParams = z.strictObject({ transaction_id: idSchema('txn') });

const AccountKeyInput = z.strictObject({
  purpose: z.enum(ACCOUNT_PURPOSES),
  owner_id: z
    .string()
    .min(1)
    .max(100)
    .describe('`platform` for the platform’s own accounts, else a partner, order or programme id.'),
});

const EntryInput = z.strictObject({
  account_id: idSchema('acc').optional(),
  account: AccountKeyInput.optional().describe(
    'Names the account by purpose and owner, opening it on first use.',
  ),
  direction: z.enum(['debit', 'credit']),
  amount: MoneyInput,
});

/**
 * Postings by hand live apart from Baton's own. Their keys are stored under `manual:`, so that
 * no key a module will post under can be taken first; and their cause is an adjustment, since
 * the other kinds are the records modules read back as their own (a leg's release, a payout's
 * settlement), which a posting by hand must not pass for.
 */
export const BY_HAND_KEY_PREFIX = 'manual:';
const BY_HAND_CAUSE_KINDS = ['adjustment'] as const satisfies readonly (typeof CAUSE_KINDS)[number][];
export const byHandKey = (key: string): string => `${BY_HAND_KEY_PREFIX}${key}`;
const byHandKeyInput = z
  .string()
  .min(1)
  .max(IDEMPOTENCY_KEY_LENGTH_MAX - BY_HAND_KEY_PREFIX.length)
  .describe(
    'Chosen by the caller: the same key with the same content returns the original transaction. It is stored, ' +
      'and shown, under `manual:`, apart from the keys of Baton’s own postings.',
  );

export const PostingBody = z
  .strictObject({
    idempotency_key: byHandKeyInput,
    description: z.string().max(DESCRIPTION_LENGTH_MAX).default(''),
    cause: z
      .strictObject({ kind: z.enum(BY_HAND_CAUSE_KINDS), id: z.string().min(1).max(100) })
      .describe(
        'What the posting adjusts: its id names the order, partner or transaction concerned. The other cause kinds ' +
          '(a leg, a payment, a payout, …) are those of Baton’s own postings.',
      ),
    entries: z.array(EntryInput).min(2).max(ENTRIES_MAX),
    metadata: z.record(z.string().max(64), z.string().max(METADATA_VALUE_LENGTH_MAX)).default({}),
  })
  .meta({ id: 'NewLedgerTransaction' });

export const ReversalBody = z.strictObject({
  idempotency_key: byHandKeyInput,
  description: z.string().max(DESCRIPTION_LENGTH_MAX).optional(),
});

/** Turns a request's transaction into the ledger's, reporting amount and account problems per field. */
export function toPosting(body: z.output<typeof PostingBody>): PostingInput {
  const errors: { path: string; rule: string; message: string }[] = [];
  const entries = body.entries.flatMap((entry, index) => {
    try {
      const currency = parseCurrency(entry.amount.currency);
      const amountMinor = parseAmount(entry.amount.amount, currency);
      let account: AccountRef | undefined;
      if (entry.account_id !== undefined && entry.account === undefined)
        account = entry.account_id as AccountId;
      else if (entry.account !== undefined && entry.account_id === undefined) {
        account = { purpose: entry.account.purpose, ownerId: entry.account.owner_id, currency };
      }
      if (!account) {
        errors.push({
          path: `/entries/${index}`,
          rule: 'oneOf',
          message: 'give either account_id or account',
        });
        return [];
      }
      return [{ account, currency, direction: entry.direction, amountMinor }];
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      errors.push({ path: `/entries/${index}/amount`, rule: error.code, message: error.message });
      return [];
    }
  });
  if (errors.length > 0) throw ledgerErrors.postingInvalid(errors);
  return {
    idempotencyKey: byHandKey(body.idempotency_key),
    description: body.description,
    cause: body.cause,
    entries,
    metadata: body.metadata,
  };
}

/** A batch's transactions in the ledger's terms, and the problems of those that could not be read. */
export function toPostings(transactions: readonly z.output<typeof PostingBody>[]) {
  const inputs: PostingInput[] = [];
  const early = new Map<number, DomainError>();
  transactions.forEach((item, index) => {
    try {
      inputs.push(toPosting(item));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      early.set(index, error);
    }
  });
  return { inputs, early };
}

/** The atomic batch refused before anything was tried: some transactions could not be read. */
export const batchRejected = (early: ReadonlyMap<number, DomainError>) =>
  ledgerErrors.batchRejected(
    [...early].map(([index, error]) => ({ index, code: error.code, message: error.message })),
  );

export function ledgerRoutes(ledger: LedgerService, approvals: LedgerApprovals): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/accounts',
      summary: 'List ledger accounts',
      description: 'Operators see every account; a partner sees only its own.',
      tags: LEDGER,
      access: READERS,
      query: z.strictObject({
        ...pageQuery,
        owner_id: z.string().max(100).optional(),
        purpose: z.enum(ACCOUNT_PURPOSES).optional(),
        currency: z.string().max(8).optional(),
      }),
      response: page(AccountJson),
      handler: async (ctx, { query }) =>
        toPage(
          await ledger.listAccounts(ctx, {
            ownerId: query.owner_id,
            purpose: query.purpose,
            currency: query.currency,
            after: query.after,
            limit: query.limit,
          }),
          accountJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/accounts/:account_id',
      summary: 'Get an account and its balance',
      description: 'The balance now, or as of a past time with `as_of` (recomputed from the entries).',
      tags: LEDGER,
      access: READERS,
      params: accountIdParams,
      query: z.strictObject({ as_of: timestamp.optional() }),
      response: BalanceJson,
      handler: async (ctx, { params, query }) => {
        const account = await ledger.getAccount(ctx, params.account_id);
        return balanceJson(
          await ledger.balance(
            ctx,
            account.id as AccountId,
            query.as_of ? { asOf: new Date(query.as_of) } : {},
          ),
        );
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/accounts/:account_id/statement',
      summary: "An account's statement",
      description: 'Entries in posting order, each with the balance after it; paginated with `after`.',
      tags: LEDGER,
      access: READERS,
      params: accountIdParams,
      query: z.strictObject({ ...pageQuery, after: z.string().max(80).optional() }),
      response: page(StatementLineJson).extend({ account: AccountJson }),
      handler: async (ctx, { params, query }) => {
        const statement = await ledger.statement(ctx, params.account_id, {
          ...(query.after !== undefined ? { after: query.after } : {}),
          limit: query.limit,
        });
        return {
          ...toPage(statement.lines, statementLineJson(statement.account)),
          account: accountJson(statement.account),
        };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/transactions',
      summary: 'List ledger transactions',
      description:
        'Newest first. Operators see every transaction whole. A partner sees those touching its accounts, ' +
        PARTNER_VIEW,
      tags: LEDGER,
      access: READERS,
      query: z.strictObject({
        ...pageQuery,
        account_id: idSchema('acc').optional(),
        cause_kind: z.enum(CAUSE_KINDS).optional(),
        cause_id: z.string().max(100).optional(),
      }),
      response: page(TransactionJson),
      handler: async (ctx, { query }) =>
        toPage(
          await ledger.listTransactions(ctx, {
            ...(query.account_id !== undefined ? { accountId: query.account_id } : {}),
            cause: {
              ...(query.cause_kind ? { kind: query.cause_kind } : {}),
              ...(query.cause_id ? { id: query.cause_id } : {}),
            },
            after: query.after,
            limit: query.limit,
          }),
          transactionJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/transactions/:transaction_id',
      summary: 'Get a ledger transaction',
      description:
        'Operators see every transaction whole. A partner sees one only when it touches its accounts ' +
        `(another's answers \`404 ledger.transaction_not_found\`, as a missing one), ${PARTNER_VIEW}`,
      tags: LEDGER,
      access: READERS,
      params: transactionIdParams,
      response: TransactionJson,
      handler: async (ctx, { params }) =>
        transactionJson(await ledger.transaction(ctx, params.transaction_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/ledger/transactions',
      summary: 'Post a transaction by hand',
      description:
        'For corrections and adjustments by the operator. Debits must equal credits per currency ' +
        '(`422 ledger.entries_must_balance`); a non-negative account may not go below zero (`409 ledger.insufficient_funds`). ' +
        'The same `idempotency_key` with the same content returns the original, with `replayed: true`; with other content it is ' +
        '`409 ledger.exists_with_different_content`.' +
        FOUR_EYES,
      tags: LEDGER,
      access: POSTERS,
      audit: { action: 'ledger.transaction.post' },
      idempotencyKey: 'optional',
      body: PostingBody,
      status: 201,
      response: TransactionJson.extend({ replayed: z.boolean() }),
      handler: async (ctx, { body }) => {
        const { transaction, replayed } = await approvals.post(ctx, toPosting(body));
        if (!replayed)
          await recordAudit(ctx, {
            action: 'ledger.transaction.post',
            targetId: transaction.id,
            outcome: 'succeeded',
          });
        return { ...transactionJson(transaction), replayed };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/ledger/transactions/:transaction_id/reverse',
      summary: 'Reverse a transaction',
      description:
        'Posts its mirror image; the original stays as it was. A transaction is reversed once: the same ' +
        '`idempotency_key` again returns that reversal with `replayed: true`, another key answers ' +
        '`409 ledger.already_reversed` naming it in `reversal_id`. A reversal is final (`422 ledger.reversal_not_reversible`): ' +
        'to undo one, post the movement anew. Postings whose money moves as the payment provider answers are not ' +
        'reversed: a payout’s (`422 ledger.payout_not_reversible`), and a payment’s, a refund’s or a chargeback’s ' +
        '(`422 ledger.provider_posting_not_reversible`).' +
        FOUR_EYES,
      tags: LEDGER,
      access: POSTERS,
      audit: { action: 'ledger.transaction.reverse', targetParam: 'transaction_id' },
      params: transactionIdParams,
      body: ReversalBody,
      status: 201,
      response: TransactionJson.extend({ replayed: z.boolean() }),
      handler: async (ctx, { params, body }) => {
        const { transaction, replayed } = await approvals.reverse(ctx, params.transaction_id, {
          idempotencyKey: byHandKey(body.idempotency_key),
          ...(body.description !== undefined ? { description: body.description } : {}),
        });
        if (!replayed)
          await recordAudit(ctx, {
            action: 'ledger.transaction.reverse',
            targetId: transaction.id,
            outcome: 'succeeded',
          });
        return { ...transactionJson(transaction), replayed };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/ledger/batches',
      summary: 'Post many transactions',
      description:
        `Up to ${BATCH_MAX} transactions, applied in order. \`atomic: true\`: all or none ` +
        '(`422 ledger.batch_rejected` naming each failed item); `false`: each item stands alone and its result says what happened. ' +
        'For four eyes the batch is one movement: what its posted items move counts at once, and beyond the threshold the ' +
        'whole batch is refused, atomic or not.' +
        FOUR_EYES,
      tags: LEDGER,
      access: POSTERS,
      audit: { action: 'ledger.batch.post' },
      bodyLimitBytes: BATCH_BODY_LIMIT_BYTES,
      body: z.strictObject({ atomic: z.boolean(), transactions: z.array(PostingBody).min(1).max(BATCH_MAX) }),
      response: z.object({ results: z.array(BatchResultJson) }),
      handler: async (ctx, { body }) => {
        const { inputs, early } = toPostings(body.transactions);
        if (body.atomic && early.size > 0) throw batchRejected(early);
        const indexes = body.transactions.map((_, index) => index).filter((index) => !early.has(index));
        const results = await approvals.postBatch(ctx, inputs, { atomic: body.atomic });
        const posted = results.filter((result) => result.status === 'posted').length;
        if (posted > 0)
          await recordAudit(ctx, {
            action: 'ledger.batch.post',
            targetId: null,
            outcome: 'succeeded',
            details: { posted },
          });
        const out = new Map<number, unknown>();
        for (const [index, error] of early)
          out.set(index, {
            index,
            status: 'rejected',
            error: { code: error.code, message: error.message, details: error.details },
          });
        results.forEach((result, position) => {
          const index = indexes[position] as number;
          out.set(index, batchResultJson(index, result));
        });
        return { results: body.transactions.map((_, index) => out.get(index)) as never };
      },
    }),
  ];
}
