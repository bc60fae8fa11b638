import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { AuditRecordJson, EventJson } from '../kernel/http/platform-routes.js';
import type { Problem } from '../kernel/http/problem.js';
import type { OfferJson } from '../modules/catalog/index.js';
import { type ApiResponse, createTestApp } from '../testing/test-app.js';

type OfferBody = z.output<typeof OfferJson>;
type EventBody = z.output<typeof EventJson>;
type AuditBody = z.output<typeof AuditRecordJson>;
type Page<T> = { data: T[]; has_more: boolean; next_after: string | null };
type PublishBody = {
  capability: { key: string; version: number; service_levels: { max_lead_time_hours: number | null } };
  revalidated: { non_compliant: string[]; restored: string[] };
};

/** Reads of the event feed before giving up on an event showing up. */
const FEED_READS_MAX = 100;

const DYEING_V1 = {
  type: 'object',
  properties: {
    colour: { type: 'string' },
    fastness: { type: 'integer', minimum: 1, maximum: 5 },
  },
  required: ['colour'],
};
/** Version 2 asks for a colour fastness of at least 3. */
const DYEING_V2 = {
  ...DYEING_V1,
  properties: { ...DYEING_V1.properties, fastness: { type: 'integer', minimum: 3, maximum: 5 } },
  required: ['colour', 'fastness'],
};

describe('publishing a capability version re-checks its offers', async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
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

  async function apply(): Promise<{ id: string; key: string }> {
    const n = ++sequence;
    const applied = ok<{ partner: { id: string }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: { partner_type: 'dyer', name: `Dyer ${n}`, email: `dyer-${n}@partner.test`, regions: ['eu'] },
      }),
      201,
    );
    return { id: applied.partner.id, key: applied.api_key.secret };
  }

  async function offer(
    partner: { id: string; key: string },
    attributes: Record<string, unknown>,
    fields: Record<string, unknown> = {},
  ): Promise<OfferBody> {
    return ok<OfferBody>(
      await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        key: partner.key,
        body: {
          capability: 'dyeing',
          attributes,
          unit_price: { amount: '0.80', currency: 'EUR' },
          min_quantity: 100,
          max_quantity: 10_000,
          lead_time_hours: 48,
          regions: ['eu'],
          capacity_per_period: 50_000,
          capacity_period: 'week',
          status: 'active',
          ...fields,
        },
      }),
      201,
    );
  }

  const getOffer = async (id: string) => ok<OfferBody>(await app.request('GET', `/v1/offers/${id}`));

  async function publish(body: Record<string, unknown>, key?: string) {
    return app.request<PublishBody>('POST', '/v1/capabilities/dyeing/versions', {
      body,
      ...(key ? { key } : {}),
    });
  }

  /**
   * Reads a partner's event feed until `done` holds: the feed shows an event once every older
   * transaction on the server has ended, which on a shared PostgreSQL may take a moment.
   */
  async function feedUntil(key: string, done: (events: EventBody[]) => boolean): Promise<EventBody[]> {
    let events: EventBody[] = [];
    for (let read = 1; read <= FEED_READS_MAX; read++) {
      events = ok<Page<EventBody>>(
        await app.request('GET', '/v1/events?limit=500&types=offer.status_changed', { key }),
      ).data;
      if (done(events)) return events;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return events;
  }

  async function audits(action: string): Promise<AuditBody[]> {
    const query = new URLSearchParams({ action, target_id: 'dyeing', limit: '100' });
    return ok<Page<AuditBody>>(await app.request('GET', `/v1/audit-records?${query}`)).data;
  }

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'dyer', name: 'Dyer', profile_schema: { type: 'object' } },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/capabilities', {
      body: { key: 'dyeing', name: 'Dyeing', unit: 'kg', attribute_schema: DYEING_V1 },
    }),
    201,
  );
  const customer = ok<{ api_key: { secret: string } }>(
    await app.request('POST', '/v1/customer-signups', {
      key: null,
      body: { kind: 'business', name: 'Atelier', email: 'atelier@customer.test' },
    }),
    201,
  ).api_key.secret;
  const alpha = await apply();
  const bravo = await apply();
  const fast = await offer(alpha, { colour: 'red', fastness: 4 });
  const loose = await offer(alpha, { colour: 'blue', fastness: 2 });
  const slow = await offer(bravo, { colour: 'green', fastness: 5 }, { lead_time_hours: 120 });
  const unrated = await offer(bravo, { colour: 'black' }, { status: 'draft' });

  it('marks the offers that no longer conform non_compliant with the reason per field, and keeps the others', async () => {
    const published = ok<PublishBody>(
      await publish({ attribute_schema: DYEING_V2, service_levels: { max_lead_time_hours: 72 } }),
      201,
    );
    expect(published.capability).toMatchObject({
      key: 'dyeing',
      version: 2,
      service_levels: { max_lead_time_hours: 72 },
    });
    expect(published.revalidated).toEqual({ non_compliant: [loose.id, slow.id, unrated.id], restored: [] });

    expect(await getOffer(fast.id)).toMatchObject({
      status: 'active',
      capability_version: 2,
      compliance_errors: [],
    });
    expect(await getOffer(loose.id)).toMatchObject({
      status: 'non_compliant',
      compliance_errors: [{ path: '/attributes/fastness', rule: 'minimum', message: expect.any(String) }],
    });
    expect(await getOffer(slow.id)).toMatchObject({
      status: 'non_compliant',
      compliance_errors: [{ path: '/lead_time_hours', rule: 'maximum', message: expect.any(String) }],
    });
    expect(await getOffer(unrated.id)).toMatchObject({
      status: 'non_compliant',
      compliance_errors: [{ path: '/attributes/fastness', rule: 'required', message: expect.any(String) }],
    });
    const succeeded = (await audits('standards.capability.publish')).filter(
      (record) => record.outcome === 'succeeded',
    );
    expect(succeeded).toHaveLength(1);
  });

  it("tells each partner, and only that partner, about its offers' change of status", async () => {
    const alphaEvents = await feedUntil(alpha.key, (events) =>
      events.some((event) => event.subject_id === loose.id),
    );
    const bravoEvents = await feedUntil(bravo.key, (events) =>
      events.some((event) => event.subject_id === slow.id),
    );
    const changes = (events: EventBody[]) =>
      events
        .filter((event) => (event.data.offer as OfferBody).status === 'non_compliant')
        .map((event) => [event.subject_id, event.data.previous_status]);
    expect(changes(alphaEvents)).toEqual([[loose.id, 'active']]);
    expect(changes(bravoEvents)).toEqual([
      [slow.id, 'active'],
      [unrated.id, 'draft'],
    ]);
    const event = alphaEvents.find((item) => item.subject_id === loose.id);
    expect(event?.data.offer).toEqual(await getOffer(loose.id));
  });

  it('keeps non_compliant offers out of search and reservations, and refuses to activate them', async () => {
    const found = ok<Page<OfferBody>>(
      await app.request('GET', '/v1/offers?capability=dyeing', { key: customer }),
    );
    expect(found.data.map((item) => item.id)).toEqual([fast.id]);
    expectProblem(
      await app.request('POST', `/v1/offers/${loose.id}/reservations`, {
        body: { quantity: 100, at: app.clock.now().toISOString(), hold_minutes: 10 },
      }),
      409,
      'catalog.offer_not_available',
    );
    const refused = expectProblem(
      await app.request('POST', `/v1/offers/${loose.id}/status`, {
        key: alpha.key,
        body: { status: 'active' },
      }),
      422,
      'catalog.offer_invalid',
    );
    expect(refused.errors).toEqual([
      { path: '/attributes/fastness', rule: 'minimum', message: expect.any(String) },
    ]);
    expect((await getOffer(loose.id)).status).toBe('non_compliant');
  });

  it('lets a partner fix a non_compliant offer, which then waits paused for the partner to activate it', async () => {
    const fixed = ok<OfferBody>(
      await app.request('PATCH', `/v1/offers/${slow.id}`, { key: bravo.key, body: { lead_time_hours: 60 } }),
    );
    expect(fixed).toMatchObject({ status: 'paused', compliance_errors: [], capability_version: 2 });
    const active = ok<OfferBody>(
      await app.request('POST', `/v1/offers/${slow.id}/status`, {
        key: bravo.key,
        body: { status: 'active' },
      }),
    );
    expect(active.status).toBe('active');
  });

  it('restores offers that conform to a later version to paused', async () => {
    const published = ok<PublishBody>(await publish({ attribute_schema: DYEING_V1 }), 201);
    expect(published.capability.version).toBe(3);
    // Service levels left out are carried over: the 72 hours still hold.
    expect(published.capability.service_levels.max_lead_time_hours).toBe(72);
    expect(published.revalidated).toEqual({ non_compliant: [], restored: [loose.id, unrated.id] });
    expect(await getOffer(loose.id)).toMatchObject({
      status: 'paused',
      compliance_errors: [],
      capability_version: 3,
    });
    expect((await getOffer(fast.id)).status).toBe('active');
  });

  it('publishes nothing and changes no offer when the new version is refused, and audits the refusal', async () => {
    const before = await Promise.all([fast, loose, slow, unrated].map((item) => getOffer(item.id)));
    const response = await publish({
      attribute_schema: { type: 'object', properties: { colour: { type: 'hue' } } },
    });
    expectProblem(response, 400, 'json_schema.invalid');
    expect(await Promise.all([fast, loose, slow, unrated].map((item) => getOffer(item.id)))).toEqual(before);
    expect(ok<{ version: number }>(await app.request('GET', '/v1/capabilities/dyeing')).version).toBe(3);
    const refusals = (await audits('standards.capability.publish')).filter(
      (record) => record.outcome !== 'succeeded',
    );
    expect(refusals.map((record) => [record.outcome, record.error_code])).toEqual([
      ['failed', 'json_schema.invalid'],
    ]);
  });

  it('lets only an operator admin publish a version', async () => {
    const ops = await app.operatorKey('ops');
    expectProblem(await publish({ attribute_schema: DYEING_V2 }, ops), 403, 'auth.role_not_allowed');
    expectProblem(await publish({ attribute_schema: DYEING_V2 }, alpha.key), 403, 'auth.role_not_allowed');
    expectProblem(
      await app.request('POST', '/v1/capabilities/no-such-capability/versions', { body: { name: 'Ghost' } }),
      404,
      'standards.capability_not_found',
    );
    expect(ok<{ version: number }>(await app.request('GET', '/v1/capabilities/dyeing')).version).toBe(3);
  });
});
