import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const paymentsMigrations: ModuleMigrations = {
  module: 'payments',
  migrations: {
    '0001_payments': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table payments (
            id text primary key,
            reference text not null unique,
            order_ref text not null,
            customer_id text,
            payment_method text not null,
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            status text not null check (status in ('pending', 'authorized', 'captured', 'declined', 'failed', 'unknown')),
            failure_code text,
            captured_minor int8 not null default 0 check (captured_minor >= 0),
            refunded_minor int8 not null default 0 check (refunded_minor >= 0 and refunded_minor <= captured_minor),
            attempts integer not null default 0,
            created_at timestamptz not null,
            updated_at timestamptz not null
          );
          create index payments_order on payments (order_ref, id);
          create index payments_customer on payments (customer_id, id);
          create index payments_unsettled on payments (updated_at) where status in ('pending', 'authorized', 'unknown');

          create table payment_operations (
            id text primary key,
            payment_id text not null references payments (id),
            reference text not null unique,
            kind text not null check (kind in ('authorization', 'capture', 'refund', 'payout', 'chargeback')),
            status text not null check (status in ('requested', 'unknown', 'pending', 'succeeded', 'failed')),
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null,
            provider_id text,
            parent_reference text,
            failure_code text,
            created_at timestamptz not null,
            updated_at timestamptz not null
          );
          create index payment_operations_payment on payment_operations (payment_id, created_at);
          create index payment_operations_updated on payment_operations (updated_at);

          create table payment_provider_events (
            event_id text primary key,
            reference text not null,
            status text not null,
            received_at timestamptz not null
          );

          create table payment_refunds (
            id text primary key,
            payment_id text not null references payments (id),
            reference text not null unique,
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null,
            status text not null check (status in ('pending', 'succeeded', 'failed', 'unknown')),
            failure_code text,
            created_at timestamptz not null,
            updated_at timestamptz not null
          );
          create index payment_refunds_payment on payment_refunds (payment_id, id);
          create index payment_refunds_unsettled on payment_refunds (updated_at) where status in ('pending', 'unknown');

          create table payment_chargebacks (
            id text primary key,
            payment_id text not null references payments (id),
            reference text not null unique,
            order_ref text not null,
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null,
            status text not null check (status in ('open', 'decided')),
            liability text check (liability in ('platform', 'partner', 'split')),
            partner_id text,
            partner_share_minor int8 check (partner_share_minor >= 0),
            decided_by text,
            decided_at timestamptz,
            created_at timestamptz not null,
            check ((status = 'decided') = (liability is not null))
          );
          create index payment_chargebacks_payment on payment_chargebacks (payment_id, id);

          create table reconciliation_reports (
            id text primary key,
            since timestamptz not null,
            ran_at timestamptz not null,
            operations_checked integer not null,
            discrepancy_count integer not null,
            discrepancies jsonb not null
          );
        `.execute(db);
      },
    },
    '0002_refund_retries': {
      async up(db: Kysely<unknown>) {
        // A failed refund's money stays owed to the customer until a retry (a new refund at the
        // provider) is paid: each failed refund is retried at most once, by the refund it names.
        await sql`
          alter table payment_refunds add column retry_of text unique;
          alter table payment_refunds add column retried_by text unique;
          create index payment_refunds_owed on payment_refunds (id) where status = 'failed' and retried_by is null;
        `.execute(db);
      },
    },
    // The retry job takes open payments and refunds in turn, each less often the longer it stays
    // open: one that stays pending at the provider for days does not hold up the others.
    '0003_retry_turns': {
      async up(db: Kysely<unknown>) {
        await sql`
          alter table payments add column retries integer not null default 0, add column retry_from timestamptz;
          alter table payment_refunds add column retries integer not null default 0, add column retry_from timestamptz;
          drop index payments_unsettled;
          create index payments_unsettled on payments ((coalesce(retry_from, updated_at)))
            where status in ('pending', 'authorized', 'unknown');
          drop index payment_refunds_unsettled;
          create index payment_refunds_unsettled on payment_refunds ((coalesce(retry_from, updated_at)))
            where status in ('pending', 'unknown');
        `.execute(db);
      },
    },
  },
};
