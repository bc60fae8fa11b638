import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from './database/migrations.js';

/** The kernel's own tables: the event log (also the outbox), the audit log, idempotency keys. */
export const kernelMigrations: ModuleMigrations = {
  module: 'kernel',
  migrations: {
    '0001_events_audit_idempotency': {
      async up(db: Kysely<unknown>) {
        await sql`
          create function baton_forbid_change() returns trigger language plpgsql as $$
          begin
            raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
              using errcode = 'restrict_violation';
          end $$;

          create table events (
            id text primary key,
            seq bigint generated always as identity,
            tx_id bigint not null default (pg_current_xact_id()::text::bigint),
            type text not null,
            subject_id text not null,
            data jsonb not null,
            actor_kind text not null,
            actor_id text,
            audience text[] not null default '{}',
            request_id text,
            occurred_at timestamptz not null
          );
          create unique index events_position on events (tx_id, seq);
          create index events_audience on events using gin (audience);
          create index events_subject on events (subject_id);
          create trigger events_append_only before update or delete on events
            for each row execute function baton_forbid_change();
          create trigger events_no_truncate before truncate on events
            for each statement execute function baton_forbid_change();

          create table audit_records (
            id text primary key,
            seq bigint generated always as identity,
            occurred_at timestamptz not null,
            actor_kind text not null,
            actor_id text,
            actor_role text,
            tenant_id text,
            action text not null,
            target_id text,
            outcome text not null check (outcome in ('succeeded', 'denied', 'failed')),
            error_code text,
            ip text,
            request_id text,
            details jsonb not null default '{}'
          );
          create index audit_records_target on audit_records (target_id);
          create index audit_records_action on audit_records (action, id);
          create trigger audit_records_append_only before update or delete on audit_records
            for each row execute function baton_forbid_change();
          create trigger audit_records_no_truncate before truncate on audit_records
            for each statement execute function baton_forbid_change();

          create table idempotency_keys (
            scope text not null,
            key_hash bytea not null,
            fingerprint bytea not null,
            status_code integer not null,
            content_type text not null,
            response bytea not null,
            created_at timestamptz not null,
            expires_at timestamptz not null,
            primary key (scope, key_hash)
          );
          create index idempotency_keys_expiry on idempotency_keys (expires_at);
        `.execute(db);
      },
    },
    '0002_transaction_positions': {
      // Rows that readers take in commit order (events, ledger transactions) are positioned by
      // the id of the transaction that wrote them. A backup restored on a new server starts
      // with that server's counter, far behind the positions restored: new rows would sort
      // before old ones and below every reader's horizon. Positions are therefore the counter
      // plus a shift, kept in a function of its own: 0 until `realignTransactionPositions` finds
      // positions at or ahead of the counter and moves the shift past them.
      //
      // The shift is `stable`, not `immutable`, so that the planner inlines it, and records that
      // a plan depends on it, instead of folding its value into cached plans for good.
      async up(db: Kysely<unknown>) {
        await sql`
          create function baton_xact_shift() returns bigint
            language sql stable parallel safe as 'select 0::bigint';
          create function baton_xact_position() returns bigint
            language sql volatile as 'select pg_current_xact_id()::text::bigint + baton_xact_shift()';
          alter table events alter column tx_id set default baton_xact_position();
        `.execute(db);
      },
    },
  },
};
