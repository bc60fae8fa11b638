import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const subsidiesMigrations: ModuleMigrations = {
  module: 'subsidies',
  migrations: {
    '0001_programmes_and_applications': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table subsidy_programmes (
            id text primary key,
            name text not null,
            side text not null check (side in ('partner', 'customer')),
            kind text not null check (kind in ('waiver', 'rebate')),
            share_bps integer not null check (share_bps between 1 and 10000),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            budget_minor int8 not null check (budget_minor > 0),
            cap_per_participant_minor int8 not null check (cap_per_participant_minor > 0),
            partner_types text[] not null,
            regions text[] not null,
            customer_segments text[] not null,
            capabilities text[] not null,
            starts_at timestamptz not null,
            ends_at timestamptz not null check (ends_at > starts_at),
            status text not null check (status in ('draft', 'active', 'exhausted', 'ended', 'cancelled')),
            funded_minor int8 not null default 0 check (funded_minor >= 0),
            spent_minor int8 not null default 0 check (spent_minor >= 0),
            returned_minor int8 not null default 0 check (returned_minor >= 0),
            fundings integer not null default 0 check (fundings >= 0),
            applications integer not null default 0 check (applications >= 0),
            created_at timestamptz not null,
            updated_at timestamptz not null,
            closed_at timestamptz,
            -- The budget account's balance, which the ledger keeps at or above zero.
            check (funded_minor - spent_minor - returned_minor >= 0)
          );
          create index subsidy_programmes_open on subsidy_programmes (side, currency, ends_at)
            where status in ('active', 'exhausted');

          create table subsidy_participants (
            programme_id text not null references subsidy_programmes (id),
            participant_id text not null,
            spent_minor int8 not null check (spent_minor >= 0),
            applications integer not null check (applications >= 0),
            updated_at timestamptz not null,
            primary key (programme_id, participant_id)
          );

          create table subsidy_applications (
            id text primary key,
            idempotency_key text not null unique,
            fingerprint text not null,
            programme_id text references subsidy_programmes (id),
            participant_id text,
            cause_kind text not null,
            cause_id text not null,
            fee_minor int8 not null check (fee_minor >= 0),
            currency text not null,
            amount_minor int8 not null check (amount_minor >= 0),
            refunded_minor int8 not null default 0 check (refunded_minor >= 0 and refunded_minor <= amount_minor),
            beneficiary_account_id text,
            transaction_id text,
            created_at timestamptz not null
          );
          create index subsidy_applications_programme on subsidy_applications (programme_id, id)
            where programme_id is not null;
          create index subsidy_applications_cause on subsidy_applications (cause_kind, cause_id);

          create table subsidy_refunds (
            idempotency_key text primary key,
            application_id text not null references subsidy_applications (id),
            amount_minor int8 not null check (amount_minor > 0),
            transaction_id text not null,
            created_at timestamptz not null
          );
        `.execute(db);
      },
    },
  },
};
