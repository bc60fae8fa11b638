import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { baton, runBaton, scratchPostgres, serve, stop } from './testing/baton-process.js';

/* The `baton` command as a user runs it: the built program in its own process. */

const onPostgres = process.env.BATON_TEST_DATABASE === 'postgres';

describe.runIf(!onPostgres)('the baton command on the embedded database', () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'baton-cli-'));
    dirs.push(dir);
    return path.join(dir, 'data');
  };
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('explains its commands', async () => {
    const { stdout } = await baton('--help');
    for (const command of ['serve', 'demo', 'migrate', 'keys']) expect(stdout).toContain(command);
    expect((await baton('serve', '--help')).stdout).toContain('--empty');
    const demo = await baton('demo', '--help');
    for (const flag of ['--orders', '--partners', '--seed', '--data-dir', '--database-url'])
      expect(demo.stdout).toContain(flag);
    const keys = await baton('keys', 'create', '--help');
    expect(keys.stdout).toContain('--role');
    expect(keys.stdout).toContain('admin');
  });

  it('serves a new embedded database with an admin key printed once, and locks its data folder', {
    timeout: 180_000,
  }, async () => {
    const dataDir = await tempDir();
    const server = await serve(['--data-dir', dataDir]);
    try {
      const secret = /(baton_sk_\S+)/.exec(server.output())?.[1];
      expect(secret).toBeDefined();
      const me = await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
      expect(me.status).toBe(200);
      expect(await me.json()).toMatchObject({ tenant_kind: 'operator', role: 'admin' });

      // A second process on the same folder is refused with a clear message, and writes nothing.
      const second = baton('migrate', '--data-dir', dataDir);
      await expect(second).rejects.toMatchObject({ code: 1 });
      await expect(second).rejects.toMatchObject({
        stderr: expect.stringContaining('in use by another Baton process'),
      });
    } finally {
      await stop(server.child);
    }

    // Started again, the database is no longer new: no second key is printed.
    const again = await serve(['--data-dir', dataDir]);
    try {
      expect(again.output()).not.toContain('baton_sk_');
    } finally {
      await stop(again.child);
    }
  });

  it('loads the demo into a new database, prints its summary, and refuses to load it twice', {
    timeout: 180_000,
  }, async () => {
    const dataDir = await tempDir();
    const { stdout } = await baton('demo', '--orders', '10', '--partners', '20', '--data-dir', dataDir);
    expect(stdout).toMatch(/Orders placed\s+10\n/);
    for (const figure of [
      'GMV',
      'Refunds',
      'Platform revenue',
      'Take rate',
      'Fill rate',
      'On-time rate',
      'Partner earnings',
      'Subsidy spend',
    ]) {
      expect(stdout).toMatch(new RegExp(`\\n  ${figure}\\s+\\S`));
    }
    // Every rate says what it is.
    expect(stdout).toContain('platform revenue ÷ (GMV − refunds)');
    expect(stdout).toContain('orders completed ÷ customer requests');
    expect(stdout).toContain('legs delivered by their due time ÷ legs delivered');
    expect(stdout).toContain(`baton serve --data-dir ${dataDir}`);
    const operator = /operator \(admin\)\s+(baton_sk_\S+)/.exec(stdout)?.[1];
    expect(operator).toBeDefined();

    await expect(baton('demo', '--data-dir', dataDir)).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('only on an empty database'),
    });

    // Served, with the demo on, the database is not new: nothing is loaded again and no key is made;
    // the demo's history is there to explore with the key it printed.
    const server = await serve(['--data-dir', dataDir], { BATON_DEMO: 'on' });
    try {
      expect(server.output()).not.toContain('baton_sk_');
      const orders = await fetch(`${server.url}/v1/orders?limit=100`, {
        headers: { authorization: `Bearer ${operator}` },
      });
      expect(((await orders.json()) as { data: unknown[] }).data).toHaveLength(10);
    } finally {
      await stop(server.child);
    }
  });

  it('starts a new database empty with --empty, even with the demo on', async () => {
    const dataDir = await tempDir();
    const server = await serve(['--data-dir', dataDir, '--empty'], { BATON_DEMO: 'on' });
    try {
      expect(server.output()).not.toContain('demo');
      const secret = /(baton_sk_\S+)/.exec(server.output())?.[1];
      const offerings = await fetch(`${server.url}/v1/offerings`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(await offerings.json()).toMatchObject({ data: [] });
    } finally {
      await stop(server.child);
    }
  });

  it('migrates, and creates operator keys that work', { timeout: 180_000 }, async () => {
    const dataDir = await tempDir();
    const migrated = await baton('migrate', '--data-dir', dataDir);
    expect(migrated.stdout).toContain('participants/0001_partners_and_customers');
    expect((await baton('migrate', '--data-dir', dataDir)).stdout).toContain('Already up to date');

    const created = await baton('keys', 'create', '--role', 'finance', '--data-dir', dataDir);
    const secret = /(baton_sk_\S+)/.exec(created.stdout)?.[1];
    expect(secret).toBeDefined();
    const server = await serve(['--data-dir', dataDir]);
    try {
      const me = await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
      expect(await me.json()).toMatchObject({ role: 'finance' });
    } finally {
      await stop(server.child);
    }
  });

  it('refuses a bad setting or role with a message that names it', async () => {
    await expect(baton('serve', '--port', 'eighty')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('BATON_PORT'),
    });
    await expect(baton('keys', 'create', '--role', 'emperor')).rejects.toMatchObject({
      stderr: expect.stringContaining('emperor'),
    });
    await expect(baton('demo', '--partners', '5')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('Not a whole number from 11'),
    });
    await expect(runBaton(['serve'], { BATON_DEMO: 'maybe' })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('BATON_DEMO: must be on or off'),
    });
  });
});

describe.runIf(onPostgres)('the baton command on PostgreSQL', () => {
  const database = scratchPostgres(`baton_cli_${process.pid}`);
  const { url } = database;
  afterAll(() => database.drop());

  it('migrates, creates a key and serves with --database-url', async () => {
    await database.create();
    expect((await baton('migrate', '--database-url', url)).stdout).toContain(
      'kernel/0001_events_audit_idempotency',
    );
    const created = await baton('keys', 'create', '--role', 'ops', '--database-url', url);
    const secret = /(baton_sk_\S+)/.exec(created.stdout)?.[1];
    const server = await serve(['--database-url', url]);
    try {
      // On PostgreSQL no key is created by itself: the installer makes one with `keys create`.
      expect(server.output()).not.toContain('new database');
      expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({
        status: 'ok',
        database: 'postgres',
      });
      const me = await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${secret}` } });
      expect(await me.json()).toMatchObject({ role: 'ops' });
    } finally {
      await stop(server.child);
    }
  });
});
