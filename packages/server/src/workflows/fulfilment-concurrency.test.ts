import { describe, expect, it } from 'vitest';
import { createFulfilmentFixture, type OrderBody, type QuoteBody } from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

const CUSTOMERS = 12;

describe(`ordering the last capacity at once (${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture({ poolSize: 16 });
  const { app, ok, expectProblem } = f;
  const db = app.baton.database.db;

  await f.capability('scarce');
  await f.capability('wrapping');
  const maker = await f.partnerOffering('scarce', { price: '20.00', capacity: 5, leadTimeHours: 24 });
  await f.partnerOffering('wrapping', { price: '1.00', leadTimeHours: 1 });
  await f.publishOffering('scarce-box', {
    name: 'Scarce box',
    pricing: { kind: 'cost_plus', margin_bps: 500 },
    steps: [
      { key: 'make', name: 'Make', capability: 'scarce' },
      { key: 'wrap', name: 'Wrap', capability: 'wrapping', after: ['make'] },
    ],
  });

  async function paymentsCount(): Promise<number> {
    const row = await db
      .selectFrom('payments')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  async function reservedUnits(): Promise<number> {
    const rows = await db
      .selectFrom('reservations')
      .select(['quantity', 'status'])
      .where('offer_id', '=', maker.offerId)
      .where('status', 'in', ['held', 'confirmed'])
      .execute();
    return rows.reduce((sum, row) => sum + Number(row.quantity), 0);
  }

  it('never overbooks and never charges for an order that could not be placed', async () => {
    const customers = await Promise.all(Array.from({ length: CUSTOMERS }, () => f.customer()));
    await f.sync();
    const deadline = f.inHours(72);
    const attempts = await Promise.all(
      customers.map(async (customer) => {
        const quoted = await app.request<QuoteBody>('POST', '/v1/quotes', {
          key: customer.key,
          body: { offering: 'scarce-box', quantity: 5, region: 'eu-west', deadline },
        });
        if (quoted.status !== 201) return { quoted, placed: null };
        const placed = await f.order(customer.key, quoted.body.id);
        return { quoted, placed };
      }),
    );
    const quoted = attempts.filter((attempt) => attempt.quoted.status === 201);
    expect(quoted).toHaveLength(1);
    for (const refused of attempts.filter((attempt) => attempt.quoted.status !== 201)) {
      expectProblem(refused.quoted, 422, 'orders.quote_infeasible');
      expect((refused.quoted.body as { step?: string }).step).toBe('make');
    }
    expect(await reservedUnits()).toBe(5);
    const winner = quoted[0] as (typeof attempts)[number];
    const quote = winner.quoted.body as QuoteBody;
    expect(winner.placed?.status).toBe(201);
    const placed = winner.placed?.body as OrderBody;
    expect(await paymentsCount()).toBe(1);

    // The same quote ordered again and again at once, under different keys: one order, one charge.
    const customer = customers[attempts.indexOf(winner)] as { key: string };
    const again = await Promise.all(Array.from({ length: 5 }, () => f.order(customer.key, quote.id)));
    for (const response of again) expectProblem(response, 409, 'orders.quote_already_ordered');
    await f.runJobs();
    expect(await paymentsCount()).toBe(1);
    const order = await f.readOrder(customer.key, placed.id);
    expect(order.status).toBe('in_progress');
    expect(await reservedUnits()).toBe(5);
  });

  /**
   * Holds all of an offer's capacity for the weeks ahead as another process would, without the
   * event that tells this process's matcher: its index still thinks the capacity is free.
   */
  async function takeBehindTheIndex(offerId: string, capacity: number): Promise<void> {
    const monday = Date.UTC(2026, 5, 1);
    for (let week = 0; week < 4; week++) {
      const periodStart = new Date(monday + week * 7 * 24 * 3600 * 1000);
      await db
        .insertInto('capacity_counters')
        .values({ offer_id: offerId, period_start: periodStart, reserved: BigInt(capacity) })
        .onConflict((oc) =>
          oc.columns(['offer_id', 'period_start']).doUpdateSet({ reserved: BigInt(capacity) }),
        )
        .execute();
    }
  }

  async function liveUnits(offerId: string): Promise<number> {
    const rows = await db
      .selectFrom('reservations')
      .select('quantity')
      .where('offer_id', '=', offerId)
      .where('status', 'in', ['held', 'confirmed'])
      .execute();
    return rows.reduce((sum, row) => sum + Number(row.quantity), 0);
  }

  it('gives a quote that loses the last capacity at hold time to the next candidate, or refuses it holding nothing', async () => {
    await f.capability('contested');
    const first = await f.partnerOffering('contested', { price: '2.00', capacity: 4, leadTimeHours: 1 });
    const second = await f.partnerOffering('contested', { price: '3.00', capacity: 4, leadTimeHours: 1 });
    await f.publishOffering('contested-kit', {
      name: 'Contested kit',
      pricing: { kind: 'cost_plus', margin_bps: 0 },
      steps: [{ key: 'make', name: 'Make', capability: 'contested' }],
    });
    const buyer = await f.customer();
    await f.sync();

    // The cheaper offer is ranked first, but its capacity went meanwhile: the second takes the leg.
    await takeBehindTheIndex(first.offerId, 4);
    const quoted = ok<QuoteBody>(
      await app.request('POST', '/v1/quotes', {
        key: buyer.key,
        body: { offering: 'contested-kit', quantity: 4, region: 'eu-west', deadline: f.inHours(48) },
      }),
      201,
    );
    expect(quoted.legs.map((leg) => leg.offer_id)).toEqual([second.offerId]);
    const allocations = await db
      .selectFrom('allocations')
      .select(['offer_id', 'skipped'])
      .where('reference', 'like', `${quoted.id}:%`)
      .execute();
    expect(allocations).toEqual([
      { offer_id: second.offerId, skipped: [{ offer_id: first.offerId, code: 'catalog.capacity_exceeded' }] },
    ]);
    expect(await liveUnits(first.offerId)).toBe(0);
    expect(await liveUnits(second.offerId)).toBe(4);

    // With every candidate's capacity gone, the quote is refused as before, and holds nothing.
    const other = await f.customer();
    await takeBehindTheIndex(second.offerId, 4);
    const refused = await app.request('POST', '/v1/quotes', {
      key: other.key,
      body: { offering: 'contested-kit', quantity: 1, region: 'eu-west', deadline: f.inHours(48) },
    });
    const problem = expectProblem(refused, 422, 'orders.quote_infeasible') as unknown as {
      step: string;
      reason: string;
      exclusions: Record<string, number>;
    };
    expect(problem).toMatchObject({
      step: 'make',
      reason: 'no_candidate',
      exclusions: { capacity_exhausted: 2 },
    });
    expect(await liveUnits(first.offerId)).toBe(0);
    expect(await liveUnits(second.offerId)).toBe(4);
    const stray = await db
      .selectFrom('allocations')
      .select('id')
      .where('customer_id', '=', other.id)
      .execute();
    expect(stray).toEqual([]);
  });

  it('moves a work order once when its partner or customer answers it many times at once', async () => {
    await f.capability('answering');
    const worker = await f.partnerOffering('answering', { price: '4.00', leadTimeHours: 1 });
    await f.publishOffering('answered-kit', {
      name: 'Answered kit',
      pricing: { kind: 'cost_plus', margin_bps: 0 },
      steps: [{ key: 'work', name: 'Work', capability: 'answering' }],
    });
    const buyer = await f.customer();
    const quoted = ok<QuoteBody>(
      await f.quote(buyer.key, { offering: 'answered-kit', quantity: 1, deadline: f.inHours(48) }),
      201,
    );
    const placed = ok<OrderBody>(await f.order(buyer.key, quoted.id), 201);
    await f.runJobs();
    const order = await f.readOrder(buyer.key, placed.id);
    const workOrderId = order.legs[0]?.work_order_id as string;
    // Every answer waits for the one before it and finds the work order moved: one of each goes through.
    for (const action of ['accept', 'start', 'deliver']) {
      const answers = await Promise.all(Array.from({ length: 8 }, () => f.act(worker, workOrderId, action)));
      expect(answers.filter((answer) => answer.status === 200)).toHaveLength(1);
      for (const answer of answers.filter((candidate) => candidate.status !== 200))
        expectProblem(answer, 409, 'orders.transition_not_allowed');
    }
    const events = await db
      .selectFrom('events')
      .select('type')
      .where('subject_id', '=', workOrderId)
      .orderBy('seq')
      .execute();
    expect(events.map((event) => event.type)).toEqual([
      'work_order.offered',
      'work_order.accepted',
      'work_order.in_progress',
      'work_order.delivered',
    ]);
    const judged = await Promise.all(
      Array.from({ length: 8 }, () => f.judge(buyer.key, placed.id, 'work', 'confirm')),
    );
    expect(judged.filter((answer) => answer.status === 200)).toHaveLength(1);
    for (const answer of judged.filter((candidate) => candidate.status !== 200))
      expectProblem(answer, 409, 'orders.leg_not_delivered');
    const final = await f.readOrder(buyer.key, placed.id);
    expect(final.status).toBe('completed');
    expect(final.legs[0]?.work_order_status).toBe('confirmed');
  });

  it('refuses an order whose held capacity lapsed and went to someone else, charging nothing', async () => {
    await f.capability('rare');
    await f.partnerOffering('rare', { price: '5.00', capacity: 3, leadTimeHours: 1 });
    await f.publishOffering('rare-kit', {
      name: 'Rare kit',
      pricing: { kind: 'cost_plus', margin_bps: 0 },
      quote_validity_minutes: 15,
      steps: [{ key: 'rare', name: 'Rare', capability: 'rare' }],
    });
    const first = await f.customer();
    const second = await f.customer();
    const slow = ok<QuoteBody>(
      await f.quote(first.key, { offering: 'rare-kit', quantity: 3, deadline: f.inHours(48) }),
      201,
    );
    expectProblem(
      await f.quote(second.key, { offering: 'rare-kit', quantity: 3, deadline: f.inHours(48) }),
      422,
      'orders.quote_infeasible',
    );
    f.advance(16 * 60 * 1000);
    await f.expireHolds();
    const fast = ok<QuoteBody>(
      await f.quote(second.key, { offering: 'rare-kit', quantity: 3, deadline: f.inHours(48) }),
      201,
    );
    const before = await paymentsCount();
    expectProblem(await f.order(first.key, slow.id), 409, 'orders.quote_expired');
    expect(await paymentsCount()).toBe(before);
    ok(await f.order(second.key, fast.id), 201);
    expect(await paymentsCount()).toBe(before + 1);
  });
});
