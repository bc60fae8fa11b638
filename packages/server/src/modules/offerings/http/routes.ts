import { z } from 'zod';
import { type Access, ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { MoneyInput, page, pageQuery } from '../../../kernel/http/schemas.js';
import {
  DESCRIPTION_LENGTH_MAX,
  MARGIN_BPS_MAX,
  MAX_REDOS_MAX,
  type OfferingInput,
  QUANTITY_MAX,
  REGION_PATTERN,
} from '../domain/definition.js';
import {
  ATTRIBUTE_NAME_LENGTH_MAX,
  CONSTRAINT_STRING_LENGTH_MAX,
  CONSTRAINT_VALUES_MAX,
  CONSTRAINTS_MAX,
  QUANTITY_PER_UNIT_DECIMALS_MAX,
} from '../domain/graph.js';
import {
  KEY_PATTERN,
  OFFERING_REGIONS_MAX,
  OFFERING_STATUSES,
  REJECTION_POLICIES,
  STEPS_MAX,
} from '../domain/offering.js';
import type { OfferingsService } from '../service.js';
import { OfferingJson, OfferingVersionJson, offeringJson, offeringVersionJson } from './json.js';

const OFFERINGS = ['Offerings'];
/** Offerings are what the operator sells: its administrators and operations staff define them. */
const MANAGERS: Access = { operator: ['admin', 'ops'] };
/** Partners see what they may be asked to do, customers what they may buy: the active offerings. */
const READERS: Access = { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES, customer: true };
/** The largest value of a Postgres `integer`: versions beyond it name nothing. */
const INTEGER_MAX = 2_147_483_647;
/** Longest key, text or list a body may carry before the offering's own rules judge it. */
const TEXT_LENGTH_MAX = 400;

const offeringKey = z
  .string()
  .regex(KEY_PATTERN, 'must be a key such as "custom-garment" (lowercase, digits, dashes)');

// Keys, amounts, ranges and the steps' graph are checked by the offering's rules, so that every
// problem is reported at once (422 `offerings.definition_invalid`); the schema only bounds sizes.
const scalar = z.union([z.string().max(CONSTRAINT_STRING_LENGTH_MAX), z.number(), z.boolean()]);
const constraint = z
  .strictObject({
    eq: scalar.optional().describe('The attribute equals this value.'),
    in: z.array(scalar).max(CONSTRAINT_VALUES_MAX).optional().describe('The attribute is one of these.'),
    min: z.number().optional().describe('The attribute is a number at least this.'),
    max: z.number().optional().describe('The attribute is a number at most this.'),
  })
  .describe('Every condition given must hold; at least one is.');
const constraints = z
  .record(z.string().max(ATTRIBUTE_NAME_LENGTH_MAX), constraint)
  .refine((value) => Object.keys(value).length <= CONSTRAINTS_MAX, `at most ${CONSTRAINTS_MAX} constraints`)
  .describe(
    "Conditions on the offers' attributes, by attribute, as matching takes them: " +
      '`{ "weight_gsm": { "min": 120 } }`. Each must name an attribute of the capability\'s schema.',
  );
const stepKey = z.string().max(64);

const StepBody = z
  .strictObject({
    key: stepKey.describe('Unique within the offering: lowercase letters, digits and dashes.'),
    name: z.string().max(TEXT_LENGTH_MAX),
    capability: z.string().max(64).describe('The key of an existing capability.'),
    constraints: constraints.default({}),
    quantity_per_unit: z
      .string()
      .max(40)
      .default('1')
      .describe(
        `Units of the capability per unit of the order: a decimal string above 0 with at most ` +
          `${QUANTITY_PER_UNIT_DECIMALS_MAX} decimal places ("1.2" kg of fabric per garment). A leg's quantity is ` +
          "the order's quantity times this, rounded up.",
      ),
    after: z
      .array(stepKey)
      .max(STEPS_MAX * 2)
      .default([])
      .describe('Keys of the steps that must be done before this one starts; the steps form no cycle.'),
  })
  .meta({ id: 'OfferingStepDefinition' });

const PricingBody = z
  .discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('cost_plus'),
      margin_bps: z
        .number()
        .int()
        .describe(`The margin on the chosen partners' prices, 0 to ${MARGIN_BPS_MAX} basis points of them.`),
    }),
    z.strictObject({
      kind: z.literal('fixed'),
      unit_price: MoneyInput.describe("The customer's price per unit, above 0, in the offering's currency."),
    }),
  ])
  .meta({ id: 'OfferingPricingDefinition' });

const definitionFields = {
  name: z.string().max(TEXT_LENGTH_MAX),
  description: z
    .string()
    .max(DESCRIPTION_LENGTH_MAX * 2)
    .default(''),
  unit: z
    .string()
    .max(64)
    .describe('What the customer buys units of: a short lowercase word such as "garment".'),
  currency: z.string().max(8).describe('An ISO 4217 code: "EUR".'),
  pricing: PricingBody,
  regions: z
    .array(z.string().max(64))
    .max(OFFERING_REGIONS_MAX * 2)
    .describe(`1 to ${OFFERING_REGIONS_MAX} distinct region codes such as "eu-west".`),
  steps: z
    .array(StepBody)
    .max(STEPS_MAX * 2)
    .describe(`1 to ${STEPS_MAX} steps.`),
  quantity_min: z.number().int().default(1).describe('The fewest units one order may buy, at least 1.'),
  quantity_max: z.number().int().describe(`The most units one order may buy, at most ${QUANTITY_MAX}.`),
  quote_validity_minutes: z
    .number()
    .int()
    .default(30)
    .describe("How long a quote holds the partners' capacity, at most the catalog's longest hold."),
  acceptance_window_minutes: z
    .number()
    .int()
    .default(60)
    .describe('How long a partner has to accept a work order before the leg is planned again.'),
  auto_confirm_hours: z
    .number()
    .int()
    .default(72)
    .describe('How long after delivery a leg the customer has not judged confirms itself.'),
  rejection_policy: z.enum(REJECTION_POLICIES).default('refund'),
  max_redos: z
    .number()
    .int()
    .default(2)
    .describe(
      `Under \`redo\`, how many times a leg is done again after rejections (0 to ${MAX_REDOS_MAX}); the next rejection is refunded.`,
    ),
};
const definitionBody = z.strictObject(definitionFields);

/** A definition in the API's form, as the service takes it. */
function toInput(body: z.output<typeof definitionBody>): OfferingInput {
  return {
    name: body.name,
    description: body.description,
    unit: body.unit,
    currency: body.currency,
    pricing:
      body.pricing.kind === 'cost_plus'
        ? { kind: 'cost_plus', marginBps: body.pricing.margin_bps }
        : { kind: 'fixed', unitPrice: body.pricing.unit_price },
    regions: body.regions,
    steps: body.steps.map((step) => ({
      key: step.key,
      name: step.name,
      capability: step.capability,
      constraints: step.constraints,
      quantityPerUnit: step.quantity_per_unit,
      after: step.after,
    })),
    quantityMin: body.quantity_min,
    quantityMax: body.quantity_max,
    quoteValidityMinutes: body.quote_validity_minutes,
    acceptanceWindowMinutes: body.acceptance_window_minutes,
    autoConfirmHours: body.auto_confirm_hours,
    rejectionPolicy: body.rejection_policy,
    maxRedos: body.max_redos,
  };
}

const INVALID_DEFINITION =
  'A definition that breaks a rule is `422 offerings.definition_invalid` with an error per field (a cycle ' +
  'among the steps is named: "sewing → inspection → sewing"; a capability that does not exist, or a ' +
  "constraint on an attribute its schema lacks, is reported at the step's field), and nothing is stored.";

const keyParams = z.strictObject({ key: offeringKey });

export function offeringsRoutes(offerings: OfferingsService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/offerings',
      summary: 'Create an offering',
      description:
        'Publishes version 1 of a new offering: a dependency graph of steps, each bought from a partner with ' +
        `the capability it names. An existing key is \`409 offerings.already_exists\`. ${INVALID_DEFINITION}`,
      tags: OFFERINGS,
      access: MANAGERS,
      audit: { action: 'offerings.offering.publish' },
      body: z.strictObject({ key: offeringKey, ...definitionFields }).meta({ id: 'NewOffering' }),
      status: 201,
      response: OfferingJson,
      handler: async (ctx, { body }) => {
        const { key, ...definition } = body;
        return offeringJson(await offerings.publish(ctx, key, toInput(definition), 'create'));
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/offerings/:key/versions',
      summary: 'Publish a new version of an offering',
      description:
        'The new version is sold from now on; orders placed on earlier versions keep theirs. A retired offering ' +
        `is \`409 offerings.offering_retired\`. ${INVALID_DEFINITION}`,
      tags: OFFERINGS,
      access: MANAGERS,
      audit: { action: 'offerings.offering.publish', targetParam: 'key' },
      params: keyParams,
      body: definitionBody.meta({ id: 'NewOfferingVersion' }),
      status: 201,
      response: OfferingVersionJson,
      handler: async (ctx, { params, body }) =>
        offeringVersionJson((await offerings.publish(ctx, params.key, toInput(body), 'next')).version),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/offerings',
      summary: 'List offerings',
      description:
        'By key, each with the version sold now; `region` keeps those whose current version is sold there. ' +
        'Partners and customers see the active offerings only.',
      tags: OFFERINGS,
      access: READERS,
      query: z.strictObject({
        ...pageQuery,
        region: z.string().regex(REGION_PATTERN, 'must be a region code such as "eu-west"').optional(),
        status: z.enum(OFFERING_STATUSES).optional(),
      }),
      response: page(OfferingJson),
      handler: async (ctx, { query }) => {
        const { items, hasMore } = await offerings.listOfferings(ctx, {
          region: query.region,
          status: query.status,
          after: query.after,
          limit: query.limit,
        });
        return {
          data: items.map(offeringJson),
          has_more: hasMore,
          next_after: hasMore ? (items.at(-1)?.offering.key ?? null) : null,
        };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/offerings/:key',
      summary: 'Get an offering',
      description:
        'With the version sold now. `404 offerings.offering_not_found` when there is none, and to partners and ' +
        'customers when it is retired.',
      tags: OFFERINGS,
      access: READERS,
      params: keyParams,
      response: OfferingJson,
      handler: async (ctx, { params }) => offeringJson(await offerings.getOffering(ctx, params.key)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/offerings/:key/versions/:version',
      summary: 'Get one version of an offering',
      description:
        'Versions never change once published. `404 offerings.version_not_found` when there is none.',
      tags: OFFERINGS,
      access: READERS,
      params: z.strictObject({ key: offeringKey, version: z.coerce.number().int().min(1).max(INTEGER_MAX) }),
      response: OfferingVersionJson,
      handler: async (ctx, { params }) =>
        offeringVersionJson(await offerings.getVersionByNumber(ctx, params.key, params.version)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/offerings/:key/retire',
      summary: 'Retire an offering',
      description:
        'It takes no new quotes and no new versions; orders placed on it keep their version. An offering ' +
        'already retired is `409 offerings.offering_retired`.',
      tags: OFFERINGS,
      access: MANAGERS,
      audit: { action: 'offerings.offering.retire', targetParam: 'key' },
      params: keyParams,
      response: OfferingJson,
      handler: async (ctx, { params }) => offeringJson(await offerings.retire(ctx, params.key)),
    }),
  ];
}
