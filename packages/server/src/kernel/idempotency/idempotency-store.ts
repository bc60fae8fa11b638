import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { CompiledQuery } from 'kysely';
import { stringify as stableJson } from 'safe-stable-stringify';
import type { Tx } from '../database/database.js';
import { executeTogether, executeUnawaited } from '../database/pipelined-driver.js';
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

/** How long a key is remembered, unless its route says longer. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * How long keys of calls that send money out (payouts, refunds) are remembered: a client that
 * retries one days later, after an outage, must get the first answer, not a second payout.
 */
export const IDEMPOTENCY_MONEY_OUT_TTL_MS = 7 * 24 * 60 * 60 * 1000;
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
  /** How long the key is kept from `now`; `IDEMPOTENCY_TTL_MS` when not given. */
  readonly retentionMs?: number;
}

/*
 * The statements every write with a key runs, written out once rather than built per request.
 * An expired row with the same key is replaced on save: the key is free again after its time.
 */
const LOCK_SQL = 'select pg_try_advisory_xact_lock($1) as locked';
const LOOKUP_SQL =
  'select fingerprint, status_code, content_type, response from idempotency_keys ' +
  'where scope = $1 and key_hash = $2 and expires_at > $3';
const SAVE_SQL =
  'insert into idempotency_keys ' +
  '(scope, key_hash, fingerprint, status_code, content_type, response, created_at, expires_at) ' +
  'values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (scope, key_hash) do update set ' +
  'fingerprint = excluded.fingerprint, status_code = excluded.status_code, content_type = excluded.content_type, ' +
  'response = excluded.response, created_at = excluded.created_at, expires_at = excluded.expires_at';

const sha256 = (text: string) => createHash('sha256').update(text).digest();
const keyHash = (use: KeyUse) => sha256(`${use.scope}\n${use.key}`);

/**
 * Claims an idempotency key for the running transaction. Concurrent requests with one key are
 * told apart by a transaction-scoped advisory lock: the first holds it until it commits or
 * rolls back, so no crash can leave a key stuck "in progress".
 *
 * The lock and the lookup travel in one round trip but are two statements: the lookup's
 * snapshot must be taken after the lock is held. In one statement it would be taken before,
 * and could miss the response of a request that committed (and let go of the lock) in between.
 *
 * @returns the stored response when the key was already used with the same request.
 * @throws DomainError `idempotency.in_progress` while another request with the key runs,
 *   `idempotency.key_reused` when the key was used with a different request.
 */
export async function claimIdempotencyKey(tx: Tx, use: KeyUse): Promise<StoredResponse | null> {
  const hash = keyHash(use);
  const lockId = hash.readBigInt64BE(0);
  const [lock, lookup] = await executeTogether(tx, [
    CompiledQuery.raw(LOCK_SQL, [lockId]),
    CompiledQuery.raw(LOOKUP_SQL, [use.scope, hash, use.now]),
  ]);
  if (!(lock?.rows[0] as { locked: boolean } | undefined)?.locked) {
    throw conflict(
      'idempotency.in_progress',
      'A request with this Idempotency-Key is still running; retry later.',
    );
  }
  const stored = lookup?.rows[0] as
    | Pick<IdempotencyKeysTable, 'fingerprint' | 'status_code' | 'content_type' | 'response'>
    | undefined;
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

/**
 * Stores the response to a claimed key, in the same transaction as the request's effects. The
 * statement is sent without waiting for its answer: it travels with `commit`, which reports
 * its failure.
 */
export async function saveIdempotentResponse(tx: Tx, use: KeyUse, response: StoredResponse): Promise<void> {
  await executeUnawaited(
    tx,
    CompiledQuery.raw(SAVE_SQL, [
      use.scope,
      keyHash(use),
      use.fingerprint,
      response.status,
      response.contentType,
      seal(use, response.payload),
      use.now,
      new Date(use.now.getTime() + (use.retentionMs ?? IDEMPOTENCY_TTL_MS)),
    ]),
  );
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
