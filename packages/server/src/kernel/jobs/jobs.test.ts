import type pg from 'pg';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { Context } from '../context.js';
import type { Tx } from '../database/database.js';
import { runInTransaction } from '../database/transaction.js';
import { createJobs } from './jobs.js';

describe(`jobs (${TEST_DATABASE_KIND})`, async () => {
  const database = await createTestDatabase();
  const jobs = createJobs({ pool: database.pool, logger: pino({ level: 'silent' }) });
  const ran: { data: { n: number }; atMs: number }[] = [];
  // A poll every 60 s: a job that starts sooner was started by something else than the poll.
  jobs.define<{ n: number }>({
    name: 'test.wake',
    pollingIntervalSeconds: 60,
    handler: async (data) => {
      ran.push({ data, atMs: Date.now() });
    },
  });
  // Jobs that wait until three of them run at once.
  let running = 0;
  let mostAtOnce = 0;
  let openGate = () => {};
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  jobs.define<{ n: number }>({
    name: 'test.parallel',
    pollingIntervalSeconds: 60,
    concurrency: 3,
    handler: async () => {
      running += 1;
      mostAtOnce = Math.max(mostAtOnce, running);
      if (running === 3) openGate();
      await gate;
      running -= 1;
    },
  });
  await jobs.start({ work: true });
  afterAll(async () => {
    await jobs.stop();
    await database.close();
  });

  const ctxOf = (tx: Tx): Context => ({
    db: tx,
    actor: { kind: 'system', name: 'test' },
    now: new Date(),
    requestId: null,
    ip: null,
  });
  const enqueue = (n: number) =>
    runInTransaction(database.db, (tx) => jobs.enqueue(ctxOf(tx), 'test.wake', { n }));

  it('starts a job due at once when the enqueuing transaction commits, not at the next poll', async () => {
    // Let the worker's first fetch find nothing, so that it is waiting out its minute.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const committedAtMs = Date.now();
    await enqueue(1);
    await expect.poll(() => ran.map((job) => job.data.n), { timeout: 15_000 }).toEqual([1]);
    expect((ran[0] as { atMs: number }).atMs - committedAtMs).toBeLessThan(15_000);
  }, 30_000);

  it('runs up to its concurrency of jobs at once', async () => {
    await runInTransaction(database.db, async (tx) => {
      for (let n = 0; n < 3; n++) await jobs.enqueue(ctxOf(tx), 'test.parallel', { n });
    });
    await expect.poll(() => mostAtOnce, { timeout: 15_000 }).toBe(3);
    await expect.poll(() => running, { timeout: 5_000 }).toBe(0);
  }, 30_000);

  it('lets a job fetched while stopping run to the end before stop returns', async () => {
    // A second process's jobs on the same database, whose fetches take a while when told to.
    let slowFetches = false;
    const slowPool = {
      query: async (text: string, values: unknown[]) => {
        if (slowFetches && /skip locked/i.test(text))
          await new Promise((resolve) => setTimeout(resolve, 400));
        return database.pool.query(text, values);
      },
    } as unknown as pg.Pool;
    const stopping = createJobs({ pool: slowPool, logger: pino({ level: 'silent' }) });
    const handled: { startedAtMs: number; endedAtMs: number }[] = [];
    stopping.define<{ n: number }>({
      name: 'test.stop',
      pollingIntervalSeconds: 60,
      handler: async () => {
        const startedAtMs = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 100));
        handled.push({ startedAtMs, endedAtMs: Date.now() });
      },
    });
    await stopping.start({ work: true });
    // The worker's first fetch finds nothing; it then waits out its minute.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    slowFetches = true;
    await runInTransaction(database.db, (tx) => stopping.enqueue(ctxOf(tx), 'test.stop', { n: 1 }));
    // The commit woke the worker, whose fetch is now under way: stop while it is.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await stopping.stop();
    const stoppedAtMs = Date.now();
    expect(handled).toHaveLength(1);
    expect((handled[0] as { endedAtMs: number }).endedAtMs).toBeLessThanOrEqual(stoppedAtMs);
    const { rows } = await database.pool.query<{ state: string }>(
      "select state from pgboss.job where name = 'test.stop'",
    );
    expect(rows.map((row) => row.state)).toEqual(['completed']);
    // Nothing runs after stop returned.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(handled).toHaveLength(1);
  }, 30_000);
});
