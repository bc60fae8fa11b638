import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { AuditRecordJson, EventJson } from '../../kernel/http/platform-routes.js';
import type { Problem } from '../../kernel/http/problem.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { NewApiKeyJson, UserJson } from '../access/index.js';
import type {
  CustomerJson,
  InvitationJson,
  PartnerJson,
  PartnerTypeJson,
  TransitionJson,
} from './http/json.js';

type PartnerBody = z.output<typeof PartnerJson>;
type PartnerTypeBody = z.output<typeof PartnerTypeJson>;
type UserBody = z.output<typeof UserJson>;
type CustomerBody = z.output<typeof CustomerJson>;
type InvitationBody = z.output<typeof InvitationJson>;
type TransitionBody = z.output<typeof TransitionJson>;
type EventBody = z.output<typeof EventJson>;
type AuditBody = z.output<typeof AuditRecordJson>;
type NewApiKeyBody = z.output<typeof NewApiKeyJson>;
type Page<T> = { data: T[]; has_more: boolean; next_after: string | null };
type ApplicationBody = { partner: PartnerBody; owner: UserBody; api_key: NewApiKeyBody };
type SignupBody = { customer: CustomerBody; user: UserBody; api_key: NewApiKeyBody };

const DAY_MS = 24 * 60 * 60 * 1000;
/** Reads of the event feed before giving up on an event showing up (see `feedUntil`). */
const FEED_READS_MAX = 100;
/** Pages of one list a test reads at most: more means the cursor is broken. */
const PAGES_MAX = 50;
/** Simultaneous requests in the tests of races. */
const CONCURRENT_ATTEMPTS = 8;

const COURIER_PROFILE = {
  type: 'object',
  properties: {
    vehicle: { type: 'string', enum: ['bike', 'van'] },
    capacity_kg: { type: 'integer', minimum: 1 },
  },
  required: ['vehicle'],
  additionalProperties: false,
};
const OPEN_PROFILE = { type: 'object' };

describe('participants through the HTTP API', async () => {
  // Applications and sign-ups are public and limited per address; these tests make many from one.
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  let sequence = 0;
  const next = () => ++sequence;

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string) {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }

  async function defineType(
    key: string,
    profileSchema: Record<string, unknown> = OPEN_PROFILE,
  ): Promise<PartnerTypeBody> {
    const response = await app.request<PartnerTypeBody>('POST', '/v1/partner-types', {
      body: { key, name: `Type ${key}`, profile_schema: profileSchema },
    });
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  async function publishRules(key: string, gracePeriodDays = 14): Promise<number> {
    const response = await app.request<{ version: number }>('POST', `/v1/partner-types/${key}/rules`, {
      body: { title: `Rules of ${key}`, body: 'Be on time.', grace_period_days: gracePeriodDays },
    });
    expect(response.status, response.text).toBe(201);
    return response.body.version;
  }

  async function apply(
    partnerType: string,
    fields: Record<string, unknown> = {},
  ): Promise<{ id: string; key: string; body: ApplicationBody }> {
    const n = next();
    const response = await app.request<ApplicationBody>('POST', '/v1/partner-applications', {
      key: null,
      body: {
        partner_type: partnerType,
        name: `Partner ${n}`,
        email: `partner-${n}@example.test`,
        regions: ['eu-west'],
        ...fields,
      },
    });
    expect(response.status, response.text).toBe(201);
    return { id: response.body.partner.id, key: response.body.api_key.secret, body: response.body };
  }

  async function transition(partnerId: string, to: string, key?: string) {
    return app.request<PartnerBody>('POST', `/v1/partners/${partnerId}/transitions`, {
      ...(key ? { key } : {}),
      body: { to, reason: `Moved to ${to} by a test.` },
    });
  }

  async function signUp(fields: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
    const n = next();
    const response = await app.request<SignupBody>('POST', '/v1/customer-signups', {
      key: null,
      body: { kind: 'consumer', name: `Customer ${n}`, email: `customer-${n}@example.test`, ...fields },
    });
    expect(response.status, response.text).toBe(201);
    return { id: response.body.customer.id, key: response.body.api_key.secret };
  }

  /** Reads every page of a list; fails, rather than looping, when a cursor repeats. */
  async function readPages<T>(read: (after: string | null) => Promise<Page<T>>): Promise<T[][]> {
    const pages: T[][] = [];
    const cursors = new Set<string>();
    let after: string | null = null;
    for (;;) {
      const page: Page<T> = await read(after);
      pages.push(page.data);
      expect(page.has_more).toBe(page.next_after !== null);
      if (page.next_after === null) return pages;
      expect(cursors.has(page.next_after), 'a cursor came back').toBe(false);
      expect(pages.length).toBeLessThan(PAGES_MAX);
      cursors.add(page.next_after);
      after = page.next_after;
    }
  }

  async function readFeed(key: string, types?: string): Promise<EventBody[]> {
    const pages = await readPages(async (after) => {
      const query = new URLSearchParams({
        limit: '500',
        ...(types ? { types } : {}),
        ...(after ? { after } : {}),
      });
      const response = await app.request<Page<EventBody>>('GET', `/v1/events?${query}`, { key });
      expect(response.status, response.text).toBe(200);
      return response.body;
    });
    return pages.flat();
  }

  /**
   * Reads the feed until `done` holds. The feed shows an event only once every older transaction
   * on the database server has ended, and on a shared PostgreSQL other databases' transactions
   * count too, so an event just committed may take a moment to appear.
   */
  async function feedUntil(key: string, done: (events: EventBody[]) => boolean, types?: string) {
    let events: EventBody[] = [];
    for (let read = 1; read <= FEED_READS_MAX; read++) {
      events = await readFeed(key, types);
      if (done(events)) return events;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return events;
  }

  async function auditOf(targetId: string, action: string): Promise<AuditBody[]> {
    const query = new URLSearchParams({ target_id: targetId, action, limit: '100' });
    const response = await app.request<Page<AuditBody>>('GET', `/v1/audit-records?${query}`);
    expect(response.status, response.text).toBe(200);
    return response.body.data;
  }

  async function searchPartners(query: Record<string, string>): Promise<Page<PartnerBody>> {
    const response = await app.request<Page<PartnerBody>>(
      'GET',
      `/v1/partners?${new URLSearchParams(query)}`,
    );
    expect(response.status, response.text).toBe(200);
    return response.body;
  }

  /** Every partner a search finds, following its pages to the end. */
  async function searchAll(query: Record<string, string>): Promise<PartnerBody[]> {
    const pages = await readPages((after) => searchPartners({ ...query, ...(after ? { after } : {}) }));
    return pages.flat();
  }

  describe('partner types', () => {
    it('lets an admin define a type with a JSON Schema profile, which anyone can list without a key', async () => {
      const created = await defineType('courier', COURIER_PROFILE);
      expect(created).toMatchObject({
        object: 'partner_type',
        key: 'courier',
        name: 'Type courier',
        profile_schema: COURIER_PROFILE,
        current_rules: null,
      });

      const list = await app.request<{ data: PartnerTypeBody[] }>('GET', '/v1/partner-types', { key: null });
      expect(list.status).toBe(200);
      expect(list.body.data.find((type) => type.key === 'courier')).toMatchObject({
        profile_schema: COURIER_PROFILE,
      });
      const one = await app.request<PartnerTypeBody>('GET', '/v1/partner-types/courier', { key: null });
      expect(one.status).toBe(200);
      expect(one.body.key).toBe('courier');
      expectProblem(
        await app.request('GET', '/v1/partner-types/no-such-type', { key: null }),
        404,
        'participants.partner_type_not_found',
      );
    });

    it('refuses a profile schema that is not a valid JSON Schema of an object, saying what is wrong', async () => {
      const invalidKeyword = await app.request('POST', '/v1/partner-types', {
        body: {
          key: 'broken-schema',
          name: 'Broken',
          profile_schema: { type: 'object', properties: { x: { type: 'nope' } } },
        },
      });
      const problem = expectProblem(invalidKeyword, 400, 'json_schema.invalid');
      expect(problem.errors?.length).toBeGreaterThan(0);
      for (const error of problem.errors ?? []) {
        expect(error).toEqual({
          path: expect.any(String),
          rule: expect.any(String),
          message: expect.any(String),
        });
      }

      const notAnObject = await app.request('POST', '/v1/partner-types', {
        body: { key: 'string-schema', name: 'Strings', profile_schema: { type: 'string' } },
      });
      expect(expectProblem(notAnObject, 400, 'json_schema.invalid').errors).toEqual([
        { path: '/type', rule: 'const', message: expect.any(String) },
      ]);

      const keys = (await app.request<{ data: PartnerTypeBody[] }>('GET', '/v1/partner-types')).body.data.map(
        (type) => type.key,
      );
      expect(keys).not.toContain('broken-schema');
      expect(keys).not.toContain('string-schema');
    });

    it('refuses a second type with the same key', async () => {
      await defineType('dup-type');
      expectProblem(
        await app.request('POST', '/v1/partner-types', {
          body: { key: 'dup-type', name: 'Again', profile_schema: OPEN_PROFILE },
        }),
        409,
        'participants.partner_type_exists',
      );
    });

    it('lets only an operator admin define a type', async () => {
      const body = { key: 'ops-type', name: 'Ops type', profile_schema: OPEN_PROFILE };
      const ops = await app.operatorKey('ops');
      expectProblem(
        await app.request('POST', '/v1/partner-types', { key: ops, body }),
        403,
        'auth.role_not_allowed',
      );
      expectProblem(
        await app.request('POST', '/v1/partner-types', { key: null, body }),
        401,
        'auth.key_required',
      );
    });

    it('changes the name and the schema of a type, audited, and applies the new schema to later applications', async () => {
      await defineType('patchable', OPEN_PROFILE);
      const schema = { type: 'object', required: ['licence'], properties: { licence: { type: 'string' } } };
      const patched = await app.request<PartnerTypeBody>('PATCH', '/v1/partner-types/patchable', {
        body: { name: 'Renamed', profile_schema: schema },
      });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.body).toMatchObject({ name: 'Renamed', profile_schema: schema });
      const read = await app.request<PartnerTypeBody>('GET', '/v1/partner-types/patchable', { key: null });
      expect(read.body).toMatchObject({ name: 'Renamed', profile_schema: schema });

      const audit = await auditOf('patchable', 'participants.partner_type.update');
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({ outcome: 'succeeded', actor: { kind: 'operator', role: 'admin' } });
      expect(audit[0]?.details.changed).toHaveLength(2);

      const refused = await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'patchable',
          name: 'No licence',
          email: 'nolicence@example.test',
          regions: ['eu'],
        },
      });
      expect(expectProblem(refused, 422, 'participants.profile_invalid').errors).toEqual([
        expect.objectContaining({ path: '/licence', rule: 'required' }),
      ]);

      // An invalid schema leaves the type as it was.
      expectProblem(
        await app.request('PATCH', '/v1/partner-types/patchable', {
          body: { profile_schema: { type: 'array' } },
        }),
        400,
        'json_schema.invalid',
      );
      const after = await app.request<PartnerTypeBody>('GET', '/v1/partner-types/patchable');
      expect(after.body.profile_schema).toEqual(schema);
      expectProblem(
        await app.request('PATCH', '/v1/partner-types/never-defined', { body: { name: 'X' } }),
        404,
        'participants.partner_type_not_found',
      );
    });
  });

  describe('applications', () => {
    it('creates an applied partner with an owner and a key that works at once', async () => {
      await defineType('applicant-type', COURIER_PROFILE);
      const response = await app.request<ApplicationBody>('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'applicant-type',
          name: 'Speedy Couriers',
          email: 'hello@speedy.test',
          regions: ['eu-west', 'eu-north'],
          profile: { vehicle: 'van', capacity_kg: 500 },
          owner: { name: 'Ada Owner', email: 'ada@speedy.test' },
        },
      });
      expect(response.status, response.text).toBe(201);
      const { partner, owner, api_key } = response.body;
      expect(partner).toMatchObject({
        object: 'partner',
        partner_type: 'applicant-type',
        name: 'Speedy Couriers',
        regions: ['eu-west', 'eu-north'],
        profile: { vehicle: 'van', capacity_kg: 500 },
        state: 'applied',
        rules: { status: 'not_required', current_version: null, accepted_version: null },
        can_take_work: false,
      });
      expect(owner).toMatchObject({
        tenant_kind: 'partner',
        tenant_id: partner.id,
        role: 'owner',
        name: 'Ada Owner',
        email: 'ada@speedy.test',
      });

      const me = await app.request<UserBody>('GET', '/v1/me', { key: api_key.secret });
      expect(me.status).toBe(200);
      expect(me.body.id).toBe(owner.id);
      const own = await app.request<PartnerBody>('GET', `/v1/partners/${partner.id}`, {
        key: api_key.secret,
      });
      expect(own.status).toBe(200);
      expect(own.body).toEqual(partner);

      const history = await app.request<Page<TransitionBody>>(
        'GET',
        `/v1/partners/${partner.id}/transitions`,
        {
          key: api_key.secret,
        },
      );
      expect(history.body.data).toEqual([
        expect.objectContaining({ from: null, to: 'applied', actor: { kind: 'anonymous', id: null } }),
      ]);
    });

    it('refuses a profile that breaks the type schema, field by field, and stores nothing', async () => {
      await defineType('strict-courier', COURIER_PROFILE);
      await apply('strict-courier', { profile: { vehicle: 'bike' } });
      const before = await searchAll({ partner_type: 'strict-courier' });
      const users = await app.baton.database.db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<bigint>().as('count'))
        .executeTakeFirstOrThrow();

      const response = await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'strict-courier',
          name: 'Sloppy',
          email: 'sloppy@example.test',
          regions: ['eu-west'],
          profile: { capacity_kg: 0, horses: 2 },
        },
      });
      const problem = expectProblem(response, 422, 'participants.profile_invalid');
      expect(problem.errors).toEqual(
        expect.arrayContaining([
          { path: '/vehicle', rule: 'required', message: expect.any(String) },
          { path: '/capacity_kg', rule: 'minimum', message: expect.any(String) },
          { path: '/horses', rule: 'additionalProperties', message: expect.any(String) },
        ]),
      );
      expect(problem.errors).toHaveLength(3);

      expect(await searchAll({ partner_type: 'strict-courier' })).toEqual(before);
      const usersAfter = await app.baton.database.db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<bigint>().as('count'))
        .executeTakeFirstOrThrow();
      expect(usersAfter.count).toBe(users.count);
    });

    it('refuses an application for a type that does not exist', async () => {
      expectProblem(
        await app.request('POST', '/v1/partner-applications', {
          key: null,
          body: { partner_type: 'ghost-type', name: 'Ghost', email: 'ghost@example.test', regions: ['eu'] },
        }),
        404,
        'participants.partner_type_not_found',
      );
    });

    it('accepts one of concurrent applications with the same e-mail and type and refuses the others', async () => {
      await defineType('racing');
      const attempts = await Promise.all(
        Array.from({ length: CONCURRENT_ATTEMPTS }, (_, i) =>
          app.request('POST', '/v1/partner-applications', {
            key: null,
            body: {
              partner_type: 'racing',
              name: `Racer ${i}`,
              email: 'racer@example.test',
              regions: ['eu'],
            },
          }),
        ),
      );
      expect(attempts.filter((response) => response.status === 201)).toHaveLength(1);
      for (const response of attempts.filter((response) => response.status !== 201)) {
        expectProblem(response, 409, 'participants.already_applied');
      }
      expect(await searchAll({ partner_type: 'racing' })).toHaveLength(1);
    });

    it('refuses a second live application with the same e-mail and type, whatever its case', async () => {
      await defineType('dup-apply');
      await defineType('dup-apply-other');
      const first = await apply('dup-apply', { email: 'twice@example.test' });
      expectProblem(
        await app.request('POST', '/v1/partner-applications', {
          key: null,
          body: { partner_type: 'dup-apply', name: 'Again', email: 'TWICE@example.test', regions: ['eu'] },
        }),
        409,
        'participants.already_applied',
      );
      // The same e-mail may apply as another type, and again once its first application is rejected.
      await apply('dup-apply-other', { email: 'twice@example.test' });
      expect((await transition(first.id, 'rejected')).status).toBe(200);
      await apply('dup-apply', { email: 'twice@example.test' });
    });

    it('accepts the current rules in the application, and refuses any other version', async () => {
      await defineType('apply-rules');
      const version = await publishRules('apply-rules');
      expectProblem(
        await app.request('POST', '/v1/partner-applications', {
          key: null,
          body: {
            partner_type: 'apply-rules',
            name: 'Early',
            email: 'early@example.test',
            regions: ['eu'],
            accept_rules_version: version + 1,
          },
        }),
        409,
        'participants.rules_version_not_current',
      );
      const pending = await apply('apply-rules');
      expect(pending.body.partner.rules).toMatchObject({ status: 'pending', current_version: version });
      const accepted = await apply('apply-rules', { accept_rules_version: version });
      expect(accepted.body.partner.rules).toMatchObject({ status: 'accepted', accepted_version: version });
    });
  });

  describe('invitations', () => {
    async function invite(partnerType: string, fields: Record<string, unknown> = {}) {
      const ops = await app.operatorKey('ops');
      const response = await app.request<{ invitation: InvitationBody; token: string }>(
        'POST',
        '/v1/partner-invitations',
        { key: ops, body: { partner_type: partnerType, email: `invitee-${next()}@example.test`, ...fields } },
      );
      expect(response.status, response.text).toBe(201);
      return response.body;
    }

    async function invitationStatus(id: string): Promise<InvitationBody | undefined> {
      const response = await app.request<Page<InvitationBody>>('GET', '/v1/partner-invitations?limit=100');
      expect(response.status).toBe(200);
      return response.body.data.find((invitation) => invitation.id === id);
    }

    function applyWithToken(partnerType: string, token: string, fields: Record<string, unknown> = {}) {
      const n = next();
      return app.request<ApplicationBody>('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: partnerType,
          name: `Invited ${n}`,
          email: `invited-${n}@example.test`,
          regions: ['eu-west'],
          invitation_token: token,
          ...fields,
        },
      });
    }

    it('makes a pre-approved invitee that accepts the current rules active at once', async () => {
      await defineType('invited-type');
      const version = await publishRules('invited-type');
      const { invitation, token } = await invite('invited-type', { pre_approved: true });
      expect(invitation).toMatchObject({ status: 'pending', pre_approved: true, partner_id: null });

      const response = await applyWithToken('invited-type', token, { accept_rules_version: version });
      expect(response.status, response.text).toBe(201);
      const partner = response.body.partner;
      expect(partner).toMatchObject({ state: 'active', rules: { status: 'accepted' }, can_take_work: true });

      const history = await app.request<Page<TransitionBody>>(
        'GET',
        `/v1/partners/${partner.id}/transitions`,
      );
      expect(history.body.data.map((row) => [row.from, row.to, row.actor.kind])).toEqual([
        [null, 'applied', 'anonymous'],
        ['applied', 'under_review', 'system'],
        ['under_review', 'active', 'system'],
      ]);
      expect(await invitationStatus(invitation.id)).toMatchObject({
        status: 'accepted',
        partner_id: partner.id,
      });
    });

    it('leaves a pre-approved invitee that has not accepted the rules under review', async () => {
      await defineType('invited-no-rules');
      await publishRules('invited-no-rules');
      const { token } = await invite('invited-no-rules', { pre_approved: true });
      const response = await applyWithToken('invited-no-rules', token);
      expect(response.status, response.text).toBe(201);
      expect(response.body.partner).toMatchObject({ state: 'under_review', rules: { status: 'pending' } });
    });

    it('leaves an invitee without pre-approval in the applied state', async () => {
      await defineType('invited-plain');
      const { token } = await invite('invited-plain');
      const response = await applyWithToken('invited-plain', token);
      expect(response.status, response.text).toBe(201);
      expect(response.body.partner.state).toBe('applied');
    });

    it('refuses a token that was used, revoked, expired, unknown or meant for another type', async () => {
      await defineType('token-type');
      await defineType('token-other');

      const used = await invite('token-type');
      expect((await applyWithToken('token-type', used.token)).status).toBe(201);
      expectProblem(await applyWithToken('token-type', used.token), 422, 'participants.invitation_invalid');

      const revoked = await invite('token-type');
      const revoke = await app.request<InvitationBody>(
        'POST',
        `/v1/partner-invitations/${revoked.invitation.id}/revoke`,
      );
      expect(revoke.status, revoke.text).toBe(200);
      expect(revoke.body.status).toBe('revoked');
      expectProblem(
        await applyWithToken('token-type', revoked.token),
        422,
        'participants.invitation_invalid',
      );

      const expiring = await invite('token-type', { valid_days: 1 });
      app.clock.advance(DAY_MS);
      expect(await invitationStatus(expiring.invitation.id)).toMatchObject({ status: 'expired' });
      expectProblem(
        await applyWithToken('token-type', expiring.token),
        422,
        'participants.invitation_invalid',
      );

      expectProblem(
        await applyWithToken('token-type', 'baton_inv_not-a-real-token'),
        422,
        'participants.invitation_invalid',
      );
      const elsewhere = await invite('token-other');
      expectProblem(
        await applyWithToken('token-type', elsewhere.token),
        422,
        'participants.invitation_invalid',
      );
      // A refused application does not spend the invitation.
      expect((await applyWithToken('token-other', elsewhere.token)).status).toBe(201);
    });

    it('refuses to revoke an invitation that was used', async () => {
      await defineType('revoke-used');
      const { invitation, token } = await invite('revoke-used');
      expect((await applyWithToken('revoke-used', token)).status).toBe(201);
      expectProblem(
        await app.request('POST', `/v1/partner-invitations/${invitation.id}/revoke`),
        409,
        'participants.invitation_used',
      );
    });
  });

  describe('staff users', () => {
    it('lets the owner add a member who can read the partner but not manage it', async () => {
      await defineType('staffed');
      const { id, key: ownerKey, body } = await apply('staffed');

      const added = await app.request<UserBody>('POST', `/v1/partners/${id}/users`, {
        key: ownerKey,
        body: { name: 'Mo Member', email: 'mo@staffed.test', role: 'member' },
      });
      expect(added.status, added.text).toBe(201);
      expect(added.body).toMatchObject({ tenant_kind: 'partner', tenant_id: id, role: 'member' });

      const keyed = await app.request<NewApiKeyBody>('POST', '/v1/api-keys', {
        key: ownerKey,
        body: { name: 'Mo’s key', user_id: added.body.id },
      });
      expect(keyed.status, keyed.text).toBe(201);
      const memberKey = keyed.body.secret;

      expect((await app.request<UserBody>('GET', '/v1/me', { key: memberKey })).body.id).toBe(added.body.id);
      const read = await app.request<PartnerBody>('GET', `/v1/partners/${id}`, { key: memberKey });
      expect(read.status).toBe(200);
      expect(read.body.id).toBe(id);

      expectProblem(
        await app.request('POST', `/v1/partners/${id}/users`, {
          key: memberKey,
          body: { name: 'Sneaky', email: 'sneaky@staffed.test', role: 'owner' },
        }),
        403,
        'auth.role_not_allowed',
      );
      expectProblem(await transition(id, 'under_review', memberKey), 403, 'auth.role_not_allowed');
      expectProblem(await transition(id, 'under_review', ownerKey), 403, 'auth.role_not_allowed');

      const expected = [body.owner.id, added.body.id].sort();
      for (const key of [ownerKey, memberKey, app.adminKey]) {
        const users = await app.request<Page<UserBody>>('GET', `/v1/partners/${id}/users`, { key });
        expect(users.status, users.text).toBe(200);
        expect(users.body.data.map((user) => user.id).sort()).toEqual(expected);
      }
    });

    it("keeps a partner's staff out of another partner", async () => {
      await defineType('neighbours');
      const mine = await apply('neighbours');
      const theirs = await apply('neighbours');
      expectProblem(
        await app.request('GET', `/v1/partners/${theirs.id}`, { key: mine.key }),
        404,
        'participants.partner_not_found',
      );
      expectProblem(
        await app.request('GET', `/v1/partners/${theirs.id}/users`, { key: mine.key }),
        404,
        'participants.partner_not_found',
      );
      expectProblem(
        await app.request('POST', `/v1/partners/${theirs.id}/users`, {
          key: mine.key,
          body: { name: 'Spy', email: 'spy@example.test', role: 'member' },
        }),
        404,
        'participants.partner_not_found',
      );
      expectProblem(
        await app.request('GET', '/v1/partners', { key: mine.key }),
        403,
        'auth.role_not_allowed',
      );
    });
  });

  describe('customers', () => {
    it('signs a customer up with a key it can use to read and change itself', async () => {
      const response = await app.request<SignupBody>('POST', '/v1/customer-signups', {
        key: null,
        body: { kind: 'business', name: 'Acme Ltd', email: 'buyer@acme.test', region: 'eu-west' },
      });
      expect(response.status, response.text).toBe(201);
      const { customer, user, api_key } = response.body;
      expect(customer).toMatchObject({
        object: 'customer',
        kind: 'business',
        name: 'Acme Ltd',
        region: 'eu-west',
      });
      expect(user).toMatchObject({ tenant_kind: 'customer', tenant_id: customer.id, role: 'customer' });

      const key = api_key.secret;
      expect((await app.request<UserBody>('GET', '/v1/me', { key })).body.id).toBe(user.id);
      const read = await app.request<CustomerBody>('GET', `/v1/customers/${customer.id}`, { key });
      expect(read.status).toBe(200);
      expect(read.body).toEqual(customer);

      const patched = await app.request<CustomerBody>('PATCH', `/v1/customers/${customer.id}`, {
        key,
        body: { name: 'Acme Group', region: null },
      });
      expect(patched.status, patched.text).toBe(200);
      expect(patched.body).toMatchObject({ name: 'Acme Group', region: null });
      expect((await app.request<CustomerBody>('GET', `/v1/customers/${customer.id}`, { key })).body).toEqual(
        patched.body,
      );
    });

    it('keeps customers out of each other and out of operator searches', async () => {
      const one = await signUp();
      const other = await signUp();
      expectProblem(
        await app.request('GET', `/v1/customers/${other.id}`, { key: one.key }),
        404,
        'participants.customer_not_found',
      );
      expectProblem(
        await app.request('PATCH', `/v1/customers/${other.id}`, { key: one.key, body: { name: 'Hijacked' } }),
        404,
        'participants.customer_not_found',
      );
      expectProblem(
        await app.request('GET', '/v1/customers', { key: one.key }),
        403,
        'auth.role_not_allowed',
      );
      expect((await app.request<CustomerBody>('GET', `/v1/customers/${other.id}`)).body.name).not.toBe(
        'Hijacked',
      );
    });

    it('opens one account for concurrent sign-ups with the same e-mail and refuses the others', async () => {
      const attempts = await Promise.all(
        Array.from({ length: CONCURRENT_ATTEMPTS }, (_, i) =>
          app.request('POST', '/v1/customer-signups', {
            key: null,
            body: { kind: 'consumer', name: `Racer ${i}`, email: `Race-${i % 2 ? 'a' : 'A'}@example.test` },
          }),
        ),
      );
      expect(attempts.filter((response) => response.status === 201)).toHaveLength(1);
      for (const response of attempts.filter((response) => response.status !== 201)) {
        expectProblem(response, 409, 'participants.customer_email_taken');
      }
    });

    it('refuses a second customer with the same e-mail, whatever its case and whoever opens it', async () => {
      await signUp({ email: 'taken@example.test' });
      expectProblem(
        await app.request('POST', '/v1/customer-signups', {
          key: null,
          body: { kind: 'consumer', name: 'Copy', email: 'Taken@Example.test' },
        }),
        409,
        'participants.customer_email_taken',
      );
      expectProblem(
        await app.request('POST', '/v1/customers', {
          body: { kind: 'consumer', name: 'Copy', email: 'TAKEN@example.test' },
        }),
        409,
        'participants.customer_email_taken',
      );
    });

    it('lets operators open customer accounts and search them by name', async () => {
      const support = await app.operatorKey('support');
      const names = ['Zebra Foods', 'Zebra Fleet', '50% Zebra', '50 Zebra', 'Lion Foods'];
      const created: CustomerBody[] = [];
      for (const [i, name] of names.entries()) {
        const response = await app.request<CustomerBody>('POST', '/v1/customers', {
          key: support,
          body: { kind: 'business', name, email: `zoo-${i}@example.test`, region: 'eu-south' },
        });
        expect(response.status, response.text).toBe(201);
        created.push(response.body);
      }
      const search = async (q: string) => {
        const response = await app.request<Page<CustomerBody>>(
          'GET',
          `/v1/customers?${new URLSearchParams({ q, limit: '100' })}`,
          { key: support },
        );
        expect(response.status, response.text).toBe(200);
        return response.body.data.map((customer) => customer.name).sort();
      };
      expect(await search('zebra f')).toEqual(['Zebra Fleet', 'Zebra Foods']);
      expect(await search('50%')).toEqual(['50% Zebra']);
      expect(await search('Foods')).toEqual(['Lion Foods', 'Zebra Foods']);
    });
  });

  describe('partner search', () => {
    it('filters by state, type, region and name, and pages without duplicates or gaps', async () => {
      await defineType('searchable');
      await defineType('searchable-other');
      const made: { id: string; name: string; regions: string[]; state: string }[] = [];
      const specs = [
        { name: 'Alpha Freight', regions: ['eu-west'], state: 'applied' },
        { name: 'alpha movers', regions: ['eu-west', 'eu-north'], state: 'active' },
        { name: 'Beta Freight', regions: ['us-east'], state: 'active' },
        { name: '100% Organic', regions: ['eu-north'], state: 'under_review' },
        { name: '100 Organic', regions: ['eu-north'], state: 'applied' },
        { name: 'fast_track', regions: ['us-east', 'eu-west'], state: 'rejected' },
        { name: 'fastXtrack', regions: ['eu-west'], state: 'active' },
      ];
      const path: Record<string, string[]> = {
        applied: [],
        under_review: ['under_review'],
        active: ['under_review', 'active'],
        rejected: ['rejected'],
      };
      for (const spec of specs) {
        const { id } = await apply('searchable', { name: spec.name, regions: spec.regions });
        for (const to of path[spec.state] ?? []) expect((await transition(id, to)).status).toBe(200);
        made.push({ id, ...spec });
      }
      for (let i = 0; i < 4; i++) await apply('searchable', { name: `Bulk ${i}`, regions: ['ap-south'] });
      await apply('searchable-other', { name: 'Alpha Elsewhere', regions: ['eu-west'] });

      const names = async (query: Record<string, string>) =>
        (await searchAll({ partner_type: 'searchable', limit: '100', ...query })).map((p) => p.name).sort();

      expect(await names({ state: 'active' })).toEqual(['Beta Freight', 'alpha movers', 'fastXtrack'].sort());
      expect(await names({ region: 'eu-north' })).toEqual(
        ['100 Organic', '100% Organic', 'alpha movers'].sort(),
      );
      expect(await names({ region: 'eu-west', state: 'active' })).toEqual(
        ['alpha movers', 'fastXtrack'].sort(),
      );
      expect(await names({ q: 'ALPHA' })).toEqual(['Alpha Freight', 'alpha movers'].sort());
      expect(await names({ q: 'freight', region: 'us-east' })).toEqual(['Beta Freight']);
      // LIKE's wildcards are matched as themselves.
      expect(await names({ q: '100%' })).toEqual(['100% Organic']);
      expect(await names({ q: 'fast_' })).toEqual(['fast_track']);
      expect(await names({ q: '%' })).toEqual(['100% Organic']);
      expect((await searchAll({ q: 'Alpha', limit: '100' })).map((p) => p.name).sort()).toEqual(
        ['Alpha Elsewhere', 'Alpha Freight', 'alpha movers'].sort(),
      );

      const all = await searchPartners({ partner_type: 'searchable', limit: '100' });
      expect(all.has_more).toBe(false);
      expect(all.next_after).toBeNull();
      expect(all.data).toHaveLength(11);
      const ids = all.data.map((partner) => partner.id);
      for (const limit of ['1', '3', '4']) {
        const pages = await readPages(async (after) => {
          const page = await searchPartners({
            partner_type: 'searchable',
            limit,
            ...(after ? { after } : {}),
          });
          expect(page.data.length).toBeLessThanOrEqual(Number(limit));
          if (page.next_after !== null) expect(page.next_after).toBe(page.data.at(-1)?.id);
          return page;
        });
        expect(pages.flat().map((partner) => partner.id)).toEqual(ids);
        expect(pages).toHaveLength(Math.ceil(ids.length / Number(limit)));
      }
      expect(made.every((spec) => ids.includes(spec.id))).toBe(true);
    });
  });

  describe('event feed', () => {
    it("shows a partner its own events and its type's new rules, never another partner's", async () => {
      await defineType('feed-type');
      await defineType('feed-elsewhere');
      const mine = await apply('feed-type');
      const sibling = await apply('feed-type');
      const stranger = await apply('feed-elsewhere');
      await publishRules('feed-type');
      await publishRules('feed-elsewhere');
      expect((await transition(sibling.id, 'under_review')).status).toBe(200);
      expect((await transition(mine.id, 'rejected')).status).toBe(200);

      const events = await feedUntil(mine.key, (feed) =>
        feed.some((event) => event.type === 'partner.rejected' && event.subject_id === mine.id),
      );
      const types = events.map((event) => event.type);
      expect(types).toContain('partner.applied');
      expect(types).toContain('partner.rejected');
      expect(
        events
          .filter((event) => event.type === 'partner_type.rules_published')
          .map((event) => event.subject_id),
      ).toEqual(['feed-type']);
      const foreign = [sibling.id, stranger.id];
      for (const event of events) {
        expect(foreign).not.toContain(event.subject_id);
        expect(foreign).not.toContain(event.data.id);
      }
      expect(types).not.toContain('partner_type.created');

      // Another partner's event cannot serve as a cursor either.
      const all = await feedUntil(app.adminKey, (feed) =>
        feed.some((event) => event.type === 'partner.review_started' && event.subject_id === sibling.id),
      );
      const siblingEvent = all.find((event) => event.subject_id === sibling.id);
      expectProblem(
        await app.request('GET', `/v1/events?after=${siblingEvent?.id}`, { key: mine.key }),
        400,
        'events.unknown_cursor',
      );
    });

    it('shows a customer only its own events', async () => {
      const one = await signUp();
      const other = await signUp();
      expect(
        (await app.request('PATCH', `/v1/customers/${one.id}`, { key: one.key, body: { name: 'Renamed' } }))
          .status,
      ).toBe(200);
      expect(
        (await app.request('PATCH', `/v1/customers/${other.id}`, { key: other.key, body: { name: 'Other' } }))
          .status,
      ).toBe(200);

      const events = await feedUntil(one.key, (feed) =>
        feed.some((event) => event.type === 'customer.updated'),
      );
      const me = (await app.request<UserBody>('GET', '/v1/me', { key: one.key })).body;
      const keys = await app.request<Page<{ id: string }>>('GET', '/v1/api-keys', { key: one.key });
      const own = new Set([one.id, me.id, ...keys.body.data.map((key) => key.id)]);
      expect(events.map((event) => event.type).sort()).toEqual(
        ['api_key.created', 'customer.created', 'customer.updated', 'user.created'].sort(),
      );
      for (const event of events) expect(own.has(event.subject_id), event.type).toBe(true);
    });
  });

  it('records who accepted which version of the rules, and when', async () => {
    await defineType('accepting');
    const version = await publishRules('accepting');
    const partner = await apply('accepting');
    const accepted = await app.request<PartnerBody>('POST', `/v1/partners/${partner.id}/rules-acceptances`, {
      key: partner.key,
      body: { version },
    });
    expect(accepted.status, accepted.text).toBe(200);
    const rows = await app.baton.database.db
      .selectFrom('rules_acceptances')
      .selectAll()
      .where('partner_id', '=', partner.id)
      .execute();
    expect(rows).toEqual([
      expect.objectContaining({
        partner_type: 'accepting',
        version,
        user_id: partner.body.owner.id,
        accepted_at: app.clock.now(),
      }),
    ]);
    const audit = await auditOf(partner.id, 'participants.rules.accept');
    expect(audit).toEqual([
      expect.objectContaining({
        outcome: 'succeeded',
        actor: expect.objectContaining({ id: partner.body.owner.id }),
      }),
    ]);
    // The table is append-only: a recorded acceptance cannot be rewritten.
    await expect(
      sql`update rules_acceptances set version = 99 where partner_id = ${partner.id}`.execute(
        app.baton.database.db,
      ),
    ).rejects.toThrow();
  });
});
