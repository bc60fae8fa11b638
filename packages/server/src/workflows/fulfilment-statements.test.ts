import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  createFulfilmentFixture,
  type OrderBody,
  type QuoteBody,
  type WorkOrderBody,
} from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * What placing an order and confirming a leg cost the database: statements per call, counted at
 * the pool's clients (round trips depend on timing, statements do not). The limits are what
 * these calls cost when they were last made cheaper, so that a change that adds a statement to
 * them is a decision, not an accident.
 */

/**
 * Statements of one `POST /v1/orders`, in a warm process, without the job queue's (one of them
 * reads which fee schedule version is in force, and one its customer's segment and its partners'
 * tiers: the order keeps those the fee rules matched on when it was placed).
 */
const ORDER_STATEMENTS_MAX = 14;
/**
 * Statements of the first confirm of an order's leg, in a warm process (the
 * order's escrow account is read once, then remembered). Two of them are the savepoint around a
 * release that charges commission, sent with the statements after them: a release replayed with
 * other amounts undoes the subsidy it applied (settlement's `postRelease`).
 */
const CONFIRM_STATEMENTS_MAX = 15;

const TRANSACTION_BEGIN = /^\s*(begin|start\s+transaction)\b/i;
const TRANSACTION_END = /^\s*(commit|rollback)\s*$/i;

describe(`statements of the order and confirm calls (${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture();
  const { app, ok } = f;
  for (const key of ['make', 'pack', 'ship']) await f.capability(key);
  const partners = {
    make: await f.partnerOffering('make', { price: '10.00' }),
    pack: await f.partnerOffering('pack', { price: '4.00' }),
    ship: await f.partnerOffering('ship', { price: '6.00' }),
  };
  await f.publishOffering('parcel', {
    name: 'Parcel',
    pricing: { kind: 'cost_plus', margin_bps: 1500 },
    steps: [
      { key: 'make', name: 'Make', capability: 'make' },
      { key: 'pack', name: 'Pack', capability: 'pack' },
      { key: 'ship', name: 'Ship', capability: 'ship', after: ['make', 'pack'] },
    ],
  });
  const buyer = await f.customer();

  // Every client the pool hands out is counted once it is wrapped.
  let statements = 0;
  const wrapped = new WeakSet<pg.PoolClient>();
  app.baton.database.pool.on('acquire', (client: pg.PoolClient) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    // Only the statements of transactions are the calls' own: reads outside any transaction are
    // the process's background work (the event tail's polls, an API key re-read every few
    // seconds), which can fall into a call's window, on the embedded database on its connection.
    let inTransaction = false;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const text = (typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string }).text) ?? '';
      if (TRANSACTION_BEGIN.test(text)) inTransaction = true;
      // The job queue's statements are the job library's: it adds some now and then to refresh
      // its own caches, so they are left out, and the limits below count one job insert less.
      if (inTransaction && !text.includes('pgboss.')) statements += 1;
      if (TRANSACTION_END.test(text)) inTransaction = false;
      return query(...args);
    };
  });
  async function counted<T>(call: () => Promise<T>): Promise<{ result: T; statements: number }> {
    statements = 0;
    const result = await call();
    return { result, statements };
  }

  /** An order placed, paid and started, with its legs' work orders. */
  async function placeAndDeliver(): Promise<{
    order: OrderBody;
    placed: { statements: number };
  }> {
    const quote = ok<QuoteBody>(
      await f.quote(buyer.key, { offering: 'parcel', quantity: 1, deadline: f.inHours(24 * 7) }),
      201,
    );
    const placed = await counted(() => f.order(buyer.key, quote.id));
    const order = ok<OrderBody>(placed.result, 201);
    await f.runJobs();
    return { order, placed };
  }

  async function deliver(orderId: string, step: 'make' | 'pack' | 'ship'): Promise<void> {
    const current = await f.readOrder(buyer.key, orderId);
    const workOrderId = current.legs.find((leg) => leg.step === step)?.work_order_id as string;
    for (const action of ['accept', 'start', 'deliver']) {
      ok<WorkOrderBody>(await f.act(partners[step], workOrderId, action));
    }
  }

  // The first order warms the process's caches (fee schedule, offering version, accounts).
  const warm = await placeAndDeliver();
  for (const step of ['make', 'pack', 'ship'] as const) {
    await deliver(warm.order.id, step);
    ok<OrderBody>(await f.judge(buyer.key, warm.order.id, step, 'confirm'));
  }

  it('places an order in a bounded number of statements', async () => {
    const { order, placed } = await placeAndDeliver();
    expect(order.status).toBe('awaiting_payment');
    expect(placed.statements).toBeLessThanOrEqual(ORDER_STATEMENTS_MAX);
  });

  it('confirms a leg in a bounded number of statements, answering with the order as it then reads', async () => {
    const { order } = await placeAndDeliver();
    await deliver(order.id, 'make');
    const confirmed = await counted(() => f.judge(buyer.key, order.id, 'make', 'confirm'));
    const body = ok<OrderBody>(confirmed.result);
    expect(body.legs.find((leg) => leg.step === 'make')?.status).toBe('done');
    // The answer is the order as it now reads.
    expect(body).toEqual(await f.readOrder(buyer.key, order.id));
    expect(confirmed.statements).toBeLessThanOrEqual(CONFIRM_STATEMENTS_MAX);
  });
});
