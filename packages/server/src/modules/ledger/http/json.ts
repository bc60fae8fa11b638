import { z } from 'zod';
import { iso, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import { CAUSE_KINDS } from '../domain/posting.js';
import type { Balance, Statement } from '../service.js';
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
