import { describe, expect, it } from 'vitest';
import {
  createFulfilmentFixture,
  type Money,
  type OrderBody,
  type Partner,
  type QuoteBody,
  REGION,
  type WorkOrderBody,
} from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * Customer-side subsidies on real orders: a programme that covers the customer pays its share of
 * the platform's margin into the order's escrow, the customer is charged the rest, and refunds
 * are split between the customer and the programme's budget.
 */
describe(`customer-side subsidies on orders (${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture();
  const { app, ok, expectProblem } = f;

  await f.capability('hemming');
  await f.capability('pressing');
  // 40.00 + 20.00 of partners' prices, 10 % margin: 66.00, of which 6.00 is the margin.
  const hemmer = await f.partnerOffering('hemming', { price: '40.00', leadTimeHours: 2 });
  const presser = await f.partnerOffering('pressing', { price: '20.00', leadTimeHours: 2 });
  const partners = new Map<string, Partner>([
    [hemmer.id, hemmer],
    [presser.id, presser],
  ]);
  await f.publishOffering('alteration', {
    name: 'Alteration',
    pricing: { kind: 'cost_plus', margin_bps: 1000 },
    rejection_policy: 'refund',
    steps: [
      { key: 'hemming', name: 'Hemming', capability: 'hemming' },
      { key: 'pressing', name: 'Pressing', capability: 'pressing' },
    ],
  });

  type QuoteWithSubsidy = QuoteBody & {
    subsidy: { amount: Money; kind: string; programme_id: string | null } | null;
    charge: Money;
  };
  type OrderWithSubsidy = OrderBody & {
    subsidy: Money;
    charged: Money;
    subsidy_programme_id: string | null;
    subsidy_returned: Money;
  };

  async function programme(body: {
    segment: string;
    shareBps: number;
    budget: string;
    cap: string;
  }): Promise<string> {
    const now = app.clock.now().getTime();
    const created = ok<{ id: string }>(
      await app.request('POST', '/v1/subsidies/programmes', {
        body: {
          name: `Cold start for ${body.segment}`,
          side: 'customer',
          kind: 'waiver',
          share_bps: body.shareBps,
          budget: { amount: body.budget, currency: 'EUR' },
          cap_per_participant: { amount: body.cap, currency: 'EUR' },
          starts_at: new Date(now - 1000).toISOString(),
          ends_at: new Date(now + 30 * 24 * 60 * 60 * 1000).toISOString(),
          targeting: { regions: [REGION], customer_segments: [body.segment] },
        },
      }),
      201,
    );
    ok(
      await app.request('POST', `/v1/subsidies/programmes/${created.id}/activate`, {
        headers: { 'idempotency-key': `activate-${created.id}` },
      }),
    );
    return created.id;
  }

  async function customerOf(segment: string | null) {
    const buyer = await f.customer();
    if (segment !== null) {
      ok(
        await app.request('PUT', `/v1/customers/${buyer.id}/segment`, {
          body: { segment, reason: 'Reviewed by a test.' },
        }),
      );
    }
    return buyer;
  }

  async function quote(buyer: { key: string }): Promise<QuoteWithSubsidy> {
    return ok<QuoteWithSubsidy>(
      await f.quote(buyer.key, { offering: 'alteration', quantity: 1, deadline: f.inHours(48) }),
      201,
    );
  }

  async function payment(id: string) {
    return ok<{ amount: Money; captured: Money; refunded: Money; status: string }>(
      await app.request('GET', `/v1/payments/${id}`),
    );
  }

  async function report(programmeId: string) {
    return ok<{ remaining: Money; participants: { data: { participant_id: string; spent: Money }[] } }>(
      await app.request('GET', `/v1/subsidies/programmes/${programmeId}/report`),
    );
  }

  const spentBy = async (programmeId: string, customerId: string) =>
    (await report(programmeId)).participants.data.find((p) => p.participant_id === customerId)?.spent
      .amount_minor ?? '0';

  /** Delivers every open leg of an order and has the customer judge it. */
  async function deliverAll(
    buyer: { key: string },
    orderId: string,
    judge: Record<string, 'confirm' | 'reject'>,
  ) {
    const order = await f.readOrder(app.adminKey, orderId);
    expect(order.status).toBe('in_progress');
    for (const leg of order.legs) {
      const workOrder = ok<WorkOrderBody>(await app.request('GET', `/v1/work-orders/${leg.work_order_id}`));
      const partner = partners.get(workOrder.partner_id) as Partner;
      for (const action of ['accept', 'start', 'deliver']) ok(await f.act(partner, workOrder.id, action));
      ok(await f.judge(buyer.key, orderId, leg.step, judge[leg.step] ?? 'confirm'));
    }
    await f.runJobs();
  }

  it('takes the subsidy off the charge, pays it from the budget into escrow, and completes with the books clean', async () => {
    const startup = await programme({ segment: 'startup', shareBps: 5000, budget: '20.00', cap: '5.00' });
    const buyer = await customerOf('startup');

    // Half the margin of 6.00: the customer sees its discount and the charge, not the programme.
    const quoted = await quote(buyer);
    expect(quoted.total.amount).toBe('66.00');
    expect(quoted.subsidy).toEqual({
      amount: expect.objectContaining({ amount: '3.00' }),
      kind: 'waiver',
      programme_id: null,
    });
    expect(quoted.charge.amount).toBe('63.00');
    const operatorQuote = ok<QuoteWithSubsidy>(await app.request('GET', `/v1/quotes/${quoted.id}`));
    expect(operatorQuote.subsidy?.programme_id).toBe(startup);

    const marginBefore = await f.balance('platform_margin', 'platform');
    const request = () =>
      app.request<OrderWithSubsidy>('POST', '/v1/orders', {
        key: buyer.key,
        body: { quote_id: quoted.id, payment_method: 'pm_card_ok' },
        headers: { 'idempotency-key': `subsidised-${quoted.id}` },
      });
    const placed = ok<OrderWithSubsidy>(await request(), 201);
    expect([placed.total.amount, placed.subsidy.amount, placed.charged.amount]).toEqual([
      '66.00',
      '3.00',
      '63.00',
    ]);
    expect(placed.subsidy_programme_id).toBeNull();
    // The same request again is the same order: no second subsidy.
    const again = ok<OrderWithSubsidy>(await request(), 201);
    expect(again.id).toBe(placed.id);
    expect(await f.balance('subsidy_budget', startup)).toBe(2000n - 300n);
    await f.runJobs();

    const paid = await payment(placed.payment_id as string);
    expect([paid.amount.amount, paid.captured.amount]).toEqual(['63.00', '63.00']);
    expect(await f.balance('customer_escrow', placed.id)).toBe(6600n);
    const operatorOrder = ok<OrderWithSubsidy>(await app.request('GET', `/v1/orders/${placed.id}`));
    expect(operatorOrder.subsidy_programme_id).toBe(startup);

    await deliverAll(buyer, placed.id, {});
    expect((await f.readOrder(buyer.key, placed.id)).status).toBe('completed');
    // The platform's margin is recognised whole: the subsidy is the programme's cost.
    expect((await f.balance('platform_margin', 'platform')) - marginBefore).toBe(600n);
    await f.expectBooksClean([placed.id]);

    // The cap is 5.00 per customer: 2.00 is left for the second order, nothing for a third.
    const second = await quote(buyer);
    expect([second.subsidy?.amount.amount, second.charge.amount]).toEqual(['2.00', '64.00']);
    const secondOrder = ok<OrderWithSubsidy>(await f.order(buyer.key, second.id), 201);
    expect(secondOrder.charged.amount).toBe('64.00');
    await f.runJobs();
    expect((await payment(secondOrder.payment_id as string)).captured.amount).toBe('64.00');
    const third = await quote(buyer);
    expect([third.subsidy, third.charge.amount]).toEqual([null, '66.00']);
    expect(await spentBy(startup, buyer.id)).toBe('500');
    expect((await report(startup)).remaining.amount).toBe('15.00');

    // A customer of no segment is not covered.
    const other = await quote(await customerOf(null));
    expect([other.subsidy, other.charge.amount]).toEqual([null, '66.00']);
    await deliverAll(buyer, secondOrder.id, {});
    await f.expectBooksClean([placed.id, secondOrder.id]);
  });

  it('stops when its budget runs out, and refuses an order whose quoted subsidy can no longer be paid', async () => {
    const newcomers = await programme({ segment: 'newcomer', shareBps: 5000, budget: '4.00', cap: '5.00' });
    const first = await customerOf('newcomer');
    const second = await customerOf('newcomer');
    const firstQuote = await quote(first);
    const secondQuote = await quote(second);
    expect(firstQuote.subsidy?.amount.amount).toBe('3.00');
    expect(secondQuote.subsidy?.amount.amount).toBe('3.00');

    ok(await f.order(first.key, firstQuote.id), 201);
    // 1.00 is left: the second customer is not charged more than quoted, it is asked to quote again.
    const refused = await f.order(second.key, secondQuote.id);
    expectProblem(refused, 409, 'orders.quote_subsidy_unavailable');
    expect(await f.balance('subsidy_budget', newcomers)).toBe(100n);
    const unordered = ok<QuoteWithSubsidy>(await app.request('GET', `/v1/quotes/${secondQuote.id}`));
    expect(unordered.status).toBe('open');

    const requoted = await quote(second);
    expect([requoted.subsidy?.amount.amount, requoted.charge.amount]).toEqual(['1.00', '65.00']);
    const placed = ok<OrderWithSubsidy>(await f.order(second.key, requoted.id), 201);
    expect(placed.charged.amount).toBe('65.00');
    await f.runJobs();
    expect((await payment(placed.payment_id as string)).captured.amount).toBe('65.00');
    const exhausted = ok<{ status: string }>(
      await app.request('GET', `/v1/subsidies/programmes/${newcomers}`),
    );
    expect(exhausted.status).toBe('exhausted');
    const third = await quote(await customerOf('newcomer'));
    expect([third.subsidy, third.charge.amount]).toEqual([null, '66.00']);
  });

  it('gives the whole subsidy back to the budget when the payment is declined', async () => {
    const declined = await programme({ segment: 'declined', shareBps: 5000, budget: '5.00', cap: '5.00' });
    const buyer = await customerOf('declined');
    const quoted = await quote(buyer);
    const placed = ok<OrderWithSubsidy>(await f.order(buyer.key, quoted.id, 'pm_card_declined'), 201);
    expect(await f.balance('subsidy_budget', declined)).toBe(200n);
    await f.runJobs();
    const cancelled = ok<OrderWithSubsidy>(
      await app.request('GET', `/v1/orders/${placed.id}`, { key: buyer.key }),
    );
    expect([cancelled.status, cancelled.subsidy_returned.amount]).toEqual(['cancelled', '3.00']);
    expect(await f.balance('subsidy_budget', declined)).toBe(500n);
    expect(await spentBy(declined, buyer.id)).toBe('0');
    await f.expectBooksClean([placed.id]);
  });

  it('splits a refund of a subsidised order between the customer and the budget, summing to the whole', async () => {
    // 26.83 % of the 6.00 margin: 1.61 of subsidy, 64.39 charged.
    const returning = await programme({ segment: 'returning', shareBps: 2683, budget: '20.00', cap: '5.00' });
    const buyer = await customerOf('returning');
    const quoted = await quote(buyer);
    expect([quoted.subsidy?.amount.amount, quoted.charge.amount]).toEqual(['1.61', '64.39']);
    const placed = ok<OrderWithSubsidy>(await f.order(buyer.key, quoted.id), 201);
    await f.runJobs();
    expect(await spentBy(returning, buyer.id)).toBe('161');

    // The pressing leg (20.00 + 2.00 of margin) is rejected and refunded: 22.00 × 64.39 / 66.00 is
    // 21.4633 for the customer, 22.00 × 1.61 / 66.00 is 0.5367 for the programme; by largest
    // remainder 21.46 and 0.54.
    await deliverAll(buyer, placed.id, { pressing: 'reject' });
    const refunded = ok<OrderWithSubsidy>(
      await app.request('GET', `/v1/orders/${placed.id}`, { key: buyer.key }),
    );
    expect(refunded.status).toBe('completed');
    expect([refunded.refunded.amount, refunded.subsidy_returned.amount]).toEqual(['21.46', '0.54']);
    const paid = await payment(placed.payment_id as string);
    expect([paid.captured.amount, paid.refunded.amount]).toEqual(['64.39', '21.46']);
    expect(await f.balance('subsidy_budget', returning)).toBe(2000n - 161n + 54n);
    expect(await spentBy(returning, buyer.id)).toBe('107');
    await f.expectBooksClean([placed.id]);
  });
});
