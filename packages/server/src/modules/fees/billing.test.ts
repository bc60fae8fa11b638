import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { Problem } from '../../kernel/http/problem.js';
import type { PartnerId } from '../../kernel/ids.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { feesJobs } from './jobs.js';

type Money = { amount: string; currency: string; amount_minor: string };
type Subscription = {
  id: string;
  status: string;
  plan: string;
  trial_end: string;
  current_period_start: string;
  current_period_end: string;
  cancel_at_period_end: boolean;
  canceled_at: string | null;
};
type Charge = {
  id: string;
  period_start: string;
  period_end: string;
  amount: Money;
  from_payable: Money;
  owed: Money;
  transaction_id: string | null;
};
type ServiceCharge = Charge & { service: string };

describe(`subscriptions and value-added services (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;
  const { fees, ledger } = app.baton.services;
  const financeKey = await app.operatorKey('finance');
  const [billingJob] = feesJobs({ fees, db, clock: app.clock });

  function ok<T>(response: ApiResponse<unknown>, status = 200): T {
    expect(response.status, response.text).toBe(status);
    return response.body as T;
  }
  function expectProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }
  const ctx = () => ({ db, actor: systemActor('test'), now: app.clock.now(), requestId: null, ip: null });
  const billDue = () => runInTransaction(db, (tx) => fees.billDue({ ...ctx(), db: tx }));
  const balance = async (purpose: 'partner_payable' | 'partner_receivable', ownerId: string) =>
    // Reading an account opens it on first use, which is a write.
    (
      await runInTransaction(db, (tx) =>
        ledger.balance({ ...ctx(), db: tx }, { purpose, ownerId, currency: 'EUR' }),
      )
    ).balanceMinor;
  const revenue = async (purpose: 'platform_access_fees' | 'platform_services') =>
    (
      await runInTransaction(db, (tx) =>
        ledger.balance({ ...ctx(), db: tx }, { purpose, ownerId: 'platform', currency: 'EUR' }),
      )
    ).balanceMinor;

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'mill', name: 'Mill', profile_schema: { type: 'object' } },
    }),
    201,
  );
  async function apply(name: string): Promise<{ id: PartnerId; key: string; memberKey: string }> {
    const applied = ok<{ partner: { id: PartnerId }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: { partner_type: 'mill', name, email: `${name}@partner.test`, regions: ['eu-west'] },
      }),
      201,
    );
    const member = ok<{ id: string }>(
      await app.request('POST', `/v1/partners/${applied.partner.id}/users`, {
        key: applied.api_key.secret,
        body: { name: `${name} member`, email: `member@${name}.test`, role: 'member' },
      }),
      201,
    );
    const memberKey = ok<{ secret: string }>(
      await app.request('POST', '/v1/api-keys', {
        key: applied.api_key.secret,
        body: { name: 'member', user_id: member.id },
      }),
      201,
    );
    return { id: applied.partner.id, key: applied.api_key.secret, memberKey: memberKey.secret };
  }
  /** Credits a partner's payable, as released earnings would. */
  async function earn(partnerId: string, amountMinor: bigint, key: string) {
    await runInTransaction(db, (tx) =>
      ledger.post(
        { ...ctx(), db: tx },
        {
          idempotencyKey: key,
          cause: { kind: 'adjustment', id: key },
          entries: [
            {
              account: { purpose: 'operator_adjustments', ownerId: 'platform', currency: 'EUR' },
              direction: 'debit',
              amountMinor,
            },
            {
              account: { purpose: 'partner_payable', ownerId: partnerId, currency: 'EUR' },
              direction: 'credit',
              amountMinor,
            },
          ],
        },
      ),
    );
  }

  const alpha = await apply('alpha');
  const bravo = await apply('bravo');
  const charlie = await apply('charlie');
  const plan = (body: Record<string, unknown>) =>
    app.request('POST', '/v1/subscription-plans', { key: financeKey, body });
  ok(
    await plan({
      key: 'growth-monthly',
      name: 'Growth',
      interval: 'month',
      price: { amount: '20.00', currency: 'EUR' },
      trial_days: 14,
    }),
    201,
  );
  ok(
    await plan({
      key: 'pro-annual',
      name: 'Pro',
      interval: 'year',
      price: { amount: '200.00', currency: 'EUR' },
    }),
    201,
  );
  await earn(alpha.id, 3000n, 'earn-alpha');

  const subscribe = (partnerId: string, planKey: string, key = financeKey) =>
    app.request<Subscription>('POST', `/v1/partners/${partnerId}/subscriptions`, {
      key,
      body: { plan: planKey },
    });
  const charges = async (subscriptionId: string) =>
    ok<{ data: Charge[] }>(await app.request('GET', `/v1/subscriptions/${subscriptionId}/charges`)).data;

  const growth = ok<Subscription>(await subscribe(alpha.id, 'growth-monthly', alpha.key), 201);
  const annual = ok<Subscription>(await subscribe(bravo.id, 'pro-annual'), 201);
  const start = app.clock.now();

  it('starts a trial that ends without a charge, then bills each paid period once it has ended', async () => {
    expect(growth).toMatchObject({
      status: 'trialing',
      trial_end: '2026-06-15T09:00:00.000Z',
      current_period_start: start.toISOString(),
      current_period_end: '2026-06-15T09:00:00.000Z',
    });
    app.clock.set(new Date('2026-06-15T08:59:59Z'));
    expect((await billDue()).processed).toBe(0);
    app.clock.set(new Date('2026-06-15T09:00:00Z'));
    const trialOver = await billDue();
    expect(trialOver.charges).toEqual([]);
    const [afterTrial] = ok<{ data: Subscription[] }>(
      await app.request('GET', `/v1/partners/${alpha.id}/subscriptions`, { key: alpha.memberKey }),
    ).data;
    expect(afterTrial).toMatchObject({
      status: 'active',
      current_period_start: '2026-06-15T09:00:00.000Z',
      current_period_end: '2026-07-15T09:00:00.000Z',
    });
    expect(await charges(growth.id)).toEqual([]);

    app.clock.set(new Date('2026-07-15T09:00:00Z'));
    await billingJob?.handler({});
    const [first] = await charges(growth.id);
    expect(first).toMatchObject({
      period_start: '2026-06-15T09:00:00.000Z',
      period_end: '2026-07-15T09:00:00.000Z',
      amount: { amount: '20.00' },
      from_payable: { amount: '20.00' },
      owed: { amount: '0.00' },
    });
    expect(await balance('partner_payable', alpha.id)).toBe(1000n);
  });

  it('bills a period once however often the job runs', async () => {
    await billingJob?.handler({});
    await billingJob?.handler({});
    expect(await billDue()).toMatchObject({ processed: 0, charges: [] });
    expect(await charges(growth.id)).toHaveLength(1);
    const posted = await ledger.transactionsFor(ctx(), { kind: 'subscription', id: growth.id });
    expect(posted.map((transaction) => transaction.idempotencyKey)).toEqual([
      `subscription:${growth.id}:2026-06-15T09:00:00.000Z`,
    ]);
    expect(await revenue('platform_access_fees')).toBe(2000n);
  });

  it('takes what the payable covers and records the rest as owed', async () => {
    app.clock.set(new Date('2026-08-15T09:00:00Z'));
    const run = await billDue();
    expect(run.charges).toHaveLength(1);
    const [, second] = await charges(growth.id);
    expect(second).toMatchObject({ from_payable: { amount: '10.00' }, owed: { amount: '10.00' } });
    expect(await balance('partner_payable', alpha.id)).toBe(0n);
    expect(await balance('partner_receivable', alpha.id)).toBe(1000n);
    expect(await revenue('platform_access_fees')).toBe(4000n);
  });

  it('ends a subscription cancelled at period end after billing the period it used', async () => {
    const canceled = ok<Subscription>(
      await app.request('POST', `/v1/subscriptions/${growth.id}/cancel`, { key: alpha.key }),
    );
    expect(canceled).toMatchObject({ status: 'active', cancel_at_period_end: true });
    // Cancelling again changes nothing.
    expect(ok<Subscription>(await app.request('POST', `/v1/subscriptions/${growth.id}/cancel`))).toEqual(
      canceled,
    );
    app.clock.set(new Date('2026-10-20T00:00:00Z'));
    const run = await billDue();
    expect(run.charges.map((charge) => charge.periodStart.toISOString())).toEqual([
      '2026-08-15T09:00:00.000Z',
    ]);
    expect(run.canceled.map((subscription) => subscription.id)).toEqual([growth.id]);
    const [ended] = ok<{ data: Subscription[] }>(
      await app.request('GET', `/v1/partners/${alpha.id}/subscriptions`, { key: alpha.key }),
    ).data;
    expect(ended).toMatchObject({ status: 'canceled', canceled_at: '2026-09-15T09:00:00.000Z' });
    expect(await charges(growth.id)).toHaveLength(3);
    expectProblem(
      await app.request('POST', `/v1/subscriptions/${growth.id}/cancel`, { key: alpha.key }),
      409,
      'fees.subscription_canceled',
    );
    // The plan can be taken again once the old subscription has ended: without its trial, had once.
    const again = ok<Subscription>(await subscribe(alpha.id, 'growth-monthly'), 201);
    expect(again).toMatchObject({
      status: 'active',
      trial_end: app.clock.now().toISOString(),
      current_period_start: app.clock.now().toISOString(),
    });
  });

  it('bills an annual plan once a year, all owed when the payable is empty', async () => {
    expect(annual).toMatchObject({
      status: 'active',
      current_period_start: start.toISOString(),
      current_period_end: '2027-06-01T09:00:00.000Z',
    });
    expect(await charges(annual.id)).toEqual([]);
    app.clock.set(new Date('2027-06-01T09:00:00Z'));
    await billDue();
    const [yearly] = await charges(annual.id);
    expect(yearly).toMatchObject({
      period_start: start.toISOString(),
      period_end: '2027-06-01T09:00:00.000Z',
      amount: { amount: '200.00' },
      from_payable: { amount: '0.00' },
      owed: { amount: '200.00' },
    });
    expect(await balance('partner_receivable', bravo.id)).toBe(20000n);
  });

  it('refuses subscriptions a caller may not make, and a second live one to the same plan', async () => {
    expectProblem(await subscribe(charlie.id, 'no-such-plan'), 404, 'fees.plan_not_found');
    expectProblem(await subscribe(bravo.id, 'pro-annual'), 409, 'fees.already_subscribed');
    expectProblem(await subscribe(charlie.id, 'pro-annual', alpha.key), 404, 'fees.partner_not_found');
    expectProblem(await subscribe(alpha.id, 'pro-annual', alpha.memberKey), 403, 'auth.role_not_allowed');
    expectProblem(
      await app.request('POST', `/v1/subscriptions/${annual.id}/cancel`, { key: alpha.key }),
      404,
      'fees.subscription_not_found',
    );
    expectProblem(
      await app.request('GET', `/v1/subscriptions/${annual.id}/charges`, { key: alpha.key }),
      404,
      'fees.subscription_not_found',
    );
    expectProblem(
      await plan({
        key: 'pro-annual',
        name: 'Again',
        interval: 'year',
        price: { amount: '1.00', currency: 'EUR' },
      }),
      409,
      'fees.plan_key_taken',
    );
    expectProblem(
      await plan({
        key: 'cheap',
        name: 'Cheap',
        interval: 'week',
        price: { amount: '1.00', currency: 'EUR' },
      }),
      400,
      'request.invalid',
    );
    expectProblem(
      await plan({ key: 'odd', name: 'Odd', interval: 'month', price: { amount: '1.001', currency: 'EUR' } }),
      422,
      'fees.price_invalid',
    );
    const plans = ok<{ data: { key: string }[] }>(
      await app.request('GET', '/v1/subscription-plans', { key: charlie.key }),
    );
    expect(plans.data.map((item) => item.key)).toEqual(['growth-monthly', 'pro-annual']);
  });

  it('bills every period that ended before a cancellation, when the billing job was down meanwhile', async () => {
    app.clock.set(new Date('2027-07-01T09:00:00Z'));
    const dora = await apply('dora');
    const late = ok<Subscription>(await subscribe(dora.id, 'growth-monthly', dora.key), 201);
    // The billing job is down from the trial's end on; the partner cancels months later.
    app.clock.set(new Date('2027-10-20T12:00:00Z'));
    const canceled = ok<Subscription>(
      await app.request('POST', `/v1/subscriptions/${late.id}/cancel`, { key: dora.key }),
    );
    // The periods that ended are billed, and the one under way ends the subscription.
    expect((await charges(late.id)).map((charge) => charge.period_start)).toEqual([
      '2027-07-15T09:00:00.000Z',
      '2027-08-15T09:00:00.000Z',
      '2027-09-15T09:00:00.000Z',
    ]);
    expect(canceled).toMatchObject({
      status: 'active',
      cancel_at_period_end: true,
      current_period_start: '2027-10-15T09:00:00.000Z',
      current_period_end: '2027-11-15T09:00:00.000Z',
    });
    app.clock.set(new Date('2027-11-20T00:00:00Z'));
    await billDue();
    expect(await charges(late.id)).toHaveLength(4);
    const [ended] = ok<{ data: Subscription[] }>(
      await app.request('GET', `/v1/partners/${dora.id}/subscriptions`, { key: dora.key }),
    ).data;
    expect(ended).toMatchObject({ status: 'canceled', canceled_at: '2027-11-15T09:00:00.000Z' });
  });

  it('bills nothing more to a partner that left, ending its subscription, and takes no new one', async () => {
    app.clock.set(new Date('2027-12-01T09:00:00Z'));
    const erin = await apply('erin');
    const leaving = ok<Subscription>(await subscribe(erin.id, 'growth-monthly', erin.key), 201);
    app.clock.set(new Date('2028-01-15T09:00:00Z'));
    await billDue();
    expect(await charges(leaving.id)).toHaveLength(1);
    for (const to of ['under_review', 'active', 'offboarded'])
      ok(
        await app.request('POST', `/v1/partners/${erin.id}/transitions`, {
          body: { to, reason: `Moved to ${to} by a test.` },
        }),
      );
    app.clock.set(new Date('2028-03-20T09:00:00Z'));
    const run = await billDue();
    expect(run.canceled.map((subscription) => subscription.id)).toContain(leaving.id);
    expect(await charges(leaving.id)).toHaveLength(1);
    const [ended] = ok<{ data: Subscription[] }>(
      await app.request('GET', `/v1/partners/${erin.id}/subscriptions`),
    ).data;
    expect(ended).toMatchObject({ status: 'canceled', canceled_at: '2028-01-15T09:00:00.000Z' });
    expectProblem(await subscribe(erin.id, 'pro-annual'), 409, 'fees.partner_closed');
  });

  describe('value-added services', async () => {
    const service = (body: Record<string, unknown>) =>
      app.request('POST', '/v1/value-added-services', { key: financeKey, body });
    ok(
      await service({
        key: 'featured-placement',
        name: 'Featured placement',
        price: { amount: '15.00', currency: 'EUR' },
      }),
      201,
    );
    ok(
      await service({
        key: 'express-payout',
        name: 'Express payout',
        price: { amount: '2.50', currency: 'EUR' },
        orderable_by_partner: false,
      }),
      201,
    );
    await earn(charlie.id, 1000n, 'earn-charlie');
    const charge = (
      partnerId: string,
      body: Record<string, unknown>,
      key: string | undefined,
      idempotencyKey?: string,
    ) =>
      app.request<ServiceCharge>('POST', `/v1/partners/${partnerId}/service-charges`, {
        ...(key ? { key } : {}),
        body,
        ...(idempotencyKey ? { headers: { 'idempotency-key': idempotencyKey } } : {}),
      });

    it('charges a partner that orders a service, payable first and the rest owed, once per key', async () => {
      const payableBefore = await balance('partner_payable', charlie.id);
      const servicesBefore = await revenue('platform_services');
      const first = await charge(charlie.id, { service: 'featured-placement' }, charlie.key, 'feature-1');
      const made = ok<ServiceCharge>(first, 201);
      expect(made).toMatchObject({
        service: 'featured-placement',
        amount: { amount: '15.00' },
        from_payable: { amount: '10.00' },
        owed: { amount: '5.00' },
      });
      const again = await charge(charlie.id, { service: 'featured-placement' }, charlie.key, 'feature-1');
      expect(again.status).toBe(201);
      expect(again.headers['idempotency-replayed']).toBe('true');
      expect(again.body).toEqual(made);
      expect(payableBefore - (await balance('partner_payable', charlie.id))).toBe(1000n);
      expect(await balance('partner_receivable', charlie.id)).toBe(500n);
      expect((await revenue('platform_services')) - servicesBefore).toBe(1500n);
      const posted = await ledger.transactionsFor(ctx(), { kind: 'service_charge', id: made.id });
      expect(posted).toHaveLength(1);
      const listed = ok<{ data: ServiceCharge[] }>(
        await app.request('GET', `/v1/partners/${charlie.id}/service-charges`, { key: charlie.memberKey }),
      );
      expect(listed.data).toEqual([made]);
    });

    it('lets only operators charge services not open to partners', async () => {
      expectProblem(
        await charge(charlie.id, { service: 'express-payout' }, charlie.key, 'express-1'),
        403,
        'fees.service_not_orderable',
      );
      const operatorCharge = ok<ServiceCharge>(
        await charge(
          charlie.id,
          { service: 'express-payout', note: 'Payout of 3 July' },
          financeKey,
          'express-2',
        ),
        201,
      );
      expect(operatorCharge).toMatchObject({ owed: { amount: '2.50' }, note: 'Payout of 3 July' });
    });

    it('refuses bad charges with problems, and moves no money', async () => {
      const servicesBefore = await revenue('platform_services');
      expectProblem(
        await charge(charlie.id, { service: 'featured-placement' }, charlie.key),
        400,
        'idempotency.key_required',
      );
      expectProblem(
        await charge(charlie.id, { service: 'nothing-here' }, charlie.key, 'bad-1'),
        404,
        'fees.service_not_found',
      );
      expectProblem(
        await charge(charlie.id, { service: 'featured-placement' }, alpha.key, 'bad-2'),
        404,
        'fees.partner_not_found',
      );
      expectProblem(
        await charge(charlie.id, { service: 'featured-placement' }, charlie.memberKey, 'bad-3'),
        403,
        'auth.role_not_allowed',
      );
      expectProblem(
        await charge(charlie.id, { service: 'featured-placement', amount: '0.01' }, financeKey, 'bad-4'),
        400,
        'request.invalid',
      );
      expectProblem(
        await service({
          key: 'featured-placement',
          name: 'Again',
          price: { amount: '1.00', currency: 'EUR' },
        }),
        409,
        'fees.service_key_taken',
      );
      expectProblem(
        await service({ key: 'free-lunch', name: 'Free', price: { amount: '0.00', currency: 'EUR' } }),
        422,
        'fees.price_invalid',
      );
      expect(await revenue('platform_services')).toBe(servicesBefore);
      const catalogue = ok<{ data: { key: string }[] }>(
        await app.request('GET', '/v1/value-added-services', { key: alpha.key }),
      );
      expect(catalogue.data.map((item) => item.key)).toEqual(['express-payout', 'featured-placement']);
    });
  });
});
