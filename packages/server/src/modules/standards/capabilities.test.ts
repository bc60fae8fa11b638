import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Tx } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { Problem } from '../../kernel/http/problem.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { CapabilityJson, CertificationProgramJson } from './http/json.js';

type CapabilityBody = z.output<typeof CapabilityJson>;
type ProgramBody = z.output<typeof CertificationProgramJson>;

/** Simultaneous publications in the test of races. */
const CONCURRENT_PUBLICATIONS = 5;

const DYEING_SCHEMA = {
  type: 'object',
  properties: {
    colour_fastness: { type: 'integer', minimum: 1, maximum: 5 },
    dyes: { type: 'array', items: { type: 'string', enum: ['reactive', 'vat', 'disperse'] }, minItems: 1 },
  },
  required: ['colour_fastness', 'dyes'],
  additionalProperties: false,
};

describe('capabilities and certification programs', async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  const db = app.baton.database.db;
  const standards = app.baton.services.standards;

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }

  async function createProgram(key: string, validityDays = 365): Promise<ProgramBody> {
    const response = await app.request<ProgramBody>('POST', '/v1/certification-programs', {
      body: {
        key,
        name: `Program ${key}`,
        requirements: 'Meets the standard.',
        evidence: [{ key: 'report', description: 'The latest audit report' }],
        validity_days: validityDays,
      },
    });
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  async function defineCapability(key: string, fields: Record<string, unknown> = {}) {
    return app.request<CapabilityBody>('POST', '/v1/capabilities', {
      body: { key, name: `Capability ${key}`, unit: 'kg', attribute_schema: DYEING_SCHEMA, ...fields },
    });
  }

  /** Runs a use case as Baton itself, in a transaction, at the test clock's time. */
  function asSystem<T>(work: (ctx: Context & { db: Tx }) => Promise<T>): Promise<T> {
    return runInTransaction(db, (tx) =>
      work({ db: tx, actor: systemActor('test'), now: app.clock.now(), requestId: null, ip: null }),
    );
  }

  async function customerKey(): Promise<string> {
    const response = await app.request<{ api_key: { secret: string } }>('POST', '/v1/customer-signups', {
      key: null,
      body: { kind: 'consumer', name: 'Carol', email: `carol-${Math.random()}@customer.test` },
    });
    expect(response.status, response.text).toBe(201);
    return response.body.api_key.secret;
  }

  async function partnerKey(): Promise<string> {
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'dyehouse', name: 'Dye house', profile_schema: { type: 'object' } },
    });
    const response = await app.request<{ api_key: { secret: string } }>('POST', '/v1/partner-applications', {
      key: null,
      body: {
        partner_type: 'dyehouse',
        name: 'Dyers',
        email: `dyers-${Math.random()}@partner.test`,
        regions: ['eu-west'],
      },
    });
    expect(response.status, response.text).toBe(201);
    return response.body.api_key.secret;
  }

  async function eventsOf(type: string, subjectId: string) {
    return db
      .selectFrom('events')
      .select(['data', 'audience'])
      .where('type', '=', type)
      .where('subject_id', '=', subjectId)
      .orderBy('seq')
      .execute();
  }

  async function auditOf(action: string, targetId: string) {
    return db
      .selectFrom('audit_records')
      .select(['outcome', 'error_code', 'details'])
      .where('action', '=', action)
      .where('target_id', '=', targetId)
      .orderBy('seq')
      .execute();
  }

  describe('defining capabilities', () => {
    it('lets an admin define version 1 of a capability, which partners and customers can read', async () => {
      await createProgram('oeko-tex');
      const response = await defineCapability('dyeing', {
        name: 'Dyeing',
        required_certifications: ['oeko-tex'],
        service_levels: { max_lead_time_hours: 72, acceptance_window_hours: 4 },
      });
      expect(response.status, response.text).toBe(201);
      expect(response.body).toEqual({
        object: 'capability',
        key: 'dyeing',
        version: 1,
        name: 'Dyeing',
        unit: 'kg',
        attribute_schema: DYEING_SCHEMA,
        required_certifications: ['oeko-tex'],
        service_levels: { max_lead_time_hours: 72, acceptance_window_hours: 4 },
        published_at: app.clock.now().toISOString(),
      });

      for (const key of [await partnerKey(), await customerKey()]) {
        const one = await app.request<CapabilityBody>('GET', '/v1/capabilities/dyeing', { key });
        expect(one.status, one.text).toBe(200);
        expect(one.body).toEqual(response.body);
        const list = await app.request<{ data: CapabilityBody[] }>('GET', '/v1/capabilities', { key });
        expect(list.body.data.find((capability) => capability.key === 'dyeing')).toEqual(response.body);
      }
      expect((await app.request('GET', '/v1/capabilities/dyeing', { key: null })).status).toBe(401);

      expect(await eventsOf('capability.published', 'dyeing')).toEqual([
        {
          data: {
            key: 'dyeing',
            version: 1,
            name: 'Dyeing',
            unit: 'kg',
            required_certifications: ['oeko-tex'],
            service_levels: { max_lead_time_hours: 72, acceptance_window_hours: 4 },
          },
          audience: [],
        },
      ]);
      expect(
        (await auditOf('standards.capability.define', 'dyeing')).map((record) => record.outcome),
      ).toEqual(['succeeded']);
    });

    it('defaults to no required programs and no service levels', async () => {
      const response = await defineCapability('hotel-night', { unit: 'night' });
      expect(response.status, response.text).toBe(201);
      expect(response.body).toMatchObject({
        required_certifications: [],
        service_levels: { max_lead_time_hours: null, acceptance_window_hours: null },
      });
    });

    it('rejects an attribute schema that is not valid JSON Schema, naming what is wrong, and keeps nothing', async () => {
      const typo = await defineCapability('sewing', {
        attribute_schema: { type: 'object', properties: { stitches: { type: 'integr' } } },
      });
      const problem = expectProblem(typo, 400, 'json_schema.invalid');
      expect(problem.errors?.length).toBeGreaterThan(0);
      expect(problem.errors?.[0]?.path).toContain('/properties/stitches/type');

      const unknownKeyword = await defineCapability('sewing', {
        attribute_schema: { type: 'object', properties: { stitches: { type: 'integer', minimun: 1 } } },
      });
      expectProblem(unknownKeyword, 400, 'json_schema.invalid');

      const notAnObject = await defineCapability('sewing', { attribute_schema: { type: 'array' } });
      expect(expectProblem(notAnObject, 400, 'json_schema.invalid').errors).toEqual([
        { path: '/type', rule: 'const', message: 'must be "object"' },
      ]);

      expectProblem(
        await app.request('GET', '/v1/capabilities/sewing'),
        404,
        'standards.capability_not_found',
      );
      expect(await auditOf('standards.capability.define', 'sewing')).toEqual([]);
    });

    it('rejects required certifications that name no program, naming each one', async () => {
      await createProgram('iso-9001');
      const response = await defineCapability('inspection', {
        required_certifications: ['iso-9001', 'no-such-program', 'nor-this'],
      });
      const problem = expectProblem(response, 422, 'standards.unknown_program');
      expect(problem.programs).toEqual(['no-such-program', 'nor-this']);
      expect(problem.errors?.map((error) => error.path)).toEqual([
        '/required_certifications/1',
        '/required_certifications/2',
      ]);
      expectProblem(
        await app.request('GET', '/v1/capabilities/inspection'),
        404,
        'standards.capability_not_found',
      );
    });

    it('refuses a second capability with the same key, and badly formed keys and units', async () => {
      expect((await defineCapability('shipping', { unit: 'parcel' })).status).toBe(201);
      expectProblem(await defineCapability('shipping'), 409, 'standards.capability_exists');
      expectProblem(await defineCapability('Shipping'), 400, 'request.invalid');
      expectProblem(await defineCapability('ironing', { unit: 'Kilo Grams' }), 400, 'request.invalid');
      expectProblem(
        await defineCapability('ironing', { service_levels: { max_lead_time_hours: 0 } }),
        400,
        'request.invalid',
      );
      expectProblem(
        await defineCapability('ironing', { attribute_schema: DYEING_SCHEMA, surprise: true }),
        400,
        'request.invalid',
      );
    });
  });

  describe('versions', () => {
    it('publishes a next version that carries over every field not changed, and keeps the old one readable', async () => {
      await createProgram('food-safety');
      await createProgram('cold-chain');
      expect(
        (
          await defineCapability('catering', {
            unit: 'meal',
            required_certifications: ['food-safety'],
            service_levels: { max_lead_time_hours: 24, acceptance_window_hours: 2 },
          })
        ).status,
      ).toBe(201);
      const v1 = (await app.request<CapabilityBody>('GET', '/v1/capabilities/catering')).body;

      app.clock.advance(60_000);
      const v2 = await asSystem((ctx) =>
        standards.publishCapabilityVersion(ctx, 'catering', {
          requiredCertifications: ['food-safety', 'cold-chain'],
        }),
      );
      expect(v2).toMatchObject({
        key: 'catering',
        version: 2,
        name: 'Capability catering',
        unit: 'meal',
        attributeSchema: DYEING_SCHEMA,
        requiredCertifications: ['food-safety', 'cold-chain'],
        serviceLevels: { maxLeadTimeHours: 24, acceptanceWindowHours: 2 },
        publishedAt: app.clock.now(),
      });
      const v3 = await asSystem((ctx) =>
        standards.publishCapabilityVersion(ctx, 'catering', {
          name: 'Catering',
          serviceLevels: { maxLeadTimeHours: 12, acceptanceWindowHours: null },
        }),
      );
      expect(v3).toMatchObject({
        version: 3,
        name: 'Catering',
        requiredCertifications: ['food-safety', 'cold-chain'],
        serviceLevels: { maxLeadTimeHours: 12, acceptanceWindowHours: null },
      });

      const current = await app.request<CapabilityBody>('GET', '/v1/capabilities/catering');
      expect(current.body).toMatchObject({ version: 3, name: 'Catering' });
      const old = await app.request<CapabilityBody>('GET', '/v1/capabilities/catering/versions/1');
      expect(old.body).toEqual(v1);
      const versions = await app.request<{ data: CapabilityBody[] }>(
        'GET',
        '/v1/capabilities/catering/versions',
      );
      expect(versions.body.data.map((version) => [version.version, version.name])).toEqual([
        [1, 'Capability catering'],
        [2, 'Capability catering'],
        [3, 'Catering'],
      ]);
      expectProblem(
        await app.request('GET', '/v1/capabilities/catering/versions/4'),
        404,
        'standards.capability_version_not_found',
      );
      expect(await standards.getCapabilityVersion(db, 'catering', 2)).toEqual(v2);

      expect((await eventsOf('capability.published', 'catering')).map((event) => event.data.version)).toEqual(
        [1, 2, 3],
      );
      expect(
        (await auditOf('standards.capability.publish', 'catering')).map((record) => record.details.version),
      ).toEqual([2, 3]);
    });

    it('numbers simultaneous publications one after another, each building on the one before', async () => {
      expect((await defineCapability('embroidery')).status).toBe(201);
      const names = Array.from({ length: CONCURRENT_PUBLICATIONS }, (_, n) => `Embroidery ${n}`);
      const published = await Promise.all(
        names.map((name) =>
          asSystem((ctx) => standards.publishCapabilityVersion(ctx, 'embroidery', { name })),
        ),
      );
      expect(published.map((capability) => capability.version).sort((a, b) => a - b)).toEqual(
        names.map((_, n) => n + 2),
      );
      const versions = await standards.listCapabilityVersions(db, 'embroidery');
      expect(versions.map((version) => version.version)).toEqual([1, ...names.map((_, n) => n + 2)]);
      const current = await standards.getCapability(db, 'embroidery');
      expect(current.version).toBe(CONCURRENT_PUBLICATIONS + 1);
      expect(current.name).toBe(versions.at(-1)?.name);
    });

    it('checks a new version like a new capability, and publishes nothing when it fails', async () => {
      expect((await defineCapability('laundry')).status).toBe(201);
      const publish = (changes: Parameters<typeof standards.publishCapabilityVersion>[2]) =>
        asSystem((ctx) => standards.publishCapabilityVersion(ctx, 'laundry', changes));
      await expect(publish({ attributeSchema: { type: 'object', required: 'all' } })).rejects.toMatchObject({
        code: 'json_schema.invalid',
      });
      await expect(publish({ requiredCertifications: ['no-such-program'] })).rejects.toMatchObject({
        code: 'standards.unknown_program',
      });
      await expect(publish({ unit: 'Big Bags' })).rejects.toMatchObject({
        code: 'standards.capability_invalid',
      });
      await expect(
        asSystem((ctx) => standards.publishCapabilityVersion(ctx, 'no-such-capability', { name: 'X' })),
      ).rejects.toMatchObject({ code: 'standards.capability_not_found' });
      expect((await standards.getCapability(db, 'laundry')).version).toBe(1);
      expect(await standards.listCapabilityVersions(db, 'laundry')).toHaveLength(1);
    });

    it('never lets a published version change or disappear, even by direct SQL', async () => {
      expect((await defineCapability('tailoring')).status).toBe(201);
      await expect(
        sql`update capability_versions set name = 'Changed' where key = 'tailoring'`.execute(db),
      ).rejects.toThrow(/append-only/);
      await expect(sql`delete from capability_versions where key = 'tailoring'`.execute(db)).rejects.toThrow(
        /append-only/,
      );
      expect((await standards.getCapability(db, 'tailoring')).name).toBe('Capability tailoring');
    });

    it('lists the current version of every capability, by key', async () => {
      const list = await app.request<{ data: CapabilityBody[] }>('GET', '/v1/capabilities');
      const keys = list.body.data.map((capability) => capability.key);
      expect(keys).toEqual([...keys].sort());
      expect(new Set(keys).size).toBe(keys.length);
      expect(list.body.data.find((capability) => capability.key === 'catering')?.version).toBe(3);
    });
  });

  describe('checking attributes', () => {
    it('reports each field that breaks the current version, and nothing for attributes that conform', async () => {
      expect((await defineCapability('printing')).status).toBe(201);
      const conforming = { colour_fastness: 4, dyes: ['reactive'] };
      expect((await standards.checkAttributes(db, 'printing', conforming)).errors).toEqual([]);

      const { capability, errors } = await standards.checkAttributes(db, 'printing', {
        colour_fastness: 9,
        dyes: ['acid'],
        finish: 'matte',
      });
      expect(capability.version).toBe(1);
      expect(errors.map((error) => [error.path, error.rule])).toEqual(
        expect.arrayContaining([
          ['/colour_fastness', 'maximum'],
          ['/dyes/0', 'enum'],
          ['/finish', 'additionalProperties'],
        ]),
      );
      expect(
        (await standards.checkAttributes(db, 'printing', { dyes: [] })).errors.map((error) => [
          error.path,
          error.rule,
        ]),
      ).toEqual(
        expect.arrayContaining([
          ['/colour_fastness', 'required'],
          ['/dyes', 'minItems'],
        ]),
      );

      await asSystem((ctx) =>
        standards.publishCapabilityVersion(ctx, 'printing', {
          attributeSchema: {
            ...DYEING_SCHEMA,
            properties: { ...DYEING_SCHEMA.properties, width_cm: { type: 'integer' } },
            required: [...DYEING_SCHEMA.required, 'width_cm'],
          },
        }),
      );
      const against2 = await standards.checkAttributes(db, 'printing', conforming);
      expect(against2.capability.version).toBe(2);
      expect(against2.errors.map((error) => [error.path, error.rule])).toEqual([['/width_cm', 'required']]);

      await expect(standards.checkAttributes(db, 'no-such-capability', {})).rejects.toMatchObject({
        code: 'standards.capability_not_found',
      });
    });
  });

  describe('certification programs', () => {
    it('shows which capabilities require a program, following their current versions', async () => {
      const created = await createProgram('gots', 730);
      expect(created).toMatchObject({
        object: 'certification_program',
        key: 'gots',
        evidence: [{ key: 'report', description: 'The latest audit report' }],
        validity_days: 730,
        required_by: [],
      });
      expect((await defineCapability('organic-dyeing', { required_certifications: ['gots'] })).status).toBe(
        201,
      );
      expect((await defineCapability('organic-sewing', { required_certifications: ['gots'] })).status).toBe(
        201,
      );

      const key = await partnerKey();
      const shown = await app.request<ProgramBody>('GET', '/v1/certification-programs/gots', { key });
      expect(shown.status, shown.text).toBe(200);
      expect(shown.body.required_by).toEqual(['organic-dyeing', 'organic-sewing']);

      await asSystem((ctx) =>
        standards.publishCapabilityVersion(ctx, 'organic-sewing', { requiredCertifications: [] }),
      );
      const list = await app.request<{ data: ProgramBody[] }>('GET', '/v1/certification-programs', {
        key: await customerKey(),
      });
      expect(list.body.data.find((program) => program.key === 'gots')?.required_by).toEqual([
        'organic-dyeing',
      ]);
    });

    it('lets an admin change a program, audited, and keeps fields not named', async () => {
      await createProgram('haccp');
      app.clock.advance(1000);
      const changed = await app.request<ProgramBody>('PATCH', '/v1/certification-programs/haccp', {
        body: {
          evidence: [
            { key: 'report', description: 'The latest audit report' },
            { key: 'plan', description: 'The HACCP plan' },
          ],
          validity_days: 180,
        },
      });
      expect(changed.status, changed.text).toBe(200);
      expect(changed.body).toMatchObject({
        name: 'Program haccp',
        requirements: 'Meets the standard.',
        validity_days: 180,
        evidence: [{ key: 'report' }, { key: 'plan' }],
        updated_at: app.clock.now().toISOString(),
      });
      expect((await auditOf('standards.program.update', 'haccp')).map((record) => record.details)).toEqual([
        { changed: ['evidence', 'validity_days'] },
      ]);

      expectProblem(
        await app.request('PATCH', '/v1/certification-programs/no-such-program', { body: { name: 'X' } }),
        404,
        'standards.program_not_found',
      );
      expectProblem(
        await app.request('PATCH', '/v1/certification-programs/haccp', {
          body: {
            evidence: [
              { key: 'a', description: 'A' },
              { key: 'a', description: 'Again' },
            ],
          },
        }),
        400,
        'request.invalid',
      );
      const ops = await app.operatorKey('ops');
      expect(
        (await app.request('PATCH', '/v1/certification-programs/haccp', { key: ops, body: { name: 'X' } }))
          .status,
      ).toBe(403);
      // A body that fails the schema never reaches the action; a refusal of the action is audited.
      expect((await auditOf('standards.program.update', 'haccp')).map((record) => record.outcome)).toEqual([
        'succeeded',
        'denied',
      ]);
      expect(await auditOf('standards.program.update', 'no-such-program')).toEqual([
        { outcome: 'failed', error_code: 'standards.program_not_found', details: {} },
      ]);
    });

    it('refuses a second program with the same key', async () => {
      await createProgram('fsc');
      const again = await app.request('POST', '/v1/certification-programs', {
        body: { key: 'fsc', name: 'Again', evidence: [], validity_days: 30 },
      });
      expectProblem(again, 409, 'standards.program_exists');
      expect((await standards.getProgram(db, 'fsc')).name).toBe('Program fsc');
    });
  });
});
