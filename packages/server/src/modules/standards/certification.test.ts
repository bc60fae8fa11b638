import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { systemActor } from '../../kernel/actor.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { Problem } from '../../kernel/http/problem.js';
import type { CertificationId, PartnerId } from '../../kernel/ids.js';
import { newId } from '../../kernel/ids.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { CertificationJson } from './http/json.js';
import { CERTIFICATION_EXPIRY_JOB, standardsJobs } from './jobs.js';

type CertificationBody = z.output<typeof CertificationJson>;
type Page<T> = { data: T[]; has_more: boolean; next_after: string | null };

const DAY_MS = 24 * 60 * 60 * 1000;
const FIRE_SAFETY_EVIDENCE = { licence: 'FS-2026-001', insurance: 'https://docs.example/insurance.pdf' };
/** Pages of one list a test reads at most: more means the cursor is broken. */
const PAGES_MAX = 50;
/** Simultaneous requests in the tests of races. */
const CONCURRENT_ATTEMPTS = 8;

interface TestPartner {
  readonly id: PartnerId;
  readonly ownerKey: string;
}

describe('certification', async () => {
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  const db = app.baton.database.db;
  const standards = app.baton.services.standards;
  const opsKey = await app.operatorKey('ops');
  let sequence = 0;

  expect(
    (
      await app.request('POST', '/v1/partner-types', {
        body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
      })
    ).status,
  ).toBe(201);
  await createProgram('fire-safety', 365, [
    { key: 'licence', description: 'The operating licence number' },
    { key: 'insurance', description: 'A link to the liability insurance certificate' },
  ]);
  await createProgram('hygiene', 30, [{ key: 'report', description: 'The latest inspection report' }]);

  async function createProgram(
    key: string,
    validityDays: number,
    evidence: { key: string; description: string }[],
  ) {
    const response = await app.request('POST', '/v1/certification-programs', {
      body: { key, name: `Program ${key}`, evidence, validity_days: validityDays },
    });
    expect(response.status, response.text).toBe(201);
  }

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }

  async function newPartner(): Promise<TestPartner> {
    const n = ++sequence;
    const response = await app.request<{ partner: { id: PartnerId }; api_key: { secret: string } }>(
      'POST',
      '/v1/partner-applications',
      {
        key: null,
        body: {
          partner_type: 'supplier',
          name: `Partner ${n}`,
          email: `partner-${n}@cert.test`,
          regions: ['eu'],
        },
      },
    );
    expect(response.status, response.text).toBe(201);
    return { id: response.body.partner.id, ownerKey: response.body.api_key.secret };
  }

  async function memberKey(partner: TestPartner): Promise<string> {
    const n = ++sequence;
    const member = await app.request<{ id: string }>('POST', `/v1/partners/${partner.id}/users`, {
      key: partner.ownerKey,
      body: { name: `Member ${n}`, email: `member-${n}@cert.test`, role: 'member' },
    });
    expect(member.status, member.text).toBe(201);
    const key = await app.request<{ secret: string }>('POST', '/v1/api-keys', {
      key: partner.ownerKey,
      body: { name: 'member', user_id: member.body.id },
    });
    expect(key.status, key.text).toBe(201);
    return key.body.secret;
  }

  function apply(
    partner: TestPartner,
    program: string,
    evidence: Record<string, string>,
    key = partner.ownerKey,
  ) {
    return app.request<CertificationBody>('POST', `/v1/partners/${partner.id}/certifications`, {
      key,
      body: { program, evidence },
    });
  }

  async function applied(partner: TestPartner, program: string): Promise<CertificationBody> {
    const response = await apply(
      partner,
      program,
      program === 'fire-safety' ? FIRE_SAFETY_EVIDENCE : { report: 'https://docs.example/report.pdf' },
    );
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  function decide(id: string, decision: 'grant' | 'reject' | 'revoke', body?: unknown, key = opsKey) {
    return app.request<CertificationBody>('POST', `/v1/certifications/${id}/${decision}`, {
      key,
      ...(body === undefined ? {} : { body }),
    });
  }

  async function granted(partner: TestPartner, program: string): Promise<CertificationBody> {
    const response = await decide((await applied(partner, program)).id, 'grant');
    expect(response.status, response.text).toBe(200);
    return response.body;
  }

  async function eventsOf(subjectId: string) {
    return db
      .selectFrom('events')
      .select(['type', 'data', 'audience', 'actor_kind', 'actor_id'])
      .where('subject_id', '=', subjectId)
      .orderBy('seq')
      .execute();
  }

  async function auditOf(action: string, targetId: string) {
    return db
      .selectFrom('audit_records')
      .select(['outcome', 'error_code', 'actor_role', 'details'])
      .where('action', '=', action)
      .where('target_id', '=', targetId)
      .orderBy('seq')
      .execute();
  }

  function expireAsSystem() {
    return runInTransaction(db, (tx) =>
      standards.expireCertifications({
        db: tx,
        actor: systemActor('test-expiry'),
        now: app.clock.now(),
        requestId: null,
        ip: null,
      }),
    );
  }

  const iso = (ms: number) => new Date(ms).toISOString();

  describe('applying', () => {
    it("takes a partner owner's application with every evidence item, announced to the partner and audited", async () => {
      const partner = await newPartner();
      const response = await apply(partner, 'fire-safety', FIRE_SAFETY_EVIDENCE);
      expect(response.status, response.text).toBe(201);
      expect(response.body).toEqual({
        id: expect.stringMatching(/^crt_/),
        object: 'certification',
        partner_id: partner.id,
        program: 'fire-safety',
        status: 'pending',
        evidence: FIRE_SAFETY_EVIDENCE,
        valid_from: null,
        valid_until: null,
        renewal_of: null,
        reason: null,
        applied_at: app.clock.now().toISOString(),
        decided_at: null,
      });
      expect(await eventsOf(response.body.id)).toEqual([
        {
          type: 'certification.applied',
          data: {
            id: response.body.id,
            partner_id: partner.id,
            program: 'fire-safety',
            status: 'pending',
            valid_from: null,
            valid_until: null,
          },
          audience: [partner.id],
          actor_kind: 'partner',
          actor_id: expect.stringMatching(/^usr_/),
        },
      ]);
      expect(await auditOf('standards.certification.apply', partner.id)).toEqual([
        {
          outcome: 'succeeded',
          error_code: null,
          actor_role: 'owner',
          details: { certification_id: response.body.id, program: 'fire-safety', renewal_of: null },
        },
      ]);
    });

    it('names each evidence item an application lacks or leaves blank, and refuses items not asked for', async () => {
      const partner = await newPartner();
      const missing = expectProblem(
        await apply(partner, 'fire-safety', { licence: '  ' }),
        422,
        'standards.evidence_missing',
      );
      expect(missing.errors?.map((error) => [error.path, error.rule])).toEqual([
        ['/evidence/licence', 'required'],
        ['/evidence/insurance', 'required'],
      ]);
      const unexpected = expectProblem(
        await apply(partner, 'fire-safety', { ...FIRE_SAFETY_EVIDENCE, shoe_size: '42' }),
        422,
        'standards.evidence_unexpected',
      );
      expect(unexpected.errors?.map((error) => error.path)).toEqual(['/evidence/shoe_size']);
      expectProblem(await apply(partner, 'no-such-program', {}), 404, 'standards.program_not_found');

      const list = await app.request<Page<CertificationBody>>(
        'GET',
        `/v1/partners/${partner.id}/certifications`,
        {
          key: partner.ownerKey,
        },
      );
      expect(list.body.data).toEqual([]);
      expect(
        (await auditOf('standards.certification.apply', partner.id)).map((record) => [
          record.outcome,
          record.error_code,
        ]),
      ).toEqual([
        ['failed', 'standards.evidence_missing'],
        ['failed', 'standards.evidence_unexpected'],
        ['failed', 'standards.program_not_found'],
      ]);
    });

    it('keeps one application per partner and program waiting for a decision at a time', async () => {
      const partner = await newPartner();
      const first = await applied(partner, 'hygiene');
      expectProblem(
        await apply(partner, 'hygiene', { report: 'Again.' }),
        409,
        'standards.application_pending',
      );
      // Another program is another queue.
      expect((await apply(partner, 'fire-safety', FIRE_SAFETY_EVIDENCE)).status).toBe(201);
      expect((await decide(first.id, 'reject', { reason: 'The report is unsigned.' })).status).toBe(200);
      expect((await apply(partner, 'hygiene', { report: 'Signed this time.' })).status).toBe(201);
    });

    it('accepts exactly one of many simultaneous applications for the same program', async () => {
      const partner = await newPartner();
      const answers = await Promise.all(
        Array.from({ length: CONCURRENT_ATTEMPTS }, (_, n) =>
          apply(partner, 'hygiene', { report: `Copy ${n}.` }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([
        201,
        ...Array<number>(CONCURRENT_ATTEMPTS - 1).fill(409),
      ]);
      const list = await app.request<Page<CertificationBody>>(
        'GET',
        `/v1/partners/${partner.id}/certifications`,
      );
      expect(list.body.data).toHaveLength(1);
    });

    it("lets an operator file on a partner's behalf, but not grant what it filed itself", async () => {
      const partner = await newPartner();
      const filed = await apply(partner, 'hygiene', { report: 'Received by post.' }, app.adminKey);
      expect(filed.status, filed.text).toBe(201);
      expectProblem(await decide(filed.body.id, 'grant', {}, app.adminKey), 403, 'standards.self_approval');
      expect((await decide(filed.body.id, 'grant', {}, opsKey)).body.status).toBe('granted');
      expect(
        (await auditOf('standards.certification.grant', filed.body.id)).map((record) => [
          record.outcome,
          record.actor_role,
        ]),
      ).toEqual([
        ['denied', 'admin'],
        ['succeeded', 'ops'],
      ]);
    });
  });

  describe('deciding', () => {
    it("grants from now for the program's validity, audited once and announced to the partner", async () => {
      const partner = await newPartner();
      const application = await applied(partner, 'fire-safety');
      expect(
        await standards.missingCertifications(db, partner.id, ['fire-safety', 'hygiene'], app.clock.now()),
      ).toEqual(['fire-safety', 'hygiene']);

      app.clock.advance(DAY_MS);
      const now = app.clock.now().getTime();
      const response = await decide(application.id, 'grant', { note: 'Licence checked with the registry.' });
      expect(response.status, response.text).toBe(200);
      expect(response.body).toMatchObject({
        status: 'granted',
        valid_from: iso(now),
        valid_until: iso(now + 365 * DAY_MS),
        reason: 'Licence checked with the registry.',
        decided_at: iso(now),
        renewal_of: null,
      });
      const seen = await app.request<CertificationBody>('GET', `/v1/certifications/${application.id}`, {
        key: partner.ownerKey,
      });
      expect(seen.body).toEqual(response.body);

      expect(
        await standards.missingCertifications(db, partner.id, ['fire-safety', 'hygiene'], app.clock.now()),
      ).toEqual(['hygiene']);
      const audit = await auditOf('standards.certification.grant', application.id);
      expect(audit).toEqual([
        {
          outcome: 'succeeded',
          error_code: null,
          actor_role: 'ops',
          details: {
            partner_id: partner.id,
            program: 'fire-safety',
            status: 'granted',
            reason: 'Licence checked with the registry.',
            valid_from: iso(now),
            valid_until: iso(now + 365 * DAY_MS),
          },
        },
      ]);
      expect(
        (await eventsOf(application.id)).map((event) => [event.type, event.data, event.audience]),
      ).toEqual([
        ['certification.applied', expect.anything(), [partner.id]],
        [
          'certification.granted',
          {
            id: application.id,
            partner_id: partner.id,
            program: 'fire-safety',
            status: 'granted',
            valid_from: iso(now),
            valid_until: iso(now + 365 * DAY_MS),
          },
          [partner.id],
        ],
      ]);
    });

    it('rejects with a reason the partner sees, and a decided application cannot be decided again', async () => {
      const partner = await newPartner();
      const application = await applied(partner, 'fire-safety');
      expectProblem(await decide(application.id, 'reject', {}), 400, 'request.invalid');
      const rejected = await decide(application.id, 'reject', { reason: 'The licence has lapsed.' });
      expect(rejected.body).toMatchObject({
        status: 'rejected',
        reason: 'The licence has lapsed.',
        valid_from: null,
        valid_until: null,
      });
      const seen = await app.request<CertificationBody>('GET', `/v1/certifications/${application.id}`, {
        key: partner.ownerKey,
      });
      expect(seen.body).toMatchObject({ status: 'rejected', reason: 'The licence has lapsed.' });

      expect(
        expectProblem(await decide(application.id, 'grant'), 409, 'standards.certification_not_decidable')
          .current_status,
      ).toBe('rejected');
      expectProblem(
        await decide(application.id, 'revoke', { reason: 'Revoke it too.' }),
        409,
        'standards.certification_not_decidable',
      );
      expect((await auditOf('standards.certification.reject', application.id)).map((r) => r.outcome)).toEqual(
        ['succeeded'],
      );
      expect(await auditOf('standards.certification.grant', application.id)).toEqual([
        {
          outcome: 'failed',
          error_code: 'standards.certification_not_decidable',
          actor_role: 'ops',
          details: {},
        },
      ]);
      expect((await eventsOf(application.id)).map((event) => event.type)).toEqual([
        'certification.applied',
        'certification.rejected',
      ]);
      expectProblem(await decide(newId('crt'), 'grant'), 404, 'standards.certification_not_found');
    });

    it('revokes a granted certification at once, so the partner no longer holds it', async () => {
      const partner = await newPartner();
      const certification = await granted(partner, 'hygiene');
      app.clock.advance(DAY_MS);
      const revoked = await decide(certification.id, 'revoke', { reason: 'Failed a spot check.' });
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.body).toMatchObject({
        status: 'revoked',
        reason: 'Failed a spot check.',
        valid_until: certification.valid_until,
        decided_at: app.clock.now().toISOString(),
      });
      expect(await standards.missingCertifications(db, partner.id, ['hygiene'], app.clock.now())).toEqual([
        'hygiene',
      ]);
      const valid = await standards.listValidCertifications(db, app.clock.now());
      expect(valid.filter((entry) => entry.partnerId === partner.id)).toEqual([]);
      expect((await eventsOf(certification.id)).at(-1)).toMatchObject({
        type: 'certification.revoked',
        data: { status: 'revoked' },
        audience: [partner.id],
      });
      expect(
        (await auditOf('standards.certification.revoke', certification.id)).map((r) => r.outcome),
      ).toEqual(['succeeded']);
    });

    it('leaves deciding to operator admins and ops', async () => {
      const partner = await newPartner();
      const application = await applied(partner, 'hygiene');
      for (const key of [
        partner.ownerKey,
        await app.operatorKey('finance'),
        await app.operatorKey('support'),
      ]) {
        expectProblem(await decide(application.id, 'grant', {}, key), 403, 'auth.role_not_allowed');
      }
      expect(
        (await auditOf('standards.certification.grant', application.id)).map((record) => record.outcome),
      ).toEqual(['denied', 'denied', 'denied']);
      expect(
        (await app.request<CertificationBody>('GET', `/v1/certifications/${application.id}`)).body.status,
      ).toBe('pending');
    });
  });

  describe('renewal', () => {
    it('starts a renewal granted while the certification holds exactly when it ends, so the cover has no gap', async () => {
      const partner = await newPartner();
      const first = await granted(partner, 'hygiene');
      const firstEnd = Date.parse(first.valid_until ?? '');

      app.clock.advance(20 * DAY_MS);
      const renewal = await applied(partner, 'hygiene');
      expect(renewal.renewal_of).toBe(first.id);
      app.clock.advance(DAY_MS);
      const renewed = await decide(renewal.id, 'grant');
      expect(renewed.body).toMatchObject({
        status: 'granted',
        renewal_of: first.id,
        valid_from: first.valid_until,
        valid_until: iso(firstEnd + 30 * DAY_MS),
      });

      const missingAt = (ms: number) =>
        standards.missingCertifications(db, partner.id, ['hygiene'], new Date(ms));
      expect(await missingAt(firstEnd - 1)).toEqual([]);
      expect(await missingAt(firstEnd)).toEqual([]);
      expect(await missingAt(firstEnd + 30 * DAY_MS - 1)).toEqual([]);
      expect(await missingAt(firstEnd + 30 * DAY_MS)).toEqual(['hygiene']);
      // Matching's index sees one unbroken cover, to the end of the renewal.
      const valid = await standards.listValidCertifications(db, app.clock.now());
      expect(valid.filter((entry) => entry.partnerId === partner.id)).toEqual([
        { partnerId: partner.id, programKey: 'hygiene', validUntil: new Date(firstEnd + 30 * DAY_MS) },
      ]);

      // When the first one ends, the job expires it and the renewal carries on.
      app.clock.set(new Date(firstEnd));
      expect(await expireAsSystem()).toContain(first.id);
      expect(
        (await app.request<CertificationBody>('GET', `/v1/certifications/${first.id}`)).body.status,
      ).toBe('expired');
      expect(
        (await app.request<CertificationBody>('GET', `/v1/certifications/${renewal.id}`)).body.status,
      ).toBe('granted');
      expect(await missingAt(app.clock.now().getTime())).toEqual([]);
    });

    it('starts a renewal granted after the old certification expired from the moment it is granted', async () => {
      const partner = await newPartner();
      const first = await granted(partner, 'hygiene');
      app.clock.advance(25 * DAY_MS);
      const renewal = await applied(partner, 'hygiene');
      expect(renewal.renewal_of).toBe(first.id);

      app.clock.advance(10 * DAY_MS);
      expect(await expireAsSystem()).toContain(first.id);
      const now = app.clock.now().getTime();
      const renewed = await decide(renewal.id, 'grant');
      expect(renewed.body).toMatchObject({
        status: 'granted',
        renewal_of: first.id,
        valid_from: iso(now),
        valid_until: iso(now + 30 * DAY_MS),
      });
      // There was a gap: between the end of the first and the grant of the renewal.
      expect(
        await standards.missingCertifications(db, partner.id, ['hygiene'], new Date(now - DAY_MS)),
      ).toEqual(['hygiene']);
    });
  });

  describe('expiry', () => {
    it('expires every certification whose validity ended, once, with an event each', async () => {
      const [alpha, bravo, holding] = [await newPartner(), await newPartner(), await newPartner()];
      const first = await granted(alpha, 'hygiene');
      const second = await granted(bravo, 'hygiene');
      const pending = await applied(bravo, 'fire-safety');
      app.clock.advance(DAY_MS);
      const later = await granted(holding, 'hygiene');

      app.clock.advance(29 * DAY_MS);
      // Validity is read from the dates: a certification stops counting when it ends, before the job runs.
      expect(await standards.missingCertifications(db, alpha.id, ['hygiene'], app.clock.now())).toEqual([
        'hygiene',
      ]);
      expect(await standards.missingCertifications(db, holding.id, ['hygiene'], app.clock.now())).toEqual([]);

      const expired = await expireAsSystem();
      expect(expired).toEqual(expect.arrayContaining([first.id, second.id]));
      expect(expired).not.toContain(later.id);
      expect(expired).not.toContain(pending.id);
      for (const [certification, partner] of [
        [first, alpha],
        [second, bravo],
      ] as const) {
        const shown = await app.request<CertificationBody>('GET', `/v1/certifications/${certification.id}`);
        expect(shown.body).toMatchObject({
          status: 'expired',
          valid_from: certification.valid_from,
          valid_until: certification.valid_until,
        });
        expect((await eventsOf(certification.id)).at(-1)).toEqual({
          type: 'certification.expired',
          data: {
            id: certification.id,
            partner_id: partner.id,
            program: 'hygiene',
            status: 'expired',
            valid_from: certification.valid_from,
            valid_until: certification.valid_until,
          },
          audience: [partner.id],
          actor_kind: 'system',
          actor_id: 'test-expiry',
        });
      }
      expect(
        (await app.request<CertificationBody>('GET', `/v1/certifications/${pending.id}`)).body.status,
      ).toBe('pending');

      // Running it again expires nothing twice.
      expect(await expireAsSystem()).not.toEqual(expect.arrayContaining([first.id]));
      expect(
        (await eventsOf(first.id)).filter((event) => event.type === 'certification.expired'),
      ).toHaveLength(1);
    });

    it('runs daily as a job that expires what has ended', async () => {
      const [job, ...others] = standardsJobs({ standards, db, clock: app.clock });
      expect(others).toEqual([]);
      expect(job).toMatchObject({ name: CERTIFICATION_EXPIRY_JOB, cron: '7 2 * * *' });

      const partner = await newPartner();
      const certification = await granted(partner, 'hygiene');
      app.clock.advance(30 * DAY_MS);
      await job?.handler({});
      const shown = await app.request<CertificationBody>('GET', `/v1/certifications/${certification.id}`);
      expect(shown.body.status).toBe('expired');
      expect((await eventsOf(certification.id)).at(-1)).toMatchObject({
        type: 'certification.expired',
        actor_kind: 'system',
        actor_id: 'certification-expiry',
      });
      expect(await standards.missingCertifications(db, partner.id, ['hygiene'], app.clock.now())).toEqual([
        'hygiene',
      ]);
    });
  });

  describe('who sees what', () => {
    it("answers another partner's certifications exactly as missing ones, and customers not at all", async () => {
      const [alpha, bravo] = [await newPartner(), await newPartner()];
      const theirs = await applied(alpha, 'hygiene');
      const own = await applied(bravo, 'hygiene');
      const alphaMember = await memberKey(alpha);
      const customer = await app.request<{ api_key: { secret: string } }>('POST', '/v1/customer-signups', {
        key: null,
        body: { kind: 'consumer', name: 'Carol', email: `carol-${++sequence}@cert.test` },
      });
      const customerKey = customer.body.api_key.secret;

      const comparable = (response: ApiResponse, id: string) => {
        const body = JSON.parse(response.text.replaceAll(id, '<id>')) as Record<string, unknown>;
        delete body.request_id;
        return { status: response.status, body };
      };
      const missingId = newId('crt');
      const theirsAnswer = await app.request('GET', `/v1/certifications/${theirs.id}`, {
        key: bravo.ownerKey,
      });
      const missingAnswer = await app.request('GET', `/v1/certifications/${missingId}`, {
        key: bravo.ownerKey,
      });
      expect(theirsAnswer.status).toBe(404);
      expect(comparable(theirsAnswer, theirs.id)).toEqual(comparable(missingAnswer, missingId));

      const missingPartner = newId('ptn');
      const listOf = (partnerId: string) =>
        app.request('GET', `/v1/partners/${partnerId}/certifications`, { key: bravo.ownerKey });
      const theirList = await listOf(alpha.id);
      expect(theirList.status).toBe(404);
      expect(comparable(theirList, alpha.id)).toEqual(
        comparable(await listOf(missingPartner), missingPartner),
      );
      expectProblem(
        await apply(alpha, 'fire-safety', FIRE_SAFETY_EVIDENCE, bravo.ownerKey),
        404,
        'standards.partner_not_found',
      );

      const ownList = await app.request<Page<CertificationBody>>(
        'GET',
        `/v1/partners/${bravo.id}/certifications`,
        {
          key: bravo.ownerKey,
        },
      );
      expect(ownList.body.data.map((certification) => certification.id)).toEqual([own.id]);
      expect((await app.request('GET', '/v1/certifications', { key: bravo.ownerKey })).status).toBe(403);

      // A partner's member reads its own partner's certifications but cannot apply.
      expect((await app.request('GET', `/v1/certifications/${theirs.id}`, { key: alphaMember })).status).toBe(
        200,
      );
      expect((await apply(alpha, 'fire-safety', FIRE_SAFETY_EVIDENCE, alphaMember)).status).toBe(403);

      for (const url of [`/v1/certifications/${theirs.id}`, `/v1/partners/${alpha.id}/certifications`]) {
        expect((await app.request('GET', url, { key: customerKey })).status).toBe(403);
      }
      await expect(
        standards.getCertification(
          { db, actor: systemActor('x'), now: app.clock.now(), requestId: null, ip: null },
          theirs.id as CertificationId,
        ),
      ).resolves.toMatchObject({ id: theirs.id });
    });

    it('lets operators search certifications by status, program and partner, a page at a time', async () => {
      const partner = await newPartner();
      const hygiene = await granted(partner, 'hygiene');
      const fire = await applied(partner, 'fire-safety');
      const supportKey = await app.operatorKey('support');

      const search = (query: Record<string, string>) =>
        app.request<Page<CertificationBody>>('GET', `/v1/certifications?${new URLSearchParams(query)}`, {
          key: supportKey,
        });
      expect((await search({ partner_id: partner.id })).body.data.map((c) => c.id)).toEqual([
        hygiene.id,
        fire.id,
      ]);
      expect(
        (await search({ partner_id: partner.id, status: 'pending' })).body.data.map((c) => c.id),
      ).toEqual([fire.id]);
      expect(
        (await search({ partner_id: partner.id, program: 'hygiene' })).body.data.map((c) => c.id),
      ).toEqual([hygiene.id]);

      const pending: string[] = [];
      let after: string | null = null;
      for (let pages = 0; pages < PAGES_MAX; pages++) {
        const page: Page<CertificationBody> = (
          await search({ status: 'pending', limit: '2', ...(after ? { after } : {}) })
        ).body;
        expect(page.data.length).toBeLessThanOrEqual(2);
        pending.push(...page.data.map((certification) => certification.id));
        after = page.next_after;
        if (!after) break;
      }
      expect(after).toBeNull();
      expect(pending).toEqual([...pending].sort());
      expect(new Set(pending).size).toBe(pending.length);
      expect(pending).toContain(fire.id);
      const all = await runInTransaction(db, (tx) =>
        tx.selectFrom('certifications').select('id').where('status', '=', 'pending').orderBy('id').execute(),
      );
      expect(pending).toEqual(all.map((row) => row.id));
    });
  });
});
