import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const catalogMigrations: ModuleMigrations = {
  module: 'catalog',
  migrations: {
    '0001_offers_and_capacity': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table offers (
            id text primary key,
            partner_id text not null,
            capability_key text not null,
            capability_version integer not null check (capability_version > 0),
            external_ref text,
            attributes jsonb not null,
            unit_price_minor int8 not null check (unit_price_minor >= 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            min_quantity int8 not null check (min_quantity > 0),
            max_quantity int8 not null check (max_quantity >= min_quantity),
            lead_time_hours integer not null check (lead_time_hours >= 0),
            regions text[] not null,
            capacity_per_period int8 not null check (capacity_per_period > 0),
            capacity_period text not null check (capacity_period in ('day', 'week', 'month')),
            status text not null check (status in ('draft', 'active', 'paused', 'non_compliant')),
            compliance_errors jsonb not null default '[]',
            created_at timestamptz not null,
            updated_at timestamptz not null,
            -- A partner's own reference names one offer; offers without one are not constrained.
            unique (partner_id, external_ref)
          );
          create index offers_partner on offers (partner_id, id);
          create index offers_capability on offers (capability_key, status, id);
          create index offers_status on offers (status, id);
          create index offers_regions on offers using gin (regions);

          create table capacity_counters (
            offer_id text not null references offers (id),
            period_start timestamptz not null,
            reserved int8 not null check (reserved >= 0),
            primary key (offer_id, period_start)
          );

          create table reservations (
            id text primary key,
            offer_id text not null references offers (id),
            partner_id text not null,
            period_start timestamptz not null,
            quantity int8 not null check (quantity > 0),
            status text not null check (status in ('held', 'confirmed', 'released', 'expired')),
            expires_at timestamptz,
            reference text,
            created_at timestamptz not null,
            settled_at timestamptz,
            -- Only holds expire; a confirmed reservation keeps its capacity until released.
            check ((status = 'held') = (expires_at is not null) or status in ('released', 'expired'))
          );
          create index reservations_offer_period on reservations (offer_id, period_start)
            where status = 'held';
          create index reservations_expiry on reservations (expires_at) where status = 'held';
          create index reservations_offer on reservations (offer_id, id);
        `.execute(db);
      },
    },
  },
};
