import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { Context } from '../context.js';
import { realignTransactionPositions } from '../database/positions.js';
import { runInTransaction } from '../database/transaction.js';
import type { EventId } from '../ids.js';
import { appendEvent, readEvents } from './event-log.js';

describe(`the event log (${TEST_DATABASE_KIND})`, async () => {
  const database = await createTestDatabase();
  afterAll(() => database.close());

  const append = (type: string, audience: string[]) =>
    runInTransaction(database.db, (tx) => {
      const ctx: Context = {
        db: tx,
        actor: { kind: 'system', name: 'test' },
        now: new Date(),
        requestId: null,
        ip: null,
      };
      return appendEvent(ctx, { type, subjectId: 'subject', data: { type }, audience });
    });

  it('reads every event once, in commit order, page by page', async () => {
    const written: EventId[] = [];
    for (let i = 0; i < 7; i++) written.push(await append('test.paged', []));
    const read: EventId[] = [];
    let after: EventId | null = null;
    for (;;) {
      const page = await readEvents(database.db, { viewer: 'all', after, limit: 3, types: ['test.paged'] });
      if (!page) throw new Error('cursor refused');
      read.push(...page.items.map((event) => event.id));
      if (!page.hasMore) break;
      after = page.items.at(-1)?.id ?? null;
    }
    expect(read).toEqual(written);
  });

  it('shows a reader only the events of its audience, and refuses a cursor it cannot see', async () => {
    const mine = await append('test.audience', ['ptn_a']);
    const group = await append('test.audience', ['partner_type:courier']);
    const theirs = await append('test.audience', ['ptn_b']);
    const page = await readEvents(database.db, {
      viewer: ['ptn_a', 'partner_type:courier'],
      after: null,
      limit: 100,
      types: ['test.audience'],
    });
    expect(page?.items.map((event) => event.id)).toEqual([mine, group]);
    expect(await readEvents(database.db, { viewer: ['ptn_a'], after: theirs, limit: 10 })).toBeNull();
    expect(
      await readEvents(database.db, { viewer: 'all', after: 'evt_missing' as EventId, limit: 10 }),
    ).toBeNull();
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'never lets a reader skip an event whose transaction commits after a later one',
    async () => {
      const slow = await database.pool.connect();
      try {
        await slow.query('begin');
        await slow.query(
          `insert into events (id, type, subject_id, data, actor_kind, occurred_at)
           values ('evt_slow', 'test.race', 'x', '{}', 'system', now())`,
        );
        const fast = await append('test.race', []);

        // The slow transaction is still open: the later, committed event must wait behind it.
        const during = await readEvents(database.db, {
          viewer: 'all',
          after: null,
          limit: 100,
          types: ['test.race'],
        });
        expect(during?.items).toEqual([]);

        await slow.query('commit');
        const afterCommit = await readEvents(database.db, {
          viewer: 'all',
          after: null,
          limit: 100,
          types: ['test.race'],
        });
        expect(afterCommit?.items.map((event) => event.id)).toEqual(['evt_slow', fast]);
      } finally {
        slow.release();
      }
    },
  );
  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'is not held back by a long transaction in another database on the same server',
    async () => {
      const elsewhere = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await elsewhere.connect();
      try {
        await elsewhere.query('begin');
        await elsewhere.query('select pg_current_xact_id()');
        const id = await append('test.elsewhere', []);
        const page = await readEvents(database.db, {
          viewer: 'all',
          after: null,
          limit: 10,
          types: ['test.elsewhere'],
        });
        expect(page?.items.map((event) => event.id)).toEqual([id]);
      } finally {
        await elsewhere.query('rollback').catch(() => {});
        await elsewhere.end();
      }
    },
  );

  it('goes on after a restore on a server whose transaction counter is behind the positions restored', async () => {
    // What a restore on a new server leaves: an event positioned far ahead of the counter.
    await sql`
      insert into events (id, tx_id, type, subject_id, data, actor_kind, occurred_at)
      values ('evt_restored', pg_current_xact_id()::text::bigint + 1000000, 'test.restored', 'x', '{}', 'system', now())
    `.execute(database.db);
    const before = await append('test.restored', []);
    const read = async () =>
      (
        await readEvents(database.db, { viewer: 'all', after: null, limit: 100, types: ['test.restored'] })
      )?.items.map((event) => event.id);
    // Unrealigned, the restored event is beyond the horizon and the new one sorts before it.
    expect(await read()).toEqual([before]);

    const moved = await realignTransactionPositions(database.db);
    expect(moved).toBeGreaterThan(999_000n);
    const after = await append('test.restored', []);
    expect(await read()).toEqual([before, 'evt_restored', after]);
    const resumed = await readEvents(database.db, {
      viewer: 'all',
      after: 'evt_restored' as EventId,
      limit: 100,
      types: ['test.restored'],
    });
    expect(resumed?.items.map((event) => event.id)).toEqual([after]);

    // Realigned once: a second start finds nothing to move, and positions keep growing.
    expect(await realignTransactionPositions(database.db)).toBe(0n);
    const later = await append('test.restored', []);
    expect(await read()).toEqual([before, 'evt_restored', after, later]);
  });
});
