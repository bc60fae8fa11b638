import fc from 'fast-check';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { AuditRecordJson, EventJson } from '../../kernel/http/platform-routes.js';
import type { Problem } from '../../kernel/http/problem.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import type { NewApiKeyJson, UserJson } from '../access/index.js';
import { PARTNER_STATES, type PartnerState, TRANSITIONS } from './domain/lifecycle.js';
import type { PartnerJson, RulesJson, TransitionJson } from './http/json.js';
import { RULES_GRACE_ENDED_JOB } from './service.js';

type PartnerBody = z.output<typeof PartnerJson>;
type UserBody = z.output<typeof UserJson>;
type RulesBody = z.output<typeof RulesJson>;
type TransitionBody = z.output<typeof TransitionJson>;
type EventBody = z.output<typeof EventJson>;
type AuditBody = z.output<typeof AuditRecordJson>;
type ApplicationBody = { partner: PartnerBody; owner: UserBody; api_key: z.output<typeof NewApiKeyJson> };
type Page<T> = { data: T[]; has_more: boolean; next_after: string | null };

const DAY_MS = 24 * 60 * 60 * 1000;
/** Reads of the event feed before giving up on an event showing up (see `feedUntil`). */
const FEED_READS_MAX = 100;
/** Pages of one list a test reads at most: more means the cursor is broken. */
const PAGES_MAX = 50;

describe('partner lifecycle and rules of engagement through the HTTP API', async () => {
  // Applications are public and limited per address; these tests make many from one.
  const app = await createTestApp({ config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000' } });
  let sequence = 0;

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string) {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }

  async function defineType(key: string) {
    const response = await app.request('POST', '/v1/partner-types', {
      body: { key, name: `Type ${key}`, profile_schema: { type: 'object' } },
    });
    expect(response.status, response.text).toBe(201);
  }

  async function publishRules(key: string, gracePeriodDays: number): Promise<RulesBody> {
    const response = await app.request<RulesBody>('POST', `/v1/partner-types/${key}/rules`, {
      body: {
        title: `Rules of ${key}`,
        body: 'Deliver on time; keep customers on the platform.',
        grace_period_days: gracePeriodDays,
      },
    });
    expect(response.status, response.text).toBe(201);
    return response.body;
  }

  async function apply(
    partnerType: string,
    fields: Record<string, unknown> = {},
  ): Promise<{ id: string; key: string; ownerId: string }> {
    const n = ++sequence;
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
    return {
      id: response.body.partner.id,
      key: response.body.api_key.secret,
      ownerId: response.body.owner.id,
    };
  }

  const reasonFor = (to: string) => `Moved to ${to} by a test.`;

  function transition(partnerId: string, to: string, key: string = app.adminKey) {
    return app.request<PartnerBody>('POST', `/v1/partners/${partnerId}/transitions`, {
      key,
      body: { to, reason: reasonFor(to) },
    });
  }

  async function moveThrough(partnerId: string, states: readonly string[]) {
    for (const to of states) {
      const response = await transition(partnerId, to);
      expect(response.status, response.text).toBe(200);
    }
  }

  function acceptRules(partner: { id: string; key: string }, version: number) {
    return app.request<PartnerBody>('POST', `/v1/partners/${partner.id}/rules-acceptances`, {
      key: partner.key,
      body: { version },
    });
  }

  async function getPartner(id: string, key: string = app.adminKey): Promise<PartnerBody> {
    const response = await app.request<PartnerBody>('GET', `/v1/partners/${id}`, { key });
    expect(response.status, response.text).toBe(200);
    return response.body;
  }

  async function history(id: string): Promise<TransitionBody[]> {
    const response = await app.request<Page<TransitionBody>>(
      'GET',
      `/v1/partners/${id}/transitions?limit=100`,
    );
    expect(response.status, response.text).toBe(200);
    return response.body.data;
  }

  async function transitionAudit(id: string): Promise<AuditBody[]> {
    const query = new URLSearchParams({
      target_id: id,
      action: 'participants.partner.transition',
      limit: '100',
    });
    const response = await app.request<Page<AuditBody>>('GET', `/v1/audit-records?${query}`);
    expect(response.status, response.text).toBe(200);
    return response.body.data;
  }

  async function userIdOf(key: string): Promise<string> {
    return (await app.request<UserBody>('GET', '/v1/me', { key })).body.id;
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

  async function readFeed(key: string, types: string): Promise<EventBody[]> {
    const pages = await readPages(async (after) => {
      const query = new URLSearchParams({ limit: '500', types, ...(after ? { after } : {}) });
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
  async function feedUntil(key: string, types: string, done: (events: EventBody[]) => boolean) {
    let events: EventBody[] = [];
    for (let read = 1; read <= FEED_READS_MAX; read++) {
      events = await readFeed(key, types);
      if (done(events)) return events;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return events;
  }

  describe('transitions', () => {
    it('takes an applicant through review to active, with a history row, an event and one audit record per move', async () => {
      await defineType('reviewed');
      const partner = await apply('reviewed');
      const ops = await app.operatorKey('ops');
      const adminId = await userIdOf(app.adminKey);
      const opsId = await userIdOf(ops);

      const reviewing = await transition(partner.id, 'under_review');
      expect(reviewing.status, reviewing.text).toBe(200);
      expect(reviewing.body).toMatchObject({
        state: 'under_review',
        state_reason: reasonFor('under_review'),
      });
      const approved = await transition(partner.id, 'active', ops);
      expect(approved.status, approved.text).toBe(200);
      expect(approved.body).toMatchObject({ state: 'active', can_take_work: true });
      expect((await getPartner(partner.id, partner.key)).state).toBe('active');

      expect(await history(partner.id)).toEqual([
        expect.objectContaining({ from: null, to: 'applied', actor: { kind: 'anonymous', id: null } }),
        expect.objectContaining({
          from: 'applied',
          to: 'under_review',
          reason: reasonFor('under_review'),
          actor: { kind: 'operator', id: adminId },
        }),
        expect.objectContaining({
          from: 'under_review',
          to: 'active',
          reason: reasonFor('active'),
          actor: { kind: 'operator', id: opsId },
        }),
      ]);

      const types = 'partner.review_started,partner.approved';
      const events = (
        await feedUntil(
          app.adminKey,
          types,
          (feed) => feed.filter((e) => e.subject_id === partner.id).length >= 2,
        )
      ).filter((event) => event.subject_id === partner.id);
      expect(events).toEqual([
        expect.objectContaining({
          type: 'partner.review_started',
          actor: { kind: 'operator', id: adminId },
          data: expect.objectContaining({ state: 'under_review', previous_state: 'applied' }),
        }),
        expect.objectContaining({
          type: 'partner.approved',
          actor: { kind: 'operator', id: opsId },
          data: expect.objectContaining({
            state: 'active',
            previous_state: 'under_review',
            reason: reasonFor('active'),
          }),
        }),
      ]);

      const audit = await transitionAudit(partner.id);
      expect(
        audit.map((record) => [record.outcome, record.actor.id, record.details.from, record.details.to]),
      ).toEqual([
        ['succeeded', adminId, 'applied', 'under_review'],
        ['succeeded', opsId, 'under_review', 'active'],
      ]);
    });

    it('announces each later move with its own event type', async () => {
      await defineType('moving');
      const partner = await apply('moving');
      const moves = [
        'under_review',
        'active',
        'probation',
        'active',
        'suspended',
        'probation',
        'suspended',
        'active',
        'offboarded',
      ];
      await moveThrough(partner.id, moves);

      const types = [
        'partner.review_started',
        'partner.approved',
        'partner.placed_on_probation',
        'partner.reinstated',
        'partner.suspended',
        'partner.offboarded',
      ].join(',');
      const events = (
        await feedUntil(
          app.adminKey,
          types,
          (feed) => feed.filter((event) => event.subject_id === partner.id).length >= moves.length,
        )
      ).filter((event) => event.subject_id === partner.id);
      expect(events.map((event) => event.type)).toEqual([
        'partner.review_started',
        'partner.approved',
        'partner.placed_on_probation',
        'partner.reinstated',
        'partner.suspended',
        'partner.placed_on_probation',
        'partner.suspended',
        'partner.reinstated',
        'partner.offboarded',
      ]);
      // The partner reads its own lifecycle in the feed too.
      const own = await feedUntil(partner.key, types, (feed) => feed.length >= moves.length);
      expect(own.map((event) => event.id)).toEqual(events.map((event) => event.id));

      expect((await history(partner.id)).map((row) => row.to)).toEqual(['applied', ...moves]);
      const audit = await transitionAudit(partner.id);
      expect(audit).toHaveLength(moves.length);
      expect(audit.every((record) => record.outcome === 'succeeded')).toBe(true);
    });

    it('refuses to approve a partner before its owner accepts the current rules, then approves it', async () => {
      await defineType('ruled');
      const rules = await publishRules('ruled', 14);
      const partner = await apply('ruled');
      await moveThrough(partner.id, ['under_review']);

      const refused = await transition(partner.id, 'active');
      expectProblem(refused, 409, 'participants.rules_not_accepted');
      expect(await getPartner(partner.id)).toMatchObject({
        state: 'under_review',
        rules: { status: 'pending', current_version: rules.version, accepted_version: null },
        can_take_work: false,
      });

      const accepted = await acceptRules(partner, rules.version);
      expect(accepted.status, accepted.text).toBe(200);
      expect(accepted.body.rules).toMatchObject({ status: 'accepted', accepted_version: rules.version });
      const approved = await transition(partner.id, 'active');
      expect(approved.status, approved.text).toBe(200);
      expect(approved.body).toMatchObject({ state: 'active', can_take_work: true });

      expect(
        (await transitionAudit(partner.id)).map((record) => [record.outcome, record.error_code]),
      ).toEqual([
        ['succeeded', null],
        ['failed', 'participants.rules_not_accepted'],
        ['succeeded', null],
      ]);
      expect((await history(partner.id)).map((row) => row.to)).toEqual(['applied', 'under_review', 'active']);
    });

    it('refuses moves the lifecycle does not allow, leaving the state as it was and auditing the failure', async () => {
      await defineType('strict');
      const partner = await apply('strict');

      const skip = expectProblem(
        await transition(partner.id, 'active'),
        409,
        'participants.transition_not_allowed',
      );
      expect(skip).toMatchObject({ from: 'applied', to: 'active', allowed: ['under_review', 'rejected'] });
      expectProblem(await transition(partner.id, 'applied'), 409, 'participants.transition_not_allowed');
      expect((await getPartner(partner.id)).state).toBe('applied');

      await moveThrough(partner.id, ['rejected']);
      for (const to of PARTNER_STATES) {
        expectProblem(await transition(partner.id, to), 409, 'participants.transition_not_allowed');
      }
      expect(await getPartner(partner.id)).toMatchObject({
        state: 'rejected',
        state_reason: reasonFor('rejected'),
      });
      expect((await history(partner.id)).map((row) => row.to)).toEqual(['applied', 'rejected']);

      const audit = await transitionAudit(partner.id);
      expect(audit.filter((record) => record.outcome === 'succeeded')).toHaveLength(1);
      const failed = audit.filter((record) => record.outcome === 'failed');
      expect(failed).toHaveLength(2 + PARTNER_STATES.length);
      expect(failed.every((record) => record.error_code === 'participants.transition_not_allowed')).toBe(
        true,
      );

      expectProblem(
        await transition('ptn_01h2xcejqtf2nbrexx3vqjhp41', 'under_review'),
        404,
        'participants.partner_not_found',
      );
    });

    it('lets only operator admins and ops move a partner', async () => {
      await defineType('guarded');
      const partner = await apply('guarded');
      const support = await app.operatorKey('support');
      const finance = await app.operatorKey('finance');

      expectProblem(await transition(partner.id, 'under_review', support), 403, 'auth.role_not_allowed');
      expectProblem(await transition(partner.id, 'under_review', finance), 403, 'auth.role_not_allowed');
      expectProblem(await transition(partner.id, 'under_review', partner.key), 403, 'auth.role_not_allowed');
      expectProblem(
        await app.request('POST', `/v1/partners/${partner.id}/transitions`, {
          key: null,
          body: { to: 'under_review', reason: 'Anonymous.' },
        }),
        401,
        'auth.key_required',
      );
      expect((await getPartner(partner.id)).state).toBe('applied');
      expect(await history(partner.id)).toHaveLength(1);

      const audit = await transitionAudit(partner.id);
      expect(audit.map((record) => record.outcome)).toEqual(['denied', 'denied', 'denied', 'denied']);
      expect(audit[0]).toMatchObject({
        actor: { kind: 'operator', id: await userIdOf(support), role: 'support' },
        error_code: 'auth.role_not_allowed',
      });
    });

    it('answers every move as the lifecycle model says, over random sequences of attempts', async () => {
      await defineType('modelled');
      const rules = await publishRules('modelled', 14);
      // Half of the attempts follow an allowed edge from the current state, so runs reach deep states.
      const attempt = fc.oneof(
        fc.record({ kind: fc.constant('any' as const), to: fc.constantFrom(...PARTNER_STATES) }),
        fc.record({ kind: fc.constant('allowed' as const), pick: fc.nat() }),
      );

      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.array(attempt, { minLength: 1, maxLength: 12 }),
          async (accepts, attempts) => {
            const partner = await apply('modelled', accepts ? { accept_rules_version: rules.version } : {});
            let state: PartnerState = 'applied';
            let moved = 0;
            for (const step of attempts) {
              const allowed: readonly PartnerState[] = TRANSITIONS[state];
              // A final state allows nothing: the attempt then tries approval, which must be refused.
              const to: PartnerState =
                step.kind === 'any' ? step.to : (allowed[step.pick % allowed.length] ?? 'active');
              const expected = !allowed.includes(to)
                ? 'participants.transition_not_allowed'
                : to === 'active' && !accepts
                  ? 'participants.rules_not_accepted'
                  : null;

              const response = await transition(partner.id, to);
              if (expected === null) {
                expect(response.status, response.text).toBe(200);
                expect(response.body.state).toBe(to);
                state = to;
                moved++;
              } else {
                expectProblem(response, 409, expected);
              }
              expect((await getPartner(partner.id)).state).toBe(state);
              const rows = await history(partner.id);
              expect(rows).toHaveLength(moved + 1);
              expect(rows.at(-1)?.to).toBe(state);
            }
            const audit = await transitionAudit(partner.id);
            expect(audit.filter((record) => record.outcome === 'succeeded')).toHaveLength(moved);
            expect(audit.filter((record) => record.outcome === 'failed')).toHaveLength(
              attempts.length - moved,
            );
          },
        ),
        { numRuns: 20 },
      );
    });
  });

  describe('rules of engagement', () => {
    it('lists published versions publicly, and lets only an admin publish', async () => {
      await defineType('published');
      await publishRules('published', 3);
      await publishRules('published', 5);
      const list = await app.request<{ data: RulesBody[] }>('GET', '/v1/partner-types/published/rules', {
        key: null,
      });
      expect(list.status).toBe(200);
      expect(list.body.data.map((rules) => [rules.version, rules.grace_period_days])).toEqual([
        [1, 3],
        [2, 5],
      ]);
      const second = await app.request<RulesBody>('GET', '/v1/partner-types/published/rules/2', {
        key: null,
      });
      expect(second.body).toEqual(list.body.data[1]);
      const type = await app.request<{ current_rules: RulesBody }>('GET', '/v1/partner-types/published', {
        key: null,
      });
      expect(type.body.current_rules).toEqual(list.body.data[1]);
      expectProblem(
        await app.request('GET', '/v1/partner-types/published/rules/3', { key: null }),
        404,
        'participants.rules_not_found',
      );

      const ops = await app.operatorKey('ops');
      expectProblem(
        await app.request('POST', '/v1/partner-types/published/rules', {
          key: ops,
          body: { title: 'Sneaky', body: 'No.', grace_period_days: 1 },
        }),
        403,
        'auth.role_not_allowed',
      );
      expectProblem(
        await app.request('POST', '/v1/partner-types/never-defined/rules', {
          body: { title: 'Lost', body: 'No type.', grace_period_days: 1 },
        }),
        404,
        'participants.partner_type_not_found',
      );
    });

    it('gives an engaged partner a grace period on new rules, then stops its work until it accepts them', async () => {
      await defineType('graceful');
      const v1 = await publishRules('graceful', 30);
      const partner = await apply('graceful', { accept_rules_version: v1.version });
      const appliedAt = app.clock.now();
      await moveThrough(partner.id, ['under_review', 'active']);
      const waiting = await apply('graceful', { accept_rules_version: v1.version });
      await moveThrough(waiting.id, ['under_review']);
      expect(await getPartner(partner.id)).toMatchObject({
        rules: { status: 'accepted' },
        can_take_work: true,
      });

      const publishedAt = app.clock.now();
      const graceUntil = new Date(publishedAt.getTime() + 7 * DAY_MS).toISOString();
      const v2 = await publishRules('graceful', 7);
      expect(v2).toMatchObject({ version: 2, published_at: publishedAt.toISOString() });
      expect(await getPartner(partner.id, partner.key)).toMatchObject({
        state: 'active',
        rules: { status: 'grace', current_version: 2, accepted_version: 1, grace_until: graceUntil },
        can_take_work: true,
      });
      // Grace is for partners already engaged; one still under review simply has rules to accept.
      expect(await getPartner(waiting.id)).toMatchObject({
        rules: { status: 'pending', current_version: 2, grace_until: null },
        can_take_work: false,
      });

      app.clock.advance(7 * DAY_MS - 1);
      expect(await getPartner(partner.id)).toMatchObject({ rules: { status: 'grace' }, can_take_work: true });
      app.clock.advance(1);
      expect(await getPartner(partner.id)).toMatchObject({
        state: 'active',
        rules: { status: 'lapsed', current_version: 2, accepted_version: 1, grace_until: graceUntil },
        can_take_work: false,
      });

      expectProblem(await acceptRules(partner, 1), 409, 'participants.rules_version_not_current');
      expectProblem(await acceptRules(partner, 3), 409, 'participants.rules_version_not_current');
      const accepted = await acceptRules(partner, 2);
      expect(accepted.status, accepted.text).toBe(200);
      expect(accepted.body).toMatchObject({
        rules: { status: 'accepted', current_version: 2, accepted_version: 2, grace_until: null },
        can_take_work: true,
      });
      const acceptedAt = app.clock.now();
      app.clock.advance(DAY_MS);
      // Accepting again changes nothing.
      expect((await acceptRules(partner, 2)).status).toBe(200);

      const rows = await app.baton.database.db
        .selectFrom('rules_acceptances')
        .select(['partner_type', 'version', 'user_id', 'accepted_at'])
        .where('partner_id', '=', partner.id)
        .orderBy('version')
        .execute();
      expect(rows).toEqual([
        { partner_type: 'graceful', version: 1, user_id: partner.ownerId, accepted_at: appliedAt },
        { partner_type: 'graceful', version: 2, user_id: partner.ownerId, accepted_at: acceptedAt },
      ]);
      expect((await getPartner(partner.id)).rules.accepted_version).toBe(2);
    });

    it('refuses an acceptance when the type has no rules, and to a member of the partner', async () => {
      await defineType('unruled');
      const partner = await apply('unruled');
      expectProblem(await acceptRules(partner, 1), 409, 'participants.rules_version_not_current');

      await defineType('member-ruled');
      const rules = await publishRules('member-ruled', 1);
      const owned = await apply('member-ruled');
      const member = await app.request<UserBody>('POST', `/v1/partners/${owned.id}/users`, {
        key: owned.key,
        body: { name: 'Member', email: `member-${++sequence}@example.test`, role: 'member' },
      });
      expect(member.status, member.text).toBe(201);
      const memberKey = await app.request<{ secret: string }>('POST', '/v1/api-keys', {
        key: owned.key,
        body: { name: 'member', user_id: member.body.id },
      });
      expectProblem(
        await acceptRules({ id: owned.id, key: memberKey.body.secret }, rules.version),
        403,
        'auth.role_not_allowed',
      );
      expect((await getPartner(owned.id)).rules.accepted_version).toBeNull();
    });

    it('enqueues the grace-ended job to run when each grace period ends', async () => {
      await defineType('timed');
      const first = await publishRules('timed', 10);
      app.clock.advance(DAY_MS);
      const second = await publishRules('timed', 3);

      const jobs = await sql<{ start_after: Date; data: { partnerType: string; version: number } }>`
        select start_after, data from pgboss.job
        where name = ${RULES_GRACE_ENDED_JOB} and data ->> 'partnerType' = 'timed'
        order by (data ->> 'version')::int
      `.execute(app.baton.database.db);
      expect(
        jobs.rows.map((job) => ({ data: job.data, startAfter: new Date(job.start_after).toISOString() })),
      ).toEqual(
        [first, second].map((rules) => ({
          data: { partnerType: 'timed', version: rules.version },
          startAfter: new Date(
            Date.parse(rules.published_at) + rules.grace_period_days * DAY_MS,
          ).toISOString(),
        })),
      );
    });

    it('announces lapsed rules for exactly the engaged partners of the type that did not accept them', async () => {
      await defineType('lapsing');
      await defineType('lapsing-other');
      // Approved while the type had no rules, so it never accepted any.
      const onProbation = await apply('lapsing');
      await moveThrough(onProbation.id, ['under_review', 'active', 'probation']);
      const elsewhere = await apply('lapsing-other');
      await moveThrough(elsewhere.id, ['under_review', 'active']);
      await publishRules('lapsing-other', 1);

      const v1 = await publishRules('lapsing', 5);
      const accepts = await apply('lapsing', { accept_rules_version: v1.version });
      const ignores = await apply('lapsing', { accept_rules_version: v1.version });
      const suspended = await apply('lapsing', { accept_rules_version: v1.version });
      const reviewing = await apply('lapsing');
      await moveThrough(accepts.id, ['under_review', 'active']);
      await moveThrough(ignores.id, ['under_review', 'active']);
      await moveThrough(suspended.id, ['under_review', 'active', 'suspended']);
      await moveThrough(reviewing.id, ['under_review']);

      const v2 = await publishRules('lapsing', 5);
      expect((await acceptRules(accepts, v2.version)).status).toBe(200);
      app.clock.advance(5 * DAY_MS);

      const announce = (version: number) =>
        runInTransaction(app.baton.database.db, (tx) =>
          app.baton.services.participants.announceLapsedRules(
            {
              db: tx,
              actor: { kind: 'system', name: 'test' },
              now: app.clock.now(),
              requestId: null,
              ip: null,
            },
            'lapsing',
            version,
          ),
        );
      // A version that is no longer current lapses nobody.
      expect(await announce(v1.version)).toEqual([]);
      const lapsed = await announce(v2.version);
      const expected = [ignores.id, onProbation.id].sort();
      expect([...lapsed].sort()).toEqual(expected);

      const events = (
        await feedUntil(
          app.adminKey,
          'partner.rules_lapsed',
          (feed) => feed.filter((event) => event.data.partner_type === 'lapsing').length >= expected.length,
        )
      ).filter((event) => event.data.partner_type === 'lapsing');
      expect(events.map((event) => event.subject_id).sort()).toEqual(expected);
      for (const event of events) {
        expect(event).toMatchObject({ actor: { kind: 'system', id: 'test' }, data: { version: v2.version } });
      }
      const own = await feedUntil(ignores.key, 'partner.rules_lapsed', (feed) => feed.length >= 1);
      expect(own.map((event) => event.subject_id)).toEqual([ignores.id]);
      expect(await readFeed(accepts.key, 'partner.rules_lapsed')).toEqual([]);

      // A suspended partner that let its rules lapse cannot be reinstated before it accepts them.
      expectProblem(await transition(suspended.id, 'active'), 409, 'participants.rules_not_accepted');
      expect((await acceptRules(suspended, v2.version)).status).toBe(200);
      expect((await transition(suspended.id, 'active')).status).toBe(200);
    });
  });
});
