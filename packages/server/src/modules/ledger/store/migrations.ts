import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

/*
 * The books defend themselves: whatever the application does, the database refuses
 *   - an entry whose transaction does not balance in its currency (checked at commit, by a
 *     deferred constraint trigger, so the entries of one transaction can be written in any order),
 *   - an entry in a currency other than its account's, or for an account or transaction that
 *     does not exist, and a transaction with fewer than two entries,
 *   - any UPDATE, DELETE or TRUNCATE of transactions, entries and the hash chain,
 *   - a balance below zero on an account flagged non-negative (a check on the balance row).
 */
export const ledgerMigrations: ModuleMigrations = {
  module: 'ledger',
  migrations: {
    '0001_books': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table ledger_accounts (
            id text primary key,
            purpose text not null,
            owner_kind text not null check (owner_kind in ('platform', 'partner', 'order', 'programme')),
            owner_id text not null,
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            normal_side text not null check (normal_side in ('debit', 'credit')),
            non_negative boolean not null,
            slots smallint not null check (slots between 1 and 64),
            created_at timestamptz not null,
            unique (purpose, owner_id, currency)
          );
          create index ledger_accounts_owner on ledger_accounts (owner_kind, owner_id, id);
          create index ledger_accounts_purpose on ledger_accounts (purpose, id);

          create table ledger_transactions (
            id text primary key,
            seq int8 generated always as identity,
            tx_id int8 not null default (pg_current_xact_id()::text::int8),
            idempotency_key text not null unique,
            description text not null,
            cause_kind text not null,
            cause_id text not null,
            metadata jsonb not null,
            posted_at timestamptz not null,
            fingerprint bytea not null,
            content_hash bytea not null
          );
          create index ledger_transactions_cause on ledger_transactions (cause_kind, cause_id);
          create index ledger_transactions_position on ledger_transactions (tx_id, seq);
          create index ledger_transactions_posted on ledger_transactions (posted_at, seq);

          create table ledger_entries (
            transaction_id text not null,
            position smallint not null,
            seq int8 generated always as identity,
            account_id text not null,
            currency text not null,
            amount_minor int8 not null check (amount_minor <> 0),
            posted_at timestamptz not null,
            primary key (transaction_id, position)
          );
          create index ledger_entries_account on ledger_entries (account_id, posted_at, seq) include (amount_minor);

          create table ledger_balances (
            account_id text not null,
            slot smallint not null,
            balance_minor int8 not null,
            normal_sign smallint not null check (normal_sign in (-1, 1)),
            non_negative boolean not null,
            primary key (account_id, slot),
            constraint ledger_balance_non_negative check (not non_negative or balance_minor * normal_sign >= 0)
          );

          create table ledger_chain (
            position int8 primary key,
            transaction_id text not null unique,
            tx_id int8 not null,
            seq int8 not null,
            chain_hash bytea not null,
            sealed_at timestamptz not null
          );

          create function ledger_check_entry() returns trigger language plpgsql as $$
          declare
            off_currency text;
          begin
            if not exists (select 1 from ledger_transactions where id = new.transaction_id) then
              raise exception 'ledger entry names transaction %, which does not exist', new.transaction_id
                using errcode = 'foreign_key_violation';
            end if;
            if not exists (select 1 from ledger_accounts where id = new.account_id and currency = new.currency) then
              raise exception 'ledger entry of % names account % in %, which does not exist in that currency',
                new.transaction_id, new.account_id, new.currency
                using errcode = 'foreign_key_violation';
            end if;
            select currency into off_currency from ledger_entries
              where transaction_id = new.transaction_id
              group by currency having sum(amount_minor) <> 0 limit 1;
            if found then
              raise exception 'ledger transaction % does not balance in %', new.transaction_id, off_currency
                using errcode = 'check_violation';
            end if;
            return null;
          end $$;
          create constraint trigger ledger_entries_balance after insert on ledger_entries
            deferrable initially deferred for each row execute function ledger_check_entry();

          create function ledger_check_transaction() returns trigger language plpgsql as $$
          begin
            if (select count(*) from ledger_entries where transaction_id = new.id) < 2 then
              raise exception 'ledger transaction % has fewer than two entries', new.id
                using errcode = 'check_violation';
            end if;
            return null;
          end $$;
          create constraint trigger ledger_transactions_entries after insert on ledger_transactions
            deferrable initially deferred for each row execute function ledger_check_transaction();

          create trigger ledger_transactions_append_only before update or delete on ledger_transactions
            for each row execute function baton_forbid_change();
          create trigger ledger_transactions_no_truncate before truncate on ledger_transactions
            for each statement execute function baton_forbid_change();
          create trigger ledger_entries_append_only before update or delete on ledger_entries
            for each row execute function baton_forbid_change();
          create trigger ledger_entries_no_truncate before truncate on ledger_entries
            for each statement execute function baton_forbid_change();
          create trigger ledger_chain_append_only before update or delete on ledger_chain
            for each row execute function baton_forbid_change();
          create trigger ledger_chain_no_truncate before truncate on ledger_chain
            for each statement execute function baton_forbid_change();
          create trigger ledger_accounts_no_delete before delete on ledger_accounts
            for each row execute function baton_forbid_change();
        `.execute(db);
      },
    },
  },
};
