import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const participantsMigrations: ModuleMigrations = {
  module: 'participants',
  migrations: {
    '0001_partners_and_customers': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table partner_types (
            key text primary key,
            name text not null,
            description text not null default '',
            profile_schema jsonb not null,
            current_rules_version integer,
            created_at timestamptz not null,
            updated_at timestamptz not null
          );

          create table engagement_rules (
            partner_type text not null references partner_types (key),
            version integer not null check (version > 0),
            title text not null,
            body text not null,
            grace_period_days integer not null check (grace_period_days >= 0),
            published_at timestamptz not null,
            published_by text,
            primary key (partner_type, version)
          );
          create trigger engagement_rules_append_only before update or delete on engagement_rules
            for each row execute function baton_forbid_change();

          create table partners (
            id text primary key,
            partner_type text not null references partner_types (key),
            name text not null,
            email text not null,
            regions text[] not null,
            profile jsonb not null,
            state text not null check (state in
              ('applied', 'under_review', 'active', 'probation', 'suspended', 'offboarded', 'rejected')),
            state_reason text,
            state_changed_at timestamptz not null,
            activated_at timestamptz,
            accepted_rules_version integer,
            accepted_rules_at timestamptz,
            invitation_id text,
            created_at timestamptz not null,
            updated_at timestamptz not null
          );
          create index partners_state on partners (state, id);
          create index partners_type on partners (partner_type, state, id);
          create index partners_regions on partners using gin (regions);
          -- One live partner per type and e-mail, enforced where concurrent applications meet.
          create unique index partners_live_email on partners (partner_type, lower(email))
            where state not in ('rejected', 'offboarded');

          create table partner_transitions (
            id text primary key,
            partner_id text not null references partners (id),
            from_state text,
            to_state text not null,
            reason text not null,
            actor_kind text not null,
            actor_id text,
            occurred_at timestamptz not null
          );
          create index partner_transitions_partner on partner_transitions (partner_id, id);
          create trigger partner_transitions_append_only before update or delete on partner_transitions
            for each row execute function baton_forbid_change();

          create table rules_acceptances (
            id text primary key,
            partner_id text not null references partners (id),
            partner_type text not null,
            version integer not null,
            user_id text,
            ip text,
            accepted_at timestamptz not null,
            unique (partner_id, version)
          );
          create trigger rules_acceptances_append_only before update or delete on rules_acceptances
            for each row execute function baton_forbid_change();

          create table partner_invitations (
            id text primary key,
            partner_type text not null references partner_types (key),
            email text not null,
            name text,
            token_hash bytea not null unique,
            pre_approved boolean not null,
            invited_by text,
            expires_at timestamptz not null,
            accepted_at timestamptz,
            partner_id text,
            revoked_at timestamptz,
            created_at timestamptz not null
          );

          create table customers (
            id text primary key,
            kind text not null check (kind in ('consumer', 'business')),
            name text not null,
            email text not null,
            region text,
            created_at timestamptz not null,
            updated_at timestamptz not null
          );
          create unique index customers_email on customers (lower(email));
        `.execute(db);
      },
    },
    '0002_partner_tier_customer_segment': {
      async up(db: Kysely<unknown>) {
        // The tier and the segment fee rules and subsidy programmes match on; operators set them.
        await sql`
          alter table partners add column tier text not null default 'standard';
          alter table customers add column segment text;
        `.execute(db);
      },
    },
  },
};
