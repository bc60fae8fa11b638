import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../kernel/actor.js';
import type { Context } from '../kernel/context.js';
import type { Executor } from '../kernel/database/database.js';
import { runInTransaction } from '../kernel/database/transaction.js';
import { isDomainError } from '../kernel/errors.js';
import { type AccountKey, type PostingInput, verifyLedger } from '../modules/ledger/index.js';
import { createTestApp } from '../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * The bank workload (L3): many workers move money between a few hundred accounts in two
 * currencies (captures into escrow, releases to partners with the platform's commission,
 * refunds and payouts with their settlements, batches), while readers total every balance
 * again and again. Every total a reader sees balances to zero per currency and shows no
 * non-negative account below zero, since each posting changes its balances at once or not at
 * all; the only refusals are for want of funds; and at the end every balance is what the
 * accepted postings say.
 */

/** Fewer in `npm test`; `npm run soak -- bank` runs RELIABILITY.md's 100,000 on both databases. */
const OPERATIONS = Number(
  process.env.BANK_OPERATIONS ?? (TEST_DATABASE_KIND === 'postgres' ? 25_000 : 10_000),
);
const WORKERS = 8;
const ORDERS = 200;
const PARTNERS = 50;
const CURRENCIES = ['EUR', 'USD'] as const;
const BATCH_SIZE = 10;

describe(`the bank workload (L3, ${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ poolSize: WORKERS + 3 });
  const db = app.baton.database.db;
  const { ledger } = app.baton.services;
  const ctx = (tx: Executor): Context => ({
    db: tx,
    actor: systemActor('bank'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  it(`keeps every total right through ${OPERATIONS} operations read concurrently`, {
    // Ten minutes for 100,000 operations, and as much more for each 100,000 more.
    timeout: 600_000 * Math.max(1, OPERATIONS / 100_000),
  }, async () => {
    const partners = Array.from({ length: PARTNERS }, (_, n) => `ptn_${String(n).padStart(26, '0')}`);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
    const account = (purpose: AccountKey['purpose'], ownerId: string, currency: string): AccountKey => ({
      purpose,
      ownerId,
      currency,
    });

    /** One operation's posting, chosen at random: what moves where. */
    function operation(n: number): PostingInput {
      const currency = pick(CURRENCIES);
      const order = `order-${Math.floor(Math.random() * ORDERS)}`;
      const partner = pick(partners);
      const amountMinor = BigInt(1 + Math.floor(Math.random() * 5_000));
      const clearing = account('provider_clearing', 'platform', currency);
      const escrow = account('customer_escrow', order, currency);
      const roll = Math.random();
      let entries: PostingInput['entries'];
      if (roll < 0.35) {
        // A capture: the provider holds the customer's money, in the order's escrow.
        entries = [
          { account: clearing, direction: 'debit', amountMinor },
          { account: escrow, direction: 'credit', amountMinor },
        ];
      } else if (roll < 0.65) {
        // A release: the partner's share and the platform's commission, from escrow.
        const commission = amountMinor / 10n;
        entries = [
          { account: escrow, direction: 'debit', amountMinor },
          {
            account: account('partner_payable', partner, currency),
            direction: 'credit',
            amountMinor: amountMinor - commission,
          },
          ...(commission > 0n
            ? [
                {
                  account: account('platform_commission', 'platform', currency),
                  direction: 'credit' as const,
                  amountMinor: commission,
                },
              ]
            : []),
        ];
      } else if (roll < 0.75) {
        entries = [
          { account: escrow, direction: 'debit', amountMinor },
          { account: account('refunds_in_transit', 'platform', currency), direction: 'credit', amountMinor },
        ];
      } else if (roll < 0.8) {
        // A refund settles: the provider paid the customer back.
        entries = [
          { account: account('refunds_in_transit', 'platform', currency), direction: 'debit', amountMinor },
          { account: clearing, direction: 'credit', amountMinor },
        ];
      } else if (roll < 0.92) {
        entries = [
          { account: account('partner_payable', partner, currency), direction: 'debit', amountMinor },
          { account: account('payouts_in_transit', 'platform', currency), direction: 'credit', amountMinor },
        ];
      } else {
        entries = [
          { account: account('payouts_in_transit', 'platform', currency), direction: 'debit', amountMinor },
          { account: clearing, direction: 'credit', amountMinor },
        ];
      }
      return { idempotencyKey: `bank-${n}`, cause: { kind: 'adjustment', id: `bank-${n}` }, entries };
    }

    // The model: each account's balance, debits positive, from the postings accepted.
    const model = new Map<string, bigint>();
    const keyOf = (ref: PostingInput['entries'][number]['account']) => {
      const key = ref as AccountKey;
      return `${key.purpose}/${key.ownerId}/${key.currency}`;
    };
    const apply = (input: PostingInput) => {
      for (const entry of input.entries) {
        const signed = entry.direction === 'debit' ? entry.amountMinor : -entry.amountMinor;
        model.set(keyOf(entry.account), (model.get(keyOf(entry.account)) ?? 0n) + signed);
      }
    };
    const failures: string[] = [];
    let refused = 0;

    let done = false;
    let reads = 0;
    const wrong: string[] = [];
    const readers = [
      (async () => {
        while (!done) {
          const { rows } = await sql<{ currency: string; total: string }>`
            select a.currency, sum(b.balance_minor)::text as total
              from ledger_balances b join ledger_accounts a on a.id = b.account_id
             group by a.currency`.execute(db);
          for (const row of rows) if (row.total !== '0') wrong.push(`${row.currency} totals ${row.total}`);
          reads++;
        }
      })(),
      (async () => {
        while (!done) {
          const { rows } = await sql<{ id: string; balance: string }>`
            select b.account_id as id, sum(b.balance_minor * b.normal_sign)::text as balance
              from ledger_balances b
             where b.non_negative
             group by b.account_id
            having sum(b.balance_minor * b.normal_sign) < 0`.execute(db);
          for (const row of rows) wrong.push(`${row.id} is ${row.balance}`);
          reads++;
        }
      })(),
    ];

    let next = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (next < OPERATIONS) {
          const start = next;
          // One operation in ten is a batch of ten, each item standing alone.
          const batched = Math.random() < 0.1 && start + BATCH_SIZE <= OPERATIONS;
          next += batched ? BATCH_SIZE : 1;
          const inputs = Array.from({ length: batched ? BATCH_SIZE : 1 }, (_, i) => operation(start + i));
          try {
            const results = await runInTransaction(db, (tx) =>
              batched
                ? ledger.postBatch(ctx(tx), inputs, { atomic: false })
                : ledger
                    .post(ctx(tx), inputs[0] as PostingInput)
                    .then((result) => [{ status: 'posted' as const, transaction: result.transaction }]),
            );
            results.forEach((result, index) => {
              if (result.status === 'posted') apply(inputs[index] as PostingInput);
              else if (result.status === 'rejected' && result.error.code === 'ledger.insufficient_funds')
                refused++;
              else failures.push(result.status === 'rejected' ? result.error.code : result.status);
            });
          } catch (error) {
            if (isDomainError(error) && error.code === 'ledger.insufficient_funds') refused++;
            else failures.push(isDomainError(error) ? error.code : String(error));
          }
        }
      }),
    );
    done = true;
    await Promise.all(readers);

    expect(failures).toEqual([]);
    expect(wrong).toEqual([]);
    expect(reads).toBeGreaterThan(10);
    // Enough of each kind happened, and enough were refused to have tested the guard.
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThan(OPERATIONS / 2);

    // Every balance is what the accepted postings say.
    const { rows } = await sql<{ key: string; balance: string }>`
      select a.purpose || '/' || a.owner_id || '/' || a.currency as key,
             coalesce(sum(b.balance_minor), 0)::text as balance
        from ledger_accounts a left join ledger_balances b on b.account_id = a.id
       group by a.purpose, a.owner_id, a.currency`.execute(db);
    const actual = new Map(rows.map((row) => [row.key, BigInt(row.balance)]));
    for (const [key, balance] of model) expect(actual.get(key) ?? 0n, key).toBe(balance);
    const report = await runInTransaction(db, (tx) => verifyLedger(tx));
    expect(report.problems).toEqual([]);
  });
});
