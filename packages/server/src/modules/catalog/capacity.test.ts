import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { type Actor, systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Tx } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { isDomainError } from '../../kernel/errors.js';
import type { Problem } from '../../kernel/http/problem.js';
import { newId, type OfferId, type PartnerId, type ReservationId } from '../../kernel/ids.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import type { ReservationJson } from './http/json.js';
import { catalogJobs, type Reservation } from './index.js';

type ReservationBody = z.output<typeof ReservationJson>;

const MINUTE_MS = 60 * 1000;
const DAY_MS = 24 * 60 * MINUTE_MS;
/** Simultaneous reservations in the race for the last unit. */
const CONCURRENT_RESERVATIONS = 50;

describe(`capacity reservations (${TEST_DATABASE_KIND})`, async () => {
  // A pool of 20 lets PostgreSQL really run the racing transactions at the same time.
  const app = await createTestApp({ poolSize: 20, config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  const db = app.baton.database.db;
  const catalog = app.baton.services.catalog;
  let sequence = 0;

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

  const context = (tx: Tx, now: Date = app.clock.now(), actor: Actor = systemActor('test')): Context => ({
    db: tx,
    actor,
    now,
    requestId: null,
    ip: null,
  });

  async function apply(): Promise<{ id: PartnerId; key: string }> {
    const n = ++sequence;
    const applied = ok<{ partner: { id: PartnerId }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'workshop',
          name: `Workshop ${n}`,
          email: `ws-${n}@partner.test`,
          regions: ['eu'],
        },
      }),
      201,
    );
    return { id: applied.partner.id, key: applied.api_key.secret };
  }

  async function offer(
    partner: { id: PartnerId },
    terms: {
      capacity: number;
      period?: 'day' | 'week' | 'month';
      min?: number;
      max?: number;
      status?: string;
    },
  ): Promise<OfferId> {
    const created = ok<{ id: OfferId }>(
      await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        body: {
          capability: 'sewing',
          attributes: {},
          unit_price: { amount: '3.00', currency: 'EUR' },
          min_quantity: terms.min ?? 1,
          max_quantity: terms.max ?? terms.capacity,
          lead_time_hours: 24,
          regions: ['eu'],
          capacity_per_period: terms.capacity,
          capacity_period: terms.period ?? 'week',
          status: terms.status ?? 'active',
        },
      }),
      201,
    );
    return created.id;
  }

  const at = () => app.clock.now().toISOString();

  async function reserveOverHttp(offerId: string, quantity: number, holdMinutes = 30, when = at()) {
    return app.request<ReservationBody>('POST', `/v1/offers/${offerId}/reservations`, {
      body: { quantity, at: when, hold_minutes: holdMinutes },
    });
  }

  async function counter(offerId: string): Promise<bigint[]> {
    const rows = await db
      .selectFrom('capacity_counters')
      .select('reserved')
      .where('offer_id', '=', offerId)
      .orderBy('period_start')
      .execute();
    return rows.map((row) => row.reserved);
  }

  async function liveTotal(offerId: string): Promise<bigint> {
    const rows = await db
      .selectFrom('reservations')
      .select('quantity')
      .where('offer_id', '=', offerId)
      .where('status', 'in', ['held', 'confirmed'])
      .execute();
    return rows.reduce((sum, row) => sum + row.quantity, 0n);
  }

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'workshop', name: 'Workshop', profile_schema: { type: 'object' } },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/capabilities', {
      body: { key: 'sewing', name: 'Sewing', unit: 'piece', attribute_schema: { type: 'object' } },
    }),
    201,
  );
  const partner = await apply();

  it('never overbooks the last unit under 50 concurrent reservations through the API', async () => {
    const offerId = await offer(partner, { capacity: 20 });
    ok(await reserveOverHttp(offerId, 19), 201);
    const responses = await Promise.all(
      Array.from({ length: CONCURRENT_RESERVATIONS }, () => reserveOverHttp(offerId, 1)),
    );
    const statuses = responses.map((response) =>
      `${response.status} ${(response.body as unknown as Problem).code ?? ''}`.trim(),
    );
    expect(statuses.filter((status) => status === '201')).toHaveLength(1);
    expect(statuses.filter((status) => status === '409 catalog.capacity_exceeded')).toHaveLength(
      CONCURRENT_RESERVATIONS - 1,
    );
    expect(await counter(offerId)).toEqual([20n]);
    expect(await liveTotal(offerId)).toBe(20n);
  });

  it('never overbooks the last unit under 50 concurrent reservations, each in its own transaction', async () => {
    const offerId = await offer(partner, { capacity: 7, period: 'day' });
    await runInTransaction(db, (tx) =>
      catalog.reserve(context(tx), { offerId, quantity: 6n, at: app.clock.now(), holdMinutes: 30 }),
    );
    const outcomes = await Promise.all(
      Array.from({ length: CONCURRENT_RESERVATIONS }, () =>
        runInTransaction(db, (tx) =>
          catalog.reserve(context(tx), { offerId, quantity: 1n, at: app.clock.now(), holdMinutes: 30 }),
        ).then(
          () => 'reserved',
          (error: unknown) => (isDomainError(error) ? error.code : `unexpected ${String(error)}`),
        ),
      ),
    );
    expect(outcomes.filter((outcome) => outcome === 'reserved')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'catalog.capacity_exceeded')).toHaveLength(
      CONCURRENT_RESERVATIONS - 1,
    );
    expect(await counter(offerId)).toEqual([7n]);
    expect(await liveTotal(offerId)).toBe(7n);
  });

  it('says how much is free when refusing, and counts each period on its own', async () => {
    const offerId = await offer(partner, { capacity: 10, period: 'week' });
    const held = ok<ReservationBody>(await reserveOverHttp(offerId, 8), 201);
    // 2026-06-01 is a Monday: the week's counter starts at 00:00 that day.
    expect(held.period_start).toBe('2026-06-01T00:00:00.000Z');
    const refused = expectProblem(await reserveOverHttp(offerId, 3), 409, 'catalog.capacity_exceeded');
    expect(refused.free).toBe('2');
    const nextWeek = new Date(app.clock.now().getTime() + 7 * DAY_MS).toISOString();
    const later = ok<ReservationBody>(await reserveOverHttp(offerId, 10, 30, nextWeek), 201);
    expect(later.period_start).toBe('2026-06-08T00:00:00.000Z');
    expect(await counter(offerId)).toEqual([8n, 10n]);
    expect(await catalog.freeCapacity(db, offerId, app.clock.now())).toBe(2n);
  });

  it('expires a hold by itself once its time has passed, giving its capacity back', async () => {
    const offerId = await offer(partner, { capacity: 5, period: 'month' });
    const hold = ok<ReservationBody>(await reserveOverHttp(offerId, 5, 15), 201);
    expect(hold).toMatchObject({ status: 'held', quantity: 5, expires_at: '2026-06-01T09:15:00.000Z' });
    expectProblem(await reserveOverHttp(offerId, 1), 409, 'catalog.capacity_exceeded');

    app.clock.advance(15 * MINUTE_MS);
    expect(await catalog.freeCapacity(db, offerId, app.clock.now(), app.clock.now())).toBe(5n);
    const next = ok<ReservationBody>(await reserveOverHttp(offerId, 4), 201);
    expect(next.status).toBe('held');
    expect(ok<ReservationBody>(await app.request('GET', `/v1/reservations/${hold.id}`)).status).toBe(
      'expired',
    );
    expect(await counter(offerId)).toEqual([4n]);
    const expired = await db
      .selectFrom('events')
      .select(['type', 'data', 'audience'])
      .where('subject_id', '=', hold.id)
      .where('type', '=', 'capacity.expired')
      .execute();
    expect(expired).toEqual([
      {
        type: 'capacity.expired',
        audience: [partner.id],
        data: {
          reservation_id: hold.id,
          offer_id: offerId,
          period_start: '2026-06-01T00:00:00.000Z',
          quantity: '5',
          reserved: '0',
        },
      },
    ]);
    expectProblem(
      await app.request('POST', `/v1/reservations/${hold.id}/confirm`),
      409,
      'catalog.reservation_not_held',
    );
  });

  it('sweeps expired holds every minute with a job, announcing each one, and never expires a confirmed one', async () => {
    const [job] = catalogJobs({ catalog, db, clock: app.clock });
    expect(job).toMatchObject({ name: 'catalog.expire-holds', cron: '* * * * *' });
    const offerId = await offer(partner, { capacity: 9, period: 'day' });
    const held = ok<ReservationBody>(await reserveOverHttp(offerId, 2, 10), 201);
    const kept = ok<ReservationBody>(await reserveOverHttp(offerId, 3, 10), 201);
    const late = ok<ReservationBody>(await reserveOverHttp(offerId, 4, 10), 201);
    const confirmed = ok<ReservationBody>(await app.request('POST', `/v1/reservations/${kept.id}/confirm`));
    expect(confirmed).toMatchObject({ status: 'confirmed', expires_at: null });
    app.clock.advance(9 * MINUTE_MS);
    ok(await app.request('POST', `/v1/reservations/${late.id}/confirm`));
    app.clock.advance(60 * MINUTE_MS);
    await job?.handler({});

    const status = async (id: string) =>
      ok<ReservationBody>(await app.request('GET', `/v1/reservations/${id}`)).status;
    expect(await status(held.id)).toBe('expired');
    expect(await status(kept.id)).toBe('confirmed');
    expect(await status(late.id)).toBe('confirmed');
    expect(await counter(offerId)).toEqual([7n]);
    const events = await db
      .selectFrom('events')
      .select(['type', 'subject_id'])
      .where('type', 'like', 'capacity.%')
      .where('subject_id', 'in', [held.id, kept.id, late.id])
      .orderBy('seq')
      .execute();
    expect(events.map((event) => [event.type, event.subject_id])).toEqual([
      ['capacity.reserved', held.id],
      ['capacity.reserved', kept.id],
      ['capacity.reserved', late.id],
      ['capacity.confirmed', kept.id],
      ['capacity.confirmed', late.id],
      ['capacity.expired', held.id],
    ]);
    // A second sweep finds nothing more to do: the counter moved exactly once.
    await job?.handler({});
    expect(await counter(offerId)).toEqual([7n]);
    app.clock.advance(30 * DAY_MS);
    await job?.handler({});
    expect(await status(kept.id)).toBe('confirmed');
  });

  it('releases a held or confirmed reservation exactly once', async () => {
    const offerId = await offer(partner, { capacity: 6, period: 'day' });
    const first = ok<ReservationBody>(await reserveOverHttp(offerId, 2), 201);
    const second = ok<ReservationBody>(await reserveOverHttp(offerId, 3), 201);
    ok(await app.request('POST', `/v1/reservations/${second.id}/confirm`));
    for (let attempt = 0; attempt < 2; attempt++) {
      expect(
        ok<ReservationBody>(await app.request('POST', `/v1/reservations/${first.id}/release`)).status,
      ).toBe('released');
      expect(
        ok<ReservationBody>(await app.request('POST', `/v1/reservations/${second.id}/release`)).status,
      ).toBe('released');
    }
    expect(await counter(offerId)).toEqual([0n]);
    expectProblem(
      await app.request('POST', `/v1/reservations/${first.id}/confirm`),
      409,
      'catalog.reservation_not_held',
    );
    const released = await db
      .selectFrom('events')
      .select('data')
      .where('type', '=', 'capacity.released')
      .where('subject_id', 'in', [first.id, second.id])
      .orderBy('seq')
      .execute();
    expect(released.map((event) => event.data.reserved)).toEqual(['3', '0']);
  });

  it('refuses to confirm a hold whose time has run out, even before it is swept', async () => {
    const offerId = await offer(partner, { capacity: 6, period: 'day' });
    const hold = ok<ReservationBody>(await reserveOverHttp(offerId, 2, 5), 201);
    app.clock.advance(5 * MINUTE_MS);
    expectProblem(
      await app.request('POST', `/v1/reservations/${hold.id}/confirm`),
      409,
      'catalog.reservation_expired',
    );
  });

  it('reserves only active offers, within their quantities, in periods not yet over', async () => {
    const draft = await offer(partner, { capacity: 10, status: 'draft' });
    expectProblem(await reserveOverHttp(draft, 1), 409, 'catalog.offer_not_available');
    const ranged = await offer(partner, { capacity: 100, min: 5, max: 20 });
    expectProblem(await reserveOverHttp(ranged, 4), 422, 'catalog.quantity_out_of_range');
    expectProblem(await reserveOverHttp(ranged, 21), 422, 'catalog.quantity_out_of_range');
    const lastWeek = new Date(app.clock.now().getTime() - 7 * DAY_MS).toISOString();
    expectProblem(await reserveOverHttp(ranged, 5, 30, lastWeek), 422, 'catalog.period_ended');
    ok(await app.request('POST', `/v1/offers/${ranged}/status`, { body: { status: 'paused' } }));
    expectProblem(await reserveOverHttp(ranged, 5), 409, 'catalog.offer_not_available');
    expect(await counter(ranged)).toEqual([]);
  });

  /** Holds several reservations at once in a transaction of its own, with ids of the caller's. */
  function reserveAll(holds: { offerId: OfferId; quantity: number; at?: Date; holdMinutes?: number }[]) {
    return runInTransaction(db, (tx) =>
      catalog.reserveAll(
        context(tx),
        holds.map((hold) => ({
          id: newId('rsv'),
          offerId: hold.offerId,
          quantity: BigInt(hold.quantity),
          at: hold.at ?? app.clock.now(),
          holdMinutes: hold.holdMinutes ?? 30,
        })),
      ),
    );
  }

  async function reservedEvents(offerId: string): Promise<string[]> {
    const rows = await db
      .selectFrom('events')
      .select(['type', 'data'])
      .where('type', 'like', 'capacity.%')
      .orderBy('seq')
      .execute();
    return rows
      .filter((row) => row.data.offer_id === offerId)
      .map((row) => `${row.type} ${String(row.data.quantity)} → ${String(row.data.reserved)}`);
  }

  it('holds several reservations at once, all or none, counting holds of one offer-period together', async () => {
    const roomy = await offer(partner, { capacity: 10, period: 'day' });
    const tight = await offer(partner, { capacity: 3, period: 'day' });
    const first = await reserveAll([
      { offerId: roomy, quantity: 4 },
      { offerId: tight, quantity: 2 },
    ]);
    expect(first.held).toBe(true);
    if (!first.held) return;
    expect(
      first.holds.map(({ reservation, reserved }) => [reservation.status, reservation.quantity, reserved]),
    ).toEqual([
      ['held', 4n, 4n],
      ['held', 2n, 2n],
    ]);

    // The second hold of `tight` does not fit: nothing of the batch is held.
    const refused = await reserveAll([
      { offerId: roomy, quantity: 4 },
      { offerId: tight, quantity: 2 },
    ]);
    expect(refused.held).toBe(false);
    if (refused.held) return;
    expect(refused.refusals.map(({ index, error }) => [index, error.code, error.details.free])).toEqual([
      [1, 'catalog.capacity_exceeded', '1'],
    ]);
    expect(await counter(roomy)).toEqual([4n]);
    expect(await counter(tight)).toEqual([2n]);
    expect(await liveTotal(roomy)).toBe(4n);

    // Two holds of one offer-period fit together, and are announced with the running total.
    const together = await reserveAll([
      { offerId: roomy, quantity: 3 },
      { offerId: roomy, quantity: 3 },
    ]);
    expect(together.held).toBe(true);
    expect(await counter(roomy)).toEqual([10n]);
    expect(await reservedEvents(roomy)).toEqual([
      'capacity.reserved 4 → 4',
      'capacity.reserved 3 → 7',
      'capacity.reserved 3 → 10',
    ]);
    const overfull = await reserveAll([
      { offerId: tight, quantity: 1 },
      { offerId: tight, quantity: 1 },
    ]);
    expect(overfull.held).toBe(false);
    expect(await counter(tight)).toEqual([2n]);
  });

  it('never overbooks the last unit under 50 concurrent batches, and a refused batch holds nothing', async () => {
    const scarce = await offer(partner, { capacity: 7, period: 'day' });
    const plenty = await offer(partner, { capacity: 1000, period: 'day' });
    await reserveAll([{ offerId: scarce, quantity: 6 }]);
    const outcomes = await Promise.all(
      Array.from({ length: CONCURRENT_RESERVATIONS }, () =>
        reserveAll([
          { offerId: plenty, quantity: 1 },
          { offerId: scarce, quantity: 1 },
        ]).then((outcome) =>
          outcome.held ? 'held' : outcome.refusals.map((refusal) => refusal.error.code).join(),
        ),
      ),
    );
    expect(outcomes.filter((outcome) => outcome === 'held')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'catalog.capacity_exceeded')).toHaveLength(
      CONCURRENT_RESERVATIONS - 1,
    );
    expect(await counter(scarce)).toEqual([7n]);
    expect(await counter(plenty)).toEqual([1n]);
    expect(await liveTotal(scarce)).toBe(7n);
    expect(await liveTotal(plenty)).toBe(1n);
  });

  it('gives the holds of the period that ran out back first, whether or not the batch is held', async () => {
    const small = await offer(partner, { capacity: 5, period: 'day', max: 10 });
    const lapsing = await reserveAll([{ offerId: small, quantity: 5, holdMinutes: 15 }]);
    const lapsed = lapsing.held ? lapsing.holds[0]?.reservation.id : undefined;
    app.clock.advance(15 * MINUTE_MS);
    // Too much even for the freed capacity: refused, but what ran out is expired and given back.
    const refused = await reserveAll([{ offerId: small, quantity: 6 }]);
    expect(refused.held).toBe(false);
    expect(await counter(small)).toEqual([0n]);
    const status = await db
      .selectFrom('reservations')
      .select('status')
      .where('id', '=', lapsed as string)
      .executeTakeFirstOrThrow();
    expect(status.status).toBe('expired');

    const renewed = await reserveAll([{ offerId: small, quantity: 4, holdMinutes: 15 }]);
    expect(renewed.held).toBe(true);
    app.clock.advance(15 * MINUTE_MS);
    const next = await reserveAll([{ offerId: small, quantity: 5 }]);
    expect(next.held).toBe(true);
    expect(await counter(small)).toEqual([5n]);
    expect(await reservedEvents(small)).toEqual([
      'capacity.reserved 5 → 5',
      'capacity.expired 5 → 0',
      'capacity.reserved 4 → 4',
      'capacity.expired 4 → 0',
      'capacity.reserved 5 → 5',
    ]);
  });

  it('refuses in a batch what reserve refuses, saying which hold and why', async () => {
    const draft = await offer(partner, { capacity: 10, status: 'draft' });
    const ranged = await offer(partner, { capacity: 100, min: 5, max: 20 });
    const lastWeek = new Date(app.clock.now().getTime() - 7 * DAY_MS);
    const outcome = await reserveAll([
      { offerId: ranged, quantity: 5 },
      { offerId: draft, quantity: 1 },
      { offerId: ranged, quantity: 4 },
      { offerId: ranged, quantity: 5, at: lastWeek },
      { offerId: 'off_missing' as OfferId, quantity: 1 },
    ]);
    expect(outcome.held).toBe(false);
    if (outcome.held) return;
    expect(outcome.refusals.map(({ index, error }) => [index, error.code])).toEqual([
      [1, 'catalog.offer_not_available'],
      [2, 'catalog.quantity_out_of_range'],
      [3, 'catalog.period_ended'],
      [4, 'catalog.offer_not_found'],
    ]);
    // The hold that could be made was counted, then given back.
    expect(await counter(ranged)).toEqual([0n]);
    expect(await liveTotal(ranged)).toBe(0n);
  });

  it('confirms several holds at once, telling each one that cannot be confirmed why', async () => {
    const offerId = await offer(partner, { capacity: 10, period: 'month' });
    const held = await reserveAll([
      { offerId, quantity: 1 },
      { offerId, quantity: 2 },
      { offerId, quantity: 3, holdMinutes: 5 },
    ]);
    if (!held.held) throw new Error('the holds were refused');
    const [one, two, brief] = held.holds.map(({ reservation }) => reservation.id) as ReservationId[];
    await runInTransaction(db, (tx) => catalog.confirmReservations(context(tx), [two as ReservationId]));
    app.clock.advance(5 * MINUTE_MS);
    const results = await runInTransaction(db, (tx) =>
      catalog.confirmReservations(context(tx), [one, two, brief, 'rsv_missing'] as ReservationId[]),
    );
    expect(
      results.map((result) => ('error' in result ? result.error.code : result.reservation.status)),
    ).toEqual(['confirmed', 'confirmed', 'catalog.reservation_expired', 'catalog.reservation_not_found']);
    const confirmed = await db
      .selectFrom('events')
      .select('data')
      .where('type', '=', 'capacity.confirmed')
      .where('subject_id', 'in', [one, two] as string[])
      .orderBy('seq')
      .execute();
    expect(confirmed.map((event) => [event.data.reservation_id, event.data.reserved])).toEqual([
      [two, '6'],
      [one, '6'],
    ]);
  });

  it('shows a reservation to operators and to the partner whose offer it holds, to no other partner', async () => {
    const offerId = await offer(partner, { capacity: 10 });
    const held = ok<ReservationBody>(await reserveOverHttp(offerId, 1), 201);
    expect(
      ok<ReservationBody>(await app.request('GET', `/v1/reservations/${held.id}`, { key: partner.key })).id,
    ).toBe(held.id);
    const other = await apply();
    expectProblem(
      await app.request('GET', `/v1/reservations/${held.id}`, { key: other.key }),
      404,
      'catalog.reservation_not_found',
    );
    expectProblem(
      await app.request('POST', `/v1/offers/${offerId}/reservations`, {
        key: partner.key,
        body: { quantity: 1, at: at(), hold_minutes: 5 },
      }),
      403,
      'auth.role_not_allowed',
    );
  });

  it('lists the held and confirmed total of every offer-period still running', async () => {
    const offerId = await offer(partner, { capacity: 50, period: 'day' });
    ok(await reserveOverHttp(offerId, 4), 201);
    ok(
      await reserveOverHttp(offerId, 6, 30, new Date(app.clock.now().getTime() + DAY_MS).toISOString()),
      201,
    );
    const usage = await catalog.listCapacityUsage(db, { from: app.clock.now() });
    const today = Math.floor(app.clock.now().getTime() / DAY_MS) * DAY_MS;
    expect(
      usage.filter((row) => row.offerId === offerId).map((row) => [row.periodStart.getTime(), row.reserved]),
    ).toEqual([
      [today, 4n],
      [today + DAY_MS, 6n],
    ]);
    const later = await catalog.listCapacityUsage(db, { from: new Date(today + DAY_MS) });
    expect(later.filter((row) => row.offerId === offerId).map((row) => row.reserved)).toEqual([6n]);
  });

  it('keeps every period within capacity and equal to its held and confirmed total, whatever happens', async () => {
    const CAPACITY = 10n;
    type Command =
      | { kind: 'reserve'; quantity: number; dayOffset: number; holdMinutes: number }
      | { kind: 'confirm' | 'release'; pick: number }
      | { kind: 'advance'; minutes: number }
      | { kind: 'sweep' };
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({
        kind: fc.constant('reserve' as const),
        quantity: fc.integer({ min: 1, max: 5 }),
        dayOffset: fc.integer({ min: 0, max: 1 }),
        holdMinutes: fc.integer({ min: 1, max: 30 }),
      }),
      fc.record({ kind: fc.constantFrom('confirm' as const, 'release' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('advance' as const), minutes: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ kind: fc.constant('sweep' as const) }),
    );
    interface Modelled {
      readonly id: ReservationId;
      readonly day: number;
      readonly quantity: bigint;
      status: Reservation['status'];
      expiresAtMs: number | null;
    }

    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), async (commands) => {
        const offerId = await offer(partner, { capacity: Number(CAPACITY), period: 'day', max: 5 });
        let nowMs = app.clock.now().getTime();
        const model: Modelled[] = [];
        const inDay = (day: number) => model.filter((item) => item.day === day);
        const live = (item: Modelled) =>
          item.status === 'confirmed' || (item.status === 'held' && (item.expiresAtMs ?? 0) > nowMs);
        const run = <T>(work: (ctx: Context) => Promise<T>) =>
          runInTransaction(db, (tx) => work(context(tx, new Date(nowMs)))).then(
            (value) => ({ value, code: null }),
            (error: unknown) => {
              if (!isDomainError(error)) throw error;
              return { value: null, code: error.code };
            },
          );

        for (const step of commands) {
          if (step.kind === 'reserve') {
            const day = Math.floor(nowMs / DAY_MS) + step.dayOffset;
            const atMs = day * DAY_MS + 12 * 60 * MINUTE_MS;
            const taken = inDay(day)
              .filter(live)
              .reduce((sum, item) => sum + item.quantity, 0n);
            const quantity = BigInt(step.quantity);
            const outcome = await run((ctx) =>
              catalog.reserve(ctx, { offerId, quantity, at: new Date(atMs), holdMinutes: step.holdMinutes }),
            );
            if (taken + quantity <= CAPACITY) {
              expect(outcome.code).toBeNull();
              // A reservation that succeeds first expires the period's holds that ran out.
              for (const item of inDay(day))
                if (item.status === 'held' && !live(item)) item.status = 'expired';
              const reservation = outcome.value as Reservation;
              model.push({
                id: reservation.id,
                day,
                quantity,
                status: 'held',
                expiresAtMs: nowMs + step.holdMinutes * MINUTE_MS,
              });
            } else {
              expect(outcome.code).toBe('catalog.capacity_exceeded');
            }
          } else if (step.kind === 'confirm' || step.kind === 'release') {
            const item = model[step.pick % Math.max(model.length, 1)];
            if (!item) continue;
            if (step.kind === 'confirm') {
              const outcome = await run((ctx) => catalog.confirmReservation(ctx, item.id));
              const expected =
                item.status === 'held'
                  ? live(item)
                    ? null
                    : 'catalog.reservation_expired'
                  : item.status === 'confirmed'
                    ? null
                    : 'catalog.reservation_not_held';
              expect(outcome.code).toBe(expected);
              if (expected === null) {
                item.status = 'confirmed';
                item.expiresAtMs = null;
              }
            } else {
              const outcome = await run((ctx) => catalog.releaseReservation(ctx, item.id));
              expect(outcome.code).toBeNull();
              if (item.status === 'held' || item.status === 'confirmed') item.status = 'released';
            }
          } else if (step.kind === 'advance') {
            nowMs += step.minutes * MINUTE_MS;
          } else {
            await run((ctx) => catalog.expireHolds(ctx));
            for (const item of model) if (item.status === 'held' && !live(item)) item.status = 'expired';
          }

          const stored = await db
            .selectFrom('reservations')
            .select(['id', 'status'])
            .where('offer_id', '=', offerId)
            .execute();
          expect(Object.fromEntries(stored.map((row) => [row.id, row.status]))).toEqual(
            Object.fromEntries(model.map((item) => [item.id, item.status])),
          );
          const counters = await db
            .selectFrom('capacity_counters')
            .select(['period_start', 'reserved'])
            .where('offer_id', '=', offerId)
            .execute();
          for (const row of counters) {
            const day = row.period_start.getTime() / DAY_MS;
            const heldOrConfirmed = inDay(day)
              .filter((item) => item.status === 'held' || item.status === 'confirmed')
              .reduce((sum, item) => sum + item.quantity, 0n);
            expect(row.reserved).toBe(heldOrConfirmed);
            expect(row.reserved).toBeLessThanOrEqual(CAPACITY);
            const free = await catalog.freeCapacity(db, offerId, row.period_start, new Date(nowMs));
            const taken = inDay(day)
              .filter(live)
              .reduce((sum, item) => sum + item.quantity, 0n);
            expect(free).toBe(CAPACITY - taken);
          }
        }
      }),
      { numRuns: 25 },
    );
  });
});
