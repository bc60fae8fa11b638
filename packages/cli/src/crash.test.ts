import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { baton, scratchPostgres, serve, stop } from './testing/baton-process.js';

/*
 * Kill -9 under load (F1): the built server on PostgreSQL takes money postings from concurrent
 * clients while it is killed without warning, again and again, and started again. Clients do
 * what a careful integrator does: a request that got no answer is sent again, with the same
 * keys, until it gets one. Afterwards every acknowledged posting is in the books exactly once,
 * nothing else is, each has exactly one audit record, and `baton ledger verify` finds the books
 * balanced. The embedded database is for trying Baton out on one machine; this is about the
 * server a deployment runs.
 */
/** 2,500 in `npm test`; `npm run soak -- crash` runs RELIABILITY.md's 10,000, with 50 kills or more. */
const OPERATIONS = Number(process.env.CRASH_OPERATIONS ?? 2_500);
const CLIENTS = 8;
const PARTNERS = 20;
/** A kill every 150 to 190 acknowledged operations: at least one per 200. */
const KILLS_MIN = Math.floor(OPERATIONS / 200);
/** Acknowledged operations between two kills, at random in this range: 52 to 66 kills in all. */
const OPERATIONS_BETWEEN_KILLS: readonly [number, number] = [150, 190];

/** The clients are one tenant sending many requests on purpose. */
const SERVER_ENV = { BATON_RATE_LIMIT_PER_MINUTE: '1000000' };

interface Operation {
  readonly key: string;
  readonly partner: string;
  /** Earnings credit the partner's payable; takings debit it, and may find too little there. */
  readonly kind: 'earn' | 'take';
  readonly amountMinor: number;
}

type Answer = { status: 201; transactionId: string } | { status: 409; code: string };

describe.runIf(process.env.BATON_TEST_DATABASE === 'postgres')('kill -9 under load (F1)', () => {
  const database = scratchPostgres(`baton_crash_${process.pid}`);
  const { url } = database;
  afterAll(() => database.drop());

  it(`loses no acknowledged posting and duplicates none through ${KILLS_MIN}+ kills`, {
    timeout: 600_000,
  }, async () => {
    await database.create();
    await baton('migrate', '--database-url', url);
    const created = await baton('keys', 'create', '--role', 'finance', '--database-url', url);
    const secret = /(baton_sk_\S+)/.exec(created.stdout)?.[1] as string;
    expect(secret).toBeDefined();

    // The server, and a promise of it for clients to wait on while it is down.
    let server = await serve(['--database-url', url], SERVER_ENV);
    let up: Promise<{ url: string }> = Promise.resolve(server);
    let kills = 0;

    // Partners' ids (the ledger needs only their form: a partner's payable opens on first use).
    const partners = Array.from({ length: PARTNERS }, (_, n) => `ptn_${String(n).padStart(26, '0')}`);
    const operations: Operation[] = Array.from({ length: OPERATIONS }, (_, n) => ({
      key: `f1-${n}`,
      partner: partners[n % PARTNERS] as string,
      kind: Math.floor(n / PARTNERS) % 10 < 7 ? 'earn' : 'take',
      amountMinor: 1 + ((n * 7919) % 5000),
    }));
    const answers = new Map<string, Answer>();
    let retries = 0;

    async function send(operation: Operation): Promise<Answer> {
      const payable = { purpose: 'partner_payable', owner_id: operation.partner };
      const adjustments = { purpose: 'operator_adjustments', owner_id: 'platform' };
      const amount = { amount: (operation.amountMinor / 100).toFixed(2), currency: 'EUR' };
      const body = JSON.stringify({
        idempotency_key: operation.key,
        cause: { kind: 'adjustment', id: operation.key },
        entries: [
          { account: operation.kind === 'earn' ? adjustments : payable, direction: 'debit', amount },
          { account: operation.kind === 'earn' ? payable : adjustments, direction: 'credit', amount },
        ],
      });
      for (;;) {
        const { url: base } = await up;
        let response: Response;
        try {
          response = await fetch(`${base}/v1/ledger/transactions`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${secret}`,
              'content-type': 'application/json',
              'idempotency-key': operation.key,
            },
            body,
          });
        } catch {
          // No answer: the server died under the request. Send it again once it is back.
          retries++;
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        const json = (await response.json().catch(() => null)) as { id?: string; code?: string } | null;
        if (response.status === 201 && json?.id) return { status: 201, transactionId: json.id };
        if (response.status === 409 && json?.code) return { status: 409, code: json.code };
        throw new Error(`${operation.key}: ${response.status} ${JSON.stringify(json)}`);
      }
    }

    // The killer: after a random number of acknowledged operations, kill -9 and start again.
    let nextKillAt = OPERATIONS_BETWEEN_KILLS[0];
    const between = () =>
      OPERATIONS_BETWEEN_KILLS[0] +
      Math.floor(Math.random() * (OPERATIONS_BETWEEN_KILLS[1] - OPERATIONS_BETWEEN_KILLS[0]));
    let killing: Promise<void> = Promise.resolve();
    const maybeKill = () => {
      if (answers.size < nextKillAt || answers.size >= OPERATIONS) return;
      nextKillAt = answers.size + between();
      const dying = server;
      killing = killing.then(async () => {
        let restarted!: (value: { url: string }) => void;
        up = new Promise((resolve) => {
          restarted = resolve;
        });
        await stop(dying.child, 'SIGKILL');
        kills++;
        server = await serve(['--database-url', url], SERVER_ENV);
        restarted(server);
      });
    };

    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let n = next++; n < OPERATIONS; n = next++) {
          const operation = operations[n] as Operation;
          answers.set(operation.key, await send(operation));
          maybeKill();
        }
      }),
    );
    await killing;
    await stop(server.child, 'SIGKILL');
    expect(kills).toBeGreaterThanOrEqual(KILLS_MIN);
    expect(retries).toBeGreaterThan(0);

    // What the books hold, read directly.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows: written } = await client.query<{ id: string; idempotency_key: string }>(
        // Postings by hand are kept under `manual:`: the key as the client gave it follows.
        `select id, substring(idempotency_key from 8) as idempotency_key from ledger_transactions
          where idempotency_key like 'manual:f1-%'`,
      );
      const byKey = new Map<string, string[]>();
      for (const row of written)
        byKey.set(row.idempotency_key, [...(byKey.get(row.idempotency_key) ?? []), row.id]);
      const refusals: string[] = [];
      for (const operation of operations) {
        const answer = answers.get(operation.key);
        const ids = byKey.get(operation.key) ?? [];
        if (answer?.status === 201) {
          // Acknowledged: in the books, once, as the answer said.
          expect(ids, operation.key).toEqual([answer.transactionId]);
        } else {
          // Refused (only takings, for want of funds): not in the books at all.
          expect(answer?.status, operation.key).toBe(409);
          expect(operation.kind, operation.key).toBe('take');
          if (answer?.status === 409) refusals.push(answer.code);
          expect(ids, operation.key).toEqual([]);
        }
      }
      expect(refusals.filter((code) => code !== 'ledger.insufficient_funds')).toEqual([]);
      expect(written).toHaveLength([...answers.values()].filter((answer) => answer.status === 201).length);

      // Exactly one audit record per committed posting, and one per refusal (kept with its key,
      // so that a retry is answered the same and audited no more).
      const { rows: audits } = await client.query<{ target_id: string; n: string }>(
        `select target_id, count(*)::text as n from audit_records
          where action = 'ledger.transaction.post' and outcome = 'succeeded' group by target_id`,
      );
      expect(audits.filter((audit) => audit.n !== '1')).toEqual([]);
      expect(new Set(audits.map((audit) => audit.target_id))).toEqual(new Set(written.map((row) => row.id)));
      const { rows: failed } = await client.query<{ n: string }>(
        `select count(*)::text as n from audit_records
          where action = 'ledger.transaction.post' and outcome = 'failed'`,
      );
      expect(Number(failed[0]?.n)).toBe(refusals.length);

      // Each payable holds what its acknowledged postings say, and none is below zero.
      const expected = new Map<string, number>();
      for (const operation of operations) {
        if (answers.get(operation.key)?.status !== 201) continue;
        const sign = operation.kind === 'earn' ? 1 : -1;
        expected.set(
          operation.partner,
          (expected.get(operation.partner) ?? 0) + sign * operation.amountMinor,
        );
      }
      const { rows: balances } = await client.query<{ owner_id: string; balance: string }>(
        `select a.owner_id, coalesce(sum(b.balance_minor), 0)::text as balance
           from ledger_accounts a left join ledger_balances b on b.account_id = a.id
          where a.purpose = 'partner_payable' group by a.owner_id`,
      );
      expect(new Map(balances.map((row) => [row.owner_id, -Number(row.balance)]))).toEqual(expected);
    } finally {
      await client.end();
    }

    const verified = await baton('ledger', 'verify', '--database-url', url);
    expect(verified.stdout).toContain('The books balance');
  });
});
