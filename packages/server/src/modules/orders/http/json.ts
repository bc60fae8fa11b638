import { z } from 'zod';
import type { Actor } from '../../../kernel/actor.js';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import { LEG_STATUSES, ORDER_STATUSES, WORK_ORDER_STATUSES } from '../domain/work-order.js';
import type { Order, OrderLeg, Quote, QuoteLeg, WorkOrder } from '../store/orders-store.js';
import type { RefundRequest, RefundThreshold } from '../store/refund-requests-store.js';
import { REFUND_REQUEST_STATUSES } from '../store/tables.js';

const _Constraints = z.record(z.string(), z.unknown());

export const QuoteLegJson = z
  .object({
    step: z.string(),
    name: z.string(),
    capability: z.string(),
    after: z.array(z.string()),
    partner_id: z.string(),
    offer_id: z
      .string()
      .nullable()
      .describe(
        'The partner’s offer; null for customers under a fixed price, as its price is the partner’s cost.',
      ),
    quantity: z.number().int(),
    unit_price: MoneyJson.nullable().describe('Null for customers under a fixed price: the partner’s cost.'),
    price: MoneyJson.nullable().describe('Quantity × unit price; null for customers under a fixed price.'),
    margin: MoneyJson.nullable().describe('The platform’s margin on this leg; operators only.'),
    commission: MoneyJson.nullable().describe(
      'What the partner would pay under the fee schedule in force; operators only.',
    ),
    lead_time_hours: z.number(),
    earliest_start: timestamp.describe('When the leg can start: when every step before it is expected done.'),
    earliest_finish: timestamp,
    latest_start: timestamp.describe('When the leg must start to be done by `due_by`.'),
    due_by: timestamp.describe('When the leg must be done: the leg’s SLA deadline if the quote is ordered.'),
    why: z
      .record(z.string(), z.unknown())
      .describe(
        'Why this partner was chosen: its rank, score and the score breakdown of the matcher. For customers under a ' +
          'fixed price, without the score and the price criterion, which would tell the partner’s cost.',
      ),
  })
  .meta({ id: 'QuoteLeg' });

export const QuoteSubsidyJson = z
  .object({
    amount: MoneyJson.describe('Paid by the programme out of the platform’s margin.'),
    kind: z
      .enum(['waiver', 'rebate'])
      .describe(
        'How the programme presents it: a waiver is a fee not charged, a rebate money given back; a customer-side rebate is given at the order, as a lower charge.',
      ),
    programme_id: z.string().nullable().describe('The subsidy programme that pays it; operators only.'),
  })
  .meta({ id: 'QuoteSubsidy' });

export const QuoteJson = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    offering: z.string(),
    offering_version_id: z.string(),
    quantity: z.number().int(),
    region: z.string(),
    deadline: timestamp,
    pricing: z.enum(['cost_plus', 'fixed']),
    total: MoneyJson.describe('The price of the offering, before any subsidy.'),
    subsidy: QuoteSubsidyJson.nullable().describe(
      'The discount a customer-side subsidy programme gives on this quote; null when none applies.',
    ),
    charge: MoneyJson.describe(
      'What the customer will be charged when ordering: the total less the subsidy. An order is never charged more.',
    ),
    cost: MoneyJson.nullable().describe(
      'The partners’ prices summed; null for customers under a fixed price.',
    ),
    margin: MoneyJson.nullable().describe('The platform’s margin; operators only.'),
    commission: MoneyJson.nullable().describe(
      'Commission under the fee schedule in force now; an order placed from the quote keeps the schedule in force when it is placed. Operators only.',
    ),
    platform_revenue: MoneyJson.nullable().describe('Margin plus commission; operators only.'),
    fee_schedule_version_id: z.string().nullable(),
    expected_finish: timestamp.describe('When the whole offering is expected done, along the critical path.'),
    valid_until: timestamp.describe('Capacity is held on every leg until then.'),
    status: z.enum(['open', 'ordered', 'expired']),
    order_id: z.string().nullable(),
    created_at: timestamp,
    legs: z.array(QuoteLegJson),
  })
  .meta({ id: 'Quote' });

export const OrderLegJson = z
  .object({
    step: z.string(),
    name: z.string(),
    capability: z.string(),
    after: z.array(z.string()),
    status: z.enum(LEG_STATUSES),
    partner_id: z.string(),
    quantity: z.number().int(),
    price: MoneyJson.nullable().describe('The partner’s price; null for customers under a fixed price.'),
    margin: MoneyJson.nullable().describe('Operators only.'),
    due_by: timestamp,
    expected_start: timestamp,
    expected_finish: timestamp,
    late: z.boolean(),
    work_order_id: z.string().nullable(),
    work_order_status: z.enum(WORK_ORDER_STATUSES).nullable(),
    attempts: z.number().int(),
    replans: z.number().int(),
  })
  .meta({ id: 'OrderLeg' });

export const OrderJson = z
  .object({
    id: z.string(),
    quote_id: z.string(),
    customer_id: z.string(),
    offering: z.string(),
    offering_version_id: z.string(),
    quantity: z.number().int(),
    region: z.string(),
    deadline: timestamp,
    status: z.enum(ORDER_STATUSES),
    total: MoneyJson.describe('The price of the offering, before any subsidy.'),
    subsidy: MoneyJson.describe(
      'What a customer-side subsidy programme paid of the total (zero when none did), into the order’s escrow.',
    ),
    charged: MoneyJson.describe('What the customer’s payment is for: the total less the subsidy.'),
    subsidy_programme_id: z
      .string()
      .nullable()
      .describe('The programme that paid the subsidy; operators only.'),
    refunded: MoneyJson.describe('Given back to the customer through the payment provider.'),
    subsidy_returned: MoneyJson.describe(
      'The subsidy’s share of the refunds, returned to its programme’s budget rather than to the customer.',
    ),
    payment_id: z.string().nullable(),
    fee_schedule_version_id: z
      .string()
      .nullable()
      .describe(
        'The fee schedule version the order keeps, the one in force when it was placed (null when none was); operators only.',
      ),
    customer_segment: z
      .string()
      .nullable()
      .describe("The customer's segment when the order was placed, which its fees match on; operators only."),
    partner_tiers: z
      .record(z.string(), z.string())
      .nullable()
      .describe(
        'The tier of each partner the order was placed with, by partner id, which its fees match on; operators only.',
      ),
    failure_code: z.string().nullable(),
    failure_detail: z.string().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
    closed_at: timestamp.nullable(),
    legs: z.array(OrderLegJson),
  })
  .meta({ id: 'Order' });

export const OrderSummaryJson = OrderJson.omit({ legs: true }).meta({ id: 'OrderSummary' });

export const WorkOrderJson = z
  .object({
    id: z.string(),
    order_id: z.string(),
    step: z.string(),
    attempt: z.number().int(),
    partner_id: z.string(),
    offer_id: z.string(),
    capability: z.string(),
    region: z.string(),
    quantity: z.number().int(),
    unit_price: MoneyJson,
    price: MoneyJson,
    status: z.enum(WORK_ORDER_STATUSES),
    accept_by: timestamp,
    due_by: timestamp,
    confirm_by: timestamp
      .nullable()
      .describe('When a delivery the customer has not judged is confirmed by itself.'),
    late: z.boolean(),
    reason: z.string().nullable(),
    offered_at: timestamp,
    accepted_at: timestamp.nullable(),
    started_at: timestamp.nullable(),
    delivered_at: timestamp.nullable(),
    closed_at: timestamp.nullable(),
  })
  .meta({ id: 'WorkOrder' });

/** What an actor may see of the money inside an order. */
function sight(actor: Actor, pricingKind: 'cost_plus' | 'fixed') {
  const operator = actor.kind === 'operator' || actor.kind === 'system';
  return { operator, cost: operator || pricingKind === 'cost_plus' };
}

/**
 * The matcher's breakdown of why a leg's partner was chosen, as a reader who may not see the
 * partner's cost sees it: without the price criterion (its value is the partner's unit price,
 * its normalised value and contribution place that price among the candidates') and without
 * the score, from which the price's contribution would follow as the rest of the sum. The rank,
 * the strategy, the other criteria and the adjustments still say why.
 */
function whyWithoutCost(breakdown: Record<string, unknown>): Record<string, unknown> {
  const { score: _score, criteria, ...rest } = breakdown;
  return {
    ...rest,
    criteria: Array.isArray(criteria)
      ? criteria.filter(
          (part) =>
            !(typeof part === 'object' && part !== null && 'criterion' in part && part.criterion === 'price'),
        )
      : [],
  };
}

export function quoteJson(
  actor: Actor,
  quote: Quote,
  legs: readonly QuoteLeg[],
  now: Date,
): z.input<typeof QuoteJson> {
  const see = sight(actor, quote.pricingKind);
  const money = (minor: bigint) => moneyJson(minor, quote.currency);
  return {
    id: quote.id,
    customer_id: quote.customerId,
    offering: quote.offeringKey,
    offering_version_id: quote.offeringVersionId,
    quantity: quote.quantity,
    region: quote.region,
    deadline: iso(quote.deadline),
    pricing: quote.pricingKind,
    total: money(quote.totalMinor),
    subsidy:
      quote.subsidyMinor > 0n
        ? {
            amount: money(quote.subsidyMinor),
            kind: quote.subsidyKind ?? 'waiver',
            programme_id: see.operator ? quote.subsidyProgrammeId : null,
          }
        : null,
    charge: money(quote.totalMinor - quote.subsidyMinor),
    cost: see.cost ? money(quote.costMinor) : null,
    margin: see.operator ? money(quote.marginMinor) : null,
    commission: see.operator ? money(quote.commissionMinor) : null,
    platform_revenue: see.operator ? money(quote.marginMinor + quote.commissionMinor) : null,
    fee_schedule_version_id: see.operator ? quote.feeVersionId : null,
    expected_finish: iso(quote.earliestFinish),
    valid_until: iso(quote.validUntil),
    status: quote.orderId ? 'ordered' : quote.validUntil <= now ? 'expired' : 'open',
    order_id: quote.orderId,
    created_at: iso(quote.createdAt),
    legs: legs.map((leg) => ({
      step: leg.stepKey,
      name: leg.name,
      capability: leg.capability,
      after: [...leg.after],
      partner_id: leg.partnerId,
      offer_id: see.cost ? leg.offerId : null,
      quantity: leg.quantity,
      unit_price: see.cost ? money(leg.unitPriceMinor) : null,
      price: see.cost ? money(leg.grossMinor) : null,
      margin: see.operator ? money(leg.marginMinor) : null,
      commission: see.operator ? money(leg.commissionMinor) : null,
      lead_time_hours: leg.leadTimeHours,
      earliest_start: iso(leg.earliestStart),
      earliest_finish: iso(leg.earliestFinish),
      latest_start: iso(leg.latestStart),
      due_by: iso(leg.dueBy),
      why: see.cost ? leg.breakdown : whyWithoutCost(leg.breakdown),
    })),
  };
}

export function orderSummaryJson(actor: Actor, order: Order): z.input<typeof OrderSummaryJson> {
  const { operator } = sight(actor, order.pricingKind);
  return {
    id: order.id,
    quote_id: order.quoteId,
    customer_id: order.customerId,
    offering: order.offeringKey,
    offering_version_id: order.offeringVersionId,
    quantity: order.quantity,
    region: order.region,
    deadline: iso(order.deadline),
    status: order.status,
    total: moneyJson(order.totalMinor, order.currency),
    subsidy: moneyJson(order.subsidyMinor, order.currency),
    charged: moneyJson(order.totalMinor - order.subsidyMinor, order.currency),
    subsidy_programme_id: operator ? order.subsidyProgrammeId : null,
    refunded: moneyJson(order.refundedMinor, order.currency),
    subsidy_returned: moneyJson(order.subsidyReturnedMinor, order.currency),
    payment_id: order.paymentId,
    fee_schedule_version_id: operator ? order.feeVersionId : null,
    customer_segment: operator ? order.customerSegment : null,
    partner_tiers: operator ? { ...order.partnerTiers } : null,
    failure_code: order.failureCode,
    failure_detail: actor.kind === 'customer' ? null : order.failureDetail,
    created_at: iso(order.createdAt),
    updated_at: iso(order.updatedAt),
    closed_at: isoOrNull(order.closedAt),
  };
}

export function orderJson(
  actor: Actor,
  order: Order,
  legs: readonly OrderLeg[],
  workOrders: readonly WorkOrder[],
): z.input<typeof OrderJson> {
  const see = sight(actor, order.pricingKind);
  const status = new Map(workOrders.map((workOrder) => [workOrder.id, workOrder.status]));
  return {
    ...orderSummaryJson(actor, order),
    legs: legs.map((leg) => ({
      step: leg.stepKey,
      name: leg.name,
      capability: leg.capability,
      after: [...leg.after],
      status: leg.status,
      partner_id: leg.partnerId,
      quantity: leg.quantity,
      price: see.cost ? moneyJson(leg.grossMinor, order.currency) : null,
      margin: see.operator ? moneyJson(leg.marginMinor, order.currency) : null,
      due_by: iso(leg.dueBy),
      expected_start: iso(leg.expectedStart),
      expected_finish: iso(leg.expectedFinish),
      late: leg.late,
      work_order_id: leg.workOrderId,
      work_order_status: leg.workOrderId ? (status.get(leg.workOrderId) ?? null) : null,
      attempts: leg.attempts,
      replans: leg.replans,
    })),
  };
}

export function workOrderJson(workOrder: WorkOrder): z.input<typeof WorkOrderJson> {
  return {
    id: workOrder.id,
    order_id: workOrder.orderId,
    step: workOrder.stepKey,
    attempt: workOrder.attempt,
    partner_id: workOrder.partnerId,
    offer_id: workOrder.offerId,
    capability: workOrder.capability,
    region: workOrder.region,
    quantity: workOrder.quantity,
    unit_price: moneyJson(workOrder.unitPriceMinor, workOrder.currency),
    price: moneyJson(workOrder.grossMinor, workOrder.currency),
    status: workOrder.status,
    accept_by: iso(workOrder.acceptBy),
    due_by: iso(workOrder.dueBy),
    confirm_by: isoOrNull(workOrder.confirmBy),
    late: workOrder.late,
    reason: workOrder.reason,
    offered_at: iso(workOrder.offeredAt),
    accepted_at: isoOrNull(workOrder.acceptedAt),
    started_at: isoOrNull(workOrder.startedAt),
    delivered_at: isoOrNull(workOrder.deliveredAt),
    closed_at: isoOrNull(workOrder.closedAt),
  };
}

export const RefundThresholdJson = z
  .object({
    approval_above: MoneyJson.describe(
      'What operators may give back of one order by hand alone, in all, and one operator by hand alone in a day (UTC); a refund beyond either needs a second operator.',
    ),
    updated_by: z.string(),
    updated_at: timestamp,
  })
  .meta({ id: 'RefundThreshold' });

export const refundThresholdJson = (threshold: RefundThreshold): z.input<typeof RefundThresholdJson> => ({
  approval_above: moneyJson(threshold.approvalAboveMinor, threshold.currency),
  updated_by: threshold.updatedBy,
  updated_at: iso(threshold.updatedAt),
});

export const RefundRequestJson = z
  .object({
    id: z.string(),
    order_id: z.string(),
    step: z
      .string()
      .nullable()
      .describe('The confirmed leg to refund; null: the closed order across its legs.'),
    amount: MoneyJson,
    reason: z.string(),
    status: z.enum(REFUND_REQUEST_STATUSES),
    requested_by: z.string().describe('The operator user who filed it.'),
    requested_at: timestamp,
    expires_at: timestamp.describe(
      'Seven days after it was filed: still pending then, it is `expired` and can no longer be decided.',
    ),
    decided_by: z.string().nullable().describe('The other operator user who approved or rejected it.'),
    decided_at: timestamp.nullable(),
    decision_reason: z.string().nullable().describe('Why it was rejected.'),
    refunded: MoneyJson.nullable().describe(
      'Once approved: what the customer got back through the provider.',
    ),
    subsidy_returned: MoneyJson.nullable().describe(
      'Once approved: what went back to the subsidy programme that paid part of the order.',
    ),
  })
  .meta({ id: 'RefundRequest' });

export const refundRequestJson = (request: RefundRequest): z.input<typeof RefundRequestJson> => ({
  id: request.id,
  order_id: request.orderId,
  step: request.stepKey,
  amount: moneyJson(request.amountMinor, request.currency),
  reason: request.reason,
  status: request.status,
  requested_by: request.requestedBy,
  requested_at: iso(request.requestedAt),
  expires_at: iso(request.expiresAt),
  decided_by: request.decidedBy,
  decided_at: isoOrNull(request.decidedAt),
  decision_reason: request.decisionReason,
  refunded: request.refundedMinor === null ? null : moneyJson(request.refundedMinor, request.currency),
  subsidy_returned:
    request.subsidyReturnedMinor === null ? null : moneyJson(request.subsidyReturnedMinor, request.currency),
});
