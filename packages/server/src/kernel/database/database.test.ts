import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { DataDirLockedError } from './data-dir-lock.js';
import { openEmbedded } from './database.js';
import { isDatabaseUnavailable, runInTransaction } from './transaction.js';

describe.runIf(TEST_DATABASE_KIND === 'embedded')('the embedded database', () => {
  it('refuses a second opener of the same data folder, and lets it in once the first closes', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'baton-lock-'));
    try {
      const first = await openEmbedded({ dataDir: dir });
      await expect(openEmbedded({ dataDir: dir })).rejects.toThrow(DataDirLockedError);
      await expect(openEmbedded({ dataDir: dir })).rejects.toThrow(/in use by another Baton process/);
      await sql`create table kept (value int)`.execute(first.db);
      await sql`insert into kept values (42)`.execute(first.db);
      await first.close();

      const second = await openEmbedded({ dataDir: dir });
      const { rows } = await sql<{ value: number }>`select value from kept`.execute(second.db);
      expect(rows).toEqual([{ value: 42 }]);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe(`the database (${TEST_DATABASE_KIND})`, async () => {
  const database = await createTestDatabase();
  afterAll(() => database.close());

  it('parses int8 to bigint, so counters and money never pass through a float', async () => {
    const { rows } = await sql<{ big: bigint }>`select 9007199254740993::int8 as big`.execute(database.db);
    expect(rows[0]?.big).toBe(9007199254740993n);
  });

  it('keeps the event log and the audit log append-only', async () => {
    await runInTransaction(database.db, async (tx) => {
      await sql`insert into events (id, type, subject_id, data, actor_kind, occurred_at)
                values ('evt_test', 'test.done', 'x', '{}', 'system', now())`.execute(tx);
      await sql`insert into audit_records (id, occurred_at, actor_kind, action, outcome)
                values ('aud_test', now(), 'system', 'test.act', 'succeeded')`.execute(tx);
    });
    for (const statement of [
      sql`update events set type = 'forged' where id = 'evt_test'`,
      sql`delete from events where id = 'evt_test'`,
      sql`truncate events`,
      sql`update audit_records set outcome = 'denied' where id = 'aud_test'`,
      sql`delete from audit_records where id = 'aud_test'`,
    ]) {
      await expect(statement.execute(database.db)).rejects.toThrow(/append-only/);
    }
    const { rows } = await sql<{ type: string }>`select type from events where id = 'evt_test'`.execute(
      database.db,
    );
    expect(rows).toEqual([{ type: 'test.done' }]);
  });

  it('runs a transaction again when the database reports a serialization failure', async () => {
    let attempts = 0;
    const result = await runInTransaction(database.db, async (tx) => {
      attempts += 1;
      await sql`select 1`.execute(tx);
      if (attempts < 3) throw Object.assign(new Error('could not serialize access'), { code: '40001' });
      return 'done';
    });
    expect(result).toBe('done');
    expect(attempts).toBe(3);
  });

  it('gives up on other errors at once', async () => {
    let attempts = 0;
    await expect(
      runInTransaction(database.db, async () => {
        attempts += 1;
        throw new Error('not retryable');
      }),
    ).rejects.toThrow('not retryable');
    expect(attempts).toBe(1);
  });

  it('tells a database out of reach from a statement that failed', async () => {
    const failed = await sql`select 1 / 0`.execute(database.db).catch((error: unknown) => error);
    expect(isDatabaseUnavailable(failed)).toBe(false);
    const duplicate = Object.assign(new Error('duplicate key value'), { code: '23505' });
    expect(isDatabaseUnavailable(duplicate)).toBe(false);
    expect(isDatabaseUnavailable('Connection terminated unexpectedly')).toBe(false);
    // What node-postgres and the server say when the connection is lost or cannot be made.
    for (const lost of [
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
      Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
      Object.assign(new Error('connection failure'), { code: '08006' }),
      Object.assign(new Error('sorry, too many clients already'), { code: '53300' }),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }),
      new Error('Connection terminated unexpectedly'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('timeout exceeded when trying to connect'),
    ]) {
      expect(isDatabaseUnavailable(lost), lost.message).toBe(true);
    }
  });
});
