import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The local PostgreSQL server benchmarks create their throwaway databases on. */
export const DEFAULT_BENCH_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

const INT8_OID = 20;

/** `int8` as bigint, as Baton reads it. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID
      ? (value: string) => BigInt(value)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  readonly serverVersion: string;
  /** The server's memory settings, which decide how much of a table stays cached. */
  readonly serverSettings: string;
  /** A pool on the new database. */
  readonly pool: pg.Pool;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

/**
 * Creates a `baton_bench_*` database on the server `serverUrl` points at, and a pool on it.
 * Benchmarks only ever load their own database, and drop it when they finish.
 */
export async function createBenchDatabase(serverUrl: string, poolSize = 4): Promise<BenchDatabase> {
  const name = `baton_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  let serverVersion: string;
  let serverSettings: string;
  try {
    serverVersion = (await admin.query<{ server_version: string }>('show server_version')).rows[0]!
      .server_version;
    const settings = await admin.query<{ name: string; setting: string }>(
      `select name, current_setting(name) as setting from pg_settings
       where name in ('shared_buffers', 'work_mem', 'effective_cache_size', 'max_parallel_workers_per_gather')
       order by name`,
    );
    serverSettings = settings.rows.map((row) => `${row.name}=${row.setting}`).join(', ');
    // The name is generated here, never taken from input.
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl, name);
  // Timestamps are compared and truncated in UTC, as Baton's periods are.
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types, options: '-c timezone=UTC' });
  // An idle connection that the server closes (the drop below) must not crash the benchmark.
  pool.on('error', (error) => console.error(`bench database connection closed: ${error.message}`));
  let dropped = false;
  return {
    name,
    url,
    serverVersion,
    serverSettings,
    pool,
    async drop() {
      if (dropped) return;
      dropped = true;
      await pool.end();
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** The connection string `url` with its database replaced by `database`. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
