import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { newId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { sealChain, verifyLedger } from './index.js';

describe(`ledger smoke (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ poolSize: 10 });
  const db = app.baton.database.db;
  const ledger = app.baton.services.ledger;
  const ctx = (tx: typeof db) => ({
    db: tx,
    actor: systemActor('test'),
    now: new Date(),
    requestId: null,
    ip: null,
  });

  it('posts, replays, refuses overdraft, verifies', async () => {
    const order = newId('alc');
    const capture = await runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `capture:${order}`,
        cause: { kind: 'payment', id: order },
        entries: [
          {
            account: { purpose: 'provider_clearing', ownerId: 'platform', currency: 'EUR' },
            direction: 'debit',
            amountMinor: 10000n,
          },
          {
            account: { purpose: 'customer_escrow', ownerId: order, currency: 'EUR' },
            direction: 'credit',
            amountMinor: 10000n,
          },
        ],
      }),
    );
    expect(capture.replayed).toBe(false);
    const again = await runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `capture:${order}`,
        cause: { kind: 'payment', id: order },
        entries: [
          {
            account: { purpose: 'provider_clearing', ownerId: 'platform', currency: 'EUR' },
            direction: 'debit',
            amountMinor: 10000n,
          },
          {
            account: { purpose: 'customer_escrow', ownerId: order, currency: 'EUR' },
            direction: 'credit',
            amountMinor: 10000n,
          },
        ],
      }),
    );
    expect(again.replayed).toBe(true);
    expect(again.transaction.id).toBe(capture.transaction.id);
    const escrow = await runInTransaction(db, (tx) =>
      ledger.balance(ctx(tx), { purpose: 'customer_escrow', ownerId: order, currency: 'EUR' }),
    );
    expect(escrow.balanceMinor).toBe(10000n);
    const partner = newId('ptn');
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, n) =>
        runInTransaction(db, (tx) =>
          ledger.post(ctx(tx), {
            idempotencyKey: `release:${order}:${n}`,
            cause: { kind: 'leg', id: `${order}:${n}` },
            entries: [
              {
                account: { purpose: 'customer_escrow', ownerId: order, currency: 'EUR' },
                direction: 'debit',
                amountMinor: 1000n,
              },
              {
                account: { purpose: 'partner_payable', ownerId: partner, currency: 'EUR' },
                direction: 'credit',
                amountMinor: 900n,
              },
              {
                account: { purpose: 'platform_commission', ownerId: 'platform', currency: 'EUR' },
                direction: 'credit',
                amountMinor: 100n,
              },
            ],
          }),
        ),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    const rejected = results
      .filter((r) => r.status === 'rejected')
      .map((r) => (r as PromiseRejectedResult).reason.code);
    expect(new Set(rejected)).toEqual(new Set(['ledger.insufficient_funds']));
    await runInTransaction(db, (tx) => sealChain(tx, new Date()));
    const report = await runInTransaction(db, (tx) => verifyLedger(tx));
    expect(report.problems).toEqual([]);
    expect(report.sealed).toBe(11);
  });
});
