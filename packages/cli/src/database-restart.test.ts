import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { baton, serve, stop } from './testing/baton-process.js';
import { type PrivatePostgres, postgresBinaries, startPrivatePostgres } from './testing/private-postgres.js';

/*
 * Database restarts (F2, the half the shared test server cannot take): the built server takes
 * money postings from concurrent clients while its PostgreSQL server is stopped, as a crash
 * stops it and as an operator's restart does, kept down a while and started again. Baton's
 * process is never restarted. While the database is away every write is answered 503
 * `database.unavailable` with `Retry-After`, never 2xx and never 500; within 30 s of the
 * database's return the same process acknowledges writes again; and afterwards every
 * acknowledged posting is in the books once, with its audit record, and the books verify.
 * (Connections killed under load are `kernel/database/faults.test.ts`.)
 */
const OPERATIONS = 1_500;
const CLIENTS = 8;
const PARTNERS = 10;
const RECOVERY_MS_MAX = 30_000;
/** After how many acknowledged postings the database goes down, how, and for how long. */
const RESTARTS = [
  { after: 250, mode: 'immediate', downMs: 1_500 },
  { after: 650, mode: 'fast', downMs: 1_000 },
  { after: 1_050, mode: 'immediate', downMs: 300 },
] as const;

const SERVER_ENV = { BATON_RATE_LIMIT_PER_MINUTE: '1000000' };

const bindir = process.env.BATON_TEST_DATABASE === 'postgres' ? await postgresBinaries() : null;

describe.runIf(bindir !== null)('database restarts (F2)', () => {
  let database: PrivatePostgres | undefined;
  afterAll(() => database?.destroy());

  it('answers 503 while the database is down, and serves again within 30 s without a restart', {
    timeout: 300_000,
  }, async () => {
    database = await startPrivatePostgres(bindir as string);
    const { url } = database;
    await baton('migrate', '--database-url', url);
    const created = await baton('keys', 'create', '--role', 'finance', '--database-url', url);
    const secret = /(baton_sk_\S+)/.exec(created.stdout)?.[1] as string;
    const server = await serve(['--database-url', url], SERVER_ENV);

    const partners = Array.from({ length: PARTNERS }, (_, n) => `ptn_${String(n).padStart(26, '0')}`);
    const acknowledged = new Map<string, string>();
    const unavailable: { status: number; retryAfter: string | null; body: unknown }[] = [];
    let successes = 0;
    let onSuccess: (() => void) | null = null;

    async function post(n: number): Promise<void> {
      const key = `restart-${n}`;
      const body = JSON.stringify({
        idempotency_key: key,
        cause: { kind: 'adjustment', id: key },
        entries: [
          {
            account: { purpose: 'operator_adjustments', owner_id: 'platform' },
            direction: 'debit',
            amount: { amount: '1.00', currency: 'EUR' },
          },
          {
            account: { purpose: 'partner_payable', owner_id: partners[n % PARTNERS] },
            direction: 'credit',
            amount: { amount: '1.00', currency: 'EUR' },
          },
        ],
      });
      for (;;) {
        // Baton stays up throughout: a request that gets no answer fails the test.
        const response = await fetch(`${server.url}/v1/ledger/transactions`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${secret}`,
            'content-type': 'application/json',
            'idempotency-key': key,
          },
          body,
        });
        const json = (await response.json()) as { id?: string };
        if (response.status === 201 && json.id) {
          acknowledged.set(key, json.id);
          successes++;
          onSuccess?.();
          return;
        }
        unavailable.push({
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          body: json,
        });
        if (response.status !== 503) throw new Error(`${key}: ${response.status} ${JSON.stringify(json)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    // The restarts, each when enough postings were acknowledged, and how long after each start
    // the first acknowledgement came.
    const recoveries: number[] = [];
    const restarts = (async () => {
      for (const restart of RESTARTS) {
        while (successes < restart.after) await new Promise((resolve) => setTimeout(resolve, 10));
        await database.stop(restart.mode);
        await new Promise((resolve) => setTimeout(resolve, restart.downMs));
        const before = successes;
        const recovered = new Promise<void>((resolve) => {
          onSuccess = () => {
            if (successes > before) resolve();
          };
        });
        // Measured from the start command: the database's own start-up and recovery count too.
        const starting = Date.now();
        await database.start();
        await recovered;
        onSuccess = null;
        recoveries.push(Date.now() - starting);
      }
    })();

    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let n = next++; n < OPERATIONS; n = next++) await post(n);
      }),
    );
    await restarts;

    // The same process served throughout.
    expect(server.child.exitCode).toBeNull();
    expect(server.child.signalCode).toBeNull();
    expect(recoveries).toHaveLength(RESTARTS.length);
    for (const ms of recoveries) expect(ms).toBeLessThanOrEqual(RECOVERY_MS_MAX);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const answer of unavailable) {
      expect(answer).toMatchObject({
        status: 503,
        retryAfter: '1',
        body: { status: 503, code: 'database.unavailable' },
      });
      expect(JSON.stringify(answer.body)).not.toMatch(/terminat|shutdown|ECONN|select|insert|at .*\.js/i);
    }
    await stop(server.child);

    // Every acknowledged posting is in the books once, as answered, with one audit record.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows: written } = await client.query<{ id: string; idempotency_key: string }>(
        // Postings by hand are kept under `manual:`: the key as the client gave it follows.
        `select id, substring(idempotency_key from 8) as idempotency_key from ledger_transactions
          where idempotency_key like 'manual:restart-%'`,
      );
      expect(written).toHaveLength(OPERATIONS);
      expect(new Map(written.map((row) => [row.idempotency_key, row.id]))).toEqual(acknowledged);
      const { rows: audits } = await client.query<{ target_id: string }>(
        `select target_id from audit_records where action = 'ledger.transaction.post' and outcome = 'succeeded'`,
      );
      expect(audits.map((audit) => audit.target_id).sort()).toEqual(written.map((row) => row.id).sort());
    } finally {
      await client.end();
    }
    const verified = await baton('ledger', 'verify', '--database-url', url);
    expect(verified.stdout).toContain('The books balance');
  });
});
