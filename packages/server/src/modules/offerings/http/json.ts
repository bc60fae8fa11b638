import { z } from 'zod';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import { topologicalOrder } from '../domain/graph.js';
import {
  OFFERING_STATUSES,
  type Offering,
  type OfferingVersion,
  REJECTION_POLICIES,
  type StepDefinition,
} from '../domain/offering.js';

const scalar = z.union([z.string(), z.number(), z.boolean()]);

export const ConstraintJson = z
  .object({
    eq: scalar.optional().describe('The attribute equals this value.'),
    in: z.array(scalar).optional().describe('The attribute is one of these.'),
    min: z.number().optional().describe('The attribute is a number at least this.'),
    max: z.number().optional().describe('The attribute is a number at most this.'),
  })
  .meta({ id: 'OfferingStepConstraint' });

export const StepJson = z
  .object({
    key: z.string(),
    name: z.string(),
    capability: z.string().describe('The capability a partner must offer to do this step.'),
    constraints: z
      .record(z.string(), ConstraintJson)
      .describe("Conditions on the offers' attributes, by attribute, as matching takes them."),
    quantity_per_unit: z
      .string()
      .describe(
        'Units of the capability per unit of the order, a decimal string ("1.2" kg of fabric per garment). ' +
          "A leg's quantity is the order's quantity times this, rounded up.",
      ),
    after: z.array(z.string()).describe('Keys of the steps that must be done before this one starts.'),
  })
  .meta({ id: 'OfferingStep' });

export const PricingJson = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('cost_plus'),
      margin_bps: z
        .number()
        .int()
        .describe("The margin on the chosen partners' prices, in basis points of them."),
    }),
    z.object({
      kind: z.literal('fixed'),
      unit_price: MoneyJson.describe("The customer's price per unit of the order."),
    }),
  ])
  .meta({ id: 'OfferingPricing' });

export const OfferingVersionJson = z
  .object({
    object: z.literal('offering_version'),
    id: z.string(),
    offering_key: z.string(),
    version: z.number().int(),
    name: z.string(),
    description: z.string(),
    unit: z.string().describe('What the customer buys units of: `garment`, `meal`, `trip`.'),
    currency: z.string(),
    pricing: PricingJson,
    regions: z.array(z.string()).describe('The region codes the version is sold in.'),
    steps: z.array(StepJson).describe('The steps, as defined; `after` makes them a dependency graph.'),
    step_order: z
      .array(z.string())
      .describe('The step keys in an order that puts every step after its predecessors.'),
    quantity_min: z.number().int(),
    quantity_max: z.number().int(),
    quote_validity_minutes: z.number().int().describe("How long a quote holds the partners' capacity."),
    acceptance_window_minutes: z
      .number()
      .int()
      .describe('How long a partner has to accept a work order before the leg is planned again.'),
    auto_confirm_hours: z
      .number()
      .int()
      .describe('How long after delivery a leg the customer has not judged confirms itself.'),
    rejection_policy: z
      .enum(REJECTION_POLICIES)
      .describe('What happens when the customer rejects a delivered leg: `refund` or `redo`.'),
    max_redos: z
      .number()
      .int()
      .describe(
        'Under `redo`, how many times a leg is done again after rejections; the next one is refunded.',
      ),
    published_at: timestamp,
    published_by: z.string().nullable(),
  })
  .meta({ id: 'OfferingVersion' });

export const OfferingJson = z
  .object({
    object: z.literal('offering'),
    key: z.string(),
    name: z.string(),
    status: z
      .enum(OFFERING_STATUSES)
      .describe('`active` offerings are sold; `retired` ones take no new quotes.'),
    current_version: OfferingVersionJson.describe('The version sold now.'),
    created_at: timestamp,
    updated_at: timestamp,
    retired_at: timestamp.nullable(),
  })
  .meta({ id: 'Offering' });

const stepJson = (step: StepDefinition): z.input<typeof StepJson> => ({
  key: step.key,
  name: step.name,
  capability: step.capability,
  constraints: Object.fromEntries(
    Object.entries(step.constraints).map(([attribute, constraint]) => [
      attribute,
      {
        ...(constraint.eq !== undefined ? { eq: constraint.eq } : {}),
        ...(constraint.in !== undefined ? { in: [...constraint.in] } : {}),
        ...(constraint.min !== undefined ? { min: constraint.min } : {}),
        ...(constraint.max !== undefined ? { max: constraint.max } : {}),
      },
    ]),
  ),
  quantity_per_unit: step.quantityPerUnit,
  after: [...step.after],
});

/** A version in the API's form; money as strings, so a price is exact. */
export const offeringVersionJson = (version: OfferingVersion): z.input<typeof OfferingVersionJson> => ({
  object: 'offering_version',
  id: version.id,
  offering_key: version.offeringKey,
  version: version.version,
  name: version.name,
  description: version.description,
  unit: version.unit,
  currency: version.currency,
  pricing:
    version.pricing.kind === 'fixed'
      ? { kind: 'fixed', unit_price: moneyJson(version.pricing.unitPriceMinor, version.currency) }
      : { kind: 'cost_plus', margin_bps: version.pricing.marginBps },
  regions: [...version.regions],
  steps: version.steps.map(stepJson),
  step_order: topologicalOrder(version.steps),
  quantity_min: version.quantityMin,
  quantity_max: version.quantityMax,
  quote_validity_minutes: version.quoteValidityMinutes,
  acceptance_window_minutes: version.acceptanceWindowMinutes,
  auto_confirm_hours: version.autoConfirmHours,
  rejection_policy: version.rejectionPolicy,
  max_redos: version.maxRedos,
  published_at: iso(version.publishedAt),
  published_by: version.publishedBy,
});

/** An offering with its current version in the API's form; also the `offering` of its events. */
export const offeringJson = ({
  offering,
  version,
}: {
  readonly offering: Offering;
  readonly version: OfferingVersion;
}): z.input<typeof OfferingJson> => ({
  object: 'offering',
  key: offering.key,
  name: offering.name,
  status: offering.status,
  current_version: offeringVersionJson(version),
  created_at: iso(offering.createdAt),
  updated_at: iso(offering.updatedAt),
  retired_at: isoOrNull(offering.retiredAt),
});
