import { sql } from 'kysely';
import { LRUCache } from 'lru-cache';
import { type Actor, type Principal, tenantOf } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { type ApiKeyId, newId, type UserId } from '../../kernel/ids.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import { generateSecret, hashSecret, looksLikeSecret } from './domain/api-key.js';
import {
  MANAGER_ROLE,
  ROLES_BY_TENANT,
  type Tenant,
  tenantKey,
  type User,
  type UserRole,
} from './domain/user.js';
import { accessErrors } from './errors.js';
import { type ApiKey, findPrincipalBySecretHash, findUser, toApiKey, toUser } from './store/access-store.js';

/** How long a process may keep using what it learned about a key: a revoked key stops working within this. */
export const AUTH_CACHE_TTL_MS = 5_000;
const AUTH_CACHE_MAX = 10_000;
/** Keys one user may hold at once. */
export const API_KEYS_PER_USER_MAX = 50;

export interface NewUser {
  readonly tenant: Tenant;
  readonly role: UserRole;
  readonly name: string;
  readonly email: string;
}

export type AccessService = ReturnType<typeof createAccessService>;

export function createAccessService() {
  const principals = new LRUCache<string, { principal: Principal | null; expiresAt: Date | null }>({
    max: AUTH_CACHE_MAX,
    ttl: AUTH_CACHE_TTL_MS,
  });

  /** The actor's own tenant key; Baton itself (`system`) may act in any tenant. */
  const actorTenant = (actor: Actor): string | 'any' =>
    actor.kind === 'system' ? 'any' : actor.kind === 'operator' ? 'operator' : (tenantOf(actor) ?? 'none');

  /**
   * Where the actor may look after users and keys: its own tenant, or every tenant for an
   * operator admin, who must be able to disable a partner's leaked key at once. Creating keys
   * is never reached across tenants: nobody mints another tenant's credentials.
   */
  const actorReach = (actor: Actor): string | 'any' =>
    actor.kind === 'operator' && actor.role === MANAGER_ROLE.operator ? 'any' : actorTenant(actor);

  const isManager = (actor: Actor) =>
    actor.kind === 'system' ||
    (actor.kind === 'operator' && actor.role === MANAGER_ROLE.operator) ||
    (actor.kind === 'partner' && actor.role === MANAGER_ROLE.partner);

  async function insertKey(ctx: Context, user: User, name: string, expiresAt: Date | null) {
    const active = await ctx.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<bigint>().as('count'))
      .where('user_id', '=', user.id)
      .where('revoked_at', 'is', null)
      .executeTakeFirstOrThrow();
    if (active.count >= BigInt(API_KEYS_PER_USER_MAX)) {
      throw accessErrors.tooManyKeys(API_KEYS_PER_USER_MAX);
    }
    const { secret, hash, hint } = generateSecret();
    const row = await ctx.db
      .insertInto('api_keys')
      .values({
        id: newId('key'),
        user_id: user.id,
        tenant_id: tenantKey(user.tenant),
        name,
        secret_hash: hash,
        secret_hint: hint,
        created_at: ctx.now,
        created_by: actorUserId(ctx.actor),
        expires_at: expiresAt,
        revoked_at: null,
        revoked_by: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const apiKey = toApiKey(row);
    await recordAudit(ctx, {
      action: 'access.api_key.create',
      targetId: apiKey.id,
      outcome: 'succeeded',
      details: { user_id: user.id, name },
    });
    await appendEvent(ctx, {
      type: 'api_key.created',
      subjectId: apiKey.id,
      data: { id: apiKey.id, user_id: user.id, name },
      audience: audienceOf(user.tenant),
    });
    return { apiKey, secret };
  }

  return {
    /**
     * Resolves a secret to the principal its key acts for; null when the key is unknown,
     * revoked, expired or its user disabled. Answers are cached for `AUTH_CACHE_TTL_MS`.
     */
    async authenticate(db: Executor, secret: string, now: Date): Promise<Principal | null> {
      if (!looksLikeSecret(secret)) return null;
      const hash = hashSecret(secret);
      const cacheKey = hash.toString('base64');
      const cached = principals.get(cacheKey);
      // The cache may keep an answer for AUTH_CACHE_TTL_MS, but never past the key's expiry.
      if (cached && (cached.expiresAt === null || now < cached.expiresAt)) return cached.principal;
      const found = await findPrincipalBySecretHash(db, hash, now);
      principals.set(cacheKey, found ?? { principal: null, expiresAt: null });
      return found?.principal ?? null;
    },

    /**
     * Creates a user in a tenant. Callers decide who may: this only checks the role fits the tenant.
     *
     * @throws DomainError `access.role_not_in_tenant`, `access.email_taken`
     */
    async createUser(ctx: Context, input: NewUser): Promise<User> {
      requireTransaction(ctx.db);
      if (!(ROLES_BY_TENANT[input.tenant.kind] as readonly string[]).includes(input.role)) {
        throw accessErrors.roleNotInTenant(input.tenant.kind, input.role);
      }
      const tenantId = tenantKey(input.tenant);
      const row = await ctx.db
        .insertInto('users')
        .values({
          id: newId('usr'),
          tenant_id: tenantId,
          tenant_kind: input.tenant.kind,
          role: input.role,
          name: input.name,
          email: input.email,
          status: 'active',
          created_at: ctx.now,
          disabled_at: null,
        })
        // The unique index decides between concurrent requests: a check before the insert would let both pass.
        .onConflict((oc) => oc.expression(sql`tenant_id, lower(email)`).doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!row) throw accessErrors.emailTaken(input.email);
      const user = toUser(row);
      await recordAudit(ctx, {
        action: 'access.user.create',
        targetId: user.id,
        outcome: 'succeeded',
        details: { tenant_id: tenantId, role: user.role },
      });
      await appendEvent(ctx, {
        type: 'user.created',
        subjectId: user.id,
        data: { id: user.id, tenant_id: tenantId, role: user.role },
        audience: audienceOf(user.tenant),
      });
      return user;
    },

    /** The users of a tenant, by id. */
    async listUsers(ctx: Context, tenant: Tenant, page: PageRequest): Promise<Page<User>> {
      let query = ctx.db
        .selectFrom('users')
        .selectAll()
        .where('tenant_id', '=', tenantKey(tenant))
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      const rows = await query.execute();
      return pageOf(rows, page.limit, toUser);
    },

    /**
     * A user of the actor's own tenant.
     *
     * @throws DomainError `access.user_not_found`
     */
    async getUser(ctx: Context, id: UserId): Promise<User> {
      const user = await findUser(ctx.db, actorReach(ctx.actor), id);
      if (!user) throw accessErrors.userNotFound(id);
      return user;
    },

    /**
     * Disables a user of the actor's tenant and revokes all its keys. A tenant always keeps
     * one active manager (operator admin, partner owner).
     *
     * @throws DomainError `access.user_not_found`, `access.not_a_manager`, `access.last_manager`
     */
    async disableUser(ctx: Context, id: UserId): Promise<User> {
      requireTransaction(ctx.db);
      const user = await findUser(ctx.db, actorReach(ctx.actor), id, true);
      if (!user) throw accessErrors.userNotFound(id);
      if (!isManager(ctx.actor)) throw accessErrors.notAManager('disable users');
      if (user.status === 'disabled') return user;
      const managerRole = MANAGER_ROLE[user.tenant.kind];
      if (user.role === managerRole && user.tenant.kind !== 'customer') {
        // Lock the tenant's managers in id order so two concurrent disables cannot both pass.
        const managers = await ctx.db
          .selectFrom('users')
          .select('id')
          .where('tenant_id', '=', tenantKey(user.tenant))
          .where('role', '=', managerRole)
          .where('status', '=', 'active')
          .orderBy('id')
          .forUpdate()
          .execute();
        if (managers.filter((manager) => manager.id !== user.id).length === 0) {
          throw accessErrors.lastManager(managerRole);
        }
      }
      const row = await ctx.db
        .updateTable('users')
        .set({ status: 'disabled', disabled_at: ctx.now })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const revoked = await ctx.db
        .updateTable('api_keys')
        .set({ revoked_at: ctx.now, revoked_by: actorUserId(ctx.actor) })
        .where('user_id', '=', id)
        .where('revoked_at', 'is', null)
        .returning(['id', 'secret_hash'])
        .execute();
      for (const key of revoked) principals.delete(key.secret_hash.toString('base64'));
      await recordAudit(ctx, {
        action: 'access.user.disable',
        targetId: id,
        outcome: 'succeeded',
        details: { revoked_keys: revoked.map((key) => key.id) },
      });
      await appendEvent(ctx, {
        type: 'user.disabled',
        subjectId: id,
        data: { id },
        audience: audienceOf(user.tenant),
      });
      return toUser(row);
    },

    /**
     * Creates an API key for a user of the actor's tenant: the actor's own user by default;
     * another user only by a manager. The secret is returned once and never stored.
     *
     * @throws DomainError `access.user_not_found`, `access.not_a_manager`, `access.user_disabled`,
     *   `access.too_many_keys`
     */
    async createApiKey(
      ctx: Context,
      input: { userId?: UserId | undefined; name: string; expiresAt?: Date | null | undefined },
    ): Promise<{ apiKey: ApiKey; secret: string }> {
      requireTransaction(ctx.db);
      const self = actorUserId(ctx.actor) as UserId | null;
      const userId = input.userId ?? self;
      if (!userId) throw accessErrors.userRequired();
      const user = await findUser(ctx.db, actorTenant(ctx.actor), userId, true);
      if (!user) throw accessErrors.userNotFound(userId);
      if (user.id !== self && !isManager(ctx.actor)) {
        throw accessErrors.notAManager('create keys for other users');
      }
      if (user.status !== 'active') throw accessErrors.userDisabled();
      if (input.expiresAt && input.expiresAt <= ctx.now) {
        throw accessErrors.expiryInPast();
      }
      return insertKey(ctx, user, input.name, input.expiresAt ?? null);
    },

    /**
     * Keys of the actor's tenant: a manager sees all of them, anyone else only their own. An
     * operator admin may also list the keys of any user it names.
     */
    async listApiKeys(
      ctx: Context,
      filter: PageRequest & { userId?: UserId | undefined },
    ): Promise<Page<ApiKey>> {
      let query = ctx.db
        .selectFrom('api_keys')
        .selectAll()
        .orderBy('id')
        .limit(filter.limit + 1);
      // An operator admin reaches another tenant's keys by naming their user; its own list stays its own.
      const tenant = filter.userId ? actorReach(ctx.actor) : actorTenant(ctx.actor);
      if (tenant !== 'any') query = query.where('tenant_id', '=', tenant);
      if (!isManager(ctx.actor)) query = query.where('user_id', '=', actorUserId(ctx.actor) ?? '');
      if (filter.userId) query = query.where('user_id', '=', filter.userId);
      if (filter.after) query = query.where('id', '>', filter.after);
      const rows = await query.execute();
      return pageOf(rows, filter.limit, toApiKey);
    },

    /**
     * Revokes a key of the actor's tenant: one's own, or any by a manager. Revoking twice is
     * harmless. Other processes stop accepting it within `AUTH_CACHE_TTL_MS`.
     *
     * @throws DomainError `access.api_key_not_found`
     */
    async revokeApiKey(ctx: Context, id: ApiKeyId): Promise<ApiKey> {
      requireTransaction(ctx.db);
      let query = ctx.db.selectFrom('api_keys').selectAll().where('id', '=', id).forUpdate();
      const tenant = actorReach(ctx.actor);
      if (tenant !== 'any') query = query.where('tenant_id', '=', tenant);
      if (!isManager(ctx.actor)) query = query.where('user_id', '=', actorUserId(ctx.actor) ?? '');
      const row = await query.executeTakeFirst();
      if (!row) throw accessErrors.apiKeyNotFound(id);
      if (row.revoked_at) return toApiKey(row);
      const updated = await ctx.db
        .updateTable('api_keys')
        .set({ revoked_at: ctx.now, revoked_by: actorUserId(ctx.actor) })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      principals.delete(row.secret_hash.toString('base64'));
      await recordAudit(ctx, { action: 'access.api_key.revoke', targetId: id, outcome: 'succeeded' });
      await appendEvent(ctx, {
        type: 'api_key.revoked',
        subjectId: id,
        data: { id, user_id: row.user_id },
        audience: row.tenant_id === 'operator' ? [] : [row.tenant_id],
      });
      return toApiKey(updated);
    },

    /**
     * Creates a key for a user that was just created by the caller (an applicant's owner, a
     * new customer), where the actor is not yet that user.
     */
    async issueInitialKey(
      ctx: Context,
      user: User,
      name: string,
    ): Promise<{ apiKey: ApiKey; secret: string }> {
      requireTransaction(ctx.db);
      return insertKey(ctx, user, name, null);
    },

    /** Whether any operator user exists: a fresh database has none. */
    async hasOperatorUsers(db: Executor): Promise<boolean> {
      const row = await db
        .selectFrom('users')
        .select('id')
        .where('tenant_id', '=', 'operator')
        .limit(1)
        .executeTakeFirst();
      return row !== undefined;
    },
  };
}

function actorUserId(actor: Actor): string | null {
  return actor.kind === 'operator' || actor.kind === 'partner' || actor.kind === 'customer'
    ? actor.userId
    : null;
}

function audienceOf(tenant: Tenant): string[] {
  return tenant.kind === 'operator' ? [] : [tenantKey(tenant)];
}
