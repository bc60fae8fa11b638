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
