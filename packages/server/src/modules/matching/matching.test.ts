import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { type DomainError, isDomainError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import type { Problem } from '../../kernel/http/problem.js';
import type { OfferId } from '../../kernel/ids.js';
import { newId } from '../../kernel/ids.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { AllocationJson, ExplanationJson, MatchJson, SettingsJson } from './http/json.js';
import type { MatchResult } from './index.js';
import { createMatchingService } from './service.js';

type MatchBody = z.output<typeof MatchJson>;
type ExplanationBody = z.output<typeof ExplanationJson>;
type AllocationBody = z.output<typeof AllocationJson>;
type SettingsBody = z.output<typeof SettingsJson>;

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

describe('matching through the HTTP API', async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  const matching = app.baton.services.matching;
  let sequence = 0;
  const next = () => ++sequence;

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

  const inHours = (hours: number) => new Date(app.clock.now().getTime() + hours * HOUR_MS).toISOString();

  // Partner types: one without rules, one whose rules will change under its partners.
  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'mill', name: 'Mill', profile_schema: { type: 'object' } },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'workshop', name: 'Workshop', profile_schema: { type: 'object' } },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/partner-types/workshop/rules', {
      body: { title: 'Rules', body: 'Deliver on time.', grace_period_days: 0 },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/certification-programs', {
      body: {
        key: 'oeko-tex',
        name: 'OEKO-TEX',
        evidence: [{ key: 'licence', description: 'The licence number' }],
        validity_days: 365,
      },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/certification-programs', {
      body: {
        key: 'steam-safety',
        name: 'Steam safety',
        evidence: [{ key: 'licence', description: 'The licence number' }],
        validity_days: 10,
      },
    }),
    201,
  );

  const FABRIC_SCHEMA = {
    type: 'object',
    properties: {
      color: { type: 'string', enum: ['red', 'blue', 'green'] },
      weight_gsm: { type: 'integer', minimum: 1 },
    },
    additionalProperties: false,
  };

  async function defineCapability(key: string, requiredCertifications: string[] = []): Promise<void> {
    ok(
      await app.request('POST', '/v1/capabilities', {
        body: {
          key,
          name: `Capability ${key}`,
          unit: 'kg',
          attribute_schema: FABRIC_SCHEMA,
          required_certifications: requiredCertifications,
        },
      }),
      201,
    );
  }

  interface TestPartner {
    readonly id: string;
    readonly key: string;
  }

  /** A partner that applied and was approved: active, and (for workshops) within its rules. */
  async function activePartner(type = 'mill'): Promise<TestPartner> {
    const n = next();
    const applied = ok<{ partner: { id: string }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: type,
          name: `Partner ${n}`,
          email: `partner-${n}@example.test`,
          regions: ['eu-west'],
          ...(type === 'workshop' ? { accept_rules_version: 1 } : {}),
        },
      }),
      201,
    );
    const id = applied.partner.id;
    for (const to of ['under_review', 'active']) {
      ok(
        await app.request('POST', `/v1/partners/${id}/transitions`, {
          body: { to, reason: `Moved to ${to} by a test.` },
        }),
      );
    }
    return { id, key: applied.api_key.secret };
  }

  async function certify(partner: TestPartner, program: string): Promise<string> {
    const applied = ok<{ id: string }>(
      await app.request('POST', `/v1/partners/${partner.id}/certifications`, {
        key: partner.key,
        body: { program, evidence: { licence: `L-${next()}` } },
      }),
      201,
    );
    ok(await app.request('POST', `/v1/certifications/${applied.id}/grant`, { body: {} }));
    return applied.id;
  }

  interface OfferFields {
    capability: string;
    price?: string;
    minQuantity?: number;
    maxQuantity?: number;
    leadTimeHours?: number;
    regions?: string[];
    capacity?: number;
    attributes?: Record<string, unknown>;
  }

  async function createOffer(partner: TestPartner, fields: OfferFields): Promise<string> {
    const offer = ok<{ id: string }>(
      await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        key: partner.key,
        body: {
          capability: fields.capability,
          attributes: fields.attributes ?? { color: 'red', weight_gsm: 180 },
          unit_price: { amount: fields.price ?? '10.00', currency: 'EUR' },
          min_quantity: fields.minQuantity ?? 1,
          max_quantity: fields.maxQuantity ?? 100,
          lead_time_hours: fields.leadTimeHours ?? 24,
          regions: fields.regions ?? ['eu-west'],
          capacity_per_period: fields.capacity ?? 1000,
          capacity_period: 'week',
          status: 'active',
        },
      }),
      201,
    );
    return offer.id;
  }

  function demand(capability: string, fields: Record<string, unknown> = {}) {
    return { capability, region: 'eu-west', quantity: 10, needed_by: inHours(72), ...fields };
  }

  async function match(capability: string, fields: Record<string, unknown> = {}, key?: string) {
    return ok<MatchBody>(
      await app.request('POST', '/v1/matching/queries', {
        ...(key ? { key } : {}),
        body: demand(capability, fields),
      }),
    );
  }

  const offerIds = (body: MatchBody) => body.data.map((result) => result.offer_id);

  async function explain(capability: string, params: Record<string, string> = {}, key?: string) {
    const query = new URLSearchParams({
      capability,
      region: 'eu-west',
      quantity: '10',
      needed_by: inHours(72),
      ...params,
    });
    return app.request<ExplanationBody>('GET', `/v1/matching/explain?${query}`, key ? { key } : {});
  }

  async function exclusionsOf(capability: string, offerId: string, params: Record<string, string> = {}) {
    const body = ok<ExplanationBody>(await explain(capability, { offer_id: offerId, ...params }));
    expect(body.data).toHaveLength(1);
    return body.data[0]!.excluded.map((exclusion) => exclusion.filter);
  }

  async function allocate(capability: string, fields: Record<string, unknown> = {}) {
    return app.request<AllocationBody>('POST', '/v1/matching/allocations', {
      headers: { 'idempotency-key': `allocation-${next()}` },
      body: demand(capability, fields),
    });
  }

  async function putSettings(capability: string, body: Record<string, unknown>) {
    return ok<SettingsBody>(await app.request('PUT', `/v1/matching/settings/${capability}`, { body }));
  }

  /** Another process's matcher on the same database, its index built from it. */
  async function startAnotherMatcher() {
    const other = createMatchingService({
      db: app.baton.database.db,
      clock: app.clock,
      logger: pino({ level: 'silent' }),
      catalog: app.baton.services.catalog,
      standards: app.baton.services.standards,
      participants: app.baton.services.participants,
    });
    await other.start();
    return other;
  }

  const systemContext = (db: Context['db']): Context => ({
    db,
    actor: systemActor('test'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  it('matches only what passes every filter, and explains each exclusion by its filter', async () => {
    await defineCapability('dyeing', ['oeko-tex']);
    await defineCapability('overdyeing');
    const good = await activePartner();
    await certify(good, 'oeko-tex');
    const fine = await createOffer(good, { capability: 'dyeing' });
    const paused = await createOffer(good, { capability: 'dyeing' });
    ok(
      await app.request('POST', `/v1/offers/${paused}/status`, { key: good.key, body: { status: 'paused' } }),
    );
    const elsewhere = await createOffer(good, { capability: 'dyeing', regions: ['us-east'] });
    const bulkOnly = await createOffer(good, { capability: 'dyeing', minQuantity: 50, maxQuantity: 500 });
    const slow = await createOffer(good, { capability: 'dyeing', leadTimeHours: 96 });
    const blue = await createOffer(good, {
      capability: 'dyeing',
      attributes: { color: 'blue', weight_gsm: 180 },
    });
    const full = await createOffer(good, { capability: 'dyeing', capacity: 10 });
    ok(
      await app.request('POST', `/v1/offers/${full}/reservations`, {
        body: { quantity: 5, at: inHours(48), hold_minutes: 60 * 24 },
      }),
      201,
    );

    const suspended = await activePartner();
    await certify(suspended, 'oeko-tex');
    const ofSuspended = await createOffer(suspended, { capability: 'dyeing' });
    ok(
      await app.request('POST', `/v1/partners/${suspended.id}/transitions`, {
        body: { to: 'suspended', reason: 'Late deliveries.' },
      }),
    );
    const uncertified = await activePartner();
    const ofUncertified = await createOffer(uncertified, { capability: 'dyeing' });
    const lapsing = await activePartner('workshop');
    await certify(lapsing, 'oeko-tex');
    const ofLapsing = await createOffer(lapsing, { capability: 'dyeing' });

    await matching.sync();
    const before = await match('dyeing', { constraints: { color: { eq: 'red' } } });
    expect(offerIds(before).sort()).toEqual([fine, ofLapsing].sort());

    // New rules with no grace period: the workshop that has not accepted them stops taking work.
    ok(
      await app.request('POST', '/v1/partner-types/workshop/rules', {
        body: { title: 'Rules v2', body: 'Deliver on time, always.', grace_period_days: 0 },
      }),
      201,
    );
    await matching.sync();
    const after = await match('dyeing', { constraints: { color: { eq: 'red' } } });
    expect(offerIds(after)).toEqual([fine]);
    expect(after.candidates).toBe(1);

    // The work starts this week, where the full offer has 5 of its 10 units left.
    expect(offerIds(await match('dyeing', { quantity: 5 }))).toContain(full);
    expect(offerIds(await match('dyeing', { quantity: 6 }))).not.toContain(full);

    const explained: [string, string[], Record<string, string>?][] = [
      [paused, ['offer_not_active']],
      [elsewhere, ['region_not_served']],
      [bulkOnly, ['quantity_out_of_range']],
      [slow, ['lead_time_too_long']],
      [blue, ['attribute_mismatch'], { constraints: JSON.stringify({ color: { eq: 'red' } }) }],
      [full, ['capacity_exhausted']],
      [ofSuspended, ['partner_not_active']],
      [ofUncertified, ['certification_missing']],
      [ofLapsing, ['rules_not_accepted']],
    ];
    for (const [offerId, filters, params] of explained) {
      expect(await exclusionsOf('dyeing', offerId, params), offerId).toEqual(filters);
    }
    expect(await exclusionsOf('overdyeing', fine)).toEqual(['capability_mismatch']);

    // The whole explanation covers every offer of the capability in the region, ranked or not.
    const everything = ok<ExplanationBody>(await explain('dyeing'));
    expect(everything.candidates).toBe(everything.data.filter((row) => row.rank !== null).length);
    expect(everything.data.map((row) => row.offer_id).sort()).toEqual(
      [fine, paused, bulkOnly, slow, blue, full, ofSuspended, ofUncertified, ofLapsing].sort(),
    );
  });

  it('stops matching a non-compliant offer once a new capability version rejects it', async () => {
    await defineCapability('printing');
    const partner = await activePartner();
    const plain = await createOffer(partner, { capability: 'printing', attributes: { color: 'red' } });
    await matching.sync();
    expect(offerIds(await match('printing'))).toEqual([plain]);
    ok(
      await app.request('POST', '/v1/capabilities/printing/versions', {
        body: {
          attribute_schema: { ...FABRIC_SCHEMA, required: ['weight_gsm'] },
        },
      }),
      201,
    );
    await matching.sync();
    expect(offerIds(await match('printing'))).toEqual([]);
    expect(await exclusionsOf('printing', plain)).toEqual(['offer_not_active']);
  });

  it('ranks by price and lead time, and every score is the sum of its breakdown', async () => {
    await defineCapability('sewing');
    const [a, b, c] = [await activePartner(), await activePartner(), await activePartner()];
    const cheap = await createOffer(a, { capability: 'sewing', price: '8.00', leadTimeHours: 24 });
    const fast = await createOffer(b, { capability: 'sewing', price: '10.00', leadTimeHours: 12 });
    const dear = await createOffer(c, { capability: 'sewing', price: '12.00', leadTimeHours: 36 });
    await matching.sync();
    const answer = await match('sewing');
    expect(offerIds(answer)).toEqual([cheap, fast, dear]);
    expect(answer.candidates).toBe(3);
    for (const result of answer.data) {
      const sum =
        result.breakdown.criteria.reduce((total, part) => total + part.contribution, 0) +
        result.breakdown.adjustments.reduce((total, adjustment) => total + adjustment.score_delta, 0);
      expect(result.score).toBeCloseTo(sum, 12);
    }
    const first = answer.data[0]!;
    expect(first).toMatchObject({
      rank: 1,
      partner_id: a.id,
      unit_price: { amount: '8.00', currency: 'EUR' },
      lead_time_hours: 24,
      free_capacity: 1000,
      start_by: inHours(48),
    });
    expect(first.breakdown.strategy).toBe('weighted_sum');
    expect(first.breakdown.criteria.map((part) => [part.criterion, part.value, part.normalized])).toEqual([
      ['price', '8.00', 1],
      ['quality', 0.5, 0.5],
      ['reliability', 0.5, 0.5],
      ['lead_time', 24, 0.5],
      ['affinity', 0, 0],
    ]);

    // Weights per capability change the order: lead time first.
    const settings = await putSettings('sewing', {
      weights: { price: 0.1, quality: 0, reliability: 0, lead_time: 0.9, affinity: 0 },
    });
    expect(settings).toMatchObject({ capability: 'sewing', is_default: false, max_per_partner: 1 });
    await matching.sync();
    expect(offerIds(await match('sewing'))).toEqual([fast, cheap, dear]);
    expect(offerIds(await match('sewing', { limit: 1 }))).toEqual([fast]);
  });

  it('caps a dominant partner once it holds its share of recent allocations', async () => {
    await defineCapability('weaving');
    const dominant = await activePartner();
    const rival = await activePartner();
    const best = await createOffer(dominant, { capability: 'weaving', price: '5.00' });
    const second = await createOffer(rival, { capability: 'weaving', price: '9.00' });
    await putSettings('weaving', { exposure_cap: { share: 0.5, window_days: 30, min_allocations: 4 } });

    const winners: string[] = [];
    for (let n = 0; n < 6; n++) {
      await matching.sync();
      const allocation = ok<AllocationBody>(await allocate('weaving', { quantity: 1 }), 201);
      winners.push(allocation.offer_id);
    }
    // Four allocations to the cheapest offer, then its partner holds 4 of 4 and is capped; the
    // rival's two bring the share to 4 of 6, still over the cap.
    expect(winners).toEqual([best, best, best, best, second, second]);

    await matching.sync();
    const answer = await match('weaving');
    expect(offerIds(answer)).toEqual([second, best]);
    // (Every partner here is new, so each also carries the new-entrant boost.)
    expect(answer.data[1]?.breakdown.adjustments).toContainEqual({
      kind: 'exposure_cap',
      score_delta: 0,
      share: 4 / 6,
      cap: 0.5,
      partner_allocations: 4,
      window_allocations: 6,
      window_days: 30,
    });
    expect(answer.data[0]?.breakdown.adjustments.map((adjustment) => adjustment.kind)).toEqual([
      'new_entrant_boost',
    ]);
    // The capped partner's score is untouched: it is moved down, not penalised.
    expect(answer.data[1]!.score).toBeGreaterThan(answer.data[0]!.score as number);

    // Each allocation holds capacity, is audited once, and is announced to the partner.
    const allocation = ok<AllocationBody>(
      await allocate('weaving', { quantity: 2, reference: 'order-77' }),
      201,
    );
    expect(allocation).toMatchObject({
      object: 'allocation',
      offer_id: second,
      partner_id: rival.id,
      quantity: 2,
      reference: 'order-77',
      reservation: { offer_id: second, quantity: 2, status: 'held', reference: 'order-77' },
      skipped: [],
    });
    const db = app.baton.database.db;
    const audits = await db
      .selectFrom('audit_records')
      .select(['action', 'outcome'])
      .where('target_id', '=', allocation.id)
      .execute();
    expect(audits).toEqual([{ action: 'matching.allocation.create', outcome: 'succeeded' }]);
    // Read from the table: the feed may hold an event back while other transactions run.
    const events = await db
      .selectFrom('events')
      .select(['type', 'audience', 'data'])
      .where('subject_id', '=', allocation.id)
      .execute();
    expect(events).toEqual([
      {
        type: 'matching.allocated',
        audience: [rival.id],
        data: expect.objectContaining({ offer_id: second, partner_id: rival.id, quantity: 2 }),
      },
    ]);

    // A new process rebuilds the same index from the database, allocations included.
    const fresh = await startAnotherMatcher();
    try {
      await matching.sync();
      const request = {
        capability: 'weaving',
        region: 'eu-west',
        quantity: 10,
        neededBy: new Date(inHours(72)),
        limit: 10,
      };
      const ctx = systemContext(db);
      expect(await fresh.query(ctx, request)).toEqual(await matching.query(ctx, request));
      expect((await fresh.query(ctx, request)).results.map((result) => result.offerId)).toEqual([
        second,
        best,
      ]);
    } finally {
      await fresh.stop();
    }
  });

  it('never allocates from a stale index what the database refuses: it moves on, or says there is no candidate', async () => {
    await defineCapability('cutting');
    const first = await activePartner();
    const second = await activePartner();
    const best = await createOffer(first, { capability: 'cutting', price: '5.00', capacity: 20 });
    const next = await createOffer(second, { capability: 'cutting', price: '9.00', capacity: 20 });
    const db = app.baton.database.db;
    // A process whose index stopped following the log: everything after this is news to it.
    const stale = await startAnotherMatcher();
    await stale.stop();

    const takeAll = (offerId: string) =>
      runInTransaction(db, (tx) =>
        app.baton.services.catalog.reserve(systemContext(tx), {
          offerId: offerId as OfferId,
          quantity: 20n,
          at: new Date(inHours(48)),
          holdMinutes: 60,
        }),
      );
    await takeAll(best);
    const request = {
      capability: 'cutting',
      region: 'eu-west',
      quantity: 5,
      neededBy: new Date(inHours(72)),
      holdMinutes: 30,
    };
    // The stale index still ranks the exhausted offer first...
    const staleAnswer = await stale.query(systemContext(db), { ...request, limit: 10 });
    expect(staleAnswer.results.map((result) => result.offerId)).toEqual([best, next]);
    // ...but the allocation goes to the next offer, and says why it skipped the first.
    const outcome = await runInTransaction(db, (tx) => stale.allocate(systemContext(tx), request));
    expect(outcome.allocation.offerId).toBe(next);
    expect(outcome.allocation.skipped).toEqual([{ offerId: best, code: 'catalog.capacity_exceeded' }]);
    // The refusal taught the stale index that the first offer is full.
    expect(
      (await stale.query(systemContext(db), { ...request, limit: 10 })).results.map((r) => r.offerId),
    ).toEqual([next]);
    // The database holds exactly the two reservations: none was made on the exhausted offer.
    const reservations = await db
      .selectFrom('reservations')
      .select(['offer_id', 'quantity'])
      .where('offer_id', 'in', [best, next])
      .where('status', '=', 'held')
      .orderBy('offer_id')
      .execute();
    expect(new Map(reservations.map((row) => [row.offer_id, row.quantity]))).toEqual(
      new Map([
        [best, 20n],
        [next, 5n],
      ]),
    );

    // With both exhausted behind its back, the stale index has no candidate the database accepts.
    await runInTransaction(db, (tx) =>
      app.baton.services.catalog.reserve(systemContext(tx), {
        offerId: next as OfferId,
        quantity: 15n,
        at: new Date(inHours(48)),
        holdMinutes: 60,
      }),
    );
    const refused = await runInTransaction(db, (tx) => stale.allocate(systemContext(tx), request)).catch(
      (error: unknown) => error,
    );
    expect(isDomainError(refused)).toBe(true);
    expect(refused as DomainError).toMatchObject({
      kind: 'conflict',
      code: 'matching.no_candidate',
      details: { attempts: [{ offer_id: next, code: 'catalog.capacity_exceeded' }] },
    });

    // Through the API, the live index agrees once it caught up: 409, nothing to try.
    await matching.sync();
    expectProblem(await allocate('cutting', { quantity: 5 }), 409, 'matching.no_candidate');
    const count = await db
      .selectFrom('allocations')
      .select((eb) => eb.fn.countAll<bigint>().as('count'))
      .where('capability', '=', 'cutting')
      .executeTakeFirstOrThrow();
    expect(Number(count.count)).toBe(1);
  });

  it('allocates several pieces of demand at once, all or none, and learns from a refused hold', async () => {
    await defineCapability('bundling');
    const first = await activePartner();
    const second = await activePartner();
    const best = await createOffer(first, { capability: 'bundling', price: '5.00', capacity: 20 });
    const next = await createOffer(second, { capability: 'bundling', price: '9.00', capacity: 20 });
    const db = app.baton.database.db;
    const stale = await startAnotherMatcher();
    await stale.stop();
    await runInTransaction(db, (tx) =>
      app.baton.services.catalog.reserve(systemContext(tx), {
        offerId: best as OfferId,
        quantity: 20n,
        at: new Date(inHours(48)),
        holdMinutes: 60,
      }),
    );
    const request = {
      capability: 'bundling',
      region: 'eu-west',
      quantity: 5,
      neededBy: new Date(inHours(72)),
      holdMinutes: 30,
      reference: 'batch-1',
    };
    const [top, runnerUp] = await stale.candidates(systemContext(db), request);
    expect([top?.offerId, runnerUp?.offerId]).toEqual([best, next]);

    // The first hold is refused: nothing of the batch stays, not even what the caller wrote meanwhile.
    let planned: readonly { reservationId: string }[] = [];
    const refused = await runInTransaction(db, (tx) =>
      stale.allocateAll(
        systemContext(tx),
        [
          { request, result: top as MatchResult },
          { request, result: runnerUp as MatchResult },
        ],
        async (ids) => {
          planned = ids;
          await appendEvent(systemContext(tx), {
            type: 'test.written',
            subjectId: 'batch-1',
            data: {},
            audience: [],
          });
        },
      ),
    );
    expect(refused).toEqual({
      allocated: false,
      refused: [{ index: 0, offerId: best, code: 'catalog.capacity_exceeded' }],
    });
    expect(planned).toHaveLength(2);
    const written = async () => ({
      allocations: await db
        .selectFrom('allocations')
        .select('offer_id')
        .where('reference', '=', 'batch-1')
        .execute(),
      events: await db.selectFrom('events').select('type').where('subject_id', '=', 'batch-1').execute(),
      held: await db
        .selectFrom('reservations')
        .select('offer_id')
        .where(
          'id',
          'in',
          planned.map((entry) => entry.reservationId),
        )
        .execute(),
    });
    expect(await written()).toEqual({ allocations: [], events: [], held: [] });
    // The refusal taught the index that the first offer is full.
    expect((await stale.candidates(systemContext(db), request)).map((result) => result.offerId)).toEqual([
      next,
    ]);

    const [only] = await stale.candidates(systemContext(db), request);
    const allocated = await runInTransaction(db, (tx) =>
      stale.allocateAll(systemContext(tx), [
        {
          request,
          result: only as MatchResult,
          skipped: [{ offerId: best, code: 'catalog.capacity_exceeded' }],
        },
      ]),
    );
    expect(allocated.allocated).toBe(true);
    if (!allocated.allocated) return;
    const [outcome] = allocated.outcomes;
    expect(outcome?.allocation).toMatchObject({ offerId: next, reservationId: outcome?.reservation.id });
    expect(outcome?.reservation).toMatchObject({ offerId: next, quantity: 5n, status: 'held' });
    const stored = await db
      .selectFrom('allocations')
      .select(['offer_id', 'reservation_id', 'skipped'])
      .where('reference', '=', 'batch-1')
      .execute();
    expect(stored).toEqual([
      {
        offer_id: next,
        reservation_id: outcome?.reservation.id,
        skipped: [{ offer_id: best, code: 'catalog.capacity_exceeded' }],
      },
    ]);
  });

  it("keeps an offer's booked capacity through changes of its terms, as the database does", async () => {
    await defineCapability('blocking');
    const partner = await activePartner();
    const offer = await createOffer(partner, { capability: 'blocking', capacity: 20 });
    const db = app.baton.database.db;
    const reservation = await runInTransaction(db, (tx) =>
      app.baton.services.catalog.reserve(systemContext(tx), {
        offerId: offer as OfferId,
        quantity: 15n,
        at: new Date(inHours(48)),
        holdMinutes: 60,
      }),
    );
    await matching.sync();
    expect(offerIds(await match('blocking', { quantity: 10 }))).toEqual([]);
    // New terms do not free the booked units: the reservation belongs to the offer.
    ok(
      await app.request('PATCH', `/v1/offers/${offer}`, {
        key: partner.key,
        body: { unit_price: { amount: '8.00', currency: 'EUR' }, max_quantity: 50 },
      }),
    );
    await matching.sync();
    expect(offerIds(await match('blocking', { quantity: 10 }))).toEqual([]);
    expect(offerIds(await match('blocking', { quantity: 5 }))).toEqual([offer]);
    expect(await exclusionsOf('blocking', offer)).toEqual(['capacity_exhausted']);
    // The catalog keeps the period kind while units are booked, so the index never has to guess.
    expectProblem(
      await app.request('PATCH', `/v1/offers/${offer}`, {
        key: partner.key,
        body: { capacity_period: 'day' },
      }),
      422,
      'catalog.offer_invalid',
    );
    await runInTransaction(db, (tx) =>
      app.baton.services.catalog.releaseReservation(systemContext(tx), reservation.id),
    );
    await matching.sync();
    expect(offerIds(await match('blocking', { quantity: 10 }))).toEqual([offer]);
  });

  it('lets no partner crowd the top results with several offers', async () => {
    await defineCapability('pleating');
    const [a, b, c] = [await activePartner(), await activePartner(), await activePartner()];
    const mine = [
      await createOffer(a, { capability: 'pleating', price: '5.00' }),
      await createOffer(a, { capability: 'pleating', price: '5.10' }),
      await createOffer(a, { capability: 'pleating', price: '5.20' }),
    ];
    const theirs = await createOffer(b, { capability: 'pleating', price: '8.00' });
    const third = await createOffer(c, { capability: 'pleating', price: '9.00' });
    await matching.sync();
    expect(offerIds(await match('pleating', { limit: 3 }))).toEqual([mine[0], theirs, third]);
    const all = await match('pleating');
    expect(offerIds(all)).toEqual([mine[0], theirs, third, mine[1], mine[2]]);
    expect(all.data[3]?.breakdown.adjustments).toContainEqual({
      kind: 'diversity',
      score_delta: 0,
      max_per_partner: 1,
    });
    expect(all.data[2]?.breakdown.adjustments.map((adjustment) => adjustment.kind)).not.toContain(
      'diversity',
    );
    await putSettings('pleating', { max_per_partner: 2 });
    await matching.sync();
    expect(offerIds(await match('pleating', { limit: 3 }))).toEqual([mine[0], mine[1], theirs]);
  });

  it('follows changes to offers and partners as they happen', async () => {
    await defineCapability('folding');
    const partner = await activePartner();
    const rival = await activePartner();
    const offer = await createOffer(partner, { capability: 'folding', price: '5.00' });
    const other = await createOffer(rival, { capability: 'folding', price: '7.00' });
    await matching.sync();
    expect(offerIds(await match('folding'))).toEqual([offer, other]);

    ok(
      await app.request('PATCH', `/v1/offers/${offer}`, {
        key: partner.key,
        body: { unit_price: { amount: '9.00', currency: 'EUR' } },
      }),
    );
    await matching.sync();
    expect(offerIds(await match('folding'))).toEqual([other, offer]);

    ok(
      await app.request('POST', `/v1/offers/${other}/status`, { key: rival.key, body: { status: 'paused' } }),
    );
    await matching.sync();
    expect(offerIds(await match('folding'))).toEqual([offer]);

    ok(
      await app.request('POST', `/v1/partners/${partner.id}/transitions`, {
        body: { to: 'suspended', reason: 'Investigation.' },
      }),
    );
    await matching.sync();
    expect(offerIds(await match('folding'))).toEqual([]);
    ok(
      await app.request('POST', `/v1/partners/${partner.id}/transitions`, {
        body: { to: 'probation', reason: 'Back, on probation.' },
      }),
    );
    await matching.sync();
    expect(offerIds(await match('folding'))).toEqual([offer]);
  });

  it('shows each caller what it may see', async () => {
    await defineCapability('hemming');
    const mine = await activePartner();
    const theirs = await activePartner();
    const myOffer = await createOffer(mine, { capability: 'hemming', price: '9.00' });
    const theirOffer = await createOffer(theirs, { capability: 'hemming', price: '5.00' });
    const myPaused = await createOffer(mine, { capability: 'hemming' });
    ok(
      await app.request('POST', `/v1/offers/${myPaused}/status`, {
        key: mine.key,
        body: { status: 'paused' },
      }),
    );
    await matching.sync();

    // A partner sees its own rows only, with their rank among everyone's offers.
    const own = ok<ExplanationBody>(await explain('hemming', {}, mine.key));
    expect(own.candidates).toBe(2);
    expect(own.data.map((row) => [row.offer_id, row.rank])).toEqual([
      [myOffer, 2],
      [myPaused, null],
    ]);
    expect(JSON.stringify(own)).not.toContain(theirOffer);
    expect(JSON.stringify(own)).not.toContain(theirs.id);
    // Another partner's offer, or another partner, answers like one that does not exist.
    const asked = await explain('hemming', { offer_id: theirOffer }, mine.key);
    const missing = await explain('hemming', { offer_id: newId('off') }, mine.key);
    expectProblem(asked, 404, 'matching.offer_not_found');
    expect(asked.status).toBe(missing.status);
    expectProblem(
      await explain('hemming', { partner_id: theirs.id }, mine.key),
      404,
      'matching.partner_not_found',
    );
    // Operators see every row.
    expect(ok<ExplanationBody>(await explain('hemming')).data).toHaveLength(3);
    // Partners do not query, customers do not read explanations.
    expectProblem(
      await app.request('POST', '/v1/matching/queries', { key: mine.key, body: demand('hemming') }),
      403,
      'auth.role_not_allowed',
    );

    // A customer queries for itself; another customer's id is as unknown as a missing one.
    const signUp = async () => {
      const n = next();
      return ok<{ customer: { id: string }; api_key: { secret: string } }>(
        await app.request('POST', '/v1/customer-signups', {
          key: null,
          body: { kind: 'consumer', name: `Customer ${n}`, email: `customer-${n}@example.test` },
        }),
        201,
      );
    };
    const carol = await signUp();
    const dave = await signUp();
    const carols = await match('hemming', {}, carol.api_key.secret);
    expect(offerIds(carols)).toEqual([theirOffer, myOffer]);
    // Partners' prices are not the customer's to see: neither the price, nor the price criterion,
    // nor the score that would tell its contribution. The operator sees all three.
    for (const result of carols.data) {
      expect(result.unit_price).toBeNull();
      expect(result.score).toBeNull();
      expect(result.breakdown.criteria.map((part) => part.criterion)).not.toContain('price');
      expect(result.breakdown.criteria.length).toBeGreaterThan(0);
    }
    const operators = await match('hemming', {});
    expect(offerIds(operators)).toEqual([theirOffer, myOffer]);
    expect(operators.data[0]?.unit_price).not.toBeNull();
    expect(operators.data[0]?.score).toEqual(expect.any(Number));
    expect(operators.data[0]?.breakdown.criteria.map((part) => part.criterion)).toContain('price');
    expect(
      offerIds(await match('hemming', { customer_id: carol.customer.id }, carol.api_key.secret)),
    ).toHaveLength(2);
    const other = await app.request('POST', '/v1/matching/queries', {
      key: carol.api_key.secret,
      body: demand('hemming', { customer_id: dave.customer.id }),
    });
    const nobody = await app.request('POST', '/v1/matching/queries', {
      key: carol.api_key.secret,
      body: demand('hemming', { customer_id: newId('cus') }),
    });
    expectProblem(other, 404, 'participants.customer_not_found');
    expect((other.body as Problem).detail?.replace(dave.customer.id, '<id>')).toBe(
      (nobody.body as Problem).detail?.replace(/cus_[0-9a-z]+/, '<id>'),
    );
    expectProblem(await explain('hemming', {}, carol.api_key.secret), 403, 'auth.role_not_allowed');
  });

  it('refuses unknown capabilities and attributes, and malformed constraints, with the reason', async () => {
    await defineCapability('ironing');
    expectProblem(
      await app.request('POST', '/v1/matching/queries', { body: demand('no-such-thing') }),
      404,
      'standards.capability_not_found',
    );
    const unknown = expectProblem(
      await app.request('POST', '/v1/matching/queries', {
        body: demand('ironing', { constraints: { colour: { eq: 'red' } } }),
      }),
      422,
      'matching.constraints_invalid',
    );
    expect(unknown.errors).toEqual([
      { path: '/constraints/colour', rule: 'known_attribute', message: 'ironing has no attribute colour' },
    ]);
    expectProblem(
      await app.request('POST', '/v1/matching/queries', {
        body: demand('ironing', { constraints: { color: {} } }),
      }),
      400,
      'request.invalid',
    );
    expectProblem(
      await explain('ironing', { constraints: '{not json' }),
      400,
      'matching.constraints_malformed',
    );
    expectProblem(
      await app.request('POST', '/v1/matching/queries', { body: demand('ironing', { quantity: 1.5 }) }),
      400,
      'request.invalid',
    );
  });

  it('keeps settings per capability, with defaults, audited changes and checked values', async () => {
    await defineCapability('steaming', ['steam-safety']);
    const defaults = ok<SettingsBody>(await app.request('GET', '/v1/matching/settings/steaming'));
    expect(defaults).toEqual({
      object: 'matching_settings',
      capability: 'steaming',
      weights: { price: 0.35, quality: 0.2, reliability: 0.2, lead_time: 0.15, affinity: 0.1 },
      exposure_cap: { share: 0.5, window_days: 30, min_allocations: 10 },
      new_entrant: { boost: 0.1, days: 30 },
      max_per_partner: 1,
      is_default: true,
      updated_at: null,
    });
    expectProblem(
      await app.request('GET', '/v1/matching/settings/no-such-thing'),
      404,
      'standards.capability_not_found',
    );
    expectProblem(
      await app.request('PUT', '/v1/matching/settings/steaming', {
        body: { weights: { price: 0, quality: 0, reliability: 0, lead_time: 0, affinity: 0 } },
      }),
      422,
      'matching.settings_invalid',
    );
    expectProblem(
      await app.request('PUT', '/v1/matching/settings/steaming', { body: { exposure_cap: { share: 1.5 } } }),
      400,
      'request.invalid',
    );
    const opsKey = await app.operatorKey('ops');
    expectProblem(
      await app.request('PUT', '/v1/matching/settings/steaming', { key: opsKey, body: {} }),
      403,
      'auth.role_not_allowed',
    );
    const saved = await putSettings('steaming', { new_entrant: { boost: 0.5, days: 10 } });
    expect(saved).toMatchObject({
      is_default: false,
      new_entrant: { boost: 0.5, days: 10 },
      max_per_partner: 1,
    });
    expect(
      ok<SettingsBody>(await app.request('GET', '/v1/matching/settings/steaming', { key: opsKey })),
    ).toEqual(saved);
    const listed = ok<{ data: SettingsBody[] }>(await app.request('GET', '/v1/matching/settings'));
    expect(listed.data.map((settings) => settings.capability)).toContain('steaming');
    const audits = await app.baton.database.db
      .selectFrom('audit_records')
      .select(['outcome', 'error_code'])
      .where('action', '=', 'matching.settings.update')
      .where('target_id', '=', 'steaming')
      .orderBy('seq')
      .execute();
    expect(audits).toEqual([
      { outcome: 'failed', error_code: 'matching.settings_invalid' },
      { outcome: 'denied', error_code: 'auth.role_not_allowed' },
      { outcome: 'succeeded', error_code: null },
    ]);
  });

  it('documents the matching routes in the OpenAPI document', async () => {
    const document = ok<{ paths: Record<string, Record<string, { tags: string[] }>> }>(
      await app.request('GET', '/openapi.json', { key: null }),
    );
    for (const [path, method] of [
      ['/v1/matching/queries', 'post'],
      ['/v1/matching/explain', 'get'],
      ['/v1/matching/allocations', 'post'],
      ['/v1/matching/settings/{capability}', 'put'],
    ] as const) {
      expect(document.paths[path]?.[method]?.tags, path).toEqual(['Matching']);
    }
  });

  // The tests below move the clock forward; they come last so that the others see today.

  it('boosts a new entrant for the configured number of days after it became active', async () => {
    await defineCapability('knitting');
    await putSettings('knitting', { new_entrant: { boost: 0.5, days: 10 } });
    const incumbent = await activePartner();
    const incumbentOffer = await createOffer(incumbent, { capability: 'knitting', price: '5.00' });
    app.clock.advance(11 * DAY_MS);
    const newcomer = await activePartner();
    const newcomerOffer = await createOffer(newcomer, { capability: 'knitting', price: '8.00' });
    await matching.sync();
    const answer = await match('knitting');
    expect(offerIds(answer)).toEqual([newcomerOffer, incumbentOffer]);
    expect(answer.data[0]?.breakdown.adjustments).toEqual([
      {
        kind: 'new_entrant_boost',
        score_delta: 0.5,
        until: new Date(app.clock.now().getTime() + 10 * DAY_MS).toISOString(),
      },
    ]);
    app.clock.advance(9 * DAY_MS);
    expect(offerIds(await match('knitting'))).toEqual([newcomerOffer, incumbentOffer]);
    app.clock.advance(DAY_MS);
    expect(offerIds(await match('knitting'))).toEqual([incumbentOffer, newcomerOffer]);
  });

  it('stops matching a partner whose certification expired, and matches it again once renewed', async () => {
    const partner = await activePartner();
    await certify(partner, 'steam-safety');
    const offer = await createOffer(partner, { capability: 'steaming' });
    await matching.sync();
    expect(offerIds(await match('steaming'))).toEqual([offer]);
    app.clock.advance(10 * DAY_MS);
    // Expired by time, before any job has swept it.
    expect(offerIds(await match('steaming'))).toEqual([]);
    expect(await exclusionsOf('steaming', offer)).toEqual(['certification_missing']);
    await runInTransaction(app.baton.database.db, (tx) =>
      app.baton.services.standards.expireCertifications(systemContext(tx)),
    );
    await certify(partner, 'steam-safety');
    await matching.sync();
    expect(offerIds(await match('steaming'))).toEqual([offer]);
  });

  it('counts an allocation towards the exposure cap only while its capacity is held or used, also after a restart', async () => {
    await defineCapability('crochet');
    const dominant = await activePartner();
    const rival = await activePartner();
    const best = await createOffer(dominant, { capability: 'crochet', price: '5.00' });
    const second = await createOffer(rival, { capability: 'crochet', price: '9.00' });
    await matching.sync();
    // Two quotes' holds on the cheapest offer, made while the cap was off.
    await putSettings('crochet', { exposure_cap: { share: 1, window_days: 30, min_allocations: 1 } });
    const released = ok<AllocationBody>(await allocate('crochet', { quantity: 1, hold_minutes: 30 }), 201);
    const lapsing = ok<AllocationBody>(await allocate('crochet', { quantity: 1, hold_minutes: 5 }), 201);
    expect([released.offer_id, lapsing.offer_id]).toEqual([best, best]);
    await putSettings('crochet', { exposure_cap: { share: 0.5, window_days: 30, min_allocations: 1 } });
    const capOf = (answer: MatchBody) =>
      answer.data
        .find((result) => result.offer_id === best)
        ?.breakdown.adjustments.find((adjustment) => adjustment.kind === 'exposure_cap');
    await matching.sync();
    expect(capOf(await match('crochet'))).toMatchObject({ partner_allocations: 2, window_allocations: 2 });

    // The first quote is never ordered: its hold is released, and its allocation stops counting.
    const db = app.baton.database.db;
    await runInTransaction(db, (tx) =>
      app.baton.services.catalog.releaseReservation(systemContext(tx), released.reservation.id as never),
    );
    await matching.sync();
    expect(capOf(await match('crochet'))).toMatchObject({ partner_allocations: 1, window_allocations: 1 });

    // A new process counts the same from the database.
    const fresh = await startAnotherMatcher();
    try {
      const request = {
        capability: 'crochet',
        region: 'eu-west',
        quantity: 1,
        neededBy: new Date(inHours(72)),
      };
      const { results } = await fresh.query(systemContext(db), { ...request, limit: 10 });
      expect(results.map((result) => result.offerId)).toEqual([second, best]);
      expect(results[1]?.breakdown.adjustments).toContainEqual(
        expect.objectContaining({ kind: 'exposure_cap', partnerAllocations: 1, windowAllocations: 1 }),
      );
    } finally {
      await fresh.stop();
    }

    // The second lapses: nothing counts, and the cheapest offer leads again, from the moment its
    // time runs out and once the sweep has expired it.
    app.clock.advance(10 * 60 * 1000);
    const lapsed = await match('crochet', { needed_by: inHours(72) });
    expect(offerIds(lapsed)).toEqual([best, second]);
    expect(capOf(lapsed)).toBeUndefined();
    await runInTransaction(db, (tx) => app.baton.services.catalog.expireHolds(systemContext(tx)));
    await matching.sync();
    const answer = await match('crochet', { needed_by: inHours(72) });
    expect(offerIds(answer)).toEqual([best, second]);
    expect(capOf(answer)).toBeUndefined();
  });

  it('stops counting a hold the moment it lapses, before the sweep expires it, also after a restart', async () => {
    await defineCapability('quilting');
    const small = await createOffer(await activePartner(), {
      capability: 'quilting',
      price: '5.00',
      capacity: 10,
    });
    const roomy = await createOffer(await activePartner(), { capability: 'quilting', price: '9.00' });
    await matching.sync();
    // A quote holds the cheaper offer's whole week for five minutes.
    const quoted = ok<AllocationBody>(await allocate('quilting', { hold_minutes: 5 }), 201);
    expect(quoted.offer_id).toBe(small);
    await matching.sync();
    expect(offerIds(await match('quilting'))).toEqual([roomy]);
    expect(await exclusionsOf('quilting', small)).toEqual(['capacity_exhausted']);

    // Its time runs out. The sweep has not run, so the database still counts the hold...
    app.clock.advance(5 * 60 * 1000);
    const db = app.baton.database.db;
    const counted = () =>
      db
        .selectFrom('capacity_counters')
        .select('reserved')
        .where('offer_id', '=', small as OfferId)
        .execute()
        .then((rows) => rows.map((row) => row.reserved));
    expect(await counted()).toEqual([10n]);
    // ...but the index no longer does, in this process and in one that starts now.
    expect(offerIds(await match('quilting'))).toEqual([small, roomy]);
    expect(await exclusionsOf('quilting', small)).toEqual([]);
    const fresh = await startAnotherMatcher();
    try {
      const { results } = await fresh.query(systemContext(db), {
        capability: 'quilting',
        region: 'eu-west',
        quantity: 10,
        neededBy: new Date(inHours(72)),
        limit: 10,
      });
      expect(results.map((result) => result.offerId)).toEqual([small, roomy]);
    } finally {
      await fresh.stop();
    }

    // The database agrees: the next hold on that offer expires the lapsed one on its way.
    const next = ok<AllocationBody>(await allocate('quilting', { hold_minutes: 5 }), 201);
    expect(next.offer_id).toBe(small);
    expect(await counted()).toEqual([10n]);
    const statuses = await db
      .selectFrom('reservations')
      .select(['id', 'status'])
      .where('offer_id', '=', small as OfferId)
      .execute();
    expect(new Map(statuses.map((row) => [row.id, row.status]))).toEqual(
      new Map([
        [quoted.reservation.id, 'expired'],
        [next.reservation.id, 'held'],
      ]),
    );
    await matching.sync();
    expect(offerIds(await match('quilting'))).toEqual([roomy]);
  });
});
