import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createBenchDatabase } from './postgres.js';

/** The pgbench of the newest PostgreSQL installed, or the one on the PATH. */
export function pgbenchBinary(): string {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const candidate = `${root}/${version}/bin/pgbench`;
      if (existsSync(candidate)) return candidate;
    }
  }
  return 'pgbench';
}

const run = promisify(execFile);

/**
 * Runs pgbench with `workload` (its options naming what to run) against `url` for each number
 * of clients (on at most 2 threads) for `seconds`, and returns the transactions per second it
 * reports, by clients.
 */
async function tpsByClients(
  url: string,
  workload: readonly string[],
  clients: readonly number[],
  seconds: number,
): Promise<Map<number, number>> {
  const result = new Map<number, number>();
  for (const count of clients) {
    const { stdout } = await run(
      pgbenchBinary(),
      [...workload, '-c', String(count), '-j', String(Math.min(count, 2)), '-T', String(seconds), url],
      { maxBuffer: 1 << 24 },
    );
    const tps = /tps = ([\d.]+)/.exec(stdout)?.[1];
    if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
    result.set(count, Number(tps));
  }
  return result;
}

/**
 * pgbench's TPC-B-like transactions per second on the server `serverUrl` points at, for each
 * number of clients, on a throwaway database initialised at `scale`: the baseline benchmarks
 * compare Baton's throughput with, measured in the same run.
 */
export async function pgbenchTps(options: {
  readonly serverUrl: string;
  readonly scale: number;
  readonly seconds: number;
  readonly clients: readonly number[];
}): Promise<Map<number, number>> {
  const database = await createBenchDatabase(options.serverUrl, 1);
  try {
    await run(pgbenchBinary(), ['-i', '-q', '-s', String(options.scale), database.url], {
      maxBuffer: 1 << 24,
    });
    return await tpsByClients(database.url, ['-b', 'tpcb-like'], options.clients, options.seconds);
  } finally {
    await database.drop();
  }
}

/**
 * Transactions per second of a custom pgbench `script` on the existing database `url`, for each
 * number of clients, with prepared statements: what the database alone does with a statement an
 * application sends, with pgbench as a client that costs next to nothing.
 */
export async function pgbenchScriptTps(options: {
  readonly url: string;
  readonly script: string;
  readonly seconds: number;
  readonly clients: readonly number[];
}): Promise<Map<number, number>> {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'baton-pgbench-'));
  const file = path.join(folder, 'script.sql');
  writeFileSync(file, options.script);
  try {
    return await tpsByClients(
      options.url,
      ['-n', '-M', 'prepared', '-f', file],
      options.clients,
      options.seconds,
    );
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
