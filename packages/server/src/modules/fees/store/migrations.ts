import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const feesMigrations: ModuleMigrations = {
  module: 'fees',
  migrations: {
    '0001_fees': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table fee_schedule_versions (
            id text primary key,
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            effective_from timestamptz not null,
            note text,
            created_at timestamptz not null,
            -- One version takes over at a time: two starting together would leave the order's fee open.
            unique (currency, effective_from)
          );

          create table fee_rules (
            id text primary key,
            version_id text not null references fee_schedule_versions (id),
            position integer not null check (position >= 0),
            capability text,
            partner_type text,
            tier text,
            region text,
            customer_segment text,
            commission_bps integer not null check (commission_bps between 0 and 10000),
            fixed_minor int8 not null check (fixed_minor >= 0),
            floor_minor int8 check (floor_minor >= 0),
            cap_minor int8 check (cap_minor >= 0 and (floor_minor is null or cap_minor >= floor_minor)),
            rounding text not null check (rounding in ('half_up', 'half_even', 'down')),
            unique (version_id, position)
          );

          create table subscription_plans (
            id text primary key,
            key text not null unique,
            name text not null,
            interval text not null check (interval in ('month', 'year')),
            price_minor int8 not null check (price_minor >= 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            trial_days integer not null check (trial_days >= 0),
            created_at timestamptz not null
          );

          create table subscriptions (
            id text primary key,
            partner_id text not null,
            plan_id text not null references subscription_plans (id),
            status text not null check (status in ('trialing', 'active', 'canceled')),
            billing_anchor timestamptz not null,
            periods_billed integer not null check (periods_billed >= 0),
            current_period_start timestamptz not null,
            current_period_end timestamptz not null check (current_period_end > current_period_start),
            cancel_at_period_end boolean not null,
            canceled_at timestamptz,
            created_at timestamptz not null,
            updated_at timestamptz not null,
            check ((status = 'canceled') = (canceled_at is not null))
          );
          -- A partner holds a plan once at a time.
          create unique index subscriptions_live on subscriptions (partner_id, plan_id)
            where status <> 'canceled';
          create index subscriptions_partner on subscriptions (partner_id, id);
          create index subscriptions_due on subscriptions (current_period_end, id)
            where status <> 'canceled';

          create table subscription_charges (
            id text primary key,
            subscription_id text not null references subscriptions (id),
            partner_id text not null,
            period_start timestamptz not null,
            period_end timestamptz not null,
            amount_minor int8 not null check (amount_minor >= 0),
            currency text not null,
            from_payable_minor int8 not null check (from_payable_minor >= 0),
            owed_minor int8 not null check (owed_minor >= 0),
            transaction_id text,
            created_at timestamptz not null,
            check (from_payable_minor + owed_minor = amount_minor),
            unique (subscription_id, period_start)
          );
          create index subscription_charges_partner on subscription_charges (partner_id, id);

          create table value_added_services (
            key text primary key,
            name text not null,
            description text,
            price_minor int8 not null check (price_minor > 0),
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            orderable_by_partner boolean not null,
            created_at timestamptz not null
          );

          create table service_charges (
            id text primary key,
            partner_id text not null,
            service_key text not null references value_added_services (key),
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null,
            from_payable_minor int8 not null check (from_payable_minor >= 0),
            owed_minor int8 not null check (owed_minor >= 0),
            transaction_id text not null,
            note text,
            created_at timestamptz not null,
            check (from_payable_minor + owed_minor = amount_minor)
          );
          create index service_charges_partner on service_charges (partner_id, id);
        `.execute(db);
      },
    },
  },
};
