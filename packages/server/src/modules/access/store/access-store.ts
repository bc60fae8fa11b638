import type { Selectable } from 'kysely';
import type { OperatorRole, PartnerRole, Principal } from '../../../kernel/actor.js';
import type { Executor } from '../../../kernel/database/database.js';
import type { ApiKeyId, CustomerId, PartnerId, UserId } from '../../../kernel/ids.js';
import type { Tenant, User, UserRole } from '../domain/user.js';
import type { ApiKeysTable, UsersTable } from './tables.js';

export interface ApiKey {
  readonly id: ApiKeyId;
  readonly userId: UserId;
  readonly tenantId: string;
  readonly name: string;
  readonly hint: string;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
}

export function toUser(row: Selectable<UsersTable>): User {
  const tenant: Tenant =
    row.tenant_kind === 'operator'
      ? { kind: 'operator' }
      : row.tenant_kind === 'partner'
        ? { kind: 'partner', partnerId: row.tenant_id as PartnerId }
        : { kind: 'customer', customerId: row.tenant_id as CustomerId };
  return {
    id: row.id as UserId,
    tenant,
    role: row.role as UserRole,
    name: row.name,
    email: row.email,
    status: row.status,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
  };
}

export function toApiKey(row: Selectable<ApiKeysTable>): ApiKey {
  return {
    id: row.id as ApiKeyId,
    userId: row.user_id as UserId,
    tenantId: row.tenant_id,
    name: row.name,
    hint: row.secret_hint,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

/** The user with `id` in `tenantId`, or undefined: another tenant's user is as absent as a missing one. */
export async function findUser(db: Executor, tenantId: string | 'any', id: UserId, forUpdate = false) {
  let query = db.selectFrom('users').selectAll().where('id', '=', id);
  if (tenantId !== 'any') query = query.where('tenant_id', '=', tenantId);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toUser(row) : undefined;
}

/** The principal an active key of an active user acts for, and when that key expires. */
export async function findPrincipalBySecretHash(
  db: Executor,
  hash: Buffer,
  now: Date,
): Promise<{ principal: Principal; expiresAt: Date | null } | null> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select([
      'api_keys.id as key_id',
      'api_keys.expires_at',
      'users.id as user_id',
      'users.tenant_kind',
      'users.tenant_id',
      'users.role',
    ])
    .where('api_keys.secret_hash', '=', hash)
    .where('api_keys.revoked_at', 'is', null)
    .where('users.status', '=', 'active')
    .executeTakeFirst();
  if (!row || (row.expires_at && row.expires_at <= now)) return null;
  const keyId = row.key_id as ApiKeyId;
  const userId = row.user_id as UserId;
  const expiresAt = row.expires_at;
  switch (row.tenant_kind) {
    case 'operator':
      return { principal: { kind: 'operator', userId, role: row.role as OperatorRole, keyId }, expiresAt };
    case 'partner':
      return {
        principal: {
          kind: 'partner',
          partnerId: row.tenant_id as PartnerId,
          userId,
          role: row.role as PartnerRole,
          keyId,
        },
        expiresAt,
      };
    case 'customer':
      return {
        principal: { kind: 'customer', customerId: row.tenant_id as CustomerId, userId, keyId },
        expiresAt,
      };
  }
}
