import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { baton, scratchPostgres, serve, stop } from './testing/baton-process.js';
import { type PrivatePostgres, postgresBinaries, startPrivatePostgres } from './testing/private-postgres.js';

/*
 * Backup and restore (F6, the restore half): a logical backup (`pg_dump`) taken while the
 * built server takes postings is restored on a new PostgreSQL server, as after losing the old
 * one. The restored books balance and their hash chain verifies; and Baton carries on there:
 * new postings join the chain, and the event feed goes on from the last event a reader had.
 * A new server's transaction counter starts far behind the old one's, and Baton orders its
 * event log and its chain by transaction: this is what the test is about.
 */
const OPERATIONS = 600;
const CLIENTS = 8;
const PARTNERS = 10;
const SEAL_AT = 200;
const DUMP_AT = 400;
const OPERATIONS_AFTER = 200;
/** Transactions the old server has run before the test: it has been in service a while. */
const OLD_SERVER_TRANSACTIONS = 3_000;

const SERVER_ENV = { BATON_RATE_LIMIT_PER_MINUTE: '1000000' };
const run = promisify(execFile);

const bindir = process.env.BATON_TEST_DATABASE === 'postgres' ? await postgresBinaries() : null;

const query = async <T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
};

describe.runIf(bindir !== null)('backup and restore (F6)', () => {
  const source = scratchPostgres(`baton_backup_${process.pid}`);
  let target: PrivatePostgres | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await source.drop();
    await target?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('restores a backup taken under load on a new server, where the books verify and Baton carries on', {
    timeout: 300_000,
  }, async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'baton-backup-'));
    const dump = path.join(dir, 'baton.dump');
    await source.create();
    await baton('migrate', '--database-url', source.url);
    const key = async (url: string, role: string) =>
      /(baton_sk_\S+)/.exec(
        (await baton('keys', 'create', '--role', role, '--database-url', url)).stdout,
      )?.[1] as string;
    const finance = await key(source.url, 'finance');
    const admin = await key(source.url, 'admin');
    const client = new pg.Client({ connectionString: source.url });
    await client.connect();
    for (let n = 0; n < OLD_SERVER_TRANSACTIONS; n++) await client.query('select pg_current_xact_id()');
    await client.end();

    const partners = Array.from({ length: PARTNERS }, (_, n) => `ptn_${String(n).padStart(26, '0')}`);
    const call = async (base: string, secret: string, method: string, url: string, body?: unknown) => {
      const response = await fetch(`${base}${url}`, {
        method,
        headers: {
          authorization: `Bearer ${secret}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    /** Posts `count` earnings and takings from concurrent clients; calls `progress` after each answer. */
    const load = async (base: string, prefix: string, count: number, progress: (done: number) => void) => {
      let next = 0;
      let done = 0;
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          for (let n = next++; n < count; n = next++) {
            const payable = { purpose: 'partner_payable', owner_id: partners[n % PARTNERS] };
            const adjustments = { purpose: 'operator_adjustments', owner_id: 'platform' };
            const earn = Math.floor(n / PARTNERS) % 4 !== 3;
            const amount = { amount: `${1 + (n % 7)}.00`, currency: 'EUR' };
            const answer = await call(base, finance, 'POST', '/v1/ledger/transactions', {
              idempotency_key: `${prefix}-${n}`,
              cause: { kind: 'adjustment', id: `${prefix}-${n}` },
              entries: [
                { account: earn ? adjustments : payable, direction: 'debit', amount },
                { account: earn ? payable : adjustments, direction: 'credit', amount },
              ],
            });
            if (answer.status !== 201 && answer.body.code !== 'ledger.insufficient_funds')
              throw new Error(`${prefix}-${n}: ${answer.status} ${JSON.stringify(answer.body)}`);
            progress(++done);
          }
        }),
      );
    };
    const defineType = async (base: string, name: string) => {
      const answer = await call(base, admin, 'POST', '/v1/partner-types', {
        key: name,
        name,
        profile_schema: { type: 'object' },
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    };
    /** Every event of the feed after `after`, as a reader resuming from it gets them. */
    const feed = async (base: string, after: string | null) => {
      const events: { id: string; type: string }[] = [];
      let cursor = after;
      for (;;) {
        const page = await call(
          base,
          admin,
          'GET',
          `/v1/events?limit=500${cursor ? `&after=${cursor}` : ''}`,
        );
        expect(page.status, JSON.stringify(page.body)).toBe(200);
        events.push(...(page.body.data as { id: string; type: string }[]));
        if (!page.body.has_more) return events;
        cursor = events.at(-1)?.id ?? null;
      }
    };

    // The old server: postings under load; the chain sealed once, and the backup taken, meanwhile.
    const old = await serve(['--database-url', source.url], SERVER_ENV);
    await defineType(old.url, 'before-backup');
    let sealed: Promise<unknown> = Promise.resolve();
    let dumped: Promise<unknown> = Promise.resolve();
    await load(old.url, 'old', OPERATIONS, (done) => {
      if (done === SEAL_AT) sealed = baton('ledger', 'verify', '--seal', '--database-url', source.url);
      if (done === DUMP_AT)
        dumped = sealed.then(() =>
          run(path.join(bindir as string, 'pg_dump'), ['-Fc', '-f', dump, source.url]),
        );
    });
    await dumped;
    await stop(old.child);

    // The new server, restored from the backup.
    target = await startPrivatePostgres(bindir as string);
    await query(target.url, 'create database baton');
    const restored = Object.assign(new URL(target.url), { pathname: '/baton' }).toString();
    await run(path.join(bindir as string, 'pg_restore'), [
      '--exit-on-error',
      '--no-owner',
      '-d',
      restored,
      dump,
    ]);
    const [positions] = await query<{ stored: string; counter: string }>(
      restored,
      `select (select max(tx_id) from ledger_transactions)::text as stored, pg_current_xact_id()::text as counter`,
    );
    // The scenario: the backup's transactions are ahead of the new server's counter.
    expect(BigInt(positions?.stored ?? 0)).toBeGreaterThan(BigInt(positions?.counter ?? 0));

    const verified = await baton('ledger', 'verify', '--database-url', restored);
    expect(verified.stdout).toContain('The books balance');
    const count = (output: string, name: string) =>
      Number(new RegExp(`${name}\\s+(\\d+)\\n`).exec(output)?.[1]);
    const restoredCount = count(verified.stdout, 'transactions');
    expect(restoredCount).toBeGreaterThan(SEAL_AT / 2);
    expect(count(verified.stdout, 'sealed')).toBeGreaterThan(0);

    // Each restored transaction is the old server's, unchanged.
    const hashes = async (url: string) =>
      new Map(
        (
          await query<{ id: string; content_hash: string }>(
            url,
            `select id, encode(content_hash, 'hex') as content_hash from ledger_transactions`,
          )
        ).map((row) => [row.id, row.content_hash]),
      );
    const before = await hashes(source.url);
    for (const [id, hash] of await hashes(restored)) expect(before.get(id), id).toBe(hash);

    // Baton on the new server: a reader resumes the feed where it was, and new postings join the chain.
    const renewed = await serve(['--database-url', restored], SERVER_ENV);
    const seen = await feed(renewed.url, null);
    expect(seen.map((event) => event.type)).toContain('partner_type.created');
    const last = seen.at(-1)?.id as string;
    await defineType(renewed.url, 'after-restore');
    await load(renewed.url, 'new', OPERATIONS_AFTER, () => {});
    const resumed = await feed(renewed.url, last);
    expect(resumed.map((event) => event.type)).toEqual(['partner_type.created']);
    await stop(renewed.child);

    const resealed = await baton('ledger', 'verify', '--seal', '--database-url', restored);
    expect(resealed.stdout).toContain('The books balance');
    const total = count(resealed.stdout, 'transactions');
    expect(total).toBeGreaterThan(restoredCount);
    expect(count(resealed.stdout, 'sealed')).toBe(total);
  });
});
