import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { stringify as stableJson } from 'safe-stable-stringify';
import type { Tx } from '../database/database.js';
import { conflict, unprocessable } from '../errors.js';

declare module '../database/tables.js' {
  interface Tables {
    idempotency_keys: IdempotencyKeysTable;
  }
}

export interface IdempotencyKeysTable {
  scope: string;
  key_hash: Buffer;
  fingerprint: Buffer;
  status_code: number;
  content_type: string;
  /** The response, encrypted with a key derived from the idempotency key (see `seal`). */
  response: Buffer;
  created_at: Date;
  expires_at: Date;
}

/** How long a key is remembered. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
export const IDEMPOTENCY_KEY_LENGTH_MAX = 255;

/** A response as first sent, to be replayed byte for byte. */
export interface StoredResponse {
  readonly status: number;
  readonly contentType: string;
  readonly payload: string;
}

/** Who a key belongs to, the key itself, and the fingerprint of the request it was first used with. */
export interface KeyUse {
  readonly scope: string;
  readonly key: string;
  readonly fingerprint: Buffer;
  readonly now: Date;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();
const keyHash = (use: KeyUse) => sha256(`${use.scope}\n${use.key}`);

/**
 * Claims an idempotency key for the running transaction. Concurrent requests with one key are
 * told apart by a transaction-scoped advisory lock: the first holds it until it commits or
 * rolls back, so no crash can leave a key stuck "in progress".
 *
 * @returns the stored response when the key was already used with the same request.
 * @throws DomainError `idempotency.in_progress` while another request with the key runs,
 *   `idempotency.key_reused` when the key was used with a different request.
 */
export async function claimIdempotencyKey(tx: Tx, use: KeyUse): Promise<StoredResponse | null> {
  const hash = keyHash(use);
  const lockId = hash.readBigInt64BE(0);
  const { rows } = await sql<{
    locked: boolean;
  }>`select pg_try_advisory_xact_lock(${lockId}) as locked`.execute(tx);
  if (!rows[0]?.locked) {
    throw conflict(
      'idempotency.in_progress',
      'A request with this Idempotency-Key is still running; retry later.',
    );
  }
  const stored = await tx
    .selectFrom('idempotency_keys')
    .selectAll()
    .where('scope', '=', use.scope)
    .where('key_hash', '=', hash)
    .where('expires_at', '>', use.now)
    .executeTakeFirst();
  if (!stored) return null;
  if (!stored.fingerprint.equals(use.fingerprint)) {
    throw unprocessable(
      'idempotency.key_reused',
      'This Idempotency-Key was already used with a different request; use a new key for a new request.',
    );
  }
  return {
    status: stored.status_code,
    contentType: stored.content_type,
    payload: open(use, stored.response),
  };
}

/** Stores the response to a claimed key, in the same transaction as the request's effects. */
export async function saveIdempotentResponse(tx: Tx, use: KeyUse, response: StoredResponse): Promise<void> {
  const row = {
    scope: use.scope,
    key_hash: keyHash(use),
    fingerprint: use.fingerprint,
    status_code: response.status,
    content_type: response.contentType,
    response: seal(use, response.payload),
    created_at: use.now,
    expires_at: new Date(use.now.getTime() + IDEMPOTENCY_TTL_MS),
  };
  // An expired row with the same key is replaced: the key is free again after its time.
  await tx
    .insertInto('idempotency_keys')
    .values(row)
    .onConflict((oc) => oc.columns(['scope', 'key_hash']).doUpdateSet(row))
    .execute();
}

/** Forgets keys past their time. */
export async function purgeExpiredIdempotencyKeys(tx: Tx, now: Date): Promise<bigint> {
  const result = await tx.deleteFrom('idempotency_keys').where('expires_at', '<=', now).executeTakeFirst();
  return result.numDeletedRows;
}

/** A fingerprint of a request: method, path and body, with object keys in a stable order. */
export function fingerprintRequest(method: string, url: string, body: unknown): Buffer {
  return createHash('sha256')
    .update(`${method} ${url}\n${stableJson(body) ?? ''}`)
    .digest();
}

/*
 * Responses may hold secrets shown once (a new API key), and the database must never hold a
 * secret in plaintext. So a stored response is encrypted (AES-256-GCM) under a key derived
 * from the idempotency key, which Baton does not store: only a caller presenting the key can
 * have its response replayed.
 */
function cipherKey(use: KeyUse): Buffer {
  return Buffer.from(hkdfSync('sha256', use.key, use.scope, 'baton idempotency response v1', 32));
}

function seal(use: KeyUse, payload: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', cipherKey(use), iv);
  const body = Buffer.concat([cipher.update(payload, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function open(use: KeyUse, sealed: Buffer): string {
  const decipher = createDecipheriv('aes-256-gcm', cipherKey(use), sealed.subarray(0, 12));
  decipher.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString('utf8');
}
