import { sql } from 'kysely';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import { ManualClock } from '../../kernel/clock.js';
import type { Executor } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { newId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { type AccountKey, createLedgerService, verifyLedger } from '../ledger/index.js';
import {
  createPaymentsService,
  type PaymentProvider,
  SimulatedProvider,
  type SimulatedProviderOptions,
  TEST_CARDS,
} from './index.js';
import { retryDelayMs } from './store/payments-store.js';

const actor = systemActor('test');

describe(`payments (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;
  const ledger = createLedgerService();

  let seed = 0;
  /**
   * A payments service with its own provider and clock, so each test sees only its own operations.
   * Each provider gets its own seed: event ids are unique per provider, and the tests share a database.
   */
  function setup(
    options: SimulatedProviderOptions = {},
    start = new Date('2026-06-01T09:00:00Z'),
    port: (provider: SimulatedProvider) => PaymentProvider = (provider) => provider,
  ) {
    const clock = new ManualClock(start);
    const provider = new SimulatedProvider({ clock, seed: ++seed, autoDeliver: false, ...options });
    const payments = createPaymentsService({ provider: port(provider), ledger, clock });
    provider.onEvent((event) => payments.handleEvent(db, event));
    const ctx = (tx: Executor) => ({ db: tx, actor, now: clock.now(), requestId: null, ip: null });
    const balance = (key: AccountKey) =>
      runInTransaction(db, async (tx) => (await ledger.balance(ctx(tx), key)).balanceMinor);
    const postings = (kind: 'payment' | 'refund' | 'chargeback', id: string) =>
      ledger.transactionsFor(ctx(db), { kind, id });
    const charge = (orderRef: string, amountMinor = 10_000n, paymentMethod: string = TEST_CARDS.ok) =>
      payments.charge(db, actor, {
        orderRef,
        customerId: null,
        paymentMethod,
        amountMinor,
        currency: 'EUR',
        reference: `charge-${orderRef}`,
      });
    return { clock, provider, payments, ctx, balance, postings, charge };
  }
  // Every statement sent on any of the pool's clients, in order.
  const sent: string[] = [];
  const watched = new WeakSet<pg.PoolClient>();
  app.baton.database.pool.on('acquire', (client) => {
    if (watched.has(client)) return;
    watched.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | undefined)?.text;
      if (text !== undefined) sent.push(text.replace(/\s+/g, ' ').trim());
      return query(...args);
    };
  });
  const statementsOf = async (work: () => Promise<unknown>) => {
    sent.length = 0;
    await work();
    return [...sent];
  };
  const paymentCapturedEvents = (paymentId: string) =>
    db
      .selectFrom('events')
      .select('id')
      .where('type', '=', 'payment.captured')
      .where('subject_id', '=', paymentId)
      .execute();
  const escrow = (orderRef: string): AccountKey => ({
    purpose: 'customer_escrow',
    ownerId: orderRef,
    currency: 'EUR',
  });

  it('captures a charge into the order’s escrow with one posting', async () => {
    const { payments, provider, balance, postings, charge } = setup();
    const order = newId('alc');
    const payment = await charge(order);
    expect(payment).toMatchObject({ status: 'captured', capturedMinor: 10_000n, orderRef: order });
    expect(await balance(escrow(order))).toBe(10_000n);
    const [posting, ...more] = await postings('payment', payment.id);
    expect(more).toHaveLength(0);
    expect(posting?.idempotencyKey).toBe(`payment:${payment.id}:capture`);
    // The callbacks that follow are the same news again and change nothing.
    await provider.deliverPending({ duplicate: true });
    expect(await postings('payment', payment.id)).toHaveLength(1);
    const detail = await payments.getPayment(
      { db, actor, now: new Date(), requestId: null, ip: null },
      payment.id,
    );
    expect(detail.operations.map((o) => `${o.kind}:${o.status}`)).toEqual([
      'authorization:succeeded',
      'capture:succeeded',
    ]);
  });

  it('records a decline with the provider’s code and posts nothing', async () => {
    const { provider, postings, charge, balance } = setup();
    const order = newId('alc');
    const payment = await charge(order, 500n, TEST_CARDS.declined);
    expect(payment).toMatchObject({ status: 'declined', failureCode: 'card_declined' });
    expect(await postings('payment', payment.id)).toHaveLength(0);
    expect(await balance(escrow(order))).toBe(0n);
    expect(provider.operations().filter((o) => o.kind === 'capture')).toHaveLength(0);
  });

  it('charges exactly once when the capture times out after the provider took the money (F5)', async () => {
    const { provider, postings, charge, balance } = setup();
    const order = newId('alc');
    provider.timeoutNext('capture', { afterApplying: true });
    const payment = await charge(order);
    expect(payment.status).toBe('captured');
    // The caller does not know the outcome and charges again: the same charge, not a second one.
    const again = await charge(order);
    expect(again.id).toBe(payment.id);
    expect(provider.operations().filter((o) => o.kind === 'capture')).toHaveLength(1);
    expect(provider.operations().filter((o) => o.kind === 'authorization')).toHaveLength(1);
    expect(await postings('payment', payment.id)).toHaveLength(1);
    expect(await balance(escrow(order))).toBe(10_000n);
  });

  it('takes a refusal of a repeated capture for the capture the provider holds: captured once, never failed', async () => {
    const { provider, postings, charge, balance } = setup();
    const order = newId('alc');
    provider.timeoutNext('capture', { afterApplying: true });
    provider.timeoutNextFind();
    provider.refuseRepeatNext('capture');
    const payment = await charge(order);
    expect(payment).toMatchObject({ status: 'captured', failureCode: null });
    expect(provider.operations().filter((o) => o.kind === 'capture')).toHaveLength(1);
    expect(await postings('payment', payment.id)).toHaveLength(1);
    expect(await balance(escrow(order))).toBe(10_000n);
  });

  it('takes open payments in turn: those the provider keeps pending do not hold up the others', async () => {
    const { provider, payments, charge, clock, ctx } = setup({ settlement: { capture: 'pending' } });
    // Two payments whose capture the provider keeps pending (a bank debit, days long), then one
    // whose capture never reached the provider: the retry job must get to it.
    const stuck = [await charge(newId('alc')), await charge(newId('alc'))];
    expect(stuck.map((payment) => payment.status)).toEqual(['authorized', 'authorized']);
    provider.timeoutNext('capture', { afterApplying: false });
    provider.timeoutNext('capture', { afterApplying: false });
    const lost = await charge(newId('alc'));
    expect(lost.status).toBe('unknown');
    const statusOf = async (id: string) => (await payments.getPayment(ctx(db), id)).payment.status;
    for (let minute = 1; minute <= 3; minute++) {
      clock.advance(61_000);
      await payments.retryUnsettled(db, new Date(clock.now().getTime() - 60_000), { batch: 2 });
    }
    expect(await statusOf(lost.id)).toBe('authorized');
    expect(provider.operations().filter((o) => o.kind === 'capture')).toHaveLength(3);
  });

  it('waits longer after each turn a payment stays open, up to an hour', () => {
    const minute = 60_000;
    const hour = 60 * minute;
    expect([0, 1, 2, 3, 10, 1000].map((turns) => retryDelayMs(turns, minute, hour))).toEqual([
      0,
      minute,
      3 * minute,
      7 * minute,
      hour - minute,
      hour - minute,
    ]);
  });

  it('leaves a charge unknown when the provider never answers, and the retry job finishes it once', async () => {
    const { provider, payments, postings, charge, clock } = setup();
    const order = newId('alc');
    provider.timeoutNext('authorization', { afterApplying: true });
    provider.timeoutNext('authorization', { afterApplying: true });
    provider.timeoutNext('capture', { afterApplying: false });
    provider.timeoutNext('capture', { afterApplying: false });
    // The authorization happened (found after the timeout); neither capture attempt arrived.
    const payment = await charge(order);
    expect(payment.status).toBe('unknown');
    expect(provider.operations().filter((o) => o.kind === 'capture')).toHaveLength(0);
    clock.advance(120_000);
    expect(await payments.retryUnsettled(db, clock.now())).toMatchObject({ payments: 1 });
    const detail = await payments.getPayment(
      { db, actor, now: clock.now(), requestId: null, ip: null },
      payment.id,
    );
    expect(detail.payment.status).toBe('captured');
    expect(provider.operations().filter((o) => o.kind === 'capture')).toHaveLength(1);
    expect(await postings('payment', payment.id)).toHaveLength(1);
  });

  it('applies duplicate and out-of-order callbacks once, and ignores a stale pending after success', async () => {
    const { provider, payments, postings, charge } = setup({ settlement: { capture: 'pending' } });
    const order = newId('alc');
    const payment = await charge(order);
    expect(payment.status).toBe('authorized');
    provider.settle();
    await provider.deliverPending({ order: 'reversed', duplicate: true });
    const ctx = { db, actor, now: new Date(), requestId: null, ip: null };
    expect((await payments.getPayment(ctx, payment.id)).payment.status).toBe('captured');
    await provider.deliverStale(`charge-${order}:capture`, 'pending');
    for (const event of provider.events()) await provider.redeliver(event.eventId);
    const detail = await payments.getPayment(ctx, payment.id);
    expect(detail.payment).toMatchObject({ status: 'captured', capturedMinor: 10_000n });
    expect(detail.operations.find((o) => o.kind === 'capture')?.status).toBe('succeeded');
    expect(await postings('payment', payment.id)).toHaveLength(1);
    const captured = await db
      .selectFrom('events')
      .select('id')
      .where('type', '=', 'payment.captured')
      .where('subject_id', '=', payment.id)
      .execute();
    expect(captured).toHaveLength(1);
  });

  it('applies an authorization and a capture in one transaction each, and answers their callbacks with one read', async () => {
    const { payments, provider } = setup();
    const payment = await runInTransaction(db, (tx) =>
      payments.recordIntent(
        { db: tx, actor, now: new Date(), requestId: null, ip: null },
        {
          orderRef: newId('alc'),
          customerId: null,
          paymentMethod: TEST_CARDS.ok,
          amountMinor: 2_500n,
          currency: 'EUR',
          reference: `budget-${newId('alc')}`,
        },
      ),
    );
    let resumed: Awaited<ReturnType<typeof payments.resume>> | undefined;
    const job = await statementsOf(async () => {
      resumed = await payments.resume(db, actor, payment.id);
    });
    expect(resumed).toMatchObject({ id: payment.id, status: 'captured', capturedMinor: 2_500n });
    // The payment is read once; the authorization's answer and the capture's request share a
    // transaction, and the capture's answer has the other; rows are changed without being read first.
    expect(job.filter((text) => text === 'begin')).toHaveLength(2);
    expect(job.filter((text) => /^select \* from "payments"/.test(text))).toHaveLength(1);
    expect(job.filter((text) => /from "payment(s|_operations)" .*for update/.test(text))).toEqual([]);
    const callbacks = await statementsOf(() => provider.deliverPending({ duplicate: true }));
    expect(callbacks).toEqual(
      Array.from({ length: 4 }, () => 'select * from "payment_operations" where "reference" = $1'),
    );
  });

  it('applies every answer once when callbacks race the calls that caused them', async () => {
    const { provider, postings, charge } = setup({ autoDeliver: true });
    const orders = Array.from({ length: 6 }, () => newId('alc'));
    const charged = await Promise.all(orders.map((order) => charge(order, 1_000n)));
    await provider.flush();
    for (const payment of charged) {
      expect(payment.status).toBe('captured');
      expect(await postings('payment', payment.id)).toHaveLength(1);
      expect(await paymentCapturedEvents(payment.id)).toHaveLength(1);
    }
    expect(provider.deliveryErrors).toEqual([]);
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'answers a callback with news already applied while another transaction holds its operation',
    async () => {
      const { provider, charge } = setup();
      const order = newId('alc');
      await charge(order);
      let delivered = false;
      await runInTransaction(db, async (tx) => {
        await sql`select 1 from payment_operations where reference = ${`charge-${order}:capture`} for update`.execute(
          tx,
        );
        await provider.deliverPending({ duplicate: true });
        delivered = true;
      });
      expect(delivered).toBe(true);
    },
  );

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'does not queue a callback with news on a lock another transaction holds, and applies it once that ends',
    async () => {
      const { provider, payments, postings, charge, ctx } = setup({ settlement: { capture: 'pending' } });
      const order = newId('alc');
      const payment = await charge(order);
      expect(payment.status).toBe('authorized');
      provider.settle();
      let delivery: Promise<void> | undefined;
      let waitersWhileHeld = -1;
      await runInTransaction(db, async (tx) => {
        await sql`select 1 from payment_operations where reference = ${`charge-${order}:capture`} for update`.execute(
          tx,
        );
        delivery = provider.deliverPending({ duplicate: true });
        await new Promise((resolve) => setTimeout(resolve, 40));
        // Nobody waits for a lock: the callback looks again later instead of holding a connection.
        const waiting = await sql<{ count: string }>`
          select count(*)::text as count from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(db);
        waitersWhileHeld = Number(waiting.rows[0]?.count);
      });
      await delivery;
      expect(waitersWhileHeld).toBe(0);
      expect((await payments.getPayment(ctx(db), payment.id)).payment).toMatchObject({
        status: 'captured',
        capturedMinor: 10_000n,
      });
      expect(await postings('payment', payment.id)).toHaveLength(1);
      expect(await paymentCapturedEvents(payment.id)).toHaveLength(1);
      expect(provider.deliveryErrors).toEqual([]);
    },
  );

  it('refunds within the capture and refuses more, settling through refunds in transit', async () => {
    const { payments, provider, ctx, charge, postings, balance } = setup();
    const order = newId('alc');
    const payment = await charge(order);
    const inTransit: AccountKey = { purpose: 'refunds_in_transit', ownerId: 'platform', currency: 'EUR' };
    const before = await balance(inTransit);
    // The refund workflow's part: escrow into refunds in transit.
    await runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `test-refund-move:${order}`,
        cause: { kind: 'refund', id: order },
        entries: [
          { account: escrow(order), direction: 'debit', amountMinor: 6_000n },
          { account: inTransit, direction: 'credit', amountMinor: 6_000n },
        ],
      }),
    );
    const refund = await payments.refund(db, actor, {
      paymentId: payment.id,
      amountMinor: 6_000n,
      reference: `refund-${order}-1`,
    });
    expect(refund.status).toBe('succeeded');
    expect(await postings('refund', refund.id)).toHaveLength(1);
    expect(await balance(inTransit)).toBe(before);
    // The same request again is the same refund.
    expect(
      (
        await payments.refund(db, actor, {
          paymentId: payment.id,
          amountMinor: 6_000n,
          reference: `refund-${order}-1`,
        })
      ).id,
    ).toBe(refund.id);
    await expect(
      payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 5_000n,
        reference: `refund-${order}-1`,
      }),
    ).rejects.toMatchObject({ code: 'payments.reference_reused' });
    await expect(
      payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 4_001n,
        reference: `refund-${order}-2`,
      }),
    ).rejects.toMatchObject({
      code: 'payments.refund_exceeds_capture',
      details: { refundable_minor: '4000' },
    });
    expect(provider.operations().filter((o) => o.kind === 'refund')).toHaveLength(1);
    const declined = await charge(newId('alc'), 100n, TEST_CARDS.declined);
    await expect(
      payments.refund(db, actor, {
        paymentId: declined.id,
        amountMinor: 1n,
        reference: `refund-${declined.id}`,
      }),
    ).rejects.toMatchObject({ code: 'payments.payment_not_captured' });
  });

  describe('refunds the provider fails', () => {
    const inTransit: AccountKey = { purpose: 'refunds_in_transit', ownerId: 'platform', currency: 'EUR' };
    const owed = (orderRef: string): AccountKey => ({
      purpose: 'refunds_owed',
      ownerId: orderRef,
      currency: 'EUR',
    });

    /** A captured order whose refund workflow has moved `amountMinor` of its escrow into refunds in transit. */
    async function refundable(env: ReturnType<typeof setup>, amountMinor: bigint) {
      const order = newId('alc');
      const payment = await env.charge(order);
      await runInTransaction(db, (tx) =>
        ledger.post(env.ctx(tx), {
          idempotencyKey: `test-refund-move:${order}`,
          cause: { kind: 'order', id: order },
          entries: [
            { account: escrow(order), direction: 'debit', amountMinor },
            { account: inTransit, direction: 'credit', amountMinor },
          ],
        }),
      );
      return { order, payment };
    }
    const verified = async () =>
      expect((await runInTransaction(db, (tx) => verifyLedger(tx))).problems).toEqual([]);
    const failedPostings = async (env: ReturnType<typeof setup>, refundId: string) =>
      (await env.postings('refund', refundId)).filter((t) => t.idempotencyKey.endsWith(':failed'));

    it('moves the money from refunds in transit to what the order’s customer is owed, and frees the capture', async () => {
      const env = setup();
      const { payments, provider, balance, ctx } = env;
      const transitBefore = await balance(inTransit);
      const { order, payment } = await refundable(env, 10_000n);
      provider.failNext('refund', 'processing_error');
      const refund = await payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 10_000n,
        reference: `refund-${order}`,
      });
      expect(refund).toMatchObject({ status: 'failed', failureCode: 'processing_error', retriedBy: null });
      expect(await balance(inTransit)).toBe(transitBefore);
      expect(await balance(owed(order))).toBe(10_000n);
      expect(await failedPostings(env, refund.id)).toHaveLength(1);
      const detail = await payments.getPayment(ctx(db), payment.id);
      expect(detail.payment.refundedMinor).toBe(0n);
      expect(detail.refundsOwedMinor).toBe(10_000n);
      // The callbacks of the failure, twice and with a stale pending after it, change nothing more.
      await provider.deliverPending({ order: 'reversed', duplicate: true });
      await provider.deliverStale(`refund-${order}`);
      expect(await failedPostings(env, refund.id)).toHaveLength(1);
      expect(await balance(owed(order))).toBe(10_000n);
      expect(await balance(inTransit)).toBe(transitBefore);
      await verified();
    });

    it('takes a refusal of a repeated refund for the refund the provider holds: the customer is refunded once', async () => {
      const env = setup();
      const { payments, provider, balance } = env;
      const transitBefore = await balance(inTransit);
      const { order, payment } = await refundable(env, 3_000n);
      // Applied, its answer lost; the lookup lost too; the repeat refused as a duplicate.
      provider.timeoutNext('refund', { afterApplying: true });
      provider.timeoutNextFind();
      provider.refuseRepeatNext('refund');
      const refund = await payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 3_000n,
        reference: `refund-${order}`,
      });
      expect(refund).toMatchObject({ status: 'succeeded', failureCode: null });
      expect(provider.operations().filter((o) => o.kind === 'refund')).toHaveLength(1);
      expect(await failedPostings(env, refund.id)).toEqual([]);
      expect(await balance(owed(order))).toBe(0n);
      expect(await balance(inTransit)).toBe(transitBefore);
      expect((await payments.getPayment(env.ctx(db), payment.id)).payment.refundedMinor).toBe(3_000n);
      await verified();
    });

    it('leaves a refused repeat unknown while the provider cannot say what it holds, and the retry finishes it', async () => {
      const env = setup();
      const { payments, provider, balance } = env;
      const { order, payment } = await refundable(env, 2_000n);
      provider.timeoutNext('refund', { afterApplying: true });
      provider.timeoutNextFind();
      provider.refuseRepeatNext('refund');
      provider.timeoutNextFind();
      const refund = await payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 2_000n,
        reference: `refund-${order}`,
      });
      expect(refund.status).toBe('unknown');
      expect(await balance(owed(order))).toBe(0n);
      expect((await payments.resumeRefund(db, refund.id)).status).toBe('succeeded');
      expect(provider.operations().filter((o) => o.kind === 'refund')).toHaveLength(1);
      await verified();
    });

    it('keeps what a callback settled while the refund’s calls went unanswered', async () => {
      // A provider whose callbacks come in while Baton waits on its lookups, which time out.
      const env = setup({}, undefined, (sim) => ({
        name: sim.name,
        authorize: (input) => sim.authorize(input),
        capture: (input) => sim.capture(input),
        refund: (input) => sim.refund(input),
        payout: (input) => sim.payout(input),
        list: (input) => sim.list(input),
        onEvent: (handler) => sim.onEvent(handler),
        async find(reference) {
          await sim.deliverPending();
          return sim.find(reference);
        },
      }));
      const { payments, provider, balance } = env;
      const transitBefore = await balance(inTransit);
      const { order, payment } = await refundable(env, 5_000n);
      for (let attempt = 0; attempt < 2; attempt++) {
        provider.timeoutNext('refund', { afterApplying: true });
        provider.timeoutNextFind();
      }
      const refund = await payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 5_000n,
        reference: `refund-${order}`,
      });
      expect(refund.status).toBe('succeeded');
      expect((await payments.getPayment(env.ctx(db), payment.id)).operations.at(-1)).toMatchObject({
        kind: 'refund',
        status: 'succeeded',
      });
      // The retry job has nothing left to do, and the customer hears of the refund once.
      await payments.resumeRefund(db, refund.id);
      const told = await db
        .selectFrom('events')
        .select('id')
        .where('type', '=', 'refund.succeeded')
        .where('subject_id', '=', refund.id)
        .execute();
      expect(told).toHaveLength(1);
      expect(await balance(inTransit)).toBe(transitBefore);
      await verified();
    });

    it('applies a pending refund’s later failure once, whatever order its callbacks come in', async () => {
      const env = setup({ settlement: { refund: 'pending' } });
      const { payments, provider, balance } = env;
      const transitBefore = await balance(inTransit);
      const { order, payment } = await refundable(env, 4_000n);
      const refund = await payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 4_000n,
        reference: `refund-${order}`,
      });
      expect(refund.status).toBe('pending');
      expect(await balance(inTransit)).toBe(transitBefore + 4_000n);
      provider.failPending(`refund-${order}`, 'account_closed');
      await provider.deliverPending({ order: 'reversed', duplicate: true });
      await provider.deliverPending({ order: 'shuffled', duplicate: true });
      for (const event of provider.events()) await provider.redeliver(event.eventId);
      expect(await failedPostings(env, refund.id)).toHaveLength(1);
      expect(await balance(owed(order))).toBe(4_000n);
      expect(await balance(inTransit)).toBe(transitBefore);
      expect((await payments.getPayment(env.ctx(db), payment.id)).refunds).toMatchObject([
        { status: 'failed', failureCode: 'account_closed' },
      ]);
      expect(provider.deliveryErrors).toEqual([]);
      await verified();
    });

    it('retries a failed refund once under a new reference, paying what is owed; reconciliation reports it until then', async () => {
      const env = setup({}, new Date('2026-09-01T00:00:00Z'));
      const { payments, provider, balance, ctx } = env;
      const since = env.clock.now();
      const transitBefore = await balance(inTransit);
      const { order, payment } = await refundable(env, 6_000n);
      provider.failNext('refund', 'processing_error');
      const failed = await payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor: 6_000n,
        reference: `refund-${order}`,
      });
      const owedReport = await payments.reconcile(db, { since });
      expect(owedReport.discrepancies.filter((d) => d.reference === failed.reference)).toMatchObject([
        { type: 'refund_owed', baton_amount_minor: '6000', ledger_amount_minor: '6000' },
      ]);

      // The retry fails too: it is owed again, and retried in turn.
      provider.failNext('refund', 'processing_error');
      const retry = await runInTransaction(db, (tx) =>
        payments.retryRefund(ctx(tx), { paymentId: payment.id, refundId: failed.id }),
      );
      expect(retry).toMatchObject({ status: 'pending', retryOf: failed.id, amountMinor: 6_000n });
      expect(retry.reference).not.toBe(failed.reference);
      expect(await balance(owed(order))).toBe(0n);
      expect(await balance(inTransit)).toBe(transitBefore + 6_000n);
      expect(await payments.resumeRefund(db, retry.id)).toMatchObject({ status: 'failed' });
      expect(await balance(owed(order))).toBe(6_000n);
      await expect(
        runInTransaction(db, (tx) =>
          payments.retryRefund(ctx(tx), { paymentId: payment.id, refundId: failed.id }),
        ),
      ).rejects.toMatchObject({ code: 'payments.refund_not_owed', details: { retried_by: retry.id } });

      const second = await runInTransaction(db, (tx) =>
        payments.retryRefund(ctx(tx), { paymentId: payment.id, refundId: retry.id }),
      );
      expect(await payments.resumeRefund(db, second.id)).toMatchObject({ status: 'succeeded' });
      // Sent again, it is the same refund: the provider is not asked twice.
      expect(await payments.resumeRefund(db, second.id)).toMatchObject({ status: 'succeeded' });
      await provider.deliverPending({ duplicate: true });
      expect(
        provider.operations().filter((o) => o.kind === 'refund' && o.status === 'succeeded'),
      ).toHaveLength(1);
      expect(await balance(owed(order))).toBe(0n);
      expect(await balance(inTransit)).toBe(transitBefore);
      const detail = await payments.getPayment(ctx(db), payment.id);
      expect(detail.refundsOwedMinor).toBe(0n);
      expect(detail.payment.refundedMinor).toBe(6_000n);
      await expect(
        runInTransaction(db, (tx) =>
          payments.retryRefund(ctx(tx), { paymentId: payment.id, refundId: second.id }),
        ),
      ).rejects.toMatchObject({ code: 'payments.refund_not_owed' });
      await expect(
        runInTransaction(db, (tx) =>
          payments.retryRefund(ctx(tx), { paymentId: newId('pay'), refundId: second.id }),
        ),
      ).rejects.toMatchObject({ code: 'payments.refund_not_found' });
      const settledReport = await payments.reconcile(db, { since });
      expect(
        settledReport.discrepancies.filter((d) =>
          [failed.reference, retry.reference, second.reference].includes(d.reference),
        ),
      ).toEqual([]);
      await verified();
    });
  });

  describe('chargebacks', () => {
    const partner = newId('ptn');
    const payable: AccountKey = { purpose: 'partner_payable', ownerId: partner, currency: 'EUR' };
    const receivable: AccountKey = { purpose: 'partner_receivable', ownerId: partner, currency: 'EUR' };
    const losses: AccountKey = { purpose: 'chargeback_losses', ownerId: 'platform', currency: 'EUR' };

    async function chargedBack(amountMinor: bigint) {
      const env = setup();
      const order = newId('alc');
      await env.charge(order);
      env.provider.chargeback(`charge-${order}:capture`, amountMinor, `cb-${order}`);
      await env.provider.deliverPending({ duplicate: true });
      const [chargeback] = (
        await env.payments.listChargebacks(env.ctx(db), { status: 'open', limit: 100 })
      ).items.filter((c) => c.orderRef === order);
      if (!chargeback) throw new Error('no chargeback');
      return { ...env, chargeback };
    }
    const decide = (
      env: Awaited<ReturnType<typeof chargedBack>>,
      decision: Parameters<typeof env.payments.decideChargeback>[2],
    ) =>
      runInTransaction(db, (tx) =>
        env.payments.decideChargeback(
          { ...env.ctx(tx), actor: app.baton ? { kind: 'system', name: 'op' } : actor },
          env.chargeback.id,
          decision,
        ),
      );

    it('lets the platform bear it, posting the loss once', async () => {
      const env = await chargedBack(3_000n);
      const lossesBefore = await env.balance(losses);
      expect(await env.postings('chargeback', env.chargeback.id)).toHaveLength(1);
      const decided = await decide(env, { liability: 'platform' });
      expect(decided).toMatchObject({ status: 'decided', liability: 'platform', partnerShareMinor: 0n });
      expect(await env.balance(losses)).toBe(lossesBefore);
      await expect(decide(env, { liability: 'platform' })).rejects.toMatchObject({
        code: 'payments.chargeback_already_decided',
      });
    });

    it('moves it to the partner: from its payable as far as it covers, the rest as receivable', async () => {
      const env = await chargedBack(3_000n);
      await runInTransaction(db, (tx) =>
        ledger.post(env.ctx(tx), {
          idempotencyKey: `test-earnings:${partner}`,
          cause: { kind: 'adjustment', id: partner },
          entries: [
            {
              account: { purpose: 'operator_adjustments', ownerId: 'platform', currency: 'EUR' },
              direction: 'debit',
              amountMinor: 1_000n,
            },
            { account: payable, direction: 'credit', amountMinor: 1_000n },
          ],
        }),
      );
      const lossesBefore = await env.balance(losses);
      await decide(env, { liability: 'partner', partnerId: partner });
      expect(await env.balance(payable)).toBe(0n);
      expect(await env.balance(receivable)).toBe(2_000n);
      expect(await env.balance(losses)).toBe(lossesBefore - 3_000n);
      const audit = await db
        .selectFrom('audit_records')
        .selectAll()
        .where('target_id', '=', env.chargeback.id)
        .execute();
      expect(audit.map((a) => a.action)).toEqual(['payments.chargeback.decide']);
    });

    it('splits it, and refuses a split without a share in range', async () => {
      const env = await chargedBack(3_000n);
      await expect(
        decide(env, { liability: 'split', partnerId: partner, partnerShareMinor: 3_000n }),
      ).rejects.toMatchObject({
        code: 'payments.decision_invalid',
      });
      await expect(decide(env, { liability: 'partner' })).rejects.toMatchObject({
        code: 'payments.decision_invalid',
      });
      const receivableBefore = await env.balance(receivable);
      const lossesBefore = await env.balance(losses);
      await decide(env, { liability: 'split', partnerId: partner, partnerShareMinor: 1_200n });
      expect(await env.balance(receivable)).toBe(receivableBefore + 1_200n);
      expect(await env.balance(losses)).toBe(lossesBefore - 1_200n);
    });
  });

  describe('reconciliation', () => {
    it('reports nothing when the provider, Baton and the ledger agree', async () => {
      const env = setup({}, new Date('2027-01-01T00:00:00Z'));
      const since = env.clock.now();
      await env.charge(newId('alc'));
      await env.charge(newId('alc'), 100n, TEST_CARDS.declined);
      await env.provider.deliverPending();
      const report = await env.payments.reconcile(db, { since });
      // Refunds owed are reported by every run, however old: other tests' ones are not this one's.
      expect(report.discrepancies.filter((d) => d.type !== 'refund_owed')).toEqual([]);
      expect(report.operationsChecked).toBe(3);
    });

    it('finds a capture the ledger never heard of, a settlement Baton missed, and a posting without a capture', async () => {
      const env = setup({ settlement: { capture: 'pending' } }, new Date('2028-01-01T00:00:00Z'));
      const since = env.clock.now();
      // A capture made at the provider behind Baton's back.
      await env.provider.authorize({
        reference: 'rogue',
        paymentMethod: TEST_CARDS.ok,
        amountMinor: 700n,
        currency: 'EUR',
      });
      await env.provider.capture({
        reference: 'rogue:capture',
        authorizationReference: 'rogue',
        amountMinor: 700n,
      });
      env.provider.settle('rogue:capture');
      // A capture that settled while its callback was lost.
      const order = newId('alc');
      const pending = await env.charge(order);
      env.provider.settle(`charge-${order}:capture`);
      // Money posted for a payment that was declined.
      const declined = await env.charge(newId('alc'), 100n, TEST_CARDS.declined);
      await runInTransaction(db, (tx) =>
        ledger.post(env.ctx(tx), {
          idempotencyKey: `payment:${declined.id}:capture`,
          cause: { kind: 'payment', id: declined.id },
          entries: [
            {
              account: { purpose: 'provider_clearing', ownerId: 'platform', currency: 'EUR' },
              direction: 'debit',
              amountMinor: 100n,
            },
            { account: escrow(declined.orderRef), direction: 'credit', amountMinor: 100n },
          ],
        }),
      );
      const report = await env.payments.reconcile(db, { since });
      const found = report.discrepancies
        .filter((d) => d.type !== 'refund_owed')
        .map((d) => `${d.type} ${d.reference}`)
        .sort();
      expect(found).toEqual(
        [
          'unknown_operation rogue',
          'unknown_operation rogue:capture',
          `status_mismatch charge-${order}:capture`,
          `missing_posting charge-${order}:capture`,
          `posting_without_operation charge-${declined.orderRef}`,
        ].sort(),
      );
      expect(pending.status).toBe('authorized');
      const stored = await env.payments.getReport(env.ctx(db), report.id);
      expect(stored.discrepancies).toHaveLength(report.discrepancies.length);
    });

    const refundsInTransit: AccountKey = {
      purpose: 'refunds_in_transit',
      ownerId: 'platform',
      currency: 'EUR',
    };
    /** A captured charge whose refund the refund workflow has moved into refunds in transit, and sent. */
    async function refunded(env: ReturnType<typeof setup>, amountMinor: bigint) {
      const order = newId('alc');
      const payment = await env.charge(order);
      await runInTransaction(db, (tx) =>
        ledger.post(env.ctx(tx), {
          idempotencyKey: `test-refund-move:${order}`,
          cause: { kind: 'order', id: order },
          entries: [
            { account: escrow(order), direction: 'debit', amountMinor },
            { account: refundsInTransit, direction: 'credit', amountMinor },
          ],
        }),
      );
      const refund = await env.payments.refund(db, actor, {
        paymentId: payment.id,
        amountMinor,
        reference: `refund-${order}`,
      });
      return { order, payment, refund };
    }
    /** What a run found about these references, as `type reference`. */
    const findings = (
      report: { discrepancies: readonly { type: string; reference: string }[] },
      refs: string[],
    ) =>
      report.discrepancies
        .filter((d) => refs.includes(d.reference))
        .map((d) => `${d.type} ${d.reference}`)
        .sort();

    it('reports nothing for refunds and chargebacks the ledger settled as the provider did', async () => {
      const env = setup({ settlement: { refund: 'pending' } }, new Date('2029-01-01T00:00:00Z'));
      const since = env.clock.now();
      const settled = await refunded(env, 3_000n);
      env.provider.settle(settled.refund.reference);
      const failed = await refunded(env, 2_000n);
      env.provider.failPending(failed.refund.reference, 'processing_error');
      const order = newId('alc');
      await env.charge(order);
      env.provider.chargeback(`charge-${order}:capture`, 1_500n, `cb-${order}`);
      await env.provider.deliverPending();
      const report = await env.payments.reconcile(db, { since });
      // The failed refund is owed to its customer until retried; nothing else is wrong.
      expect(report.discrepancies.filter((d) => d.type !== 'refund_owed')).toEqual([]);
      expect(findings(report, [failed.refund.reference])).toEqual([`refund_owed ${failed.refund.reference}`]);
    });

    it('reports a refund the provider finished while its callback was lost, until the callback comes', async () => {
      const env = setup({ settlement: { refund: 'pending' } }, new Date('2029-02-01T00:00:00Z'));
      const since = env.clock.now();
      const paid = await refunded(env, 3_000n);
      const failed = await refunded(env, 2_000n);
      await env.provider.deliverPending();
      expect(paid.refund.status).toBe('pending');
      // The provider settles one and fails the other; neither callback reaches Baton.
      env.provider.settle(paid.refund.reference);
      env.provider.failPending(failed.refund.reference, 'account_closed');
      const lost = env.provider.undelivered();
      const refs = [paid.refund.reference, failed.refund.reference];
      const report = await env.payments.reconcile(db, { since });
      expect(findings(report, refs)).toEqual(refs.map((r) => `refund_unsettled ${r}`).sort());
      expect(report.discrepancies.find((d) => d.reference === paid.refund.reference)).toMatchObject({
        provider_status: 'succeeded',
        baton_status: 'pending',
        ledger_amount_minor: null,
      });
      expect(lost).toHaveLength(2);
      // The provider sends the callbacks again: the refunds settle, and the next run agrees.
      await env.provider.deliverPending();
      const after = await env.payments.reconcile(db, { since });
      expect(findings(after, refs)).toEqual([`refund_owed ${failed.refund.reference}`]);
    });

    it('reports a chargeback whose callback was lost, until the callback comes', async () => {
      const env = setup({}, new Date('2029-03-01T00:00:00Z'));
      const since = env.clock.now();
      const order = newId('alc');
      await env.charge(order);
      await env.provider.deliverPending();
      env.provider.chargeback(`charge-${order}:capture`, 4_000n, `cb-${order}`);
      const report = await env.payments.reconcile(db, { since });
      expect(report.discrepancies.filter((d) => d.reference === `cb-${order}`)).toMatchObject([
        {
          type: 'chargeback_unrecorded',
          kind: 'chargeback',
          provider_amount_minor: '4000',
          baton_status: null,
        },
      ]);
      await env.provider.deliverPending();
      const after = await env.payments.reconcile(db, { since });
      expect(findings(after, [`cb-${order}`])).toEqual([]);
    });
  });
});
