import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const accessMigrations: ModuleMigrations = {
  module: 'access',
  migrations: {
    '0001_users_and_keys': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table users (
            id text primary key,
            tenant_id text not null,
            tenant_kind text not null check (tenant_kind in ('operator', 'partner', 'customer')),
            role text not null,
            name text not null,
            email text not null,
            status text not null check (status in ('active', 'disabled')),
            created_at timestamptz not null,
            disabled_at timestamptz
          );
          create unique index users_email_per_tenant on users (tenant_id, lower(email));

          create table api_keys (
            id text primary key,
            user_id text not null references users (id),
            tenant_id text not null,
            name text not null,
            secret_hash bytea not null unique,
            secret_hint text not null,
            created_at timestamptz not null,
            created_by text,
            expires_at timestamptz,
            revoked_at timestamptz,
            revoked_by text
          );
          create index api_keys_tenant on api_keys (tenant_id, id);
          create index api_keys_user on api_keys (user_id);
        `.execute(db);
      },
    },
  },
};
