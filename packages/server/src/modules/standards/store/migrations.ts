import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const standardsMigrations: ModuleMigrations = {
  module: 'standards',
  migrations: {
    '0001_capabilities_and_certification': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table certification_programs (
            key text primary key,
            name text not null,
            description text not null default '',
            requirements text not null default '',
            evidence jsonb not null,
            validity_days integer not null check (validity_days > 0),
            created_at timestamptz not null,
            updated_at timestamptz not null
          );

          create table capabilities (
            key text primary key,
            current_version integer not null check (current_version > 0),
            created_at timestamptz not null,
            updated_at timestamptz not null
          );

          -- Offers name the version they were checked against, so a version never changes.
          create table capability_versions (
            key text not null references capabilities (key),
            version integer not null check (version > 0),
            name text not null,
            unit text not null,
            attribute_schema jsonb not null,
            required_certifications text[] not null,
            max_lead_time_hours integer check (max_lead_time_hours > 0),
            acceptance_window_hours integer check (acceptance_window_hours > 0),
            published_at timestamptz not null,
            published_by text,
            primary key (key, version)
          );
          create trigger capability_versions_append_only before update or delete on capability_versions
            for each row execute function baton_forbid_change();

          create table certifications (
            id text primary key,
            partner_id text not null,
            program_key text not null references certification_programs (key),
            status text not null check (status in ('pending', 'granted', 'rejected', 'revoked', 'expired')),
            evidence jsonb not null,
            valid_from timestamptz,
            valid_until timestamptz,
            renewal_of text references certifications (id),
            reason text,
            applied_by text,
            applied_at timestamptz not null,
            decided_by text,
            decided_at timestamptz,
            updated_at timestamptz not null,
            check ((valid_from is null) = (valid_until is null)),
            check (valid_until > valid_from),
            check (status in ('pending', 'rejected') or valid_from is not null)
          );
          create index certifications_partner on certifications (partner_id, program_key, id);
          create index certifications_status on certifications (status, id);
          create index certifications_program on certifications (program_key, id);
          -- The expiry job and validity checks read granted certifications by their end.
          create index certifications_granted on certifications (valid_until) where status = 'granted';
          -- One application per partner and program waits for a decision at a time; concurrent
          -- applications meet here.
          create unique index certifications_one_pending on certifications (partner_id, program_key)
            where status = 'pending';
        `.execute(db);
      },
    },
  },
};
