import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { Problem } from '../../kernel/http/problem.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { OfferingJson, OfferingVersionJson } from './index.js';

type OfferingBody = z.output<typeof OfferingJson>;
type VersionBody = z.output<typeof OfferingVersionJson>;
type PageBody = { data: OfferingBody[]; has_more: boolean; next_after: string | null };

const step = (
  key: string,
  capability: string,
  after: string[] = [],
  fields: Record<string, unknown> = {},
) => ({
  key,
  name: key.replace(/^./, (first) => first.toUpperCase()),
  capability,
  after,
  ...fields,
});

/** A custom garment run: fabric → dyeing → sewing → inspection → shipping. */
const GARMENT = {
  key: 'custom-garment',
  name: 'Custom garment run',
  description: 'Garments made to order, from fabric to the customer’s door.',
  unit: 'garment',
  currency: 'EUR',
  pricing: { kind: 'cost_plus', margin_bps: 1500 },
  regions: ['eu-west', 'eu-south'],
  steps: [
    step('fabric', 'fabric', [], {
      constraints: { material: { in: ['cotton', 'linen'] }, weight_gsm: { min: 120, max: 300 } },
      quantity_per_unit: '1.2',
    }),
    step('dyeing', 'dyeing', ['fabric'], {
      constraints: { colour_fastness: { min: 4 } },
      quantity_per_unit: '1.2',
    }),
    step('sewing', 'sewing', ['dyeing']),
    step('inspection', 'inspection', ['sewing']),
    step('shipping', 'parcel-shipping', ['inspection'], { quantity_per_unit: '0.05' }),
  ],
  quantity_min: 50,
  quantity_max: 10_000,
  quote_validity_minutes: 60,
  acceptance_window_minutes: 240,
  auto_confirm_hours: 72,
  rejection_policy: 'redo',
};

/** A meal delivery: the restaurant and the packaging in parallel, then the courier. */
const MEAL = {
  key: 'meal-delivery',
  name: 'Meal delivery',
  unit: 'meal',
  currency: 'EUR',
  pricing: { kind: 'fixed', unit_price: { amount: '14.90', currency: 'EUR' } },
  regions: ['eu-west'],
  steps: [
    step('restaurant', 'meal-preparation', [], { constraints: { cuisine: { eq: 'thai' } } }),
    step('packaging', 'eco-packaging', [], { quantity_per_unit: '0.25' }),
    step('courier', 'last-mile-delivery', ['restaurant', 'packaging'], { quantity_per_unit: '0.1' }),
  ],
  quantity_max: 40,
  quote_validity_minutes: 5,
  acceptance_window_minutes: 3,
  auto_confirm_hours: 2,
  rejection_policy: 'refund',
};

/** A trip: a stay and a transfer in parallel, then the guide. */
const TRIP = {
  key: 'city-trip',
  name: 'City trip',
  unit: 'trip',
  currency: 'JPY',
  pricing: { kind: 'fixed', unit_price: { amount: '85000', currency: 'JPY' } },
  regions: ['jp-kanto'],
  steps: [
    step('stay', 'hotel-night', [], { quantity_per_unit: '3', constraints: { stars: { min: 4 } } }),
    step('transfer', 'airport-transfer', [], { quantity_per_unit: '2' }),
    step('guide', 'city-guide', ['stay', 'transfer'], { constraints: { languages: { eq: 'en' } } }),
  ],
  quantity_max: 8,
};

const CAPABILITIES: Record<string, Record<string, unknown>> = {
  fabric: {
    material: { type: 'string', enum: ['cotton', 'linen', 'wool'] },
    weight_gsm: { type: 'integer', minimum: 50 },
  },
  dyeing: { colour_fastness: { type: 'integer', minimum: 1, maximum: 5 } },
  sewing: {},
  inspection: {},
  'parcel-shipping': {},
  'meal-preparation': { cuisine: { type: 'string' } },
  'eco-packaging': {},
  'last-mile-delivery': {},
  'hotel-night': { stars: { type: 'integer', minimum: 1, maximum: 5 } },
  'airport-transfer': {},
  'city-guide': { languages: { type: 'string' } },
};

describe('offerings over HTTP', async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
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

  for (const [key, properties] of Object.entries(CAPABILITIES)) {
    ok(
      await app.request('POST', '/v1/capabilities', {
        body: { key, name: key, unit: 'piece', attribute_schema: { type: 'object', properties } },
      }),
      201,
    );
  }

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
    }),
    201,
  );
  const partnerKey = ok<{ api_key: { secret: string } }>(
    await app.request('POST', '/v1/partner-applications', {
      key: null,
      body: { partner_type: 'supplier', name: 'Mill', email: 'mill@partner.test', regions: ['eu-west'] },
    }),
    201,
  ).api_key.secret;
  const customerKey = ok<{ api_key: { secret: string } }>(
    await app.request('POST', '/v1/customer-signups', {
      key: null,
      body: { kind: 'consumer', name: 'Carol', email: 'carol@customer.test' },
    }),
    201,
  ).api_key.secret;
  const opsKey = await app.operatorKey('ops');
  const supportKey = await app.operatorKey('support');

  describe('publishing', () => {
    it('publishes the garment, meal and trip offerings as version 1, each with its steps in order', async () => {
      const garment = ok<OfferingBody>(await app.request('POST', '/v1/offerings', { body: GARMENT }), 201);
      expect(garment).toMatchObject({
        object: 'offering',
        key: 'custom-garment',
        status: 'active',
        retired_at: null,
        current_version: {
          object: 'offering_version',
          offering_key: 'custom-garment',
          version: 1,
          pricing: { kind: 'cost_plus', margin_bps: 1500 },
          regions: ['eu-west', 'eu-south'],
          step_order: ['fabric', 'dyeing', 'sewing', 'inspection', 'shipping'],
          quantity_min: 50,
          rejection_policy: 'redo',
        },
      });
      expect(garment.current_version.id).toMatch(/^ofv_/);
      expect(garment.current_version.steps[0]).toEqual({
        key: 'fabric',
        name: 'Fabric',
        capability: 'fabric',
        constraints: { material: { in: ['cotton', 'linen'] }, weight_gsm: { min: 120, max: 300 } },
        quantity_per_unit: '1.2',
        after: [],
      });

      const meal = ok<OfferingBody>(
        await app.request('POST', '/v1/offerings', { key: opsKey, body: MEAL }),
        201,
      );
      expect(meal.current_version).toMatchObject({
        pricing: { kind: 'fixed', unit_price: { amount: '14.90', currency: 'EUR', amount_minor: '1490' } },
        step_order: ['restaurant', 'packaging', 'courier'],
        // The defaults of what the meal left out.
        quantity_min: 1,
        description: '',
      });

      const trip = ok<OfferingBody>(await app.request('POST', '/v1/offerings', { body: TRIP }), 201);
      expect(trip.current_version).toMatchObject({
        currency: 'JPY',
        pricing: { kind: 'fixed', unit_price: { amount: '85000', amount_minor: '85000' } },
        step_order: ['stay', 'transfer', 'guide'],
        quote_validity_minutes: 30,
        acceptance_window_minutes: 60,
        auto_confirm_hours: 72,
        rejection_policy: 'refund',
      });
    });

    it('refuses a second offering with the same key', async () => {
      expectProblem(
        await app.request('POST', '/v1/offerings', { body: GARMENT }),
        409,
        'offerings.already_exists',
      );
    });

    it('publishes a new version, which becomes current while the old one reads back unchanged', async () => {
      const { key: _key, ...definition } = GARMENT;
      const before = ok<VersionBody>(await app.request('GET', '/v1/offerings/custom-garment/versions/1'));
      const created = ok<VersionBody>(
        await app.request('POST', '/v1/offerings/custom-garment/versions', {
          key: opsKey,
          body: { ...definition, quantity_max: 20_000, regions: ['eu-west'] },
        }),
        201,
      );
      expect(created).toMatchObject({ version: 2, quantity_max: 20_000, regions: ['eu-west'] });
      expect(
        ok<OfferingBody>(await app.request('GET', '/v1/offerings/custom-garment')).current_version,
      ).toEqual(created);
      expect(ok<VersionBody>(await app.request('GET', '/v1/offerings/custom-garment/versions/1'))).toEqual(
        before,
      );
      expect(ok<VersionBody>(await app.request('GET', '/v1/offerings/custom-garment/versions/2'))).toEqual(
        created,
      );
      expectProblem(
        await app.request('GET', '/v1/offerings/custom-garment/versions/3'),
        404,
        'offerings.version_not_found',
      );
      expectProblem(
        await app.request('POST', '/v1/offerings/no-such-offering/versions', { body: definition }),
        404,
        'offerings.offering_not_found',
      );
    });

    it('answers a replay with the same Idempotency-Key with the original version', async () => {
      const { key: _key, ...definition } = MEAL;
      const headers = { 'idempotency-key': 'meal-v2' };
      const first = await app.request('POST', '/v1/offerings/meal-delivery/versions', {
        body: definition,
        headers,
      });
      const again = await app.request('POST', '/v1/offerings/meal-delivery/versions', {
        body: definition,
        headers,
      });
      expect(first.status, first.text).toBe(201);
      expect(again.text).toBe(first.text);
      expect(again.headers['idempotency-replayed']).toBe('true');
      expect(
        ok<OfferingBody>(await app.request('GET', '/v1/offerings/meal-delivery')).current_version.version,
      ).toBe(2);
    });
  });

  describe('bad definitions', () => {
    it('refuses a cycle with 422, naming the cycle, and stores nothing', async () => {
      const steps = GARMENT.steps.map((item) =>
        item.key === 'sewing' ? { ...item, after: ['dyeing', 'inspection'] } : item,
      );
      const problem = expectProblem(
        await app.request('POST', '/v1/offerings', { body: { ...GARMENT, key: 'garment-cycle', steps } }),
        422,
        'offerings.definition_invalid',
      );
      expect(problem.errors).toEqual([
        { path: '/steps/2/after/1', rule: 'acyclic', message: 'forms a cycle: sewing → inspection → sewing' },
      ]);
      expectProblem(
        await app.request('GET', '/v1/offerings/garment-cycle'),
        404,
        'offerings.offering_not_found',
      );
    });

    it('reports an unknown capability and a constraint on an attribute the capability lacks', async () => {
      const steps = [
        step('restaurant', 'meal-preparation', [], { constraints: { spiciness: { max: 3 } } }),
        step('courier', 'drone-delivery', ['restaurant']),
      ];
      const problem = expectProblem(
        await app.request('POST', '/v1/offerings', { body: { ...MEAL, key: 'drone-meal', steps } }),
        422,
        'offerings.definition_invalid',
      );
      expect(problem.errors).toEqual([
        {
          path: '/steps/0/constraints/spiciness',
          rule: 'exists',
          message: 'the capability meal-preparation has no attribute spiciness',
        },
        { path: '/steps/1/capability', rule: 'exists', message: 'no capability drone-delivery' },
      ]);
    });

    it('reports a bad decimal and every other broken rule together', async () => {
      const steps = [
        step('stay', 'hotel-night', [], { quantity_per_unit: '1,5' }),
        step('guide', 'city-guide', ['stay']),
      ];
      const problem = expectProblem(
        await app.request('POST', '/v1/offerings', {
          body: {
            ...TRIP,
            key: 'bad-trip',
            steps,
            regions: ['jp-kanto', 'jp-kanto'],
            pricing: { kind: 'fixed', unit_price: { amount: '850.5', currency: 'JPY' } },
            quantity_min: 10,
            quantity_max: 2,
            quote_validity_minutes: 0,
          },
        }),
        422,
        'offerings.definition_invalid',
      );
      expect(problem.errors?.map((error) => `${error.path} ${error.rule}`)).toEqual([
        '/pricing/unit_price/amount money.too_many_decimals',
        '/regions/1 uniqueItems',
        '/steps/0/quantity_per_unit format',
        '/quantity_max minimum',
        '/quote_validity_minutes minimum',
      ]);
    });

    it('refuses bodies that do not match the schema with 400', async () => {
      const numeric = GARMENT.steps.map((item) => ({ ...item, quantity_per_unit: 1.2 }));
      const problem = expectProblem(
        await app.request('POST', '/v1/offerings', {
          body: { ...GARMENT, key: 'garment-x', steps: numeric },
        }),
        400,
        'request.invalid',
      );
      expect(problem.errors?.[0]?.path).toBe('/body/steps/0/quantity_per_unit');
      expectProblem(
        await app.request('POST', '/v1/offerings', { body: { ...GARMENT, key: 'garment-x', owner: 'me' } }),
        400,
        'request.invalid',
      );
      expectProblem(
        await app.request('POST', '/v1/offerings', {
          body: { ...GARMENT, key: 'garment-x', pricing: { kind: 'free' } },
        }),
        400,
        'request.invalid',
      );
    });
  });

  describe('who may do what', () => {
    it('lets partners, customers and every operator read the active offerings', async () => {
      for (const key of [partnerKey, customerKey, supportKey]) {
        const list = ok<PageBody>(await app.request('GET', '/v1/offerings', { key }));
        expect(list.data.map((offering) => offering.key)).toEqual([
          'city-trip',
          'custom-garment',
          'meal-delivery',
        ]);
        expect(ok<OfferingBody>(await app.request('GET', '/v1/offerings/city-trip', { key })).key).toBe(
          'city-trip',
        );
        expect(
          ok<VersionBody>(await app.request('GET', '/v1/offerings/custom-garment/versions/1', { key }))
            .version,
        ).toBe(1);
      }
    });

    it('refuses publishing and retiring to partners, customers and operators outside admin and ops', async () => {
      const { key: _key, ...definition } = TRIP;
      for (const key of [partnerKey, customerKey, supportKey]) {
        expectProblem(
          await app.request('POST', '/v1/offerings', { key, body: { ...TRIP, key: 'their-trip' } }),
          403,
          'auth.role_not_allowed',
        );
        expectProblem(
          await app.request('POST', '/v1/offerings/city-trip/versions', { key, body: definition }),
          403,
          'auth.role_not_allowed',
        );
        expectProblem(
          await app.request('POST', '/v1/offerings/city-trip/retire', { key }),
          403,
          'auth.role_not_allowed',
        );
      }
      expectProblem(await app.request('GET', '/v1/offerings', { key: null }), 401, 'auth.key_required');
      const denied = await app.baton.database.db
        .selectFrom('audit_records')
        .select(['outcome', 'error_code'])
        .where('action', '=', 'offerings.offering.retire')
        .where('target_id', '=', 'city-trip')
        .execute();
      expect(denied).toHaveLength(3);
      expect(denied.every((record) => record.outcome === 'denied')).toBe(true);
    });
  });

  describe('listing and retiring', () => {
    it('filters by region and pages by key', async () => {
      const euWest = ok<PageBody>(await app.request('GET', '/v1/offerings?region=eu-west&limit=1'));
      expect(euWest.data.map((offering) => offering.key)).toEqual(['custom-garment']);
      expect(euWest).toMatchObject({ has_more: true, next_after: 'custom-garment' });
      const next = ok<PageBody>(
        await app.request('GET', '/v1/offerings?region=eu-west&limit=1&after=custom-garment'),
      );
      expect(next.data.map((offering) => offering.key)).toEqual(['meal-delivery']);
      expect(next).toMatchObject({ has_more: false, next_after: null });
      const kanto = ok<PageBody>(await app.request('GET', '/v1/offerings?region=jp-kanto'));
      expect(kanto.data.map((offering) => offering.key)).toEqual(['city-trip']);
      expectProblem(await app.request('GET', '/v1/offerings?region=EU%20West'), 400, 'request.invalid');
    });

    it('retires an offering: no new versions, hidden from partners and customers, kept for the operator', async () => {
      const retired = ok<OfferingBody>(
        await app.request('POST', '/v1/offerings/city-trip/retire', { key: opsKey }),
      );
      expect(retired).toMatchObject({ status: 'retired', retired_at: app.clock.now().toISOString() });
      expectProblem(
        await app.request('POST', '/v1/offerings/city-trip/retire'),
        409,
        'offerings.offering_retired',
      );
      const { key: _key, ...definition } = TRIP;
      expectProblem(
        await app.request('POST', '/v1/offerings/city-trip/versions', { body: definition }),
        409,
        'offerings.offering_retired',
      );
      for (const key of [partnerKey, customerKey]) {
        expectProblem(
          await app.request('GET', '/v1/offerings/city-trip', { key }),
          404,
          'offerings.offering_not_found',
        );
        expectProblem(
          await app.request('GET', '/v1/offerings/city-trip/versions/1', { key }),
          404,
          'offerings.offering_not_found',
        );
        const list = ok<PageBody>(await app.request('GET', '/v1/offerings', { key }));
        expect(list.data.map((offering) => offering.key)).toEqual(['custom-garment', 'meal-delivery']);
      }
      const operatorView = ok<PageBody>(
        await app.request('GET', '/v1/offerings?status=retired', { key: supportKey }),
      );
      expect(operatorView.data.map((offering) => offering.key)).toEqual(['city-trip']);
    });
  });

  it('documents the routes in the OpenAPI document', async () => {
    const document = ok<{ paths: Record<string, Record<string, unknown>>; components: { schemas: object } }>(
      await app.request('GET', '/openapi.json', { key: null }),
    );
    for (const path of [
      '/v1/offerings',
      '/v1/offerings/{key}',
      '/v1/offerings/{key}/versions',
      '/v1/offerings/{key}/versions/{version}',
      '/v1/offerings/{key}/retire',
    ]) {
      expect(document.paths[path], path).toBeDefined();
    }
    expect(Object.keys(document.paths['/v1/offerings'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining(['Offering', 'OfferingVersion', 'NewOffering', 'NewOfferingVersion']),
    );
  });
});
