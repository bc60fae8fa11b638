import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { startVitest } from 'vitest/node';
import { describeMachine } from '../bench/lib/machine.js';
import { DEFAULT_BENCH_DATABASE_URL } from '../bench/lib/postgres.js';
import { markdownTable } from '../bench/lib/table.js';

/*
 * `npm run soak -- <name>… [options]` runs reliability tests of docs/RELIABILITY.md at their
 * full sizes. `npm test` runs the same tests, some of them smaller (a test reads its size from
 * the environment variable named below), so that the suite stays quick; a soak sets the size
 * the criterion names, runs the test on each database and prints a table of what passed.
 */

type DatabaseKind = 'embedded' | 'postgres';

interface Soak {
  /** The test's id in docs/RELIABILITY.md. */
  readonly id: string;
  readonly what: string;
  readonly files: readonly string[];
  /** Only the tests whose names match, when the file holds others too. */
  readonly testNamePattern?: string;
  /** The environment variable the test reads its size from, the full size, and what it counts. */
  readonly size?: { readonly variable: string; readonly full: number; readonly unit: string };
  /** The environment variable the test reads its seed from, if it takes one. */
  readonly seedVariable?: string;
  /** Where the test runs; the others skip it. */
  readonly databases: readonly DatabaseKind[];
  /** Whether it runs the built `baton` command (built first). */
  readonly built?: boolean;
  /** What stays fixed, for tests whose size is already the criterion's in `npm test`. */
  readonly fixed?: string;
}

const BOTH: readonly DatabaseKind[] = ['embedded', 'postgres'];
const SERVER = 'packages/server/src';

const SOAKS: Record<string, Soak> = {
  stampede: {
    id: 'L1',
    what: 'idempotency stampede',
    files: [`${SERVER}/kernel/http/app.test.ts`],
    testNamePattern: 'concurrent identical requests',
    size: { variable: 'STAMPEDE_REQUESTS', full: 1_000, unit: 'concurrent requests' },
    databases: BOTH,
  },
  'double-spend': {
    id: 'L2',
    what: 'hot-account double spend',
    files: [`${SERVER}/modules/ledger/ledger.test.ts`],
    testNamePattern: 'concurrent payouts',
    databases: BOTH,
    fixed: '500 payouts against 100.00',
  },
  bank: {
    id: 'L3',
    what: 'bank workload',
    files: [`${SERVER}/workflows/bank-workload.test.ts`],
    size: { variable: 'BANK_OPERATIONS', full: 100_000, unit: 'operations' },
    databases: BOTH,
  },
  crash: {
    id: 'F1',
    what: 'kill -9 under load',
    files: ['packages/cli/src/crash.test.ts'],
    // A kill every 150 to 190 postings: 50 or more in 10,000.
    size: { variable: 'CRASH_OPERATIONS', full: 10_000, unit: 'postings, a kill per 150–190' },
    databases: ['postgres'],
    built: true,
  },
  'database-faults': {
    id: 'F2',
    what: 'database faults',
    files: [`${SERVER}/kernel/database/faults.test.ts`, 'packages/cli/src/database-restart.test.ts'],
    databases: ['postgres'],
    built: true,
    fixed: 'connections killed, server restarted',
  },
  'lost-responses': {
    id: 'F3',
    what: 'lost responses',
    files: [`${SERVER}/workflows/lost-responses.test.ts`],
    size: { variable: 'LOST_RESPONSE_ORDERS', full: 500, unit: 'orders' },
    seedVariable: 'LOST_RESPONSE_SEED',
    databases: BOTH,
  },
  fuzz: {
    id: 'B1',
    what: 'schema fuzz, then no card number stored (A4)',
    files: [`${SERVER}/request-fuzz.test.ts`],
    size: { variable: 'FUZZ_RUNS_PER_FAMILY', full: 10_000, unit: 'requests per endpoint family' },
    seedVariable: 'FUZZ_SEED',
    databases: BOTH,
  },
  'money-model': {
    id: 'M1',
    what: 'model-based money test',
    files: [`${SERVER}/workflows/money.model.test.ts`],
    size: { variable: 'MONEY_MODEL_RUNS', full: 5_000, unit: 'runs' },
    databases: BOTH,
  },
  'write-skew': {
    id: 'M5',
    what: 'write skew',
    files: [`${SERVER}/workflows/money-races.test.ts`],
    // A round races every one of the test's 100 partners once.
    size: { variable: 'MONEY_RACE_ROUNDS', full: 100, unit: 'rounds of 100 races' },
    databases: BOTH,
  },
};

const USAGE = `Usage: npm run soak -- <name>… [options]

  <name>                ${Object.keys(SOAKS).join(', ')}, or all
  --database <kind>     embedded, postgres or both (default both)
  --database-url <url>  PostgreSQL server the tests make their databases on (default ${DEFAULT_BENCH_DATABASE_URL})
  --size <n>            instead of the full size (one name only)
  --seed <s>            for the tests that take one
  --help                this text

Soaks:
${Object.entries(SOAKS)
  .map(
    ([name, soak]) =>
      `  ${name.padEnd(16)} ${soak.id}  ${soak.what}: ${
        soak.size ? `${soak.size.full.toLocaleString('en')} ${soak.size.unit}` : soak.fixed
      }`,
  )
  .join('\n')}`;

interface Options {
  readonly names: string[];
  readonly databases: readonly DatabaseKind[];
  readonly databaseUrl: string;
  readonly size: number | undefined;
  readonly seed: string | undefined;
}

function parseOptions(args: string[]): Options | null {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      database: { type: 'string', default: 'both' },
      'database-url': { type: 'string' },
      size: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || positionals.length === 0) return null;
  const names = positionals.includes('all') ? Object.keys(SOAKS) : positionals;
  const unknown = names.filter((name) => !(name in SOAKS));
  if (unknown.length > 0) throw new Error(`No soak named ${unknown.join(', ')}`);
  const databases: Record<string, readonly DatabaseKind[]> = {
    both: BOTH,
    embedded: ['embedded'],
    postgres: ['postgres'],
  };
  const chosen = databases[values.database];
  if (!chosen) throw new Error('--database is embedded, postgres or both');
  let size: number | undefined;
  if (values.size !== undefined) {
    size = Number(values.size.replaceAll('_', ''));
    if (!Number.isInteger(size) || size < 1) throw new Error('--size must be a whole number ≥ 1');
    if (names.length !== 1 || !SOAKS[names[0] as string]?.size)
      throw new Error('--size needs exactly one soak whose size can be set');
  }
  return {
    names,
    databases: chosen,
    databaseUrl: values['database-url'] ?? process.env.TEST_DATABASE_URL ?? DEFAULT_BENCH_DATABASE_URL,
    size,
    seed: values.seed,
  };
}

interface Outcome {
  readonly passed: number;
  readonly failed: number;
  readonly seconds: number;
}

/** Runs one soak's files on one database, in a Vitest run of their own. */
async function runSoak(soak: Soak, database: DatabaseKind, options: Options): Promise<Outcome> {
  const environment: Record<string, string> = {
    TEST_DATABASE_URL: options.databaseUrl,
    ...(soak.size ? { [soak.size.variable]: String(options.size ?? soak.size.full) } : {}),
    ...(soak.seedVariable && options.seed !== undefined ? { [soak.seedVariable]: options.seed } : {}),
  };
  const saved = { ...process.env };
  Object.assign(process.env, environment);
  const started = process.hrtime.bigint();
  try {
    const vitest = await startVitest('test', [...soak.files], {
      run: true,
      watch: false,
      project: [database],
      // A soak runs for as long as its size takes; the tests' own per-test limits still hold.
      testTimeout: 0,
      ...(soak.testNamePattern ? { testNamePattern: soak.testNamePattern } : {}),
    });
    const tests = vitest.state.getTestModules().flatMap((module) => [...module.children.allTests()]);
    const count = (state: string) => tests.filter((test) => test.result().state === state).length;
    const unhandled = vitest.state.getUnhandledErrors().length;
    const failedModules = vitest.state.getTestModules().filter((module) => !module.ok()).length;
    await vitest.close();
    return {
      passed: count('passed'),
      failed: Math.max(count('failed'), unhandled > 0 || failedModules > 0 ? 1 : 0),
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } finally {
    for (const name of Object.keys(environment)) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
}

function build(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-b'], { stdio: 'inherit' });
}

async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  if (!options) {
    console.log(USAGE);
    return;
  }
  if (options.names.some((name) => SOAKS[name]?.built)) build();
  const rows: string[][] = [];
  let failures = 0;
  for (const name of options.names) {
    const soak = SOAKS[name] as Soak;
    for (const database of options.databases) {
      if (!soak.databases.includes(database)) continue;
      const outcome = await runSoak(soak, database, options);
      // A soak whose tests all skipped proved nothing: count it as failed.
      const ok = outcome.failed === 0 && outcome.passed > 0;
      if (!ok) failures++;
      rows.push([
        `${soak.id} ${soak.what}`,
        database,
        soak.size
          ? `${(options.size ?? soak.size.full).toLocaleString('en')} ${soak.size.unit}`
          : (soak.fixed ?? ''),
        options.seed !== undefined && soak.seedVariable ? options.seed : '–',
        `${outcome.passed} / ${outcome.failed}`,
        `${outcome.seconds.toFixed(0)} s`,
        ok ? 'passed' : '**failed**',
      ]);
    }
  }
  const machine = describeMachine();
  console.log(
    `\n${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.os}, Node ${machine.node}; ` +
      `load average ${machine.loadAverage} at the end\n`,
  );
  console.log(
    markdownTable(['soak', 'database', 'size', 'seed', 'tests passed / failed', 'time', 'verdict'], rows),
  );
  if (failures > 0) process.exitCode = 1;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 2;
});
