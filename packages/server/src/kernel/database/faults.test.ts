import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { Problem } from '../http/problem.js';

/*
 * Database faults (F2): while clients post money through the API, every connection Baton has
 * to its database is killed from the server side, again and again. A write is never answered
 * 2xx unless it committed; a failed one is answered 503 `database.unavailable` (a problem the
 * client can act on: send it again with the same key), never a 500, and its retry may meet 409
 * `idempotency.in_progress` until PostgreSQL has ended the killed session; once the faults stop,
 * the same process serves again at once, with every acknowledged posting in the books once.
 * (Restarting the whole server is left out here: the test suite shares it.)
 */

const OPERATIONS = 2_000;
const CLIENTS = 8;
const PARTNERS = 10;
const RECOVERY_MS_MAX = 30_000;

describe.runIf(TEST_DATABASE_KIND === 'postgres')('database faults (F2)', async () => {
  const app = await createTestApp({ poolSize: 8, config: { BATON_RATE_LIMIT_PER_MINUTE: '1000000' } });
  const db = app.baton.database.db;
  const financeKey = await app.operatorKey('finance');

  it('answers 2xx only for writes that committed, 503 for the others, and recovers without a restart', {
    timeout: 300_000,
  }, async () => {
    const { rows } = await sql<{ name: string }>`select current_database() as name`.execute(db);
    const name = rows[0]?.name as string;
    const killer = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await killer.connect();
    let killing = true;
    let kills = 0;
    const terminated = (async () => {
      while (killing) {
        const result = await killer.query(
          `select pg_terminate_backend(pid) from pg_stat_activity
            where datname = $1 and pid <> pg_backend_pid()`,
          [name],
        );
        kills += result.rowCount ?? 0;
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
      }
    })();

    const partners = Array.from({ length: PARTNERS }, (_, n) => `ptn_${String(n).padStart(26, '0')}`);
    const acknowledged = new Map<string, string>();
    const unavailable: Problem[] = [];
    const post = (n: number) =>
      app.request<{ id: string } & Problem>('POST', '/v1/ledger/transactions', {
        key: financeKey,
        headers: { 'idempotency-key': `f2-${n}` },
        body: {
          idempotency_key: `f2-${n}`,
          cause: { kind: 'adjustment', id: `f2-${n}` },
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
        },
      });
    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let n = next++; n < OPERATIONS; n = next++) {
          for (;;) {
            const response = await post(n);
            if (response.status === 201) {
              acknowledged.set(`f2-${n}`, response.body.id);
              break;
            }
            // Not done: 503 while the database cannot be reached, or 409 while the key is still
            // held by the attempt before, whose killed session PostgreSQL has not yet ended.
            expect([503, 409], response.text).toContain(response.status);
            if (response.status === 503) unavailable.push(response.body);
            else expect(response.body.code).toBe('idempotency.in_progress');
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        }
      }),
    );
    killing = false;
    await terminated;
    await killer.end();
    expect(kills).toBeGreaterThan(0);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const problem of unavailable) {
      expect(problem).toMatchObject({ status: 503, code: 'database.unavailable' });
      expect(JSON.stringify(problem)).not.toMatch(/terminat|select|insert|at .*\.js/i);
    }

    // Faults over: the same process answers at once.
    const started = Date.now();
    for (;;) {
      const response = await app.request('GET', '/v1/ledger/accounts?limit=1', { key: financeKey });
      if (response.status === 200) break;
      expect(Date.now() - started).toBeLessThan(RECOVERY_MS_MAX);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    // Every acknowledged posting is in the books once, and nothing else is.
    const written = await db
      .selectFrom('ledger_transactions')
      .select(['id', 'idempotency_key'])
      .where('idempotency_key', 'like', 'manual:f2-%')
      .execute();
    // Postings by hand are kept under `manual:`.
    expect(new Map(written.map((row) => [row.idempotency_key.slice('manual:'.length), row.id]))).toEqual(
      acknowledged,
    );
    expect(written).toHaveLength(OPERATIONS);
    const audits = await db
      .selectFrom('audit_records')
      .select(['target_id'])
      .where('action', '=', 'ledger.transaction.post')
      .where('outcome', '=', 'succeeded')
      .execute();
    expect(audits.map((audit) => audit.target_id).sort()).toEqual(written.map((row) => row.id).sort());
  });
});
