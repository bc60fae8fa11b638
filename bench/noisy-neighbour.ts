import http from 'node:http';
import { parseArgs } from 'node:util';
import { startServer, stopServer } from './lib/baton-server.js';
import { describeMachine } from './lib/machine.js';
import { createBenchDatabase, DEFAULT_BENCH_DATABASE_URL } from './lib/postgres.js';
import { formatMs, Latencies } from './lib/stats.js';
import { markdownTable } from './lib/table.js';

/**
 * Rate limits and a noisy neighbour (docs/RELIABILITY.md, L4): a Baton server on PostgreSQL
 * with its per-key limit, quiet tenants calling it at a steady pace well within their limit,
 * and, in the middle phase, one more tenant sending ten times its limit. The noisy key must get
 * 429 with Retry-After once past its limit; the quiet tenants' p99 may rise by at most 20 %.
 * The phases run quiet, noisy, quiet, and the noisy phase is read against both quiet ones, so
 * that the machine's own drift shows. Requests are sent on a fixed schedule (open loop) and
 * timed from when they were due, so that a slow answer cannot hide the requests queued behind
 * it.
 */

const HELP = `npm run bench -- noisy-neighbour [options]

  --seconds <n>         length of each phase (default 30; --quick: 10)
  --tenants <n>         quiet tenants (default 8)
  --rate <n>            requests per second of each quiet tenant (default 4)
  --limit <n>           requests per minute each key may send (default 600, Baton's default)
  --quick               10-second phases
  --database-url <url>  PostgreSQL server (default ${DEFAULT_BENCH_DATABASE_URL})`;

interface Options {
  readonly seconds: number;
  readonly tenants: number;
  readonly rate: number;
  readonly limit: number;
  readonly databaseUrl: string;
}

function parseOptions(args: string[]): Options | null {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string' },
      tenants: { type: 'string' },
      rate: { type: 'string' },
      limit: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'database-url': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return null;
  const positive = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`--${name} must be a positive number`);
    return parsed;
  };
  const options = {
    seconds: positive('seconds', values.seconds, values.quick ? 10 : 30),
    tenants: Math.round(positive('tenants', values.tenants, 8)),
    rate: positive('rate', values.rate, 4),
    limit: Math.round(positive('limit', values.limit, 600)),
    databaseUrl: values['database-url'] ?? process.env.BENCH_DATABASE_URL ?? DEFAULT_BENCH_DATABASE_URL,
  };
  if (options.rate * 60 > options.limit / 2)
    throw new Error('quiet tenants must stay well within their limit: --rate × 60 ≤ --limit / 2');
  return options;
}

interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
}

/** Sends one GET with `key` and resolves with its status once the whole answer has arrived. */
function get(agent: http.Agent, base: URL, path: string, key: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { agent, host: base.hostname, port: base.port, path, headers: { authorization: `Bearer ${key}` } },
      (response) => {
        response.resume();
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            retryAfter: response.headers['retry-after'] as string,
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/**
 * Sends `rate` requests per second with `key` for `seconds`, each when it is due whether or not
 * the ones before were answered; `answered` sees each answer and how late it came after its due time.
 */
async function paced(
  rate: number,
  seconds: number,
  send: () => Promise<Answer>,
  answered: (answer: Answer, ms: number) => void,
): Promise<void> {
  const interval = 1000 / rate;
  const start = performance.now() + Math.random() * interval;
  const pending: Promise<void>[] = [];
  for (let n = 0; n < Math.floor(seconds * rate); n++) {
    const due = start + n * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(send().then((answer) => answered(answer, performance.now() - due)));
  }
  await Promise.all(pending);
}

interface Phase {
  readonly label: string;
  readonly quiet: Latencies;
  quietRefused: number;
  noisySent: number;
  noisyAllowed: number;
  noisyRefused: number;
  noisyWithoutRetryAfter: number;
}

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  if (!options) {
    console.log(HELP);
    return;
  }
  const log = (line: string) => console.error(`[noisy-neighbour] ${line}`);
  const machine = describeMachine();
  console.log('## noisy-neighbour — rate limits, and one tenant at 10× its limit (L4)\n');
  console.log(
    `${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.os}, Node ${machine.node}; load average at start ${machine.loadAverage}.`,
  );
  const noisyRate = (options.limit / 60) * 10;
  console.log(
    `${options.seconds} s per phase; ${options.tenants} quiet tenants at ${options.rate} requests/s each; limit ${options.limit} requests/min per key; the noisy tenant at ${noisyRate.toFixed(0)} requests/s (10×).\n`,
  );

  const database = await createBenchDatabase(options.databaseUrl, 1);
  const { child, ready } = await startServer(database.url, true, { rateLimitPerMinute: options.limit });
  const phases: Phase[] = [];
  try {
    const base = new URL(ready.url);
    if (base.hostname !== '127.0.0.1') throw new Error('load runs target 127.0.0.1 only');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    // Every tenant is a customer with a key of its own; sign-ups are not what is measured.
    const keys: string[] = [];
    for (let n = 0; n <= options.tenants; n++) {
      const response = await fetch(`${ready.url}/v1/customer-signups`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `tenant-${n}` },
        body: JSON.stringify({ kind: 'business', name: `Tenant ${n}`, email: `tenant-${n}@bench.test` }),
      });
      if (response.status !== 201) throw new Error(`sign-up: ${response.status} ${await response.text()}`);
      keys.push(((await response.json()) as { api_key: { secret: string } }).api_key.secret);
    }
    const noisyKey = keys.pop() as string;
    // What a tenant calls: who it is, and its orders (one read of the database each).
    const paths = ['/v1/me', '/v1/orders?limit=10'];

    const run = async (label: string, noisy: boolean): Promise<Phase> => {
      log(`${label}: ${options.seconds} s`);
      const phase: Phase = {
        label,
        quiet: new Latencies(Math.ceil(options.tenants * options.rate * options.seconds) + 1),
        quietRefused: 0,
        noisySent: 0,
        noisyAllowed: 0,
        noisyRefused: 0,
        noisyWithoutRetryAfter: 0,
      };
      const quiet = keys.map((key, tenant) => {
        let n = tenant;
        return paced(
          options.rate,
          options.seconds,
          () => get(agent, base, paths[n++ % paths.length] as string, key),
          (answer, ms) => {
            if (answer.status === 200) phase.quiet.add(ms);
            else phase.quietRefused++;
          },
        );
      });
      const loud = noisy
        ? paced(
            noisyRate,
            options.seconds,
            () => get(agent, base, '/v1/orders?limit=10', noisyKey),
            (answer) => {
              phase.noisySent++;
              if (answer.status === 200) phase.noisyAllowed++;
              else if (answer.status === 429) {
                phase.noisyRefused++;
                if (!answer.retryAfter) phase.noisyWithoutRetryAfter++;
              }
            },
          )
        : Promise.resolve();
      await Promise.all([...quiet, loud]);
      return phase;
    };

    // A warm-up for both sides, not measured.
    await run('warm-up', false);
    phases.push(await run('quiet', false));
    phases.push(await run('noisy', true));
    phases.push(await run('quiet again', false));
    agent.destroy();
  } finally {
    await stopServer(child);
    await database.drop();
  }

  const [before, noisy, after] = phases as [Phase, Phase, Phase];
  const summary = (phase: Phase) => phase.quiet.summary();
  const quietP99 = (summary(before).p99Ms + summary(after).p99Ms) / 2;
  const rows = phases.map((phase) => {
    const s = summary(phase);
    return [
      phase.label,
      String(s.count),
      String(phase.quietRefused),
      `${formatMs(s.p50Ms)} / ${formatMs(s.p99Ms)}`,
      `${((s.p99Ms / quietP99 - 1) * 100).toFixed(0)} %`,
      phase.noisySent > 0 ? String(phase.noisySent) : '–',
      phase.noisySent > 0 ? `${phase.noisyAllowed} / ${phase.noisyRefused}` : '–',
    ];
  });
  console.log(
    markdownTable(
      [
        'phase',
        'quiet tenants: answered',
        'refused',
        'p50 / p99 (ms)',
        'p99 vs the quiet phases',
        'noisy tenant: sent',
        '200 / 429',
      ],
      rows,
    ),
  );
  const rise = summary(noisy).p99Ms / quietP99 - 1;
  const allowedMax = Math.ceil(options.seconds / 60 + 1) * options.limit;
  console.log(
    [
      '',
      `The noisy tenant: ${noisy.noisyRefused} answers 429, ${noisy.noisyWithoutRetryAfter} of them without Retry-After; ${noisy.noisyAllowed} allowed (at most ${allowedMax} fit in the windows the phase touches).`,
      `The quiet tenants' p99 during the noisy phase: ${formatMs(summary(noisy).p99Ms)} ms against ${formatMs(quietP99)} ms in the quiet phases, ${(rise * 100).toFixed(0)} % (L4 allows 20 %).`,
      `Load average at the end: ${describeMachine().loadAverage}.`,
    ].join('\n'),
  );
}
