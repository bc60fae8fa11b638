import { z } from 'zod';
import type { FieldError } from '../../../kernel/errors.js';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { FieldErrorJson } from '../../../kernel/http/problem.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { idSchema, page, pageQuery, timestamp, toPage } from '../../../kernel/http/schemas.js';
import { CAPACITY_PERIODS, HOLD_MINUTES_MAX } from '../domain/capacity.js';
import {
  EXTERNAL_REF_LENGTH_MAX,
  IMPORT_ITEMS_MAX,
  INITIAL_OFFER_STATUSES,
  LEAD_TIME_HOURS_MAX,
  OFFER_STATUSES,
  QUANTITY_MAX,
  REGION_PATTERN,
  REGIONS_MAX,
  SETTABLE_OFFER_STATUSES,
} from '../domain/offer.js';
import type { CatalogService, ImportResult, OfferChanges, OfferInput } from '../service.js';
import { OfferJson, offerJson, ReservationJson, reservationJson } from './json.js';

/** Largest bulk import body: 1,000 offers with generous attributes. */
const IMPORT_BODY_LIMIT_BYTES = 4 * 1024 * 1024;
const REFERENCE_LENGTH_MAX = 200;

const capabilityKey = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,59}$/, 'must be a capability key such as "dyeing" (lowercase, digits, dashes)');
const quantity = z.number().int().positive().max(QUANTITY_MAX);
const externalRef = z
  .string()
  .trim()
  .min(1)
  .max(EXTERNAL_REF_LENGTH_MAX)
  .describe("The partner's own reference for the offer, unique among its offers.");
// Region codes, currencies and amounts are checked by the catalog itself, so that a wrong one is
// reported with the offer's other problems (422 `catalog.offer_invalid`).
const regions = z.array(z.string().max(64)).max(REGIONS_MAX);
const price = z.strictObject({
  amount: z
    .string()
    .max(40)
    .describe('A decimal string with at most the currency’s decimal places: "12.50".'),
  currency: z.string().max(8).describe('An ISO 4217 code: "EUR".'),
});

const offerFields = {
  external_ref: externalRef.nullable().optional(),
  attributes: z
    .record(z.string(), z.unknown())
    .describe("The offer's attributes, checked against the capability's attribute schema."),
  unit_price: price,
  min_quantity: quantity,
  max_quantity: quantity,
  lead_time_hours: z.number().int().min(0).max(LEAD_TIME_HOURS_MAX),
  regions,
  capacity_per_period: quantity.describe('Units the partner can deliver per capacity period.'),
  capacity_period: z.enum(CAPACITY_PERIODS),
};

const OfferBody = z
  .strictObject({
    capability: capabilityKey,
    ...offerFields,
    attributes: offerFields.attributes.default({}),
    status: z
      .enum(INITIAL_OFFER_STATUSES)
      .optional()
      .describe('`draft` (the default) or `active`. On an import update, leaving it out keeps the status.'),
  })
  .meta({ id: 'NewOffer' });

const OfferPatch = z.strictObject({
  external_ref: offerFields.external_ref,
  attributes: offerFields.attributes.optional(),
  unit_price: price.optional(),
  min_quantity: quantity.optional(),
  max_quantity: quantity.optional(),
  lead_time_hours: offerFields.lead_time_hours.optional(),
  regions: regions.optional(),
  capacity_per_period: quantity.optional(),
  capacity_period: offerFields.capacity_period.optional(),
});

const ImportResultJson = z.object({
  index: z.number().int().describe('The position of the item in `items`.'),
  status: z.enum(['created', 'updated', 'rejected']),
  offer_id: z.string().optional(),
  errors: z.array(FieldErrorJson).optional().describe('Why the item was rejected, per field of the item.'),
});

const partnerIdParams = z.strictObject({ partner_id: idSchema('ptn') });
const offerIdParams = z.strictObject({ offer_id: idSchema('off') });
const reservationIdParams = z.strictObject({ reservation_id: idSchema('rsv') });
const offerQuery = {
  ...pageQuery,
  capability: capabilityKey.optional(),
  status: z.enum(OFFER_STATUSES).optional(),
  region: z.string().regex(REGION_PATTERN, 'must be a region code such as "eu-west"').optional(),
};

const OFFERS = ['Offers'];
const CAPACITY = ['Capacity'];
/** Who manages a partner's offers: its staff, and operators on its behalf. */
const OFFER_WRITERS = { operator: ['admin', 'ops'], partner: ALL_PARTNER_ROLES } as const;
const CAPACITY_OPERATORS = { operator: ['admin', 'ops'] } as const;

function toInput(body: z.output<typeof OfferBody>): OfferInput {
  return {
    capability: body.capability,
    externalRef: body.external_ref,
    attributes: body.attributes,
    unitPrice: body.unit_price,
    minQuantity: BigInt(body.min_quantity),
    maxQuantity: BigInt(body.max_quantity),
    leadTimeHours: body.lead_time_hours,
    regions: body.regions,
    capacityPerPeriod: BigInt(body.capacity_per_period),
    capacityPeriod: body.capacity_period,
    status: body.status,
  };
}

function toChanges(body: z.output<typeof OfferPatch>): OfferChanges {
  const big = (value: number | undefined) => (value === undefined ? undefined : BigInt(value));
  return {
    externalRef: body.external_ref,
    attributes: body.attributes,
    unitPrice: body.unit_price,
    minQuantity: big(body.min_quantity),
    maxQuantity: big(body.max_quantity),
    leadTimeHours: body.lead_time_hours,
    regions: body.regions,
    capacityPerPeriod: big(body.capacity_per_period),
    capacityPeriod: body.capacity_period,
  };
}

/** A schema problem of one import item, in the form of the API's field errors, relative to the item. */
function issueErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  const pointer = (segments: readonly PropertyKey[]) =>
    segments.map((segment) => `/${String(segment).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
  return issues.flatMap((issue): FieldError[] =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          path: pointer([...issue.path, key]),
          rule: issue.code,
          message: `${key} is not a known field`,
        }))
      : [{ path: pointer(issue.path), rule: issue.code, message: issue.message }],
  );
}

function importResultJson(result: ImportResult): z.input<typeof ImportResultJson> {
  return {
    index: result.index,
    status: result.status,
    ...(result.offerId ? { offer_id: result.offerId } : {}),
    ...(result.errors ? { errors: result.errors.map((error) => ({ ...error })) } : {}),
  };
}

export function catalogRoutes(catalog: CatalogService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/offers',
      summary: 'Create an offer',
      description:
        "Checked as a whole against its own rules and the capability's current version: an invalid offer is " +
        '`422 catalog.offer_invalid` with an error per field, and nothing is stored.',
      tags: OFFERS,
      access: OFFER_WRITERS,
      params: partnerIdParams,
      body: OfferBody,
      status: 201,
      response: OfferJson,
      handler: async (ctx, { params, body }) =>
        offerJson(await catalog.createOffer(ctx, params.partner_id, toInput(body)), ctx.actor),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/offers/import',
      summary: 'Create or update many offers',
      description:
        `Up to ${IMPORT_ITEMS_MAX} offers, each as in "Create an offer". An item whose \`external_ref\` names an ` +
        'offer of the partner updates it. Valid items are stored and invalid ones reported, each with its errors.',
      tags: OFFERS,
      access: OFFER_WRITERS,
      bodyLimitBytes: IMPORT_BODY_LIMIT_BYTES,
      params: partnerIdParams,
      body: z.strictObject({
        items: z
          .array(z.unknown())
          .min(1)
          .max(IMPORT_ITEMS_MAX)
          .describe('Offers, each a `NewOffer`; an item that does not match it is rejected on its own.'),
      }),
      response: z.object({
        results: z.array(ImportResultJson),
        created: z.number().int(),
        updated: z.number().int(),
        rejected: z.number().int(),
      }),
      handler: async (ctx, { params, body }) => {
        const results: ImportResult[] = [];
        const valid: { index: number; input: OfferInput }[] = [];
        for (const [index, item] of body.items.entries()) {
          const parsed = OfferBody.safeParse(item);
          if (parsed.success) valid.push({ index, input: toInput(parsed.data) });
          else results.push({ index, status: 'rejected', errors: issueErrors(parsed.error.issues) });
        }
        const imported = await catalog.importOffers(
          ctx,
          params.partner_id,
          valid.map((item) => item.input),
        );
        for (const result of imported) {
          results.push({ ...result, index: valid[result.index]?.index ?? result.index });
        }
        results.sort((a, b) => a.index - b.index);
        const count = (status: ImportResult['status']) =>
          results.filter((result) => result.status === status).length;
        return {
          results: results.map(importResultJson),
          created: count('created'),
          updated: count('updated'),
          rejected: count('rejected'),
        };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/offers',
      summary: "A partner's offers",
      description: 'Every offer of the partner, whatever its status, oldest first.',
      tags: OFFERS,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      params: partnerIdParams,
      query: z.strictObject(offerQuery),
      response: page(OfferJson),
      handler: async (ctx, { params, query }) =>
        toPage(await catalog.listPartnerOffers(ctx, params.partner_id, query), (offer) =>
          offerJson(offer, ctx.actor),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/offers',
      summary: 'Search offers',
      description:
        'By capability, region, status and partner, oldest first. Operators see every offer; partners see the ' +
        'active offers and their own; customers the active offers, without their prices.',
      tags: OFFERS,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES, customer: true },
      query: z.strictObject({ ...offerQuery, partner_id: idSchema('ptn').optional() }),
      response: page(OfferJson),
      handler: async (ctx, { query }) =>
        toPage(await catalog.listOffers(ctx, { ...query, partnerId: query.partner_id }), (offer) =>
          offerJson(offer, ctx.actor),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/offers/:offer_id',
      summary: 'Get an offer',
      description: "A partner's own offers and, while active, everyone's.",
      tags: OFFERS,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES, customer: true },
      params: offerIdParams,
      response: OfferJson,
      handler: async (ctx, { params }) => offerJson(await catalog.getOffer(ctx, params.offer_id), ctx.actor),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/offers/:offer_id',
      summary: "Change an offer's terms",
      description:
        'Fields left out are kept; `attributes` and `regions` replace the old ones. The changed offer is checked ' +
        "as a whole against the capability's current version. A `non_compliant` offer that conforms again " +
        'becomes `paused`. The capability of an offer never changes.',
      tags: OFFERS,
      access: OFFER_WRITERS,
      params: offerIdParams,
      body: OfferPatch,
      response: OfferJson,
      handler: async (ctx, { params, body }) =>
        offerJson(await catalog.updateOffer(ctx, params.offer_id, toChanges(body)), ctx.actor),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/offers/:offer_id/status',
      summary: 'Activate, pause or withdraw an offer',
      description:
        'Only active offers are matched and reserved. Activating an offer re-checks it against the current ' +
        'version of its capability.',
      tags: OFFERS,
      access: OFFER_WRITERS,
      params: offerIdParams,
      body: z.strictObject({ status: z.enum(SETTABLE_OFFER_STATUSES) }),
      response: OfferJson,
      handler: async (ctx, { params, body }) =>
        offerJson(await catalog.setOfferStatus(ctx, params.offer_id, body.status), ctx.actor),
    }),

    defineRoute({
      method: 'POST',
      url: '/v1/offers/:offer_id/reservations',
      summary: "Hold some of an offer's capacity",
      description:
        'Holds `quantity` in the capacity period containing `at` for `hold_minutes`, after which the hold ' +
        'expires by itself unless confirmed. Never overbooks: `409 catalog.capacity_exceeded` when the period ' +
        'has too little left.',
      tags: CAPACITY,
      access: CAPACITY_OPERATORS,
      params: offerIdParams,
      body: z.strictObject({
        quantity,
        at: timestamp.describe('Any time within the capacity period to reserve in.'),
        hold_minutes: z.number().int().min(1).max(HOLD_MINUTES_MAX),
        reference: z.string().trim().min(1).max(REFERENCE_LENGTH_MAX).optional(),
      }),
      status: 201,
      response: ReservationJson,
      handler: async (ctx, { params, body }) =>
        reservationJson(
          await catalog.reserve(ctx, {
            offerId: params.offer_id,
            quantity: BigInt(body.quantity),
            at: new Date(body.at),
            holdMinutes: body.hold_minutes,
            reference: body.reference,
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/reservations/:reservation_id',
      summary: 'Get a reservation',
      tags: CAPACITY,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      params: reservationIdParams,
      response: ReservationJson,
      handler: async (ctx, { params }) =>
        reservationJson(await catalog.getReservation(ctx, params.reservation_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/reservations/:reservation_id/confirm',
      summary: 'Confirm a hold',
      description: 'A confirmed reservation never expires; it keeps its capacity until released.',
      tags: CAPACITY,
      access: CAPACITY_OPERATORS,
      params: reservationIdParams,
      response: ReservationJson,
      handler: async (ctx, { params }) =>
        reservationJson(await catalog.confirmReservation(ctx, params.reservation_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/reservations/:reservation_id/release',
      summary: 'Release a reservation',
      description: 'Gives a held or confirmed reservation’s capacity back; releasing twice changes nothing.',
      tags: CAPACITY,
      access: CAPACITY_OPERATORS,
      params: reservationIdParams,
      response: ReservationJson,
      handler: async (ctx, { params }) =>
        reservationJson(await catalog.releaseReservation(ctx, params.reservation_id)),
    }),
  ];
}
