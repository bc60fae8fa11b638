import { z } from 'zod';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
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
import { COMMISSION_BPS_MAX, ROUNDINGS, RULES_MAX } from '../domain/schedule.js';
import { PLAN_INTERVALS, TRIAL_DAYS_MAX } from '../domain/subscription.js';
import type { FeesService, RuleSpec } from '../service.js';
import {
  FeeQuoteJson,
  FeeScheduleVersionJson,
  feeQuoteJson,
  feeScheduleVersionJson,
  ServiceChargeJson,
  SubscriptionChargeJson,
  SubscriptionJson,
  SubscriptionPlanJson,
  serviceChargeJson,
  subscriptionChargeJson,
  subscriptionJson,
  subscriptionPlanJson,
  ValueAddedServiceJson,
  valueAddedServiceJson,
} from './json.js';

const FEES = ['Fees'];
const SUBSCRIPTIONS = ['Subscriptions'];
const SERVICES = ['Value-added services'];
/** Who changes fees, plans and services: the operator's admins and finance staff. */
const FEE_WRITERS = { operator: ['admin', 'finance'] } as const;
const OPERATORS = { operator: ALL_OPERATOR_ROLES } as const;
const OPERATORS_AND_PARTNERS = { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES } as const;
/** Who commits a partner to pay: the operator's admins and finance staff, and the partner's owners. */
const PARTNER_PAYERS = { operator: ['admin', 'finance'], partner: ['owner'] } as const;
const NOTE_LENGTH_MAX = 500;

const key = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,59}$/, 'must be a key such as "growth-monthly" (lowercase, digits, dashes)');
const matchValue = z.string().trim().min(1).max(64);
const decimal = z.string().max(40).describe('A decimal string in the version’s currency: "0.30".');
const currency = z.string().max(8).describe('An ISO 4217 code: "EUR".');

const RuleBody = z
  .strictObject({
    capability: matchValue
      .nullable()
      .optional()
      .describe('Applies to this capability only; any when left out.'),
    partner_type: matchValue.nullable().optional(),
    tier: matchValue.nullable().optional().describe('A partner tier such as `standard` or `gold`.'),
    region: matchValue.nullable().optional(),
    customer_segment: matchValue.nullable().optional(),
    commission_bps: z.number().int().min(0).max(COMMISSION_BPS_MAX).describe('100 basis points = 1 %.'),
    fixed: decimal.optional().describe('Added to the percentage part; 0 when left out.'),
    floor: decimal.nullable().optional(),
    cap: decimal.nullable().optional(),
    rounding: z
      .enum(ROUNDINGS)
      .default('half_up')
      .describe('How the percentage part is rounded; `half_up` by default.'),
  })
  .meta({ id: 'NewFeeRule' });

const versionIdParams = z.strictObject({ fee_version_id: idSchema('fsv') });
const partnerIdParams = z.strictObject({ partner_id: idSchema('ptn') });
const subscriptionIdParams = z.strictObject({ subscription_id: idSchema('sub') });

function toRuleSpec(rule: z.output<typeof RuleBody>): RuleSpec {
  return {
    capability: rule.capability,
    partnerType: rule.partner_type,
    tier: rule.tier,
    region: rule.region,
    customerSegment: rule.customer_segment,
    commissionBps: rule.commission_bps,
    fixed: rule.fixed,
    floor: rule.floor,
    cap: rule.cap,
    rounding: rule.rounding,
  };
}

export function feesRoutes(fees: FeesService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/fee-schedule-versions',
      summary: 'Publish a fee schedule version',
      description:
        "A version of a currency's fee schedule, in force from `effective_from` (now or later; now when left " +
        'out) until the next version of the currency takes effect. An order keeps the version in force when it ' +
        'was placed. For each order the rule with the most match fields set wins; between rules with as many, ' +
        'the fields rank capability, partner type, tier, region, customer segment. No matching rule means no ' +
        'fee. Versions never change. Errors: `422 fees.version_invalid` (per rule field: amounts, cap below ' +
        'floor, two rules matching exactly alike), `422 fees.effective_from_in_past`, `409 fees.version_exists`, ' +
        '`400 money.unknown_currency`.',
      tags: FEES,
      access: FEE_WRITERS,
      audit: { action: 'fees.version.create' },
      body: z.strictObject({
        currency,
        effective_from: timestamp.optional(),
        note: z.string().trim().max(NOTE_LENGTH_MAX).nullable().optional(),
        rules: z.array(RuleBody).min(1).max(RULES_MAX),
      }),
      status: 201,
      response: FeeScheduleVersionJson,
      handler: async (ctx, { body }) =>
        feeScheduleVersionJson(
          await fees.createVersion(ctx, {
            currency: body.currency,
            effectiveFrom: body.effective_from ? new Date(body.effective_from) : undefined,
            note: body.note,
            rules: body.rules.map(toRuleSpec),
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/fee-schedule-versions',
      summary: 'Fee schedule versions',
      description: 'Every version, oldest first, optionally of one currency.',
      tags: FEES,
      access: OPERATORS,
      query: z.strictObject({ ...pageQuery, currency: currency.optional() }),
      response: page(FeeScheduleVersionJson),
      handler: async (ctx, { query }) => toPage(await fees.listVersions(ctx, query), feeScheduleVersionJson),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/fee-schedule-versions/:fee_version_id',
      summary: 'A fee schedule version',
      description: 'With its rules in the order they were published. Errors: `404 fees.version_not_found`.',
      tags: FEES,
      access: OPERATORS,
      params: versionIdParams,
      response: FeeScheduleVersionJson,
      handler: async (ctx, { params }) =>
        feeScheduleVersionJson(await fees.getVersion(ctx, params.fee_version_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/fees/quotes',
      summary: 'Quote the fees of a hypothetical order',
      description:
        'The commission an order of `amount` for `capability`, fulfilled by `partner_id`, would carry if placed ' +
        'at `at` (now when left out), with the version and rule applied and the breakdown. Nothing is stored. ' +
        'Partners ask about themselves only. Errors: `404 fees.partner_not_found`, ' +
        '`422 fees.no_schedule_in_force`, `400 fees.amount_negative`, `400 money.unknown_currency`, ' +
        '`400 money.invalid_amount`, `400 money.too_many_decimals`.',
      tags: FEES,
      access: OPERATORS_AND_PARTNERS,
      readOnly: true,
      body: z.strictObject({
        capability: matchValue,
        partner_id: idSchema('ptn'),
        region: matchValue.nullable().optional(),
        customer_segment: matchValue.nullable().optional(),
        tier: matchValue
          .optional()
          .describe('The partner tier to quote for; the partner’s tier when left out.'),
        amount: MoneyInput,
        at: timestamp.optional().describe('When the order would be placed; now when left out.'),
      }),
      response: FeeQuoteJson,
      handler: async (ctx, { body }) => {
        const quote = await fees.quote(ctx, {
          capability: body.capability,
          partnerId: body.partner_id,
          region: body.region,
          customerSegment: body.customer_segment,
          tier: body.tier,
          amount: body.amount,
          at: body.at ? new Date(body.at) : undefined,
        });
        return feeQuoteJson(quote, {
          partnerId: body.partner_id,
          capability: body.capability,
          region: body.region ?? null,
          customerSegment: body.customer_segment ?? null,
        });
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/subscription-plans',
      summary: 'Offer a subscription plan',
      description:
        'An access fee partners subscribe to: a price per month or year, after an optional trial. Plans never ' +
        'change once offered. Errors: `409 fees.plan_key_taken`, `422 fees.price_invalid`, ' +
        '`400 money.unknown_currency`.',
      tags: SUBSCRIPTIONS,
      access: FEE_WRITERS,
      audit: { action: 'fees.plan.create' },
      body: z.strictObject({
        key,
        name,
        interval: z.enum(PLAN_INTERVALS),
        price: MoneyInput,
        trial_days: z.number().int().min(0).max(TRIAL_DAYS_MAX).default(0),
      }),
      status: 201,
      response: SubscriptionPlanJson,
      handler: async (ctx, { body }) =>
        subscriptionPlanJson(
          await fees.createPlan(ctx, {
            key: body.key,
            name: body.name,
            interval: body.interval,
            price: body.price,
            trialDays: body.trial_days,
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/subscription-plans',
      summary: 'Subscription plans',
      description: 'Every plan, oldest first.',
      tags: SUBSCRIPTIONS,
      access: OPERATORS_AND_PARTNERS,
      query: z.strictObject(pageQuery),
      response: page(SubscriptionPlanJson),
      handler: async (ctx, { query }) => toPage(await fees.listPlans(ctx, query), subscriptionPlanJson),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/subscriptions',
      summary: 'Subscribe a partner to a plan',
      description:
        "The plan's trial starts now and is never billed (a partner has a plan's trial once: subscribed to it again, it " +
        'pays from the start); paid periods follow it and are billed, once each has ' +
        'ended, by a daily job: from the partner’s payable first, the rest owed. Errors: ' +
        '`404 fees.partner_not_found`, `404 fees.plan_not_found`, `409 fees.already_subscribed`, ' +
        '`409 fees.partner_closed` (a partner rejected or offboarded, whose subscriptions end unbilled).',
      tags: SUBSCRIPTIONS,
      access: PARTNER_PAYERS,
      params: partnerIdParams,
      body: z.strictObject({ plan: key.describe("The plan's key.") }),
      status: 201,
      response: SubscriptionJson,
      handler: async (ctx, { params, body }) => {
        const { subscription, plan } = await fees.subscribe(ctx, params.partner_id, body.plan);
        return subscriptionJson(subscription, plan);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/subscriptions',
      summary: "A partner's subscriptions",
      description: 'Current and ended, oldest first. Errors: `404 fees.partner_not_found`.',
      tags: SUBSCRIPTIONS,
      access: OPERATORS_AND_PARTNERS,
      params: partnerIdParams,
      query: z.strictObject(pageQuery),
      response: page(SubscriptionJson),
      handler: async (ctx, { params, query }) =>
        toPage(await fees.listSubscriptions(ctx, params.partner_id, query), (item) =>
          subscriptionJson(item.subscription, item.plan),
        ),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/subscriptions/:subscription_id/cancel',
      summary: 'Cancel a subscription at period end',
      description:
        'The current period is still billed when it ends (a trial is not), and nothing after it. Cancelling ' +
        'again answers the same. Errors: `404 fees.subscription_not_found`, `409 fees.subscription_canceled`.',
      tags: SUBSCRIPTIONS,
      access: PARTNER_PAYERS,
      params: subscriptionIdParams,
      response: SubscriptionJson,
      handler: async (ctx, { params }) => {
        const { subscription, plan } = await fees.cancelSubscription(ctx, params.subscription_id);
        return subscriptionJson(subscription, plan);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/subscriptions/:subscription_id/charges',
      summary: "A subscription's billed periods",
      description:
        "Oldest first, each with what the partner's payable covered and what was owed. Errors: " +
        '`404 fees.subscription_not_found`.',
      tags: SUBSCRIPTIONS,
      access: OPERATORS_AND_PARTNERS,
      params: subscriptionIdParams,
      response: z.object({ data: z.array(SubscriptionChargeJson) }),
      handler: async (ctx, { params }) => ({
        data: (await fees.listSubscriptionCharges(ctx, params.subscription_id)).map(subscriptionChargeJson),
      }),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/value-added-services',
      summary: 'Add a value-added service',
      description:
        'A paid service partners are charged for when they use it (express payout, featured placement). ' +
        'Errors: `409 fees.service_key_taken`, `422 fees.price_invalid`, `400 money.unknown_currency`.',
      tags: SERVICES,
      access: FEE_WRITERS,
      audit: { action: 'fees.service.create' },
      body: z.strictObject({
        key,
        name,
        description: z.string().trim().max(NOTE_LENGTH_MAX).nullable().optional(),
        price: MoneyInput,
        orderable_by_partner: z
          .boolean()
          .default(true)
          .describe('Whether partners order it themselves; otherwise only operators charge it.'),
      }),
      status: 201,
      response: ValueAddedServiceJson,
      handler: async (ctx, { body }) =>
        valueAddedServiceJson(
          await fees.createService(ctx, {
            key: body.key,
            name: body.name,
            description: body.description,
            price: body.price,
            orderableByPartner: body.orderable_by_partner,
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/value-added-services',
      summary: 'Value-added services',
      description: 'The catalogue of paid services, by key.',
      tags: SERVICES,
      access: OPERATORS_AND_PARTNERS,
      query: z.strictObject(pageQuery),
      response: page(ValueAddedServiceJson),
      handler: async (ctx, { query }) => toPage(await fees.listServices(ctx, query), valueAddedServiceJson),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/service-charges',
      summary: 'Charge a partner for a value-added service',
      description:
        "The service's price, taken from the partner's payable first and the rest owed, credited to the " +
        'platform’s service revenue. Operators charge any service; a partner’s owner orders for the partner ' +
        'the services open to partners. Needs an `Idempotency-Key`. Errors: `400 idempotency.key_required`, ' +
        '`404 fees.partner_not_found`, `404 fees.service_not_found`, `403 fees.service_not_orderable`.',
      tags: SERVICES,
      access: PARTNER_PAYERS,
      idempotencyKey: 'required',
      params: partnerIdParams,
      body: z.strictObject({
        service: key.describe("The service's key."),
        note: z.string().trim().max(NOTE_LENGTH_MAX).nullable().optional(),
      }),
      status: 201,
      response: ServiceChargeJson,
      handler: async (ctx, { params, body }) =>
        serviceChargeJson(await fees.chargeService(ctx, params.partner_id, body)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/service-charges',
      summary: "A partner's service charges",
      description: 'Oldest first. Errors: `404 fees.partner_not_found`.',
      tags: SERVICES,
      access: OPERATORS_AND_PARTNERS,
      params: partnerIdParams,
      query: z.strictObject(pageQuery),
      response: page(ServiceChargeJson),
      handler: async (ctx, { params, query }) =>
        toPage(await fees.listServiceCharges(ctx, params.partner_id, query), serviceChargeJson),
    }),
  ];
}
