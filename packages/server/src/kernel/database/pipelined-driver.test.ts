import { sql } from 'kysely';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { recordAudit } from '../audit/audit-log.js';
import type { Context } from '../context.js';
import { appendEvent } from '../events/event-log.js';
import { databaseFromPool, type Tx } from './database.js';
import { afterCommit, executeTogether, executeUnawaited } from './pipelined-driver.js';
import { runInTransaction } from './transaction.js';

describe(`the pipelined driver (${TEST_DATABASE_KIND})`, async () => {
  const database = await createTestDatabase();
  const { db } = database;
  afterAll(() => database.close());

  // Every statement sent on any of the pool's clients, in order.
  const sent: string[] = [];
  const watched = new WeakSet<pg.PoolClient>();
  database.pool.on('acquire', (client) => {
    if (watched.has(client)) return;
    watched.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      if (text !== undefined) sent.push(text);
      return query(...args);
    };
  });
  const statementsOf = async (work: () => Promise<unknown>) => {
    sent.length = 0;
    await work();
    return sent.map((text) => text.trim().split(/\s+/).slice(0, 3).join(' '));
  };

  let subjects = 0;
  const ctxOf = (tx: Tx): Context => ({
    db: tx,
    actor: { kind: 'system', name: 'test' },
    now: new Date(),
    requestId: null,
    ip: null,
  });
  const event = (type: string, subjectId: string) => ({ type, subjectId, data: { type }, audience: [] });
  const eventsOf = (subjectId: string) =>
    db
      .selectFrom('events')
      .select(['id', 'type', 'tx_id'])
      .where('subject_id', '=', subjectId)
      .orderBy('seq')
      .execute();
  const codeOf = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (error) {
      return (error as { code?: string }).code ?? (error as Error).message;
    }
    throw new Error('expected a failure');
  };

  it('runs its clients in pipeline mode', async () => {
    const client = await database.pool.connect();
    try {
      expect(client.pipeline).toBe(true);
    } finally {
      client.release();
    }
  });

  it("writes a transaction's events and audit records at commit, one insert per table, in the order given", async () => {
    const subject = `subject_${++subjects}`;
    let ids: string[] = [];
    const statements = await statementsOf(() =>
      runInTransaction(db, async (tx) => {
        const ctx = ctxOf(tx);
        ids = [
          await appendEvent(ctx, event('test.first', subject)),
          await appendEvent(ctx, event('test.second', subject)),
        ];
        await recordAudit(ctx, { action: 'test.act', targetId: subject, outcome: 'succeeded' });
        ids.push(await appendEvent(ctx, event('test.third', subject)));
        await recordAudit(ctx, { action: 'test.act', targetId: subject, outcome: 'failed' });
      }),
    );
    expect(statements).toEqual(['begin', 'insert into "events"', 'insert into "audit_records"', 'commit']);
    const events = await eventsOf(subject);
    expect(events.map((row) => row.id)).toEqual(ids);
    expect(new Set(events.map((row) => row.tx_id)).size).toBe(1);
    const audits = await db
      .selectFrom('audit_records')
      .select('outcome')
      .where('target_id', '=', subject)
      .orderBy('seq')
      .execute();
    expect(audits.map((row) => row.outcome)).toEqual(['succeeded', 'failed']);
  });

  it('costs no statement for a transaction that sends none', async () => {
    expect(await statementsOf(() => runInTransaction(db, async () => 'nothing'))).toEqual([]);
  });

  it('lets a statement of the same transaction that reads the table see the rows given so far', async () => {
    const subject = `subject_${++subjects}`;
    const seen = await runInTransaction(db, async (tx) => {
      await appendEvent(ctxOf(tx), event('test.visible', subject));
      return tx.selectFrom('events').select('type').where('subject_id', '=', subject).execute();
    });
    expect(seen).toEqual([{ type: 'test.visible' }]);
    expect(await eventsOf(subject)).toHaveLength(1);
  });

  it('drops the rows given after a savepoint that is rolled back, and keeps the others', async () => {
    const subject = `subject_${++subjects}`;
    await runInTransaction(db, async (tx) => {
      const ctx = ctxOf(tx);
      await appendEvent(ctx, event('test.before', subject));
      await sql`savepoint outer_step`.execute(tx);
      await appendEvent(ctx, event('test.outer', subject));
      await sql`savepoint inner_step`.execute(tx);
      await appendEvent(ctx, event('test.inner', subject));
      await sql`release savepoint inner_step`.execute(tx);
      await appendEvent(ctx, event('test.released', subject));
      await sql`rollback to savepoint outer_step`.execute(tx);
      await appendEvent(ctx, event('test.after', subject));
      await sql`savepoint kept_step`.execute(tx);
      await appendEvent(ctx, event('test.kept', subject));
      await sql`release savepoint kept_step`.execute(tx);
    });
    expect((await eventsOf(subject)).map((row) => row.type)).toEqual([
      'test.before',
      'test.after',
      'test.kept',
    ]);
  });

  it('writes nothing of a transaction that fails', async () => {
    const subject = `subject_${++subjects}`;
    await expect(
      runInTransaction(db, async (tx) => {
        await appendEvent(ctxOf(tx), event('test.lost', subject));
        throw new Error('crash before commit');
      }),
    ).rejects.toThrow('crash before commit');
    expect(await eventsOf(subject)).toEqual([]);
  });

  it('reports the failure of a statement sent without waiting, not the aborted transaction after it', async () => {
    const code = await codeOf(
      runInTransaction(db, async (tx) => {
        await executeUnawaited(tx, sql`select 1 / 0`.compile(tx));
        await sql`select 1`.execute(tx);
      }),
    );
    expect(code).toBe('22012');
  });

  it('reports a failure that only commit sees, and commits none of the transaction', async () => {
    const subject = `subject_${++subjects}`;
    const code = await codeOf(
      runInTransaction(db, async (tx) => {
        await appendEvent(ctxOf(tx), event('test.lost', subject));
        await executeUnawaited(tx, sql`select 1 / 0`.compile(tx));
      }),
    );
    expect(code).toBe('22012');
    expect(await eventsOf(subject)).toEqual([]);
  });

  it('never reports as committed a transaction whose failure was swallowed', async () => {
    const subject = `subject_${++subjects}`;
    const failure = runInTransaction(db, async (tx) => {
      await appendEvent(ctxOf(tx), event('test.lost', subject));
      await sql`select 1 / 0`.execute(tx).catch(() => {});
    });
    await expect(failure).rejects.toThrow();
    expect(await eventsOf(subject)).toEqual([]);
  });

  it('runs the whole transaction again when a statement sent without waiting hits a serialization failure', async () => {
    const subject = `subject_${++subjects}`;
    let attempts = 0;
    await runInTransaction(db, async (tx) => {
      attempts += 1;
      await appendEvent(ctxOf(tx), event(`test.attempt_${attempts}`, subject));
      if (attempts === 1) {
        await executeUnawaited(
          tx,
          sql`do $$ begin raise exception 'conflict' using errcode = '40001'; end $$`.compile(tx),
        );
      }
    });
    expect(attempts).toBe(2);
    expect((await eventsOf(subject)).map((row) => row.type)).toEqual(['test.attempt_2']);
  });

  it('answers statements sent together in order, each after the one before', async () => {
    const [first, second] = await runInTransaction(db, (tx) =>
      executeTogether(tx, [
        sql`create temporary table together_probe (value int) on commit drop`.compile(tx),
        sql`insert into together_probe values (7) returning value`.compile(tx),
      ]),
    );
    expect(first?.rows).toEqual([]);
    expect(second?.rows).toEqual([{ value: 7 }]);
  });

  it('keeps working after failures: the next transaction on the connection starts clean', async () => {
    for (let i = 0; i < 3; i++) {
      await expect(
        runInTransaction(db, async (tx) => {
          await executeUnawaited(tx, sql`select 1 / 0`.compile(tx));
        }),
      ).rejects.toThrow();
    }
    const { rows } = await sql<{ value: number }>`select 1 as value`.execute(db);
    expect(rows).toEqual([{ value: 1 }]);
  });

  it('calls back after commit, when the commit is visible to others, and never for a transaction that fails', async () => {
    const subject = `subject_${++subjects}`;
    const seen: number[] = [];
    const visibleEvents = async () => (await eventsOf(subject)).length;
    await runInTransaction(db, async (tx) => {
      await appendEvent(ctxOf(tx), event('test.committed', subject));
      await afterCommit(tx, () => {
        // Another connection reads it from inside the callback: the commit is done.
        void visibleEvents().then((count) => seen.push(count));
      });
      expect(seen).toEqual([]);
    });
    await expect.poll(() => seen).toEqual([1]);

    let calledForFailure = false;
    await expect(
      runInTransaction(db, async (tx) => {
        await afterCommit(tx, () => {
          calledForFailure = true;
        });
        await executeUnawaited(tx, sql`select 1 / 0`.compile(tx));
      }),
    ).rejects.toThrow();
    await expect(
      runInTransaction(db, async (tx) => {
        await afterCommit(tx, () => {
          calledForFailure = true;
        });
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    expect(calledForFailure).toBe(false);
  });

  it('still commits, and calls the other callbacks, when a callback throws', async () => {
    const subject = `subject_${++subjects}`;
    let second = false;
    await runInTransaction(db, async (tx) => {
      await appendEvent(ctxOf(tx), event('test.committed', subject));
      await afterCommit(tx, () => {
        throw new Error('a broken hint');
      });
      await afterCommit(tx, () => {
        second = true;
      });
    });
    expect(second).toBe(true);
    expect(await eventsOf(subject)).toHaveLength(1);
  });

  it('prepares a statement sent again and again, once on the connection, and answers as before', async () => {
    const values = await runInTransaction(db, async (tx) => {
      const answers: number[] = [];
      for (let n = 0; n < 6; n++) {
        const { rows } = await sql<{
          value: number;
        }>`select ${n}::int + 1 as value /* prepare_probe */`.execute(tx);
        answers.push((rows[0] as { value: number }).value);
      }
      const { rows } = await sql<{ count: number }>`
        select count(*)::int as count from pg_prepared_statements
        where statement like '%prepare\_probe%' and statement not like '%pg\_prepared\_statements%'`.execute(
        tx,
      );
      return { answers, prepared: (rows[0] as { count: number }).count };
    });
    expect(values).toEqual({ answers: [1, 2, 3, 4, 5, 6], prepared: 1 });
  });

  it('prepares nothing when told not to (behind a pooler that cannot keep prepared statements)', async () => {
    const unprepared = databaseFromPool(database.kind, database.pool, async () => {}, { prepare: false });
    const prepared = await runInTransaction(unprepared.db, async (tx) => {
      for (let n = 0; n < 6; n++) await sql`select ${n}::int as value /* unprepared_probe */`.execute(tx);
      const { rows } = await sql<{ count: number }>`
        select count(*)::int as count from pg_prepared_statements
        where statement like '%unprepared\_probe%' and statement not like '%pg\_prepared\_statements%'`.execute(
        tx,
      );
      return (rows[0] as { count: number }).count;
    });
    expect(prepared).toBe(0);
  });

  it('prepares a statement afresh once a change of the schema made it stale', async () => {
    await db.connection().execute(async (connection) => {
      await sql`create table stale_probe (a int)`.execute(connection);
      await sql`insert into stale_probe values (1)`.execute(connection);
      const read = () =>
        sql<Record<string, unknown>>`select * from stale_probe where a = ${1}`.execute(connection);
      for (let n = 0; n < 4; n++) expect((await read()).rows).toEqual([{ a: 1 }]);
      await sql`alter table stale_probe add column b int default 2`.execute(connection);
      // PostgreSQL refuses to run the prepared statement once; the next call prepares it again.
      expect(await codeOf(read())).toBe('0A000');
      expect((await read()).rows).toEqual([{ a: 1, b: 2 }]);
    });
  });
});
