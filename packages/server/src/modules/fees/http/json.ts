import { z } from 'zod';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import type { FeeRule } from '../domain/schedule.js';
import { ROUNDINGS } from '../domain/schedule.js';
import { PLAN_INTERVALS, SUBSCRIPTION_STATUSES } from '../domain/subscription.js';
import type { Quote } from '../service.js';
import type {
  FeeScheduleVersion,
  ServiceCharge,
  Subscription,
  SubscriptionCharge,
  SubscriptionPlan,
  ValueAddedService,
} from '../store/fees-store.js';

export const FeeRuleJson = z
  .object({
    id: z.string(),
    capability: z.string().nullable().describe('The capability it applies to; null for any.'),
    partner_type: z.string().nullable().describe('The partner type it applies to; null for any.'),
    tier: z.string().nullable().describe('The partner tier it applies to; null for any.'),
    region: z.string().nullable().describe('The region of the order; null for any.'),
    customer_segment: z.string().nullable().describe("The customer's segment; null for any."),
    commission_bps: z.number().int().describe('Commission in basis points of the amount (100 = 1 %).'),
    fixed: MoneyJson.describe('Added to the percentage part.'),
    floor: MoneyJson.nullable().describe('The least fee the rule charges (never more than the amount).'),
    cap: MoneyJson.nullable().describe('The most fee the rule charges.'),
    rounding: z.enum(ROUNDINGS).describe('How the percentage part is rounded to minor units.'),
  })
  .meta({ id: 'FeeRule' });

export const FeeScheduleVersionJson = z
  .object({
    id: z.string(),
    object: z.literal('fee_schedule_version'),
    currency: z.string(),
    effective_from: timestamp.describe(
      'In force from then until the next version of the currency takes effect.',
    ),
    note: z.string().nullable(),
    rules: z.array(FeeRuleJson),
    created_at: timestamp,
  })
  .meta({ id: 'FeeScheduleVersion' });

export const FeeQuoteJson = z
  .object({
    object: z.literal('fee_quote'),
    version_id: z.string().describe('The version in force at `at`: the one an order placed then keeps.'),
    effective_from: timestamp,
    at: timestamp,
    partner_id: z.string(),
    partner_type: z.string(),
    tier: z.string(),
    capability: z.string(),
    region: z.string().nullable(),
    customer_segment: z.string().nullable(),
    amount: MoneyJson,
    commission: MoneyJson,
    partner_net: MoneyJson.describe('The amount less the commission.'),
    rule_id: z
      .string()
      .nullable()
      .describe('The rule applied; null when no rule matches, and there is no fee.'),
    rule: FeeRuleJson.nullable(),
    breakdown: z.object({
      percentage_part: MoneyJson,
      fixed_part: MoneyJson,
      floored: z.boolean().describe('The floor raised the fee.'),
      capped: z.boolean().describe('The cap lowered the fee.'),
      limited_to_amount: z.boolean().describe('The fee was lowered to the amount: it never takes more.'),
    }),
  })
  .meta({ id: 'FeeQuote' });

export const SubscriptionPlanJson = z
  .object({
    id: z.string(),
    object: z.literal('subscription_plan'),
    key: z.string(),
    name: z.string(),
    interval: z.enum(PLAN_INTERVALS),
    price: MoneyJson,
    trial_days: z.number().int(),
    created_at: timestamp,
  })
  .meta({ id: 'SubscriptionPlan' });

export const SubscriptionJson = z
  .object({
    id: z.string(),
    object: z.literal('subscription'),
    partner_id: z.string(),
    plan: z.string().describe("The plan's key."),
    plan_id: z.string(),
    status: z.enum(SUBSCRIPTION_STATUSES),
    trial_end: timestamp.describe('When the trial ends (or ended) and the paid periods start.'),
    current_period_start: timestamp,
    current_period_end: timestamp.describe('A paid period is billed once it has ended.'),
    cancel_at_period_end: z.boolean(),
    canceled_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'Subscription' });

export const SubscriptionChargeJson = z
  .object({
    id: z.string(),
    object: z.literal('subscription_charge'),
    subscription_id: z.string(),
    partner_id: z.string(),
    period_start: timestamp,
    period_end: timestamp,
    amount: MoneyJson,
    from_payable: MoneyJson.describe("Taken from the partner's payable."),
    owed: MoneyJson.describe(
      'What the payable did not cover: owed by the partner, netted from its earnings.',
    ),
    transaction_id: z.string().nullable().describe('The ledger transaction; null for a free plan.'),
    created_at: timestamp,
  })
  .meta({ id: 'SubscriptionCharge' });

export const ValueAddedServiceJson = z
  .object({
    key: z.string(),
    object: z.literal('value_added_service'),
    name: z.string(),
    description: z.string().nullable(),
    price: MoneyJson,
    orderable_by_partner: z
      .boolean()
      .describe('Whether partners order it themselves; otherwise only operators charge it.'),
    created_at: timestamp,
  })
  .meta({ id: 'ValueAddedService' });

export const ServiceChargeJson = z
  .object({
    id: z.string(),
    object: z.literal('service_charge'),
    partner_id: z.string(),
    service: z.string(),
    amount: MoneyJson,
    from_payable: MoneyJson.describe("Taken from the partner's payable."),
    owed: MoneyJson.describe('What the payable did not cover: owed by the partner.'),
    transaction_id: z.string(),
    note: z.string().nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'ServiceCharge' });

const orNull = (amountMinor: bigint | null, currency: string) =>
  amountMinor === null ? null : moneyJson(amountMinor, currency);

export const feeRuleJson = (rule: FeeRule, currency: string): z.input<typeof FeeRuleJson> => ({
  id: rule.id,
  capability: rule.capability,
  partner_type: rule.partnerType,
  tier: rule.tier,
  region: rule.region,
  customer_segment: rule.segment,
  commission_bps: rule.commissionBps,
  fixed: moneyJson(rule.fixedMinor, currency),
  floor: orNull(rule.floorMinor, currency),
  cap: orNull(rule.capMinor, currency),
  rounding: rule.rounding,
});

export const feeScheduleVersionJson = (
  version: FeeScheduleVersion,
): z.input<typeof FeeScheduleVersionJson> => ({
  id: version.id,
  object: 'fee_schedule_version',
  currency: version.currency,
  effective_from: iso(version.effectiveFrom),
  note: version.note,
  rules: version.rules.map((rule) => feeRuleJson(rule, version.currency)),
  created_at: iso(version.createdAt),
});

export const feeQuoteJson = (
  quote: Quote,
  request: { partnerId: string; capability: string; region: string | null; customerSegment: string | null },
): z.input<typeof FeeQuoteJson> => ({
  object: 'fee_quote',
  version_id: quote.version.id,
  effective_from: iso(quote.version.effectiveFrom),
  at: iso(quote.at),
  partner_id: request.partnerId,
  partner_type: quote.partnerType,
  tier: quote.tier,
  capability: request.capability,
  region: request.region,
  customer_segment: request.customerSegment,
  amount: moneyJson(quote.amountMinor, quote.currency),
  commission: moneyJson(quote.commissionMinor, quote.currency),
  partner_net: moneyJson(quote.amountMinor - quote.commissionMinor, quote.currency),
  rule_id: quote.ruleId,
  rule: quote.rule ? feeRuleJson(quote.rule, quote.currency) : null,
  breakdown: {
    percentage_part: moneyJson(quote.breakdown.percentageMinor, quote.currency),
    fixed_part: moneyJson(quote.breakdown.fixedMinor, quote.currency),
    floored: quote.breakdown.floored,
    capped: quote.breakdown.capped,
    limited_to_amount: quote.breakdown.limitedToAmount,
  },
});

export const subscriptionPlanJson = (plan: SubscriptionPlan): z.input<typeof SubscriptionPlanJson> => ({
  id: plan.id,
  object: 'subscription_plan',
  key: plan.key,
  name: plan.name,
  interval: plan.interval,
  price: moneyJson(plan.price.amountMinor, plan.price.currency),
  trial_days: plan.trialDays,
  created_at: iso(plan.createdAt),
});

/** A subscription in the API's form; also the `subscription` of the subscription events. */
export const subscriptionJson = (
  subscription: Subscription,
  plan: SubscriptionPlan,
): z.input<typeof SubscriptionJson> => ({
  id: subscription.id,
  object: 'subscription',
  partner_id: subscription.partnerId,
  plan: plan.key,
  plan_id: plan.id,
  status: subscription.status,
  trial_end: iso(subscription.billingAnchor),
  current_period_start: iso(subscription.currentPeriodStart),
  current_period_end: iso(subscription.currentPeriodEnd),
  cancel_at_period_end: subscription.cancelAtPeriodEnd,
  canceled_at: isoOrNull(subscription.canceledAt),
  created_at: iso(subscription.createdAt),
});

export const subscriptionChargeJson = (
  charge: SubscriptionCharge,
): z.input<typeof SubscriptionChargeJson> => ({
  id: charge.id,
  object: 'subscription_charge',
  subscription_id: charge.subscriptionId,
  partner_id: charge.partnerId,
  period_start: iso(charge.periodStart),
  period_end: iso(charge.periodEnd),
  amount: moneyJson(charge.amount.amountMinor, charge.amount.currency),
  from_payable: moneyJson(charge.fromPayableMinor, charge.amount.currency),
  owed: moneyJson(charge.owedMinor, charge.amount.currency),
  transaction_id: charge.transactionId,
  created_at: iso(charge.createdAt),
});

export const valueAddedServiceJson = (service: ValueAddedService): z.input<typeof ValueAddedServiceJson> => ({
  key: service.key,
  object: 'value_added_service',
  name: service.name,
  description: service.description,
  price: moneyJson(service.price.amountMinor, service.price.currency),
  orderable_by_partner: service.orderableByPartner,
  created_at: iso(service.createdAt),
});

export const serviceChargeJson = (charge: ServiceCharge): z.input<typeof ServiceChargeJson> => ({
  id: charge.id,
  object: 'service_charge',
  partner_id: charge.partnerId,
  service: charge.serviceKey,
  amount: moneyJson(charge.amount.amountMinor, charge.amount.currency),
  from_payable: moneyJson(charge.fromPayableMinor, charge.amount.currency),
  owed: moneyJson(charge.owedMinor, charge.amount.currency),
  transaction_id: charge.transactionId,
  note: charge.note,
  created_at: iso(charge.createdAt),
});
