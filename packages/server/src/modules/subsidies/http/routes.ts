import { z } from 'zod';
import { ALL_OPERATOR_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import {
  idSchema,
  MoneyInput,
  name,
  page,
  pageQuery,
  timestamp,
  toPage,
} from '../../../kernel/http/schemas.js';
import {
  KINDS,
  PROGRAMME_STATUSES,
  SHARE_BPS_MAX,
  SIDES,
  TARGET_KEY_PATTERN,
  TARGETS_MAX,
} from '../domain/programme.js';
import type { SubsidiesService } from '../service.js';
import { ProgrammeJson, programmeJson, ReportJson, reportJson } from './json.js';

const SUBSIDIES = ['Subsidies'];
/** Subsidy programmes move the operator's money: administrators and finance staff manage them. */
const MANAGERS = { operator: ['admin', 'finance'] } as const;
const READERS = { operator: ALL_OPERATOR_ROLES } as const;

// Keys are checked by the programme rules, so that a wrong one is reported with the others (422).
const targetList = z
  .array(z.string().max(64))
  .max(TARGETS_MAX * 2)
  .default([]);

const ProgrammeBody = z
  .strictObject({
    name,
    side: z.enum(SIDES),
    kind: z.enum(KINDS),
    share_bps: z.number().int().min(1).max(SHARE_BPS_MAX).describe('10000 pays the whole fee.'),
    budget: MoneyInput,
    cap_per_participant: MoneyInput,
    starts_at: timestamp,
    ends_at: timestamp,
    targeting: z
      .strictObject({
        partner_types: targetList,
        regions: targetList,
        customer_segments: targetList,
        capabilities: targetList,
      })
      .default({ partner_types: [], regions: [], customer_segments: [], capabilities: [] })
      .describe(
        `Up to ${TARGETS_MAX} keys per list matching ${TARGET_KEY_PATTERN.source}; an empty list does not narrow ` +
          'the programme. Partner types are for partner-side programmes. Segments are those of the customers ' +
          'whose orders the programme pays for, on either side.',
      ),
  })
  .meta({ id: 'NewSubsidyProgramme' });

const programmeIdParams = z.strictObject({ programme_id: idSchema('sbp') });

export function subsidiesRoutes(subsidies: SubsidiesService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/subsidies/programmes',
      summary: 'Create a subsidy programme',
      description:
        'Creates a `draft`; no money moves until it is activated. Terms that break a rule are ' +
        '`422 subsidies.programme_invalid` with an error per field, and nothing is stored.',
      tags: SUBSIDIES,
      access: MANAGERS,
      audit: { action: 'subsidies.programme.create' },
      body: ProgrammeBody,
      status: 201,
      response: ProgrammeJson,
      handler: async (ctx, { body }) =>
        programmeJson(
          await subsidies.createProgramme(ctx, {
            name: body.name,
            side: body.side,
            kind: body.kind,
            shareBps: body.share_bps,
            budget: body.budget,
            capPerParticipant: body.cap_per_participant,
            startsAt: new Date(body.starts_at),
            endsAt: new Date(body.ends_at),
            targeting: {
              partnerTypes: body.targeting.partner_types,
              regions: body.targeting.regions,
              customerSegments: body.targeting.customer_segments,
              capabilities: body.targeting.capabilities,
            },
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/subsidies/programmes',
      summary: 'List subsidy programmes',
      description: 'Oldest first, each with its totals: funded, spent, returned and remaining.',
      tags: SUBSIDIES,
      access: READERS,
      query: z.strictObject({
        ...pageQuery,
        status: z.enum(PROGRAMME_STATUSES).optional(),
        side: z.enum(SIDES).optional(),
      }),
      response: page(ProgrammeJson),
      handler: async (ctx, { query }) =>
        toPage(
          await subsidies.listProgrammes(ctx, {
            status: query.status,
            side: query.side,
            after: query.after,
            limit: query.limit,
          }),
          programmeJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/subsidies/programmes/:programme_id',
      summary: 'Get a subsidy programme',
      description: '`404 subsidies.programme_not_found` when there is none.',
      tags: SUBSIDIES,
      access: READERS,
      params: programmeIdParams,
      response: ProgrammeJson,
      handler: async (ctx, { params }) =>
        programmeJson(await subsidies.getProgramme(ctx, params.programme_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/subsidies/programmes/:programme_id/activate',
      summary: 'Fund and activate a programme',
      description:
        'Moves the budget from the operator’s subsidy funding into the programme’s budget account and makes ' +
        'the programme `active`; it pays from `starts_at` on. Only a draft can be activated ' +
        '(`409 subsidies.status_not_allowed`), and only before `ends_at` (`409 subsidies.window_over`).',
      tags: SUBSIDIES,
      access: MANAGERS,
      audit: { action: 'subsidies.programme.activate', targetParam: 'programme_id' },
      idempotencyKey: 'required',
      params: programmeIdParams,
      response: ProgrammeJson,
      handler: async (ctx, { params }) => programmeJson(await subsidies.activate(ctx, params.programme_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/subsidies/programmes/:programme_id/top-ups',
      summary: 'Top up a programme’s budget',
      description:
        'Adds to the budget of an `active` or `exhausted` programme; an exhausted one becomes `active` again. ' +
        'Errors: `409 subsidies.status_not_allowed`, `409 subsidies.window_over`, `422 subsidies.amount_invalid` ' +
        '(not positive, or not in the programme’s currency).',
      tags: SUBSIDIES,
      access: MANAGERS,
      audit: { action: 'subsidies.programme.top_up', targetParam: 'programme_id' },
      idempotencyKey: 'required',
      params: programmeIdParams,
      body: z.strictObject({ amount: MoneyInput }),
      response: ProgrammeJson,
      handler: async (ctx, { params, body }) =>
        programmeJson(await subsidies.topUp(ctx, params.programme_id, body.amount)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/subsidies/programmes/:programme_id/cancel',
      summary: 'Cancel a programme',
      description:
        'Stops the programme for good; what is left of its budget goes back to the operator’s subsidy funding. ' +
        'An ended or cancelled programme is `409 subsidies.status_not_allowed`.',
      tags: SUBSIDIES,
      access: MANAGERS,
      audit: { action: 'subsidies.programme.cancel', targetParam: 'programme_id' },
      idempotencyKey: 'required',
      params: programmeIdParams,
      response: ProgrammeJson,
      handler: async (ctx, { params }) => programmeJson(await subsidies.cancel(ctx, params.programme_id)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/subsidies/programmes/:programme_id/report',
      summary: 'Report on a programme’s spend',
      description:
        'Budget, funded, spent, returned and remaining (the ledger balance of the budget account), the number ' +
        'of applications, and the spend per participant, paginated by participant id (`limit`, `after`). ' +
        '`404 subsidies.programme_not_found` when there is none.',
      tags: SUBSIDIES,
      access: READERS,
      params: programmeIdParams,
      query: z.strictObject(pageQuery),
      response: ReportJson,
      handler: async (ctx, { params, query }) =>
        reportJson(
          await subsidies.report(ctx, params.programme_id, { after: query.after, limit: query.limit }),
        ),
    }),
  ];
}
