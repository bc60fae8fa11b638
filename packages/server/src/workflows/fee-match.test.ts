import { describe, expect, it } from 'vitest';
import {
  createFulfilmentFixture,
  type OrderBody,
  type Partner,
  type QuoteBody,
  type WorkOrderBody,
} from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * The partner's tier and the customer's segment reach the fees of real orders: the fee rules
 * that match on them charge a confirmed leg, a subsidy programme for a segment pays for it, and
 * an order keeps the tier and the segment it was placed with, as it keeps its fee schedule.
 */
describe(`tiers and segments in the fees of orders (${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture();
  const { app, ok, expectProblem } = f;

  await f.capability('hemming');
  await f.capability('pressing');
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
  // 10 % for everyone, 5 % for gold partners, 2 % on the orders of small businesses.
  f.advance(1000);
  ok(
    await app.request('POST', '/v1/fee-schedule-versions', {
      body: {
        currency: 'EUR',
        note: 'Tiers and segments',
        rules: [
          { commission_bps: 1000 },
          { tier: 'gold', commission_bps: 500 },
          { customer_segment: 'smb', commission_bps: 200 },
        ],
      },
    }),
    201,
  );
  f.advance(1000);

  async function setTier(partnerId: string, tier: string) {
    ok(
      await app.request('PUT', `/v1/partners/${partnerId}/tier`, {
        body: { tier, reason: 'Reviewed by a test.' },
      }),
    );
  }

  async function setSegment(customerId: string, segment: string | null) {
    ok(
      await app.request('PUT', `/v1/customers/${customerId}/segment`, {
        body: { segment, reason: 'Reviewed by a test.' },
      }),
    );
  }

  async function place(buyer: { key: string }): Promise<OrderBody> {
    const quoted = ok<QuoteBody>(
      await f.quote(buyer.key, { offering: 'alteration', quantity: 1, deadline: f.inHours(48) }),
      201,
    );
    const placed = ok<OrderBody>(await f.order(buyer.key, quoted.id), 201);
    await f.runJobs();
    return placed;
  }

  /**
   * Delivers and confirms every leg of an order; returns what each leg's partner was paid, and
   * the leg's price, by step.
   */
  async function complete(
    buyer: { key: string },
    orderId: string,
  ): Promise<Map<string, { paidMinor: bigint; priceMinor: bigint }>> {
    const order = await f.readOrder(app.adminKey, orderId);
    expect(order.status).toBe('in_progress');
    const paid = new Map<string, { paidMinor: bigint; priceMinor: bigint }>();
    for (const leg of order.legs) {
      const workOrder = ok<WorkOrderBody>(await app.request('GET', `/v1/work-orders/${leg.work_order_id}`));
      const partner = partners.get(workOrder.partner_id) as Partner;
      for (const action of ['accept', 'start', 'deliver']) ok(await f.act(partner, workOrder.id, action));
      const before = await f.balance('partner_payable', partner.id);
      ok(await f.judge(buyer.key, orderId, leg.step, 'confirm'));
      paid.set(leg.step, {
        paidMinor: (await f.balance('partner_payable', partner.id)) - before,
        priceMinor: BigInt(leg.price?.amount_minor as string),
      });
    }
    return paid;
  }

  const less = (priceMinor: bigint, bps: bigint) => priceMinor - (priceMinor * bps) / 10_000n;

  it("charges a gold partner's confirmed leg the gold rule's commission, and a standard partner's the default", async () => {
    await setTier(hemmer.id, 'gold');
    try {
      const buyer = await f.customer();
      const placed = await place(buyer);
      // Operators see what the order's fees match on; the customer does not.
      const operatorView = ok<{
        customer_segment: string | null;
        partner_tiers: Record<string, string> | null;
      }>(await app.request('GET', `/v1/orders/${placed.id}`));
      expect(operatorView.partner_tiers).toEqual({ [hemmer.id]: 'gold', [presser.id]: 'standard' });
      expect(operatorView.customer_segment).toBeNull();
      const customerView = ok<{ partner_tiers: unknown }>(
        await app.request('GET', `/v1/orders/${placed.id}`, { key: buyer.key }),
      );
      expect(customerView.partner_tiers).toBeNull();

      const paid = await complete(buyer, placed.id);
      const hemming = paid.get('hemming') as { paidMinor: bigint; priceMinor: bigint };
      const pressing = paid.get('pressing') as { paidMinor: bigint; priceMinor: bigint };
      expect(hemming.paidMinor).toBe(less(hemming.priceMinor, 500n));
      expect(pressing.paidMinor).toBe(less(pressing.priceMinor, 1000n));
      await f.expectBooksClean([placed.id]);
    } finally {
      await setTier(hemmer.id, 'standard');
    }
  });

  it("charges the orders of a customer of a segment that segment's rule, in the quote and at release", async () => {
    const buyer = await f.customer();
    await setSegment(buyer.id, 'smb');
    const quoted = ok<QuoteBody>(
      await f.quote(app.adminKey, {
        offering: 'alteration',
        quantity: 1,
        deadline: f.inHours(48),
        customer_id: buyer.id,
      }),
      201,
    );
    // The quote's commission preview is 2 % of both legs' prices: 0.80 + 0.40.
    expect(quoted.commission?.amount_minor).toBe('120');
    const placed = await place(buyer);
    const paid = await complete(buyer, placed.id);
    for (const leg of paid.values()) expect(leg.paidMinor).toBe(less(leg.priceMinor, 200n));
    // Another customer, of no segment, pays the default.
    const other = await f.customer();
    const otherOrder = await place(other);
    for (const leg of (await complete(other, otherOrder.id)).values()) {
      expect(leg.paidMinor).toBe(less(leg.priceMinor, 1000n));
    }
  });

  it("pays a partner's commission from a programme for the order's customer segment, and only for it", async () => {
    const now = app.clock.now().getTime();
    const programme = ok<{ id: string }>(
      await app.request('POST', '/v1/subsidies/programmes', {
        body: {
          name: 'Small businesses pay no commission to their partners',
          side: 'partner',
          kind: 'waiver',
          share_bps: 10_000,
          budget: { amount: '100.00', currency: 'EUR' },
          cap_per_participant: { amount: '50.00', currency: 'EUR' },
          starts_at: new Date(now - 1000).toISOString(),
          ends_at: new Date(now + 30 * 24 * 60 * 60 * 1000).toISOString(),
          targeting: { customer_segments: ['startup'] },
        },
      }),
      201,
    );
    ok(
      await app.request('POST', `/v1/subsidies/programmes/${programme.id}/activate`, {
        headers: { 'idempotency-key': `activate-${programme.id}` },
      }),
    );
    try {
      const startup = await f.customer();
      await setSegment(startup.id, 'startup');
      const subsidised = await place(startup);
      // The startup segment has no fee rule: 10 %, which the programme pays in full.
      for (const leg of (await complete(startup, subsidised.id)).values()) {
        expect(leg.paidMinor).toBe(leg.priceMinor);
      }
      const budget = await f.balance('subsidy_budget', programme.id);
      expect(budget).toBe(10_000n - 400n - 200n);

      const other = await f.customer();
      const unsubsidised = await place(other);
      for (const leg of (await complete(other, unsubsidised.id)).values()) {
        expect(leg.paidMinor).toBe(less(leg.priceMinor, 1000n));
      }
      expect(await f.balance('subsidy_budget', programme.id)).toBe(budget);
    } finally {
      ok(
        await app.request('POST', `/v1/subsidies/programmes/${programme.id}/cancel`, {
          headers: { 'idempotency-key': `cancel-${programme.id}` },
        }),
      );
    }
  });

  it('keeps the tier and the segment an order was placed with when an operator changes them later', async () => {
    const buyer = await f.customer();
    const placed = await place(buyer);
    // After the order: the hemmer becomes gold and the customer a small business.
    await setTier(hemmer.id, 'gold');
    await setSegment(buyer.id, 'smb');
    try {
      const paid = await complete(buyer, placed.id);
      for (const leg of paid.values()) expect(leg.paidMinor).toBe(less(leg.priceMinor, 1000n));
      // An order placed now has them: gold beats the segment (the tier ranks before it).
      const next = await place(buyer);
      const nextPaid = await complete(buyer, next.id);
      const hemming = nextPaid.get('hemming') as { paidMinor: bigint; priceMinor: bigint };
      const pressing = nextPaid.get('pressing') as { paidMinor: bigint; priceMinor: bigint };
      expect(hemming.paidMinor).toBe(less(hemming.priceMinor, 500n));
      expect(pressing.paidMinor).toBe(less(pressing.priceMinor, 200n));
    } finally {
      await setTier(hemmer.id, 'standard');
    }
  });

  it("quotes a partner's fees at its own tier unless another is asked for", async () => {
    await setTier(presser.id, 'gold');
    try {
      const quote = (body: Record<string, unknown>) =>
        app.request<{ commission: { amount_minor: string }; tier: string }>('POST', '/v1/fees/quotes', {
          key: presser.key,
          body: {
            capability: 'pressing',
            partner_id: presser.id,
            amount: { amount: '100.00', currency: 'EUR' },
            ...body,
          },
        });
      const own = ok(await quote({}));
      expect(own).toMatchObject({ tier: 'gold', commission: { amount_minor: '500' } });
      const asStandard = ok(await quote({ tier: 'standard' }));
      expect(asStandard).toMatchObject({ tier: 'standard', commission: { amount_minor: '1000' } });
    } finally {
      await setTier(presser.id, 'standard');
    }
    expectProblem(
      await app.request('PUT', `/v1/partners/${presser.id}/tier`, {
        key: presser.key,
        body: { tier: 'gold', reason: 'Promoting myself.' },
      }),
      403,
      'auth.role_not_allowed',
    );
  });
});
