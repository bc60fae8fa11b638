import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Executor } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { DomainError } from '../../kernel/errors.js';
import { type AccountId, newId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { contentHashOf, fingerprintOf } from './domain/posting.js';
import { type AccountKey, createLedgerService, type PostingInput, sealChain, verifyLedger } from './index.js';
import { postTransactions } from './store/ledger-store.js';
import { ledgerMigrations } from './store/migrations.js';

/*
 * The ledger through its service and straight against its tables: the database's own guards
 * (double entry, append-only, non-negative balances), idempotency, concurrency on a
 * non-negative account, balances in time, statements, reversals and the hash chain.
 */
describe(`ledger (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ poolSize: 20 });
  const db = app.baton.database.db;
  const ledger = app.baton.services.ledger;
  const ctx = (tx: Executor, now = app.clock.now()): Context => ({
    db: tx,
    actor: systemActor('test'),
    now,
    requestId: null,
    ip: null,
  });
  const inTx = <T>(work: (c: Context) => Promise<T>, now?: Date) =>
    runInTransaction(db, (tx) => work(ctx(tx, now)));

  const platform = (purpose: AccountKey['purpose'], currency = 'EUR'): AccountKey => ({
    purpose,
    ownerId: 'platform',
    currency,
  });
  const payable = (partner: string, currency = 'EUR'): AccountKey => ({
    purpose: 'partner_payable',
    ownerId: partner,
    currency,
  });
  const move = (
    key: string,
    from: AccountKey | AccountId,
    to: AccountKey | AccountId,
    amountMinor: bigint,
  ): PostingInput => ({
    idempotencyKey: key,
    cause: { kind: 'adjustment', id: key },
    entries: [
      { account: from, direction: 'debit', amountMinor },
      { account: to, direction: 'credit', amountMinor },
    ],
  });
  /** Credits a partner's payable from the operator's adjustments account. */
  const fund = (partner: string, amountMinor: bigint, key = `fund:${partner}:${amountMinor}`) =>
    inTx((c) => ledger.post(c, move(key, platform('operator_adjustments'), payable(partner), amountMinor)));
  const codeOf = (error: unknown) => (error as { code?: string }).code;
  const failure = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (error) {
      return error as Error & { code?: string; details?: Record<string, unknown> };
    }
    throw new Error('expected a failure');
  };
  const count = async (table: 'ledger_transactions' | 'ledger_entries') =>
    Number(
      (await db.selectFrom(table).select(sql<string>`count(*)::text`.as('n')).executeTakeFirstOrThrow()).n,
    );
  const balance = async (ref: AccountKey | AccountId, asOf?: Date) =>
    (await inTx((c) => ledger.balance(c, ref, asOf ? { asOf } : {}))).balanceMinor;
  const clean = async () => {
    const report = await inTx((c) => verifyLedger(c.db));
    expect(report.problems).toEqual([]);
    return report;
  };
  /** Runs `work` with every trigger off, as a superuser repairing (or tampering with) the books would. */
  const asSuperuser = (work: (tx: Executor) => Promise<unknown>) =>
    db.transaction().execute(async (tx) => {
      await sql`set local session_replication_role = replica`.execute(tx);
      await work(tx);
    });

  describe('the database refuses what double entry forbids (M3, M2)', () => {
    const sqlState = async (work: (tx: Executor) => Promise<unknown>) => {
      const error = await failure(db.transaction().execute(work));
      return codeOf(error);
    };
    interface RawEntry {
      readonly txn: string;
      readonly account: string;
      readonly currency: string;
      readonly amount: bigint;
    }
    /** Writes transactions and entries in one statement, as the ledger's store does. */
    const rawWrite = async (
      tx: Executor,
      transactions: readonly string[],
      entries: readonly RawEntry[],
      firstPosition = 0,
    ) => {
      await sql`
        with t as (
          insert into ledger_transactions (id, idempotency_key, description, cause_kind, cause_id, metadata, posted_at, fingerprint, content_hash)
          select id, 'raw:' || id, 'raw', 'adjustment', 'raw', '{}'::jsonb, now(), '\\x00'::bytea, '\\x00'::bytea
          from unnest(${[...transactions]}::text[]) as id
        )
        insert into ledger_entries (transaction_id, position, account_id, currency, amount_minor, posted_at)
        select txn, position - 1 + ${firstPosition}, account, currency, amount, now()
        from unnest(
          ${entries.map((e) => e.txn)}::text[],
          ${entries.map((e) => e.account)}::text[],
          ${entries.map((e) => e.currency)}::text[],
          ${entries.map((e) => e.amount.toString())}::int8[]
        ) with ordinality as e(txn, account, currency, amount, position)`.execute(tx);
    };

    it('refuses an unbalanced transaction, an entry in another currency than its account, and a lone entry, written directly', async () => {
      const eur = (await inTx((c) => ledger.account(c, platform('provider_clearing')))).id;
      const revenue = (await inTx((c) => ledger.account(c, platform('platform_commission')))).id;
      const entry = (txn: string, account: string, amount: bigint, currency = 'EUR'): RawEntry => ({
        txn,
        account,
        currency,
        amount,
      });
      const before = {
        transactions: await count('ledger_transactions'),
        entries: await count('ledger_entries'),
      };
      const refused = async (expected: string, work: (tx: Executor, id: string) => Promise<unknown>) => {
        const id = newId('txn');
        expect(await sqlState((tx) => work(tx, id))).toBe(expected);
      };

      // A well-formed transaction written directly is accepted (and rolled back, since it has no
      // balance upkeep): the cases below fail for their own reason.
      const accepted = new Error('accepted');
      const wellFormed = await failure(
        db.transaction().execute(async (tx) => {
          const txn = newId('txn');
          await rawWrite(tx, [txn], [entry(txn, eur, 1000n), entry(txn, revenue, -1000n)]);
          throw accepted;
        }),
      );
      expect(wellFormed).toBe(accepted);

      await refused('23514', (tx, txn) =>
        rawWrite(tx, [txn], [entry(txn, eur, 1000n), entry(txn, revenue, -999n)]),
      );
      await refused('23503', (tx, txn) =>
        rawWrite(tx, [txn], [entry(txn, eur, 1000n, 'USD'), entry(txn, revenue, -1000n, 'USD')]),
      );
      await refused('23503', (tx, txn) =>
        rawWrite(tx, [txn], [entry(txn, eur, 1000n), entry(txn, newId('acc'), -1000n)]),
      );
      await refused('23514', (tx, txn) => rawWrite(tx, [txn], [entry(txn, eur, 1000n)]));
      // A transaction without entries balances trivially, but is not a transaction.
      await refused('23514', (tx, txn) => rawWrite(tx, [txn], []));
      // Entries for a transaction that does not exist.
      await refused('23503', (tx, txn) =>
        rawWrite(tx, [], [entry(txn, eur, 1000n), entry(txn, revenue, -1000n)]),
      );
      // Two transactions of one statement that balance only together.
      await refused('23514', (tx, txn) => {
        const other = newId('txn');
        return rawWrite(tx, [txn, other], [entry(txn, eur, 1000n), entry(other, revenue, -1000n)]);
      });

      expect(await count('ledger_transactions')).toBe(before.transactions);
      expect(await count('ledger_entries')).toBe(before.entries);
    });

    it('refuses a transaction whose entries come in more than one statement, even when each part balances', async () => {
      const eur = (await inTx((c) => ledger.account(c, platform('provider_clearing')))).id;
      const revenue = (await inTx((c) => ledger.account(c, platform('platform_commission')))).id;
      const pair = (txn: string, amount: bigint): RawEntry[] => [
        { txn, account: eur, currency: 'EUR', amount },
        { txn, account: revenue, currency: 'EUR', amount: -amount },
      ];
      const before = {
        transactions: await count('ledger_transactions'),
        entries: await count('ledger_entries'),
      };

      // The transaction first, its entries in the next statement: the transaction has no entries
      // when its statement ends.
      expect(
        await sqlState(async (tx) => {
          const txn = newId('txn');
          await rawWrite(tx, [txn], []);
          await rawWrite(tx, [], pair(txn, 1000n));
        }),
      ).toBe('23514');
      // Halves that balance only together, each in its own statement.
      expect(
        await sqlState(async (tx) => {
          const txn = newId('txn');
          await rawWrite(tx, [txn], [{ txn, account: eur, currency: 'EUR', amount: 1000n }]);
          await rawWrite(tx, [], [{ txn, account: revenue, currency: 'EUR', amount: -1000n }]);
        }),
      ).toBe('23514');
      // A balanced pair added to a balanced transaction, in the same database transaction.
      expect(
        await sqlState(async (tx) => {
          const txn = newId('txn');
          await rawWrite(tx, [txn], pair(txn, 1000n));
          await rawWrite(tx, [], pair(txn, 5n), 2);
        }),
      ).toBe('23514');
      expect(await count('ledger_transactions')).toBe(before.transactions);
      expect(await count('ledger_entries')).toBe(before.entries);

      // A balanced pair added to a committed transaction, through the service's own posting.
      const partner = newId('ptn');
      const { transaction } = await fund(partner, 500n);
      const payableId = transaction.entries[1]?.accountId as string;
      expect(
        await sqlState((tx) =>
          rawWrite(
            tx,
            [],
            [
              { txn: transaction.id, account: eur, currency: 'EUR', amount: 5n },
              { txn: transaction.id, account: payableId, currency: 'EUR', amount: -5n },
            ],
            2,
          ),
        ),
      ).toBe('23514');
      expect((await inTx((c) => ledger.transaction(c, transaction.id))).entries).toHaveLength(2);
      await clean();
    });

    it('refuses UPDATE, DELETE and TRUNCATE of transactions, entries and the chain', async () => {
      const partner = newId('ptn');
      await fund(partner, 500n);
      await inTx((c) => sealChain(c.db, c.now));
      for (const statement of [
        sql`update ledger_entries set amount_minor = amount_minor * 2`,
        sql`delete from ledger_entries`,
        sql`truncate ledger_entries`,
        sql`update ledger_transactions set description = 'changed'`,
        sql`delete from ledger_transactions`,
        sql`truncate ledger_transactions cascade`,
        sql`update ledger_chain set chain_hash = '\\x00'::bytea`,
        sql`delete from ledger_chain`,
        sql`truncate ledger_chain`,
        sql`delete from ledger_accounts`,
      ]) {
        expect(await sqlState((tx) => statement.execute(tx))).toBe('23001');
      }
      expect(await balance(payable(partner))).toBe(500n);
      await clean();
    });

    it('refuses a negative balance on a non-negative account even when written directly', async () => {
      const partner = newId('ptn');
      await fund(partner, 300n);
      const account = (await inTx((c) => ledger.account(c, payable(partner)))).id;
      // A payable is a credit account: its balance row holds -300; +1 past zero is a debit balance.
      expect(
        await sqlState((tx) =>
          sql`update ledger_balances set balance_minor = 1 where account_id = ${account}`.execute(tx),
        ),
      ).toBe('23514');
      expect(await balance(account as AccountId)).toBe(300n);
    });
  });

  describe('idempotency', () => {
    it('returns the original for the same key and content, and refuses other content with the same key', async () => {
      const partner = newId('ptn');
      const input = move(`idem:${partner}`, platform('operator_adjustments'), payable(partner), 700n);
      const first = await inTx((c) => ledger.post(c, input));
      expect(first.replayed).toBe(false);
      app.clock.advance(60_000);
      const again = await inTx((c) => ledger.post(c, { ...input, metadata: {} }));
      expect(again).toEqual({ transaction: first.transaction, replayed: true });
      const error = await failure(
        inTx((c) =>
          ledger.post(
            c,
            move(input.idempotencyKey, platform('operator_adjustments'), payable(partner), 701n),
          ),
        ),
      );
      expect(error).toBeInstanceOf(DomainError);
      expect(error.code).toBe('ledger.exists_with_different_content');
      expect(error.details).toMatchObject({ transaction_id: first.transaction.id });
      expect(await balance(payable(partner))).toBe(700n);
    });

    it('writes exactly one transaction for 50 concurrent postings with the same key', async () => {
      const order = `order-${newId('alc')}`;
      await inTx((c) => ledger.account(c, { purpose: 'customer_escrow', ownerId: order, currency: 'EUR' }));
      const input: PostingInput = {
        idempotencyKey: `capture:${order}`,
        cause: { kind: 'payment', id: order },
        entries: [
          { account: platform('provider_clearing'), direction: 'debit', amountMinor: 2500n },
          {
            account: { purpose: 'customer_escrow', ownerId: order, currency: 'EUR' },
            direction: 'credit',
            amountMinor: 2500n,
          },
        ],
      };
      const results = await Promise.all(Array.from({ length: 50 }, () => inTx((c) => ledger.post(c, input))));
      expect(new Set(results.map((r) => r.transaction.id)).size).toBe(1);
      expect(results.filter((r) => !r.replayed)).toHaveLength(1);
      const written = await inTx((c) => ledger.transactionsFor(c, { kind: 'payment', id: order }));
      expect(written).toHaveLength(1);
      expect(await balance({ purpose: 'customer_escrow', ownerId: order, currency: 'EUR' })).toBe(2500n);
      await clean();
    });
  });

  it('gives exactly 100 of 500 concurrent payouts of 1.00 against 100.00, and never goes below zero (L2)', async () => {
    const partner = newId('ptn');
    await fund(partner, 10_000n);
    const from = (await inTx((c) => ledger.account(c, payable(partner)))).id as AccountId;
    const to = (await inTx((c) => ledger.account(c, platform('payouts_in_transit')))).id as AccountId;
    const results = await Promise.allSettled(
      Array.from({ length: 500 }, (_, n) =>
        inTx((c) =>
          ledger.post(c, {
            idempotencyKey: `payout:${partner}:${n}`,
            cause: { kind: 'payout', id: `${partner}:${n}` },
            entries: [
              { account: from, direction: 'debit', amountMinor: 100n },
              { account: to, direction: 'credit', amountMinor: 100n },
            ],
          }),
        ),
      ),
    );
    const refusals = results.flatMap((r) => (r.status === 'rejected' ? [codeOf(r.reason)] : []));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(100);
    expect(refusals).toHaveLength(400);
    expect(new Set(refusals)).toEqual(new Set(['ledger.insufficient_funds']));
    expect(await balance(from)).toBe(0n);
    // Every line of the statement, in posting order, leaves the payable at or above zero.
    const statement = await inTx((c) => ledger.statement(c, from, { limit: 1000 }));
    expect(statement.lines.items).toHaveLength(101);
    expect(statement.lines.items.every((line) => line.balanceAfterMinor >= 0n)).toBe(true);
    expect(statement.lines.items.at(-1)?.balanceAfterMinor).toBe(0n);
    await clean();
  });

  it('refuses for want of funds, and only so, while credits and debits of one account race', async () => {
    // A platform account that may not go below zero, credited and debited from many clients at
    // once, each call with another slot of a busy two-way account: the race in which a debit was
    // once judged against the balance from before a credit that committed while it waited.
    const transit = platform('refunds_in_transit', 'GBP');
    const clearing = platform('provider_clearing', 'GBP');
    let next = 0;
    const outcomes: string[] = [];
    const expected = { balance: 0n };
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < 2_000) {
          const n = next++;
          const amountMinor = BigInt(1 + (n % 97));
          const credit = n % 2 === 0;
          const input = credit
            ? move(`race:${n}`, clearing, transit, amountMinor)
            : move(`race:${n}`, transit, clearing, amountMinor);
          try {
            await inTx((c) => ledger.post(c, input));
            expected.balance += credit ? amountMinor : -amountMinor;
            outcomes.push('posted');
          } catch (error) {
            outcomes.push(codeOf(error) ?? String(error));
          }
        }
      }),
    );
    expect(new Set(outcomes)).toEqual(new Set(['posted', 'ledger.insufficient_funds']));
    expect(await balance(transit)).toBe(expected.balance);
    await clean();
  });

  describe('busy accounts that may not go below zero (a partner payable)', () => {
    /** The account's balance slots, on its normal side (a payable's credits positive). */
    const slots = async (account: string) =>
      (
        await db
          .selectFrom('ledger_balances')
          .select(['slot', 'balance_minor', 'normal_sign'])
          .where('account_id', '=', account)
          .orderBy('slot')
          .execute()
      ).map((row) => BigInt(row.balance_minor) * BigInt(row.normal_sign));
    const payout = (partner: string, key: string, amountMinor: bigint) =>
      inTx((c) => ledger.post(c, move(key, payable(partner), platform('payouts_in_transit'), amountMinor)));

    it('spreads credits over its slots, and a debit takes from all of them, to the last cent', async () => {
      const partner = newId('ptn');
      for (let n = 1; n <= 40; n++) await fund(partner, BigInt(n));
      const account = (await inTx((c) => ledger.account(c, payable(partner)))).id;
      const spread = await slots(account);
      expect(spread).toHaveLength(16);
      expect(spread.filter((slot) => slot > 0n).length).toBeGreaterThan(1);
      expect(spread.reduce((a, b) => a + b, 0n)).toBe(820n);

      const short = await failure(payout(partner, `payout:${partner}:1`, 821n));
      expect(short.code).toBe('ledger.insufficient_funds');
      expect(short.details).toMatchObject({ balance: '820', needed: '821' });
      await payout(partner, `payout:${partner}:2`, 820n);
      expect(await balance(account as AccountId)).toBe(0n);
      expect(await slots(account)).toEqual(Array.from({ length: 16 }, () => 0n));
      expect(codeOf(await failure(payout(partner, `payout:${partner}:3`, 1n)))).toBe(
        'ledger.insufficient_funds',
      );
      await clean();
    });

    it('judges a batch that credits and debits it against its whole balance, in order', async () => {
      const partner = newId('ptn');
      for (let n = 1; n <= 10; n++) await fund(partner, 100n, `fund:${partner}:${n}`);
      const to = platform('payouts_in_transit');
      const from = platform('operator_adjustments');
      const results = await inTx((c) =>
        ledger.postBatch(
          c,
          [
            move(`b:${partner}:1`, payable(partner), to, 1_000n),
            move(`b:${partner}:2`, payable(partner), to, 1n),
            move(`b:${partner}:3`, from, payable(partner), 50n),
            move(`b:${partner}:4`, payable(partner), to, 50n),
            move(`b:${partner}:5`, payable(partner), to, 1n),
          ],
          { atomic: false },
        ),
      );
      expect(results.map((r) => (r.status === 'rejected' ? r.error.code : r.status))).toEqual([
        'posted',
        'ledger.insufficient_funds',
        'posted',
        'posted',
        'ledger.insufficient_funds',
      ]);
      expect(await balance(payable(partner))).toBe(0n);
      await clean();
    });

    it('gives a payable opened with one slot its sixteen, its balance untouched (migration 0007)', async () => {
      const partner = newId('ptn');
      const account = newId('acc');
      // A payable as accounts were opened before: one balance row.
      await db.transaction().execute(async (tx) => {
        await sql`insert into ledger_accounts (id, purpose, owner_kind, owner_id, currency, normal_side, non_negative, slots, created_at)
          values (${account}, 'partner_payable', 'partner', ${partner}, 'EUR', 'credit', true, 1, now())`.execute(
          tx,
        );
        await sql`insert into ledger_balances (account_id, slot, balance_minor, normal_sign, non_negative)
          values (${account}, 0, 0, -1, true)`.execute(tx);
      });
      await fund(partner, 500n);
      expect(await slots(account)).toEqual([500n]);
      const upgrade = ledgerMigrations.migrations['0007_busy_accounts_slots'];
      await upgrade?.up(db);
      await upgrade?.up(db);
      expect(await slots(account)).toEqual([500n, ...Array.from({ length: 15 }, () => 0n)]);
      // A process started after the upgrade reads sixteen slots: credits spread, a debit takes all.
      const upgraded = createLedgerService();
      for (let n = 1; n <= 20; n++) {
        await inTx((c) =>
          upgraded.post(
            c,
            move(`after:${partner}:${n}`, platform('operator_adjustments'), payable(partner), 10n),
          ),
        );
      }
      expect((await slots(account)).filter((slot) => slot > 0n).length).toBeGreaterThan(1);
      await inTx((c) =>
        upgraded.post(c, move(`all:${partner}`, payable(partner), platform('payouts_in_transit'), 700n)),
      );
      expect(await slots(account)).toEqual(Array.from({ length: 16 }, () => 0n));
      await clean();
    });

    it.runIf(TEST_DATABASE_KIND === 'postgres')(
      'takes credits without waiting for each other, and a debit waits for them and counts them',
      async () => {
        const partner = newId('ptn');
        await fund(partner, 100n);
        // A credit held open: its slot stays locked until it commits.
        let commit = () => {};
        const committing = new Promise<void>((resolve) => {
          commit = resolve;
        });
        let posted = () => {};
        const held = new Promise<void>((resolve) => {
          posted = resolve;
        });
        const open = inTx(async (c) => {
          await ledger.post(
            c,
            move(`open:${partner}`, platform('operator_adjustments'), payable(partner), 500n),
          );
          posted();
          await committing;
        });
        await held;
        // Further credits go to other slots: most are not kept waiting (one slot of sixteen is
        // taken, so each meets it with a chance of 1 in 16). With one balance row, none would pass.
        let credited = 0n;
        for (let n = 0; n < 6; n++) {
          try {
            await runInTransaction(db, async (tx) => {
              await sql`set local lock_timeout = '300ms'`.execute(tx);
              await ledger.post(
                ctx(tx),
                move(`more:${partner}:${n}`, platform('operator_adjustments'), payable(partner), 10n),
              );
            });
            credited += 10n;
          } catch (error) {
            expect((error as { code?: string }).code).toBe('55P03'); // lock_not_available
          }
        }
        expect(credited).toBeGreaterThan(0n);
        // A debit of everything, the open credit included, waits for it, then takes it all.
        let settled = false;
        const everything = payout(partner, `payout:${partner}`, 600n + credited).finally(() => {
          settled = true;
        });
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(settled).toBe(false);
        commit();
        await open;
        await everything;
        expect(await balance(payable(partner))).toBe(0n);
        await clean();
      },
    );
  });

  describe('validation', () => {
    it('refuses unbalanced postings, bad amounts, unknown accounts and foreign currencies, writing nothing', async () => {
      const partner = newId('ptn');
      await fund(partner, 1000n);
      const before = await count('ledger_transactions');
      const cases: [PostingInput, string, string][] = [
        [
          {
            idempotencyKey: 'v:unbalanced',
            cause: { kind: 'adjustment', id: 'v' },
            entries: [
              { account: platform('operator_adjustments'), direction: 'debit', amountMinor: 100n },
              { account: payable(partner), direction: 'credit', amountMinor: 99n },
            ],
          },
          'ledger.entries_must_balance',
          '/entries',
        ],
        [
          move('v:zero', platform('operator_adjustments'), payable(partner), 0n),
          'ledger.entries_must_balance',
          '/entries/0/amount',
        ],
        [
          move('v:negative', platform('operator_adjustments'), payable(partner), -5n),
          'ledger.entries_must_balance',
          '/entries/0/amount',
        ],
        [
          move('v:unknown', newId('acc'), payable(partner), 5n),
          'ledger.entries_must_balance',
          '/entries/0/account',
        ],
        [
          {
            idempotencyKey: 'v:one-entry',
            cause: { kind: 'adjustment', id: 'v' },
            entries: [{ account: platform('operator_adjustments'), direction: 'debit', amountMinor: 5n }],
          },
          'ledger.entries_must_balance',
          '/entries',
        ],
      ];
      for (const [input, code, path] of cases) {
        const error = await failure(inTx((c) => ledger.post(c, input)));
        expect(error.code, input.idempotencyKey).toBe(code);
        expect((error.details?.errors as { path: string }[] | undefined)?.map((e) => e.path)).toContain(path);
      }
      const usd = (await inTx((c) => ledger.account(c, platform('operator_adjustments', 'USD'))))
        .id as AccountId;
      const mismatch = await failure(
        inTx((c) =>
          ledger.post(c, {
            idempotencyKey: 'v:currency',
            cause: { kind: 'adjustment', id: 'v' },
            entries: [
              { account: usd, currency: 'EUR', direction: 'debit', amountMinor: 5n },
              { account: payable(partner), direction: 'credit', amountMinor: 5n },
            ],
          }),
        ),
      );
      expect(mismatch.code).toBe('ledger.currency_mismatch');
      // Debits in one currency never pay for credits in another.
      const crossCurrency = await failure(
        inTx((c) => ledger.post(c, move('v:cross', usd, payable(partner), 5n))),
      );
      expect(crossCurrency.code).toBe('ledger.entries_must_balance');
      const owner = await failure(
        inTx((c) =>
          ledger.post(c, move('v:owner', platform('operator_adjustments'), payable('platform'), 5n)),
        ),
      );
      expect(owner.code).toBe('ledger.owner_invalid');
      expect(await count('ledger_transactions')).toBe(before);
      expect(await balance(payable(partner))).toBe(1000n);
    });

    it('applies a batch all or nothing when atomic, item by item otherwise', async () => {
      const partner = newId('ptn');
      const good = (n: number) =>
        move(`batch:${partner}:${n}`, platform('operator_adjustments'), payable(partner), 100n);
      const bad: PostingInput = {
        idempotencyKey: `batch:${partner}:bad`,
        cause: { kind: 'adjustment', id: 'bad' },
        entries: [
          { account: platform('operator_adjustments'), direction: 'debit', amountMinor: 100n },
          { account: payable(partner), direction: 'credit', amountMinor: 1n },
        ],
      };
      const before = await count('ledger_transactions');

      const atomic = await failure(
        inTx((c) => ledger.postBatch(c, [good(1), bad, good(2)], { atomic: true })),
      );
      expect(atomic.code).toBe('ledger.batch_rejected');
      expect(atomic.details?.items).toEqual([
        { index: 1, code: 'ledger.entries_must_balance', message: expect.any(String) },
      ]);
      expect(await count('ledger_transactions')).toBe(before);

      const perItem = await inTx((c) =>
        ledger.postBatch(c, [good(1), bad, good(2), good(1)], { atomic: false }),
      );
      expect(perItem.map((r) => r.status)).toEqual(['posted', 'rejected', 'posted', 'replayed']);
      expect(perItem[3]?.status === 'replayed' && perItem[3].transaction.id).toBe(
        perItem[0]?.status === 'posted' && perItem[0].transaction.id,
      );
      expect(await count('ledger_transactions')).toBe(before + 2);
      expect(await balance(payable(partner))).toBe(200n);

      // An overdraft later in the batch is judged against the balance the earlier items left.
      const payouts = [1, 2, 3].map((n) =>
        move(`batch-out:${partner}:${n}`, payable(partner), platform('payouts_in_transit'), 80n),
      );
      const out = await inTx((c) => ledger.postBatch(c, payouts, { atomic: false }));
      expect(out.map((r) => (r.status === 'rejected' ? r.error.code : r.status))).toEqual([
        'posted',
        'posted',
        'ledger.insufficient_funds',
      ]);
      expect(await balance(payable(partner))).toBe(40n);
    });

    it('judges a non-negative account on each posting as a whole, in order, single or batched', async () => {
      const partner = newId('ptn');
      await fund(partner, 100n);
      // Out 150 and back 100 on the same payable: 50 net, which 100 covers, although the first
      // entry alone would not be covered.
      const netOut = (key: string): PostingInput => ({
        idempotencyKey: key,
        cause: { kind: 'payout', id: key },
        entries: [
          { account: payable(partner), direction: 'debit', amountMinor: 150n },
          { account: payable(partner), direction: 'credit', amountMinor: 100n },
          { account: platform('payouts_in_transit'), direction: 'credit', amountMinor: 50n },
        ],
      });
      const single = await inTx((c) => ledger.post(c, netOut(`net:${partner}:1`)));
      expect(single.replayed).toBe(false);
      expect(await balance(payable(partner))).toBe(50n);
      await fund(partner, 50n, `net-fund:${partner}`);
      const batch = await inTx((c) =>
        ledger.postBatch(
          c,
          [1, 2, 3].map((n) => netOut(`net:${partner}:batch:${n}`)),
          { atomic: false },
        ),
      );
      expect(batch.map((r) => (r.status === 'rejected' ? r.error.code : r.status))).toEqual([
        'posted',
        'posted',
        'ledger.insufficient_funds',
      ]);
      expect(await balance(payable(partner))).toBe(0n);
      await clean();
    });

    it('posts a batch of 1,000 transactions in one call', async () => {
      const partner = newId('ptn');
      const inputs = Array.from({ length: 1000 }, (_, n) =>
        move(`thousand:${partner}:${n}`, platform('operator_adjustments'), payable(partner), BigInt(n + 1)),
      );
      const results = await inTx((c) => ledger.postBatch(c, inputs, { atomic: true }));
      expect(results.every((r) => r.status === 'posted')).toBe(true);
      expect(await balance(payable(partner))).toBe(500_500n);
      await clean();
    });
  });

  it('answers balances as of a past time, statements page by page with running balances, and reversals', async () => {
    const partner = newId('ptn');
    const t0 = new Date('2026-03-01T10:00:00Z');
    const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);
    const posted: string[] = [];
    for (let n = 0; n < 5; n++) {
      const result = await inTx(
        (c) =>
          ledger.post(
            c,
            move(`asof:${partner}:${n}`, platform('operator_adjustments'), payable(partner), 1000n),
          ),
        at(n * 10),
      );
      posted.push(result.transaction.id);
    }
    expect(await balance(payable(partner), at(-1))).toBe(0n);
    expect(await balance(payable(partner), at(0))).toBe(1000n);
    expect(await balance(payable(partner), at(25))).toBe(3000n);
    expect(await balance(payable(partner))).toBe(5000n);

    const account = (await inTx((c) => ledger.account(c, payable(partner)))).id;
    const lines: { transactionId: string; balanceAfterMinor: bigint }[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const statement = await inTx((c) =>
        ledger.statement(c, account, { ...(after ? { after } : {}), limit: 2 }),
      );
      lines.push(...statement.lines.items);
      after = statement.lines.items.at(-1)?.id;
      if (!statement.lines.hasMore) break;
    }
    expect(lines.map((l) => l.transactionId)).toEqual(posted);
    expect(lines.map((l) => l.balanceAfterMinor)).toEqual([1000n, 2000n, 3000n, 4000n, 5000n]);
    const badCursor = await failure(
      inTx((c) => ledger.statement(c, account, { after: 'txn_nope.0', limit: 2 })),
    );
    expect(badCursor.code).toBe('ledger.cursor_invalid');

    const reversal = await inTx(
      (c) => ledger.reverse(c, posted[1] as string, { idempotencyKey: `rev:${partner}` }),
      at(60),
    );
    expect(reversal.transaction.cause).toEqual({ kind: 'reversal', id: posted[1] });
    expect(reversal.transaction.entries.map((e) => e.direction)).toEqual(['credit', 'debit']);
    expect(await balance(payable(partner))).toBe(4000n);
    expect(await balance(payable(partner), at(50))).toBe(5000n);
    // The original stays as written.
    const original = await inTx((c) => ledger.transaction(c, posted[1] as string));
    expect(original.entries.map((e) => e.direction)).toEqual(['debit', 'credit']);
    const replay = await inTx(
      (c) => ledger.reverse(c, posted[1] as string, { idempotencyKey: `rev:${partner}` }),
      at(70),
    );
    expect(replay).toMatchObject({ replayed: true, transaction: { id: reversal.transaction.id } });
  });

  it('keeps the reversals of a transaction reversed twice before migration 0008, and refuses a third', async () => {
    const partner = newId('ptn');
    const original = (await fund(partner, 300n, `twice:${partner}`)).transaction;
    await fund(partner, 300n, `twice-more:${partner}`);
    const payableId = (await inTx((c) => ledger.account(c, payable(partner)))).id;
    /** A reversal as `reverse` writes it, straight through the store: past the service's checks. */
    const rawReversal = (key: string) =>
      inTx(async (c) => {
        const posting = {
          idempotencyKey: key,
          description: `Reversal of ${original.id}`,
          cause: { kind: 'reversal' as const, id: original.id },
          metadata: { reverses: original.id },
          entries: original.entries.map((entry) => ({
            ...entry,
            direction: entry.direction === 'debit' ? ('credit' as const) : ('debit' as const),
          })),
        };
        const id = newId('txn');
        const fingerprint = fingerprintOf(posting);
        const row = {
          ...posting,
          id,
          fingerprint,
          contentHash: contentHashOf(id, c.now, fingerprint),
          entries: posting.entries.map((entry) => ({ ...entry, slot: 0 })),
        };
        const outcome = await postTransactions(c.db, c.now, [row], { atomic: true, sweep: [payableId] });
        expect([...outcome.written]).toEqual([id]);
        return id;
      });
    // The books as the code before the rule could leave them: the transaction reversed twice.
    await sql`drop index ledger_transactions_one_reversal`.execute(db);
    const first = await rawReversal(`twice-rev:${partner}:1`);
    const second = await rawReversal(`twice-rev:${partner}:2`);
    expect(await balance(payable(partner))).toBe(0n);

    await ledgerMigrations.migrations['0008_one_reversal_per_transaction']?.up(db);
    // Both stay; another reversal is refused, naming the first, and the second's key replays it.
    const third = await failure(
      inTx((c) => ledger.reverse(c, original.id, { idempotencyKey: `twice-rev:${partner}:3` })),
    );
    expect(third).toMatchObject({
      code: 'ledger.already_reversed',
      details: { transaction_id: original.id, reversal_id: first },
    });
    const replay = await inTx((c) =>
      ledger.reverse(c, original.id, { idempotencyKey: `twice-rev:${partner}:2` }),
    );
    expect(replay).toMatchObject({ replayed: true, transaction: { id: second } });
    // And the database refuses a third written past the service, with the funds for it there.
    await fund(partner, 300n, `twice-again:${partner}`);
    expect(codeOf(await failure(rawReversal(`twice-rev:${partner}:4`)))).toBe('23505');
    expect(await balance(payable(partner))).toBe(300n);
    await clean();
  });

  describe('the hash chain and verify', () => {
    it('keeps accounts and balance slots to what they were opened as, and reports what was changed behind its back', async () => {
      const partner = newId('ptn');
      const funded = (await fund(partner, 500n, `identity:${partner}`)).transaction;
      const accountId = (await inTx((c) => ledger.account(c, payable(partner)))).id;
      // The application's own role may not hand the account to another owner or lift its floor.
      for (const change of [
        sql`update ledger_accounts set owner_id = 'ptn_other' where id = ${accountId}`,
        sql`update ledger_accounts set non_negative = false where id = ${accountId}`,
        sql`update ledger_balances set non_negative = false where account_id = ${accountId}`,
      ])
        expect(codeOf(await failure(db.transaction().execute((tx) => change.execute(tx))))).toBe('23000');
      await clean();

      // Behind its back (triggers off): a slot's floor lifted, an entry dated otherwise.
      await asSuperuser(async (tx) => {
        await sql`update ledger_balances set non_negative = false where account_id = ${accountId}`.execute(
          tx,
        );
        await sql`update ledger_entries set posted_at = posted_at - interval '1 day' where transaction_id = ${funded.id}`.execute(
          tx,
        );
      });
      const report = await inTx((c) => verifyLedger(c.db));
      expect(report.problems).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ kind: 'balance_flags', accountId }),
          expect.objectContaining({ kind: 'entry_time', transactionId: funded.id }),
        ]),
      );
      expect(report.firstTampered).toBe(funded.id);
      await asSuperuser(async (tx) => {
        await sql`update ledger_balances set non_negative = true where account_id = ${accountId}`.execute(tx);
        await sql`update ledger_entries set posted_at = posted_at + interval '1 day' where transaction_id = ${funded.id}`.execute(
          tx,
        );
      });
      await clean();
    });

    it('reports a transaction written behind the chain’s head that the chain does not link', async () => {
      await inTx((c) => sealChain(c.db, c.now));
      const partner = newId('ptn');
      await fund(partner, 100n, `behind:${partner}:0`);
      await inTx((c) => sealChain(c.db, c.now));
      const late = (await fund(partner, 100n, `behind:${partner}:1`)).transaction;
      const [{ tx_id: position } = { tx_id: 0n }] = await db
        .selectFrom('ledger_transactions')
        .select('tx_id')
        .where('id', '=', late.id)
        .execute();
      // Written with a commit position before every link: the sealer never reaches it.
      const moveTo = (to: bigint) =>
        asSuperuser(async (tx) => {
          await sql`update ledger_transactions set tx_id = ${to} where id = ${late.id}`.execute(tx);
        });
      await moveTo(1n);
      expect(await inTx((c) => sealChain(c.db, c.now))).toBe(0);
      const report = await inTx((c) => verifyLedger(c.db));
      expect(report.problems).toEqual([
        expect.objectContaining({ kind: 'unsealed', transactionId: late.id }),
      ]);
      expect(report.firstTampered).toBe(late.id);
      // Back where it was committed, the sealer links it.
      await moveTo(BigInt(position));
      expect(await inTx((c) => sealChain(c.db, c.now))).toBe(1);
      await clean();
    });

    it('links transactions in commit order, and names exactly the tampered transaction', async () => {
      await inTx((c) => sealChain(c.db, c.now));
      const partner = newId('ptn');
      const ids: string[] = [];
      for (let n = 0; n < 4; n++) {
        ids.push((await fund(partner, 100n, `chain:${partner}:${n}`)).transaction.id);
      }
      const sealedNow = await inTx((c) => sealChain(c.db, c.now));
      expect(sealedNow).toBe(4);
      const links = await db
        .selectFrom('ledger_chain')
        .select(['transaction_id', 'position'])
        .orderBy('position', 'desc')
        .limit(4)
        .execute();
      expect(links.map((l) => l.transaction_id).reverse()).toEqual(ids);
      expect(await inTx((c) => sealChain(c.db, c.now))).toBe(0);
      const report = await clean();
      expect(report.sealed).toBe(report.transactions);
      expect(report.firstTampered).toBeNull();

      // An entry's amount changed behind the ledger's back (balanced by its partner entry, so
      // only the hashes can tell).
      const victim = ids[2] as string;
      await asSuperuser(async (tx) => {
        await sql`update ledger_entries set amount_minor = amount_minor * 2 where transaction_id = ${victim}`.execute(
          tx,
        );
      });
      const tampered = await inTx((c) => verifyLedger(c.db));
      expect(tampered.firstTampered).toBe(victim);
      expect(tampered.problems).toContainEqual(
        expect.objectContaining({ kind: 'fingerprint', transactionId: victim }),
      );
      // The balance rows were not touched, so the payable no longer matches its entries.
      expect(tampered.problems).toContainEqual(expect.objectContaining({ kind: 'balance' }));
      await asSuperuser(async (tx) => {
        await sql`update ledger_entries set amount_minor = amount_minor / 2 where transaction_id = ${victim}`.execute(
          tx,
        );
      });
      await clean();

      // A transaction's stored hash rewritten: its own check and the chain both point at it.
      const rehashed = ids[1] as string;
      await asSuperuser(async (tx) => {
        await sql`update ledger_transactions set content_hash = sha256('forged'::bytea) where id = ${rehashed}`.execute(
          tx,
        );
      });
      const forged = await inTx((c) => verifyLedger(c.db));
      expect(forged.firstTampered).toBe(rehashed);
      expect(forged.problems.map((p) => p.kind).sort()).toEqual(['chain', 'content_hash']);
    });

    it('reports a balance slot written behind the ledger’s back as a balance problem', async () => {
      const account = (await inTx((c) => ledger.account(c, platform('platform_services')))).id;
      await db
        .updateTable('ledger_balances')
        .set({ balance_minor: sql`balance_minor - 1` })
        .where('account_id', '=', account)
        .where('slot', '=', 3)
        .execute();
      const report = await inTx((c) => verifyLedger(c.db));
      expect(report.problems).toContainEqual(
        expect.objectContaining({ kind: 'balance', accountId: account }),
      );
    });
  });
});
