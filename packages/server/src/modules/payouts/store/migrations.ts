import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const payoutsMigrations: ModuleMigrations = {
  module: 'payouts',
  migrations: {
    '0001_payouts': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table payout_settings (
            partner_id text primary key,
            schedule text not null check (schedule in ('daily', 'weekly', 'manual')),
            weekday text check (weekday in
              ('monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday')),
            minimum_minor int8 not null check (minimum_minor >= 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            destination text,
            reserve_bps integer not null check (reserve_bps between 0 and 10000),
            reserve_days integer not null check (reserve_days between 0 and 365),
            last_run_on text,
            earnings_cursor text,
            created_at timestamptz not null,
            updated_at timestamptz not null,
            -- A weekly schedule names its weekday; the others have none.
            check ((schedule = 'weekly') = (weekday is not null))
          );

          create table payout_batches (
            id text primary key,
            created_at timestamptz not null,
            actor_kind text not null,
            actor_id text,
            partner_ids text[],
            include_manual boolean not null,
            payout_count integer not null default 0 check (payout_count >= 0)
          );

          create table payouts (
            id text primary key,
            batch_id text not null references payout_batches (id),
            partner_id text not null,
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            destination text not null,
            status text not null check (status in ('pending', 'sent', 'paid', 'failed')),
            failure_code text,
            provider_id text,
            attempts integer not null default 0,
            netted_minor int8 not null check (netted_minor >= 0),
            reserved_minor int8 not null check (reserved_minor >= 0),
            created_at timestamptz not null,
            updated_at timestamptz not null,
            settled_at timestamptz,
            check ((status in ('paid', 'failed')) = (settled_at is not null))
          );
          create index payouts_partner on payouts (partner_id, id);
          create index payouts_batch on payouts (batch_id, id);
          create index payouts_unsettled on payouts (id) where status in ('pending', 'sent');

          create table reserve_holds (
            id text primary key,
            partner_id text not null,
            batch_id text not null references payout_batches (id),
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            held_at timestamptz not null,
            release_at timestamptz not null,
            released_at timestamptz
          );
          create index reserve_holds_due on reserve_holds (partner_id, release_at) where released_at is null;
        `.execute(db);
      },
    },
    // A changed payout destination holds the partner's payouts for a while (domain/payout.ts).
    '0002_destination_hold': {
      async up(db: Kysely<unknown>) {
        await sql`alter table payout_settings add column destination_held_until timestamptz`.execute(db);
      },
    },
    // Only a partner's first destination goes without a hold; one set after the destination was
    // removed is a change too, however long ago the removal was.
    '0003_had_destination': {
      async up(db: Kysely<unknown>) {
        await sql`
          alter table payout_settings add column had_destination boolean not null default false;
          update payout_settings set had_destination = true
            where destination is not null or destination_held_until is not null;
        `.execute(db);
      },
    },
    // A paid payout can come back from the partner's bank days later: status `returned`.
    '0004_returned_payouts': {
      async up(db: Kysely<unknown>) {
        await sql`
          alter table payouts
            drop constraint payouts_status_check,
            drop constraint payouts_check,
            add column returned_at timestamptz,
            add constraint payouts_status_check
              check (status in ('pending', 'sent', 'paid', 'failed', 'returned')),
            add constraint payouts_check
              check ((status in ('paid', 'failed', 'returned')) = (settled_at is not null)),
            add constraint payouts_returned_check check ((status = 'returned') = (returned_at is not null));
        `.execute(db);
      },
    },
    // A destination a payout failed on, for a reason that says it cannot be paid, is paid no more
    // until it is set again.
    '0005_destination_failure': {
      async up(db: Kysely<unknown>) {
        await sql`
          alter table payout_settings
            add column destination_failure_code text,
            add column destination_failed_at timestamptz,
            add constraint payout_settings_destination_failure_check
              check ((destination_failure_code is null) = (destination_failed_at is null));
        `.execute(db);
      },
    },
  },
};
