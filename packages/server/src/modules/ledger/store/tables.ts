import type { ColumnType, Generated } from 'kysely';
import type { NormalSide, OwnerKind } from '../domain/chart.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    ledger_accounts: LedgerAccountsTable;
    ledger_transactions: LedgerTransactionsTable;
    ledger_entries: LedgerEntriesTable;
    ledger_balances: LedgerBalancesTable;
    ledger_chain: LedgerChainTable;
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
