import { describe, expect, it } from 'vitest';
import { createFulfilmentFixture, type OrderBody, type QuoteBody } from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

type PublishBody = {
  capability: { key: string; version: number };
  offerings_out_of_date: { offering: string; version: number; step: string; errors: { path: string }[] }[];
};

/** The fixture's attribute schema, with `red` no longer a colour one can ask for. */
const BLUE_ONLY = {
  type: 'object',
  properties: { color: { type: 'string', enum: ['blue'] } },
  additionalProperties: false,
};

describe(`a new capability version and the offerings that need it (${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture();
  const { app, ok, expectProblem } = f;
  for (const key of ['cutting', 'printing', 'binding']) await f.capability(key);
  const cutter = await f.partnerOffering('cutting', { price: '5.00' });
  const printer = await f.partnerOffering('printing', { price: '8.00', attributes: { color: 'red' } });
  await f.partnerOffering('printing', { price: '9.00', attributes: { color: 'red' } });
  await f.partnerOffering('binding', { price: '3.00' });
  await f.publishOffering('poster-run', {
    name: 'Poster run',
    unit: 'poster',
    pricing: { kind: 'cost_plus', margin_bps: 1000 },
    steps: [
      { key: 'cut', name: 'Cutting', capability: 'cutting' },
      {
        key: 'print',
        name: 'Printing',
        capability: 'printing',
        constraints: { color: { eq: 'red' } },
        after: ['cut'],
      },
      { key: 'bind', name: 'Binding', capability: 'binding', after: ['print'] },
    ],
  });
  // An order placed while red could be asked for, now at its printing leg.
  const buyer = await f.customer();
  const quoted = ok<QuoteBody>(
    await f.quote(buyer.key, { offering: 'poster-run', quantity: 1, deadline: f.inHours(240) }),
    201,
  );
  const placed = ok<OrderBody>(await f.order(buyer.key, quoted.id), 201);
  await f.runJobs();
  const cutting = (await f.readOrder(app.adminKey, placed.id)).legs.find((leg) => leg.step === 'cut');
  for (const action of ['accept', 'start', 'deliver'])
    ok(await f.act(cutter, cutting?.work_order_id as string, action));
  ok(await f.judge(buyer.key, placed.id, 'cut', 'confirm'));

  const published = ok<PublishBody>(
    await app.request('POST', '/v1/capabilities/printing/versions', {
      body: { attribute_schema: BLUE_ONLY },
    }),
    201,
  );

  it('names the offerings on sale whose steps the new version no longer allows, and announces each', async () => {
    expect(published.capability.version).toBe(2);
    expect(published.offerings_out_of_date).toEqual([
      expect.objectContaining({ offering: 'poster-run', version: 1, step: 'print' }),
    ]);
    expect(published.offerings_out_of_date[0]?.errors.map((error) => error.path)).toEqual([
      '/constraints/color/eq',
    ]);
    const events = ok<{ data: { type: string; subject_id: string; data: { steps: { step: string }[] } }[] }>(
      await app.request('GET', '/v1/events?limit=100'),
    );
    const announced = events.data.filter((event) => event.type === 'offering.out_of_date');
    expect(announced).toHaveLength(1);
    expect(announced[0]?.subject_id).toBe('poster-run');
    expect(announced[0]?.data.steps.map((step) => step.step)).toEqual(['print']);
  });

  it('answers a quote on such an offering with the step to fix, not with a lack of partners', async () => {
    const problem = await expectProblem(
      await f.quote(buyer.key, { offering: 'poster-run', quantity: 1, deadline: f.inHours(240) }),
      409,
      'orders.offering_out_of_date',
    );
    expect(problem).toMatchObject({ step: 'print', capability: 'printing' });
    expect((problem.errors ?? []).map((error) => error.path)).toEqual(['/constraints/color/eq']);
  });

  it('compensates an order whose leg cannot be given to another partner under the old constraints', async () => {
    const printing = (await f.readOrder(app.adminKey, placed.id)).legs.find((leg) => leg.step === 'print');
    expect(printing?.partner_id).toBe(printer.id);
    // The printer declines: the leg cannot be re-planned, and the partner's call still succeeds.
    ok(await f.act(printer, printing?.work_order_id as string, 'decline', { reason: 'out of red ink' }));
    const order = await f.readOrder(app.adminKey, placed.id);
    expect(order.status).toBe('failed');
    expect(order.failure_code).toBe('leg_unrepairable');
    expect(order.failure_detail).toContain('no longer fit the capability printing');
    expect(order.legs.map((leg) => [leg.step, leg.status])).toEqual([
      ['cut', 'done'],
      ['print', 'cancelled'],
      ['bind', 'cancelled'],
    ]);
    await f.expectBooksClean([placed.id]);
  });

  it('quotes the offering again once a version that fits is published', async () => {
    await f.publishOffering(
      'poster-run',
      {
        name: 'Poster run',
        unit: 'poster',
        pricing: { kind: 'cost_plus', margin_bps: 1000 },
        steps: [
          { key: 'cut', name: 'Cutting', capability: 'cutting' },
          { key: 'print', name: 'Printing', capability: 'printing', after: ['cut'] },
          { key: 'bind', name: 'Binding', capability: 'binding', after: ['print'] },
        ],
      },
      { nextVersion: true },
    );
    // Red offers no longer conform; a blue printer takes the work.
    await f.partnerOffering('printing', { price: '8.50', attributes: { color: 'blue' } });
    ok<QuoteBody>(
      await f.quote(buyer.key, { offering: 'poster-run', quantity: 1, deadline: f.inHours(240) }),
      201,
    );
  });
});
