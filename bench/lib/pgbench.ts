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

/** The `tps = …` pgbench prints at the end of a run. */
function tpsOf(stdout: string): number {
  const tps = /tps = ([\d.]+)/.exec(stdout)?.[1];
  if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
  return Number(tps);
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
  const binary = pgbenchBinary();
  try {
    await run(binary, ['-i', '-q', '-s', String(options.scale), database.url], { maxBuffer: 1 << 24 });
    const result = new Map<number, number>();
    for (const clients of options.clients) {
      const { stdout } = await run(
        binary,
        [
          '-b',
          'tpcb-like',
          '-c',
          String(clients),
          '-j',
          String(Math.min(clients, 2)),
          '-T',
          String(options.seconds),
          database.url,
        ],
        { maxBuffer: 1 << 24 },
      );
      result.set(clients, tpsOf(stdout));
    }
    return result;
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
    const result = new Map<number, number>();
    for (const clients of options.clients) {
      const { stdout } = await run(
        pgbenchBinary(),
        [
          '-n',
          '-M',
          'prepared',
          '-f',
          file,
          '-c',
          String(clients),
          '-j',
          String(Math.min(clients, 2)),
          '-T',
          String(options.seconds),
          options.url,
        ],
        { maxBuffer: 1 << 24 },
      );
      result.set(clients, tpsOf(stdout));
    }
    return result;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
