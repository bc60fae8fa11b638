import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createBaton, loadConfig, openEmbedded } from '@baton/server';
import { afterAll, describe, expect, it } from 'vitest';

/*
 * `baton ledger verify` as an operator runs it: the built program in its own process, on an
 * embedded database that this test writes to (and tampers with) in between.
 */
const BATON = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const run = promisify(execFile);

async function baton(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { DATABASE_URL: _ignored, ...env } = process.env;
  try {
    const { stdout, stderr } = await run(process.execPath, [BATON, ...args], {
      env: { ...env, BATON_LOG_LEVEL: 'warn' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** Opens the data folder in this process, runs `work` with Baton on it, and closes it again. */
async function withBaton(
  dataDir: string,
  work: (baton: Awaited<ReturnType<typeof createBaton>>) => Promise<void>,
): Promise<void> {
  const database = await openEmbedded({ dataDir });
  const app = await createBaton({
    config: loadConfig({ BATON_LOG_LEVEL: 'silent', BATON_DATA_DIR: dataDir }, {}),
    database,
    workJobs: false,
  });
  try {
    await work(app);
  } finally {
    await app.close();
    await database.close();
  }
}

describe.runIf(process.env.BATON_TEST_DATABASE !== 'postgres')('baton ledger verify', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('summarises clean books, seals with --seal, and exits 1 naming what was tampered with', {
    timeout: 180_000,
  }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'baton-ledger-'));
    dirs.push(dir);
    const dataDir = path.join(dir, 'data');

    const empty = await baton('ledger', 'verify', '--data-dir', dataDir);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toMatch(/transactions\s+0\n/);
    expect(empty.stdout).toMatch(/problems\s+0\n/);

    let accountId = '';
    await withBaton(dataDir, async (app) => {
      const ctx = (tx: typeof app.database.db) => ({
        db: tx,
        actor: { kind: 'system', name: 'test' } as const,
        now: new Date(),
        requestId: null,
        ip: null,
      });
      const result = await app.database.db.transaction().execute((tx) =>
        app.services.ledger.post(ctx(tx), {
          idempotencyKey: 'cli-verify:1',
          cause: { kind: 'adjustment', id: 'cli-verify' },
          entries: [
            {
              account: { purpose: 'operator_adjustments', ownerId: 'platform', currency: 'EUR' },
              direction: 'debit',
              amountMinor: 1250n,
            },
            {
              account: { purpose: 'platform_services', ownerId: 'platform', currency: 'EUR' },
              direction: 'credit',
              amountMinor: 1250n,
            },
          ],
        }),
      );
      accountId = result.transaction.entries[1]?.accountId ?? '';
    });

    const unsealed = await baton('ledger', 'verify', '--data-dir', dataDir);
    expect(unsealed.code, unsealed.stderr).toBe(0);
    expect(unsealed.stdout).toMatch(/transactions\s+1\n/);
    expect(unsealed.stdout).toMatch(/sealed\s+0\n/);

    const sealed = await baton('ledger', 'verify', '--seal', '--data-dir', dataDir);
    expect(sealed.code, sealed.stderr).toBe(0);
    expect(sealed.stdout).toContain('Sealed 1 transaction.');
    expect(sealed.stdout).toMatch(/sealed\s+1\n/);
    expect(sealed.stdout).toMatch(/accounts\s+2\n/);
    expect(sealed.stdout).toContain('The books balance');

    // A balance row changed behind the ledger's back.
    await withBaton(dataDir, async (app) => {
      await app.database.db
        .updateTable('ledger_balances')
        .set({ balance_minor: -1n })
        .where('account_id', '=', accountId)
        .where('slot', '=', 0)
        .execute();
    });
    const tampered = await baton('ledger', 'verify', '--data-dir', dataDir);
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toMatch(/problems\s+1\n/);
    expect(tampered.stdout).toContain(`balance         ${accountId} keeps`);
  });

  it('explains itself', async () => {
    const help = await baton('ledger', 'verify', '--help');
    expect(help.stdout).toContain('--seal');
    expect(help.stdout).toContain('--data-dir');
  });
});
