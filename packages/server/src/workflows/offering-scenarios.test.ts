import { describe, expect, it } from 'vitest';
import type { SimulatedProvider } from '../modules/payments/index.js';
import {
  createFulfilmentFixture,
  HOUR_MS,
  type OrderBody,
  type Partner,
  type QuoteBody,
  type WorkOrderBody,
} from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * Every example offering (a custom garment run, a meal delivery, a trip) through every story an
 * order can take: carried out as planned, a leg declined and re-planned, an offer left to expire,
 * a leg no partner can take over (compensation), a rejected leg, and a deadline no plan meets.
 * After each, the books balance and a finished order's escrow is empty.
 *
 * Each step has two partners: the one a quote chooses (cheaper and faster) and one that can take
 * over (dearer, within what the customer paid for the leg, and twice as slow). Some steps also
 * have a partner dearer than the customer paid for the leg, who must never be given it.
 */

type Offered = Partner & { offerId: string };

interface StepPartners {
  readonly first: Offered;
  readonly second: Offered;
}

interface Scenario {
  readonly offering: 'garment-run' | 'meal-delivery' | 'trip';
  readonly quantity: number;
  readonly deadlineHours: number;
  readonly policy: 'refund' | 'redo';
  readonly acceptanceWindowMinutes: number;
  /** A step with steps after it, whose partner declines. */
  readonly declineStep: string;
  /** A step whose partner lets the offer lapse. */
  readonly expireStep: string;
  /** A step no partner can take over; `underWay` legs are started first, `waiting` left offered. */
  readonly failStep: string;
  readonly underWay: readonly string[];
  readonly waiting: readonly string[];
  /** A step the customer rejects once it is delivered. */
  readonly rejectStep: string;
  /** A deadline too close for any plan, and the step and reason the refusal names. */
  readonly tight: { readonly hours: number; readonly step: string; readonly reason: string };
}

const SCENARIOS: readonly Scenario[] = [
  {
    offering: 'garment-run',
    quantity: 1,
    deadlineHours: 10 * 24,
    policy: 'refund',
    acceptanceWindowMinutes: 60,
    declineStep: 'dyeing',
    expireStep: 'fabric',
    failStep: 'sewing',
    underWay: [],
    waiting: [],
    rejectStep: 'inspection',
    // Shipping fits in the last 24 h; inspection would have to be done 6 h from now, in 24 h.
    tight: { hours: 30, step: 'inspection', reason: 'no_candidate' },
  },
  {
    offering: 'meal-delivery',
    quantity: 2,
    deadlineHours: 6,
    policy: 'redo',
    acceptanceWindowMinutes: 10,
    declineStep: 'cooking',
    expireStep: 'packaging',
    failStep: 'cooking',
    underWay: ['packaging'],
    waiting: [],
    rejectStep: 'courier',
    // The courier fits in the last hour; packaging would have to be done in 30 minutes.
    tight: { hours: 1.5, step: 'packaging', reason: 'no_candidate' },
  },
  {
    offering: 'trip',
    quantity: 1,
    deadlineHours: 5 * 24,
    policy: 'refund',
    acceptanceWindowMinutes: 60,
    declineStep: 'stay',
    expireStep: 'transfer',
    failStep: 'stay',
    underWay: [],
    waiting: ['transfer'],
    rejectStep: 'transfer',
    // The guide fits in the last 4 h; a stay of 24 h cannot be done 16 h from now.
    tight: { hours: 20, step: 'stay', reason: 'no_candidate' },
  },
];

interface EventBody {
  id: string;
  type: string;
  subject_id: string;
  data: Record<string, unknown>;
}

const DONE_ORDER = ['completed', 'failed', 'cancelled'];

describe(`the example offerings' stories through the API (${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture();
  const { app, ok, expectProblem } = f;
  const provider = app.baton.services.payments.provider as SimulatedProvider;

  for (const key of ['fabric', 'sewing', 'inspection', 'shipping', 'cooking', 'packaging', 'courier']) {
    await f.capability(key);
  }
  await f.capability('dyeing', ['oeko-tex']);
  for (const key of ['stay', 'transfer', 'guide']) await f.capability(key);

  const leadTimeHours = new Map<string, number>();
  const byId = new Map<string, Offered>();
  const pairs = new Map<string, StepPartners>();
  async function partner(step: string, price: string, hours: number, attributes?: Record<string, unknown>) {
    const created = await f.partnerOffering(step, {
      price,
      leadTimeHours: hours,
      ...(attributes ? { attributes } : {}),
    });
    leadTimeHours.set(created.id, hours);
    byId.set(created.id, created);
    return created;
  }
  // Step: [price, lead time] of the partner a quote chooses, and of the one that can take over.
  const STEP_PARTNERS: Record<string, [string, number, string, number]> = {
    fabric: ['4.00', 24, '4.40', 48],
    dyeing: ['10.00', 24, '11.00', 48],
    sewing: ['10.00', 24, '11.00', 48],
    inspection: ['10.00', 24, '11.00', 48],
    shipping: ['10.00', 24, '11.00', 48],
    cooking: ['6.00', 1, '7.00', 2],
    packaging: ['1.00', 1, '1.20', 2],
    courier: ['3.00', 1, '4.00', 2],
    stay: ['80.00', 24, '85.00', 48],
    transfer: ['30.00', 2, '32.00', 4],
    guide: ['40.00', 4, '42.00', 8],
  };
  for (const [step, [price, hours, otherPrice, otherHours]] of Object.entries(STEP_PARTNERS)) {
    pairs.set(step, {
      first: await partner(step, price, hours),
      second: await partner(step, otherPrice, otherHours),
    });
    // The ranking is price and lead time alone here: no exposure cap moves work to the second.
    ok(await app.request('PUT', `/v1/matching/settings/${step}`, { body: { exposure_cap: { share: 1 } } }));
  }
  // Dearer than the customer pays for the leg (cost plus 15 % or 10 %, or the meal's share of its
  // fixed price): never given the leg when the others fall through.
  const neverGiven = [
    await partner('sewing', '12.00', 24),
    await partner('cooking', '9.50', 1),
    await partner('stay', '95.00', 24),
  ];
  // A dyer of blue only: the garment's constraint (red) keeps it out.
  neverGiven.push(await partner('dyeing', '1.00', 24, { color: 'blue' }));

  await f.publishOffering('garment-run', {
    name: 'Custom garment run',
    unit: 'garment',
    pricing: { kind: 'cost_plus', margin_bps: 1500 },
    rejection_policy: 'refund',
    steps: [
      { key: 'fabric', name: 'Fabric', capability: 'fabric', quantity_per_unit: '1.2' },
      {
        key: 'dyeing',
        name: 'Dyeing',
        capability: 'dyeing',
        constraints: { color: { eq: 'red' } },
        after: ['fabric'],
      },
      { key: 'sewing', name: 'Sewing', capability: 'sewing', after: ['dyeing'] },
      { key: 'inspection', name: 'Inspection', capability: 'inspection', after: ['sewing'] },
      { key: 'shipping', name: 'Shipping', capability: 'shipping', after: ['inspection'] },
    ],
  });
  const mealV1 = {
    name: 'Meal delivery',
    unit: 'meal',
    pricing: { kind: 'fixed', unit_price: { amount: '15.00', currency: 'EUR' } },
    rejection_policy: 'redo',
    acceptance_window_minutes: 10,
    auto_confirm_hours: 2,
    steps: [
      { key: 'cooking', name: 'Cooking', capability: 'cooking' },
      { key: 'packaging', name: 'Packaging', capability: 'packaging' },
      { key: 'courier', name: 'Courier', capability: 'courier', after: ['cooking', 'packaging'] },
    ],
  };
  await f.publishOffering('meal-delivery', mealV1);
  await f.publishOffering('trip', {
    name: 'Trip',
    unit: 'traveller',
    pricing: { kind: 'cost_plus', margin_bps: 1000 },
    steps: [
      { key: 'stay', name: 'Stay', capability: 'stay' },
      { key: 'transfer', name: 'Transfer', capability: 'transfer' },
      { key: 'guide', name: 'Guide', capability: 'guide', after: ['stay', 'transfer'] },
    ],
  });

  // ---------------------------------------------------------------------------------------------
  // What a customer, a partner and the operator do, as the API lets them.

  type Customer = { id: string; key: string };

  async function placePaid(buyer: Customer, offering: string, quantity: number, deadlineHours: number) {
    const quoted = ok<QuoteBody>(
      await f.quote(buyer.key, { offering, quantity, deadline: f.inHours(deadlineHours) }),
      201,
    );
    const placed = ok<OrderBody>(await f.order(buyer.key, quoted.id), 201);
    await f.runJobs();
    const order = await f.readOrder(app.adminKey, placed.id);
    expect(order.status).toBe('in_progress');
    // The customer was charged the quoted total once, and it waits in the order's escrow.
    expect(captured(order.id)).toBe(BigInt(quoted.total.amount_minor));
    expect(await f.balance('customer_escrow', order.id)).toBe(BigInt(quoted.total.amount_minor));
    // The quote chose the first partner of every step.
    for (const leg of order.legs) expect(leg.partner_id, leg.step).toBe(pairs.get(leg.step)?.first.id);
    return order;
  }

  const captured = (orderId: string) =>
    provider
      .operations()
      .filter(
        (operation) =>
          operation.kind === 'capture' &&
          operation.status === 'succeeded' &&
          operation.reference.startsWith(`order:${orderId}`),
      )
      .reduce((sum, operation) => sum + operation.amountMinor, 0n);

  const refundedAtProvider = (orderId: string) =>
    provider
      .operations()
      .filter(
        (operation) =>
          operation.kind === 'refund' &&
          operation.status === 'succeeded' &&
          operation.reference.startsWith(`${orderId}:refund:`),
      )
      .reduce((sum, operation) => sum + operation.amountMinor, 0n);

  type LegBody = OrderBody['legs'][number] & { expected_start: string; expected_finish: string };
  type OrderView = Omit<OrderBody, 'legs'> & { offering_version_id: string; legs: LegBody[] };
  const operatorView = async (orderId: string) => (await f.readOrder(app.adminKey, orderId)) as OrderView;

  async function legOf(orderId: string, step: string) {
    const leg = (await operatorView(orderId)).legs.find((candidate) => candidate.step === step);
    expect(leg, `step ${step}`).toBeDefined();
    return leg as LegBody;
  }

  async function workOrder(id: string): Promise<WorkOrderBody & { reason: string | null }> {
    return ok(await app.request('GET', `/v1/work-orders/${id}`));
  }

  async function currentWorkOrder(orderId: string, step: string) {
    const leg = await legOf(orderId, step);
    expect(leg.work_order_id, `step ${step} has a work order`).toBeTruthy();
    return workOrder(leg.work_order_id as string);
  }

  const partnerOf = (workOrderBody: { partner_id: string }) => byId.get(workOrderBody.partner_id) as Offered;
  const otherOf = (step: string, partnerId: string) => {
    const pair = pairs.get(step) as StepPartners;
    return pair.first.id === partnerId ? pair.second : pair.first;
  };

  const ACTIONS_LEFT: Record<string, string[]> = {
    offered: ['accept', 'start', 'deliver'],
    accepted: ['start', 'deliver'],
    in_progress: ['deliver'],
    delivered: [],
  };

  /** The partner of a leg's work order takes it as far as delivered. */
  async function deliver(orderId: string, step: string) {
    const current = await currentWorkOrder(orderId, step);
    expect(Object.keys(ACTIONS_LEFT), `${step} is ${current.status}`).toContain(current.status);
    for (const action of ACTIONS_LEFT[current.status] ?? [])
      ok(await f.act(partnerOf(current), current.id, action));
    return current;
  }

  async function deliverAndConfirm(buyer: Customer, orderId: string, step: string) {
    await deliver(orderId, step);
    ok(await f.judge(buyer.key, orderId, step, 'confirm'));
  }

  /** Carries out every leg that is out, other than `except`, until `target` is out. */
  async function bringOut(buyer: Customer, orderId: string, target: string, except: readonly string[] = []) {
    for (;;) {
      const order = await operatorView(orderId);
      if (order.legs.find((leg) => leg.step === target)?.status === 'dispatched') return order;
      const out = order.legs.filter((leg) => leg.status === 'dispatched' && !except.includes(leg.step));
      expect(out.length, `something is out before ${target}`).toBeGreaterThan(0);
      for (const leg of out) await deliverAndConfirm(buyer, orderId, leg.step);
    }
  }

  /** Carries out every leg that is out until the order is finished. */
  async function runToEnd(buyer: Customer, orderId: string): Promise<OrderView> {
    for (;;) {
      const order = await operatorView(orderId);
      if (DONE_ORDER.includes(order.status)) {
        await f.runJobs();
        return order;
      }
      const out = order.legs.filter((leg) => leg.status === 'dispatched');
      expect(out.length, `order ${order.status} has a leg out`).toBeGreaterThan(0);
      for (const leg of out) await deliverAndConfirm(buyer, orderId, leg.step);
    }
  }

  /** Every partner's payable now. */
  async function payables(): Promise<Map<string, bigint>> {
    const balances = new Map<string, bigint>();
    for (const id of byId.keys()) balances.set(id, await f.balance('partner_payable', id));
    return balances;
  }

  /**
   * Since `before`, every partner was paid for the legs it did (its price less the 10 %
   * commission), and no other partner got anything.
   */
  async function expectPaidFor(before: Map<string, bigint>, order: OrderBody) {
    const expected = new Map([...before.keys()].map((id) => [id, 0n]));
    for (const leg of order.legs) {
      if (leg.status !== 'done') continue;
      const priceMinor = BigInt(leg.price?.amount_minor as string);
      expected.set(leg.partner_id, (expected.get(leg.partner_id) ?? 0n) + priceMinor - priceMinor / 10n);
    }
    const after = await payables();
    const gained = new Map([...after].map(([id, balance]) => [id, balance - (before.get(id) ?? 0n)]));
    expect(Object.fromEntries(gained)).toEqual(Object.fromEntries(expected));
  }

  /** What the customer paid for a leg: its partner's price and its share of the margin. */
  const budgetOf = (leg: OrderBody['legs'][number]) =>
    BigInt(leg.price?.amount_minor as string) + BigInt(leg.margin?.amount_minor as string);

  /** The customer got `refundMinor` back, in the order and at the provider, and paid the rest. */
  async function expectRefunded(order: OrderBody, refundMinor: bigint) {
    await f.runJobs();
    expect(BigInt(order.refunded.amount_minor)).toBe(refundMinor);
    expect(refundedAtProvider(order.id)).toBe(refundMinor);
    expect(captured(order.id)).toBe(BigInt(order.total.amount_minor));
    expect(await f.balance('refunds_in_transit', 'platform')).toBe(0n);
  }

  /** The events a reader sees about an order: its own, and its work orders'. */
  async function eventsOf(key: string, orderId: string): Promise<EventBody[]> {
    const page = ok<{ data: EventBody[] }>(await app.request('GET', '/v1/events?limit=500', { key }));
    return page.data.filter((event) => event.subject_id === orderId || event.data.order_id === orderId);
  }

  const heldReservations = async () =>
    Number(
      (
        await f.db
          .selectFrom('reservations')
          .select((eb) => eb.fn.countAll<string>().as('count'))
          .where('status', '=', 'held')
          .executeTakeFirstOrThrow()
      ).count,
    );

  // ---------------------------------------------------------------------------------------------
  // The matrix: every offering through every story.

  for (const scenario of SCENARIOS) {
    const { offering, quantity, deadlineHours } = scenario;

    describe(offering, () => {
      it('carries the order out as planned: every partner paid its price less commission, escrow empty', async () => {
        const buyer = await f.customer();
        const before = await payables();
        const order = await placePaid(buyer, offering, quantity, deadlineHours);
        const done = await runToEnd(buyer, order.id);
        expect(done.status).toBe('completed');
        expect(done.legs.every((leg) => leg.status === 'done')).toBe(true);
        await expectRefunded(done, 0n);
        await expectPaidFor(before, done);
        const types = (await eventsOf(buyer.key, order.id)).map((event) => event.type);
        expect(types).toEqual(expect.arrayContaining(['order.placed', 'order.paid', 'order.completed']));
        expect(types).not.toContain('order.refunded');
        await f.expectBooksClean([order.id]);
      });

      it(`gives ${scenario.declineStep}, when its partner declines, to the next-best partner, for the same price`, async () => {
        const buyer = await f.customer();
        const before = await payables();
        const order = await placePaid(buyer, offering, quantity, deadlineHours);
        await bringOut(buyer, order.id, scenario.declineStep);
        const declined = await currentWorkOrder(order.id, scenario.declineStep);
        const first = partnerOf(declined);
        const next = otherOf(scenario.declineStep, first.id);
        ok(await f.act(first, declined.id, 'decline', { reason: 'Fully booked' }));

        expect(await workOrder(declined.id)).toMatchObject({ status: 'declined', reason: 'Fully booked' });
        const replanned = await currentWorkOrder(order.id, scenario.declineStep);
        expect(replanned).toMatchObject({ partner_id: next.id, status: 'offered', attempt: 2 });
        const leg = await legOf(order.id, scenario.declineStep);
        expect(leg).toMatchObject({ partner_id: next.id, replans: 1, attempts: 2, status: 'dispatched' });
        const current = await operatorView(order.id);
        expect(current.total).toEqual(order.total);
        // The declining partner's capacity is given back.
        const held = await f.db
          .selectFrom('reservations')
          .select('status')
          .where('offer_id', '=', first.offerId)
          .where('reference', 'like', `%:${scenario.declineStep}`)
          .execute();
        expect(held.map((row) => row.status)).toContain('released');

        const customerEvents = await eventsOf(buyer.key, order.id);
        expect(customerEvents.find((event) => event.type === 'work_order.declined')).toMatchObject({
          subject_id: declined.id,
          data: { step: scenario.declineStep, partner_id: first.id, reason: 'Fully booked' },
        });
        expect(customerEvents.find((event) => event.type === 'order.leg_replanned')).toMatchObject({
          subject_id: order.id,
          data: {
            step: scenario.declineStep,
            cause: 'declined',
            partner_id: next.id,
            replans: 1,
          },
        });
        // The partner taking over hears of it, and of the work offered to it, but not who declined.
        const nextEvents = await eventsOf(next.key, order.id);
        expect(nextEvents.map((event) => event.type)).toEqual(
          expect.arrayContaining(['order.leg_replanned', 'work_order.offered']),
        );
        expect(JSON.stringify(nextEvents)).not.toContain(first.id);

        const done = await runToEnd(buyer, order.id);
        expect(done.status).toBe('completed');
        await expectRefunded(done, 0n);
        // The declining partner is paid nothing; the one that took over, its own price.
        await expectPaidFor(before, done);
        expect(done.legs.find((candidate) => candidate.step === scenario.declineStep)?.partner_id).toBe(
          next.id,
        );
        await f.expectBooksClean([order.id]);
      });

      // The leg taken over by a slower partner gets that partner's times, and the legs waiting for
      // it start no earlier than it finishes: later than planned where the plan left them too
      // little slack, never earlier than planned.
      it(`moves the expected times of the legs after ${scenario.declineStep} when a slower partner takes it over`, async () => {
        const buyer = await f.customer();
        const order = await placePaid(buyer, offering, quantity, deadlineHours);
        try {
          const out = await bringOut(buyer, order.id, scenario.declineStep);
          const successors = out.legs.filter((leg) => leg.status === 'planned');
          expect(successors.length).toBeGreaterThan(0);
          const declined = await currentWorkOrder(order.id, scenario.declineStep);
          const next = otherOf(scenario.declineStep, declined.partner_id);
          ok(await f.act(partnerOf(declined), declined.id, 'decline', { reason: 'Fully booked' }));

          const after = await operatorView(order.id);
          const leg = after.legs.find((candidate) => candidate.step === scenario.declineStep);
          expect(leg?.partner_id).toBe(next.id);
          // The new partner starts now at the earliest and takes its own lead time.
          const finishMs = new Date(leg?.expected_finish as string).getTime();
          expect(finishMs).toBeGreaterThanOrEqual(
            app.clock.now().getTime() + (leadTimeHours.get(next.id) as number) * HOUR_MS,
          );
          for (const successor of successors) {
            const moved = after.legs.find((candidate) => candidate.step === successor.step);
            const startMs = new Date(moved?.expected_start as string).getTime();
            expect(startMs, successor.step).toBeGreaterThanOrEqual(finishMs);
            expect(startMs, successor.step).toBeGreaterThanOrEqual(
              new Date(successor.expected_start).getTime(),
            );
          }
        } finally {
          // The order is finished whatever happened, so that no later run of the timers meets it.
          await runToEnd(buyer, order.id);
        }
      });

      it(`gives ${scenario.expireStep}, when its offer is not accepted in time, to the next-best partner`, async () => {
        const buyer = await f.customer();
        const before = await payables();
        const order = await placePaid(buyer, offering, quantity, deadlineHours);
        const out = await bringOut(buyer, order.id, scenario.expireStep);
        // Every other leg that is out is accepted: only this one lapses.
        for (const leg of out.legs) {
          if (leg.status !== 'dispatched' || leg.step === scenario.expireStep) continue;
          const other = await currentWorkOrder(order.id, leg.step);
          ok(await f.act(partnerOf(other), other.id, 'accept'));
        }
        const lapsing = await currentWorkOrder(order.id, scenario.expireStep);
        const first = partnerOf(lapsing);
        const next = otherOf(scenario.expireStep, first.id);
        f.advance((scenario.acceptanceWindowMinutes + 1) * 60_000);
        expectProblem(await f.act(first, lapsing.id, 'accept'), 409, 'orders.acceptance_window_closed');
        expect((await f.sweep()).expired).toBe(1);

        expect(await workOrder(lapsing.id)).toMatchObject({
          status: 'expired',
          reason: 'not accepted in time',
        });
        const replanned = await currentWorkOrder(order.id, scenario.expireStep);
        expect(replanned).toMatchObject({ partner_id: next.id, status: 'offered', attempt: 2 });
        // The new offer has a full acceptance window from now.
        expect(new Date(replanned.accept_by).getTime()).toBe(
          app.clock.now().getTime() + scenario.acceptanceWindowMinutes * 60_000,
        );
        const events = await eventsOf(buyer.key, order.id);
        expect(events.find((event) => event.type === 'work_order.expired')).toMatchObject({
          subject_id: lapsing.id,
          data: { step: scenario.expireStep, partner_id: first.id },
        });
        expect(events.find((event) => event.type === 'order.leg_replanned')).toMatchObject({
          data: {
            step: scenario.expireStep,
            cause: 'expired',
            partner_id: next.id,
          },
        });

        const done = await runToEnd(buyer, order.id);
        expect(done.status).toBe('completed');
        await expectRefunded(done, 0n);
        await expectPaidFor(before, done);
        await f.expectBooksClean([order.id]);
      });

      it(`compensates when no partner can take ${scenario.failStep} over: refunds what has not started, pays what was done`, async () => {
        const buyer = await f.customer();
        const before = await payables();
        const order = await placePaid(buyer, offering, quantity, deadlineHours);
        await bringOut(buyer, order.id, scenario.failStep, [...scenario.underWay, ...scenario.waiting]);
        for (const step of scenario.underWay) {
          const started = await currentWorkOrder(order.id, step);
          for (const action of ['accept', 'start']) ok(await f.act(partnerOf(started), started.id, action));
        }
        const waiting = await Promise.all(scenario.waiting.map((step) => currentWorkOrder(order.id, step)));
        const doneBefore = (await operatorView(order.id)).legs.filter((leg) => leg.status === 'done');

        // Both partners that can do the step decline it, one after the other.
        const firstTry = await currentWorkOrder(order.id, scenario.failStep);
        ok(await f.act(partnerOf(firstTry), firstTry.id, 'decline', { reason: 'No staff' }));
        const secondTry = await currentWorkOrder(order.id, scenario.failStep);
        expect(secondTry.partner_id).toBe(otherOf(scenario.failStep, firstTry.partner_id).id);
        ok(await f.act(partnerOf(secondTry), secondTry.id, 'decline', { reason: 'No staff either' }));

        let current = await operatorView(order.id);
        expect(current.failure_code).toBe('leg_unrepairable');
        expect(current.status).toBe(scenario.underWay.length > 0 ? 'compensating' : 'failed');
        // No partner dearer than what the customer paid for the leg was given it.
        const failed = current.legs.find((leg) => leg.step === scenario.failStep);
        expect(failed?.replans).toBe(1);
        expect(neverGiven.map((partner) => partner.id)).not.toContain(failed?.partner_id);
        for (const leg of current.legs) {
          const expected = doneBefore.some((done) => done.step === leg.step)
            ? 'done'
            : scenario.underWay.includes(leg.step)
              ? 'dispatched'
              : 'cancelled';
          expect(leg.status, leg.step).toBe(expected);
        }
        for (const offered of waiting) {
          expect(await workOrder(offered.id)).toMatchObject({
            status: 'cancelled',
            reason: 'order compensated',
          });
        }
        const refundMinor = current.legs
          .filter((leg) => leg.status === 'cancelled')
          .reduce((sum, leg) => sum + budgetOf(leg), 0n);
        expect(refundMinor).toBeGreaterThan(0n);
        // The customer sees that the order failed, and not the platform's reasoning.
        const customerView = await f.readOrder(buyer.key, order.id);
        expect(customerView).toMatchObject({ failure_code: 'leg_unrepairable', failure_detail: null });

        // The legs under way finish and are paid.
        current = await runToEnd(buyer, order.id);
        expect(current.status).toBe('failed');
        await expectRefunded(current, refundMinor);
        await expectPaidFor(before, current);

        const events = await eventsOf(buyer.key, order.id);
        const types = events.map((event) => event.type);
        expect(types.filter((type) => type === 'work_order.declined')).toHaveLength(2);
        expect(types).toEqual(
          expect.arrayContaining(['order.leg_replanned', 'order.compensating', 'order.failed']),
        );
        expect(events.find((event) => event.type === 'order.compensating')).toMatchObject({
          data: { step: scenario.failStep, cause: 'declined' },
        });
        expect(events.find((event) => event.type === 'order.refunded')).toMatchObject({
          data: {
            amount: current.refunded.amount,
            reason: `compensation after ${scenario.failStep} declined`,
          },
        });
        const cancelledEvents = events.filter((event) => event.type === 'work_order.cancelled');
        expect(cancelledEvents.map((event) => event.subject_id).sort()).toEqual(
          waiting.map((offered) => offered.id).sort(),
        );
        expect(types.indexOf('order.failed')).toBeGreaterThan(types.indexOf('order.compensating'));
        await f.expectBooksClean([order.id]);
      });

      if (scenario.policy === 'refund') {
        it(`refunds a rejected ${scenario.rejectStep} and pays its partner nothing, and finishes the rest`, async () => {
          const buyer = await f.customer();
          const before = await payables();
          const order = await placePaid(buyer, offering, quantity, deadlineHours);
          await bringOut(buyer, order.id, scenario.rejectStep);
          const delivered = await deliver(order.id, scenario.rejectStep);
          const legBudget = budgetOf(await legOf(order.id, scenario.rejectStep));
          ok(await f.judge(buyer.key, order.id, scenario.rejectStep, 'reject', 'Not what was ordered'));

          const current = await f.readOrder(buyer.key, order.id);
          expect(current.status).toBe('in_progress');
          expect(current.legs.find((leg) => leg.step === scenario.rejectStep)?.status).toBe('refunded');
          expect(BigInt(current.refunded.amount_minor)).toBe(legBudget);
          expect(await workOrder(delivered.id)).toMatchObject({
            status: 'rejected',
            reason: 'Not what was ordered',
          });

          const done = await runToEnd(buyer, order.id);
          expect(done.status).toBe('completed');
          await expectRefunded(done, legBudget);
          await expectPaidFor(before, done);
          const events = await eventsOf(buyer.key, order.id);
          expect(events.find((event) => event.type === 'work_order.rejected')).toMatchObject({
            subject_id: delivered.id,
            data: { step: scenario.rejectStep, reason: 'Not what was ordered' },
          });
          expect(events.find((event) => event.type === 'order.refunded')).toMatchObject({
            data: { reason: `rejected ${scenario.rejectStep}`, amount: current.refunded.amount },
          });
          await f.expectBooksClean([order.id]);
        });
      } else {
        it(`has a rejected ${scenario.rejectStep} redone by its partner, paid once, and refunds nothing`, async () => {
          const buyer = await f.customer();
          const before = await payables();
          const order = await placePaid(buyer, offering, quantity, deadlineHours);
          await bringOut(buyer, order.id, scenario.rejectStep);
          const delivered = await deliver(order.id, scenario.rejectStep);
          ok(await f.judge(buyer.key, order.id, scenario.rejectStep, 'reject', 'Cold food'));

          const again = await currentWorkOrder(order.id, scenario.rejectStep);
          expect(again).toMatchObject({ partner_id: delivered.partner_id, status: 'offered', attempt: 2 });
          expect(again.id).not.toBe(delivered.id);
          expect(await workOrder(delivered.id)).toMatchObject({ status: 'rejected', reason: 'Cold food' });

          const done = await runToEnd(buyer, order.id);
          expect(done.status).toBe('completed');
          await expectRefunded(done, 0n);
          await expectPaidFor(before, done);
          const types = (await eventsOf(buyer.key, order.id)).map((event) => event.type);
          expect(types).toContain('work_order.rejected');
          expect(types).not.toContain('order.refunded');
          await f.expectBooksClean([order.id]);
        });
      }

      it(`refuses a deadline no plan can meet at quote time, naming ${scenario.tight.step} and why, and holds nothing`, async () => {
        const buyer = await f.customer();
        const held = await heldReservations();
        const refused = await f.quote(buyer.key, {
          offering,
          quantity,
          deadline: f.inHours(scenario.tight.hours),
        });
        const problem = expectProblem(refused, 422, 'orders.quote_infeasible') as unknown as {
          detail: string;
          step: string;
          reason: string;
          exclusions: Record<string, number>;
        };
        expect(problem).toMatchObject({ step: scenario.tight.step, reason: scenario.tight.reason });
        expect(problem.detail).toContain(`step ${scenario.tight.step}`);
        expect(problem.exclusions.lead_time_too_long).toBeGreaterThanOrEqual(2);
        expect(await heldReservations()).toBe(held);
        const quotes = ok<{ data: EventBody[] }>(
          await app.request('GET', '/v1/events?limit=500&types=quote.created', { key: buyer.key }),
        );
        expect(quotes.data).toEqual([]);
      });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Beyond the matrix.

  it('confirms deliveries the customer never judges when their time is up, pays the partners and empties the escrow', async () => {
    const buyer = await f.customer();
    const before = await payables();
    const order = await placePaid(buyer, 'meal-delivery', 1, 6);
    for (const step of ['cooking', 'packaging']) await deliver(order.id, step);
    const released = await f.balance('platform_commission', 'platform');
    // The meal's deliveries confirm themselves 2 h after they were delivered, not before.
    f.advance(2 * HOUR_MS - 60_000);
    expect((await f.sweep()).autoConfirmed).toBe(0);
    f.advance(60_000);
    expect((await f.sweep()).autoConfirmed).toBe(2);
    let current = await operatorView(order.id);
    expect(current.legs.map((leg) => [leg.step, leg.status, leg.work_order_status])).toEqual([
      ['cooking', 'done', 'confirmed'],
      ['packaging', 'done', 'confirmed'],
      ['courier', 'dispatched', 'offered'],
    ]);
    expect(await f.balance('platform_commission', 'platform')).toBeGreaterThan(released);
    await deliver(order.id, 'courier');
    f.advance(2 * HOUR_MS);
    expect((await f.sweep()).autoConfirmed).toBe(1);
    current = await operatorView(order.id);
    expect(current.status).toBe('completed');
    await expectRefunded(current, 0n);
    await expectPaidFor(before, current);
    const types = (await eventsOf(buyer.key, order.id)).map((event) => event.type);
    expect(types.filter((type) => type === 'work_order.confirmed')).toHaveLength(3);
    expect(types).toContain('order.completed');
    await f.expectBooksClean([order.id]);
  });

  describe('a partner suspended while its legs have not started', () => {
    async function transition(partner: Partner, to: string) {
      ok(
        await app.request('POST', `/v1/partners/${partner.id}/transitions`, {
          body: { to, reason: `${to} by a test` },
        }),
      );
    }

    it('gives its legs, offered or still planned, to the next-best partners', async () => {
      const buyer = await f.customer();
      const before = await payables();
      const order = await placePaid(buyer, 'trip', 1, 5 * 24);
      const driver = pairs.get('transfer')?.first as Offered;
      const guide = pairs.get('guide')?.first as Offered;
      const offered = await currentWorkOrder(order.id, 'transfer');
      expect(offered.partner_id).toBe(driver.id);
      await transition(driver, 'suspended');
      await transition(guide, 'suspended');
      try {
        expect((await f.sweep()).replanned).toBe(2);
        expect(await workOrder(offered.id)).toMatchObject({
          status: 'cancelled',
          reason: 'partner unavailable',
        });
        const current = await operatorView(order.id);
        const transfer = current.legs.find((leg) => leg.step === 'transfer');
        const guided = current.legs.find((leg) => leg.step === 'guide');
        expect(transfer).toMatchObject({
          partner_id: pairs.get('transfer')?.second.id,
          status: 'dispatched',
          replans: 1,
        });
        expect(await currentWorkOrder(order.id, 'transfer')).toMatchObject({ status: 'offered', attempt: 2 });
        expect(guided).toMatchObject({
          partner_id: pairs.get('guide')?.second.id,
          status: 'planned',
          replans: 1,
        });
        const events = await eventsOf(buyer.key, order.id);
        expect(events.find((event) => event.type === 'work_order.cancelled')).toMatchObject({
          subject_id: offered.id,
          data: { reason: 'partner unavailable' },
        });
        const replans = events.filter((event) => event.type === 'order.leg_replanned');
        expect(
          replans.map((event) => [event.data.step, event.data.cause, event.data.partner_id]).sort(),
        ).toEqual([
          ['guide', 'partner_unavailable', pairs.get('guide')?.second.id],
          ['transfer', 'partner_unavailable', pairs.get('transfer')?.second.id],
        ]);
        // Nothing is left for a second run of the timers.
        expect((await f.sweep()).replanned).toBe(0);
        const done = await runToEnd(buyer, order.id);
        expect(done.status).toBe('completed');
        await expectRefunded(done, 0n);
        await expectPaidFor(before, done);
        await f.expectBooksClean([order.id]);
      } finally {
        await transition(driver, 'active');
        await transition(guide, 'active');
        await f.sync();
      }
    });

    it('compensates the order when no other partner can take its leg, refunding all that has not started', async () => {
      const buyer = await f.customer();
      const before = await payables();
      const order = await placePaid(buyer, 'trip', 1, 5 * 24);
      const hosts = [pairs.get('stay')?.first, pairs.get('stay')?.second] as Offered[];
      const stay = await currentWorkOrder(order.id, 'stay');
      const transfer = await currentWorkOrder(order.id, 'transfer');
      // The other host is suspended too; the only one left costs more than the customer paid.
      for (const host of hosts) await transition(host, 'suspended');
      try {
        expect((await f.sweep()).replanned).toBe(1);
        const current = await operatorView(order.id);
        expect(current).toMatchObject({ status: 'failed', failure_code: 'leg_unrepairable' });
        expect(current.legs.every((leg) => leg.status === 'cancelled')).toBe(true);
        for (const id of [stay.id, transfer.id]) expect((await workOrder(id)).status).toBe('cancelled');
        await expectRefunded(current, BigInt(current.total.amount_minor));
        await expectPaidFor(before, current);
        const events = await eventsOf(buyer.key, order.id);
        const types = events.map((event) => event.type);
        expect(types).toEqual(
          expect.arrayContaining(['order.compensating', 'order.refunded', 'order.failed']),
        );
        expect(types).not.toContain('order.leg_replanned');
        expect(events.find((event) => event.type === 'order.compensating')).toMatchObject({
          data: { step: 'stay', cause: 'partner_unavailable' },
        });
        expect(
          events
            .filter((event) => event.type === 'work_order.cancelled')
            .map((event) => event.subject_id)
            .sort(),
        ).toEqual([stay.id, transfer.id].sort());
        await f.expectBooksClean([order.id]);
      } finally {
        for (const host of hosts) await transition(host, 'active');
        await f.sync();
      }
    });
  });

  it('runs a placed order on the offering version it was quoted under, after a new version changes the policy and steps', async () => {
    const buyer = await f.customer();
    const before = await payables();
    const placed = await placePaid(buyer, 'meal-delivery', 1, 6);
    // Quoted under version 1, ordered after version 2 is out.
    const quotedEarlier = ok<QuoteBody>(
      await f.quote(buyer.key, { offering: 'meal-delivery', quantity: 1, deadline: f.inHours(6) }),
      201,
    );
    // Version 2: no packaging, and a rejected delivery is refunded, not redone.
    await f.publishOffering(
      'meal-delivery',
      {
        ...mealV1,
        rejection_policy: 'refund',
        steps: [
          { key: 'cooking', name: 'Cooking', capability: 'cooking' },
          { key: 'courier', name: 'Courier', capability: 'courier', after: ['cooking'] },
        ],
      },
      { nextVersion: true },
    );
    const orderedLater = ok<OrderBody>(await f.order(buyer.key, quotedEarlier.id), 201);
    await f.runJobs();
    const fresh = await placePaid(buyer, 'meal-delivery', 1, 6);

    const v1 = (await operatorView(placed.id)).offering_version_id;
    const later = await operatorView(orderedLater.id);
    const v2 = await operatorView(fresh.id);
    expect(later.offering_version_id).toBe(v1);
    expect(v2.offering_version_id).not.toBe(v1);
    expect(later.legs.map((leg) => leg.step)).toEqual(['cooking', 'packaging', 'courier']);
    expect(v2.legs.map((leg) => leg.step)).toEqual(['cooking', 'courier']);

    // Under version 1 a rejected delivery is redone; under version 2 it is refunded.
    for (const id of [placed.id, orderedLater.id]) {
      await bringOut(buyer, id, 'courier');
      const delivered = await deliver(id, 'courier');
      ok(await f.judge(buyer.key, id, 'courier', 'reject', 'Cold food'));
      expect(await currentWorkOrder(id, 'courier')).toMatchObject({
        partner_id: delivered.partner_id,
        attempt: 2,
      });
      const done = await runToEnd(buyer, id);
      expect(done.status).toBe('completed');
      await expectRefunded(done, 0n);
    }
    await bringOut(buyer, fresh.id, 'courier');
    await deliver(fresh.id, 'courier');
    const courierBudget = budgetOf(await legOf(fresh.id, 'courier'));
    ok(await f.judge(buyer.key, fresh.id, 'courier', 'reject', 'Cold food'));
    const done = await runToEnd(buyer, fresh.id);
    expect(done.legs.find((leg) => leg.step === 'courier')?.status).toBe('refunded');
    await expectRefunded(done, courierBudget);

    const finished = [placed.id, orderedLater.id, fresh.id];
    const payable = new Map(
      await Promise.all(finished.map(async (id) => [id, await operatorView(id)] as const)),
    );
    const after = await payables();
    // Each partner was paid for the legs it did, in all three orders together.
    const expected = new Map([...before.keys()].map((id) => [id, 0n]));
    for (const order of payable.values()) {
      for (const leg of order.legs) {
        if (leg.status !== 'done') continue;
        const priceMinor = BigInt(leg.price?.amount_minor as string);
        expected.set(leg.partner_id, (expected.get(leg.partner_id) ?? 0n) + priceMinor - priceMinor / 10n);
      }
    }
    expect(
      Object.fromEntries([...after].map(([id, balance]) => [id, balance - (before.get(id) ?? 0n)])),
    ).toEqual(Object.fromEntries(expected));
    await f.expectBooksClean(finished);
  });
});
