import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const matchingMigrations: ModuleMigrations = {
  module: 'matching',
  migrations: {
    '0001_settings_and_allocations': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table matching_settings (
            capability text primary key,
            weight_price double precision not null check (weight_price >= 0),
            weight_quality double precision not null check (weight_quality >= 0),
            weight_reliability double precision not null check (weight_reliability >= 0),
            weight_lead_time double precision not null check (weight_lead_time >= 0),
            weight_affinity double precision not null check (weight_affinity >= 0),
            exposure_cap_share double precision not null
              check (exposure_cap_share > 0 and exposure_cap_share <= 1),
            exposure_window_days integer not null check (exposure_window_days between 1 and 365),
            exposure_min_allocations integer not null check (exposure_min_allocations >= 0),
            new_entrant_boost double precision not null check (new_entrant_boost between 0 and 1),
            new_entrant_days integer not null check (new_entrant_days between 0 and 365),
            max_per_partner integer not null check (max_per_partner between 1 and 10),
            updated_at timestamptz not null,
            updated_by text
          );

          create table allocations (
            id text primary key,
            seq bigint generated always as identity,
            capability text not null,
            region text not null,
            partner_id text not null,
            offer_id text not null,
            reservation_id text not null,
            quantity int8 not null check (quantity > 0),
            customer_id text,
            reference text,
            rank integer not null,
            score double precision not null,
            allocated_at timestamptz not null,
            allocated_by text,
            skipped jsonb not null default '[]'
          );
          create index allocations_recent on allocations (allocated_at);
          create index allocations_partner on allocations (partner_id, allocated_at);
          create trigger allocations_append_only before update or delete on allocations
            for each row execute function baton_forbid_change();
        `.execute(db);
      },
    },
  },
};
