import { fc, test } from '@fast-check/vitest';
import { sql } from 'kysely';
import { describe, expect } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Executor } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { type AccountId, newId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { type AccountKey, type PostingInput, verifyLedger } from './index.js';

/*
 * Whatever sequence of postings arrives (valid or not, retried or not), the books stay whole:
 * every currency sums to zero, every kept balance equals the sum of its entries, no
 * non-negative account is below zero, and verify finds nothing.
 */
describe(`ledger invariants under random postings (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;
  const ledger = app.baton.services.ledger;
  const ctx = (tx: Executor): Context => ({
    db: tx,
    actor: systemActor('property'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  const partners = [newId('ptn'), newId('ptn'), newId('ptn')];
  const keys: AccountKey[] = [
    { purpose: 'provider_clearing', ownerId: 'platform', currency: 'EUR' },
    { purpose: 'platform_commission', ownerId: 'platform', currency: 'EUR' },
    { purpose: 'operator_adjustments', ownerId: 'platform', currency: 'EUR' },
    { purpose: 'payouts_in_transit', ownerId: 'platform', currency: 'EUR' },
    ...partners.map((ownerId): AccountKey => ({ purpose: 'partner_payable', ownerId, currency: 'EUR' })),
    { purpose: 'customer_escrow', ownerId: 'order-1', currency: 'EUR' },
    { purpose: 'provider_clearing', ownerId: 'platform', currency: 'USD' },
    { purpose: 'operator_adjustments', ownerId: 'platform', currency: 'USD' },
    { purpose: 'partner_payable', ownerId: partners[0] as string, currency: 'USD' },
  ];

  const leg = fc.record({
    from: fc.nat({ max: keys.length - 1 }),
    to: fc.nat({ max: keys.length - 1 }),
    amount: fc.bigInt({ min: 1n, max: 5000n }),
  });
  const posting = fc.record({
    legs: fc.array(leg, { minLength: 1, maxLength: 3 }),
    // Some postings are broken on purpose: one side short by a unit, or a foreign-currency leg.
    fault: fc.constantFrom('none', 'none', 'none', 'short', 'zero'),
    retry: fc.boolean(),
  });
  let run = 0;

  test.prop([fc.array(posting, { minLength: 1, maxLength: 12 })], { numRuns: 100 })(
    'keeps every invariant',
    async (postings) => {
      run++;
      const inputs: PostingInput[] = postings.map((p, n) => {
        const entries = p.legs.flatMap(({ from, to, amount }) => [
          { account: keys[from] as AccountKey, direction: 'debit' as const, amountMinor: amount },
          { account: keys[to] as AccountKey, direction: 'credit' as const, amountMinor: amount },
        ]);
        const last = entries.at(-1) as (typeof entries)[number];
        if (p.fault === 'short')
          entries[entries.length - 1] = { ...last, amountMinor: last.amountMinor - 1n };
        if (p.fault === 'zero') entries[0] = { ...(entries[0] as (typeof entries)[number]), amountMinor: 0n };
        return {
          idempotencyKey: `prop:${run}:${n}`,
          cause: { kind: 'adjustment', id: `prop:${run}` },
          entries,
        };
      });
      for (const [n, input] of inputs.entries()) {
        const attempts = postings[n]?.retry ? 2 : 1;
        for (let attempt = 0; attempt < attempts; attempt++) {
          try {
            const result = await runInTransaction(db, (tx) => ledger.post(ctx(tx), input));
            expect(result.replayed).toBe(attempt > 0);
          } catch (error) {
            expect(['ledger.insufficient_funds', 'ledger.entries_must_balance']).toContain(
              (error as { code?: string }).code,
            );
          }
        }
      }

      const totals = await sql<{ currency: string; total: string }>`
        select currency, sum(amount_minor)::text as total from ledger_entries group by currency`.execute(db);
      for (const row of totals.rows) expect(row.total, row.currency).toBe('0');
      const accounts = await db.selectFrom('ledger_accounts').select(['id', 'non_negative']).execute();
      for (const account of accounts) {
        const kept = await runInTransaction(db, (tx) => ledger.balance(ctx(tx), account.id as AccountId));
        const fromEntries = await runInTransaction(db, (tx) =>
          ledger.balance(ctx(tx), account.id as AccountId, { asOf: new Date(8.64e15) }),
        );
        expect(kept.balanceMinor).toBe(fromEntries.balanceMinor);
        if (account.non_negative) expect(kept.balanceMinor).toBeGreaterThanOrEqual(0n);
      }
      const report = await runInTransaction(db, (tx) => verifyLedger(tx));
      expect(report.problems).toEqual([]);
    },
  );
});
