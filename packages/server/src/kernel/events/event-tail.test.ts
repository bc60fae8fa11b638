import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { Context } from '../context.js';
import { runInTransaction } from '../database/transaction.js';
import type { EventId } from '../ids.js';
import { appendEvent, type LoggedEvent } from './event-log.js';
import { createEventTail, EVENT_TAIL_ATTEMPTS_MAX } from './event-tail.js';

/** Long enough that no background poll runs during a test: every delivery below comes from `sync`. */
const QUIET_POLL_MS = 60 * 60 * 1000;

describe(`the event tail (${TEST_DATABASE_KIND})`, async () => {
  const database = await createTestDatabase();
  afterAll(() => database.close());
  const logger = pino({ level: 'silent' });

  const append = (type: string, n = 0) =>
    runInTransaction(database.db, (tx) => {
      const ctx: Context = {
        db: tx,
        actor: { kind: 'system', name: 'test' },
        now: new Date(),
        requestId: null,
        ip: null,
      };
      return appendEvent(ctx, { type, subjectId: `subject-${n}`, data: { n }, audience: [] });
    });

  it('delivers, in commit order, every event after its starting point and none before', async () => {
    const before = await append('tail.order', -1);
    const tail = createEventTail({
      db: database.db,
      logger,
      pollIntervalMs: QUIET_POLL_MS,
      types: ['tail.order'],
    });
    const seen: EventId[] = [];
    tail.subscribe((events) => {
      seen.push(...events.map((event) => event.id));
    });
    // On PostgreSQL a transaction still running anywhere on the server keeps the end position
    // behind; wait until it reaches the event just written, so that it is the starting point.
    let start = await tail.endPosition();
    for (let attempt = 0; start !== before && attempt < 1000; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      start = await tail.endPosition();
    }
    expect(start).toBe(before);
    tail.start(start);
    const written: EventId[] = [];
    for (let n = 0; n < 5; n++) written.push(await append('tail.order', n));
    await tail.sync();
    expect(seen).toEqual(written);
    expect(seen).not.toContain(before);
    expect(tail.position).toBe(written.at(-1));
    // Nothing new: a second sync delivers nothing again.
    await tail.sync();
    expect(seen).toEqual(written);
    await tail.stop();
  });

  it('delivers more events than fit in one read, in several batches', async () => {
    const tail = createEventTail({
      db: database.db,
      logger,
      pollIntervalMs: QUIET_POLL_MS,
      types: ['tail.bulk'],
    });
    const batches: number[] = [];
    tail.subscribe((events) => {
      batches.push(events.length);
    });
    tail.start(await tail.endPosition());
    await runInTransaction(database.db, async (tx) => {
      const ctx: Context = {
        db: tx,
        actor: { kind: 'system', name: 'test' },
        now: new Date(),
        requestId: null,
        ip: null,
      };
      for (let n = 0; n < 600; n++) {
        await appendEvent(ctx, { type: 'tail.bulk', subjectId: 'bulk', data: { n }, audience: [] });
      }
    });
    await tail.sync();
    expect(batches.reduce((sum, size) => sum + size, 0)).toBe(600);
    expect(batches.length).toBeGreaterThan(1);
    await tail.stop();
  });

  it('delivers a batch again when a subscriber fails, and gives up on it only after repeated failures', async () => {
    const tail = createEventTail({
      db: database.db,
      logger,
      pollIntervalMs: QUIET_POLL_MS,
      types: ['tail.fail'],
    });
    tail.start(await tail.endPosition());
    const attempts: EventId[][] = [];
    let failUntil = 2;
    tail.subscribe((events: readonly LoggedEvent[]) => {
      attempts.push(events.map((event) => event.id));
      if (attempts.length <= failUntil) throw new Error('subscriber down');
    });
    const first = await append('tail.fail', 1);
    await expect(tail.sync()).rejects.toThrow('subscriber down');
    await expect(tail.sync()).rejects.toThrow('subscriber down');
    await tail.sync();
    expect(attempts).toEqual([[first], [first], [first]]);

    // A batch that fails every time is skipped after the last attempt, so later events still flow.
    failUntil = Number.POSITIVE_INFINITY;
    const poisoned = await append('tail.fail', 2);
    for (let n = 1; n < EVENT_TAIL_ATTEMPTS_MAX; n++) await expect(tail.sync()).rejects.toThrow();
    await tail.sync();
    expect(tail.position).toBe(poisoned);
    await tail.stop();
  });

  it('follows the log by itself, polling in the background', async () => {
    const tail = createEventTail({ db: database.db, logger, pollIntervalMs: 10, types: ['tail.poll'] });
    const seen: EventId[] = [];
    const arrived = new Promise<void>((resolve) => {
      tail.subscribe((events) => {
        seen.push(...events.map((event) => event.id));
        resolve();
      });
    });
    tail.start(await tail.endPosition());
    const written = await append('tail.poll');
    await arrived;
    expect(seen).toEqual([written]);
    await tail.stop();
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'waits in sync for an event that an older, still open transaction hides, and delivers both in order',
    async () => {
      const tail = createEventTail({
        db: database.db,
        logger,
        pollIntervalMs: QUIET_POLL_MS,
        types: ['tail.race'],
      });
      const seen: string[] = [];
      tail.subscribe((events) => {
        seen.push(...events.map((event) => event.id));
      });
      tail.start(await tail.endPosition());
      const slow = await database.pool.connect();
      try {
        await slow.query('begin');
        await slow.query(
          `insert into events (id, type, subject_id, data, actor_kind, occurred_at)
           values ('evt_tail_slow', 'tail.race', 'x', '{}', 'system', now())`,
        );
        const fast = await append('tail.race');
        let settled = false;
        const synced = tail.sync().then(() => {
          settled = true;
        });
        // The committed event stays unreadable behind the open transaction, so sync keeps waiting.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(settled).toBe(false);
        await slow.query('commit');
        await synced;
        expect(seen).toEqual(['evt_tail_slow', fast]);
      } finally {
        slow.release();
      }
      await tail.stop();
    },
  );
});
