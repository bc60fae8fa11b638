import { z } from 'zod';
import type { Actor } from '../kernel/actor.js';
import { recordAudit } from '../kernel/audit/audit-log.js';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../kernel/http/access.js';
import { defineRoute, type Route } from '../kernel/http/route.js';
import {
  idSchema,
  MoneyInput,
  MoneyJson,
  moneyJson,
  page,
  pageQuery,
  timestamp,
  toPage,
} from '../kernel/http/schemas.js';
import { IDEMPOTENCY_MONEY_OUT_TTL_MS } from '../kernel/idempotency/idempotency-store.js';
import { parseAmount, parseCurrency } from '../kernel/money.js';
import {
  CUSTOMER_ACTIONS,
  type CustomerAction,
  ORDER_STATUSES,
  OrderJson,
  OrderSummaryJson,
  orderJson,
  orderSummaryJson,
  PARTNER_ACTIONS,
  type PartnerAction,
  QuoteJson,
  quoteJson,
  WORK_ORDER_STATUSES,
  WorkOrderJson,
  workOrderJson,
} from '../modules/orders/index.js';
import { PaymentMethodInput } from '../modules/payments/index.js';
import type { Fulfilment, OrderView, RefundByHand } from './fulfilment.js';

const QUOTES = ['Quotes'];
const ORDERS = ['Orders'];
const WORK_ORDERS = ['Work orders'];
/** Who buys: customers for themselves, operators' administrators and operations staff for a customer. */
const BUYERS = { operator: ['admin', 'ops'], customer: true } as const;
const READERS = { operator: ALL_OPERATOR_ROLES, customer: true } as const;
const PARTNERS = { operator: ['admin', 'ops'], partner: ALL_PARTNER_ROLES } as const;
const WORK_READERS = { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES } as const;
/** Money moves by hand: the operator's finance staff and administrators. */
export const MONEY_MOVERS = { operator: ['admin', 'finance'] } as const;

const stepKey = z.string().min(1).max(63);
export const reason = z.string().trim().min(1).max(500);

/** A refund by hand as a request gives it: made alone, or filed as a refund request. */
export const RefundByHandBody = z.strictObject({ amount: MoneyInput, step: stepKey.optional(), reason });

export function refundByHandInput(body: z.output<typeof RefundByHandBody>): RefundByHand {
  const currency = parseCurrency(body.amount.currency);
  return {
    amountMinor: parseAmount(body.amount.amount, currency),
    currency,
    stepKey: body.step ?? null,
    reason: body.reason,
  };
}

/** What a refund by hand answers once made, alone or on approval. */
export const RefundMadeJson = z.object({
  amount: MoneyJson,
  refunded: MoneyJson.describe('What the customer gets back through the provider.'),
  subsidy_returned: MoneyJson.describe(
    'What goes back to the subsidy programme that paid part of the order.',
  ),
  order: OrderJson,
});

export const refundMadeJson = (
  reader: Actor,
  amountMinor: bigint,
  currency: string,
  made: OrderView & { customerMinor: bigint; subsidyMinor: bigint },
): z.input<typeof RefundMadeJson> => ({
  amount: moneyJson(amountMinor, currency),
  refunded: moneyJson(made.customerMinor, currency),
  subsidy_returned: moneyJson(made.subsidyMinor, currency),
  order: orderJson(reader, made.order, made.legs, made.workOrders),
});

const PARTNER_ACTION_TEXT: Record<PartnerAction, string> = {
  accept:
    'Accepts the work, within its acceptance window (`409 orders.acceptance_window_closed` after it; the offer ' +
    'then expires and the leg goes to another partner). A suspended or offboarded partner takes on no work: ' +
    '`409 orders.partner_not_engaged`.',
  decline:
    'Declines the work, with an optional reason. Baton gives the leg to the next-best partner that can still do it ' +
    'by its due time; when none can, the order is compensated.',
  start:
    'Starts the work: it can no longer be taken away. A suspended or offboarded partner cannot: ' +
    '`409 orders.partner_not_engaged`, and the timers give the leg to another partner.',
  deliver:
    'Reports the work done. The customer confirms or rejects it; without an answer it is confirmed by itself.',
};

const CUSTOMER_ACTION_TEXT: Record<CustomerAction, string> = {
  confirm:
    'Confirms a delivered leg: its partner’s price less commission is released from the order’s escrow to the ' +
    'partner, the commission and margin to the platform, and the legs waiting for this one are sent out.',
  reject:
    'Rejects a delivered leg: under the offering’s `refund` policy the customer is refunded what the leg cost; ' +
    'under `redo` the partner is asked to do it again, up to the offering’s `max_redos` times, and the rejection ' +
    'after that is refunded.',
};

export function fulfilmentRoutes(fulfilment: Fulfilment): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/quotes',
      summary: 'Quote an offering',
      description:
        'Plans every step of the offering with the matching engine from the deadline back, so that lead times add up ' +
        'along the critical path, and holds capacity on every leg until `valid_until`. The answer shows the price, ' +
        'each leg’s partner, timing and why it was chosen. A request no plan meets is `422 orders.quote_infeasible`, ' +
        'naming the step and the reason (`no_offers`, `no_candidate` with the filters that excluded offers, ' +
        '`capacity_taken`, `deadline_unreachable`, `price_below_cost`), and holds nothing. A customer-side subsidy ' +
        'programme that covers the customer pays its share of the platform’s margin: `subsidy` shows it and `charge` ' +
        'what the customer will be charged.',
      tags: QUOTES,
      access: BUYERS,
      body: z.strictObject({
        offering: z.string().min(1).max(63),
        quantity: z.number().int().min(1).max(1_000_000),
        region: z.string().min(1).max(64),
        deadline: timestamp,
        customer_id: idSchema('cus').optional().describe('Required when an operator quotes for a customer.'),
      }),
      status: 201,
      response: QuoteJson,
      handler: async (ctx, { body }) => {
        const { quote, legs } = await fulfilment.quote(ctx, {
          offeringKey: body.offering,
          quantity: body.quantity,
          region: body.region,
          deadline: new Date(body.deadline),
          customerId: body.customer_id,
        });
        return quoteJson(ctx.actor, quote, legs, ctx.now);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/quotes/:quote_id',
      summary: 'Read a quote',
      tags: QUOTES,
      access: READERS,
      params: z.strictObject({ quote_id: idSchema('quo') }),
      response: QuoteJson,
      handler: async (ctx, { params }) => {
        const { quote, legs } = await fulfilment.getQuote(ctx, params.quote_id);
        return quoteJson(ctx.actor, quote, legs, ctx.now);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/orders',
      summary: 'Order a quote',
      description:
        'Confirms the capacity the quote holds, records the payment and charges it outside the request: the order is ' +
        '`awaiting_payment` until the provider answers, then `in_progress` (the first legs go out as work orders) or ' +
        '`cancelled` (declined; nothing charged, capacity released). A hold that lapsed and lost its capacity is ' +
        '`409 orders.capacity_lost` and charges nothing. One order per quote: `409 orders.quote_already_ordered`. ' +
        'A subsidy the quote showed is paid into the order’s escrow and the payment is the total less it; when the ' +
        'programme can no longer pay all of it the order is `409 orders.quote_subsidy_unavailable` and charges nothing.',
      tags: ORDERS,
      access: BUYERS,
      idempotencyKey: 'required',
      body: z.strictObject({
        quote_id: idSchema('quo'),
        payment_method: PaymentMethodInput,
      }),
      status: 201,
      response: OrderJson,
      handler: async (ctx, { body }) => {
        const placed = await fulfilment.placeOrder(ctx, {
          quoteId: body.quote_id,
          paymentMethod: body.payment_method,
        });
        return orderJson(ctx.actor, placed.order, placed.legs, placed.workOrders);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/orders',
      summary: 'List orders',
      description: 'Oldest first. Customers see their own orders.',
      tags: ORDERS,
      access: READERS,
      query: z.strictObject({
        ...pageQuery,
        status: z.enum(ORDER_STATUSES).optional(),
        offering: z.string().max(63).optional(),
      }),
      response: page(OrderSummaryJson),
      handler: async (ctx, { query }) =>
        toPage(
          await fulfilment.listOrders(ctx, {
            status: query.status,
            offeringKey: query.offering,
            after: query.after,
            limit: query.limit,
          }),
          (order) => orderSummaryJson(ctx.actor, order),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/orders/:order_id',
      summary: 'Read an order with its legs',
      description:
        'Customers see their own orders, without the partners’ prices when the offering has a fixed price.',
      tags: ORDERS,
      access: READERS,
      params: z.strictObject({ order_id: idSchema('ord') }),
      response: OrderJson,
      handler: async (ctx, { params }) => {
        const found = await fulfilment.getOrder(ctx, params.order_id);
        return orderJson(ctx.actor, found.order, found.legs, found.workOrders);
      },
    }),
    ...(Object.keys(CUSTOMER_ACTIONS) as CustomerAction[]).map((action) =>
      defineRoute({
        method: 'POST',
        url: `/v1/orders/:order_id/legs/:step/${action}`,
        summary: `${action === 'confirm' ? 'Confirm' : 'Reject'} a delivered leg`,
        description: `${CUSTOMER_ACTION_TEXT[action]} Errors: \`409 orders.leg_not_delivered\`.`,
        tags: ORDERS,
        access: BUYERS,
        idempotencyKey: 'required',
        params: z.strictObject({ order_id: idSchema('ord'), step: stepKey }),
        body: z.strictObject({ reason: reason.optional() }).default({}),
        response: OrderJson,
        handler: async (ctx, { params, body }) => {
          const found = await fulfilment.customerAction(
            ctx,
            params.order_id,
            params.step,
            action,
            body.reason ?? null,
          );
          return orderJson(ctx.actor, found.order, found.legs, found.workOrders);
        },
      }),
    ),
    defineRoute({
      method: 'POST',
      url: '/v1/orders/:order_id/refunds',
      summary: 'Refund (part of) an order by hand',
      description:
        'An operator’s refund of part of an order’s value, with a reason: of one confirmed leg with `step` (that ' +
        'partner’s part), or of a completed or failed order (its confirmed legs in proportion to what each can still ' +
        'give back). The legs’ money is reversed as any refund reverses it: the partner’s share from its payable (or as ' +
        'a debt when the payable is short), the commission and the margin from the platform. Of the amount, the ' +
        'customer gets back its share through the provider (`refunded`) and a customer-side subsidy programme that ' +
        'paid part of the order gets back its own (`subsidy_returned`), in the proportions the order was paid in. ' +
        'Each partner whose earnings go back is told by a `work_order.refunded` event, seen by that partner only: ' +
        'what of its own share it gives back, and what of that it now owes when its payable is short. ' +
        'Above the threshold of the order’s currency (`PUT /v1/refund-thresholds/{currency}`), counting what the order ' +
        'was given back by hand alone before, or what the calling operator gave back by hand alone today (UTC) over ' +
        'all orders, a refund needs a second operator: `403 orders.refund_needs_approval` (with `refunded_alone` and ' +
        '`refunded_alone_today`, both before this refund), ' +
        'and it is filed with `POST /v1/orders/{order_id}/refund-requests` instead. ' +
        'Errors: `409 orders.refund_not_allowed` (the order still running without `step`, or the leg not confirmed), ' +
        '`422 orders.currency_mismatch`, `422 settlement.refund_exceeds_order`, `422 settlement.refund_exceeds_leg`, ' +
        '`409 settlement.refund_exceeds_after_chargebacks`.',
      tags: ORDERS,
      access: MONEY_MOVERS,
      audit: { action: 'order.refund', targetParam: 'order_id' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      params: z.strictObject({ order_id: idSchema('ord') }),
      body: RefundByHandBody,
      status: 201,
      response: RefundMadeJson,
      handler: async (ctx, { params, body }) => {
        const input = refundByHandInput(body);
        const refunded = await fulfilment.refundByHand(ctx, params.order_id, input);
        await recordAudit(ctx, {
          action: 'order.refund',
          targetId: params.order_id,
          outcome: 'succeeded',
          details: {
            amount: input.amountMinor.toString(),
            currency: input.currency,
            ...(body.step !== undefined ? { step: body.step } : {}),
            reason: body.reason,
          },
        });
        return refundMadeJson(ctx.actor, input.amountMinor, input.currency, refunded);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/work-orders',
      summary: 'List work orders',
      description: 'Oldest first. Partners see their own.',
      tags: WORK_ORDERS,
      access: WORK_READERS,
      query: z.strictObject({
        ...pageQuery,
        status: z.enum(WORK_ORDER_STATUSES).optional(),
        order_id: idSchema('ord').optional(),
      }),
      response: page(WorkOrderJson),
      handler: async (ctx, { query }) =>
        toPage(
          await fulfilment.listWorkOrders(ctx, {
            status: query.status,
            orderId: query.order_id,
            after: query.after,
            limit: query.limit,
          }),
          workOrderJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/work-orders/:work_order_id',
      summary: 'Read a work order',
      tags: WORK_ORDERS,
      access: WORK_READERS,
      params: z.strictObject({ work_order_id: idSchema('wko') }),
      response: WorkOrderJson,
      handler: async (ctx, { params }) =>
        workOrderJson(await fulfilment.getWorkOrder(ctx, params.work_order_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/work-orders/:work_order_id/withdraw',
      summary: 'Withdraw work from its partner',
      description:
        'An operator takes a work order away from its partner, with a reason: work not started (offered or ' +
        'accepted) at any time, as when the partner cannot be reached; work in progress only once its due time ' +
        '(`due_by`) has passed without a delivery. The work order is cancelled with the reason (`withdrawn: …`), ' +
        'flagged late when past its due time, and its partner is paid nothing for it; the partner and the customer ' +
        'are told by a `work_order.withdrawn` event. The leg is then repaired as after a decline: given to the ' +
        'next-best partner that can still do it by its due time (`order.leg_replanned`, cause `withdrawn`) or, when ' +
        'none can, the order compensates: the legs not started are cancelled and the customer is refunded what was ' +
        'not done. Errors: `409 orders.work_order_not_overdue` (in progress, before its due time), ' +
        '`409 orders.transition_not_allowed` (delivered or closed).',
      tags: WORK_ORDERS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'work_order.withdraw', targetParam: 'work_order_id' },
      idempotencyKey: 'required',
      params: z.strictObject({ work_order_id: idSchema('wko') }),
      body: z.strictObject({ reason }),
      response: WorkOrderJson,
      handler: async (ctx, { params, body }) => {
        const withdrawn = await fulfilment.withdraw(ctx, params.work_order_id, body.reason);
        await recordAudit(ctx, {
          action: 'work_order.withdraw',
          targetId: params.work_order_id,
          outcome: 'succeeded',
          details: { reason: body.reason },
        });
        return workOrderJson(withdrawn);
      },
    }),
    ...(Object.keys(PARTNER_ACTIONS) as PartnerAction[]).map((action) =>
      defineRoute({
        method: 'POST',
        url: `/v1/work-orders/:work_order_id/${action}`,
        summary: `${action[0]?.toUpperCase()}${action.slice(1)} a work order`,
        description: `${PARTNER_ACTION_TEXT[action]} Errors: \`409 orders.transition_not_allowed\`.`,
        tags: WORK_ORDERS,
        access: PARTNERS,
        params: z.strictObject({ work_order_id: idSchema('wko') }),
        body: z.strictObject({ reason: reason.optional() }).default({}),
        response: WorkOrderJson,
        handler: async (ctx, { params, body }) =>
          workOrderJson(
            await fulfilment.partnerAction(ctx, params.work_order_id, action, body.reason ?? null),
          ),
      }),
    ),
  ];
}
