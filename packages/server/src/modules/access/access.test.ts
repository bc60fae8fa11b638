import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { newId, type UserId } from '../../kernel/ids.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import { API_KEY_PREFIX, AUTH_CACHE_TTL_MS, createAccessService } from './index.js';
import { API_KEYS_PER_USER_MAX } from './service.js';

/*
 * A4 (credentials at rest) and the access module's promises: keys are stored only as hashes
 * and shown once, revocation and expiry take effect, managers alone manage other users, a
 * tenant keeps a manager, and every key created or revoked is audited once.
 */

interface NewKey {
  api_key: {
    id: string;
    user_id: string;
    hint: string;
    expires_at: string | null;
    revoked_at: string | null;
  };
  secret: string;
}

interface Staff {
  readonly userId: UserId;
  readonly key: string;
  readonly keyId: string;
}

interface AuditRecord {
  actor: { kind: string; id: string | null; role: string | null };
  tenant_id: string | null;
  action: string;
  target_id: string | null;
  outcome: string;
  error_code: string | null;
  request_id: string | null;
}

function ok<T = Record<string, unknown>>(response: ApiResponse<unknown>, status = 200): T {
  expect(response.status, response.text).toBe(status);
  return response.body as T;
}

function refused(response: ApiResponse, status: number, code: string): void {
  expect(response.status, response.text).toBe(status);
  expect(response.body.code, response.text).toBe(code);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('access', async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
    }),
    201,
  );
  let partners = 0;
  /** A new partner: its id and its owner, with the key issued on application. */
  async function newPartner() {
    const name = `partner-${++partners}`;
    const applied = ok<{ partner: { id: string }; owner: { id: UserId }; api_key: NewKey }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        ip: `10.0.0.${partners}`,
        body: { partner_type: 'supplier', name, email: `${name}@partner.test`, regions: ['eu-west'] },
      }),
      201,
    );
    const owner: Staff = {
      userId: applied.owner.id,
      key: applied.api_key.secret,
      keyId: applied.api_key.api_key.id,
    };
    return { id: applied.partner.id, owner };
  }
  let staff = 0;
  /** Adds a user to a partner, as its owner, with a key created by the owner. */
  async function addStaff(partner: { id: string; owner: Staff }, role: 'owner' | 'member'): Promise<Staff> {
    const user = ok<{ id: UserId }>(
      await app.request('POST', `/v1/partners/${partner.id}/users`, {
        key: partner.owner.key,
        body: { name: `Staff ${++staff}`, email: `staff-${staff}@partner.test`, role },
      }),
      201,
    );
    const created = ok<NewKey>(
      await app.request('POST', '/v1/api-keys', {
        key: partner.owner.key,
        body: { name: 'staff key', user_id: user.id },
      }),
      201,
    );
    return { userId: user.id, key: created.secret, keyId: created.api_key.id };
  }
  async function createKey(key: string, body: Record<string, unknown> = {}): Promise<NewKey> {
    return ok<NewKey>(
      await app.request('POST', '/v1/api-keys', { key, body: { name: 'extra', ...body } }),
      201,
    );
  }
  async function audit(query: Record<string, string>): Promise<AuditRecord[]> {
    const search = new URLSearchParams({ limit: '100', ...query });
    return ok<{ data: AuditRecord[] }>(await app.request('GET', `/v1/audit-records?${search}`)).data;
  }

  const partner = await newPartner();
  const customer = ok<{ customer: { id: string }; user: { id: UserId }; api_key: NewKey }>(
    await app.request('POST', '/v1/customer-signups', {
      key: null,
      body: { kind: 'consumer', name: 'Carol', email: 'carol@customer.test' },
    }),
    201,
  );

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('answers GET /v1/me with the user and tenant of the calling key', async () => {
    const member = await addStaff(partner, 'member');
    expect(ok(await app.request('GET', '/v1/me', { key: member.key }))).toMatchObject({
      id: member.userId,
      object: 'user',
      tenant_kind: 'partner',
      tenant_id: partner.id,
      role: 'member',
      status: 'active',
    });
    expect(ok(await app.request('GET', '/v1/me', { key: customer.api_key.secret }))).toMatchObject({
      id: customer.user.id,
      tenant_kind: 'customer',
      tenant_id: customer.customer.id,
      role: 'customer',
    });
    expect(ok(await app.request('GET', '/v1/me'))).toMatchObject({ tenant_kind: 'operator', role: 'admin' });
    refused(await app.request('GET', '/v1/me', { key: null }), 401, 'auth.key_required');
  });

  it('refuses malformed, unknown and wrongly presented keys', async () => {
    const unknown = `${API_KEY_PREFIX}${'A'.repeat(43)}`;
    refused(await app.request('GET', '/v1/me', { key: unknown }), 401, 'auth.invalid_key');
    refused(await app.request('GET', '/v1/me', { key: 'not-a-baton-key' }), 401, 'auth.invalid_key');
    const basic = await app.request('GET', '/v1/me', {
      key: null,
      headers: { authorization: `Basic ${partner.owner.key}` },
    });
    refused(basic, 401, 'auth.malformed_authorization');
    expect(basic.headers['www-authenticate']).toBe('Bearer');
  });

  it('stores keys only as SHA-256 hashes: no secret appears anywhere in the database', async () => {
    const member = await addStaff(partner, 'member');
    const opsKey = await app.operatorKey('ops');
    // A key created with an Idempotency-Key is kept for replay: it must not be kept in clear.
    const create = () =>
      app.request('POST', '/v1/api-keys', {
        key: member.key,
        headers: { 'idempotency-key': 'create-key-once' },
        body: { name: 'replayable' },
      });
    const first = ok<NewKey>(await create(), 201);
    const replay = await create();
    expect(replay.headers['idempotency-replayed']).toBe('true');
    expect(replay.body).toEqual(first);
    const invitation = ok<{ token: string }>(
      await app.request('POST', '/v1/partner-invitations', {
        body: { partner_type: 'supplier', email: 'invitee@partner.test' },
      }),
      201,
    );

    const secrets = [
      app.adminKey,
      opsKey,
      partner.owner.key,
      member.key,
      customer.api_key.secret,
      first.secret,
      invitation.token,
    ];
    for (const secret of secrets.slice(0, -1)) {
      expect(secret).toMatch(new RegExp(`^${API_KEY_PREFIX}[A-Za-z0-9_-]{43}$`));
      const stored = await db
        .selectFrom('api_keys')
        .select(['secret_hash', 'secret_hint'])
        .where('secret_hash', '=', sha256(secret))
        .execute();
      expect(stored).toEqual([{ secret_hash: sha256(secret), secret_hint: secret.slice(-4) }]);
    }

    const tables = await sql<{ table_schema: string; table_name: string }>`
      select table_schema, table_name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
      order by 1, 2`.execute(db);
    expect(tables.rows.map((table) => table.table_name)).toEqual(
      expect.arrayContaining(['api_keys', 'users', 'audit_records', 'events', 'idempotency_keys']),
    );
    const seen: string[] = [];
    const collect = (value: unknown): void => {
      if (value === null || value === undefined) return;
      if (Buffer.isBuffer(value)) {
        seen.push(value.toString('utf8'), value.toString('latin1'), value.toString('hex'));
        seen.push(value.toString('base64'), value.toString('base64url'));
      } else if (typeof value === 'string') seen.push(value);
      else if (value instanceof Date) seen.push(value.toISOString());
      else if (typeof value === 'object') for (const item of Object.values(value)) collect(item);
      else seen.push(String(value));
    };
    for (const { table_schema, table_name } of tables.rows) {
      const rows = await sql<Record<string, unknown>>`
        select * from ${sql.table(`${table_schema}.${table_name}`)}`.execute(db);
      for (const row of rows.rows) collect(row);
    }
    const haystack = seen.join('\n');
    expect(haystack).toContain(first.api_key.id);
    for (const secret of secrets) {
      const random = secret.replace(/^baton_[a-z]+_/, '');
      expect(random.length).toBeGreaterThanOrEqual(32);
      expect(haystack.includes(random), `a secret is stored in clear: …${secret.slice(-4)}`).toBe(false);
    }
  });

  it('shows a secret only when the key is created: lists show the hint, never the secret', async () => {
    const member = await addStaff(partner, 'member');
    const created = await createKey(member.key);
    expect(created.api_key.hint).toBe(`…${created.secret.slice(-4)}`);
    for (const key of [partner.owner.key, member.key, app.adminKey]) {
      const listed = await app.request<{ data: Record<string, unknown>[] }>('GET', '/v1/api-keys?limit=100', {
        key,
      });
      ok(listed);
      expect(listed.text).not.toContain(created.secret.slice(API_KEY_PREFIX.length));
      expect(listed.text).not.toContain(member.key.slice(API_KEY_PREFIX.length));
      for (const item of listed.body.data) {
        expect(Object.keys(item).sort()).toEqual(
          ['created_at', 'expires_at', 'hint', 'id', 'name', 'object', 'revoked_at', 'user_id'].sort(),
        );
      }
    }
  });

  it("lists a tenant's keys to its manager, and only their own keys to anyone else", async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    const other = await addStaff(owned, 'member');
    const extra = await createKey(member.key);
    const ids = async (key: string, query = '') =>
      ok<{ data: { id: string; user_id: string }[] }>(
        await app.request('GET', `/v1/api-keys?limit=100${query}`, { key }),
      ).data;

    expect((await ids(owned.owner.key)).map((key) => key.id).sort()).toEqual(
      [owned.owner.keyId, member.keyId, other.keyId, extra.api_key.id].sort(),
    );
    expect((await ids(member.key)).map((key) => key.id).sort()).toEqual(
      [member.keyId, extra.api_key.id].sort(),
    );
    expect(await ids(member.key, `&user_id=${other.userId}`)).toEqual([]);
    expect((await ids(owned.owner.key, `&user_id=${other.userId}`)).map((key) => key.id)).toEqual([
      other.keyId,
    ]);
    expect((await ids(customer.api_key.secret)).map((key) => key.id)).toEqual([customer.api_key.api_key.id]);
    const ops = await app.operatorKey('ops');
    const opsKeys = await ids(ops);
    expect(opsKeys).toHaveLength(1);
    expect(ok<{ id: string }>(await app.request('GET', '/v1/me', { key: ops })).id).toBe(opsKeys[0]?.user_id);
  });

  it('lets only a manager create keys for another user of its tenant', async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    const other = await addStaff(owned, 'member');
    const attempt = await app.request('POST', '/v1/api-keys', {
      key: member.key,
      body: { name: 'not mine', user_id: other.userId },
    });
    refused(attempt, 403, 'access.not_a_manager');
    const keys = await db.selectFrom('api_keys').select('id').where('user_id', '=', other.userId).execute();
    expect(keys.map((key) => key.id)).toEqual([other.keyId]);

    const own = await createKey(member.key, { user_id: member.userId });
    expect(own.api_key.user_id).toBe(member.userId);
    const forOther = await createKey(owned.owner.key, { user_id: other.userId });
    expect(forOther.api_key.user_id).toBe(other.userId);
    expect(ok(await app.request('GET', '/v1/me', { key: forOther.secret })).id).toBe(other.userId);
  });

  it("lets a non-manager revoke only its own keys: another user's key is as missing as none", async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    const theirs = await app.request('POST', `/v1/api-keys/${owned.owner.keyId}/revoke`, { key: member.key });
    refused(theirs, 404, 'access.api_key_not_found');
    const missingId = newId('key');
    const missing = await app.request('POST', `/v1/api-keys/${missingId}/revoke`, { key: member.key });
    expect(theirs.text.replace(owned.owner.keyId, '<id>').replace(/req_\w+/, '')).toBe(
      missing.text.replace(missingId, '<id>').replace(/req_\w+/, ''),
    );
    ok(await app.request('GET', '/v1/me', { key: owned.owner.key }));

    const revoked = ok<{ revoked_at: string | null }>(
      await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`, { key: member.key }),
    );
    expect(revoked.revoked_at).toBe(app.clock.now().toISOString());
  });

  it('refuses a revoked key at once on the process that revoked it', async () => {
    const member = await addStaff(partner, 'member');
    ok(await app.request('GET', '/v1/me', { key: member.key }));
    ok(await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`, { key: partner.owner.key }));
    const after = await app.request('GET', '/v1/me', { key: member.key });
    refused(after, 401, 'auth.invalid_key');
    expect(after.headers['www-authenticate']).toBe('Bearer');
    // Revoking twice is harmless and changes nothing.
    const again = ok<{ revoked_at: string }>(
      await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`, { key: partner.owner.key }),
    );
    expect(again.revoked_at).toBe(app.clock.now().toISOString());
  });

  it('refuses a revoked key on every other process once what it cached expires, within 5 s', async () => {
    expect(AUTH_CACHE_TTL_MS).toBeLessThanOrEqual(5_000);
    const member = await addStaff(partner, 'member');
    // Another Baton process: its own access service, which authenticated the key before.
    const elsewhere = createAccessService();
    const principal = await elsewhere.authenticate(db, member.key, app.clock.now());
    expect(principal).toMatchObject({ kind: 'partner', userId: member.userId, keyId: member.keyId });

    ok(await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`, { key: partner.owner.key }));
    refused(await app.request('GET', '/v1/me', { key: member.key }), 401, 'auth.invalid_key');
    // The other process cannot know yet: this is the window AUTH_CACHE_TTL_MS bounds.
    expect(await elsewhere.authenticate(db, member.key, app.clock.now())).toEqual(principal);

    // The cache ages entries by performance.now(); move it on by the TTL instead of waiting.
    const start = performance.now();
    const realNow = performance.now.bind(performance);
    vi.spyOn(performance, 'now').mockImplementation(() => realNow() + AUTH_CACHE_TTL_MS);
    expect(performance.now()).toBeGreaterThanOrEqual(start + AUTH_CACHE_TTL_MS);
    // The cache reuses its reading of the time for a millisecond; let that pass.
    await sleep(5);
    expect(await elsewhere.authenticate(db, member.key, app.clock.now())).toBeNull();
  });

  it('refuses an expired key, even one used a moment before it expired', async () => {
    const member = await addStaff(partner, 'member');
    const expiresAt = new Date(app.clock.now().getTime() + 60 * 60 * 1000);
    const expiring = await createKey(member.key, { expires_at: expiresAt.toISOString() });
    expect(expiring.api_key.expires_at).toBe(expiresAt.toISOString());
    ok(await app.request('GET', '/v1/me', { key: expiring.secret }));
    app.clock.set(expiresAt);
    refused(await app.request('GET', '/v1/me', { key: expiring.secret }), 401, 'auth.invalid_key');
    ok(await app.request('GET', '/v1/me', { key: member.key }));
    refused(
      await app.request('POST', '/v1/api-keys', {
        key: member.key,
        body: { name: 'late', expires_at: app.clock.now().toISOString() },
      }),
      400,
      'access.expiry_in_past',
    );
  });

  it('revokes every key of a user it disables', async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    const second = await createKey(member.key);
    ok(await app.request('GET', '/v1/me', { key: member.key }));
    ok(await app.request('GET', '/v1/me', { key: second.secret }));

    const disabled = ok<{ status: string }>(
      await app.request('POST', `/v1/users/${member.userId}/disable`, { key: owned.owner.key }),
    );
    expect(disabled.status).toBe('disabled');
    for (const key of [member.key, second.secret]) {
      refused(await app.request('GET', '/v1/me', { key }), 401, 'auth.invalid_key');
    }
    const keys = ok<{ data: { id: string; revoked_at: string | null }[] }>(
      await app.request('GET', `/v1/api-keys?user_id=${member.userId}`, { key: owned.owner.key }),
    ).data;
    expect(keys.map((key) => key.id).sort()).toEqual([member.keyId, second.api_key.id].sort());
    expect(keys.every((key) => key.revoked_at === app.clock.now().toISOString())).toBe(true);
    refused(
      await app.request('POST', '/v1/api-keys', {
        key: owned.owner.key,
        body: { name: 'for a disabled user', user_id: member.userId },
      }),
      409,
      'access.user_disabled',
    );
  });

  it('never disables the last active owner of a partner', async () => {
    const owned = await newPartner();
    refused(
      await app.request('POST', `/v1/users/${owned.owner.userId}/disable`, { key: owned.owner.key }),
      409,
      'access.last_manager',
    );
    const second = await addStaff(owned, 'owner');
    ok(await app.request('POST', `/v1/users/${owned.owner.userId}/disable`, { key: second.key }));
    refused(
      await app.request('POST', `/v1/users/${second.userId}/disable`, { key: second.key }),
      409,
      'access.last_manager',
    );
    ok(await app.request('GET', '/v1/me', { key: second.key }));
  });

  it('never disables the last active operator admin', async () => {
    const admins = await db
      .selectFrom('users')
      .select('id')
      .where('tenant_id', '=', 'operator')
      .where('role', '=', 'admin')
      .where('status', '=', 'active')
      .execute();
    expect(admins).toHaveLength(1);
    refused(await app.request('POST', `/v1/users/${admins[0]?.id}/disable`), 409, 'access.last_manager');
    ok(await app.request('GET', '/v1/me'));
  });

  it('lets exactly one of two owners disabling each other at once succeed', async () => {
    const owned = await newPartner();
    const second = await addStaff(owned, 'owner');
    const [first, other] = await Promise.all([
      app.request('POST', `/v1/users/${second.userId}/disable`, { key: owned.owner.key }),
      app.request('POST', `/v1/users/${owned.owner.userId}/disable`, { key: second.key }),
    ]);
    expect([first.status, other.status].sort()).toEqual([200, 409]);
    for (const response of [first, other]) {
      if (response.status === 409) expect(response.body.code).toBe('access.last_manager');
    }
    const active = await db
      .selectFrom('users')
      .select('id')
      .where('tenant_id', '=', owned.id)
      .where('status', '=', 'active')
      .execute();
    expect(active).toHaveLength(1);
  });

  it('audits each key created and each key revoked exactly once, with who, where and the request', async () => {
    const owned = await newPartner();
    const created = await app.request<NewKey>('POST', '/v1/api-keys', {
      key: owned.owner.key,
      body: { name: 'audited' },
      ip: '192.0.2.7',
    });
    ok(created, 201);
    const keyId = created.body.api_key.id;
    const creations = await audit({ action: 'access.api_key.create', target_id: keyId });
    expect(creations).toEqual([
      expect.objectContaining({
        actor: { kind: 'partner', id: owned.owner.userId, role: 'owner' },
        tenant_id: owned.id,
        target_id: keyId,
        outcome: 'succeeded',
        error_code: null,
        ip: '192.0.2.7',
        request_id: created.headers['x-request-id'],
      }),
    ]);

    const revoked = await app.request('POST', `/v1/api-keys/${keyId}/revoke`, { key: owned.owner.key });
    ok(revoked);
    ok(await app.request('POST', `/v1/api-keys/${keyId}/revoke`, { key: owned.owner.key }));
    expect(await audit({ action: 'access.api_key.revoke', target_id: keyId })).toEqual([
      expect.objectContaining({
        actor: { kind: 'partner', id: owned.owner.userId, role: 'owner' },
        tenant_id: owned.id,
        outcome: 'succeeded',
        request_id: revoked.headers['x-request-id'],
      }),
    ]);
    expect(await audit({ action: 'access.api_key.create', target_id: keyId })).toHaveLength(1);
  });

  it('audits once each attempt refused by role, by a missing key or by a rule', async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    const other = await addStaff(owned, 'member');

    const byRole = await app.request('POST', `/v1/users/${other.userId}/disable`, { key: member.key });
    refused(byRole, 403, 'auth.role_not_allowed');
    expect(await audit({ action: 'access.user.disable', target_id: other.userId })).toEqual([
      expect.objectContaining({
        actor: { kind: 'partner', id: member.userId, role: 'member' },
        tenant_id: owned.id,
        outcome: 'denied',
        error_code: 'auth.role_not_allowed',
        request_id: byRole.headers['x-request-id'],
      }),
    ]);

    const withoutKey = await app.request('POST', `/v1/api-keys/${other.keyId}/revoke`, { key: null });
    refused(withoutKey, 401, 'auth.key_required');
    expect(await audit({ action: 'access.api_key.revoke', target_id: other.keyId })).toEqual([
      expect.objectContaining({
        actor: { kind: 'anonymous', id: null, role: null },
        outcome: 'denied',
        error_code: 'auth.key_required',
        request_id: withoutKey.headers['x-request-id'],
      }),
    ]);

    const byRule = await app.request('POST', '/v1/api-keys', {
      key: member.key,
      body: { name: 'not mine', user_id: other.userId },
    });
    refused(byRule, 403, 'access.not_a_manager');
    const ruled = (await audit({ action: 'access.api_key.create', actor_id: member.userId })).filter(
      (record) => record.outcome !== 'succeeded',
    );
    expect(ruled).toEqual([
      expect.objectContaining({
        outcome: 'denied',
        error_code: 'access.not_a_manager',
        target_id: null,
        request_id: byRule.headers['x-request-id'],
      }),
    ]);
  });

  it(`caps the active keys of one user at ${API_KEYS_PER_USER_MAX}`, async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    // Filled through the service in one transaction: as many requests would only be slower.
    await runInTransaction(db, async (tx) => {
      const ctx = { db: tx, actor: systemActor('test'), now: app.clock.now(), requestId: null, ip: null };
      for (let held = 1; held < API_KEYS_PER_USER_MAX; held++) {
        await app.baton.services.access.createApiKey(ctx, { userId: member.userId, name: `key ${held}` });
      }
    });
    refused(
      await app.request('POST', '/v1/api-keys', { key: member.key, body: { name: 'one too many' } }),
      409,
      'access.too_many_keys',
    );
    const spare = await createKey(owned.owner.key, { user_id: owned.owner.userId });
    ok(await app.request('POST', `/v1/api-keys/${spare.api_key.id}/revoke`, { key: owned.owner.key }));
    ok(await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`, { key: owned.owner.key }));
    await createKey(owned.owner.key, { user_id: member.userId });
  });
  it("lets an operator admin revoke a partner's key and disable its user, but not mint keys for it", async () => {
    const owned = await newPartner();
    const member = await addStaff(owned, 'member');
    const ops = await app.operatorKey('ops');
    refused(
      await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`, { key: ops }),
      404,
      'access.api_key_not_found',
    );
    refused(
      await app.request('POST', '/v1/api-keys', { body: { name: 'impersonation', user_id: member.userId } }),
      404,
      'access.user_not_found',
    );
    ok(await app.request('POST', `/v1/api-keys/${member.keyId}/revoke`));
    refused(await app.request('GET', '/v1/me', { key: member.key }), 401, 'auth.invalid_key');
    const other = await addStaff(owned, 'member');
    expect(ok(await app.request('POST', `/v1/users/${other.userId}/disable`))).toMatchObject({
      status: 'disabled',
    });
    refused(await app.request('GET', '/v1/me', { key: other.key }), 401, 'auth.invalid_key');
    expect(await audit({ action: 'access.api_key.revoke', target_id: member.keyId })).toEqual([
      expect.objectContaining({ outcome: 'failed', actor: expect.objectContaining({ role: 'ops' }) }),
      expect.objectContaining({ outcome: 'succeeded', actor: expect.objectContaining({ role: 'admin' }) }),
    ]);
  });

  it('audits every refused credential once', async () => {
    const refusedKey = await app.request('GET', '/v1/me', { key: 'baton_sk_not-a-real-key' });
    refused(refusedKey, 401, 'auth.invalid_key');
    const records = (await audit({ action: 'auth.authenticate' })).filter(
      (record) => record.request_id === refusedKey.headers['x-request-id'],
    );
    expect(records).toEqual([expect.objectContaining({ outcome: 'denied', error_code: 'auth.invalid_key' })]);
  });
});
