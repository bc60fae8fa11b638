import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { Problem } from '../../kernel/http/problem.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { OfferJson } from './http/json.js';

type OfferBody = z.output<typeof OfferJson>;
type Page<T> = { data: T[]; has_more: boolean; next_after: string | null };
type ImportBody = {
  results: { index: number; status: string; offer_id?: string; errors?: Problem['errors'] }[];
  created: number;
  updated: number;
  rejected: number;
};

const FABRIC_SCHEMA = {
  type: 'object',
  properties: {
    material: { type: 'string', enum: ['cotton', 'linen', 'wool'] },
    weight_gsm: { type: 'integer', minimum: 50, maximum: 600 },
  },
  required: ['material'],
  additionalProperties: false,
};

/** A valid offer for the `fabric` capability; tests change one field at a time. */
function fabricOffer(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    capability: 'fabric',
    attributes: { material: 'cotton', weight_gsm: 180 },
    unit_price: { amount: '12.50', currency: 'EUR' },
    min_quantity: 10,
    max_quantity: 1000,
    lead_time_hours: 48,
    regions: ['eu-west'],
    capacity_per_period: 5000,
    capacity_period: 'week',
    ...fields,
  };
}

describe('offers through the HTTP API', async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  const db = app.baton.database.db;
  let sequence = 0;

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }

  function ok<T>(response: ApiResponse<unknown>, status = 200): T {
    expect(response.status, response.text).toBe(status);
    return response.body as T;
  }

  async function apply(): Promise<{ id: string; key: string }> {
    const n = ++sequence;
    const applied = ok<{ partner: { id: string }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'mill',
          name: `Mill ${n}`,
          email: `mill-${n}@partner.test`,
          regions: ['eu-west'],
        },
      }),
      201,
    );
    return { id: applied.partner.id, key: applied.api_key.secret };
  }

  async function signUp(): Promise<string> {
    const n = ++sequence;
    return ok<{ api_key: { secret: string } }>(
      await app.request('POST', '/v1/customer-signups', {
        key: null,
        body: { kind: 'business', name: `Buyer ${n}`, email: `buyer-${n}@customer.test` },
      }),
      201,
    ).api_key.secret;
  }

  async function createOffer(partner: { id: string; key: string }, fields: Record<string, unknown> = {}) {
    return ok<OfferBody>(
      await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        key: partner.key,
        body: fabricOffer(fields),
      }),
      201,
    );
  }

  async function offerCount(): Promise<number> {
    const { rows } = await sql<{ count: string }>`select count(*)::text as count from offers`.execute(db);
    return Number(rows[0]?.count);
  }

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'mill', name: 'Mill', profile_schema: { type: 'object' } },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/capabilities', {
      body: {
        key: 'fabric',
        name: 'Fabric',
        unit: 'metre',
        attribute_schema: FABRIC_SCHEMA,
        service_levels: { max_lead_time_hours: 240 },
      },
    }),
    201,
  );

  describe('creating offers', async () => {
    it('stores a valid offer as a draft, with its price in minor units shown as a decimal string', async () => {
      const partner = await apply();
      const offer = await createOffer(partner, { external_ref: 'COT-180' });
      expect(offer).toMatchObject({
        object: 'offer',
        partner_id: partner.id,
        capability: 'fabric',
        capability_version: 1,
        external_ref: 'COT-180',
        attributes: { material: 'cotton', weight_gsm: 180 },
        unit_price: { amount: '12.50', currency: 'EUR' },
        min_quantity: 10,
        max_quantity: 1000,
        lead_time_hours: 48,
        regions: ['eu-west'],
        capacity_per_period: 5000,
        capacity_period: 'week',
        status: 'draft',
        compliance_errors: [],
      });
      expect(offer.id).toMatch(/^off_/);
      const stored = await db
        .selectFrom('offers')
        .select(['unit_price_minor', 'currency'])
        .where('id', '=', offer.id)
        .executeTakeFirstOrThrow();
      expect(stored).toEqual({ unit_price_minor: 1250n, currency: 'EUR' });
      expect(ok<OfferBody>(await app.request('GET', `/v1/offers/${offer.id}`, { key: partner.key }))).toEqual(
        offer,
      );
    });

    it('creates an offer active at once when asked, and tells the partner with an event', async () => {
      const partner = await apply();
      const offer = await createOffer(partner, { status: 'active' });
      expect(offer.status).toBe('active');
      const events = await db
        .selectFrom('events')
        .select(['type', 'audience', 'data'])
        .where('subject_id', '=', offer.id)
        .execute();
      expect(events).toEqual([{ type: 'offer.created', audience: [partner.id], data: { offer } }]);
    });

    it('reports every invalid field of an offer at once, by path and rule, and stores nothing', async () => {
      const partner = await apply();
      const before = await offerCount();
      const response = await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        key: partner.key,
        body: fabricOffer({
          attributes: { material: 'silk', weight_gsm: 20, colour: 'red' },
          unit_price: { amount: '12.505', currency: 'EUR' },
          min_quantity: 500,
          max_quantity: 100,
          lead_time_hours: 300,
          regions: ['eu-west', 'EU West', 'eu-west'],
        }),
      });
      const problem = expectProblem(response, 422, 'catalog.offer_invalid');
      const byPath = Object.fromEntries((problem.errors ?? []).map((error) => [error.path, error.rule]));
      expect(byPath).toEqual({
        '/attributes/material': 'enum',
        '/attributes/weight_gsm': 'minimum',
        '/attributes/colour': 'additionalProperties',
        '/unit_price/amount': 'precision',
        '/max_quantity': 'minimum',
        '/lead_time_hours': 'maximum',
        '/regions/1': 'pattern',
        '/regions/2': 'uniqueItems',
      });
      for (const error of problem.errors ?? []) expect(error.message.length).toBeGreaterThan(0);
      expect(await offerCount()).toBe(before);
    });

    it('refuses money with more decimals than its currency has, or a currency that is not ISO 4217', async () => {
      const partner = await apply();
      const cases: [Record<string, string>, string, string][] = [
        [{ amount: '1.5', currency: 'JPY' }, '/unit_price/amount', 'precision'],
        [{ amount: '1.0005', currency: 'BHD' }, '/unit_price/amount', 'precision'],
        [{ amount: '12,50', currency: 'EUR' }, '/unit_price/amount', 'format'],
        [{ amount: '-1.00', currency: 'EUR' }, '/unit_price/amount', 'minimum'],
        [{ amount: '12.50', currency: 'EURO' }, '/unit_price/currency', 'currency'],
        [{ amount: '12.50', currency: 'XTS' }, '/unit_price/currency', 'currency'],
      ];
      for (const [price, path, rule] of cases) {
        const response = await app.request('POST', `/v1/partners/${partner.id}/offers`, {
          key: partner.key,
          body: fabricOffer({ unit_price: price }),
        });
        expect(expectProblem(response, 422, 'catalog.offer_invalid').errors, JSON.stringify(price)).toEqual([
          { path, rule, message: expect.any(String) },
        ]);
      }
      const yen = await createOffer(partner, { unit_price: { amount: '1500', currency: 'JPY' } });
      expect(yen.unit_price).toEqual({ amount: '1500', currency: 'JPY' });
      const dinar = await createOffer(partner, { unit_price: { amount: '2.125', currency: 'BHD' } });
      expect(dinar.unit_price).toEqual({ amount: '2.125', currency: 'BHD' });
    });

    it('names an unknown capability as the field in error', async () => {
      const partner = await apply();
      const response = await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        key: partner.key,
        body: fabricOffer({ capability: 'no-such-capability' }),
      });
      expect(expectProblem(response, 422, 'catalog.offer_invalid').errors).toEqual([
        { path: '/capability', rule: 'exists', message: expect.any(String) },
      ]);
    });

    it('answers malformed offers with a report per field, never a 500', async () => {
      const partner = await apply();
      const malformed: Record<string, unknown>[] = [
        fabricOffer({ min_quantity: 0 }),
        fabricOffer({ min_quantity: 1.5 }),
        fabricOffer({ capacity_per_period: -5 }),
        fabricOffer({ capacity_per_period: '500' }),
        fabricOffer({ unit_price: '12.50' }),
        fabricOffer({ unit_price: { amount: 12.5, currency: 'EUR' } }),
        fabricOffer({ capacity_period: 'fortnight' }),
        fabricOffer({ attributes: [] }),
        fabricOffer({ regions: 'eu-west' }),
        fabricOffer({ status: 'non_compliant' }),
        fabricOffer({ partner_id: 'ptn_forged' }),
        { capability: 'fabric' },
      ];
      for (const body of malformed) {
        const response = await app.request('POST', `/v1/partners/${partner.id}/offers`, {
          key: partner.key,
          body,
        });
        const problem = expectProblem(response, 400, 'request.invalid');
        expect(problem.errors?.length, JSON.stringify(body)).toBeGreaterThan(0);
        for (const error of problem.errors ?? []) {
          expect(error).toEqual({
            path: expect.stringMatching(/^\/body/),
            rule: expect.any(String),
            message: expect.any(String),
          });
        }
      }
    });

    it('refuses a second offer with an external reference the partner already uses', async () => {
      const partner = await apply();
      await createOffer(partner, { external_ref: 'DUP-1' });
      expectProblem(
        await app.request('POST', `/v1/partners/${partner.id}/offers`, {
          key: partner.key,
          body: fabricOffer({ external_ref: 'DUP-1' }),
        }),
        409,
        'catalog.external_ref_taken',
      );
      // Another partner may use the same reference for its own offer.
      await createOffer(await apply(), { external_ref: 'DUP-1' });
    });

    it('lets an operator create an offer on behalf of a partner, but not a partner for another', async () => {
      const partner = await apply();
      const other = await apply();
      const onBehalf = ok<OfferBody>(
        await app.request('POST', `/v1/partners/${partner.id}/offers`, { body: fabricOffer() }),
        201,
      );
      expect(onBehalf.partner_id).toBe(partner.id);
      expectProblem(
        await app.request('POST', `/v1/partners/${partner.id}/offers`, {
          key: other.key,
          body: fabricOffer(),
        }),
        404,
        'catalog.partner_not_found',
      );
    });
  });

  describe('changing offers', async () => {
    it('changes terms, keeping the rest, and re-checks the offer as a whole', async () => {
      const partner = await apply();
      const offer = await createOffer(partner, { status: 'active' });
      const changed = ok<OfferBody>(
        await app.request('PATCH', `/v1/offers/${offer.id}`, {
          key: partner.key,
          body: { unit_price: { amount: '11.00', currency: 'EUR' }, regions: ['eu-west', 'eu-north'] },
        }),
      );
      expect(changed).toMatchObject({
        unit_price: { amount: '11.00', currency: 'EUR' },
        regions: ['eu-west', 'eu-north'],
        min_quantity: 10,
        status: 'active',
      });
      const refused = await app.request('PATCH', `/v1/offers/${offer.id}`, {
        key: partner.key,
        body: { min_quantity: 2000, attributes: { material: 'silk' } },
      });
      const paths = expectProblem(refused, 422, 'catalog.offer_invalid').errors?.map((error) => error.path);
      expect(paths?.sort()).toEqual(['/attributes/material', '/max_quantity']);
      expect(ok<OfferBody>(await app.request('GET', `/v1/offers/${offer.id}`, { key: partner.key }))).toEqual(
        changed,
      );
      expectProblem(
        await app.request('PATCH', `/v1/offers/${offer.id}`, {
          key: partner.key,
          body: { capability: 'other' },
        }),
        400,
        'request.invalid',
      );
    });

    it('moves an offer between draft, active and paused, with an event for each change', async () => {
      const partner = await apply();
      const offer = await createOffer(partner);
      for (const status of ['active', 'paused', 'draft', 'active']) {
        const changed = ok<OfferBody>(
          await app.request('POST', `/v1/offers/${offer.id}/status`, { key: partner.key, body: { status } }),
        );
        expect(changed.status).toBe(status);
      }
      const events = await db
        .selectFrom('events')
        .select(['type', 'data'])
        .where('subject_id', '=', offer.id)
        .where('type', '=', 'offer.status_changed')
        .orderBy('seq')
        .execute();
      expect(
        events.map((event) => [event.data.previous_status, (event.data.offer as OfferBody).status]),
      ).toEqual([
        ['draft', 'active'],
        ['active', 'paused'],
        ['paused', 'draft'],
        ['draft', 'active'],
      ]);
      expectProblem(
        await app.request('POST', `/v1/offers/${offer.id}/status`, {
          key: partner.key,
          body: { status: 'non_compliant' },
        }),
        400,
        'request.invalid',
      );
    });
  });

  describe('who sees which offers', async () => {
    const partnerA = await apply();
    const partnerB = await apply();
    const customer = await signUp();
    const draft = await createOffer(partnerA, { regions: ['apac'] });
    const active = await createOffer(partnerA, { status: 'active', regions: ['apac', 'latam'] });
    const paused = await createOffer(partnerA, { status: 'active', regions: ['apac'] });
    ok(
      await app.request('POST', `/v1/offers/${paused.id}/status`, {
        key: partnerA.key,
        body: { status: 'paused' },
      }),
    );
    const bActive = await createOffer(partnerB, { status: 'active', regions: ['apac'] });
    const bDraft = await createOffer(partnerB, { regions: ['apac'] });

    const search = async (key: string, query: string) =>
      ok<Page<OfferBody>>(await app.request('GET', `/v1/offers?${query}`, { key })).data.map(
        (offer) => offer.id,
      );

    it("shows a partner's draft and paused offers only to that partner and to operators", async () => {
      for (const offer of [draft, paused]) {
        expect(
          ok<OfferBody>(await app.request('GET', `/v1/offers/${offer.id}`, { key: partnerA.key })).id,
        ).toBe(offer.id);
        expect(ok<OfferBody>(await app.request('GET', `/v1/offers/${offer.id}`)).id).toBe(offer.id);
        for (const key of [partnerB.key, customer]) {
          const response = await app.request('GET', `/v1/offers/${offer.id}`, { key });
          expectProblem(response, 404, 'catalog.offer_not_found');
        }
      }
    });

    it('shows an active offer to customers and other partners, who still cannot change it', async () => {
      for (const key of [partnerB.key, customer]) {
        expect(ok<OfferBody>(await app.request('GET', `/v1/offers/${active.id}`, { key })).status).toBe(
          'active',
        );
      }
      expectProblem(
        await app.request('PATCH', `/v1/offers/${active.id}`, {
          key: partnerB.key,
          body: { lead_time_hours: 1 },
        }),
        404,
        'catalog.offer_not_found',
      );
      expectProblem(
        await app.request('POST', `/v1/offers/${active.id}/status`, {
          key: partnerB.key,
          body: { status: 'paused' },
        }),
        404,
        'catalog.offer_not_found',
      );
      expect(ok<OfferBody>(await app.request('GET', `/v1/offers/${active.id}`)).status).toBe('active');
    });

    it('shows customers no partner’s price, and everyone else the price', async () => {
      const priceFor = async (key?: string) =>
        ok<OfferBody>(await app.request('GET', `/v1/offers/${active.id}`, key ? { key } : {})).unit_price;
      const expected = { amount: active.unit_price?.amount, currency: 'EUR' };
      expect(await priceFor()).toEqual(expected);
      expect(await priceFor(partnerA.key)).toEqual(expected);
      expect(await priceFor(partnerB.key)).toEqual(expected);
      expect(await priceFor(customer)).toBeNull();
      const found = ok<Page<OfferBody>>(
        await app.request('GET', `/v1/offers?region=apac&partner_id=${partnerA.id}`, { key: customer }),
      ).data;
      expect(found.map((offer) => [offer.id, offer.unit_price])).toEqual([[active.id, null]]);
    });

    it('searches only active offers for customers, active and own offers for partners, all for operators', async () => {
      expect(await search(customer, 'region=apac')).toEqual([active.id, bActive.id]);
      expect(await search(partnerB.key, 'region=apac')).toEqual([active.id, bActive.id, bDraft.id]);
      expect(await search(app.adminKey, 'region=apac')).toEqual([
        draft.id,
        active.id,
        paused.id,
        bActive.id,
        bDraft.id,
      ]);
      expect(await search(app.adminKey, 'region=latam&capability=fabric')).toEqual([active.id]);
      expect(await search(app.adminKey, `region=apac&status=paused`)).toEqual([paused.id]);
      expect(await search(customer, `region=apac&status=draft`)).toEqual([]);
      expect(await search(customer, `region=apac&partner_id=${partnerA.id}`)).toEqual([active.id]);
    });

    it("lists all of a partner's offers to the partner and operators, and to no other partner", async () => {
      const own = ok<Page<OfferBody>>(
        await app.request('GET', `/v1/partners/${partnerA.id}/offers?limit=2`, { key: partnerA.key }),
      );
      expect(own.data.map((offer) => offer.id)).toEqual([draft.id, active.id]);
      expect(own.has_more).toBe(true);
      const rest = ok<Page<OfferBody>>(
        await app.request('GET', `/v1/partners/${partnerA.id}/offers?limit=2&after=${own.next_after}`, {
          key: partnerA.key,
        }),
      );
      expect(rest).toEqual({
        data: [expect.objectContaining({ id: paused.id })],
        has_more: false,
        next_after: null,
      });
      expect(
        ok<Page<OfferBody>>(
          await app.request('GET', `/v1/partners/${partnerA.id}/offers?status=paused`),
        ).data.map((offer) => offer.id),
      ).toEqual([paused.id]);
      expectProblem(
        await app.request('GET', `/v1/partners/${partnerA.id}/offers`, { key: partnerB.key }),
        404,
        'catalog.partner_not_found',
      );
      expectProblem(
        await app.request('GET', `/v1/partners/${partnerA.id}/offers`, { key: customer }),
        403,
        'auth.role_not_allowed',
      );
    });
  });

  describe('bulk import', async () => {
    it('stores the good items of a mixed batch, reports the bad ones per field, and updates by external_ref', async () => {
      const partner = await apply();
      const existing = await createOffer(partner, {
        external_ref: 'LIN-200',
        attributes: { material: 'linen' },
      });
      const before = await offerCount();
      const response = await app.request<ImportBody>('POST', `/v1/partners/${partner.id}/offers/import`, {
        key: partner.key,
        body: {
          items: [
            fabricOffer({ external_ref: 'COT-1' }),
            fabricOffer({ external_ref: 'BAD-PRICE', unit_price: { amount: '1.001', currency: 'EUR' } }),
            fabricOffer({
              external_ref: 'LIN-200',
              attributes: { material: 'linen', weight_gsm: 200 },
              unit_price: { amount: '9.99', currency: 'EUR' },
              status: 'active',
            }),
            { ...fabricOffer(), min_quantity: 'ten', surprise: true },
            fabricOffer({ external_ref: 'BAD-ATTR', attributes: { material: 'silk' } }),
            'not an offer',
            fabricOffer({ external_ref: 'COT-1', lead_time_hours: 12 }),
            fabricOffer({ external_ref: 'WOOL-1', attributes: { material: 'wool' } }),
          ],
        },
      });
      const body = ok<ImportBody>(response);
      expect(body).toMatchObject({ created: 2, updated: 1, rejected: 5 });
      expect(body.results.map((result) => [result.index, result.status])).toEqual([
        [0, 'created'],
        [1, 'rejected'],
        [2, 'updated'],
        [3, 'rejected'],
        [4, 'rejected'],
        [5, 'rejected'],
        [6, 'rejected'],
        [7, 'created'],
      ]);
      const errors = (index: number) =>
        (body.results[index]?.errors ?? []).map((error) => [error.path, error.rule]).sort();
      expect(errors(1)).toEqual([['/unit_price/amount', 'precision']]);
      expect(errors(3)).toEqual([
        ['/min_quantity', 'invalid_type'],
        ['/surprise', 'unrecognized_keys'],
      ]);
      expect(errors(4)).toEqual([['/attributes/material', 'enum']]);
      expect(errors(5)).toEqual([['', 'invalid_type']]);
      expect(errors(6)).toEqual([['/external_ref', 'uniqueItems']]);
      expect(body.results[2]?.offer_id).toBe(existing.id);

      expect(await offerCount()).toBe(before + 2);
      const updated = ok<OfferBody>(
        await app.request('GET', `/v1/offers/${existing.id}`, { key: partner.key }),
      );
      expect(updated).toMatchObject({
        status: 'active',
        unit_price: { amount: '9.99', currency: 'EUR' },
        attributes: { material: 'linen', weight_gsm: 200 },
      });
      const created = ok<OfferBody>(
        await app.request('GET', `/v1/offers/${body.results[0]?.offer_id}`, { key: partner.key }),
      );
      expect(created).toMatchObject({ external_ref: 'COT-1', lead_time_hours: 48, status: 'draft' });
    });

    it('imports 1,000 offers in one request, and updates all of them by external_ref in the next', async () => {
      const partner = await apply();
      const items = Array.from({ length: 1000 }, (_, n) =>
        fabricOffer({
          external_ref: `BULK-${n}`,
          min_quantity: 1 + (n % 7),
          attributes: { material: 'wool' },
        }),
      );
      const first = ok<ImportBody>(
        await app.request('POST', `/v1/partners/${partner.id}/offers/import`, {
          key: partner.key,
          body: { items },
        }),
      );
      expect(first).toMatchObject({ created: 1000, updated: 0, rejected: 0 });
      expect(new Set(first.results.map((result) => result.offer_id)).size).toBe(1000);
      const second = ok<ImportBody>(
        await app.request('POST', `/v1/partners/${partner.id}/offers/import`, {
          key: partner.key,
          body: { items: items.map((item) => ({ ...item, lead_time_hours: 24 })) },
        }),
      );
      expect(second).toMatchObject({ created: 0, updated: 1000, rejected: 0 });
      expect(second.results.map((result) => result.offer_id)).toEqual(
        first.results.map((result) => result.offer_id),
      );
      const { rows } = await sql<{ count: string }>`
        select count(*)::text as count from offers where partner_id = ${partner.id} and lead_time_hours = 24`.execute(
        db,
      );
      expect(rows[0]?.count).toBe('1000');
    });

    it('refuses more than 1,000 items, storing none of them', async () => {
      const partner = await apply();
      const before = await offerCount();
      const items = Array.from({ length: 1001 }, (_, n) => fabricOffer({ external_ref: `OVER-${n}` }));
      const response = await app.request('POST', `/v1/partners/${partner.id}/offers/import`, {
        key: partner.key,
        body: { items },
      });
      expect(expectProblem(response, 400, 'request.invalid').errors).toEqual([
        { path: '/body/items', rule: 'too_big', message: expect.any(String) },
      ]);
      expect(await offerCount()).toBe(before);
    });

    it("never imports into another partner's catalog", async () => {
      const partner = await apply();
      const other = await apply();
      const before = await offerCount();
      expectProblem(
        await app.request('POST', `/v1/partners/${partner.id}/offers/import`, {
          key: other.key,
          body: { items: [fabricOffer()] },
        }),
        404,
        'catalog.partner_not_found',
      );
      expect(await offerCount()).toBe(before);
    });
  });
});
