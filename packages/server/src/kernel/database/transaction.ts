import type { Kysely } from 'kysely';
import type { Tx } from './database.js';
import type { Tables } from './tables.js';

/** Attempts of one transaction before a serialization failure is reported. */
export const TRANSACTION_ATTEMPTS_MAX = 5;
const RETRY_BASE_DELAY_MS = 5;

/** SQLSTATEs that mean "run the whole transaction again": serialization failure, deadlock. */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);

export function isRetryableTransactionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE_SQLSTATES.has(code);
}

/**
 * SQLSTATEs and socket errors that mean the database could not be reached or dropped the
 * connection: connection exceptions (class 08), the server shutting down or starting
 * (57P01–57P03), too many connections.
 */
const UNAVAILABLE_CODES = /^(08...|57P0[123]|53300|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH)$/;
/** node-postgres reports a lost or unopened connection by message only. */
const UNAVAILABLE_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/;

/**
 * Whether a failure is the database being out of reach rather than anything the request did:
 * the request may be sent again. A write cut off this way may have committed (the answer to
 * its `commit` lost with the connection), which an idempotency key makes safe to find out.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return (
    (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) || UNAVAILABLE_MESSAGES.test(error.message)
  );
}

/**
 * Runs `work` in a transaction, running it again from the start (after a short jittered
 * pause) when the database reports a serialization failure or a deadlock. `work` must
 * therefore have no effects outside the transaction.
 *
 * Rows given to `insertAtCommit` (events, audit records) and statements queued with
 * `executeUnawaited` are written with `commit` at the latest, and their failures reported
 * from it: such a failure fails (or retries) the transaction like any other.
 */
export async function runInTransaction<T>(db: Kysely<Tables>, work: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work);
    } catch (error) {
      if (attempt >= TRANSACTION_ATTEMPTS_MAX || !isRetryableTransactionError(error)) throw error;
      await delay(RETRY_BASE_DELAY_MS * 2 ** attempt * Math.random());
    }
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
