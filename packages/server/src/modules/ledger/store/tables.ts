import type { ColumnType, Generated } from 'kysely';
import type { NormalSide, OwnerKind } from '../domain/chart.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    ledger_accounts: LedgerAccountsTable;
    ledger_transactions: LedgerTransactionsTable;
    ledger_entries: LedgerEntriesTable;
    ledger_balances: LedgerBalancesTable;
    ledger_chain: LedgerChainTable;
    ledger_approval_thresholds: LedgerApprovalThresholdsTable;
    ledger_moved_alone: LedgerMovedAloneTable;
    ledger_posting_requests: LedgerPostingRequestsTable;
  }
}

type Json<T> = ColumnType<T, string, string>;

export interface LedgerAccountsTable {
  id: string;
  purpose: string;
  owner_kind: OwnerKind;
  owner_id: string;
  currency: string;
  normal_side: NormalSide;
  non_negative: boolean;
  slots: number;
  created_at: Date;
}

export interface LedgerTransactionsTable {
  id: string;
  seq: Generated<bigint>;
  tx_id: Generated<bigint>;
  idempotency_key: string;
  description: string;
  cause_kind: string;
  cause_id: string;
  metadata: Json<Record<string, string>>;
  posted_at: Date;
  fingerprint: Buffer;
  content_hash: Buffer;
}

/** One line of a transaction: debits positive, credits negative. */
export interface LedgerEntriesTable {
  transaction_id: string;
  position: number;
  seq: Generated<bigint>;
  account_id: string;
  currency: string;
  amount_minor: bigint;
  posted_at: Date;
}

/**
 * An account's balance, kept in one or more slots (see chart.ts): debits positive, credits
 * negative, like the entries.
 */
export interface LedgerBalancesTable {
  account_id: string;
  slot: number;
  balance_minor: bigint;
  /** +1 for accounts whose balance grows with debits, -1 for credits. */
  normal_sign: number;
  non_negative: boolean;
}

/** The hash chain over transactions, in the order they were sealed. */
export interface LedgerChainTable {
  position: bigint;
  transaction_id: string;
  tx_id: bigint;
  seq: bigint;
  chain_hash: Buffer;
  sealed_at: Date;
}

/** Per currency, what one operator may move by hand alone in a day (UTC). */
export interface LedgerApprovalThresholdsTable {
  currency: string;
  approval_above_minor: bigint;
  updated_by: string;
  updated_at: Date;
}

/** What an operator moved by hand alone, per currency and day (UTC). */
export interface LedgerMovedAloneTable {
  user_id: string;
  currency: string;
  day: string;
  /** `numeric`: a day's batches may add up beyond `int8`. */
  moved_minor: ColumnType<string, bigint, bigint>;
}

export type PostingRequestAction = 'post' | 'reverse' | 'batch';
export type PostingRequestStatus = 'pending' | 'approved' | 'rejected';

/** Money to move by hand that waits for, or got, a second operator's decision. */
export interface LedgerPostingRequestsTable {
  id: string;
  action: PostingRequestAction;
  /** The action's content, as `approvals.ts` writes it. */
  content: Json<unknown>;
  /** What it moves per currency: `{ "EUR": "125000" }`, in minor units. */
  moves: Json<Record<string, string>>;
  reason: string;
  status: PostingRequestStatus;
  requested_by: string;
  requested_at: Date;
  /** A request still pending then can no longer be decided. */
  expires_at: Date;
  decided_by: string | null;
  decided_at: Date | null;
  decision_reason: string | null;
  transaction_ids: string[] | null;
}
