import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createFulfilmentFixture, type OrderBody } from '../testing/fulfilment-fixture.js';
import { eur, openMendingShop, type RefundBody } from '../testing/mending-shop.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * Four eyes on refunds by hand (RELIABILITY A5): above a threshold per currency, counting what
 * one order was already given back by hand alone, a refund is a request that another operator
 * approves before any money moves; the operator who filed it cannot.
 */
const DAY_MS = 24 * 60 * 60 * 1000;

describe(`four eyes on refunds by hand (${TEST_DATABASE_KIND})`, async () => {
  // Room for the racing refunds below.
  const f = await createFulfilmentFixture({ poolSize: 12 });
  const { app, ok, expectProblem } = f;
  const alice = await app.operatorKey('finance');
  const bob = await app.operatorKey('finance');
  const carol = await app.operatorKey('finance');
  const ops = await app.operatorKey('ops');
  const { refundBy, placed, completedOrder, books, refundedAtProvider } = await openMendingShop(f);

  interface RequestBody {
    id: string;
    order_id: string;
    step: string | null;
    amount: { amount: string; currency: string };
    reason: string;
    status: string;
    requested_by: string;
    decided_by: string | null;
    decided_at: string | null;
    decision_reason: string | null;
    refunded: { amount: string } | null;
    subsidy_returned: { amount: string } | null;
  }
  interface ApprovedBody extends Omit<RefundBody, 'order'> {
    request: RequestBody;
    order: OrderBody;
  }

  let keys = 0;
  const fileRequest = (key: string, orderId: string, body: Record<string, unknown>) =>
    app.request<RequestBody>('POST', `/v1/orders/${orderId}/refund-requests`, {
      key,
      body,
      headers: { 'idempotency-key': `request-${++keys}` },
    });
  const approve = (key: string, id: string, idempotencyKey = `approve-${++keys}`) =>
    app.request<ApprovedBody>('POST', `/v1/refund-requests/${id}/approve`, {
      key,
      body: {},
      headers: { 'idempotency-key': idempotencyKey },
    });
  const reject = (key: string, id: string, reason: string) =>
    app.request<RequestBody>('POST', `/v1/refund-requests/${id}/reject`, { key, body: { reason } });
  const setThreshold = (amount: string, key = app.adminKey) =>
    app.request<{ approval_above: { amount: string; currency: string } }>(
      'PUT',
      '/v1/refund-thresholds/EUR',
      {
        key,
        body: { approval_above: amount },
      },
    );
  const completedOrders = async (count: number) => {
    const orders = [];
    for (let n = 0; n < count; n++) orders.push((await completedOrder()).order);
    return orders;
  };
  const userOf = async (key: string) => ok<{ id: string }>(await app.request('GET', '/v1/me', { key })).id;
  const refunded = async (orderId: string) =>
    ok<OrderBody>(await app.request('GET', `/v1/orders/${orderId}`)).refunded.amount;
  const auditOf = async (action: string, targetId: string) =>
    ok<{ data: { action: string; target_id: string; outcome: string; actor: { id: string } }[] }>(
      await app.request('GET', `/v1/audit-records?${new URLSearchParams({ action, target_id: targetId })}`),
    ).data;

  it('lets administrators set, read and remove the threshold of a currency, and refuses bad ones', async () => {
    expect(
      ok<{ data: unknown[] }>(await app.request('GET', '/v1/refund-thresholds', { key: ops })).data,
    ).toEqual([]);
    expectProblem(await setThreshold('20.00', alice), 403, 'auth.role_not_allowed');
    expectProblem(await setThreshold('20.001'), 400, 'money.too_many_decimals');
    expectProblem(await setThreshold('-1.00'), 400, 'orders.refund_threshold_negative');
    expectProblem(
      await app.request('PUT', '/v1/refund-thresholds/XXX', { body: { approval_above: '1.00' } }),
      400,
      'money.unknown_currency',
    );
    expect(ok<{ approval_above: unknown }>(await setThreshold('20.00')).approval_above).toMatchObject({
      amount: '20.00',
      currency: 'EUR',
    });
    const listed = ok<{ data: { approval_above: { amount: string }; updated_by: string }[] }>(
      await app.request('GET', '/v1/refund-thresholds', { key: ops }),
    ).data;
    expect(listed.map((threshold) => threshold.approval_above.amount)).toEqual(['20.00']);
    expect(listed[0]?.updated_by).toBe(await userOf(app.adminKey));

    ok(await app.request('DELETE', '/v1/refund-thresholds/EUR'));
    expectProblem(
      await app.request('DELETE', '/v1/refund-thresholds/EUR'),
      404,
      'orders.refund_threshold_not_found',
    );
    expect(ok<{ data: unknown[] }>(await app.request('GET', '/v1/refund-thresholds')).data).toEqual([]);
    ok(await setThreshold('20.00'));
  });

  it('refuses a refund by hand alone beyond the threshold, counting what the order was given back alone, and moves nothing', async () => {
    const { order } = await completedOrder();
    ok(await refundBy(alice, order.id, { amount: eur('11.00'), step: 'steaming', reason: 'Creased' }), 201);
    ok(await refundBy(bob, order.id, { amount: eur('9.00'), step: 'darning', reason: 'Loose thread' }), 201);
    const before = await books();

    // 20.00 given back alone already: one cent more needs a second operator, whoever asks.
    const refused = expectProblem(
      await refundBy(alice, order.id, { amount: eur('0.01'), step: 'darning', reason: 'One more cent' }),
      403,
      'orders.refund_needs_approval',
    );
    expect(refused).toMatchObject({
      approval_above: { amount: '20.00', currency: 'EUR' },
      refunded_alone: { amount: '20.00', currency: 'EUR' },
      refunded_alone_today: { amount: '11.00', currency: 'EUR' },
    });
    expect(await books()).toEqual(before);
    expect(await refunded(order.id)).toBe('20.00');
    // Nothing, or less than nothing, is no refund, threshold or not.
    for (const amount of ['0.00', '-5.00']) {
      expectProblem(
        await refundBy(alice, order.id, { amount: eur(amount), step: 'darning', reason: 'Nothing' }),
        422,
        'settlement.amount_invalid',
      );
      expectProblem(
        await fileRequest(alice, order.id, { amount: eur(amount), reason: 'Nothing' }),
        422,
        'settlement.amount_invalid',
      );
    }
    expect(await books()).toEqual(before);
    expect(await refunded(order.id)).toBe('20.00');
    // Every attempt is audited, the refused ones as such.
    expect((await auditOf('order.refund', order.id)).map((record) => record.outcome).sort()).toEqual([
      'denied',
      'failed',
      'failed',
      'succeeded',
      'succeeded',
    ]);
  });

  it('makes a refund beyond the threshold only when another operator approves the request', async () => {
    const { buyer, order } = await completedOrder();
    const before = await books();
    expectProblem(
      await refundBy(alice, order.id, { amount: eur('30.00'), reason: 'Ruined jacket' }),
      403,
      'orders.refund_needs_approval',
    );

    const filed = ok<RequestBody>(
      await fileRequest(alice, order.id, { amount: eur('30.00'), reason: 'Ruined jacket' }),
      201,
    );
    expect(filed).toMatchObject({
      order_id: order.id,
      step: null,
      amount: { amount: '30.00', currency: 'EUR' },
      reason: 'Ruined jacket',
      status: 'pending',
      requested_by: await userOf(alice),
      decided_by: null,
      refunded: null,
    });
    // Filed, nothing moved; operators see it waiting, and are told of it.
    expect(await books()).toEqual(before);
    expect(await refunded(order.id)).toBe('0.00');
    const pending = ok<{ data: { id: string }[] }>(
      await app.request('GET', '/v1/refund-requests?status=pending', { key: ops }),
    ).data;
    expect(pending.map((request) => request.id)).toContain(filed.id);
    const news = async (key: string) =>
      ok<{ data: { type: string; subject_id: string }[] }>(
        await app.request(
          'GET',
          '/v1/events?limit=500&types=refund_request.created,refund_request.approved',
          {
            key,
          },
        ),
      ).data.filter((event) => event.subject_id === filed.id);
    expect((await news(ops)).map((event) => event.type)).toEqual(['refund_request.created']);
    expect(await news(buyer.key)).toEqual([]);

    // Its author cannot approve it, and nothing moves.
    expectProblem(await approve(alice, filed.id), 403, 'orders.self_approval');
    expect(await books()).toEqual(before);
    expect(ok<RequestBody>(await app.request('GET', `/v1/refund-requests/${filed.id}`)).status).toBe(
      'pending',
    );

    // Another operator approves it: the refund is made, as a refund by hand is.
    const approved = ok<ApprovedBody>(await approve(bob, filed.id, 'approve-jacket'));
    expect(approved.request).toMatchObject({
      status: 'approved',
      decided_by: await userOf(bob),
      refunded: { amount: '30.00' },
      subsidy_returned: { amount: '0.00' },
    });
    expect([approved.amount.amount, approved.refunded.amount, approved.order.refunded.amount]).toEqual([
      '30.00',
      '30.00',
      '30.00',
    ]);
    const after = await books();
    expect(
      before.darner -
        after.darner +
        (before.steamer - after.steamer) +
        (before.commission - after.commission) +
        (before.margin - after.margin),
    ).toBe(3000n);
    await f.runJobs();
    expect(await refundedAtProvider(order.payment_id as string)).toBe('30.00');
    expect((await news(ops)).map((event) => event.type)).toEqual([
      'refund_request.created',
      'refund_request.approved',
    ]);

    // A retry answers the same; a second approval is refused; nothing moves again.
    const replayed = await approve(bob, filed.id, 'approve-jacket');
    expect(replayed.status).toBe(200);
    expect(replayed.body.request).toEqual(approved.request);
    expectProblem(await approve(app.adminKey, filed.id), 409, 'orders.refund_request_decided');
    expect(await books()).toEqual(after);
    expect(await refunded(order.id)).toBe('30.00');

    // One audit record of the approval, naming the approver.
    const records = await auditOf('order.refund_request.approve', filed.id);
    expect(records.map((record) => [record.outcome, record.actor.id])).toEqual([
      ['denied', await userOf(alice)],
      ['succeeded', await userOf(bob)],
      ['failed', await userOf(app.adminKey)],
    ]);
    // An approved refund does not count against what operators may give back of the order alone.
    ok(await refundBy(carol, order.id, { amount: eur('20.00'), reason: 'Goodwill' }), 201);
    await f.runJobs();
    await f.expectBooksClean([order.id]);
  });

  it('counts what one operator gives back alone in a day over all orders, and starts afresh the next day', async () => {
    const dave = await app.operatorKey('finance');
    const erin = await app.operatorKey('finance');
    const [first, second, third, fourth] = await completedOrders(4);
    if (!first || !second || !third || !fourth) throw new Error('four orders');
    ok(await refundBy(dave, first.id, { amount: eur('12.00'), reason: 'Late' }), 201);
    ok(await refundBy(dave, second.id, { amount: eur('8.00'), reason: 'Late' }), 201);
    const before = await books();

    // 20.00 given back alone today over two orders: one cent more, of a third order given back
    // nothing yet, needs a second operator; nothing moves.
    const refused = expectProblem(
      await refundBy(dave, third.id, { amount: eur('0.01'), reason: 'One more cent' }),
      403,
      'orders.refund_needs_approval',
    );
    expect(refused).toMatchObject({
      approval_above: { amount: '20.00', currency: 'EUR' },
      refunded_alone: { amount: '0.00', currency: 'EUR' },
      refunded_alone_today: { amount: '20.00', currency: 'EUR' },
    });
    expect(await books()).toEqual(before);
    expect(await refunded(third.id)).toBe('0.00');

    // Each operator has its own count.
    ok(await refundBy(erin, third.id, { amount: eur('0.01'), reason: 'One cent' }), 201);
    // An approved refund counts against nobody, its author or its approver.
    const filed = ok<RequestBody>(
      await fileRequest(erin, third.id, { amount: eur('15.00'), reason: 'Torn lining' }),
      201,
    );
    ok(await approve(dave, filed.id));
    expect(await refunded(third.id)).toBe('15.01');
    ok(await refundBy(erin, fourth.id, { amount: eur('19.99'), reason: 'Goodwill' }), 201);
    expectProblem(
      await refundBy(erin, fourth.id, { amount: eur('0.01'), reason: 'One more cent' }),
      403,
      'orders.refund_needs_approval',
    );
    expectProblem(
      await refundBy(dave, third.id, { amount: eur('0.01'), reason: 'One more cent' }),
      403,
      'orders.refund_needs_approval',
    );

    // The next day (UTC), each operator starts again from nothing.
    const now = app.clock.now().getTime();
    app.clock.advance(DAY_MS - (now % DAY_MS));
    ok(await refundBy(dave, third.id, { amount: eur('4.99'), reason: 'Next day' }), 201);
    ok(await refundBy(erin, first.id, { amount: eur('8.00'), reason: 'Next day' }), 201);
    // What one order was given back alone stays counted, day after day.
    expect(
      expectProblem(
        await refundBy(dave, second.id, { amount: eur('12.01'), reason: 'Next day' }),
        403,
        'orders.refund_needs_approval',
      ),
    ).toMatchObject({ refunded_alone: { amount: '8.00' }, refunded_alone_today: { amount: '4.99' } });
    await f.runJobs();
    await f.expectBooksClean([first.id, second.id, third.id, fourth.id]);
  });

  it('rejects a request, or lets its author withdraw it, and nothing moves', async () => {
    const { order } = await completedOrder();
    const before = await books();
    const first = ok<RequestBody>(
      await fileRequest(alice, order.id, { amount: eur('25.00'), step: 'darning', reason: 'Stained' }),
      201,
    );
    const rejected = ok<RequestBody>(await reject(bob, first.id, 'The stain was there before'));
    expect(rejected).toMatchObject({
      status: 'rejected',
      decided_by: await userOf(bob),
      decision_reason: 'The stain was there before',
      refunded: null,
    });
    expectProblem(await approve(app.adminKey, first.id), 409, 'orders.refund_request_decided');
    expectProblem(await reject(app.adminKey, first.id, 'Again'), 409, 'orders.refund_request_decided');

    const second = ok<RequestBody>(
      await fileRequest(alice, order.id, { amount: eur('25.00'), step: 'darning', reason: 'Stained' }),
      201,
    );
    expect(ok<RequestBody>(await reject(alice, second.id, 'Filed twice')).status).toBe('rejected');
    expect(await books()).toEqual(before);
    expect(await refunded(order.id)).toBe('0.00');
    const decided = ok<{ data: { id: string; status: string }[] }>(
      await app.request('GET', `/v1/refund-requests?order_id=${order.id}`),
    ).data;
    expect(decided.map((request) => [request.id, request.status])).toEqual([
      [first.id, 'rejected'],
      [second.id, 'rejected'],
    ]);
  });

  it('keeps a request pending when its refund is refused at approval', async () => {
    const { order } = await completedOrder();
    const filed = ok<RequestBody>(
      await fileRequest(alice, order.id, { amount: eur('22.00'), step: 'steaming', reason: 'Burnt' }),
      201,
    );
    // Meanwhile most of the leg was given back with another approval.
    const other = ok<RequestBody>(
      await fileRequest(bob, order.id, { amount: eur('21.00'), step: 'steaming', reason: 'Burnt, again' }),
      201,
    );
    ok(await approve(alice, other.id));
    const before = await books();
    expectProblem(await approve(bob, filed.id), 422, 'settlement.refund_exceeds_leg');
    expect(await books()).toEqual(before);
    expect(ok<RequestBody>(await app.request('GET', `/v1/refund-requests/${filed.id}`)).status).toBe(
      'pending',
    );
    expect(await refunded(order.id)).toBe('21.00');
  });

  it('checks a request against the order as it stands, and lets only finance and administrators file it', async () => {
    const buyer = await f.customer();
    const running = await placed(buyer);
    expectProblem(
      await fileRequest(alice, running.id, { amount: eur('1.00'), reason: 'Too early' }),
      409,
      'orders.refund_not_allowed',
    );
    const { order } = await completedOrder();
    expectProblem(
      await fileRequest(alice, order.id, { amount: { amount: '1.00', currency: 'USD' }, reason: 'Wrong' }),
      422,
      'orders.currency_mismatch',
    );
    expectProblem(
      await fileRequest(alice, order.id, { amount: eur('1.00'), step: 'ironing', reason: 'No such step' }),
      404,
      'orders.leg_not_found',
    );
    expectProblem(
      await fileRequest(ops, order.id, { amount: eur('1.00'), reason: 'Ops' }),
      403,
      'auth.role_not_allowed',
    );
    expectProblem(
      await fileRequest(buyer.key, order.id, { amount: eur('1.00'), reason: 'Mine' }),
      403,
      'auth.role_not_allowed',
    );
    expectProblem(
      await app.request('POST', `/v1/orders/${order.id}/refund-requests`, {
        key: alice,
        body: { amount: eur('1.00'), reason: 'No key' },
      }),
      400,
      'idempotency.key_required',
    );
    expect(
      ok<{ data: unknown[] }>(await app.request('GET', `/v1/refund-requests?order_id=${order.id}`)).data,
    ).toEqual([]);
  });

  it('lets a request left undecided for seven days expire: it can no longer be approved or rejected', async () => {
    const { order } = await completedOrder();
    const filed = ok<RequestBody & { expires_at: string }>(
      await fileRequest(alice, order.id, { amount: eur('5.00'), reason: 'Slow reply' }),
      201,
    );
    expect(filed.expires_at).toBe(
      new Date(app.clock.now().getTime() + 7 * 24 * 60 * 60 * 1000).toISOString(),
    );
    const listed = async (status: string) =>
      ok<{ data: { id: string }[] }>(
        await app.request('GET', `/v1/refund-requests?status=${status}&order_id=${order.id}`),
      ).data.map((request) => request.id);
    const before = await books();
    app.clock.advance(7 * 24 * 60 * 60 * 1000 - 1);
    expect(await listed('pending')).toEqual([filed.id]);
    expect(await listed('expired')).toEqual([]);
    app.clock.advance(1);
    expect(ok<RequestBody>(await app.request('GET', `/v1/refund-requests/${filed.id}`)).status).toBe(
      'expired',
    );
    expect(await listed('pending')).toEqual([]);
    expect(await listed('expired')).toEqual([filed.id]);
    expectProblem(await approve(bob, filed.id), 409, 'orders.refund_request_expired');
    expectProblem(await reject(alice, filed.id, 'Too late'), 409, 'orders.refund_request_expired');
    expect(await books()).toEqual(before);
    expect(await refunded(order.id)).toBe('0.00');
  });

  it('keeps four eyes in the database too: an approval by the request’s author is refused', async () => {
    const { order } = await completedOrder();
    const filed = ok<RequestBody>(
      await fileRequest(alice, order.id, { amount: eur('1.00'), reason: 'Check' }),
      201,
    );
    await expect(
      sql`update refund_requests set status = 'approved', decided_by = requested_by, decided_at = now(),
        refunded_minor = 100, subsidy_returned_minor = 0 where id = ${filed.id}`.execute(
        app.baton.database.db,
      ),
    ).rejects.toThrow(/check constraint/);
    // The same row decided by another user passes every check: the author was what was refused.
    await sql`update refund_requests set status = 'approved', decided_by = ${await userOf(bob)},
      decided_at = now(), refunded_minor = 100, subsidy_returned_minor = 0 where id = ${filed.id}`.execute(
      app.baton.database.db,
    );
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'never lets racing refunds by hand alone pass the threshold together',
    async () => {
      const { order } = await completedOrder();
      // 20.00 alone at most: of eight racing refunds of 6.00, three pass.
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          refundBy(n % 2 === 0 ? alice : bob, order.id, { amount: eur('6.00'), reason: 'Race' }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([201, 201, 201, 403, 403, 403, 403, 403]);
      expect(await refunded(order.id)).toBe('18.00');
      await f.runJobs();
      await f.expectBooksClean([order.id]);
    },
  );

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'never lets one operator’s racing refunds by hand over many orders pass the day’s threshold together',
    async () => {
      const frank = await app.operatorKey('finance');
      const orders = await completedOrders(4);
      // 20.00 alone a day at most, 12.00 of each order: of eight racing refunds of 6.00, three pass.
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          refundBy(frank, orders[n % 4]?.id as string, { amount: eur('6.00'), reason: 'Race' }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([201, 201, 201, 403, 403, 403, 403, 403]);
      const given = await Promise.all(orders.map((order) => refunded(order.id)));
      expect(given.reduce((sum, amount) => sum + Number(amount), 0)).toBe(18);
      await f.runJobs();
      await f.expectBooksClean(orders.map((order) => order.id));
    },
  );
});
