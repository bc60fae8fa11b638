import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../../packages/server/src/kernel/clock.js';
import { openPostgres } from '../../packages/server/src/kernel/database/database.js';
import { createOperatorKey, migrate } from '../../packages/server/src/main.js';
import { type LoadRequest, runLoad } from '../lib/http-load.js';
import type { BenchDatabase } from '../lib/postgres.js';
import { formatMs, type LatencySummary } from '../lib/stats.js';
import { loadBatonTables } from './baton-load.js';
import type { ServerReady } from './baton-server.js';
import { type BenchQuery, type Dataset, QUERY_MIXES, type QueryMix } from './dataset.js';

/**
 * The query mix over HTTP against a real Baton: the data set is loaded into Baton's own tables
 * on the bench database, a Baton server process starts on it (building its matching index from
 * the database) and a few concurrent clients call `POST /v1/matching/queries` over a socket on
 * 127.0.0.1.
 */

export interface HttpMeasurement {
  readonly description: string;
  readonly loadMs: number;
  /** Start-up of the Baton process on the loaded database, the index build included. */
  readonly startMs: number;
  /** Live heap and array buffers the server process gained during start-up. */
  readonly serverHeapBytes: number;
  readonly perMix: Record<QueryMix, LatencySummary>;
  /**
   * The floor under every request: an authenticated GET of the caller's own user (one small
   * read), measured the same way, so that the query's own cost can be told from HTTP's.
   */
  readonly floor: LatencySummary;
  /** Answered requests per second, with `concurrency` clients. */
  readonly throughput: Record<QueryMix, number>;
  readonly floorThroughput: number;
  readonly answers: Record<QueryMix, string[][]>;
  readonly candidates: Record<QueryMix, number[]>;
  readonly failures: number;
  readonly firstFailure: string | null;
}

export interface HttpOptions {
  readonly requestsPerMix: number;
  readonly concurrency: number;
  readonly warmup: number;
  readonly keepAnswers: number;
  readonly timeLimitMs: number;
  readonly log: (message: string) => void;
}

const SERVER_START_TIMEOUT_MS = 15 * 60_000;
const QUERY_PATH = '/v1/matching/queries';

/** The query as the API takes it. */
export function requestBody(query: BenchQuery): Record<string, unknown> {
  return {
    capability: query.capability,
    region: query.region,
    quantity: query.quantity,
    needed_by: query.neededBy.toISOString(),
    ...(Object.keys(query.constraints).length > 0 ? { constraints: query.constraints } : {}),
    limit: query.limit,
  };
}

interface MatchBody {
  readonly candidates?: number;
  readonly data?: { readonly offer_id?: string }[];
}

/** The offers an API answer ranks, in order. */
export function answerIds(body: unknown): string[] {
  return ((body as MatchBody | undefined)?.data ?? []).map((result) => result.offer_id ?? '?');
}

/** How many offers passed the filters, by an API answer; -1 for no answer. */
export function answerCandidates(body: unknown): number {
  return (body as MatchBody | undefined)?.candidates ?? -1;
}

/**
 * Loads the data set into Baton's tables on `database`, starts a Baton server process on it and
 * runs the query mix over HTTP. Throws when the load fails or the server does not start within
 * 15 minutes; requests that are not answered with 200 are counted, not thrown.
 */
export async function measureOverHttp(
  database: BenchDatabase,
  dataset: Dataset,
  queries: Record<QueryMix, BenchQuery[]>,
  options: HttpOptions,
): Promise<HttpMeasurement> {
  const { log } = options;
  const baton = openPostgres(database.url, 4);
  let secret: string;
  const loadStarted = performance.now();
  try {
    log("migrating the bench database with Baton's migrations");
    await migrate(baton);
    log("loading the data set into Baton's tables");
    await loadBatonTables(database.pool, dataset, (what) => log(`  ${what}`));
    ({ secret } = await createOperatorKey(
      baton,
      { role: 'admin', name: 'Benchmark', email: 'bench@operator.invalid' },
      new ManualClock(dataset.now),
    ));
  } finally {
    await baton.close();
  }
  const loadMs = performance.now() - loadStarted;
  log(`loaded in ${formatMs(loadMs)} ms; starting a Baton server process on it`);

  const server = fork(
    fileURLToPath(new URL('./baton-server.ts', import.meta.url)),
    [database.url, dataset.now.toISOString()],
    {
      execArgv: ['--expose-gc', '--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  try {
    const ready = await new Promise<ServerReady>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('The Baton server did not start in time')),
        SERVER_START_TIMEOUT_MS,
      );
      server.once('message', (message: ServerReady) => {
        clearTimeout(timer);
        resolve(message);
      });
      server.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`The Baton server exited with ${code}`));
      });
    });
    log(`Baton started in ${formatMs(ready.startMs)} ms at ${ready.url}`);
    const perMix = {} as Record<QueryMix, LatencySummary>;
    const answers = {} as Record<QueryMix, string[][]>;
    const candidates = {} as Record<QueryMix, number[]>;
    let failures = 0;
    let firstFailure: string | null = null;
    const loadOptions = {
      baseUrl: ready.url,
      apiKey: secret,
      concurrency: options.concurrency,
      warmup: options.warmup,
      timeLimitMs: options.timeLimitMs,
    };
    const floorRun = await runLoad(
      Array.from({ length: options.requestsPerMix }, () => ({ path: '/v1/me' })),
      loadOptions,
    );
    const floor = floorRun.latencies.summary();
    const floorThroughput = (floor.count * 1000) / floorRun.elapsedMs;
    const throughput = {} as Record<QueryMix, number>;
    failures += floorRun.failures;
    firstFailure ??= floorRun.firstFailure;
    log(`HTTP floor (GET /v1/me): p50 ${formatMs(floor.p50Ms)} ms, p99 ${formatMs(floor.p99Ms)} ms`);
    for (const mix of QUERY_MIXES) {
      const requests: LoadRequest[] = queries[mix]
        .slice(0, options.requestsPerMix)
        .map((query) => ({ path: QUERY_PATH, body: requestBody(query) }));
      const result = await runLoad(requests, loadOptions, options.keepAnswers);
      perMix[mix] = result.latencies.summary();
      throughput[mix] = (perMix[mix].count * 1000) / result.elapsedMs;
      answers[mix] = Array.from({ length: options.keepAnswers }, (_, q) => answerIds(result.bodies[q]));
      candidates[mix] = Array.from({ length: options.keepAnswers }, (_, q) =>
        answerCandidates(result.bodies[q]),
      );
      failures += result.failures;
      firstFailure ??= result.firstFailure;
      log(
        `HTTP ${mix}: p50 ${formatMs(perMix[mix].p50Ms)} ms, p99 ${formatMs(perMix[mix].p99Ms)} ms, ${result.failures} failed`,
      );
    }
    return {
      description:
        `a Baton server process on the bench database (PostgreSQL), its index built from Baton's tables at start-up; ` +
        `${options.concurrency} concurrent clients in the benchmark process over kept-alive connections to ${ready.url}`,
      loadMs,
      startMs: ready.startMs,
      serverHeapBytes: ready.heapBytes,
      perMix,
      floor,
      throughput,
      floorThroughput,
      answers,
      candidates,
      failures,
      firstFailure,
    };
  } finally {
    if (server.exitCode === null && server.connected) server.send({ type: 'stop' });
    await new Promise((resolve) => {
      if (server.exitCode !== null) return resolve(null);
      const timer = setTimeout(() => {
        server.kill();
        resolve(null);
      }, 30_000);
      server.once('exit', () => {
        clearTimeout(timer);
        resolve(null);
      });
    });
  }
}
