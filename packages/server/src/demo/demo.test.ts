import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { systemActor } from '../kernel/actor.js';
import { ManualClock, systemClock } from '../kernel/clock.js';
import type { Context } from '../kernel/context.js';
import { createBaton, startServer } from '../main.js';
import { type AccountPurpose, verifyLedger } from '../modules/ledger/index.js';
import { createTestDatabase, TEST_DATABASE_KIND } from '../testing/test-database.js';
import { DEMO_POSTING_APPROVAL_ABOVE } from './ecosystem.js';
import { DemoRefusedError, demoConfig, runDemo } from './index.js';

describe(`the demo ecosystem (${TEST_DATABASE_KIND})`, async () => {
  const database = await createTestDatabase();
  const clock = new ManualClock();
  const baton = await createBaton({
    config: demoConfig(loadConfig({ BATON_LOG_LEVEL: 'silent' }, {})),
    database,
    clock,
    workJobs: false,
  });
  afterAll(async () => {
    await baton.close();
    await database.close();
  });
  const startedAt = systemClock.now();
  const result = await runDemo(baton, { clock, partners: 30, orders: 20, seed: 7 });
  const { summary } = result;
  const { fulfilment, ledger } = baton.services;
  const ctx = (): Context => ({
    db: database.db,
    actor: systemActor('test'),
    now: clock.now(),
    requestId: null,
    ip: null,
  });
  const balance = async (purpose: AccountPurpose, ownerId = 'platform') => {
    const accounts = await ledger.listAccounts(ctx(), { purpose, ownerId, currency: 'EUR', limit: 1 });
    const account = accounts.items[0];
    return account ? (await ledger.balance(ctx(), { purpose, ownerId, currency: 'EUR' })).balanceMinor : 0n;
  };
  const orders = (await fulfilment.listOrders(ctx(), { limit: 1000 })).items;
  const workOrders = (await fulfilment.listWorkOrders(ctx(), { limit: 1000 })).items;

  it('places the orders asked for and closes every one of them, in the past', () => {
    expect(orders).toHaveLength(20);
    expect(summary.orders).toMatchObject({ placed: 20, open: 0 });
    expect(orders.every((order) => ['completed', 'failed', 'cancelled'].includes(order.status))).toBe(true);
    expect(summary.to.getTime()).toBeLessThan(startedAt.getTime());
    expect(Math.max(...orders.map((order) => order.closedAt?.getTime() ?? Infinity))).toBeLessThanOrEqual(
      summary.to.getTime(),
    );
    expect(summary.partners.total).toBe(30);
    expect(summary.offers).toBeGreaterThan(30);
    expect(summary.offerings).toBe(3);
  });

  it('tells every kind of story at least once: completed, re-planned, late, rejected and refunded, compensated, cancelled, refunded by hand', async () => {
    expect(summary.orders.completed).toBeGreaterThan(0);
    const partnersPerLeg = new Map<string, Set<string>>();
    for (const workOrder of workOrders) {
      const leg = `${workOrder.orderId}/${workOrder.stepKey}`;
      partnersPerLeg.set(leg, (partnersPerLeg.get(leg) ?? new Set()).add(workOrder.partnerId));
    }
    expect([...partnersPerLeg.values()].some((partners) => partners.size > 1)).toBe(true);
    expect(workOrders.some((workOrder) => workOrder.status === 'declined')).toBe(true);
    expect(workOrders.some((workOrder) => workOrder.status === 'expired')).toBe(true);
    expect(workOrders.some((workOrder) => workOrder.late && workOrder.deliveredAt !== null)).toBe(true);
    const views = await Promise.all(orders.map((order) => fulfilment.getOrder(ctx(), order.id)));
    const refundedLegs = views.flatMap((view) => view.legs.filter((leg) => leg.status === 'refunded'));
    expect(refundedLegs.length).toBeGreaterThan(0);
    expect(views.some((view) => view.order.status === 'failed' && view.order.refundedMinor > 0n)).toBe(true);
    expect(
      orders.some((order) => order.status === 'cancelled' && order.failureCode === 'payment_declined'),
    ).toBe(true);
    expect(summary.legs.redone).toBeGreaterThan(0);
    // A goodwill refund by hand: an order completed with every leg done, and money given back.
    expect(
      views.some(
        (view) =>
          view.order.status === 'completed' &&
          view.order.refundedMinor > 0n &&
          view.legs.every((leg) => leg.status === 'done'),
      ),
    ).toBe(true);
    // Beyond the demo's threshold, a goodwill refund waited for a second operator's approval.
    const requests = await baton.http.inject({
      method: 'GET',
      url: '/v1/refund-requests?limit=100',
      headers: { authorization: `Bearer ${result.keys.operator}` },
    });
    const filed = (
      requests.json() as { data: { status: string; requested_by: string; decided_by: string }[] }
    ).data;
    expect(filed.length).toBeGreaterThan(0);
    for (const request of filed) {
      expect(request.status).toBe('approved');
      expect(request.decided_by).not.toBe(request.requested_by);
    }
    // Money moved through the ledger by hand beyond the demo's threshold needs a second operator too.
    const thresholds = await baton.http.inject({
      method: 'GET',
      url: '/v1/ledger/approval-thresholds',
      headers: { authorization: `Bearer ${result.keys.operator}` },
    });
    expect((thresholds.json() as { data: { approval_above: { amount: string } }[] }).data).toEqual([
      expect.objectContaining({
        approval_above: expect.objectContaining({ amount: DEMO_POSTING_APPROVAL_ABOVE }),
      }),
    ]);
  });

  it('reports the money as the ledger has it, and every euro captured is accounted for', async () => {
    const { money } = summary;
    // Refunds have reached the customers: what the provider holds is what was captured less them.
    expect(await balance('refunds_in_transit')).toBe(0n);
    expect(await balance('provider_clearing')).toBe(money.gmvMinor - money.refundsMinor);
    expect(money.gmvMinor).toBeGreaterThan(0n);
    expect(money.commissionMinor).toBe(await balance('platform_commission'));
    expect(money.marginMinor).toBe(await balance('platform_margin'));
    expect(money.revenueMinor).toBe(money.commissionMinor + money.marginMinor);
    expect(money.subsidySpendMinor).toBeGreaterThan(0n);
    expect(money.gmvMinor - money.refundsMinor).toBe(
      money.partnerEarningsMinor - money.partnerDebtsMinor + money.revenueMinor - money.subsidySpendMinor,
    );
    const captured = orders
      .filter((order) => order.status !== 'cancelled')
      .reduce((sum, order) => sum + order.totalMinor, 0n);
    expect(money.gmvMinor).toBe(captured);
    expect(summary.takeRate).toBeCloseTo(
      Number(money.revenueMinor) / Number(money.gmvMinor - money.refundsMinor),
      10,
    );
  });

  it('leaves the books balanced and nothing in the escrow of any order', async () => {
    const report = await verifyLedger(database.db);
    expect(report.problems).toEqual([]);
    expect(report.transactions).toBeGreaterThan(0);
    for (const order of orders) expect(await balance('customer_escrow', order.id)).toBe(0n);
  });

  it('defines its rates from what happened to the orders and the legs', () => {
    const delivered = workOrders.filter((workOrder) => workOrder.deliveredAt !== null);
    const onTime = delivered.filter(
      (workOrder) => (workOrder.deliveredAt as Date).getTime() <= workOrder.dueBy.getTime(),
    );
    expect(summary.legs.delivered).toBe(delivered.length);
    expect(summary.onTimeRate).toBeCloseTo(onTime.length / delivered.length, 10);
    expect(summary.onTimeRate).toBeLessThan(1);
    expect(summary.fillRate).toBeCloseTo(summary.orders.completed / summary.quotes.requests, 10);
    expect(summary.quotes.refused).toBeGreaterThan(0);
  });

  it('refuses a database that already has data, and writes nothing', async () => {
    const before = await fulfilment.listOrders(ctx(), { limit: 1000 });
    await expect(runDemo(baton, { clock, partners: 30, orders: 20 })).rejects.toBeInstanceOf(
      DemoRefusedError,
    );
    expect((await fulfilment.listOrders(ctx(), { limit: 1000 })).items).toHaveLength(before.items.length);
  });
});

describe.runIf(TEST_DATABASE_KIND === 'embedded')('a server on a new embedded database', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads the demo before it listens, creates the admin key, and loads it only once', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'baton-demo-'));
    const config = loadConfig(
      { BATON_DATA_DIR: path.join(dir, 'data'), BATON_PORT: '0', BATON_LOG_LEVEL: 'silent' },
      {},
    );
    const phases = new Set<string>();
    const first = await startServer(config, {
      demo: { partners: 15, orders: 8, onProgress: (progress) => phases.add(progress.phase) },
    });
    try {
      expect(first.demo?.summary.orders.placed).toBe(8);
      expect([...phases]).toEqual(['ecosystem', 'orders', 'books']);
      expect(first.bootstrapSecret).toMatch(/^baton_sk_/);
      const listed = await fetch(`${first.url}/v1/orders?limit=100`, {
        headers: { authorization: `Bearer ${first.bootstrapSecret}` },
      });
      expect(((await listed.json()) as { data: unknown[] }).data).toHaveLength(8);
      // The demo's own keys work on the server too.
      const partner = await fetch(`${first.url}/v1/work-orders?limit=5`, {
        headers: { authorization: `Bearer ${first.demo?.keys.partner?.key}` },
      });
      expect(partner.status).toBe(200);
    } finally {
      await first.close();
    }
    const again = await startServer(config, { demo: { partners: 15, orders: 8 } });
    try {
      expect(again.demo).toBeNull();
      expect(again.bootstrapSecret).toBeNull();
    } finally {
      await again.close();
    }
  });
});
