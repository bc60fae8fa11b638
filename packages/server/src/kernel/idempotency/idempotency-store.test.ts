import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { runInTransaction } from '../database/transaction.js';
import { isDomainError } from '../errors.js';
import {
  claimIdempotencyKey,
  fingerprintRequest,
  IDEMPOTENCY_TTL_MS,
  type KeyUse,
  purgeExpiredIdempotencyKeys,
  type StoredResponse,
  saveIdempotentResponse,
} from './idempotency-store.js';

const NOW = new Date('2026-06-01T09:00:00Z');
const CREATED: StoredResponse = {
  status: 201,
  contentType: 'application/json; charset=utf-8',
  payload: '{"id":"thing_1","secret":"baton_sk_shown_once"}',
};

let keys = 0;
function newUse(overrides: Partial<KeyUse> = {}): KeyUse {
  return {
    scope: 'usr_test',
    key: `key-${++keys}`,
    fingerprint: fingerprintRequest('POST', '/v1/things', { name: 'thing' }),
    now: NOW,
    ...overrides,
  };
}

/** The error code `promise` rejects with. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isDomainError(error)) return error.code;
    throw error;
  }
  throw new Error('expected a domain error');
}

describe('idempotency store', async () => {
  const database = await createTestDatabase();
  const { db } = database;
  afterAll(() => database.close());

  const claim = (use: KeyUse) => runInTransaction(db, (tx) => claimIdempotencyKey(tx, use));
  const claimAndSave = (use: KeyUse, response: StoredResponse) =>
    runInTransaction(db, async (tx) => {
      const stored = await claimIdempotencyKey(tx, use);
      if (!stored) await saveIdempotentResponse(tx, use, response);
      return stored;
    });

  it('finds nothing for a new key, then the saved response for the same request', async () => {
    const use = newUse();
    expect(await claimAndSave(use, CREATED)).toBeNull();
    expect(await claim(use)).toEqual(CREATED);
    expect(await claim({ ...use, now: new Date(NOW.getTime() + IDEMPOTENCY_TTL_MS - 1) })).toEqual(CREATED);
  });

  it('refuses the key with another request: idempotency.key_reused', async () => {
    const use = newUse();
    await claimAndSave(use, CREATED);
    const other = { ...use, fingerprint: fingerprintRequest('POST', '/v1/things', { name: 'other' }) };
    expect(await codeOf(claim(other))).toBe('idempotency.key_reused');
  });

  it('keeps keys of different scopes apart', async () => {
    const use = newUse();
    await claimAndSave(use, CREATED);
    expect(await claim({ ...use, scope: 'usr_other' })).toBeNull();
    expect(
      await claim({
        ...use,
        scope: 'usr_other',
        fingerprint: fingerprintRequest('POST', '/v1/things', { name: 'other' }),
      }),
    ).toBeNull();
  });

  it('frees a key after its time: the next request acts and its response replaces the old one', async () => {
    const use = newUse();
    await claimAndSave(use, CREATED);
    const later = {
      ...use,
      now: new Date(NOW.getTime() + IDEMPOTENCY_TTL_MS),
      fingerprint: fingerprintRequest('POST', '/v1/things', { name: 'other' }),
    };
    const next: StoredResponse = { ...CREATED, payload: '{"id":"thing_2"}' };
    expect(await claimAndSave(later, next)).toBeNull();
    expect(await claim(later)).toEqual(next);
  });

  it('keeps no key behind when the transaction that claimed it rolls back', async () => {
    const use = newUse();
    await expect(
      runInTransaction(db, async (tx) => {
        await claimIdempotencyKey(tx, use);
        await saveIdempotentResponse(tx, use, CREATED);
        throw new Error('crash before commit');
      }),
    ).rejects.toThrow('crash before commit');
    expect(await claim(use)).toBeNull();
  });

  it('stores neither the key nor the response in plaintext', async () => {
    const use = newUse({ key: 'plaintext-probe-7d2f' });
    await claimAndSave(use, CREATED);
    const rows = await db.selectFrom('idempotency_keys').selectAll().execute();
    for (const row of rows) {
      expect(row.response.includes('baton_sk_shown_once')).toBe(false);
      expect(row.response.includes('thing_1')).toBe(false);
      expect(row.key_hash.includes('plaintext-probe-7d2f')).toBe(false);
    }
  });

  it('purges only the keys past their time', async () => {
    const old = newUse({ now: new Date(NOW.getTime() - IDEMPOTENCY_TTL_MS) });
    const fresh = newUse();
    await claimAndSave(old, CREATED);
    await claimAndSave(fresh, CREATED);
    const purged = await runInTransaction(db, (tx) => purgeExpiredIdempotencyKeys(tx, NOW));
    expect(purged).toBeGreaterThanOrEqual(1n);
    const left = await db.selectFrom('idempotency_keys').select('expires_at').execute();
    expect(left.every((row) => row.expires_at > NOW)).toBe(true);
    expect(await claim(fresh)).toEqual(CREATED);
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'answers idempotency.in_progress while another transaction holds the key, and frees it at commit',
    async () => {
      const use = newUse();
      await runInTransaction(db, async (holder) => {
        expect(await claimIdempotencyKey(holder, use)).toBeNull();
        expect(await codeOf(claim(use))).toBe('idempotency.in_progress');
        await saveIdempotentResponse(holder, use, CREATED);
      });
      expect(await claim(use)).toEqual(CREATED);
    },
  );
});

describe('fingerprintRequest', () => {
  const fingerprint = (method: string, url: string, body: unknown) =>
    fingerprintRequest(method, url, body).toString('hex');

  it('ignores the order of object fields, at any depth', () => {
    expect(fingerprint('POST', '/v1/things', { a: 1, b: { c: 2, d: [1, 2] } })).toBe(
      fingerprint('POST', '/v1/things', { b: { d: [1, 2], c: 2 }, a: 1 }),
    );
  });

  it('tells apart requests that differ in method, path, values or array order', () => {
    const base = fingerprint('POST', '/v1/things', { a: 1, list: [1, 2] });
    const variants = [
      fingerprint('PUT', '/v1/things', { a: 1, list: [1, 2] }),
      fingerprint('POST', '/v1/things/x', { a: 1, list: [1, 2] }),
      fingerprint('POST', '/v1/things', { a: 2, list: [1, 2] }),
      fingerprint('POST', '/v1/things', { a: '1', list: [1, 2] }),
      fingerprint('POST', '/v1/things', { a: 1, list: [2, 1] }),
      fingerprint('POST', '/v1/things', undefined),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });
});
