import { z } from 'zod';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { idSchema, iso, timestamp } from '../../../kernel/http/schemas.js';
import { HOLD_MINUTES_MAX } from '../../catalog/index.js';
import { type AttributeConstraint, QUERY_LIMIT_MAX } from '../domain/offer-index.js';
import {
  DEFAULT_SETTINGS,
  EXPOSURE_MIN_ALLOCATIONS_MAX,
  EXPOSURE_WINDOW_DAYS_MAX,
  MAX_PER_PARTNER_MAX,
  NEW_ENTRANT_BOOST_MAX,
  NEW_ENTRANT_DAYS_MAX,
  WEIGHT_MAX,
} from '../domain/settings.js';
import { matchingErrors } from '../errors.js';
import { type MatchingService, settingsFromJson, settingsJson } from '../service.js';
import {
  AllocationJson,
  allocationJson,
  ExplanationJson,
  explainRowJson,
  MatchJson,
  matchResultJson,
  SettingsJson,
  storedSettingsJson,
} from './json.js';

const TAGS = ['Matching'];
/** Largest quantity one piece of demand may ask for: the catalog's limit on an offer's quantities. */
const QUANTITY_MAX = 1_000_000_000_000;
const CONSTRAINTS_MAX = 20;
const CONSTRAINT_VALUES_MAX = 100;
const EXPLAIN_ROWS_MAX = 1000;

const capabilityKey = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,59}$/, 'must be a capability key such as "dyeing" (lowercase, digits, dashes)');
const region = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,31}$/,
    'must be a region code such as "eu-west" (lowercase letters, digits, dashes)',
  );
const quantity = z.number().int().positive().max(QUANTITY_MAX).describe('Units wanted, a whole number.');
const scalar = z.union([z.string().max(200), z.number(), z.boolean()]);
const constraint = z
  .strictObject({
    eq: scalar.optional().describe('The attribute equals this value.'),
    in: z
      .array(scalar)
      .min(1)
      .max(CONSTRAINT_VALUES_MAX)
      .optional()
      .describe('The attribute is one of these.'),
    min: z.number().optional().describe('The attribute is a number at least this.'),
    max: z.number().optional().describe('The attribute is a number at most this.'),
  })
  .refine((value) => Object.keys(value).length > 0, 'must have eq, in, min or max');
const constraints = z
  .record(z.string().min(1).max(100), constraint)
  .refine((value) => Object.keys(value).length <= CONSTRAINTS_MAX, `at most ${CONSTRAINTS_MAX} constraints`)
  .describe('Conditions on the offers\' attributes, by attribute: `{ "color": { "in": ["red", "blue"] } }`.');

const demandFields = {
  capability: capabilityKey,
  region,
  quantity,
  needed_by: timestamp.describe('When the work must be done.'),
  customer_id: idSchema('cus')
    .optional()
    .describe(
      "Whose demand it is, for the customer's affinity; a customer asking for itself may leave it out.",
    ),
  constraints: constraints.optional(),
};

const weight = z.number().min(0).max(WEIGHT_MAX);
const settingsBody = z.strictObject({
  weights: z
    .strictObject({
      price: weight.default(DEFAULT_SETTINGS.weights.price),
      quality: weight.default(DEFAULT_SETTINGS.weights.quality),
      reliability: weight.default(DEFAULT_SETTINGS.weights.reliability),
      lead_time: weight.default(DEFAULT_SETTINGS.weights.leadTime),
      affinity: weight.default(DEFAULT_SETTINGS.weights.affinity),
    })
    .default(settingsJson(DEFAULT_SETTINGS).weights),
  exposure_cap: z
    .strictObject({
      share: z.number().gt(0).max(1).default(DEFAULT_SETTINGS.exposureCapShare),
      window_days: z
        .number()
        .int()
        .min(1)
        .max(EXPOSURE_WINDOW_DAYS_MAX)
        .default(DEFAULT_SETTINGS.exposureWindowDays),
      min_allocations: z
        .number()
        .int()
        .min(0)
        .max(EXPOSURE_MIN_ALLOCATIONS_MAX)
        .default(DEFAULT_SETTINGS.exposureMinAllocations),
    })
    .default(settingsJson(DEFAULT_SETTINGS).exposure_cap),
  new_entrant: z
    .strictObject({
      boost: z.number().min(0).max(NEW_ENTRANT_BOOST_MAX).default(DEFAULT_SETTINGS.newEntrantBoost),
      days: z.number().int().min(0).max(NEW_ENTRANT_DAYS_MAX).default(DEFAULT_SETTINGS.newEntrantDays),
    })
    .default(settingsJson(DEFAULT_SETTINGS).new_entrant),
  max_per_partner: z.number().int().min(1).max(MAX_PER_PARTNER_MAX).default(DEFAULT_SETTINGS.maxPerPartner),
});

const capabilityParams = z.strictObject({ capability: capabilityKey });

/** Constraints arrive in a query string as JSON: parsed, then checked like a body's. */
function parseConstraints(text: string | undefined): Record<string, AttributeConstraint> | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw matchingErrors.constraintsMalformed('not JSON');
  }
  const result = constraints.safeParse(parsed);
  if (!result.success) {
    throw matchingErrors.constraintsMalformed(result.error.issues.map((issue) => issue.message).join('; '));
  }
  return result.data;
}

export function matchingRoutes(matching: MatchingService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/matching/queries',
      summary: 'Find the best offers for a piece of demand',
      description:
        'Filters the offers of the capability (active offer; partner active or on probation, within its rules of ' +
        'engagement and holding every certification the capability requires; region served; quantity within the ' +
        "offer's minimum and maximum; lead time that meets `needed_by`; free capacity in the period in which the " +
        'work must start; the attribute constraints), ranks them by a weighted score over price, quality, ' +
        "reliability, lead time and the customer's affinity, then applies the fairness controls (exposure cap, " +
        'new-entrant boost, at most `max_per_partner` offers of one partner before other partners). Every result ' +
        'carries its score breakdown. Answered from an in-memory index that follows the event log; reserving ' +
        'capacity (an allocation) checks the database.',
      tags: TAGS,
      access: { operator: ALL_OPERATOR_ROLES, customer: true },
      readOnly: true,
      body: z.strictObject({
        ...demandFields,
        limit: z.number().int().min(1).max(QUERY_LIMIT_MAX).default(10),
      }),
      response: MatchJson,
      handler: async (ctx, { body }) => {
        const neededBy = new Date(body.needed_by);
        const answer = await matching.query(ctx, {
          capability: body.capability,
          region: body.region,
          quantity: body.quantity,
          neededBy,
          customerId: body.customer_id,
          constraints: body.constraints,
          limit: body.limit,
        });
        return {
          object: 'match' as const,
          capability: body.capability,
          region: body.region,
          quantity: body.quantity,
          needed_by: iso(neededBy),
          candidates: answer.candidates,
          data: answer.results.map((result) => matchResultJson(result, ctx.actor)),
        };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/matching/explain',
      summary: 'Explain a ranking',
      description:
        'Every offer of the capability and region, ranked exactly as a query ranks them, each with its score ' +
        'breakdown, or with every filter that excluded it. Operators see every offer; a partner sees only its ' +
        "own offers' rows (their rank among all candidates, their breakdown, the filters that excluded them). " +
        'Name an `offer_id` to explain one offer, even one outside the capability or region.',
      tags: TAGS,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      query: z.strictObject({
        capability: capabilityKey,
        region,
        quantity: z.coerce.number().int().positive().max(QUANTITY_MAX),
        needed_by: timestamp,
        customer_id: idSchema('cus').optional(),
        constraints: z
          .string()
          .max(10_000)
          .optional()
          .describe('The constraints as JSON, as in a query: `{"color":{"eq":"red"}}`.'),
        offer_id: idSchema('off').optional(),
        partner_id: idSchema('ptn').optional().describe("Only this partner's offers (operators)."),
        limit: z.coerce.number().int().min(1).max(EXPLAIN_ROWS_MAX).default(100),
      }),
      response: ExplanationJson,
      handler: async (ctx, { query }) => {
        const neededBy = new Date(query.needed_by);
        const answer = await matching.explain(ctx, {
          capability: query.capability,
          region: query.region,
          quantity: query.quantity,
          neededBy,
          customerId: query.customer_id,
          constraints: parseConstraints(query.constraints),
          offerId: query.offer_id,
          partnerId: query.partner_id,
        });
        return {
          object: 'match_explanation' as const,
          capability: query.capability,
          region: query.region,
          quantity: query.quantity,
          needed_by: iso(neededBy),
          candidates: answer.candidates,
          total_rows: answer.rows.length,
          data: answer.rows.slice(0, query.limit).map(explainRowJson),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/matching/allocations',
      summary: 'Give a piece of demand to the best offer',
      description:
        'Ranks the candidates as a query does, then holds capacity on the best one through the catalog. When ' +
        'the catalog refuses (the capacity was taken since the index last heard), it tries the next one, and ' +
        'answers 409 `matching.no_candidate` when none can take it. The hold expires after `hold_minutes` ' +
        'unless confirmed. An allocation counts towards the exposure cap while its capacity is held or used: ' +
        'not once its hold lapses or its reservation is released (a quote never ordered, a declined leg).',
      tags: TAGS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'matching.allocation.create' },
      body: z.strictObject({
        ...demandFields,
        hold_minutes: z.number().int().min(1).max(HOLD_MINUTES_MAX).default(30),
        reference: z.string().trim().min(1).max(200).optional().describe('Your reference, kept on the hold.'),
      }),
      status: 201,
      response: AllocationJson,
      handler: async (ctx, { body }) =>
        allocationJson(
          await matching.allocate(ctx, {
            capability: body.capability,
            region: body.region,
            quantity: body.quantity,
            neededBy: new Date(body.needed_by),
            customerId: body.customer_id,
            constraints: body.constraints,
            holdMinutes: body.hold_minutes,
            reference: body.reference,
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/matching/settings',
      summary: 'List the capabilities with matching settings of their own',
      tags: TAGS,
      access: { operator: ALL_OPERATOR_ROLES },
      response: z.object({ data: z.array(SettingsJson) }),
      handler: async (ctx) => ({ data: (await matching.listSettings(ctx.db)).map(storedSettingsJson) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/matching/settings/:capability',
      summary: "Get a capability's matching settings",
      description: 'The settings of its own, or the defaults (`is_default`).',
      tags: TAGS,
      access: { operator: ALL_OPERATOR_ROLES },
      params: capabilityParams,
      response: SettingsJson,
      handler: async (ctx, { params }) =>
        storedSettingsJson(await matching.getSettings(ctx.db, params.capability)),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/matching/settings/:capability',
      summary: "Set a capability's matching settings",
      description:
        'Replaces the settings: a field left out takes its default. The weights need not sum to 1, but one must ' +
        'be above 0.',
      tags: TAGS,
      access: { operator: ['admin'] },
      audit: { action: 'matching.settings.update', targetParam: 'capability' },
      params: capabilityParams,
      body: settingsBody,
      response: SettingsJson,
      handler: async (ctx, { params, body }) =>
        storedSettingsJson(await matching.updateSettings(ctx, params.capability, settingsFromJson(body))),
    }),
  ];
}
