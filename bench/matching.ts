import { parseArgs } from 'node:util';
import { describeMachine } from './lib/machine.js';
import { canCollectGarbage } from './lib/memory.js';
import { createBenchDatabase, DEFAULT_BENCH_DATABASE_URL } from './lib/postgres.js';
import { formatBytes, formatCount, formatMs, Latencies, type LatencySummary } from './lib/stats.js';
import { markdownTable } from './lib/table.js';
import { type HttpMeasurement, measureOverHttp } from './matching/baton-http.js';
import {
  type BenchQuery,
  Dataset,
  DEFAULT_DATASET,
  HOT_SPOT_OFFERS_PER_MILLION_MIN,
  QUERY_MIXES,
  type QueryMix,
} from './matching/dataset.js';
import { type IndexMeasurement, measureIndex } from './matching/in-process.js';
import {
  baselineRankingFromSettings,
  baselineStatement,
  loadBaseline,
  runBaseline,
} from './matching/sql-baseline.js';

/**
 * `npm run bench -- matching`: the matcher's in-memory index against the obvious SQL on
 * PostgreSQL, at a million offers by default. See bench/RESULTS.md for what it measures and
 * the numbers of the last recorded run.
 */

const USAGE = `npm run bench -- matching [options]
  --offers <n>          offers to generate (default 1000000)
  --quick               50,000 offers and fewer queries, to try it out
  --seed <n>            data set and query seed (default ${DEFAULT_DATASET.seed})
  --queries <n>         in-process queries per mix (default 5000)
  --sql-queries <n>     SQL queries per mix (default 100)
  --http-queries <n>    HTTP queries per mix (default 2000)
  --concurrency <n>     HTTP clients (default 4)
  --skip-sql            no PostgreSQL baseline
  --skip-http           no HTTP measurement
  --database-url <url>  server for the bench database (default $BENCH_DATABASE_URL or ${DEFAULT_BENCH_DATABASE_URL})`;

interface Options {
  readonly offers: number;
  readonly partners: number;
  readonly seed: number;
  readonly queries: number;
  readonly sqlQueries: number;
  readonly httpQueries: number;
  readonly concurrency: number;
  readonly skipSql: boolean;
  readonly skipHttp: boolean;
  readonly databaseUrl: string;
}

/** Queries compared answer for answer between the index, SQL and HTTP, per mix. */
const COMPARED_QUERIES = 50;
const WARMUP_QUERIES = 200;
const SQL_WARMUP_QUERIES = 10;
/** Each measured mix stops after this long, whatever is left: the whole run stays bounded. */
const PHASE_TIME_LIMIT_MS = 60_000;

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      offers: { type: 'string' },
      quick: { type: 'boolean', default: false },
      seed: { type: 'string' },
      queries: { type: 'string' },
      'sql-queries': { type: 'string' },
      'http-queries': { type: 'string' },
      concurrency: { type: 'string' },
      'skip-sql': { type: 'boolean', default: false },
      'skip-http': { type: 'boolean', default: false },
      'database-url': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const integer = (name: string, value: string | undefined, fallback: number, min = 1) => {
    if (value === undefined) return fallback;
    const parsed = Number(value.replaceAll('_', ''));
    if (!Number.isInteger(parsed) || parsed < min)
      throw new Error(`--${name} must be a whole number ≥ ${min}`);
    return parsed;
  };
  const quick = values.quick ?? false;
  const offers = integer('offers', values.offers, quick ? 50_000 : DEFAULT_DATASET.offers, 1_000);
  return {
    offers,
    // A hundred offers per partner on average, as 10,000 partners hold a million offers.
    partners: Math.max(100, Math.round(offers / 100)),
    seed: integer('seed', values.seed, DEFAULT_DATASET.seed, 0),
    queries: integer('queries', values.queries, quick ? 1_000 : 5_000),
    sqlQueries: integer('sql-queries', values['sql-queries'], quick ? 50 : 100),
    httpQueries: integer('http-queries', values['http-queries'], quick ? 500 : 2_000),
    concurrency: integer('concurrency', values.concurrency, 4),
    skipSql: values['skip-sql'] ?? false,
    skipHttp: values['skip-http'] ?? false,
    databaseUrl: values['database-url'] ?? process.env.BENCH_DATABASE_URL ?? DEFAULT_BENCH_DATABASE_URL,
  };
}

interface SqlMeasurement {
  readonly loadMs: number;
  readonly indexMs: number;
  readonly tableBytes: number;
  readonly indexBytes: number;
  readonly serverVersion: string;
  readonly perMix: Record<QueryMix, LatencySummary>;
  readonly answers: Record<QueryMix, string[][]>;
  readonly candidates: Record<QueryMix, number[]>;
}

/**
 * Runs the benchmark and prints its tables. Throws when node runs without `--expose-gc`, when
 * an option is not a whole number, when the hot spot is smaller than the issue asks, or when
 * PostgreSQL or the Baton server process fails.
 */
export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  if (!canCollectGarbage()) {
    throw new Error(
      'Run through `npm run bench -- matching` (node --expose-gc): memory is measured after collection.',
    );
  }
  const machine = describeMachine();
  const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
  console.log(`# Matching benchmark\n`);
  console.log(
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.os}, Node ${machine.node}`,
  );
  console.log(`Load average at start: ${machine.loadAverage}`);

  log(`generating ${formatCount(options.offers)} offers from ${formatCount(options.partners)} partners`);
  const generatedAt = performance.now();
  const dataset = new Dataset({
    ...DEFAULT_DATASET,
    offers: options.offers,
    partners: options.partners,
    seed: options.seed,
  });
  const shape = dataset.describe();
  const hotSpotFloor = Math.round((HOT_SPOT_OFFERS_PER_MILLION_MIN * options.offers) / 1_000_000);
  console.log(
    `Data set: ${formatCount(options.offers)} offers, ${formatCount(options.partners)} partners, ` +
      `${dataset.capabilities.length} capabilities, ${dataset.regionCodes.length} regions, seed ${options.seed}; ` +
      `hot spot ${dataset.capabilities[0]!.key} in ${dataset.regionCodes[0]} holds ${formatCount(shape.hotSpotOffers)} offers ` +
      `(floor ${formatCount(hotSpotFloor)}); median capability+region ${formatCount(shape.medianPairOffers)} offers; ` +
      `${formatCount(shape.usageRows)} capacity periods with work booked; generated in ${formatMs(performance.now() - generatedAt)} ms`,
  );
  if (shape.hotSpotOffers < hotSpotFloor) throw new Error('The hot spot is smaller than the issue asks');

  const queries = Object.fromEntries(
    QUERY_MIXES.map((mix) => [mix, dataset.queries(mix, options.queries, options.seed)]),
  ) as Record<QueryMix, BenchQuery[]>;

  log('building the index in process and running the query mix');
  const index = await measureIndex(dataset, queries, {
    warmup: WARMUP_QUERIES,
    keepAnswers: COMPARED_QUERIES,
    timeLimitMs: PHASE_TIME_LIMIT_MS,
  });

  let sql: SqlMeasurement | null = null;
  let overHttp: HttpMeasurement | null = null;
  if (!options.skipSql || !options.skipHttp) {
    const database = await createBenchDatabase(options.databaseUrl);
    log(`created database ${database.name} (PostgreSQL ${database.serverVersion})`);
    console.log(
      `PostgreSQL ${database.serverVersion} on ${options.databaseUrl.replace(/\/\/[^@]*@/, '//')}: ${database.serverSettings}`,
    );
    try {
      if (!options.skipSql) sql = await measureSql(database, dataset, queries, options, log);
      if (!options.skipHttp) {
        overHttp = await measureOverHttp(database, dataset, queries, {
          requestsPerMix: options.httpQueries,
          concurrency: options.concurrency,
          warmup: WARMUP_QUERIES,
          keepAnswers: COMPARED_QUERIES,
          timeLimitMs: PHASE_TIME_LIMIT_MS,
          log,
        });
      }
    } finally {
      await database.drop();
      log(`dropped database ${database.name}`);
    }
  }
  report(options, index, sql, overHttp);
  console.log(
    `\nRun took ${(process.uptime() / 60).toFixed(1)} min; load average at the end: ${describeMachine().loadAverage}.`,
  );
}

async function measureSql(
  database: Awaited<ReturnType<typeof createBenchDatabase>>,
  dataset: Dataset,
  queries: Record<QueryMix, BenchQuery[]>,
  options: Options,
  log: (message: string) => void,
): Promise<SqlMeasurement> {
  log('loading the SQL baseline');
  let reported = 0;
  const load = await loadBaseline(database.pool, dataset, (done) => {
    if (done - reported >= 250_000) {
      reported = done;
      log(`  ${formatCount(done)} offers loaded`);
    }
  });
  log(`SQL baseline loaded in ${formatMs(load.loadMs)} ms, indexed in ${formatMs(load.indexMs)} ms`);
  const ranking = baselineRankingFromSettings();
  const perMix = {} as Record<QueryMix, LatencySummary>;
  const answers = {} as Record<QueryMix, string[][]>;
  const candidates = {} as Record<QueryMix, number[]>;
  const client = await database.pool.connect();
  try {
    for (const mix of QUERY_MIXES) {
      const mixQueries = queries[mix].slice(0, options.sqlQueries);
      for (const query of mixQueries.slice(0, SQL_WARMUP_QUERIES)) {
        await runBaseline(client, baselineStatement(query, dataset.now, ranking));
      }
      const latencies = new Latencies(mixQueries.length);
      answers[mix] = [];
      const deadline = performance.now() + PHASE_TIME_LIMIT_MS;
      candidates[mix] = [];
      for (const [q, query] of mixQueries.entries()) {
        if (q >= COMPARED_QUERIES && performance.now() > deadline) break;
        // The statement is built outside the timing, as the index's query object is.
        const statement = baselineStatement(query, dataset.now, ranking);
        const started = performance.now();
        const result = await runBaseline(client, statement);
        latencies.add(performance.now() - started);
        if (q < COMPARED_QUERIES) {
          answers[mix].push(result.ids);
          candidates[mix].push(result.candidates);
        }
      }
      perMix[mix] = latencies.summary();
      log(`SQL ${mix}: p50 ${formatMs(perMix[mix].p50Ms)} ms, p99 ${formatMs(perMix[mix].p99Ms)} ms`);
    }
  } finally {
    client.release();
  }
  return { ...load, serverVersion: database.serverVersion, perMix, answers, candidates };
}

/** Answers that agree, query by query: the same offers in the same order. */
function agreement(a: string[][], b: string[][]): string {
  const compared = Math.min(a.length, b.length);
  if (compared === 0) return '–';
  let same = 0;
  for (let q = 0; q < compared; q++) {
    if (a[q]!.join(',') === b[q]!.join(',')) same++;
  }
  return `${same}/${compared}`;
}

/** Queries for which both found the same number of candidates. */
function sameCounts(a: number[], b: number[]): string {
  const compared = Math.min(a.length, b.length);
  let same = 0;
  for (let q = 0; q < compared; q++) if (a[q] === b[q]) same++;
  return `${same}/${compared}`;
}

function report(
  options: Options,
  index: IndexMeasurement,
  sql: SqlMeasurement | null,
  overHttp: HttpMeasurement | null,
): void {
  const offers = options.offers;
  console.log('\n## Build and memory\n');
  const buildRows: string[][] = [
    [
      'index, in process (from generated offers), before any query',
      formatMs(index.buildMs),
      `${formatMs((index.buildMs * 1000) / offers)} µs`,
      formatBytes(index.bytes),
      `${(index.bytes / offers).toFixed(0)} B`,
    ],
    [
      'the same index after the query mixes (packed copies of the buckets queried)',
      '–',
      '–',
      formatBytes(index.bytesAfterQueries),
      `${(index.bytesAfterQueries / offers).toFixed(0)} B`,
    ],
    [
      `the same index after a query in every capability and region (${formatCount(index.bucketsQueried)} with candidates)`,
      '–',
      '–',
      formatBytes(index.bytesAllBuckets),
      `${(index.bytesAllBuckets / offers).toFixed(0)} B`,
    ],
  ];
  if (overHttp) {
    buildRows.push([
      'Baton start-up on PostgreSQL (index built from the database)',
      formatMs(overHttp.startMs),
      `${formatMs((overHttp.startMs * 1000) / offers)} µs`,
      formatBytes(overHttp.serverHeapBytes),
      `${(overHttp.serverHeapBytes / offers).toFixed(0)} B (process growth)`,
    ]);
    buildRows.push([
      "loading Baton's tables (the benchmark's set-up, batched inserts)",
      formatMs(overHttp.loadMs),
      `${formatMs((overHttp.loadMs * 1000) / offers)} µs`,
      '–',
      '–',
    ]);
  }
  if (sql) {
    buildRows.push([
      'SQL baseline: load (batched inserts)',
      formatMs(sql.loadMs),
      `${formatMs((sql.loadMs * 1000) / offers)} µs`,
      formatBytes(sql.tableBytes),
      `${(sql.tableBytes / offers).toFixed(0)} B (table)`,
    ]);
    buildRows.push([
      'SQL baseline: indexes + analyse',
      formatMs(sql.indexMs),
      `${formatMs((sql.indexMs * 1000) / offers)} µs`,
      formatBytes(sql.indexBytes),
      `${(sql.indexBytes / offers).toFixed(0)} B (indexes)`,
    ]);
  }
  console.log(markdownTable(['what', 'time (ms)', 'per offer', 'memory', 'memory per offer'], buildRows));

  console.log('\n## Top-10 query latency\n');
  const rows: string[][] = [];
  for (const mix of QUERY_MIXES) {
    const inProcess = index.perMix[mix];
    const candidates = index.candidates[mix];
    const meanCandidates = candidates.length
      ? candidates.reduce((sum, count) => sum + count, 0) / candidates.length
      : 0;
    rows.push([
      mix,
      formatCount(Math.round(meanCandidates)),
      `${formatMs(inProcess.p50Ms)} / ${formatMs(inProcess.p99Ms)}`,
      overHttp
        ? `${formatMs(overHttp.perMix[mix].p50Ms)} / ${formatMs(overHttp.perMix[mix].p99Ms)} (${overHttp.throughput[mix].toFixed(0)}/s)`
        : '–',
      sql ? `${formatMs(sql.perMix[mix].p50Ms)} / ${formatMs(sql.perMix[mix].p99Ms)}` : '–',
      sql
        ? `${(sql.perMix[mix].p50Ms / inProcess.p50Ms).toFixed(0)}× / ${(sql.perMix[mix].p99Ms / inProcess.p99Ms).toFixed(0)}×`
        : '–',
      sql
        ? `${sameCounts(index.candidates[mix], sql.candidates[mix])}, ${agreement(index.answers[mix], sql.answers[mix])}`
        : '–',
      overHttp
        ? `${sameCounts(index.candidates[mix], overHttp.candidates[mix])}, ${agreement(index.answers[mix], overHttp.answers[mix])}`
        : '–',
    ]);
  }
  if (overHttp) {
    rows.push([
      'floor: GET /v1/me',
      '–',
      '–',
      `${formatMs(overHttp.floor.p50Ms)} / ${formatMs(overHttp.floor.p99Ms)} (${overHttp.floorThroughput.toFixed(0)}/s)`,
      '–',
      '–',
      '–',
      '–',
    ]);
  }
  console.log(
    markdownTable(
      [
        'mix',
        'candidates (mean)',
        'index p50 / p99 (ms)',
        'HTTP p50 / p99 (ms) (req/s)',
        'SQL p50 / p99 (ms)',
        'SQL ÷ index p50 / p99',
        'same candidates, top-10 as SQL',
        'same candidates, top-10 over HTTP',
      ],
      rows,
    ),
  );
  console.log(
    `\nQueries per mix: ${formatCount(index.perMix.hot.count)} in process` +
      (overHttp
        ? `, ${formatCount(overHttp.perMix.hot.count)} over HTTP (${options.concurrency} clients)`
        : '') +
      (sql ? `, ${formatCount(sql.perMix.hot.count)} in SQL (PostgreSQL ${sql.serverVersion})` : '') +
      '; "same candidates" compares how many offers pass the filters, and "same top-10" the offers ' +
      `returned, in order, for the first ${COMPARED_QUERIES} queries of each mix.`,
  );
  if (overHttp) {
    console.log(
      `HTTP: ${overHttp.description}; ${overHttp.failures} failed requests` +
        (overHttp.firstFailure ? ` (first: ${overHttp.firstFailure})` : ''),
    );
  }
}
