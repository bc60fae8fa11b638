import { describe, expect, it } from 'vitest';
import type { SimulatedProvider } from '../modules/payments/index.js';
import { createFulfilmentFixture, type OrderBody, REGION } from '../testing/fulfilment-fixture.js';
import { eur, openMendingShop, type RefundBody } from '../testing/mending-shop.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * Refunds of an order by hand: an operator gives back part of a confirmed leg, or of an order
 * that has closed. The legs' money is reversed from the partner and the platform, and divided
 * between the customer and a customer-side subsidy programme as the order was paid.
 */
describe(`refunds of an order by hand (${TEST_DATABASE_KIND})`, async () => {
  // Room for the racing refunds below.
  const f = await createFulfilmentFixture({ poolSize: 12 });
  const { app, ok, expectProblem } = f;
  const finance = await app.operatorKey('finance');
  const ops = await app.operatorKey('ops');

  const { darner, steamer, refundBy, placed, workThrough, completedOrder, books, refundedAtProvider } =
    await openMendingShop(f);

  /** The `work_order.refunded` events a reader sees about an order. */
  const partnerNews = async (key: string, orderId: string) =>
    ok<{ data: { type: string; subject_id: string; data: Record<string, unknown> }[] }>(
      await app.request('GET', '/v1/events?limit=500&types=work_order.refunded', { key }),
    ).data.filter((event) => event.data.order_id === orderId);

  it('refunds part of a confirmed leg from its partner and the platform, and the customer through the provider', async () => {
    const { buyer, order } = await completedOrder();
    const before = await books();

    // Half the steaming leg: 9.00 from its partner, 1.00 of commission, 1.00 of margin.
    const refund = ok<RefundBody>(
      await refundBy(finance, order.id, { amount: eur('11.00'), step: 'steaming', reason: 'Creased collar' }),
      201,
    );
    expect([refund.amount.amount, refund.refunded.amount, refund.subsidy_returned.amount]).toEqual([
      '11.00',
      '11.00',
      '0.00',
    ]);
    expect(refund.order.refunded.amount).toBe('11.00');
    const after = await books();
    expect({
      darner: after.darner - before.darner,
      steamer: after.steamer - before.steamer,
      commission: after.commission - before.commission,
      margin: after.margin - before.margin,
    }).toEqual({ darner: 0n, steamer: -900n, commission: -100n, margin: -100n });
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('11.00');
    expect(await f.balance('refunds_in_transit', 'platform')).toBe(0n);

    // The customer sees the refund, with its reason, in its feed.
    const feed = ok<{ data: { type: string; subject_id: string; data: Record<string, unknown> }[] }>(
      await app.request('GET', '/v1/events?limit=500&types=order.refunded', { key: buyer.key }),
    );
    expect(feed.data.filter((event) => event.subject_id === order.id).map((event) => event.data)).toEqual([
      expect.objectContaining({
        amount: '11.00',
        currency: 'EUR',
        reason: 'Creased collar',
        step: 'steaming',
      }),
    ]);
    // The partner is told what of its earnings went back; the customer sees only its refund.
    expect((await partnerNews(steamer.key, order.id)).map((event) => event.data)).toEqual([
      expect.objectContaining({
        step: 'steaming',
        partner_id: steamer.id,
        amount: '9.00',
        owed: '0.00',
        reason: 'Creased collar',
      }),
    ]);
    expect(await partnerNews(darner.key, order.id)).toEqual([]);
    expect(await partnerNews(buyer.key, order.id)).toEqual([]);
    const audit = ok<{ data: { action: string; target_id: string; outcome: string }[] }>(
      await app.request('GET', '/v1/audit-records?action=order.refund'),
    );
    expect(audit.data).toContainEqual(
      expect.objectContaining({ action: 'order.refund', target_id: order.id, outcome: 'succeeded' }),
    );

    // 11.00 of the leg is left: more is refused, and nothing moves.
    const beyond = await refundBy(finance, order.id, {
      amount: eur('11.01'),
      step: 'steaming',
      reason: 'More',
    });
    expectProblem(beyond, 422, 'settlement.refund_exceeds_leg');
    expect(await books()).toEqual(after);

    // The rest of the order, over both legs in proportion to what each has left (44.00 and 11.00).
    const rest = ok<RefundBody>(
      await refundBy(app.adminKey, order.id, { amount: eur('55.00'), reason: 'Order lost in transit' }),
      201,
    );
    expect(rest.order.refunded.amount).toBe('66.00');
    expect((await partnerNews(darner.key, order.id)).map((event) => event.data.amount)).toEqual(['36.00']);
    expect((await partnerNews(steamer.key, order.id)).map((event) => event.data.amount)).toEqual([
      '9.00',
      '9.00',
    ]);
    expect(await books()).toEqual({
      darner: before.darner - 3600n,
      steamer: before.steamer - 1800n,
      commission: before.commission - 600n,
      margin: before.margin - 600n,
    });
    const nothingLeft = await refundBy(finance, order.id, { amount: eur('0.01'), reason: 'One more cent' });
    expectProblem(nothingLeft, 422, 'settlement.refund_exceeds_order');
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('66.00');
    await f.expectBooksClean([order.id]);
  });

  it('answers the same request again with the same refund, and refuses what it must, moving nothing', async () => {
    const buyer = await f.customer();
    const order = await placed(buyer);
    // The darning leg is confirmed; steaming is out with its partner.
    const running = await workThrough(buyer, order.id, 'steaming');
    expect(running.status).toBe('in_progress');
    const before = await books();

    expectProblem(
      await refundBy(finance, order.id, { amount: eur('5.00'), reason: 'Goodwill' }),
      409,
      'orders.refund_not_allowed',
    );
    expectProblem(
      await refundBy(finance, order.id, { amount: eur('5.00'), step: 'steaming', reason: 'Goodwill' }),
      409,
      'orders.refund_not_allowed',
    );
    expectProblem(
      await refundBy(finance, order.id, { amount: eur('5.00'), step: 'ironing', reason: 'Goodwill' }),
      404,
      'orders.leg_not_found',
    );
    expectProblem(
      await refundBy(finance, 'ord_00000000000000000000000000', { amount: eur('5.00'), reason: 'Goodwill' }),
      404,
      'orders.order_not_found',
    );
    const foreign = await refundBy(finance, order.id, {
      amount: { amount: '5.00', currency: 'USD' },
      step: 'darning',
      reason: 'Goodwill',
    });
    expectProblem(foreign, 422, 'orders.currency_mismatch');
    expectProblem(
      await refundBy(finance, order.id, { amount: eur('0.00'), step: 'darning', reason: 'Goodwill' }),
      422,
      'settlement.amount_invalid',
    );
    expectProblem(
      await refundBy(finance, order.id, { amount: eur('1.234'), step: 'darning', reason: 'x' }),
      400,
      'money.too_many_decimals',
    );
    // Bad bodies: no reason, a field that is not the API's; and no idempotency key.
    for (const body of [
      { amount: eur('5.00'), step: 'darning' },
      { amount: eur('5.00'), step: 'darning', reason: 'x', admin: true },
    ]) {
      expectProblem(await refundBy(finance, order.id, body), 400, 'request.invalid');
    }
    expectProblem(
      await refundBy(finance, order.id, { amount: eur('5.00'), step: 'darning', reason: 'x' }, null),
      400,
      'idempotency.key_required',
    );
    // Only finance staff and administrators move money by hand; customers and partners never.
    for (const key of [ops, buyer.key, darner.key]) {
      expect(
        (await refundBy(key, order.id, { amount: eur('5.00'), step: 'darning', reason: 'x' })).status,
      ).toBe(403);
    }
    // The settlement endpoints, for orders kept elsewhere, leave Baton's own orders alone.
    const darning = running.legs.find((leg) => leg.step === 'darning');
    expectProblem(
      await app.request('POST', '/v1/settlements/refunds', {
        body: { order_ref: order.id, refund_ref: 'by-hand', amount: eur('5.00') },
        headers: { 'idempotency-key': `settlement-refund-${order.id}` },
      }),
      409,
      'settlement.order_kept_by_baton',
    );
    expectProblem(
      await app.request('POST', '/v1/settlements/releases', {
        body: {
          order_ref: order.id,
          leg_ref: darning?.work_order_id,
          partner_id: darner.id,
          capability: 'darning',
          region: REGION,
          gross: eur('40.00'),
        },
        headers: { 'idempotency-key': `settlement-release-${order.id}` },
      }),
      409,
      'settlement.order_kept_by_baton',
    );
    // Nor through an order kept elsewhere: not Baton's legs, and not Baton's payments.
    const elsewhere = 'order-kept-elsewhere-1';
    expectProblem(
      await app.request('POST', '/v1/settlements/releases', {
        body: {
          order_ref: elsewhere,
          leg_ref: darning?.work_order_id,
          partner_id: darner.id,
          capability: 'darning',
          region: REGION,
          gross: eur('40.00'),
        },
        headers: { 'idempotency-key': `settlement-release-elsewhere-${order.id}` },
      }),
      409,
      'settlement.order_kept_by_baton',
    );
    for (const legs of [
      { leg_ref: darning?.work_order_id },
      { released_leg_refs: [darning?.work_order_id] },
    ]) {
      expectProblem(
        await app.request('POST', '/v1/settlements/refunds', {
          body: { order_ref: elsewhere, refund_ref: 'by-hand', amount: eur('5.00'), ...legs },
          headers: { 'idempotency-key': `settlement-refund-elsewhere-${Object.keys(legs)[0]}-${order.id}` },
        }),
        409,
        'settlement.order_kept_by_baton',
      );
    }
    for (const [paymentId, status, code] of [
      [order.payment_id, 422, 'settlement.payment_not_of_order'],
      ['pay_00000000000000000000000000', 404, 'payments.payment_not_found'],
    ] as const) {
      expectProblem(
        await app.request('POST', '/v1/settlements/refunds', {
          body: { order_ref: elsewhere, refund_ref: 'by-hand', amount: eur('5.00'), payment_id: paymentId },
          headers: { 'idempotency-key': `settlement-refund-payment-${code}-${order.id}` },
        }),
        status,
        code,
      );
    }
    expect(await books()).toEqual(before);
    expect(ok<OrderBody>(await app.request('GET', `/v1/orders/${order.id}`)).refunded.amount).toBe('0.00');

    // A confirmed leg of a running order can be refunded; the same request again is that refund.
    const request = () =>
      refundBy(finance, order.id, { amount: eur('4.40'), step: 'darning', reason: 'Late' }, 'same-refund');
    const first = ok<RefundBody>(await request(), 201);
    const again = ok<RefundBody>(await request(), 201);
    expect(again).toEqual(first);
    expect(first.order.refunded.amount).toBe('4.40');
    expect((await books()).darner - before.darner).toBe(-360n);
    // The legs not yet confirmed keep their money in escrow: steaming's 22.00.
    expect(await f.balance('customer_escrow', order.id)).toBe(2200n);

    await workThrough(buyer, order.id);
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('4.40');
    await f.expectBooksClean([order.id]);
  });

  it('divides the refund of a subsidised order between the customer and the programme', async () => {
    const now = app.clock.now().getTime();
    const programme = ok<{ id: string }>(
      await app.request('POST', '/v1/subsidies/programmes', {
        body: {
          name: 'Mending for members',
          side: 'customer',
          kind: 'waiver',
          // 26.83 % of the 6.00 margin: 1.61 of subsidy, 64.39 charged.
          share_bps: 2683,
          budget: eur('20.00'),
          cap_per_participant: eur('5.00'),
          starts_at: new Date(now - 1000).toISOString(),
          ends_at: new Date(now + 30 * 24 * 60 * 60 * 1000).toISOString(),
          targeting: { regions: [REGION], customer_segments: ['member'] },
        },
      }),
      201,
    );
    ok(
      await app.request('POST', `/v1/subsidies/programmes/${programme.id}/activate`, {
        headers: { 'idempotency-key': `activate-${programme.id}` },
      }),
    );
    const buyer = await f.customer();
    ok(
      await app.request('PUT', `/v1/customers/${buyer.id}/segment`, {
        body: { segment: 'member', reason: 'Joined the club.' },
      }),
    );
    const order = await placed(buyer);
    expect(await f.balance('subsidy_budget', programme.id)).toBe(2000n - 161n);
    await workThrough(buyer, order.id);

    // 22.00 × 64.39 / 66.00 is 21.4633 for the customer, 22.00 × 1.61 / 66.00 is 0.5367 for the
    // programme: by largest remainder 21.46 and 0.54.
    const refund = ok<RefundBody>(
      await refundBy(finance, order.id, { amount: eur('22.00'), reason: 'Wrong colour' }),
      201,
    );
    expect([refund.refunded.amount, refund.subsidy_returned.amount]).toEqual(['21.46', '0.54']);
    expect([refund.order.refunded.amount, refund.order.subsidy_returned.amount]).toEqual(['21.46', '0.54']);
    expect(await f.balance('subsidy_budget', programme.id)).toBe(2000n - 161n + 54n);
    // The rest of it: all of the order's 66.00 back, 64.39 to the customer (what it paid) and 1.61 to the
    // programme.
    const rest = ok<RefundBody>(
      await refundBy(finance, order.id, { amount: eur('44.00'), reason: 'Wrong colour' }),
      201,
    );
    expect([rest.order.refunded.amount, rest.order.subsidy_returned.amount]).toEqual(['64.39', '1.61']);
    expect(await f.balance('subsidy_budget', programme.id)).toBe(2000n);
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('64.39');
    await f.expectBooksClean([order.id]);
  });

  it('claws a refund back from a partner already paid out as a debt, and tells it what it owes', async () => {
    const { order } = await completedOrder();
    ok(
      await app.request('PUT', `/v1/partners/${steamer.id}/payout-settings`, {
        key: finance,
        body: {
          schedule: 'manual',
          minimum: eur('0.01'),
          destination: 'ba_ok',
          reserve_bps: 0,
          reserve_days: 0,
        },
      }),
    );
    ok(
      await app.request('POST', '/v1/payouts/runs', {
        key: finance,
        body: { partner_ids: [steamer.id] },
        headers: { 'idempotency-key': `payout-${order.id}` },
      }),
      202,
    );
    expect(await f.balance('partner_payable', steamer.id)).toBe(0n);
    const owedBefore = await f.balance('partner_receivable', steamer.id);

    ok(await refundBy(finance, order.id, { amount: eur('11.00'), step: 'steaming', reason: 'Stained' }), 201);
    // Its share of 11.00 is 9.00; with nothing left to take it from, the partner owes it.
    expect((await partnerNews(steamer.key, order.id)).map((event) => event.data)).toEqual([
      expect.objectContaining({ amount: '9.00', owed: '9.00', reason: 'Stained' }),
    ]);
    expect((await f.balance('partner_receivable', steamer.id)) - owedBefore).toBe(900n);
    await f.runJobs();
    await f.expectBooksClean([order.id]);
  });

  it('gives back no more than a chargeback left the customer, refusing before anything moves', async () => {
    const { order } = await completedOrder();
    const provider = app.baton.services.payments.provider as SimulatedProvider;
    const capture = provider
      .operations()
      .find(
        (operation) => operation.kind === 'capture' && operation.reference.startsWith(`order:${order.id}`),
      );
    expect(capture?.status).toBe('succeeded');
    // The customer's bank takes 50.00 of the 66.00 back.
    provider.chargeback(capture?.reference as string, 5_000n, `${order.id}:chargeback`);
    await provider.flush();
    const before = await books();

    const refused = await refundBy(finance, order.id, { amount: eur('16.01'), reason: 'Goodwill' });
    expectProblem(refused, 409, 'settlement.refund_exceeds_after_chargebacks');
    expect(refused.body).toMatchObject({ refundable: '1600', charged_back: '5000' });
    expect(await books()).toEqual(before);
    expect(await f.balance('customer_escrow', order.id)).toBe(0n);
    expect(ok<OrderBody>(await app.request('GET', `/v1/orders/${order.id}`)).refunded.amount).toBe('0.00');

    const refund = ok<RefundBody>(
      await refundBy(finance, order.id, { amount: eur('16.00'), reason: 'Goodwill' }),
      201,
    );
    expect(refund.refunded.amount).toBe('16.00');
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('16.00');
    await f.expectBooksClean([order.id]);
  });

  it('compensates an order a chargeback gave back in part: the customer gets what is left, the platform the rest', async () => {
    const buyer = await f.customer();
    const order = await placed(buyer);
    const running = await workThrough(buyer, order.id, 'steaming');
    const steaming = running.legs.find((leg) => leg.step === 'steaming');
    expect(steaming?.status).toBe('dispatched');
    const provider = app.baton.services.payments.provider as SimulatedProvider;
    const capture = provider
      .operations()
      .find(
        (operation) => operation.kind === 'capture' && operation.reference.startsWith(`order:${order.id}`),
      );
    // The customer's bank takes 50.00 of the 66.00 back while the steaming is still to do.
    provider.chargeback(capture?.reference as string, 5_000n, `${order.id}:chargeback`);
    await provider.flush();
    const losses = await f.balance('chargeback_losses', 'platform');

    // The steamer declines and nobody else can steam: the order is compensated. Of the
    // steaming's 22.00, the customer gets the 16.00 the chargeback left it; the 6.00 it already
    // has back through its bank recover the platform's loss.
    ok(await f.act(steamer, steaming?.work_order_id as string, 'decline', { reason: 'Boiler broken' }));
    const failed = ok<OrderBody>(await app.request('GET', `/v1/orders/${order.id}`));
    expect(failed.status).toBe('failed');
    expect(failed.refunded.amount).toBe('16.00');
    expect(await f.balance('customer_escrow', order.id)).toBe(0n);
    expect(losses - (await f.balance('chargeback_losses', 'platform'))).toBe(600n);
    const refunded = ok<{ data: { type: string; data: Record<string, unknown> }[] }>(
      await app.request('GET', '/v1/events?types=order.refunded&limit=500', { key: buyer.key }),
    ).data.filter((event) => event.data.id === order.id);
    expect(refunded.map((event) => event.data)).toEqual([
      expect.objectContaining({ amount: '16.00', already_charged_back: '6.00' }),
    ]);
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('16.00');
    await f.expectBooksClean([order.id]);
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'never refunds more than an order has, when refunds race',
    async () => {
      const { order } = await completedOrder();
      const before = await books();
      // Eight refunds of 40.00 of a 66.00 order at once: exactly one can be made.
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          refundBy(finance, order.id, { amount: eur('40.00'), reason: 'Race' }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([201, 422, 422, 422, 422, 422, 422, 422]);
      const after = await books();
      const taken =
        before.darner -
        after.darner +
        (before.steamer - after.steamer) +
        (before.commission - after.commission);
      expect(taken + (before.margin - after.margin)).toBe(4000n);
      expect(ok<OrderBody>(await app.request('GET', `/v1/orders/${order.id}`)).refunded.amount).toBe('40.00');
      await f.runJobs();
      await f.expectBooksClean([order.id]);
    },
  );
});
