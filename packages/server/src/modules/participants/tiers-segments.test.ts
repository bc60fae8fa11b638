import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { AuditRecordJson } from '../../kernel/http/platform-routes.js';
import type { Problem } from '../../kernel/http/problem.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { CustomerJson, PartnerJson } from './http/json.js';

type PartnerBody = z.output<typeof PartnerJson>;
type CustomerBody = z.output<typeof CustomerJson>;
type AuditBody = z.output<typeof AuditRecordJson>;

describe("partners' tiers and customers' segments through the HTTP API", async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  let sequence = 0;
  const created = await app.request('POST', '/v1/partner-types', {
    body: { key: 'tailor', name: 'Tailor', profile_schema: { type: 'object' } },
  });
  expect(created.status, created.text).toBe(201);

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string) {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
  }

  async function applyPartner(): Promise<{ partner: PartnerBody; key: string }> {
    const n = ++sequence;
    const response = await app.request<{ partner: PartnerBody; api_key: { secret: string } }>(
      'POST',
      '/v1/partner-applications',
      {
        key: null,
        body: {
          partner_type: 'tailor',
          name: `Tailor ${n}`,
          email: `tailor-${n}@example.test`,
          regions: ['eu-west'],
        },
      },
    );
    expect(response.status, response.text).toBe(201);
    return { partner: response.body.partner, key: response.body.api_key.secret };
  }

  async function signUp(): Promise<{ customer: CustomerBody; key: string }> {
    const n = ++sequence;
    const response = await app.request<{ customer: CustomerBody; api_key: { secret: string } }>(
      'POST',
      '/v1/customer-signups',
      { key: null, body: { kind: 'business', name: `Business ${n}`, email: `business-${n}@example.test` } },
    );
    expect(response.status, response.text).toBe(201);
    return { customer: response.body.customer, key: response.body.api_key.secret };
  }

  async function audit(action: string, targetId: string): Promise<AuditBody[]> {
    const query = new URLSearchParams({ action, target_id: targetId });
    const response = await app.request<{ data: AuditBody[] }>('GET', `/v1/audit-records?${query}`);
    expect(response.status, response.text).toBe(200);
    return response.body.data;
  }

  const tierOf = async (id: string) =>
    (await app.request<PartnerBody>('GET', `/v1/partners/${id}`)).body.tier;

  it('starts every partner at the standard tier, and lets an operator change it, audited', async () => {
    const { partner } = await applyPartner();
    expect(partner.tier).toBe('standard');
    const changed = await app.request<PartnerBody>('PUT', `/v1/partners/${partner.id}/tier`, {
      body: { tier: 'gold', reason: 'A year without a late delivery.' },
    });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body.tier).toBe('gold');
    expect(await tierOf(partner.id)).toBe('gold');
    expect(await audit('participants.partner.tier', partner.id)).toEqual([
      expect.objectContaining({
        outcome: 'succeeded',
        actor: expect.objectContaining({ kind: 'operator' }),
        details: { from: 'standard', to: 'gold', reason: 'A year without a late delivery.' },
      }),
    ]);
    // Setting the tier it has changes nothing and writes nothing.
    const again = await app.request('PUT', `/v1/partners/${partner.id}/tier`, {
      body: { tier: 'gold', reason: 'Again.' },
    });
    expect(again.status, again.text).toBe(200);
    expect(await audit('participants.partner.tier', partner.id)).toHaveLength(1);
    const listed = await app.request<{ data: PartnerBody[] }>(
      'GET',
      '/v1/partners?tier=gold&partner_type=tailor',
    );
    expect(listed.body.data.map((found) => found.id)).toEqual([partner.id]);
  });

  it('never lets a partner set its own tier, and audits the attempt', async () => {
    const { partner, key } = await applyPartner();
    expectProblem(
      await app.request('PUT', `/v1/partners/${partner.id}/tier`, {
        key,
        body: { tier: 'gold', reason: 'Promoting myself.' },
      }),
      403,
      'auth.role_not_allowed',
    );
    expect(await audit('participants.partner.tier', partner.id)).toEqual([
      expect.objectContaining({ outcome: 'denied', error_code: 'auth.role_not_allowed' }),
    ]);
    // Nor through the fields a partner may change.
    const patched = await app.request<{ errors: { path: string }[] }>('PATCH', `/v1/partners/${partner.id}`, {
      key,
      body: { name: 'Renamed', tier: 'gold' },
    });
    expectProblem(patched, 400, 'request.invalid');
    expect(patched.body.errors.map((error) => error.path)).toEqual(['/body/tier']);
    const after = await app.request<PartnerBody>('GET', `/v1/partners/${partner.id}`);
    expect(after.body).toMatchObject({ tier: 'standard', name: partner.name });
  });

  it('refuses a tier that is not a key, and a tier for a partner that is gone', async () => {
    const { partner } = await applyPartner();
    expectProblem(
      await app.request('PUT', `/v1/partners/${partner.id}/tier`, {
        body: { tier: 'Gold Plus', reason: 'x' },
      }),
      400,
      'request.invalid',
    );
    const rejected = await app.request('POST', `/v1/partners/${partner.id}/transitions`, {
      body: { to: 'rejected', reason: 'Not a fit.' },
    });
    expect(rejected.status, rejected.text).toBe(200);
    expectProblem(
      await app.request('PUT', `/v1/partners/${partner.id}/tier`, { body: { tier: 'gold', reason: 'x' } }),
      409,
      'participants.partner_closed',
    );
    expect(await tierOf(partner.id)).toBe('standard');
  });

  it('gives customers no segment until an operator sets one, which the customer cannot', async () => {
    const { customer, key } = await signUp();
    expect(customer.segment).toBeNull();
    expectProblem(
      await app.request('PUT', `/v1/customers/${customer.id}/segment`, {
        key,
        body: { segment: 'enterprise', reason: 'Upgrading myself.' },
      }),
      403,
      'auth.role_not_allowed',
    );
    expectProblem(
      await app.request('PATCH', `/v1/customers/${customer.id}`, { key, body: { segment: 'enterprise' } }),
      400,
      'request.invalid',
    );
    expect((await app.request<CustomerBody>('GET', `/v1/customers/${customer.id}`)).body.segment).toBeNull();

    const set = await app.request<CustomerBody>('PUT', `/v1/customers/${customer.id}/segment`, {
      body: { segment: 'smb', reason: 'Fewer than 50 staff.' },
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body.segment).toBe('smb');
    // The customer sees its segment.
    expect(
      (await app.request<CustomerBody>('GET', `/v1/customers/${customer.id}`, { key })).body.segment,
    ).toBe('smb');
    const cleared = await app.request<CustomerBody>('PUT', `/v1/customers/${customer.id}/segment`, {
      body: { segment: null, reason: 'Grew.' },
    });
    expect(cleared.body.segment).toBeNull();
    expect(
      (await audit('participants.customer.segment', customer.id)).map((record) => record.outcome),
    ).toEqual(['denied', 'succeeded', 'succeeded']);
  });
});
