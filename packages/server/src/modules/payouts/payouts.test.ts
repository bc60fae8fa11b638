import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Executor } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { newId, type PartnerId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { AccountKey } from '../ledger/index.js';
import {
  createPaymentsService,
  createSimulatedProvider,
  type SimulatedProviderOptions,
  TEST_DESTINATIONS,
} from '../payments/index.js';
import {
  createPayoutsService,
  DESTINATION_HOLD_MS,
  type PayoutSettingsInput,
  type RunOptions,
} from './index.js';

const DAY_MS = 24 * 60 * 60 * 1000;

describe(`payouts (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ poolSize: 10 });
  const db = app.baton.database.db;
  const { ledger, participants } = app.baton.services;
  const ctx = (tx: Executor): Context => ({
    db: tx,
    actor: systemActor('test'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  const created = await app.request('POST', '/v1/partner-types', {
    body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
  });
  expect(created.status).toBe(201);
  let partners = 0;
  async function newPartner(): Promise<PartnerId> {
    const n = ++partners;
    const applied = await app.request<{ partner: { id: PartnerId } }>('POST', '/v1/partner-applications', {
      key: null,
      // Applications are limited per address: each partner applies from its own.
      ip: `10.0.0.${n}`,
      body: {
        partner_type: 'supplier',
        name: `Partner ${n}`,
        email: `p${n}@partner.test`,
        regions: ['eu-west'],
      },
    });
    expect(applied.status, applied.text).toBe(201);
    return applied.body.partner.id;
  }

  /** A payouts service of its own per test, over a provider the test controls. */
  function setup(options: SimulatedProviderOptions = {}) {
    const provider = createSimulatedProvider({
      clock: app.clock,
      autoDeliver: false,
      settlement: { payout: 'immediate' },
      ...options,
    });
    const payouts = createPayoutsService({ ledger, participants, jobs: app.baton.jobs, provider });
    provider.onEvent((event) => payouts.handleProviderEvent(db, event, app.clock.now()));
    const run = (options: RunOptions = {}) => payouts.run(db, { now: app.clock.now(), ...options });
    return { provider, payouts, run };
  }

  const account = (purpose: AccountKey['purpose'], ownerId: string): AccountKey => ({
    purpose,
    ownerId,
    currency: 'EUR',
  });
  const balance = async (purpose: AccountKey['purpose'], ownerId: string) =>
    (await ledger.balance(ctx(db), account(purpose, ownerId))).balanceMinor;

  /** The partner earns `amountMinor` (as a release of an order's escrow would credit it). */
  const earn = (partnerId: string, amountMinor: bigint) =>
    runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `test-earning:${newId('alc')}`,
        cause: { kind: 'order', id: newId('alc') },
        entries: [
          { account: account('operator_adjustments', 'platform'), direction: 'debit', amountMinor },
          { account: account('partner_payable', partnerId), direction: 'credit', amountMinor },
        ],
      }),
    );
  /** The partner comes to owe `amountMinor` (a clawback after a refund). */
  const clawBack = (partnerId: string, amountMinor: bigint) =>
    runInTransaction(db, (tx) =>
      ledger.post(ctx(tx), {
        idempotencyKey: `test-clawback:${newId('alc')}`,
        cause: { kind: 'refund', id: newId('alc') },
        entries: [
          { account: account('partner_receivable', partnerId), direction: 'debit', amountMinor },
          { account: account('operator_adjustments', 'platform'), direction: 'credit', amountMinor },
        ],
      }),
    );

  const SETTINGS: PayoutSettingsInput = {
    schedule: 'daily',
    minimum: { amount: '0.00', currency: 'EUR' },
    destination: TEST_DESTINATIONS.ok,
    reserveBps: 0,
    reserveDays: 0,
  };
  const configure = (
    payouts: ReturnType<typeof setup>['payouts'],
    partnerId: PartnerId,
    settings: Partial<PayoutSettingsInput> = {},
  ) => runInTransaction(db, (tx) => payouts.setSettings(ctx(tx), partnerId, { ...SETTINGS, ...settings }));

  const outcomeOf = (result: Awaited<ReturnType<ReturnType<typeof setup>['run']>>, partnerId: string) =>
    result.outcomes.find((outcome) => outcome.partnerId === partnerId);

  it('pays a daily partner once a day, the whole payable, and settles it to the provider', async () => {
    app.clock.set(new Date('2026-06-01T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner);
    await earn(partner, 10_000n);

    const first = await run();
    const payout = outcomeOf(first, partner)?.payout;
    expect(payout?.amountMinor).toBe(10_000n);
    expect(first.payouts.find((p) => p.id === payout?.id)?.status).toBe('paid');
    expect(await balance('partner_payable', partner)).toBe(0n);
    expect(provider.operations().filter((op) => op.reference === payout?.id)).toHaveLength(1);

    await earn(partner, 500n);
    expect(outcomeOf(await run(), partner)).toBeUndefined();
    expect(await balance('partner_payable', partner)).toBe(500n);

    app.clock.advance(DAY_MS);
    expect(outcomeOf(await run(), partner)?.payout?.amountMinor).toBe(500n);
    expect(await balance('partner_payable', partner)).toBe(0n);
  });

  it('pays a weekly partner on its weekday only', async () => {
    app.clock.set(new Date('2026-06-08T09:00:00Z')); // a Monday
    const { payouts, run } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'weekly', weekday: 'tuesday' });
    await earn(partner, 2_000n);
    expect(outcomeOf(await run(), partner)).toBeUndefined();
    app.clock.advance(DAY_MS);
    expect(outcomeOf(await run(), partner)?.payout?.amountMinor).toBe(2_000n);
  });

  it('pays a manual partner only when asked by name or with every manual partner', async () => {
    app.clock.set(new Date('2026-06-10T09:00:00Z'));
    const { payouts, run } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual' });
    await earn(partner, 3_000n);
    expect(outcomeOf(await run(), partner)).toBeUndefined();
    expect(outcomeOf(await run({ includeManual: true }), partner)?.payout?.amountMinor).toBe(3_000n);
    await earn(partner, 1_000n);
    expect(outcomeOf(await run({ partnerIds: [partner] }), partner)?.payout?.amountMinor).toBe(1_000n);
  });

  it('keeps the money while the payable is under the minimum, and pays it all once it is reached', async () => {
    app.clock.set(new Date('2026-06-11T09:00:00Z'));
    const { payouts, run } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual', minimum: { amount: '50.00', currency: 'EUR' } });
    await earn(partner, 3_000n);
    const under = outcomeOf(await run({ partnerIds: [partner] }), partner);
    expect(under).toMatchObject({ payout: null, skipped: 'below_minimum' });
    expect(await balance('partner_payable', partner)).toBe(3_000n);
    await earn(partner, 2_500n);
    expect(outcomeOf(await run({ partnerIds: [partner] }), partner)?.payout?.amountMinor).toBe(5_500n);
  });

  it('holds the reserve share of new earnings and releases it after its days, not before', async () => {
    app.clock.set(new Date('2026-06-12T09:00:00Z'));
    const { payouts, run } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual', reserveBps: 1_000, reserveDays: 7 });
    await earn(partner, 10_000n);
    const first = outcomeOf(await run({ partnerIds: [partner] }), partner);
    expect(first).toMatchObject({ reservedMinor: 1_000n });
    expect(first?.payout?.amountMinor).toBe(9_000n);
    expect(await balance('partner_reserve', partner)).toBe(1_000n);

    app.clock.advance(6 * DAY_MS);
    const early = outcomeOf(await run({ partnerIds: [partner] }), partner);
    expect(early).toMatchObject({ releasedMinor: 0n, payout: null });
    expect(await balance('partner_reserve', partner)).toBe(1_000n);

    app.clock.advance(DAY_MS);
    await earn(partner, 2_000n);
    const released = outcomeOf(await run({ partnerIds: [partner] }), partner);
    // The released 10.00 is not earned again, so only the new 20.00 gives a reserve of 2.00.
    expect(released).toMatchObject({ releasedMinor: 1_000n, reservedMinor: 200n });
    expect(released?.payout?.amountMinor).toBe(2_800n);
    expect(await balance('partner_reserve', partner)).toBe(200n);
    expect(await balance('partner_payable', partner)).toBe(0n);
  });

  it('nets what a partner owes against its earnings, and pays nothing while some is still owed', async () => {
    app.clock.set(new Date('2026-06-13T09:00:00Z'));
    const { payouts, run } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual' });
    await clawBack(partner, 15_000n);
    await earn(partner, 10_000n);
    const owing = outcomeOf(await run({ partnerIds: [partner] }), partner);
    expect(owing).toMatchObject({ nettedMinor: 10_000n, payout: null, skipped: 'owes_receivable' });
    expect(await balance('partner_receivable', partner)).toBe(5_000n);
    expect(await balance('partner_payable', partner)).toBe(0n);

    await earn(partner, 8_000n);
    const settled = outcomeOf(await run({ partnerIds: [partner] }), partner);
    expect(settled).toMatchObject({ nettedMinor: 5_000n });
    expect(settled?.payout?.amountMinor).toBe(3_000n);
    expect(await balance('partner_receivable', partner)).toBe(0n);
  });

  it('returns the money of a failed payout to the payable, once, whatever order the callbacks come in', async () => {
    app.clock.set(new Date('2026-06-14T09:00:00Z'));
    const { payouts, run, provider } = setup({ settlement: { payout: 'pending' } });
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual', destination: TEST_DESTINATIONS.accountClosed });
    await earn(partner, 4_000n);
    const result = await run({ partnerIds: [partner] });
    const [sent] = result.payouts;
    expect(sent?.status).toBe('sent');
    expect(await balance('partner_payable', partner)).toBe(0n);
    expect(await balance('payouts_in_transit', 'platform')).toBeGreaterThanOrEqual(4_000n);

    provider.settle(sent?.id);
    await provider.deliverPending({ order: 'reversed', duplicate: true });
    const failed = await payouts.getPayout(ctx(db), sent?.id as string);
    expect(failed).toMatchObject({ status: 'failed', failureCode: 'account_closed' });
    expect(await balance('partner_payable', partner)).toBe(4_000n);
    const movements = await ledger.transactionsFor(ctx(db), { kind: 'payout', id: failed.id });
    expect(movements.map((t) => t.idempotencyKey).sort()).toEqual([
      `payout:${failed.id}:returned`,
      `payout:${failed.id}:send`,
    ]);

    // With a working account the returned money is paid again, and it is not earned twice: once
    // the hold that follows a change of destination is over.
    await runInTransaction(db, (tx) => payouts.setDestination(ctx(tx), partner, TEST_DESTINATIONS.ok));
    const held = await run({ partnerIds: [partner] });
    expect(held.payouts).toEqual([]);
    expect(held.outcomes).toEqual([
      expect.objectContaining({ partnerId: partner, skipped: 'destination_held' }),
    ]);
    expect(await balance('partner_payable', partner)).toBe(4_000n);
    app.clock.advance(DESTINATION_HOLD_MS - 1);
    expect((await run({ partnerIds: [partner] })).outcomes[0]?.skipped).toBe('destination_held');
    app.clock.advance(1);
    const again = await run({ partnerIds: [partner] });
    expect(again.payouts[0]).toMatchObject({ amountMinor: 4_000n, status: 'sent' });
    provider.settle(again.payouts[0]?.id);
    await provider.deliverPending();
    expect((await payouts.getPayout(ctx(db), again.payouts[0]?.id as string)).status).toBe('paid');
  });

  it('gives a paid payout back to the payable once when the partner’s bank sends it back, and pays it at the next run', async () => {
    app.clock.set(new Date('2026-06-16T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { reserveBps: 1_000, reserveDays: 30 });
    await earn(partner, 10_000n);
    const first = await run();
    const id = outcomeOf(first, partner)?.payout?.id as string;
    const paid = first.payouts.find((p) => p.id === id);
    expect(paid).toMatchObject({ amountMinor: 9_000n, status: 'paid' });
    const clearing = await balance('provider_clearing', 'platform');

    app.clock.advance(2 * 60 * 60 * 1000);
    provider.returnPayout(id, 'account_closed');
    await provider.deliverPending({ duplicate: true });
    await provider.deliverStale(id, 'succeeded');
    const returned = await payouts.getPayout(ctx(db), id);
    expect(returned).toMatchObject({
      status: 'returned',
      failureCode: 'account_closed',
      settledAt: paid?.settledAt,
      returnedAt: app.clock.now(),
    });
    expect(await balance('partner_payable', partner)).toBe(9_000n);
    expect(await balance('provider_clearing', 'platform')).toBe(clearing + 9_000n);
    const movements = await ledger.transactionsFor(ctx(db), { kind: 'payout', id });
    expect(movements.map((t) => t.idempotencyKey).sort()).toEqual([
      `payout:${id}:bank_returned`,
      `payout:${id}:send`,
      `payout:${id}:settled`,
    ]);
    const { rows: events } = await sql<{ type: string; audience: string[] }>`
      select type, audience from events where subject_id = ${id} order by tx_id, seq`.execute(db);
    expect(events).toEqual([
      { type: 'payout.created', audience: [partner] },
      { type: 'payout.paid', audience: [partner] },
      { type: 'payout.returned', audience: [partner] },
    ]);

    // The account is closed: nothing is paid there until the partner sets its destination again.
    app.clock.advance(DAY_MS);
    expect(outcomeOf(await run(), partner)?.skipped).toBe('destination_failed');
    await runInTransaction(db, (tx) => payouts.setDestination(ctx(tx), partner, TEST_DESTINATIONS.ok));
    // The money back is no new earning: the next run pays it all, and holds no reserve of it.
    app.clock.advance(DAY_MS);
    const next = await run();
    const again = outcomeOf(next, partner);
    expect(again).toMatchObject({ reservedMinor: 0n, payout: { amountMinor: 9_000n } });
    expect(next.payouts.find((p) => p.id === again?.payout?.id)?.status).toBe('paid');
    expect(await balance('partner_payable', partner)).toBe(0n);
    expect(await balance('partner_reserve', partner)).toBe(1_000n);
  });

  it('stops paying a destination a payout failed on because the account cannot be paid, until it is set again', async () => {
    app.clock.set(new Date('2026-06-20T09:00:00Z'));
    const { payouts, run, provider } = setup({ settlement: { payout: 'pending' } });
    const partner = await newPartner();
    await configure(payouts, partner);
    const settingsOf = () => payouts.getSettings(ctx(db), partner);
    await earn(partner, 5_000n);
    const first = outcomeOf(await run(), partner)?.payout;
    provider.failPending(first?.id as string, 'account_closed');
    await provider.deliverPending();
    expect((await settingsOf()).destinationFailure).toEqual({ code: 'account_closed', at: app.clock.now() });

    app.clock.advance(DAY_MS);
    const payoutsBefore = provider.operations().filter((op) => op.kind === 'payout').length;
    expect(outcomeOf(await run(), partner)).toMatchObject({ skipped: 'destination_failed', payout: null });
    expect(provider.operations().filter((op) => op.kind === 'payout')).toHaveLength(payoutsBefore);
    expect(await balance('partner_payable', partner)).toBe(5_000n);

    // The partner fixed its account and sets it again: paid at once, with no hold for the same one.
    await runInTransaction(db, (tx) => payouts.setDestination(ctx(tx), partner, TEST_DESTINATIONS.ok));
    expect(await settingsOf()).toMatchObject({ destinationFailure: null, destinationHeldUntil: null });
    const second = outcomeOf(await run({ partnerIds: [partner] }), partner)?.payout;
    expect(second?.amountMinor).toBe(5_000n);

    // A failure that is no fault of the account (the platform's balance at the provider) stops nothing.
    provider.failPending(second?.id as string, 'insufficient_funds');
    await provider.deliverPending();
    expect((await settingsOf()).destinationFailure).toBeNull();
    app.clock.advance(DAY_MS);
    const third = outcomeOf(await run(), partner)?.payout;
    expect(third?.amountMinor).toBe(5_000n);

    // Paid, then sent back by the bank for a closed account: stopped as well.
    provider.settle(third?.id);
    await provider.deliverPending();
    provider.returnPayout(third?.id as string, 'no_account');
    await provider.deliverPending();
    expect((await settingsOf()).destinationFailure?.code).toBe('no_account');
    app.clock.advance(DAY_MS);
    expect(outcomeOf(await run(), partner)?.skipped).toBe('destination_failed');
  });

  it('does not stop a new destination for a failure of a payout to the one before', async () => {
    app.clock.set(new Date('2026-06-25T09:00:00Z'));
    const { payouts, run, provider } = setup({ settlement: { payout: 'pending' } });
    const partner = await newPartner();
    await configure(payouts, partner);
    await earn(partner, 3_000n);
    const sent = outcomeOf(await run(), partner)?.payout;
    await runInTransaction(db, (tx) => payouts.setDestination(ctx(tx), partner, 'ba_new_account'));
    provider.failPending(sent?.id as string, 'account_closed');
    await provider.deliverPending();
    expect((await payouts.getPayout(ctx(db), sent?.id as string)).status).toBe('failed');
    expect((await payouts.getSettings(ctx(db), partner)).destinationFailure).toBeNull();
  });

  it('fails a payout the provider refuses at once, and returns the money', async () => {
    app.clock.set(new Date('2026-06-15T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual' });
    await earn(partner, 1_500n);
    provider.failNext('payout', 'invalid_destination');
    const [payout] = (await run({ partnerIds: [partner] })).payouts;
    expect(payout).toMatchObject({ status: 'failed', failureCode: 'invalid_destination' });
    expect(await balance('partner_payable', partner)).toBe(1_500n);
  });

  it('pays exactly once when the provider times out after it accepted the payout', async () => {
    app.clock.set(new Date('2026-06-16T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual' });
    await earn(partner, 7_000n);
    provider.timeoutNext('payout', { afterApplying: true });
    const [payout] = (await run({ partnerIds: [partner] })).payouts;
    // The lookup after the timeout finds the payout the provider made.
    expect(payout?.status).toBe('paid');
    await payouts.retryUnsettled(db, app.clock.now());
    expect(
      provider.operations().filter((op) => op.kind === 'payout' && op.reference === payout?.id),
    ).toHaveLength(1);
    const movements = await ledger.transactionsFor(ctx(db), { kind: 'payout', id: payout?.id as string });
    expect(movements).toHaveLength(2);
  });

  it('sends again with the same reference when the provider timed out before it received the payout', async () => {
    app.clock.set(new Date('2026-06-17T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual' });
    await earn(partner, 6_000n);
    provider.timeoutNext('payout', { afterApplying: false });
    const [payout] = (await run({ partnerIds: [partner] })).payouts;
    expect(payout?.status).toBe('pending');
    expect(await balance('partner_payable', partner)).toBe(0n);

    const retried = await payouts.retryUnsettled(db, app.clock.now());
    expect(retried.find((p) => p.id === payout?.id)?.status).toBe('paid');
    await payouts.retryUnsettled(db, app.clock.now());
    expect(provider.operations().filter((op) => op.reference === payout?.id)).toHaveLength(1);
    expect((await payouts.getPayout(ctx(db), payout?.id as string)).attempts).toBe(2);
  });

  it('takes a refusal of a payout the provider already holds for the payout it holds, and returns nothing', async () => {
    app.clock.set(new Date('2026-06-17T10:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'manual' });
    await earn(partner, 4_000n);
    provider.timeoutNext('payout', { afterApplying: false });
    const [payout] = (await run({ partnerIds: [partner] })).payouts;
    expect(payout?.status).toBe('pending');
    // An attempt reached the provider and its answer was lost; the retry is refused as a
    // duplicate of it.
    await provider.payout({
      reference: payout?.id as string,
      destination: payout?.destination as string,
      amountMinor: 4_000n,
      currency: 'EUR',
    });
    provider.refuseRepeatNext('payout');
    const retried = await payouts.retryUnsettled(db, app.clock.now());
    expect(retried.find((p) => p.id === payout?.id)?.status).toBe('paid');
    expect(await balance('partner_payable', partner)).toBe(0n);
    expect(provider.operations().filter((op) => op.reference === payout?.id)).toHaveLength(1);
    const movements = await ledger.transactionsFor(ctx(db), { kind: 'payout', id: payout?.id as string });
    expect(movements).toHaveLength(2);
  });

  it('goes on with the other partners and payouts when one fails, and takes it up again next time', async () => {
    app.clock.set(new Date('2026-06-19T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const [unsendable, unrunnable, sound] = [await newPartner(), await newPartner(), await newPartner()];
    for (const partner of [unsendable, unrunnable, sound]) {
      await configure(payouts, partner, { schedule: 'manual' });
      await earn(partner, 3_000n);
    }
    // Faults in the database: one partner's run cannot be saved, another's payout cannot be
    // updated once it is created (its send fails).
    await sql`create function fail_for_partner() returns trigger language plpgsql as
      $$ begin raise exception 'fault injected'; end $$`.execute(db);
    await sql`create trigger fail_run before update on payout_settings for each row
      when (old.partner_id = ${sql.lit(unrunnable)}) execute function fail_for_partner()`.execute(db);
    await sql`create trigger fail_send before update on payouts for each row
      when (old.partner_id = ${sql.lit(unsendable)}) execute function fail_for_partner()`.execute(db);
    let first: Awaited<ReturnType<typeof run>>;
    try {
      first = await run({ partnerIds: [unsendable, unrunnable, sound] });
    } finally {
      await sql`drop trigger fail_run on payout_settings`.execute(db);
      await sql`drop trigger fail_send on payouts`.execute(db);
      await sql`drop function fail_for_partner()`.execute(db);
    }
    expect(outcomeOf(first, unrunnable)).toMatchObject({ skipped: 'failed', payout: null });
    expect(await balance('partner_payable', unrunnable)).toBe(3_000n);
    expect(first.payouts.find((p) => p.partnerId === sound)?.status).toBe('paid');
    const stuck = first.payouts.find((p) => p.partnerId === unsendable);
    expect(stuck?.status).toBe('pending');
    expect(provider.operations().filter((op) => op.reference === stuck?.id)).toHaveLength(0);

    // The next retry sends what was left, and the next run pays the partner it failed on.
    expect((await payouts.retryUnsettled(db, app.clock.now())).find((p) => p.id === stuck?.id)?.status).toBe(
      'paid',
    );
    expect(outcomeOf(await run({ partnerIds: [unrunnable] }), unrunnable)?.payout?.amountMinor).toBe(3_000n);
    for (const partner of [unsendable, unrunnable, sound])
      expect(await balance('partner_payable', partner)).toBe(0n);
  });

  it('asks again about every unsettled payout, page after page, however many there are', async () => {
    app.clock.set(new Date('2026-06-20T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const left: string[] = [];
    for (let n = 0; n < 5; n++) {
      const partner = await newPartner();
      await configure(payouts, partner, { schedule: 'manual' });
      await earn(partner, 1_000n);
      provider.timeoutNext('payout', { afterApplying: false });
      const [payout] = (await run({ partnerIds: [partner] })).payouts;
      expect(payout?.status).toBe('pending');
      left.push(payout?.id as string);
    }
    // Pages of two: the fifth is asked about as the first.
    const retried = await payouts.retryUnsettled(db, app.clock.now(), { pageSize: 2 });
    for (const id of left) expect(retried.find((p) => p.id === id)?.status).toBe('paid');
  });

  it('never pays twice when runs race for the same partner', async () => {
    app.clock.set(new Date('2026-06-18T09:00:00Z'));
    const { payouts, run, provider } = setup();
    const partner = await newPartner();
    await configure(payouts, partner, { schedule: 'daily' });
    await earn(partner, 9_900n);
    const results = await Promise.all([
      run(),
      run(),
      run({ partnerIds: [partner] }),
      run({ partnerIds: [partner] }),
      run({ includeManual: true }),
    ]);
    const paid = results.flatMap((result) => result.payouts).filter((p) => p.partnerId === partner);
    expect(paid).toHaveLength(1);
    expect(paid[0]?.amountMinor).toBe(9_900n);
    expect(await balance('partner_payable', partner)).toBe(0n);
    const ours = await payouts.listPayouts(ctx(db), { partnerId: partner, limit: 10 });
    expect(ours.items.map((p) => p.id)).toEqual([paid[0]?.id]);
    expect(provider.operations().filter((op) => op.reference === paid[0]?.id)).toHaveLength(1);
  });

  it('ignores provider events that are not its payouts', async () => {
    const { payouts } = setup();
    const now = app.clock.now();
    const operation = {
      reference: 'cap_not_a_payout',
      providerId: 'sim_cap_1',
      kind: 'capture' as const,
      status: 'succeeded' as const,
      amountMinor: 100n,
      currency: 'EUR',
      failureCode: null,
      parentReference: null,
      createdAt: now,
      updatedAt: now,
    };
    await expect(
      payouts.handleProviderEvent(db, { eventId: 'evt_1', operation }, now),
    ).resolves.toBeUndefined();
    await expect(
      payouts.handleProviderEvent(db, { eventId: 'evt_2', operation: { ...operation, kind: 'payout' } }, now),
    ).resolves.toBeUndefined();
  });

  describe('reconciliation with the provider', () => {
    /** Payouts over a provider whose payouts stay pending, and reconciliation over the same provider. */
    function reconciling() {
      const env = setup({ settlement: { payout: 'pending' } });
      const payments = createPaymentsService({
        provider: env.provider,
        ledger,
        clock: app.clock,
        payoutRecords: env.payouts.reconciliationRecords,
      });
      const reconcile = async (since: Date, refs: readonly string[]) =>
        (await payments.reconcile(db, { since })).discrepancies
          .filter((d) => refs.includes(d.reference))
          .map((d) => `${d.type} ${d.reference}`)
          .sort();
      return { ...env, reconcile };
    }
    async function paying(env: ReturnType<typeof reconciling>, settings: Partial<PayoutSettingsInput> = {}) {
      const partner = await newPartner();
      await configure(env.payouts, partner, settings);
      await earn(partner, 7_000n);
      const payout = outcomeOf(await env.run({ partnerIds: [partner] }), partner)?.payout;
      if (!payout) throw new Error('no payout');
      return { partner, payout };
    }

    it('reports nothing for payouts in transit, paid, or failed and returned as the provider says', async () => {
      app.clock.set(new Date('2031-01-01T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      const inTransit = await paying(env);
      const paid = await paying(env);
      const failed = await paying(env);
      env.provider.settle(paid.payout.id);
      env.provider.failPending(failed.payout.id, 'account_closed');
      await env.provider.deliverPending();
      const refs = [inTransit.payout.id, paid.payout.id, failed.payout.id];
      expect(await env.reconcile(since, refs)).toEqual([]);
      expect((await env.payouts.getPayout(ctx(db), paid.payout.id)).status).toBe('paid');
      expect((await env.payouts.getPayout(ctx(db), failed.payout.id)).status).toBe('failed');
    });

    it('reports nothing for a payout the partner’s bank sent back, whichever of its callbacks came first', async () => {
      app.clock.set(new Date('2031-01-15T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      const inOrder = await paying(env);
      const reversed = await paying(env);
      await env.provider.deliverPending();
      for (const { payout } of [inOrder, reversed]) {
        env.provider.settle(payout.id);
        env.provider.returnPayout(payout.id, 'no_account');
      }
      const [succeeded, failed] = env.provider
        .undelivered()
        .filter((e) => e.operation.reference === reversed.payout.id);
      if (!succeeded || !failed) throw new Error('no callbacks');
      await env.provider.redeliver(failed.eventId);
      await env.provider.deliverPending();
      // Paid, then sent back; or failed outright, the "paid" arriving late: the money is back either way.
      expect((await env.payouts.getPayout(ctx(db), inOrder.payout.id)).status).toBe('returned');
      expect((await env.payouts.getPayout(ctx(db), reversed.payout.id)).status).toBe('failed');
      expect(await balance('partner_payable', inOrder.partner)).toBe(7_000n);
      expect(await balance('partner_payable', reversed.partner)).toBe(7_000n);
      expect(await env.reconcile(since, [inOrder.payout.id, reversed.payout.id])).toEqual([]);
    });

    it('reports a paid payout the partner’s bank sent back while its callback was lost, until the callback comes', async () => {
      app.clock.set(new Date('2031-01-20T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      const { payout, partner } = await paying(env);
      env.provider.settle(payout.id);
      await env.provider.deliverPending();
      env.provider.returnPayout(payout.id);
      expect(await env.reconcile(since, [payout.id])).toEqual([
        `payout_not_returned ${payout.id}`,
        `payout_status_mismatch ${payout.id}`,
      ]);
      expect(await balance('partner_payable', partner)).toBe(0n);
      await env.provider.deliverPending();
      expect(await env.reconcile(since, [payout.id])).toEqual([]);
      expect(await balance('partner_payable', partner)).toBe(7_000n);
    });

    it('reports a payout the provider paid while its callback was lost, until the callback comes', async () => {
      app.clock.set(new Date('2031-02-01T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      const { payout } = await paying(env);
      await env.provider.deliverPending();
      env.provider.settle(payout.id);
      expect(await env.reconcile(since, [payout.id])).toEqual([
        `payout_status_mismatch ${payout.id}`,
        `payout_unsettled ${payout.id}`,
      ]);
      await env.provider.deliverPending();
      expect(await env.reconcile(since, [payout.id])).toEqual([]);
    });

    it('reports a payout the provider failed while its callback was lost: the partner’s money is not returned', async () => {
      app.clock.set(new Date('2031-03-01T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      const { payout, partner } = await paying(env);
      await env.provider.deliverPending();
      env.provider.failPending(payout.id, 'account_closed');
      expect(await env.reconcile(since, [payout.id])).toEqual([
        `payout_not_returned ${payout.id}`,
        `payout_status_mismatch ${payout.id}`,
      ]);
      expect(await balance('partner_payable', partner)).toBe(0n);
      await env.provider.deliverPending();
      expect(await env.reconcile(since, [payout.id])).toEqual([]);
      expect(await balance('partner_payable', partner)).toBe(7_000n);
    });

    it('reports a payout Baton settled on a callback the provider never sent, with the posting it made', async () => {
      app.clock.set(new Date('2031-04-01T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      const { payout } = await paying(env);
      await env.provider.deliverPending();
      const [held] = await env.provider.operations().filter((o) => o.reference === payout.id);
      if (!held) throw new Error('no operation');
      // A callback from elsewhere (another account of the provider, a replayed test event) says paid.
      await env.payouts.handleProviderEvent(
        db,
        { eventId: `forged-${payout.id}`, operation: { ...held, status: 'succeeded' } },
        app.clock.now(),
      );
      expect(await env.reconcile(since, [payout.id])).toEqual([
        `payout_posting_without_operation ${payout.id}`,
        `payout_status_mismatch ${payout.id}`,
      ]);
    });

    it('reports a payout Baton sent that never reached the provider, and one the provider holds that Baton never made', async () => {
      app.clock.set(new Date('2031-05-01T09:00:00Z'));
      const since = app.clock.now();
      const env = reconciling();
      env.provider.timeoutNext('payout', { afterApplying: false });
      const { payout } = await paying(env);
      expect((await env.payouts.getPayout(ctx(db), payout.id)).status).toBe('pending');
      // Paid out at the provider directly, outside Baton.
      const rogue = newId('po');
      await env.provider.payout({
        reference: rogue,
        destination: 'ba_ok',
        amountMinor: 900n,
        currency: 'EUR',
      });
      expect(await env.reconcile(since, [payout.id, rogue])).toEqual([
        `payout_missing_at_provider ${payout.id}`,
        `payout_unknown ${rogue}`,
      ]);
      // The retry sends it; the provider then holds it and nothing is missing.
      await env.payouts.retryUnsettled(db, app.clock.now());
      expect(await env.reconcile(since, [payout.id])).toEqual([]);
    });
  });
});
