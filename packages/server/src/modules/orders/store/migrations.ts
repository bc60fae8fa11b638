import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const ordersMigrations: ModuleMigrations = {
  module: 'orders',
  migrations: {
    '0001_quotes_orders_work_orders': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table quotes (
            id text primary key,
            customer_id text not null,
            offering_key text not null,
            offering_version_id text not null,
            quantity integer not null check (quantity > 0),
            region text not null,
            deadline timestamptz not null,
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            pricing_kind text not null check (pricing_kind in ('cost_plus', 'fixed')),
            cost_minor int8 not null check (cost_minor >= 0),
            margin_minor int8 not null check (margin_minor >= 0),
            total_minor int8 not null check (total_minor = cost_minor + margin_minor),
            commission_minor int8 not null check (commission_minor >= 0),
            fee_version_id text,
            earliest_finish timestamptz not null,
            valid_until timestamptz not null,
            order_id text unique,
            created_at timestamptz not null
          );
          create index quotes_customer on quotes (customer_id, id);

          create table quote_legs (
            quote_id text not null references quotes (id),
            step_key text not null,
            position integer not null,
            name text not null,
            capability text not null,
            constraints jsonb not null,
            after text[] not null,
            partner_id text not null,
            offer_id text not null,
            reservation_id text not null,
            allocation_id text not null,
            quantity integer not null check (quantity > 0),
            unit_price_minor int8 not null check (unit_price_minor >= 0),
            gross_minor int8 not null check (gross_minor >= 0),
            margin_minor int8 not null check (margin_minor >= 0),
            commission_minor int8 not null check (commission_minor >= 0),
            lead_time_hours integer not null check (lead_time_hours >= 0),
            earliest_start timestamptz not null,
            earliest_finish timestamptz not null,
            latest_start timestamptz not null,
            due_by timestamptz not null,
            score double precision not null,
            breakdown jsonb not null,
            primary key (quote_id, step_key)
          );

          create table orders (
            id text primary key,
            quote_id text not null unique references quotes (id),
            customer_id text not null,
            offering_key text not null,
            offering_version_id text not null,
            quantity integer not null check (quantity > 0),
            region text not null,
            deadline timestamptz not null,
            currency text not null,
            pricing_kind text not null check (pricing_kind in ('cost_plus', 'fixed')),
            total_minor int8 not null check (total_minor > 0),
            fee_version_id text,
            rejection_policy text not null check (rejection_policy in ('refund', 'redo')),
            acceptance_window_minutes integer not null check (acceptance_window_minutes > 0),
            auto_confirm_hours integer not null check (auto_confirm_hours > 0),
            status text not null check (status in
              ('awaiting_payment', 'in_progress', 'compensating', 'completed', 'failed', 'cancelled')),
            payment_id text,
            refunded_minor int8 not null default 0 check (refunded_minor >= 0 and refunded_minor <= total_minor),
            refunds integer not null default 0 check (refunds >= 0),
            failure_code text,
            failure_detail text,
            created_at timestamptz not null,
            updated_at timestamptz not null,
            closed_at timestamptz
          );
          create index orders_customer on orders (customer_id, id);
          create index orders_open on orders (status, id) where status in ('awaiting_payment', 'in_progress', 'compensating');

          create table order_legs (
            order_id text not null references orders (id),
            step_key text not null,
            position integer not null,
            name text not null,
            capability text not null,
            constraints jsonb not null,
            after text[] not null,
            quantity integer not null check (quantity > 0),
            -- What the customer paid for this leg: the partner's price and the margin at the quote.
            budget_minor int8 not null check (budget_minor > 0),
            status text not null check (status in ('planned', 'dispatched', 'done', 'refunded', 'cancelled')),
            partner_id text not null,
            offer_id text not null,
            reservation_id text not null,
            unit_price_minor int8 not null check (unit_price_minor >= 0),
            gross_minor int8 not null check (gross_minor >= 0),
            margin_minor int8 not null check (margin_minor >= 0 and gross_minor + margin_minor = budget_minor),
            lead_time_hours integer not null check (lead_time_hours >= 0),
            due_by timestamptz not null,
            expected_start timestamptz not null,
            expected_finish timestamptz not null,
            work_order_id text,
            attempts integer not null default 0 check (attempts >= 0),
            replans integer not null default 0 check (replans >= 0),
            -- Partners that failed this leg (declined, let it expire, were suspended): not asked again.
            failed_partner_ids text[] not null default '{}',
            late boolean not null default false,
            updated_at timestamptz not null,
            primary key (order_id, step_key)
          );

          create table work_orders (
            id text primary key,
            order_id text not null references orders (id),
            step_key text not null,
            attempt integer not null check (attempt > 0),
            partner_id text not null,
            offer_id text not null,
            reservation_id text not null,
            capability text not null,
            region text not null,
            quantity integer not null check (quantity > 0),
            currency text not null,
            unit_price_minor int8 not null check (unit_price_minor >= 0),
            gross_minor int8 not null check (gross_minor >= 0),
            status text not null check (status in ('offered', 'accepted', 'declined', 'expired', 'in_progress',
              'delivered', 'confirmed', 'rejected', 'cancelled')),
            accept_by timestamptz not null,
            due_by timestamptz not null,
            confirm_by timestamptz,
            late boolean not null default false,
            reason text,
            offered_at timestamptz not null,
            accepted_at timestamptz,
            started_at timestamptz,
            delivered_at timestamptz,
            closed_at timestamptz,
            updated_at timestamptz not null,
            unique (order_id, step_key, attempt)
          );
          create index work_orders_partner on work_orders (partner_id, id);
          create index work_orders_order on work_orders (order_id, id);
          create index work_orders_offered on work_orders (accept_by) where status = 'offered';
          create index work_orders_due on work_orders (due_by)
            where status in ('offered', 'accepted', 'in_progress') and not late;
          create index work_orders_delivered on work_orders (confirm_by) where status = 'delivered';
          create index work_orders_open_partner on work_orders (partner_id)
            where status in ('offered', 'accepted');
          create index order_legs_planned_partner on order_legs (partner_id) where status = 'planned';
        `.execute(db);
      },
    },
    '0002_order_fee_match': {
      async up(db: Kysely<unknown>) {
        // What the fee rules and subsidies match on, as it stood when the order was placed.
        await sql`
          alter table orders add column customer_segment text;
          alter table orders add column partner_tiers jsonb not null default '{}';
        `.execute(db);
      },
    },
    '0003_customer_subsidy': {
      async up(db: Kysely<unknown>) {
        // A customer-side subsidy pays part of the margin: the customer is charged the total less it.
        await sql`
          alter table quotes add column subsidy_minor int8 not null default 0
            check (subsidy_minor >= 0 and subsidy_minor <= margin_minor);
          alter table quotes add column subsidy_programme_id text;
          alter table quotes add column subsidy_kind text check (subsidy_kind in ('waiver', 'rebate'));
          alter table orders add column subsidy_minor int8 not null default 0
            check (subsidy_minor >= 0 and subsidy_minor < total_minor);
          alter table orders add column subsidy_programme_id text;
          alter table orders add column subsidy_returned_minor int8 not null default 0
            check (subsidy_returned_minor >= 0 and subsidy_returned_minor <= subsidy_minor);
        `.execute(db);
      },
    },
    '0004_max_redos': {
      async up(db: Kysely<unknown>) {
        // The offering version's bound on redoing a rejected leg, kept with the order.
        await sql`
          alter table orders add column max_redos integer not null default 2 check (max_redos >= 0);
        `.execute(db);
      },
    },
    '0005_refund_approvals': {
      async up(db: Kysely<unknown>) {
        // Four eyes on refunds by hand: above a threshold per currency (counting what one order
        // was already given back by hand alone), a refund is a request another operator decides.
        await sql`
          alter table orders add column refunded_alone_minor int8 not null default 0
            check (refunded_alone_minor >= 0);
          create table refund_thresholds (
            currency text primary key,
            approval_above_minor int8 not null check (approval_above_minor >= 0),
            updated_by text not null,
            updated_at timestamptz not null
          );
          create table refund_requests (
            id text primary key,
            order_id text not null references orders (id),
            step_key text,
            amount_minor int8 not null check (amount_minor > 0),
            currency text not null,
            reason text not null,
            status text not null check (status in ('pending', 'approved', 'rejected')),
            requested_by text not null,
            requested_at timestamptz not null,
            decided_by text,
            decided_at timestamptz,
            decision_reason text,
            refunded_minor int8 check (refunded_minor >= 0),
            subsidy_returned_minor int8 check (subsidy_returned_minor >= 0),
            check ((status = 'pending') = (decided_by is null and decided_at is null)),
            check ((status = 'approved') = (refunded_minor is not null and subsidy_returned_minor is not null)),
            -- Four eyes, kept by the database too: who filed a request may withdraw it, not approve it.
            check (status <> 'approved' or decided_by <> requested_by)
          );
          create index refund_requests_pending on refund_requests (id) where status = 'pending';
          create index refund_requests_order on refund_requests (order_id, id);
        `.execute(db);
      },
    },
    // A refund request left undecided expires: what was filed a week ago may no longer be right.
    '0006_refund_requests_expire': {
      async up(db: Kysely<unknown>) {
        await sql`
          alter table refund_requests add column expires_at timestamptz;
          update refund_requests set expires_at = requested_at + interval '7 days';
          alter table refund_requests alter column expires_at set not null;
          alter table refund_requests add check (expires_at > requested_at);
        `.execute(db);
      },
    },
    /**
     * Four eyes count per operator too: what one operator user gives back by hand alone in a
     * day (UTC), over all orders, is held to the threshold as what one order is given back, so
     * that refunds split over many orders do not slip under it.
     */
    '0007_refunded_alone_daily': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table refunded_alone_daily (
            user_id text not null,
            currency text not null,
            day date not null,
            refunded_minor numeric(40) not null check (refunded_minor > 0),
            primary key (user_id, currency, day)
          );
        `.execute(db);
      },
    },
  },
};
