import { describe, expect, it } from 'vitest';
import { systemActor } from '../kernel/actor.js';
import type { Context } from '../kernel/context.js';
import { runInTransaction } from '../kernel/database/transaction.js';
import type { Problem } from '../kernel/http/problem.js';
import type { PartnerId } from '../kernel/ids.js';
import type { AccountKey } from '../modules/ledger/index.js';
import { type SimulatedProvider, TEST_CARDS } from '../modules/payments/index.js';
import { type ApiResponse, createTestApp } from '../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';
import { partnerTypes } from './settlement.js';
import { PROVIDER_REFUND_JOB } from './settlement-routes.js';

type Money = { amount: string; currency: string; amount_minor: string };

describe(`settlement: releases and refunds over HTTP (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;
  const { ledger, fees } = app.baton.services;
  const financeKey = await app.operatorKey('finance');
  const supportKey = await app.operatorKey('support');
  let requests = 0;
  const post = <T>(url: string, body: unknown, key = financeKey) =>
    app.request<T>('POST', url, { key, body, headers: { 'idempotency-key': `settlement-${++requests}` } });
  const ctx = (tx: typeof db): Context => ({
    db: tx,
    actor: systemActor('test'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });
  const balance = async (key: AccountKey) =>
    (await runInTransaction(db, (tx) => ledger.balance(ctx(tx), key))).balanceMinor;
  const eur = (purpose: AccountKey['purpose'], ownerId = 'platform'): AccountKey => ({
    purpose,
    ownerId,
    currency: 'EUR',
  });

  function ok<T>(response: ApiResponse<unknown>, status = 201): T {
    expect(response.status, response.text).toBe(status);
    return response.body as T;
  }
  function expectProblem(response: ApiResponse<unknown>, status: number, code: string) {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
  }

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'mill', name: 'Mill', profile_schema: { type: 'object' } },
    }),
  );
  const partner = ok<{ partner: { id: PartnerId } }>(
    await app.request('POST', '/v1/partner-applications', {
      key: null,
      body: { partner_type: 'mill', name: 'Mill', email: 'mill@partner.test', regions: ['eu-west'] },
    }),
  ).partner.id;
  const version = await runInTransaction(db, (tx) =>
    fees.createVersion(ctx(tx), { currency: 'EUR', rules: [{ commissionBps: 1000, rounding: 'half_up' }] }),
  );
  let orders = 0;
  /** An order whose customer paid `amount` into escrow. */
  async function paidOrder(amountMinor: bigint): Promise<string> {
    const order = `ord-settlement-${++orders}`;
    await runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `test:${order}:capture`,
        cause: { kind: 'payment', id: order },
        entries: [
          { account: eur('provider_clearing'), direction: 'debit', amountMinor },
          { account: eur('customer_escrow', order), direction: 'credit', amountMinor },
        ],
      }),
    );
    return order;
  }
  const releaseBody = (order: string, leg: string, gross: string, margin = '0.00') => ({
    order_ref: order,
    leg_ref: leg,
    partner_id: partner,
    capability: 'dyeing',
    region: 'eu-west',
    gross: { amount: gross, currency: 'EUR' },
    margin: { amount: margin, currency: 'EUR' },
    fee_version_id: version.id,
  });

  it('releases a leg: partner net, commission and margin; a second release is the first', async () => {
    const order = await paidOrder(12_000n);
    const released = ok<{ commission: Money; partner_net: Money; transaction: { id: string } }>(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '100.00', '20.00')),
    );
    expect(released.commission.amount).toBe('10.00');
    expect(released.partner_net.amount).toBe('90.00');
    const again = ok<{ transaction: { id: string } }>(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '100.00', '20.00')),
    );
    expect(again.transaction.id).toBe(released.transaction.id);
    expect(await balance(eur('customer_escrow', order))).toBe(0n);
  });

  it('refunds from escrow first, then reverses released legs in proportion, clawing back as debt when the payable is short', async () => {
    const order = await paidOrder(30_000n);
    ok(await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '100.00')));
    const payableBefore = await balance(eur('partner_payable', partner));
    const commissionBefore = await balance(eur('platform_commission'));
    // 200.00 left in escrow; refund 250.00: 200.00 from escrow, 50.00 from the leg (45.00 partner, 5.00 commission).
    const refund = ok<{ from_escrow: Money; from_legs: { leg_ref: string; amount: Money }[] }>(
      await post('/v1/settlements/refunds', {
        order_ref: order,
        refund_ref: `${order}:r1`,
        amount: { amount: '250.00', currency: 'EUR' },
        released_leg_refs: [`${order}:1`],
      }),
    );
    expect(refund.from_escrow.amount).toBe('200.00');
    expect(refund.from_legs).toEqual([
      { leg_ref: `${order}:1`, amount: expect.objectContaining({ amount: '50.00' }) },
    ]);
    expect(await balance(eur('partner_payable', partner))).toBe(payableBefore - 4_500n);
    expect(await balance(eur('platform_commission'))).toBe(commissionBefore - 500n);
    // More than is left: refused, nothing moves.
    expectProblem(
      await post('/v1/settlements/refunds', {
        order_ref: order,
        refund_ref: `${order}:r2`,
        amount: { amount: '50.01', currency: 'EUR' },
        released_leg_refs: [`${order}:1`],
      }),
      422,
      'settlement.refund_exceeds_order',
    );
    // The partner is paid out meanwhile (its payable emptied by hand here); the rest comes back as a debt.
    const payable = await balance(eur('partner_payable', partner));
    await runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `test:${order}:drain`,
        cause: { kind: 'adjustment', id: order },
        entries: [
          { account: eur('partner_payable', partner), direction: 'debit', amountMinor: payable },
          { account: eur('operator_adjustments'), direction: 'credit', amountMinor: payable },
        ],
      }),
    );
    ok(
      await post('/v1/settlements/refunds', {
        order_ref: order,
        refund_ref: `${order}:r3`,
        amount: { amount: '50.00', currency: 'EUR' },
        released_leg_refs: [`${order}:1`],
      }),
    );
    expect(await balance(eur('partner_payable', partner))).toBe(0n);
    expect(await balance(eur('partner_receivable', partner))).toBe(4_500n);
    expect(await balance(eur('customer_escrow', order))).toBe(0n);
  });

  /** An order paid 100.00 through the provider, of which a chargeback took 30.00 back. */
  async function chargedBackOrder() {
    const order = `ord-settlement-chargeback-${++orders}`;
    const payments = app.baton.services.payments;
    const payment = ok<{ id: string; reference: string }>(
      await post('/v1/payments', {
        order_ref: order,
        payment_method: TEST_CARDS.ok,
        amount: { amount: '100.00', currency: 'EUR' },
      }),
      202,
    );
    await payments.resume(db, systemActor('test'), payment.id);
    const provider = payments.provider as SimulatedProvider;
    provider.chargeback(`${payment.reference}:capture`, 3_000n, `${order}:chargeback`);
    await provider.flush();
    return { order, payment };
  }

  it('lets no one reverse by hand what a payment, its chargeback or its refund posted', async () => {
    const { order, payment } = await chargedBackOrder();
    ok(
      await post('/v1/settlements/refunds', {
        order_ref: order,
        refund_ref: `${order}:r-kept`,
        amount: { amount: '10.00', currency: 'EUR' },
        payment_id: payment.id,
      }),
    );
    await app.baton.jobs.runQueued(PROVIDER_REFUND_JOB);
    const provider = app.baton.services.payments.provider as SimulatedProvider;
    await provider.flush();
    const postings = async (kind: string) =>
      (
        await app.request<{ data: { id: string; cause: { id: string } }[] }>(
          'GET',
          `/v1/ledger/transactions?cause_kind=${kind}&limit=100`,
          { key: financeKey },
        )
      ).body.data;
    const capture = (await postings('payment')).find((t) => t.cause.id === payment.id);
    const chargebackIds = new Set(
      (await app.baton.services.payments.getPayment(ctx(db), payment.id)).chargebacks.map((c) => c.id),
    );
    const chargeback = (await postings('chargeback')).find((t) => chargebackIds.has(t.cause.id));
    const [refund] = await postings('refund');
    for (const transaction of [capture, chargeback, refund]) {
      expect(transaction?.id).toMatch(/^txn_/);
      const before = await balance(eur('customer_escrow', order));
      const tried = await post(`/v1/ledger/transactions/${transaction?.id}/reverse`, {
        idempotency_key: `undo-${transaction?.id}`,
      });
      expectProblem(tried, 422, 'ledger.provider_posting_not_reversible');
      const filed = await post('/v1/ledger/posting-requests', {
        action: 'reverse',
        transaction_id: transaction?.id,
        idempotency_key: `undo-${transaction?.id}`,
        reason: 'Undo',
      });
      expectProblem(filed, 422, 'ledger.provider_posting_not_reversible');
      expect(await balance(eur('customer_escrow', order))).toBe(before);
    }
  });

  it('refuses, before anything moves, a refund of money a chargeback already gave back', async () => {
    const { order, payment } = await chargedBackOrder();
    const payments = app.baton.services.payments;
    const inTransitBefore = await balance(eur('refunds_in_transit'));
    const refund = (ref: string, amount: string) =>
      post('/v1/settlements/refunds', {
        order_ref: order,
        refund_ref: `${order}:${ref}`,
        amount: { amount, currency: 'EUR' },
        payment_id: payment.id,
      });

    // The escrow still holds 100.00, but the customer has only 70.00 left paid.
    const refused = await refund('r1', '70.01');
    expectProblem(refused, 409, 'settlement.refund_exceeds_after_chargebacks');
    expect(refused.body).toMatchObject({ refundable: '7000', charged_back: '3000' });
    expect(await balance(eur('customer_escrow', order))).toBe(10_000n);
    expect(await balance(eur('refunds_in_transit'))).toBe(inTransitBefore);
    expect(await app.baton.jobs.runQueued(PROVIDER_REFUND_JOB)).toBe(0);

    ok(await refund('r2', '60.00'));
    expectProblem(await refund('r3', '10.01'), 409, 'settlement.refund_exceeds_after_chargebacks');
    ok(await refund('r4', '10.00'));
    // What was refunded reaches the customer: the provider accepts both refunds.
    await app.baton.jobs.runQueued(PROVIDER_REFUND_JOB);
    const detail = await payments.getPayment(ctx(db), payment.id);
    expect(detail.refunds.map((r) => [r.amountMinor, r.status])).toEqual([
      [6_000n, 'succeeded'],
      [1_000n, 'succeeded'],
    ]);
    expect(await balance(eur('refunds_in_transit'))).toBe(inTransitBefore);
    expect(await balance(eur('customer_escrow', order))).toBe(3_000n);
  });

  // On one connection (the embedded database) the refunds cannot race.
  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'lets only what a chargeback left through when refunds of the order race',
    async () => {
      const { order, payment } = await chargedBackOrder();

      // 70.00 is left paid, and escrow holds 100.00: two refunds of 40.00 fit the escrow, one the rest.
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, n) =>
          post('/v1/settlements/refunds', {
            order_ref: order,
            refund_ref: `${order}:race-${n}`,
            amount: { amount: '40.00', currency: 'EUR' },
            payment_id: payment.id,
          }),
        ),
      );
      expect(answers.filter((answer) => answer.status === 201)).toHaveLength(1);
      for (const answer of answers.filter((candidate) => candidate.status !== 201))
        expectProblem(answer, 409, 'settlement.refund_exceeds_after_chargebacks');
      expect(await balance(eur('customer_escrow', order))).toBe(6_000n);
    },
  );

  it('splits each partial refund over what is left of the leg’s parts, never below zero', async () => {
    // Partner 0.90, commission 0.10, margin 2.00: by largest remainder, 0.12 of it takes less
    // commission (0.00) than 0.11 does (0.01). A refund of 0.11 then 0.01 must still balance.
    const order = await paidOrder(300n);
    ok(await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '1.00', '2.00')));
    const commission = await balance(eur('platform_commission'));
    const margin = await balance(eur('platform_margin'));
    const refund = (ref: string, amount: string) =>
      post<{ transactions: { metadata: Record<string, string> }[] }>('/v1/settlements/refunds', {
        order_ref: order,
        refund_ref: `${order}:${ref}`,
        amount: { amount, currency: 'EUR' },
        leg_ref: `${order}:1`,
      });
    const parts: bigint[][] = [];
    for (const [ref, amount] of [
      ['r1', '0.11'],
      ['r2', '0.01'],
      ['r3', '2.88'],
    ] as const) {
      const made = ok<{ transactions: { metadata: Record<string, string> }[] }>(await refund(ref, amount));
      const { partner = '', commission = '', margin = '' } = made.transactions[0]?.metadata ?? {};
      parts.push([partner, commission, margin].map(BigInt));
    }
    expect(parts.flat().every((part) => part >= 0n)).toBe(true);
    // All of it given back: exactly the release's parts, each once.
    const total = (index: number) => parts.reduce((sum, part) => sum + (part[index] ?? 0n), 0n);
    expect([total(0), total(1), total(2)]).toEqual([90n, 10n, 200n]);
    expect(await balance(eur('platform_commission'))).toBe(commission - 10n);
    expect(await balance(eur('platform_margin'))).toBe(margin - 200n);
  });

  it('refunds one partner’s part only, and the same refund again is a replay', async () => {
    const order = await paidOrder(20_000n);
    ok(await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '100.00')));
    ok(await post('/v1/settlements/releases', releaseBody(order, `${order}:2`, '100.00')));
    const body = {
      order_ref: order,
      refund_ref: `${order}:r1`,
      amount: { amount: '30.00', currency: 'EUR' },
      released_leg_refs: [`${order}:1`, `${order}:2`],
      leg_ref: `${order}:2`,
    };
    const first = ok<{ from_legs: { leg_ref: string }[]; transactions: { id: string }[] }>(
      await post('/v1/settlements/refunds', body),
    );
    expect(first.from_legs.map((leg) => leg.leg_ref)).toEqual([`${order}:2`]);
    const refundsInTransit = await balance(eur('refunds_in_transit'));
    const second = ok<{ transactions: { id: string }[] }>(await post('/v1/settlements/refunds', body));
    expect(second.transactions.map((t) => t.id)).toEqual(first.transactions.map((t) => t.id));
    expect(await balance(eur('refunds_in_transit'))).toBe(refundsInTransit);
    expectProblem(
      await post('/v1/settlements/refunds', {
        ...body,
        refund_ref: `${order}:r2`,
        amount: { amount: '70.01', currency: 'EUR' },
      }),
      422,
      'settlement.refund_exceeds_order',
    );
  });

  it('answers a replay of a release with the first release, even when the replay states other amounts', async () => {
    const order = await paidOrder(12_000n);
    const released = ok<{ commission: Money; transaction: { id: string } }>(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '100.00', '20.00')),
    );
    const again = ok<{ commission: Money; transaction: { id: string } }>(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '50.00', '10.00')),
    );
    expect(again).toEqual(released);
    expect(await balance(eur('customer_escrow', order))).toBe(0n);
  });

  it('lets no posting by hand pass for a leg’s release, nor take the key its release posts under', async () => {
    const order = await paidOrder(5_000n);
    const leg = `${order}:1`;
    const byHand = (cause: { kind: string; id: string }) =>
      post<{ idempotency_key: string }>('/v1/ledger/transactions', {
        idempotency_key: `leg:${leg}:release`,
        cause,
        metadata: { step: 'release', order_ref: order, gross: '1' },
        entries: [
          {
            account: { purpose: 'customer_escrow', owner_id: order },
            direction: 'debit',
            amount: { amount: '0.01', currency: 'EUR' },
          },
          {
            account: { purpose: 'partner_payable', owner_id: partner },
            direction: 'credit',
            amount: { amount: '0.01', currency: 'EUR' },
          },
        ],
      });
    expectProblem(await byHand({ kind: 'leg', id: leg }), 400, 'request.invalid');
    const adjustment = ok<{ idempotency_key: string }>(await byHand({ kind: 'adjustment', id: leg }));
    expect(adjustment.idempotency_key).toBe(`manual:leg:${leg}:release`);
    // The leg's own release goes through, for the whole of its money.
    const released = ok<{ partner_net: Money }>(
      await post('/v1/settlements/releases', releaseBody(order, leg, '49.99')),
    );
    expect(released.partner_net.amount).toBe('44.99');
    expect(await balance(eur('customer_escrow', order))).toBe(0n);
  });

  it('keeps a leg to the order it was released for: another order can neither release nor refund it', async () => {
    const [mine, theirs] = [await paidOrder(10_000n), await paidOrder(10_000n)];
    ok(await post('/v1/settlements/releases', releaseBody(theirs, `${theirs}:1`, '100.00')));
    const escrows = async () => [
      await balance(eur('customer_escrow', mine)),
      await balance(eur('customer_escrow', theirs)),
      await balance(eur('partner_payable', partner)),
    ];
    const before = await escrows();
    // Released again under another order: not a replay of the first release.
    expectProblem(
      await post('/v1/settlements/releases', releaseBody(mine, `${theirs}:1`, '100.00')),
      409,
      'settlement.leg_of_another_order',
    );
    // Refunded under another order, named alone or among the order's released legs.
    for (const legs of [{ leg_ref: `${theirs}:1` }, { released_leg_refs: [`${theirs}:1`] }]) {
      expectProblem(
        await post('/v1/settlements/refunds', {
          order_ref: mine,
          refund_ref: `${mine}:r1`,
          amount: { amount: '150.00', currency: 'EUR' },
          ...legs,
        }),
        409,
        'settlement.leg_of_another_order',
      );
    }
    expect(await escrows()).toEqual(before);
  });

  it('knows a partner’s type without reading the partner again, and refuses an unknown partner', async () => {
    const types = partnerTypes(app.baton.services.participants);
    expect(await runInTransaction(db, (tx) => types.typeOf(ctx(tx), partner))).toBe('mill');
    await expect(
      runInTransaction(db, (tx) => types.typeOf(ctx(tx), 'ptn_0000000000000000000000000' as PartnerId)),
    ).rejects.toMatchObject({ code: 'participants.partner_not_found' });
  });

  it('refuses bad input with stable codes, and callers without the role', async () => {
    const order = await paidOrder(1_000n);
    expectProblem(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '20.00')),
      409,
      'ledger.insufficient_funds',
    );
    expectProblem(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '1.001')),
      400,
      'money.too_many_decimals',
    );
    expectProblem(
      await post('/v1/settlements/releases', {
        ...releaseBody(order, `${order}:1`, '5.00'),
        margin: { amount: '1.00', currency: 'USD' },
      }),
      422,
      'settlement.currency_mismatch',
    );
    expectProblem(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '5.00'), supportKey),
      403,
      'auth.role_not_allowed',
    );
    const noKey = await app.request('POST', '/v1/settlements/refunds', {
      key: financeKey,
      body: { order_ref: order, refund_ref: 'x', amount: { amount: '1.00', currency: 'EUR' } },
    });
    expect(noKey.status).toBe(400);
    expect(await balance(eur('customer_escrow', order))).toBe(1_000n);
  });

  it('pays a leg’s commission from a programme that targets the partner’s type', async () => {
    const programme = ok<{ id: string }>(
      await app.request('POST', '/v1/subsidies/programmes', {
        key: financeKey,
        body: {
          name: 'Mills first',
          side: 'partner',
          kind: 'waiver',
          share_bps: 10_000,
          budget: { amount: '10.00', currency: 'EUR' },
          cap_per_participant: { amount: '5.00', currency: 'EUR' },
          starts_at: app.clock.now().toISOString(),
          ends_at: new Date(app.clock.now().getTime() + 86_400_000).toISOString(),
          targeting: { partner_types: ['mill'] },
        },
      }),
    );
    ok(
      await app.request('POST', `/v1/subsidies/programmes/${programme.id}/activate`, {
        key: financeKey,
        headers: { 'idempotency-key': `activate-${programme.id}` },
      }),
      200,
    );
    const order = await paidOrder(2_000n);
    const released = ok<{ commission: Money; subsidy: Money }>(
      await post('/v1/settlements/releases', releaseBody(order, `${order}:1`, '20.00')),
    );
    expect(released.commission.amount).toBe('2.00');
    expect(released.subsidy.amount).toBe('2.00');

    // A leg released with no fee schedule, then sent again with one: the replay is the first
    // release, and the programme pays nothing for a commission that was never charged.
    const next = await paidOrder(2_000n);
    const { fee_version_id: _, ...feeless } = releaseBody(next, `${next}:1`, '20.00');
    const first = ok<{ commission: Money; subsidy: Money; transaction: { id: string } }>(
      await post('/v1/settlements/releases', feeless),
    );
    expect(first.subsidy.amount).toBe('0.00');
    const payable = await balance(eur('partner_payable', partner));
    const replayed = ok<{ subsidy: Money; transaction: { id: string } }>(
      await post('/v1/settlements/releases', releaseBody(next, `${next}:1`, '20.00')),
    );
    expect(replayed).toEqual(first);
    expect(await balance(eur('partner_payable', partner))).toBe(payable);
    const subsidies = await ledger.transactionsFor(ctx(db), { kind: 'leg', id: `${next}:1` });
    expect(subsidies.map((t) => t.idempotencyKey)).toEqual([`leg:${next}:1:release`]);
  });
});
