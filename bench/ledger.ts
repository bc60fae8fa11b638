import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { systemActor } from '../packages/server/src/kernel/actor.js';
import type { Context } from '../packages/server/src/kernel/context.js';
import {
  type Database,
  type Executor,
  openEmbedded,
  openPostgres,
} from '../packages/server/src/kernel/database/database.js';
import { runInTransaction } from '../packages/server/src/kernel/database/transaction.js';
import { newId } from '../packages/server/src/kernel/ids.js';
import { migrate } from '../packages/server/src/main.js';
import {
  type AccountKey,
  createLedgerService,
  type LedgerService,
  type PostingInput,
  sealChain,
  verifyLedger,
} from '../packages/server/src/modules/ledger/index.js';
import { describeMachine } from './lib/machine.js';
import { pgbenchScriptTps, pgbenchTps } from './lib/pgbench.js';
import { createBenchDatabase, DEFAULT_BENCH_DATABASE_URL } from './lib/postgres.js';
import { markdownTable } from './lib/table.js';

/*
 * Postings per second of the ledger against pgbench's TPC-B on the same PostgreSQL server,
 * and on the embedded database. A posting is an escrow release of four entries (escrow →
 * partner payable + platform commission + platform margin) with its balance upkeep, one per
 * database transaction, at 1 and 8 concurrent clients; batches are `postBatch` calls of 1,000
 * such transactions, atomic and per item, from one caller, and atomic from two callers at once
 * (as two Baton processes would). Each run also reports the CPU this process used, in % of one
 * core: a client near 100 % would be measuring itself rather than the ledger.
 */

const USAGE = `Usage: npm run bench -- ledger [options]

  --seconds <n>         length of each timed run (default 30; --quick: 5)
  --partners <n>        partners (payables) and orders (escrows) each (default 10,000; --quick: 1,000)
  --batches <n>         batches of 1,000 per batched run (default 10; --quick: 3)
  --scale <n>           pgbench scale factor (default 8: at least the number of clients)
  --quick               short runs on a smaller set, to try it out
  --skip-embedded       PostgreSQL only
  --database-url <url>  server to create the baton_bench_* databases on (default ${DEFAULT_BENCH_DATABASE_URL})
  --help                this text`;

const CLIENTS = [1, 8] as const;
const BATCH_SIZE = 1000;
const ESCROW_FUNDING_MINOR = 1_000_000_000n;

interface Options {
  readonly seconds: number;
  readonly partners: number;
  readonly batches: number;
  readonly scale: number;
  readonly skipEmbedded: boolean;
  readonly databaseUrl: string;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string' },
      partners: { type: 'string' },
      batches: { type: 'string' },
      scale: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'skip-embedded': { type: 'boolean', default: false },
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
  return {
    seconds: integer('seconds', values.seconds, quick ? 5 : 30),
    partners: integer('partners', values.partners, quick ? 1_000 : 10_000, 10),
    batches: integer('batches', values.batches, quick ? 3 : 10),
    scale: integer('scale', values.scale, 8),
    skipEmbedded: values['skip-embedded'] ?? false,
    databaseUrl: values['database-url'] ?? DEFAULT_BENCH_DATABASE_URL,
  };
}

interface Books {
  readonly ledger: LedgerService;
  readonly db: Executor;
  readonly orders: string[];
  readonly partners: string[];
  sequence: number;
}

const ctxOf = (db: Executor): Context => ({
  db,
  actor: systemActor('bench'),
  now: new Date(),
  requestId: null,
  ip: null,
});
const escrow = (order: string): AccountKey => ({
  purpose: 'customer_escrow',
  ownerId: order,
  currency: 'EUR',
});
const platform = (purpose: AccountKey['purpose']): AccountKey => ({
  purpose,
  ownerId: 'platform',
  currency: 'EUR',
});

/** Opens every account and funds every escrow, a thousand transactions per batch. */
async function openBooks(database: Database, partnersCount: number): Promise<Books> {
  const ledger = createLedgerService();
  const orders = Array.from({ length: partnersCount }, (_, n) => `order-${n}`);
  const partners = Array.from({ length: partnersCount }, () => newId('ptn'));
  for (let start = 0; start < orders.length; start += BATCH_SIZE) {
    const inputs: PostingInput[] = orders.slice(start, start + BATCH_SIZE).map((order, n) => ({
      idempotencyKey: `capture:${order}`,
      cause: { kind: 'payment', id: order },
      entries: [
        { account: platform('provider_clearing'), direction: 'debit', amountMinor: ESCROW_FUNDING_MINOR },
        { account: escrow(order), direction: 'credit', amountMinor: ESCROW_FUNDING_MINOR },
        // Open each partner's payable too, with a cent moved through it.
        {
          account: { purpose: 'partner_payable', ownerId: partners[start + n] as string, currency: 'EUR' },
          direction: 'credit',
          amountMinor: 1n,
        },
        { account: platform('operator_adjustments'), direction: 'debit', amountMinor: 1n },
      ],
    }));
    await runInTransaction(database.db, (tx) => ledger.postBatch(ctxOf(tx), inputs, { atomic: true }));
  }
  return { ledger, db: database.db, orders, partners, sequence: 0 };
}

/**
 * An escrow release: 10.00 from an order's escrow to a partner, the platform's commission and
 * margin. The partner is one at random, or `partner`.
 */
function release(books: Books, partner?: string): PostingInput {
  const n = books.sequence++;
  const order = books.orders[Math.floor(Math.random() * books.orders.length)] as string;
  partner ??= books.partners[Math.floor(Math.random() * books.partners.length)] as string;
  return {
    idempotencyKey: `release:${order}:${n}:${process.pid}`,
    cause: { kind: 'leg', id: `${order}:${n}` },
    entries: [
      { account: escrow(order), direction: 'debit', amountMinor: 1000n },
      {
        account: { purpose: 'partner_payable', ownerId: partner, currency: 'EUR' },
        direction: 'credit',
        amountMinor: 850n,
      },
      { account: platform('platform_commission'), direction: 'credit', amountMinor: 100n },
      { account: platform('platform_margin'), direction: 'credit', amountMinor: 50n },
    ],
  };
}

/** Transactions per second, and the CPU this process used meanwhile (% of one core). */
interface Rate {
  readonly tps: number;
  readonly cpuPercent: number;
}

/** Measures `work`, which returns how many transactions it posted in `seconds`. */
async function rated(work: () => Promise<{ count: number; seconds: number }>): Promise<Rate> {
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  const { count, seconds } = await work();
  const used = process.cpuUsage(cpu);
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  return { tps: count / seconds, cpuPercent: ((used.user + used.system) / 1e6 / wall) * 100 };
}

/**
 * Postings per second with `clients` concurrent posters, one posting per database transaction;
 * each to a partner at random, or all to `partner`.
 */
function singlePostings(books: Books, clients: number, seconds: number, partner?: string): Promise<Rate> {
  return rated(async () => {
    // A short warm-up fills the server's buffers. Accounts are looked up on first use, as an
    // escrow released once or twice in its life would be.
    const warmUntil = Date.now() + 1000;
    const until = warmUntil + seconds * 1000;
    let counted = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (Date.now() < until) {
          const input = release(books, partner);
          await runInTransaction(books.db, (tx) => books.ledger.post(ctxOf(tx), input));
          if (Date.now() > warmUntil) counted++;
        }
      }),
    );
    return { count: counted, seconds };
  });
}

/**
 * Transactions per second of `postBatch` calls of 1,000, one call per database transaction,
 * `batches` calls from each of `callers` concurrent callers.
 */
function batchedPostings(books: Books, atomic: boolean, batches: number, callers = 1): Promise<Rate> {
  return rated(async () => {
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: callers }, async () => {
        for (let n = 0; n < batches; n++) {
          const inputs = Array.from({ length: BATCH_SIZE }, () => release(books));
          const results = await runInTransaction(books.db, (tx) =>
            books.ledger.postBatch(ctxOf(tx), inputs, { atomic }),
          );
          if (results.some((result) => result.status !== 'posted'))
            throw new Error('a batch item was not posted');
        }
      }),
    );
    return {
      count: callers * batches * BATCH_SIZE,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  });
}

/**
 * A partner whose payable every posting of a run credits, as a busy partner's confirmed legs do.
 * With `oneRow`, its payable is opened as payables were before ledger migration 0007, with one
 * balance row, which every posting locks until it commits: the same run without the slots.
 */
async function busyPartner(books: Books, oneRow: boolean): Promise<string> {
  const partner = newId('ptn');
  if (oneRow) {
    const account = newId('acc');
    await sql`insert into ledger_accounts (id, purpose, owner_kind, owner_id, currency, normal_side, non_negative, slots, created_at)
      values (${account}, 'partner_payable', 'partner', ${partner}, 'EUR', 'credit', true, 1, now())`.execute(
      books.db,
    );
    await sql`insert into ledger_balances (account_id, slot, balance_minor, normal_sign, non_negative)
      values (${account}, 0, 0, -1, true)`.execute(books.db);
  }
  return partner;
}

async function verified(books: Books): Promise<string> {
  while ((await runInTransaction(books.db, (tx) => sealChain(tx, new Date()))) > 0) {}
  const report = await books.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute((tx) => verifyLedger(tx));
  if (report.problems.length > 0) {
    return `verify found ${report.problems.length} problems, first: ${report.problems[0]?.message}`;
  }
  return `verify: ${report.transactions} transactions, ${report.sealed} sealed, ${report.accounts} accounts — the books balance`;
}

/**
 * The posting's one statement, `ledger_post`, sent by pgbench instead of Baton, between `BEGIN`
 * and `END`, all three in one round trip (pgbench's pipeline): the same escrow release on the
 * same accounts (an escrow and a partner at random, a random slot of each many-slot account).
 * It shows what PostgreSQL alone does with Baton's postings, with a client that costs next to
 * nothing and waits once per posting, so the runs through Baton can be read against the
 * database's own share. Its postings carry placeholder hashes, which `verify` would rightly
 * report, so it runs after `verify`, on the tables the runs before it have grown.
 */
async function postingStatementAlone(
  books: Books,
  url: string,
  seconds: number,
): Promise<Map<number, number>> {
  await sql`create table bench_probe (n int primary key, escrow text not null, escrow_slots int not null,
    partner text not null, partner_slots int not null)`.execute(books.db);
  await sql`
    insert into bench_probe
    select o.n - 1, e.id, e.slots, p.id, p.slots
    from unnest(${books.orders}::text[], ${books.partners}::text[]) with ordinality as o(order_id, partner_id, n)
    join ledger_accounts e on e.purpose = 'customer_escrow' and e.owner_id = o.order_id and e.currency = 'EUR'
    join ledger_accounts p on p.purpose = 'partner_payable' and p.owner_id = o.partner_id and p.currency = 'EUR'`.execute(
    books.db,
  );
  const { rows } = await sql<{ purpose: string; id: string; slots: number }>`
    select purpose, id, slots from ledger_accounts
    where owner_id = 'platform' and currency = 'EUR' and purpose in ('platform_commission', 'platform_margin')`.execute(
    books.db,
  );
  const platformAccount = (purpose: string) => {
    const found = rows.find((row) => row.purpose === purpose);
    if (!found) throw new Error(`no ${purpose} account`);
    return found;
  };
  const commission = platformAccount('platform_commission');
  const margin = platformAccount('platform_margin');
  const script = `\\set n random(0, ${books.orders.length - 1})
\\startpipeline
BEGIN;
with v as (
  select 'txn_probe' || md5(random()::text || clock_timestamp()::text) as id, b.*
  from bench_probe b where b.n = :n
)
select r.* from v, ledger_post(
  array[v.id], array['probe:' || v.id], array[''], array['leg'], array[v.id], array['{}'::jsonb],
  array['\\x00'::bytea], array['\\x00'::bytea],
  array[v.id, v.id, v.id, v.id], array[0, 1, 2, 3]::int2[],
  array[v.escrow, v.partner, '${commission.id}', '${margin.id}'], array['EUR', 'EUR', 'EUR', 'EUR'],
  array[1000, -850, -100, -50]::int8[],
  array[floor(random() * v.escrow_slots), floor(random() * v.partner_slots),
    floor(random() * ${commission.slots}), floor(random() * ${margin.slots})]::int2[],
  now(), true, '{}'::text[]) r;
END;
\\endpipeline
`;
  return pgbenchScriptTps({ url, script, seconds, clients: CLIENTS });
}

/**
 * A ceiling for batches: only the entries of 1,000 four-entry transactions per statement, made
 * up by the database itself (no parameters to read), into a scratch copy of the entries table
 * with its indexes, from pgbench with 2 clients. No transaction rows, no double-entry checks, no
 * balances, no application: whatever design keeps a row per entry, indexed by account for
 * statements and balances as of a past time, writes at least this much. Transactions per
 * second (4 entries each).
 */
async function entriesAlone(books: Books, url: string, seconds: number): Promise<number> {
  await sql`create table bench_entries_probe (like ledger_entries including all)`.execute(books.db);
  const script = `insert into bench_entries_probe (transaction_id, position, account_id, currency, amount_minor, posted_at)
select 'txn_probe' || md5(random()::text) || g, p, 'acc_probe' || (g % ${books.orders.length}), 'EUR', 100, now()
from generate_series(1, ${BATCH_SIZE}) g, generate_series(0, 3) p;
`;
  const statements = await pgbenchScriptTps({ url, script, seconds, clients: [2] });
  return (statements.get(2) ?? Number.NaN) * BATCH_SIZE;
}

interface Measured {
  readonly single: Map<number, Rate>;
  /** 8 clients, every posting to one partner: its payable in slots, and in one row; only with several connections. */
  readonly busy: { readonly slots: Rate; readonly oneRow: Rate } | null;
  readonly atomic: Rate;
  readonly perItem: Rate;
  /** Atomic batches from two concurrent callers; only where the database takes several connections. */
  readonly atomicTwoCallers: Rate | null;
  readonly verify: string;
  /** The posting statement driven by pgbench, by clients; only on PostgreSQL. */
  readonly statementAlone: Map<number, number> | null;
  /** Transactions per second whose entries alone bulk inserts write; only on PostgreSQL. */
  readonly entriesAlone: number | null;
}

async function measure(
  database: Database,
  options: Options,
  clients: readonly number[],
  concurrentBatches: boolean,
  serverUrl?: string,
): Promise<Measured> {
  await migrate(database);
  const books = await openBooks(database, options.partners);
  const single = new Map<number, Rate>();
  for (const count of clients) single.set(count, await singlePostings(books, count, options.seconds));
  const busy = concurrentBatches
    ? {
        slots: await singlePostings(books, 8, options.seconds, await busyPartner(books, false)),
        oneRow: await singlePostings(books, 8, options.seconds, await busyPartner(books, true)),
      }
    : null;
  const atomic = await batchedPostings(books, true, options.batches);
  const perItem = await batchedPostings(books, false, options.batches);
  const atomicTwoCallers = concurrentBatches ? await batchedPostings(books, true, options.batches, 2) : null;
  const verify = await verified(books);
  const statementAlone = serverUrl ? await postingStatementAlone(books, serverUrl, options.seconds) : null;
  const entries = serverUrl ? await entriesAlone(books, serverUrl, options.seconds) : null;
  return { single, busy, atomic, perItem, atomicTwoCallers, verify, statementAlone, entriesAlone: entries };
}

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const machine = describeMachine();
  console.log(`## ledger — postings per second against pgbench TPC-B\n`);
  console.log(
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory}, ${machine.os}, Node ${machine.node}; load average at the start: ${machine.loadAverage}.`,
  );
  console.log(
    `Runs of ${options.seconds} s; ${options.partners.toLocaleString('en')} partners' payables and as many order escrows; pgbench scale ${options.scale}; batches of ${BATCH_SIZE.toLocaleString('en')} × ${options.batches}.\n`,
  );

  const pgbench = await pgbenchTps({
    serverUrl: options.databaseUrl,
    scale: options.scale,
    seconds: options.seconds,
    clients: CLIENTS,
  });
  const bench = await createBenchDatabase(options.databaseUrl, 1);
  const postgres = openPostgres(bench.url, 8);
  let onPostgres: Measured;
  try {
    onPostgres = await measure(postgres, options, CLIENTS, true, bench.url);
  } finally {
    await postgres.close();
    await bench.drop();
  }
  console.log(`Server: PostgreSQL ${bench.serverVersion} (${bench.serverSettings}).\n`);

  const base8 = pgbench.get(8) ?? Number.NaN;
  const ratio = (tps: number, base: number) => `${(tps / base).toFixed(2)}×`;
  const cpu = (rate: Rate) => `${rate.cpuPercent.toFixed(0)} %`;
  const rows: string[][] = [
    ['pgbench TPC-B, 1 client', pgbench.get(1)?.toFixed(0) ?? '', '1.00× (baseline at 1)', ''],
    ['pgbench TPC-B, 8 clients', base8.toFixed(0), '1.00× (baseline)', ''],
  ];
  for (const [clients, rate] of onPostgres.single) {
    rows.push([
      `Baton posting (4 entries), ${clients} client${clients === 1 ? '' : 's'}`,
      rate.tps.toFixed(0),
      clients === 1
        ? `${ratio(rate.tps, pgbench.get(1) ?? Number.NaN)} of TPC-B at 1`
        : ratio(rate.tps, base8),
      cpu(rate),
    ]);
  }
  if (onPostgres.busy) {
    rows.push([
      'Baton posting, 8 clients, all to one partner (its payable in 16 slots)',
      onPostgres.busy.slots.tps.toFixed(0),
      ratio(onPostgres.busy.slots.tps, base8),
      cpu(onPostgres.busy.slots),
    ]);
    rows.push([
      'the same, its payable in one balance row (as before migration 0007)',
      onPostgres.busy.oneRow.tps.toFixed(0),
      ratio(onPostgres.busy.oneRow.tps, base8),
      cpu(onPostgres.busy.oneRow),
    ]);
  }
  for (const [clients, tps] of onPostgres.statementAlone ?? []) {
    rows.push([
      `the posting's statement alone, from pgbench, ${clients} client${clients === 1 ? '' : 's'}`,
      tps.toFixed(0),
      clients === 1 ? `${ratio(tps, pgbench.get(1) ?? Number.NaN)} of TPC-B at 1` : ratio(tps, base8),
      '–',
    ]);
  }
  const batchRows: [string, Rate | null][] = [
    ['Baton batch of 1,000, atomic', onPostgres.atomic],
    ['Baton batch of 1,000, per item', onPostgres.perItem],
    ['Baton batch of 1,000, atomic, 2 callers', onPostgres.atomicTwoCallers],
  ];
  for (const [label, rate] of batchRows) {
    if (rate) rows.push([label, rate.tps.toFixed(0), ratio(rate.tps, base8), cpu(rate)]);
  }
  if (onPostgres.entriesAlone !== null) {
    rows.push([
      'the entries alone, 1,000 transactions per insert, from pgbench, 2 clients',
      onPostgres.entriesAlone.toFixed(0),
      ratio(onPostgres.entriesAlone, base8),
      '–',
    ]);
  }
  console.log(
    markdownTable(['PostgreSQL', 'transactions/s', 'vs TPC-B at 8 clients', 'bench process CPU'], rows),
  );
  console.log(`\n${onPostgres.verify}\n`);

  if (!options.skipEmbedded) {
    const embedded = await openEmbedded({ dataDir: 'memory://' });
    try {
      const measured = await measure(embedded, options, CLIENTS, false);
      const embeddedRows: string[][] = [...measured.single].map(([clients, rate]) => [
        `Baton posting (4 entries), ${clients} concurrent caller${clients === 1 ? '' : 's'}`,
        rate.tps.toFixed(0),
        cpu(rate),
      ]);
      embeddedRows.push([
        'Baton batch of 1,000, atomic',
        measured.atomic.tps.toFixed(0),
        cpu(measured.atomic),
      ]);
      embeddedRows.push([
        'Baton batch of 1,000, per item',
        measured.perItem.tps.toFixed(0),
        cpu(measured.perItem),
      ]);
      console.log(
        markdownTable(
          ['Embedded (PGlite, one connection, in this process)', 'transactions/s', 'process CPU'],
          embeddedRows,
        ),
      );
      console.log(`\n${measured.verify}\n`);
    } finally {
      await embedded.close();
    }
  }
  console.log(
    `Run took ${(process.uptime() / 60).toFixed(1)} min; load average at the end: ${describeMachine().loadAverage}.`,
  );
}
