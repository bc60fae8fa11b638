import { describe, expect, it } from 'vitest';
import { systemActor } from '../kernel/actor.js';
import type { Context } from '../kernel/context.js';
import type { Executor } from '../kernel/database/database.js';
import { runInTransaction } from '../kernel/database/transaction.js';
import { isDomainError } from '../kernel/errors.js';
import type { PartnerId } from '../kernel/ids.js';
import { type AccountKey, type PostingInput, verifyLedger } from '../modules/ledger/index.js';
import {
  createPaymentsService,
  createSimulatedProvider,
  TEST_CARDS,
  TEST_DESTINATIONS,
} from '../modules/payments/index.js';
import { createPayoutsService } from '../modules/payouts/index.js';
import { createTestApp } from '../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * Write skew on a partner's payable (M5). Two operations that each read the payable and then
 * take money from it race, again and again: two payout runs, or a payout run and an operator
 * deciding that a chargeback is the partner's liability (taken from its payable as far as it
 * covers, the rest owed as a receivable). Whatever the interleaving, no account goes below
 * zero, no operation fails, and every cent is where the other operations say it went.
 *
 * On PostgreSQL the races are real: each operation has its own connection. The embedded
 * database has one connection, so transactions there take turns and fewer rounds prove the
 * same arithmetic.
 */

const PARTNERS = 100;
const ROUNDS = Number(process.env.MONEY_RACE_ROUNDS ?? (TEST_DATABASE_KIND === 'postgres' ? 100 : 10));
const AMOUNT_MAX = 10_000;
const JITTER_MS = 2;
/** Pairs racing at once: both operations of each have a connection of the pool's 12. */
const PAIRS_AT_ONCE = 5;

describe(`write skew on a partner's payable (M5, ${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({
    poolSize: 12,
    config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' },
  });
  const db = app.baton.database.db;
  const { ledger, participants } = app.baton.services;
  const actor = systemActor('races');
  const ctx = (tx: Executor): Context => ({
    db: tx,
    actor,
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  // Charges and chargebacks through one provider, payouts through another, as in production
  // they may well be; callbacks are delivered when the test says so.
  const cards = createSimulatedProvider({ clock: app.clock, seed: 1, autoDeliver: false });
  const payments = createPaymentsService({ provider: cards, ledger, clock: app.clock });
  cards.onEvent((event) => payments.handleEvent(db, event));
  const banks = createSimulatedProvider({
    clock: app.clock,
    seed: 2,
    autoDeliver: false,
    settlement: { payout: 'immediate' },
  });
  const payouts = createPayoutsService({ ledger, participants, jobs: app.baton.jobs, provider: banks });
  banks.onEvent((event) => payouts.handleProviderEvent(db, event, app.clock.now()));

  const eur = (purpose: AccountKey['purpose'], ownerId: string): AccountKey => ({
    purpose,
    ownerId,
    currency: 'EUR',
  });
  const balanceOf = async (key: AccountKey) =>
    (await runInTransaction(db, (tx) => ledger.balance(ctx(tx), key))).balanceMinor;

  async function newPartners(count: number): Promise<PartnerId[]> {
    const created = await app.request('POST', '/v1/partner-types', {
      body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
    });
    expect(created.status, created.text).toBe(201);
    const ids: PartnerId[] = [];
    for (let n = 0; n < count; n++) {
      const applied = await app.request<{ partner: { id: PartnerId } }>('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'supplier',
          name: `Supplier ${n}`,
          email: `s${n}@partner.test`,
          regions: ['eu-west'],
        },
      });
      expect(applied.status, applied.text).toBe(201);
      const partnerId = applied.body.partner.id;
      await runInTransaction(db, (tx) =>
        payouts.setSettings(ctx(tx), partnerId, {
          schedule: 'manual',
          minimum: { amount: '0.00', currency: 'EUR' },
          destination: TEST_DESTINATIONS.ok,
          reserveBps: 0,
          reserveDays: 0,
        }),
      );
      ids.push(partnerId);
    }
    return ids;
  }

  it(`loses no cent and overdraws nothing in ${PARTNERS * ROUNDS} races of payouts and chargeback decisions`, {
    // Ten minutes for 100 rounds, and as much more for each 100 more.
    timeout: 600_000 * Math.max(1, ROUNDS / 100),
  }, async () => {
    const partners = await newPartners(PARTNERS);
    // Half race payout against payout, half payout against a chargeback decision.
    const payoutPairs = partners.slice(0, PARTNERS / 2);
    const disputed = partners.slice(PARTNERS / 2);
    // One large capture whose chargebacks the disputed partners are held liable for.
    const payment = await payments.charge(db, actor, {
      orderRef: 'races',
      customerId: null,
      paymentMethod: TEST_CARDS.ok,
      amountMinor: BigInt(PARTNERS * ROUNDS * AMOUNT_MAX),
      currency: 'EUR',
      reference: 'charge-races',
    });
    expect(payment.status).toBe('captured');

    const funded = new Map<PartnerId, bigint>(partners.map((p) => [p, 0n]));
    const charged = new Map<PartnerId, bigint>(partners.map((p) => [p, 0n]));
    const paid = new Map<PartnerId, bigint>(partners.map((p) => [p, 0n]));
    const amount = () => BigInt(1 + Math.floor(Math.random() * AMOUNT_MAX));
    const failures: string[] = [];
    // Each operation starts after a random pause of up to a few milliseconds, so that over the
    // rounds every interleaving of the two comes up, not only the one their code paths favour.
    const attempt = async <T>(work: () => Promise<T>): Promise<T | null> => {
      try {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * JITTER_MS));
        return await work();
      } catch (error) {
        failures.push(isDomainError(error) ? error.code : String(error));
        return null;
      }
    };

    for (let round = 0; round < ROUNDS; round++) {
      // Every partner earns something, in one batch.
      const earnings: PostingInput[] = partners.map((partnerId) => {
        const amountMinor = amount();
        funded.set(partnerId, (funded.get(partnerId) as bigint) + amountMinor);
        return {
          idempotencyKey: `race-earning:${round}:${partnerId}`,
          cause: { kind: 'adjustment', id: `${round}:${partnerId}` },
          entries: [
            { account: eur('operator_adjustments', 'platform'), direction: 'debit', amountMinor },
            { account: eur('partner_payable', partnerId), direction: 'credit', amountMinor },
          ],
        };
      });
      await runInTransaction(db, (tx) => ledger.postBatch(ctx(tx), earnings, { atomic: true }));
      // Each disputed partner gets a chargeback to answer for.
      for (const partnerId of disputed) {
        cards.chargeback('charge-races:capture', amount(), `cb-${round}-${partnerId}`);
      }
      await cards.deliverPending();
      const open = (await payments.listChargebacks(ctx(db), { status: 'open', limit: 1000 })).items;
      const chargebackOf = new Map(
        open.map((chargeback) => [chargeback.reference.split('-').slice(2).join('-'), chargeback]),
      );

      // The races: a few pairs at a time, so that both operations of a pair find a connection
      // at once and really run side by side, rather than in the pool's queue order.
      const pairs: (() => Promise<unknown>)[][] = [
        ...payoutPairs.map((partnerId) => [
          () => payouts.run(db, { now: app.clock.now(), partnerIds: [partnerId] }),
          () => payouts.run(db, { now: app.clock.now(), partnerIds: [partnerId] }),
        ]),
        ...disputed.map((partnerId) => {
          const chargeback = chargebackOf.get(partnerId);
          expect(chargeback, `chargeback of ${partnerId}`).toBeDefined();
          charged.set(partnerId, (charged.get(partnerId) as bigint) + (chargeback?.amountMinor ?? 0n));
          return [
            () => payouts.run(db, { now: app.clock.now(), partnerIds: [partnerId] }),
            () =>
              runInTransaction(db, (tx) =>
                payments.decideChargeback(ctx(tx), chargeback?.id as string, {
                  liability: 'partner',
                  partnerId,
                }),
              ),
          ];
        }),
      ];
      const outcomes: unknown[] = [];
      await Promise.all(
        Array.from({ length: PAIRS_AT_ONCE }, async () => {
          for (let pair = pairs.shift(); pair; pair = pairs.shift()) {
            outcomes.push(...(await Promise.all(pair.map((work) => attempt(work)))));
          }
        }),
      );
      expect(failures).toEqual([]);
      const newPayouts = outcomes.flatMap((outcome) =>
        outcome && typeof outcome === 'object' && 'payouts' in outcome
          ? (outcome as Awaited<ReturnType<typeof payouts.run>>).payouts
          : [],
      );
      for (const payout of newPayouts) {
        expect(payout.status, payout.id).toBe('paid');
        paid.set(payout.partnerId, (paid.get(payout.partnerId) as bigint) + payout.amountMinor);
      }
      // Two runs for the same payable: one pays it all, the other finds nothing left.
      for (const partnerId of payoutPairs) {
        expect(
          newPayouts.filter((payout) => payout.partnerId === partnerId),
          partnerId,
        ).toHaveLength(1);
        expect(await balanceOf(eur('partner_payable', partnerId)), partnerId).toBe(0n);
      }
      await banks.deliverPending();
      app.clock.advance(60_000);
    }

    // Every cent is accounted for: what a partner earned, less what it was paid and the
    // chargebacks it answers for, is what it is owed (payable) less what it owes (receivable),
    // and neither is below zero.
    for (const partnerId of partners) {
      const payable = await balanceOf(eur('partner_payable', partnerId));
      const receivable = await balanceOf(eur('partner_receivable', partnerId));
      expect(payable, partnerId).toBeGreaterThanOrEqual(0n);
      expect(receivable, partnerId).toBeGreaterThanOrEqual(0n);
      expect(
        (funded.get(partnerId) as bigint) -
          (paid.get(partnerId) as bigint) -
          (charged.get(partnerId) as bigint),
        partnerId,
      ).toBe(payable - receivable);
    }
    // The provider paid out exactly what the ledger says was paid, once per payout.
    const sent = banks.operations().filter((operation) => operation.kind === 'payout');
    expect(sent.reduce((sum, operation) => sum + operation.amountMinor, 0n)).toBe(
      [...paid.values()].reduce((sum, value) => sum + value, 0n),
    );
    expect(new Set(sent.map((operation) => operation.reference)).size).toBe(sent.length);
    const report = await runInTransaction(db, (tx) => verifyLedger(tx));
    expect(report.problems).toEqual([]);
  });
});
