import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import { Kysely, type Transaction } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { assert } from '../assert.js';
import { lockDataDir } from './data-dir-lock.js';
import { type DriverOptions, PipelinedPostgresDialect } from './pipelined-driver.js';
import type { Tables } from './tables.js';

/** Runs queries; either the pool or a transaction. */
export type Executor = Kysely<Tables>;
export type Tx = Transaction<Tables>;

export type DatabaseKind = 'embedded' | 'postgres';

/** An open database: the query builder, the pool under it, and how to close both. */
export interface Database {
  readonly kind: DatabaseKind;
  readonly db: Kysely<Tables>;
  readonly pool: pg.Pool;
  close(): Promise<void>;
}

const INT8_OID = 20;

/** `int8` columns are parsed to bigint: money and counters must never pass through a float. */
function parseTypes(): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: string) =>
      oid === INT8_OID
        ? (value: string) => BigInt(value)
        : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
  };
}

/**
 * Wraps a pool (of either database) into a `Database`. The pool's clients should be pipelined
 * (`pipeline: true`): the driver then sends the statements of a transaction that need no
 * answer yet together with the next one (see `pipelined-driver.ts`).
 */
export function databaseFromPool(
  kind: DatabaseKind,
  pool: pg.Pool,
  onClose: () => Promise<void>,
  options: DriverOptions = {},
): Database {
  const db = new Kysely<Tables>({ dialect: new PipelinedPostgresDialect(pool, options) });
  let closed = false;
  return {
    kind,
    db,
    pool,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      await onClose();
    },
  };
}

/** Connects to PostgreSQL. */
export function openPostgres(
  connectionString: string,
  poolSize: number,
  logger?: Logger,
  options: DriverOptions = {},
): Database {
  const pool = new pg.Pool({ connectionString, max: poolSize, types: parseTypes(), pipeline: true });
  // An idle client that loses its connection (a database restart) must not crash the process.
  pool.on('error', (error) => logger?.warn({ err: error }, 'idle database connection failed'));
  // Nor may one in use. The pool listens only while a client is idle, and a connection can be
  // lost while it is checked out, even in the same read as its first answer (a backend
  // terminated as it started): an error event nobody listens to would end the process. The
  // statements under way fail by themselves, and the pool drops the client when it comes back.
  pool.on('connect', (client) => {
    client.on('error', ignoreLostConnection);
  });
  return databaseFromPool('postgres', pool, async () => {}, options);
}

export interface EmbeddedOptions {
  /** A folder on disk, or `memory://` for a throwaway database. */
  readonly dataDir: string;
  /** A dump of a data folder to start from, for fast test databases. */
  readonly loadDataDir?: Blob;
}

/**
 * Opens the embedded database. A folder on disk is locked for this process first: PGlite has
 * no lock of its own, and two processes on one folder would silently lose writes.
 *
 * @throws DataDirLockedError when another process holds the folder.
 */
export async function openEmbedded(options: EmbeddedOptions): Promise<Database & { pglite: PGlite }> {
  const onDisk = !options.dataDir.startsWith('memory://');
  const release = onDisk ? await lockDataDir(options.dataDir) : async () => {};
  try {
    const pglite = new PGlite(
      options.dataDir,
      options.loadDataDir ? { loadDataDir: options.loadDataDir } : {},
    );
    await pglite.waitReady;
    // PGlite is one connection: the pool must never open a second one.
    const pool = new pg.Pool({
      ...createPgConfig(pglite),
      max: 1,
      types: parseTypes(),
      pipeline: true,
    } as pg.PoolConfig);
    const database = databaseFromPool('embedded', pool, async () => {
      await pglite.close();
      await release();
    });
    return { ...database, pglite };
  } catch (error) {
    await release();
    throw error;
  }
}

/** Asserts that `executor` is a transaction: writes that must be atomic call this first. */
export function requireTransaction(executor: Executor): asserts executor is Tx {
  assert(executor.isTransaction, 'this write must run inside a transaction');
}

/** See `openPostgres`: a lost connection in use is reported by the statements it fails. */
function ignoreLostConnection(): void {}
