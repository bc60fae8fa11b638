import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const offeringsMigrations: ModuleMigrations = {
  module: 'offerings',
  migrations: {
    '0001_offerings_and_versions': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table offerings (
            key text primary key,
            name text not null,
            status text not null check (status in ('active', 'retired')),
            current_version integer not null check (current_version > 0),
            created_at timestamptz not null,
            updated_at timestamptz not null,
            retired_at timestamptz,
            check ((status = 'retired') = (retired_at is not null))
          );
          create index offerings_status on offerings (status, key);

          -- Orders keep the version they were placed on, so a version never changes.
          create table offering_versions (
            id text primary key,
            offering_key text not null references offerings (key),
            version integer not null check (version > 0),
            name text not null,
            description text not null,
            unit text not null,
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            pricing_kind text not null check (pricing_kind in ('cost_plus', 'fixed')),
            margin_bps integer check (margin_bps between 0 and 10000),
            unit_price_minor int8 check (unit_price_minor > 0),
            regions text[] not null check (cardinality(regions) > 0),
            steps jsonb not null,
            quantity_min integer not null check (quantity_min >= 1),
            quantity_max integer not null check (quantity_max >= quantity_min),
            quote_validity_minutes integer not null check (quote_validity_minutes >= 1),
            acceptance_window_minutes integer not null check (acceptance_window_minutes >= 1),
            auto_confirm_hours integer not null check (auto_confirm_hours >= 1),
            rejection_policy text not null check (rejection_policy in ('refund', 'redo')),
            published_at timestamptz not null,
            published_by text,
            unique (offering_key, version),
            check (
              (pricing_kind = 'cost_plus' and margin_bps is not null and unit_price_minor is null) or
              (pricing_kind = 'fixed' and unit_price_minor is not null and margin_bps is null)
            )
          );
          create trigger offering_versions_append_only before update or delete on offering_versions
            for each row execute function baton_forbid_change();
        `.execute(db);
      },
    },
    '0002_max_redos': {
      async up(db: Kysely<unknown>) {
        // How many times a rejected leg is redone before the next rejection is refunded. Versions
        // published before it redo twice at most.
        await sql`
          alter table offering_versions add column max_redos integer not null default 2
            check (max_redos between 0 and 10);
        `.execute(db);
      },
    },
  },
};
