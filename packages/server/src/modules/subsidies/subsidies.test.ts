import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Tx } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { newId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { AccountKey } from '../ledger/index.js';
import type { ApplyInput } from './index.js';
import { subsidiesJobs } from './index.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

interface ProgrammeBody {
  id: string;
  status: string;
  funded: { amount: string; amount_minor: string };
  spent: { amount: string; amount_minor: string };
  returned: { amount: string; amount_minor: string };
  remaining: { amount: string; amount_minor: string };
  applications_count: number;
}

interface ReportBody {
  budget: { amount_minor: string };
  funded: { amount_minor: string };
  spent: { amount_minor: string };
  returned: { amount_minor: string };
  remaining: { amount_minor: string };
  applications_count: number;
  participants_count: number;
  participants: {
    data: {
      participant_id: string;
      spent: { amount: string; amount_minor: string };
      applications_count: number;
    }[];
    has_more: boolean;
    next_after: string | null;
  };
}

describe(`subsidies (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ poolSize: 10 });
  const db = app.baton.database.db;
  const { subsidies, ledger } = app.baton.services;
  const ctx = (tx: Tx): Context => ({
    db: tx,
    actor: systemActor('order-money'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });
  const inTx = <T>(work: (c: Context) => Promise<T>) => runInTransaction(db, (tx) => work(ctx(tx)));
  let keys = 0;
  const idempotency = () => ({ 'idempotency-key': `subsidies-test-${++keys}` });

  const balance = (account: AccountKey) => inTx(async (c) => (await ledger.balance(c, account)).balanceMinor);
  const budgetOf = (id: string, currency = 'EUR'): AccountKey => ({
    purpose: 'subsidy_budget',
    ownerId: id,
    currency,
  });
  const payableOf = (partnerId: string, currency = 'EUR'): AccountKey => ({
    purpose: 'partner_payable',
    ownerId: partnerId,
    currency,
  });

  async function createProgramme(overrides: Record<string, unknown> = {}): Promise<ProgrammeBody> {
    const now = app.clock.now().getTime();
    const response = await app.request<ProgrammeBody>('POST', '/v1/subsidies/programmes', {
      body: {
        name: 'Couriers in the east',
        side: 'partner',
        kind: 'waiver',
        share_bps: 10000,
        budget: { amount: '100.00', currency: 'EUR' },
        cap_per_participant: { amount: '50.00', currency: 'EUR' },
        starts_at: new Date(now - HOUR_MS).toISOString(),
        ends_at: new Date(now + 30 * DAY_MS).toISOString(),
        ...overrides,
      },
    });
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  async function activeProgramme(overrides: Record<string, unknown> = {}): Promise<ProgrammeBody> {
    const created = await createProgramme(overrides);
    const activated = await app.request<ProgrammeBody>(
      'POST',
      `/v1/subsidies/programmes/${created.id}/activate`,
      { headers: idempotency() },
    );
    expect(activated.status, activated.text).toBe(200);
    return activated.body;
  }

  async function report(id: string, query = ''): Promise<ReportBody> {
    const response = await app.request<ReportBody>('GET', `/v1/subsidies/programmes/${id}/report${query}`);
    expect(response.status, response.text).toBe(200);
    return response.body;
  }

  /** A partner-side fee; each call is a new order unless a key is given. */
  function partnerFee(partnerId: string, overrides: Partial<ApplyInput> = {}): ApplyInput {
    const order = newId('alc');
    return {
      side: 'partner',
      partnerId,
      partnerType: 'courier',
      region: 'eu-east',
      capability: 'last-mile-delivery',
      feeMinor: 1000n,
      currency: 'EUR',
      cause: { kind: 'order', id: order },
      beneficiary: payableOf(partnerId),
      idempotencyKey: `order:${order}:fee-subsidy`,
      ...overrides,
    };
  }

  /** Ends every open programme, so that tests do not see each other's. */
  async function closeAll() {
    const open = await db
      .selectFrom('subsidy_programmes')
      .select('id')
      .where('status', 'in', ['active', 'exhausted'])
      .execute();
    for (const { id } of open) await inTx((c) => subsidies.cancel(c, id));
  }

  it('rejects invalid terms with an error per field and stores nothing', async () => {
    const before = await db.selectFrom('subsidy_programmes').select('id').execute();
    const now = app.clock.now().getTime();
    const response = await app.request<{ code: string; errors: { path: string }[] }>(
      'POST',
      '/v1/subsidies/programmes',
      {
        body: {
          name: 'Broken',
          side: 'partner',
          kind: 'rebate',
          share_bps: 5000,
          budget: { amount: '10.001', currency: 'EUR' },
          cap_per_participant: { amount: '5.00', currency: 'USD' },
          starts_at: new Date(now + DAY_MS).toISOString(),
          ends_at: new Date(now).toISOString(),
          targeting: { regions: ['EU West'] },
        },
      },
    );
    expect(response.status, response.text).toBe(422);
    expect(response.body.code).toBe('subsidies.programme_invalid');
    expect(response.body.errors.map((error) => error.path).sort()).toEqual([
      '/budget',
      '/ends_at',
      '/targeting/regions/0',
    ]);
    const mismatch = await app.request<{ code: string; errors: { path: string }[] }>(
      'POST',
      '/v1/subsidies/programmes',
      {
        body: {
          name: 'Two currencies',
          side: 'customer',
          kind: 'waiver',
          share_bps: 100,
          budget: { amount: '10.00', currency: 'EUR' },
          cap_per_participant: { amount: '5.00', currency: 'USD' },
          starts_at: new Date(now).toISOString(),
          ends_at: new Date(now + DAY_MS).toISOString(),
        },
      },
    );
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.errors.map((error) => error.path)).toEqual(['/cap_per_participant/currency']);
    const schema = await app.request<{ code: string }>('POST', '/v1/subsidies/programmes', {
      body: { name: 'No share', side: 'partner', kind: 'waiver' },
    });
    expect(schema.status).toBe(400);
    expect(await db.selectFrom('subsidy_programmes').select('id').execute()).toEqual(before);
  });

  it('funds the budget from subsidy funding on activation, once', async () => {
    const fundingBefore = await balance({ purpose: 'subsidy_funding', ownerId: 'platform', currency: 'EUR' });
    const created = await createProgramme();
    expect(created.status).toBe('draft');
    const missingKey = await app.request<{ code: string }>(
      'POST',
      `/v1/subsidies/programmes/${created.id}/activate`,
    );
    expect(missingKey.status).toBe(400);
    expect(missingKey.body.code).toBe('idempotency.key_required');
    const activated = await app.request<ProgrammeBody>(
      'POST',
      `/v1/subsidies/programmes/${created.id}/activate`,
      {
        headers: idempotency(),
      },
    );
    expect(activated.status, activated.text).toBe(200);
    expect(activated.body.status).toBe('active');
    expect(activated.body.funded.amount).toBe('100.00');
    expect(await balance(budgetOf(created.id))).toBe(10000n);
    expect(await balance({ purpose: 'subsidy_funding', ownerId: 'platform', currency: 'EUR' })).toBe(
      fundingBefore + 10000n,
    );
    const again = await app.request<{ code: string }>(
      'POST',
      `/v1/subsidies/programmes/${created.id}/activate`,
      {
        headers: idempotency(),
      },
    );
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('subsidies.status_not_allowed');
    expect(await balance(budgetOf(created.id))).toBe(10000n);

    const topUp = await app.request<ProgrammeBody>('POST', `/v1/subsidies/programmes/${created.id}/top-ups`, {
      headers: idempotency(),
      body: { amount: { amount: '25.50', currency: 'EUR' } },
    });
    expect(topUp.status, topUp.text).toBe(200);
    expect(topUp.body.funded.amount).toBe('125.50');
    expect(await balance(budgetOf(created.id))).toBe(12550n);
    for (const amount of [
      { amount: '5.00', currency: 'USD' },
      { amount: '0.00', currency: 'EUR' },
      { amount: '1.001', currency: 'EUR' },
    ]) {
      const refused = await app.request<{ code: string }>(
        'POST',
        `/v1/subsidies/programmes/${created.id}/top-ups`,
        {
          headers: idempotency(),
          body: { amount },
        },
      );
      expect(refused.status, JSON.stringify(amount)).toBe(422);
      expect(refused.body.code).toBe('subsidies.amount_invalid');
    }
    expect(await balance(budgetOf(created.id))).toBe(12550n);
    const unknown = await app.request<{ code: string }>('GET', `/v1/subsidies/programmes/${newId('sbp')}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('subsidies.programme_not_found');
    await closeAll();
  });

  it('pays only the fees its targeting names, from the programme ending soonest', async () => {
    const later = await activeProgramme({
      share_bps: 5000,
      targeting: { partner_types: ['courier'], regions: ['eu-east'] },
    });
    const sooner = await activeProgramme({
      share_bps: 2500,
      ends_at: new Date(app.clock.now().getTime() + 2 * DAY_MS).toISOString(),
      targeting: { partner_types: ['courier'], regions: ['eu-east'], capabilities: ['last-mile-delivery'] },
    });
    const partner = newId('ptn');
    const applied = await inTx((c) => subsidies.apply(c, partnerFee(partner)));
    expect(applied).toEqual({ programmeId: sooner.id, amountMinor: 250n });
    // Without the capability only the programme that does not target one pays.
    const noCapability = await inTx((c) =>
      subsidies.apply(c, partnerFee(partner, { capability: undefined })),
    );
    expect(noCapability).toEqual({ programmeId: later.id, amountMinor: 500n });
    for (const other of [
      { partnerType: 'supplier' },
      { region: 'eu-west' },
      { currency: 'USD', beneficiary: payableOf(partner, 'USD') },
    ] as Partial<ApplyInput>[]) {
      expect(
        await inTx((c) => subsidies.apply(c, partnerFee(partner, other))),
        JSON.stringify(other),
      ).toBeNull();
    }
    const customerSide = await inTx((c) =>
      subsidies.apply(c, {
        ...partnerFee(partner),
        side: 'customer',
        customerId: newId('cus'),
        beneficiary: { purpose: 'customer_escrow', ownerId: 'ord-1', currency: 'EUR' },
      }),
    );
    expect(customerSide).toBeNull();
    expect(await balance(payableOf(partner))).toBe(750n);
    await closeAll();
  });

  it('pays customer-side fees into the order escrow for the targeted segment', async () => {
    const programme = await activeProgramme({
      side: 'customer',
      share_bps: 10000,
      targeting: { customer_segments: ['new-business'] },
    });
    const escrow: AccountKey = { purpose: 'customer_escrow', ownerId: 'ord-escrow-1', currency: 'EUR' };
    const fee = (segment: string, key: string): ApplyInput => ({
      side: 'customer',
      customerId: newId('cus'),
      customerSegment: segment,
      region: 'eu-west',
      feeMinor: 299n,
      currency: 'EUR',
      cause: { kind: 'order', id: 'ord-escrow-1' },
      beneficiary: escrow,
      idempotencyKey: key,
    });
    expect(await inTx((c) => subsidies.apply(c, fee('consumer', 'escrow-1')))).toBeNull();
    expect(await inTx((c) => subsidies.apply(c, fee('new-business', 'escrow-2')))).toEqual({
      programmeId: programme.id,
      amountMinor: 299n,
    });
    expect(await balance(escrow)).toBe(299n);
    await closeAll();
  });

  it('never pays a participant more than its cap, and others keep theirs', async () => {
    const programme = await activeProgramme({ cap_per_participant: { amount: '25.00', currency: 'EUR' } });
    const [first, second] = [newId('ptn'), newId('ptn')];
    const amounts: (bigint | null)[] = [];
    for (let n = 0; n < 4; n++) {
      amounts.push((await inTx((c) => subsidies.apply(c, partnerFee(first))))?.amountMinor ?? null);
    }
    expect(amounts).toEqual([1000n, 1000n, 500n, null]);
    expect((await inTx((c) => subsidies.apply(c, partnerFee(second))))?.amountMinor).toBe(1000n);
    expect(await balance(payableOf(first))).toBe(2500n);
    const body = await report(programme.id);
    const spend = Object.fromEntries(body.participants.data.map((p) => [p.participant_id, p.spent.amount]));
    expect(spend).toEqual({ [first]: '25.00', [second]: '10.00' });
    await closeAll();
  });

  it('never overspends the budget under 50 concurrent applications, and is exhausted exactly once', async () => {
    // 10.00 of budget, 0.30 per fee: 33 whole payments, one of the last 0.10, then nothing.
    const programme = await activeProgramme({
      share_bps: 3000,
      budget: { amount: '10.00', currency: 'EUR' },
    });
    const partners = Array.from({ length: 50 }, () => newId('ptn'));
    const results = await Promise.allSettled(
      partners.map((partner) => inTx((c) => subsidies.apply(c, partnerFee(partner, { feeMinor: 100n })))),
    );
    const failures = results.filter((r) => r.status === 'rejected');
    expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
    const paid = results.map((r) => (r.status === 'fulfilled' ? (r.value?.amountMinor ?? 0n) : 0n));
    expect(paid.reduce((sum, amount) => sum + amount, 0n)).toBe(1000n);
    expect(paid.filter((amount) => amount === 30n)).toHaveLength(33);
    expect(paid.filter((amount) => amount === 10n)).toHaveLength(1);
    expect(paid.filter((amount) => amount === 0n)).toHaveLength(16);
    expect(await balance(budgetOf(programme.id))).toBe(0n);
    const after = await app.request<ProgrammeBody>('GET', `/v1/subsidies/programmes/${programme.id}`);
    expect(after.body.status).toBe('exhausted');
    expect(after.body.applications_count).toBe(34);
    const exhaustedEvents = await db
      .selectFrom('events')
      .select('id')
      .where('type', '=', 'subsidy_programme.exhausted')
      .where('subject_id', '=', programme.id)
      .execute();
    expect(exhaustedEvents).toHaveLength(1);

    // A top-up brings it back.
    const topUp = await app.request<ProgrammeBody>(
      'POST',
      `/v1/subsidies/programmes/${programme.id}/top-ups`,
      {
        headers: idempotency(),
        body: { amount: { amount: '1.00', currency: 'EUR' } },
      },
    );
    expect(topUp.body.status).toBe('active');
    expect(
      (await inTx((c) => subsidies.apply(c, partnerFee(newId('ptn'), { feeMinor: 100n }))))?.amountMinor,
    ).toBe(30n);
    await closeAll();
  });

  it('pays only inside its window, and the job ends it and returns the leftover', async () => {
    const start = app.clock.now().getTime();
    const programme = await activeProgramme({
      starts_at: new Date(start + HOUR_MS).toISOString(),
      ends_at: new Date(start + 2 * HOUR_MS).toISOString(),
    });
    const partner = newId('ptn');
    expect(await inTx((c) => subsidies.apply(c, partnerFee(partner)))).toBeNull();
    app.clock.set(new Date(start + HOUR_MS));
    expect((await inTx((c) => subsidies.apply(c, partnerFee(partner))))?.amountMinor).toBe(1000n);
    app.clock.set(new Date(start + 2 * HOUR_MS));
    expect(await inTx((c) => subsidies.apply(c, partnerFee(partner)))).toBeNull();

    const fundingBefore = await balance({ purpose: 'subsidy_funding', ownerId: 'platform', currency: 'EUR' });
    const [job] = subsidiesJobs({ subsidies, db, clock: app.clock });
    await job?.handler({});
    const ended = await app.request<ProgrammeBody>('GET', `/v1/subsidies/programmes/${programme.id}`);
    expect(ended.body.status).toBe('ended');
    expect(ended.body.returned.amount).toBe('90.00');
    expect(ended.body.remaining.amount).toBe('0.00');
    expect(await balance(budgetOf(programme.id))).toBe(0n);
    expect(await balance({ purpose: 'subsidy_funding', ownerId: 'platform', currency: 'EUR' })).toBe(
      fundingBefore - 9000n,
    );
    // A second run finds nothing more to do.
    await job?.handler({});
    expect((await report(programme.id)).returned.amount_minor).toBe('9000');
    const topUp = await app.request<{ code: string }>(
      'POST',
      `/v1/subsidies/programmes/${programme.id}/top-ups`,
      {
        headers: idempotency(),
        body: { amount: { amount: '1.00', currency: 'EUR' } },
      },
    );
    expect(topUp.status).toBe(409);
    app.clock.set(new Date(start));
  });

  it('answers a replay with the first answer and spends nothing more', async () => {
    const programme = await activeProgramme();
    const partner = newId('ptn');
    const input = partnerFee(partner);
    const first = await inTx((c) => subsidies.apply(c, input));
    const replay = await inTx((c) => subsidies.apply(c, input));
    expect(replay).toEqual(first);
    const concurrent = await Promise.all(
      Array.from({ length: 5 }, () => inTx((c) => subsidies.apply(c, input))),
    );
    expect(concurrent).toEqual(Array.from({ length: 5 }, () => first));
    expect(await balance(payableOf(partner))).toBe(1000n);
    expect((await report(programme.id)).applications_count).toBe(1);
    await expect(inTx((c) => subsidies.apply(c, { ...input, feeMinor: 2000n }))).rejects.toMatchObject({
      code: 'subsidies.key_reused',
    });

    // Nothing applied is an answer too: the replay stays null once a programme would pay.
    await closeAll();
    const unpaid = partnerFee(partner);
    expect(await inTx((c) => subsidies.apply(c, unpaid))).toBeNull();
    await activeProgramme();
    expect(await inTx((c) => subsidies.apply(c, unpaid))).toBeNull();
    expect(await balance(payableOf(partner))).toBe(1000n);
    await expect(
      inTx((c) => subsidies.apply(c, { ...partnerFee(partner), partnerId: undefined })),
    ).rejects.toMatchObject({ code: 'subsidies.application_invalid' });
    await closeAll();
  });

  it('gives refunded subsidy back to the budget and frees the cap', async () => {
    const programme = await activeProgramme({
      budget: { amount: '10.00', currency: 'EUR' },
      cap_per_participant: { amount: '10.00', currency: 'EUR' },
    });
    const partner = newId('ptn');
    const input = partnerFee(partner, { feeMinor: 1000n });
    expect((await inTx((c) => subsidies.apply(c, input)))?.amountMinor).toBe(1000n);
    expect(
      (await app.request<ProgrammeBody>('GET', `/v1/subsidies/programmes/${programme.id}`)).body.status,
    ).toBe('exhausted');
    // An order refund of 40 % gives 40 % of the subsidy back.
    const refund = {
      idempotencyKey: 'refund:1:subsidy',
      originalKey: input.idempotencyKey,
      amountMinor: 400n,
    };
    const refunded = await inTx((c) => subsidies.refund(c, refund));
    expect(refunded).toMatchObject({ programmeId: programme.id, amountMinor: 400n, replayed: false });
    expect(await inTx((c) => subsidies.refund(c, refund))).toMatchObject({
      transactionId: refunded.transactionId,
      replayed: true,
    });
    await expect(inTx((c) => subsidies.refund(c, { ...refund, amountMinor: 401n }))).rejects.toMatchObject({
      code: 'subsidies.key_reused',
    });
    expect(await balance(payableOf(partner))).toBe(600n);
    expect(await balance(budgetOf(programme.id))).toBe(400n);
    const reopened = await app.request<ProgrammeBody>('GET', `/v1/subsidies/programmes/${programme.id}`);
    expect(reopened.body.status).toBe('active');
    expect(reopened.body.spent.amount).toBe('6.00');
    await expect(
      inTx((c) =>
        subsidies.refund(c, {
          idempotencyKey: 'refund:2:subsidy',
          originalKey: input.idempotencyKey,
          amountMinor: 601n,
        }),
      ),
    ).rejects.toMatchObject({ code: 'subsidies.refund_exceeds_application' });
    await expect(
      inTx((c) =>
        subsidies.refund(c, { idempotencyKey: 'refund:3:subsidy', originalKey: 'nothing', amountMinor: 1n }),
      ),
    ).rejects.toMatchObject({ code: 'subsidies.application_not_found' });
    // The cap freed by the refund can be used again.
    expect((await inTx((c) => subsidies.apply(c, partnerFee(partner))))?.amountMinor).toBe(400n);

    // After the programme closes, a refund goes back to the operator's funding.
    await closeAll();
    const fundingBefore = await balance({ purpose: 'subsidy_funding', ownerId: 'platform', currency: 'EUR' });
    await inTx((c) =>
      subsidies.refund(c, {
        idempotencyKey: 'refund:4:subsidy',
        originalKey: input.idempotencyKey,
        amountMinor: 600n,
      }),
    );
    expect(await balance(budgetOf(programme.id))).toBe(0n);
    expect(await balance({ purpose: 'subsidy_funding', ownerId: 'platform', currency: 'EUR' })).toBe(
      fundingBefore - 600n,
    );
    const body = await report(programme.id);
    expect(body.spent.amount_minor).toBe('400');
    expect(body.returned.amount_minor).toBe('600');
  });

  it('reports numbers that equal the ledger, with spend per participant by page', async () => {
    const programme = await activeProgramme({ cap_per_participant: { amount: '15.00', currency: 'EUR' } });
    const partners = [newId('ptn'), newId('ptn'), newId('ptn')].sort();
    for (const partner of partners) {
      await inTx((c) => subsidies.apply(c, partnerFee(partner)));
      await inTx((c) => subsidies.apply(c, partnerFee(partner)));
    }
    const first = await report(programme.id, '?limit=2');
    expect(first.participants.data.map((p) => p.participant_id)).toEqual(partners.slice(0, 2));
    expect(first.participants.has_more).toBe(true);
    const second = await report(programme.id, `?limit=2&after=${first.participants.next_after}`);
    expect(second.participants.data.map((p) => p.participant_id)).toEqual(partners.slice(2));
    expect(second.participants.has_more).toBe(false);
    const all = [...first.participants.data, ...second.participants.data];
    expect(all.map((p) => p.spent.amount)).toEqual(['15.00', '15.00', '15.00']);
    expect(first.participants_count).toBe(3);
    expect(first.applications_count).toBe(6);
    const ledgerRemaining = await balance(budgetOf(programme.id));
    expect(BigInt(first.remaining.amount_minor)).toBe(ledgerRemaining);
    expect(
      BigInt(first.funded.amount_minor) -
        BigInt(first.spent.amount_minor) -
        BigInt(first.returned.amount_minor),
    ).toBe(ledgerRemaining);
    const spentInLedger = (await Promise.all(partners.map((partner) => balance(payableOf(partner))))).reduce(
      (sum, amount) => sum + amount,
      0n,
    );
    expect(BigInt(first.spent.amount_minor)).toBe(spentInLedger);

    const list = await app.request<{ data: ProgrammeBody[] }>(
      'GET',
      '/v1/subsidies/programmes?status=active',
    );
    const listed = list.body.data.find((item) => item.id === programme.id);
    expect(listed?.spent.amount).toBe('45.00');
    expect(listed?.remaining.amount).toBe('55.00');

    // Cancelling returns the rest, and the report still balances.
    const cancelled = await app.request<ProgrammeBody>(
      'POST',
      `/v1/subsidies/programmes/${programme.id}/cancel`,
      {
        headers: idempotency(),
      },
    );
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.returned.amount).toBe('55.00');
    const closed = await report(programme.id);
    expect(closed.remaining.amount_minor).toBe('0');
    const twice = await app.request<{ code: string }>(
      'POST',
      `/v1/subsidies/programmes/${programme.id}/cancel`,
      {
        headers: idempotency(),
      },
    );
    expect(twice.status).toBe(409);
    expect(twice.body.code).toBe('subsidies.status_not_allowed');
  });

  it('lets every operator role read programmes and only admin and finance manage them', async () => {
    const programme = await createProgramme();
    const support = await app.operatorKey('support');
    expect(
      (await app.request('GET', `/v1/subsidies/programmes/${programme.id}/report`, { key: support })).status,
    ).toBe(200);
    const refused = await app.request('POST', `/v1/subsidies/programmes/${programme.id}/activate`, {
      key: support,
      headers: idempotency(),
    });
    expect(refused.status).toBe(403);
    const finance = await app.operatorKey('finance');
    const activated = await app.request<ProgrammeBody>(
      'POST',
      `/v1/subsidies/programmes/${programme.id}/activate`,
      {
        key: finance,
        headers: idempotency(),
      },
    );
    expect(activated.status, activated.text).toBe(200);
    const audited = await db
      .selectFrom('audit_records')
      .select(['action', 'outcome'])
      .where('target_id', '=', programme.id)
      .execute();
    expect(audited).toEqual(
      expect.arrayContaining([
        { action: 'subsidies.programme.create', outcome: 'succeeded' },
        { action: 'subsidies.programme.activate', outcome: 'succeeded' },
      ]),
    );
    await closeAll();
  });
});
