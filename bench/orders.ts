import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, stopServer } from './lib/baton-server.js';
import { describeMachine } from './lib/machine.js';
import { pgbenchTps } from './lib/pgbench.js';
import { createBenchDatabase, DEFAULT_BENCH_DATABASE_URL } from './lib/postgres.js';
import { Random } from './lib/random.js';
import { formatMs, Latencies } from './lib/stats.js';
import { markdownTable } from './lib/table.js';

/**
 * The order lifecycle over HTTP against a real Baton server, against pgbench TPC-B on the same
 * PostgreSQL server in the same run. Clients place orders for a three-leg offering (two steps
 * in parallel, then a third) and carry each through its whole lifecycle: quote, order, then for
 * every leg the partner's accept, start and deliver and the customer's confirmation, 14 write
 * calls per order. The payment is charged by the server's own job, as in production, so each
 * client keeps several orders in flight and works on the others while one waits for its
 * payment. Reads (the order polled while its payment is pending) are counted apart.
 */

const HELP = `npm run bench -- orders [options]

  --seconds <n>         measured seconds per database (default 30)
  --clients <n>         concurrent HTTP clients (default 8)
  --in-flight <n>       orders each client keeps going at once (default 4)
  --partners <n>        partners per capability (default 20)
  --scale <n>           pgbench scale factor (default 8)
  --servers <n>         Baton server processes on PostgreSQL, clients spread over them (default 1)
  --quick               10-second runs
  --skip-embedded       PostgreSQL only
  --database-url <url>  PostgreSQL server (default ${DEFAULT_BENCH_DATABASE_URL}, or BENCH_DATABASE_URL)`;

interface Options {
  readonly seconds: number;
  readonly clients: number;
  readonly inFlight: number;
  readonly partners: number;
  readonly scale: number;
  readonly servers: number;
  readonly skipEmbedded: boolean;
  readonly databaseUrl: string;
}

function parseOptions(args: string[]): Options | null {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string' },
      clients: { type: 'string' },
      'in-flight': { type: 'string' },
      partners: { type: 'string' },
      scale: { type: 'string' },
      servers: { type: 'string' },
      quick: { type: 'boolean' },
      'skip-embedded': { type: 'boolean' },
      'database-url': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return null;
  const count = (value: string | undefined, fallback: number) => {
    const parsed = value === undefined ? fallback : Number(value);
    if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`Not a positive integer: ${value}`);
    return parsed;
  };
  return {
    seconds: count(values.seconds, values.quick ? 10 : 30),
    clients: count(values.clients, 8),
    inFlight: count(values['in-flight'], 4),
    partners: count(values.partners, 20),
    scale: count(values.scale, 8),
    servers: count(values.servers, 1),
    skipEmbedded: values['skip-embedded'] ?? false,
    databaseUrl: values['database-url'] ?? process.env.BENCH_DATABASE_URL ?? DEFAULT_BENCH_DATABASE_URL,
  };
}

// -------------------------------------------------------------------------------------------------
// A small JSON client over kept-alive connections, timing every call.

type Call = 'quote' | 'order' | 'accept' | 'start' | 'deliver' | 'confirm' | 'read';
const WRITES: readonly Call[] = ['quote', 'order', 'accept', 'start', 'deliver', 'confirm'];

class Api {
  readonly #bases: URL[];
  readonly #agent: http.Agent;
  readonly latencies = new Map<Call, Latencies>();
  failures = 0;
  firstFailure: string | null = null;
  #measuring = false;

  /** Calls go to one of `baseUrls`, each client's to its own (`server`). */
  constructor(baseUrls: readonly string[], sockets: number) {
    this.#bases = baseUrls.map((url) => new URL(url));
    if (this.#bases.some((base) => base.hostname !== '127.0.0.1'))
      throw new Error('Load runs target 127.0.0.1 only');
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
    for (const call of [...WRITES, 'read' as const]) this.latencies.set(call, new Latencies(2_000_000));
  }

  measure(on: boolean): void {
    this.#measuring = on;
  }

  async send<T>(
    call: Call | null,
    method: 'GET' | 'POST',
    url: string,
    key: string | null,
    body?: unknown,
    idempotencyKey?: string,
    server = 0,
  ): Promise<{ status: number; body: T }> {
    const base = this.#bases[server % this.#bases.length] as URL;
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const started = performance.now();
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = http.request(
        {
          agent: this.#agent,
          host: base.hostname,
          port: base.port,
          method,
          path: url,
          headers: {
            ...(key ? { authorization: `Bearer ${key}` } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
            ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(payload ?? undefined);
    });
    const elapsed = performance.now() - started;
    if (status >= 300) {
      this.failures++;
      this.firstFailure ??= `${method} ${url}: ${status} ${text.slice(0, 400)}`;
    } else if (call && this.#measuring) {
      this.latencies.get(call)?.add(elapsed);
    }
    return { status, body: (text ? JSON.parse(text) : {}) as T };
  }

  async ok<T>(
    call: Call | null,
    method: 'GET' | 'POST',
    url: string,
    key: string | null,
    body?: unknown,
    server = 0,
  ) {
    const response = await this.send<T>(
      call,
      method,
      url,
      key,
      body,
      method === 'POST' ? nextKey() : undefined,
      server,
    );
    if (response.status >= 300)
      throw new Error(`${method} ${url}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body;
  }

  close(): void {
    this.#agent.destroy();
  }
}

let keys = 0;
const nextKey = () => `bench-${process.pid}-${++keys}`;

// -------------------------------------------------------------------------------------------------
// The ecosystem the load runs on.

const REGION = 'eu-west';
const STEPS = [
  { key: 'make', capability: 'bench-make', after: [] as string[] },
  { key: 'pack', capability: 'bench-pack', after: [] as string[] },
  { key: 'ship', capability: 'bench-ship', after: ['make', 'pack'] },
];

interface Ecosystem {
  readonly partnerKeys: Map<string, string>;
  readonly customerKeys: string[];
}

async function seed(api: Api, adminKey: string, options: Options, servers: number): Promise<Ecosystem> {
  const admin = (url: string, body: unknown) => api.ok(null, 'POST', url, adminKey, body);
  await admin('/v1/partner-types', { key: 'bench-maker', name: 'Maker', profile_schema: { type: 'object' } });
  for (const step of STEPS) {
    await admin('/v1/capabilities', {
      key: step.capability,
      name: step.capability,
      unit: 'piece',
      attribute_schema: { type: 'object' },
    });
  }
  await admin('/v1/fee-schedule-versions', { currency: 'EUR', rules: [{ commission_bps: 1000 }] });
  await admin('/v1/offerings', {
    key: 'bench-box',
    name: 'Benchmark box',
    unit: 'box',
    currency: 'EUR',
    pricing: { kind: 'cost_plus', margin_bps: 1500 },
    regions: [REGION],
    quantity_max: 1000,
    acceptance_window_minutes: 600,
    steps: STEPS.map((step) => ({
      key: step.key,
      name: step.key,
      capability: step.capability,
      after: step.after,
    })),
  });
  const random = new Random(20261121);
  const partnerKeys = new Map<string, string>();
  for (const step of STEPS) {
    for (let n = 0; n < options.partners; n++) {
      const applied = await api.ok<{ partner: { id: string }; api_key: { secret: string } }>(
        null,
        'POST',
        '/v1/partner-applications',
        null,
        {
          partner_type: 'bench-maker',
          name: `${step.capability} ${n}`,
          email: `${step.capability}-${n}@bench.test`,
          regions: [REGION],
        },
      );
      const id = applied.partner.id;
      for (const to of ['under_review', 'active']) {
        await admin(`/v1/partners/${id}/transitions`, { to, reason: 'Benchmark partner' });
      }
      await api.ok(null, 'POST', `/v1/partners/${id}/offers`, applied.api_key.secret, {
        capability: step.capability,
        attributes: {},
        unit_price: { amount: (5 + random.int(0, 500) / 100).toFixed(2), currency: 'EUR' },
        min_quantity: 1,
        max_quantity: 1000,
        lead_time_hours: random.int(1, 12),
        regions: [REGION],
        capacity_per_period: 10_000_000,
        capacity_period: 'week',
        status: 'active',
      });
      partnerKeys.set(id, applied.api_key.secret);
    }
  }
  // The matcher's index follows the event log: wait until every server's holds every offer.
  for (let server = 0; server < servers; server++) {
    for (const step of STEPS) {
      for (let waited = 0; ; waited += 100) {
        const answer = await api.ok<{ candidates: number }>(
          null,
          'POST',
          '/v1/matching/queries',
          adminKey,
          {
            capability: step.capability,
            region: REGION,
            quantity: 1,
            needed_by: new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString(),
          },
          server,
        );
        if (answer.candidates >= options.partners) break;
        if (waited > 60_000) throw new Error(`the matching index never saw the offers of ${step.capability}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  const customerKeys: string[] = [];
  for (let n = 0; n < options.clients * options.inFlight; n++) {
    const signed = await api.ok<{ api_key: { secret: string } }>(null, 'POST', '/v1/customer-signups', null, {
      kind: 'business',
      name: `Customer ${n}`,
      email: `customer-${n}@bench.test`,
      region: REGION,
    });
    customerKeys.push(signed.api_key.secret);
  }
  return { partnerKeys, customerKeys };
}

// -------------------------------------------------------------------------------------------------
// The load: each client keeps `inFlight` orders going and takes the next step of each in turn.

interface OrderJson {
  id: string;
  status: string;
  legs: {
    step: string;
    partner_id: string;
    work_order_id: string | null;
    work_order_status: string | null;
  }[];
}

interface Flow {
  readonly customerKey: string;
  /** The server this flow's client talks to. */
  readonly server: number;
  orderId: string | null;
  order: OrderJson | null;
  /** Each leg's work order and its status as the last answer gave it. */
  readonly legs: Map<string, { workOrderId: string; partnerId: string; status: string }>;
  paidCheckAt: number;
}

interface LoadResult {
  readonly elapsedMs: number;
  readonly completed: number;
  readonly started: number;
  readonly api: Api;
}

const PAYMENT_POLL_MS = 100;

async function load(
  baseUrls: readonly string[],
  ecosystem: Ecosystem,
  options: Options,
  seconds: number,
): Promise<LoadResult> {
  const api = new Api(baseUrls, options.clients);
  let completed = 0;
  let started = 0;
  const deadline = performance.now() + seconds * 1000;
  const deadlineIso = () => new Date(Date.now() + 10 * 24 * 3600 * 1000).toISOString();

  const absorb = (flow: Flow, order: OrderJson) => {
    flow.order = order;
    for (const leg of order.legs) {
      if (leg.work_order_id && leg.work_order_status)
        flow.legs.set(leg.step, {
          workOrderId: leg.work_order_id,
          partnerId: leg.partner_id,
          status: leg.work_order_status,
        });
    }
  };

  /** Takes one step of an order; false when the order is finished. */
  async function step(flow: Flow): Promise<boolean> {
    if (!flow.orderId) {
      const quote = await api.ok<{ id: string }>(
        'quote',
        'POST',
        '/v1/quotes',
        flow.customerKey,
        { offering: 'bench-box', quantity: 1, region: REGION, deadline: deadlineIso() },
        flow.server,
      );
      const order = await api.ok<OrderJson>(
        'order',
        'POST',
        '/v1/orders',
        flow.customerKey,
        { quote_id: quote.id, payment_method: 'pm_card_ok' },
        flow.server,
      );
      flow.orderId = order.id;
      flow.order = order;
      flow.paidCheckAt = performance.now() + PAYMENT_POLL_MS;
      started++;
      return true;
    }
    if (flow.order?.status === 'awaiting_payment') {
      if (performance.now() < flow.paidCheckAt) return true;
      absorb(
        flow,
        await api.ok<OrderJson>(
          'read',
          'GET',
          `/v1/orders/${flow.orderId}`,
          flow.customerKey,
          undefined,
          flow.server,
        ),
      );
      flow.paidCheckAt = performance.now() + PAYMENT_POLL_MS;
      return true;
    }
    if (flow.order?.status === 'completed') return false;
    if (flow.order?.status !== 'in_progress')
      throw new Error(`order ${flow.orderId} is ${flow.order?.status}`);
    for (const [stepKey, leg] of flow.legs) {
      const partnerKey = ecosystem.partnerKeys.get(leg.partnerId) as string;
      const action = { offered: 'accept', accepted: 'start', in_progress: 'deliver' }[leg.status] as
        | 'accept'
        | 'start'
        | 'deliver'
        | undefined;
      if (action) {
        const next = await api.ok<{ status: string }>(
          action,
          'POST',
          `/v1/work-orders/${leg.workOrderId}/${action}`,
          partnerKey,
          {},
          flow.server,
        );
        leg.status = next.status;
        return true;
      }
      if (leg.status === 'delivered') {
        const order = await api.ok<OrderJson>(
          'confirm',
          'POST',
          `/v1/orders/${flow.orderId}/legs/${stepKey}/confirm`,
          flow.customerKey,
          {},
          flow.server,
        );
        absorb(flow, order);
        return order.status !== 'completed';
      }
    }
    throw new Error(`order ${flow.orderId} has nothing to do: ${JSON.stringify(flow.order)}`);
  }

  const client = async (index: number) => {
    const flows: Flow[] = Array.from({ length: options.inFlight }, (_, slot) => ({
      customerKey: ecosystem.customerKeys[index * options.inFlight + slot] as string,
      server: index % baseUrls.length,
      orderId: null,
      order: null,
      legs: new Map(),
      paidCheckAt: 0,
    }));
    while (performance.now() < deadline) {
      let waiting = true;
      for (const flow of flows) {
        const busy = flow.order?.status !== 'awaiting_payment' || performance.now() >= flow.paidCheckAt;
        if (busy) waiting = false;
        if (!(await step(flow))) {
          completed++;
          flow.orderId = null;
          flow.order = null;
          flow.legs.clear();
        }
        if (performance.now() >= deadline) break;
      }
      // Every order of this client waits for its payment: let the server work.
      if (waiting) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  const began = performance.now();
  api.measure(true);
  await Promise.all(Array.from({ length: options.clients }, (_, index) => client(index)));
  return { elapsedMs: performance.now() - began, completed, started, api };
}

// -------------------------------------------------------------------------------------------------

interface Measured {
  readonly label: string;
  readonly result: LoadResult;
}

async function measure(
  label: string,
  target: string,
  servers: number,
  options: Options,
  log: (line: string) => void,
) {
  const started: ChildProcess[] = [];
  try {
    const urls: string[] = [];
    let adminKey = '';
    for (let n = 0; n < servers; n++) {
      const { child, ready } = await startServer(target, n === 0);
      started.push(child);
      urls.push(ready.url);
      if (n === 0) adminKey = ready.adminKey;
    }
    const setup = new Api(urls, 4);
    const ecosystem = await seed(setup, adminKey, options, servers);
    setup.close();
    log(`${label}: seeded ${ecosystem.partnerKeys.size} partners; warming up`);
    await load(urls, ecosystem, { ...options, clients: 2 }, Math.min(5, options.seconds));
    log(`${label}: measuring ${options.seconds} s with ${options.clients} clients`);
    const result = await load(urls, ecosystem, options, options.seconds);
    result.api.close();
    return { label, result } satisfies Measured;
  } finally {
    for (const child of started) await stopServer(child);
  }
}

function report(measured: Measured, baselineTps: number | null): string[][] {
  const { result } = measured;
  const seconds = result.elapsedMs / 1000;
  let writeCount = 0;
  const rows: string[][] = [];
  for (const call of WRITES) {
    const latencies = result.api.latencies.get(call) as Latencies;
    const summary = latencies.summary();
    writeCount += summary.count;
    rows.push([
      `${measured.label}: ${call}`,
      summary.count.toLocaleString('en'),
      (summary.count / seconds).toFixed(1),
      `${formatMs(summary.p50Ms)} / ${formatMs(summary.p99Ms)}`,
      '',
    ]);
  }
  const merged = mergedSummary(WRITES.map((call) => result.api.latencies.get(call) as Latencies));
  const perSecond = writeCount / seconds;
  rows.unshift([
    `**${measured.label}: all lifecycle writes**`,
    writeCount.toLocaleString('en'),
    perSecond.toFixed(1),
    `${formatMs(merged.p50)} / ${formatMs(merged.p99)}`,
    baselineTps ? `${(perSecond / baselineTps).toFixed(2)}×` : '–',
  ]);
  const reads = (result.api.latencies.get('read') as Latencies).summary();
  rows.push([
    `${measured.label}: reads (payment polls)`,
    reads.count.toLocaleString('en'),
    (reads.count / seconds).toFixed(1),
    `${formatMs(reads.p50Ms)} / ${formatMs(reads.p99Ms)}`,
    '',
  ]);
  rows.push([
    `**${measured.label}: complete 3-leg orders**`,
    result.completed.toLocaleString('en'),
    (result.completed / seconds).toFixed(2),
    '',
    '',
  ]);
  return rows;
}

/** Percentiles over several latency sets at once. */
function mergedSummary(sets: readonly Latencies[]): { p50: number; p99: number } {
  const samples: number[] = [];
  for (const set of sets) samples.push(...set.values());
  samples.sort((a, b) => a - b);
  const at = (fraction: number) =>
    samples.length === 0
      ? Number.NaN
      : (samples[Math.max(0, Math.ceil(fraction * samples.length) - 1)] as number);
  return { p50: at(0.5), p99: at(0.99) };
}

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  if (!options) {
    console.log(HELP);
    return;
  }
  const log = (line: string) => console.error(`[orders] ${line}`);
  const machine = describeMachine();
  console.log('## orders — the order lifecycle over HTTP against pgbench TPC-B\n');
  console.log(
    `${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.os}, Node ${machine.node}; load average at start ${machine.loadAverage}.`,
  );
  console.log(
    `${options.seconds} s per database; ${options.clients} clients × ${options.inFlight} orders in flight; ${options.partners} partners per step; pgbench scale ${options.scale}, 8 clients.\n`,
  );

  log('pgbench TPC-B, 8 clients');
  const pgbench = await pgbenchTps({
    serverUrl: options.databaseUrl,
    scale: options.scale,
    seconds: options.seconds,
    clients: [8],
  });
  const baseline = pgbench.get(8) ?? null;

  const database = await createBenchDatabase(options.databaseUrl, 1);
  let postgres: Measured;
  try {
    postgres = await measure(
      options.servers === 1 ? 'PostgreSQL' : `PostgreSQL, ${options.servers} servers`,
      database.url,
      options.servers,
      options,
      log,
    );
  } finally {
    await database.drop();
  }
  const rows = [
    ['pgbench TPC-B, 8 clients', '', baseline?.toFixed(0) ?? '–', '', '1.00× (baseline)'],
    ...report(postgres, baseline),
  ];
  if (!options.skipEmbedded) {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'baton-bench-orders-'));
    try {
      // The embedded database belongs to one process.
      rows.push(...report(await measure('Embedded', `embedded:${folder}`, 1, options, log), null));
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }
  console.log(
    markdownTable(['what', 'calls', 'per second', 'p50 / p99 (ms)', 'writes per second ÷ TPC-B tps'], rows),
  );
  const failures = postgres.result.api.failures;
  console.log(
    `\nFailed calls on PostgreSQL: ${failures}${postgres.result.api.firstFailure ? ` (first: ${postgres.result.api.firstFailure})` : ''}.`,
  );
  console.log(`Load average at the end: ${describeMachine().loadAverage}.`);
}
