import { z } from 'zod';
import { ALL_OPERATOR_ROLES } from '../kernel/http/access.js';
import { defineRoute, type Route } from '../kernel/http/route.js';
import { currencyParams, idSchema, page, pageQuery, toPage } from '../kernel/http/schemas.js';
import { IDEMPOTENCY_MONEY_OUT_TTL_MS } from '../kernel/idempotency/idempotency-store.js';
import { parseAmount, parseCurrency } from '../kernel/money.js';
import {
  REFUND_REQUEST_STATUSES,
  RefundRequestJson,
  RefundThresholdJson,
  refundRequestJson,
  refundThresholdJson,
} from '../modules/orders/index.js';
import {
  MONEY_MOVERS,
  RefundByHandBody,
  RefundMadeJson,
  reason,
  refundByHandInput,
  refundMadeJson,
} from './fulfilment-routes.js';
import type { RefundApprovals } from './refund-approvals.js';

const TAGS = ['Orders'];
const OPERATORS = { operator: ALL_OPERATOR_ROLES } as const;

const requestParams = z.strictObject({ refund_request_id: idSchema('rrq') });

/** Routes of four eyes on refunds by hand: thresholds, and the requests another operator decides. */
export function refundApprovalRoutes(approvals: RefundApprovals): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/refund-thresholds',
      summary: 'List the thresholds of refunds by hand',
      description:
        'Per currency, what operators may give back of one order by hand alone, in all, and what one operator user ' +
        'may give back by hand alone in a day (UTC), over all orders. A currency without a threshold needs no ' +
        'second operator.',
      tags: TAGS,
      access: OPERATORS,
      response: z.object({ data: z.array(RefundThresholdJson) }),
      handler: async (ctx) => ({ data: (await approvals.thresholds(ctx)).map(refundThresholdJson) }),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/refund-thresholds/:currency',
      summary: 'Set the threshold of refunds by hand in a currency',
      description:
        'From now on, a refund by hand (`POST /v1/orders/{order_id}/refunds`) that would take what one order was ' +
        'given back by hand alone, or what its operator gave back by hand alone that day (UTC, counted also before ' +
        'the threshold was set), above `approval_above` is refused with `403 orders.refund_needs_approval`; it is ' +
        'filed as a refund request instead, which another operator approves. `0.00` puts every refund by hand in ' +
        'the currency before a second operator. Errors: `400 orders.refund_threshold_negative`, ' +
        '`400 money.unknown_currency`, `400 money.too_many_decimals`.',
      tags: TAGS,
      access: { operator: ['admin'] },
      audit: { action: 'order.refund_threshold.set', targetParam: 'currency' },
      params: currencyParams,
      body: z.strictObject({
        approval_above: z.string().max(40).describe('A decimal string in the currency: "500.00".'),
      }),
      response: RefundThresholdJson,
      handler: async (ctx, { params, body }) => {
        const currency = parseCurrency(params.currency);
        return refundThresholdJson(
          await approvals.setThreshold(ctx, currency, parseAmount(body.approval_above, currency)),
        );
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/refund-thresholds/:currency',
      summary: 'Remove the threshold of refunds by hand in a currency',
      description: 'Refunds by hand in the currency need no second operator again.',
      tags: TAGS,
      access: { operator: ['admin'] },
      audit: { action: 'order.refund_threshold.remove', targetParam: 'currency' },
      params: currencyParams,
      response: z.object({ currency: z.string() }),
      handler: async (ctx, { params }) => {
        await approvals.removeThreshold(ctx, params.currency);
        return { currency: params.currency };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/orders/:order_id/refund-requests',
      summary: 'Ask another operator to approve a refund by hand',
      description:
        'A refund by hand, as `POST /v1/orders/{order_id}/refunds` takes it, filed for a second operator to ' +
        'approve: needed above the currency’s threshold, allowed below it. It is checked against the order as it ' +
        'stands (`422 settlement.amount_invalid`, `409 orders.refund_not_allowed`, `422 orders.currency_mismatch`, ' +
        '`404 orders.leg_not_found`); the amount is checked against what the order can give back when the request ' +
        'is approved. Nothing moves until then. Announced to operators by a `refund_request.created` event.',
      tags: TAGS,
      access: MONEY_MOVERS,
      audit: { action: 'order.refund_request.create', targetParam: 'order_id' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      params: z.strictObject({ order_id: idSchema('ord') }),
      body: RefundByHandBody,
      status: 201,
      response: RefundRequestJson,
      handler: async (ctx, { params, body }) =>
        refundRequestJson(await approvals.request(ctx, params.order_id, refundByHandInput(body))),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/refund-requests',
      summary: 'List refund requests',
      description:
        'Oldest first; `status=pending` lists what waits for a decision, `status=expired` what was left undecided ' +
        'for seven days and can no longer be decided.',
      tags: TAGS,
      access: OPERATORS,
      query: z.strictObject({
        ...pageQuery,
        status: z.enum(REFUND_REQUEST_STATUSES).optional(),
        order_id: idSchema('ord').optional(),
      }),
      response: page(RefundRequestJson),
      handler: async (ctx, { query }) =>
        toPage(
          await approvals.list(ctx, {
            status: query.status,
            orderId: query.order_id,
            after: query.after,
            limit: query.limit,
          }),
          refundRequestJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/refund-requests/:refund_request_id',
      summary: 'Get a refund request',
      tags: TAGS,
      access: OPERATORS,
      params: requestParams,
      response: RefundRequestJson,
      handler: async (ctx, { params }) =>
        refundRequestJson(await approvals.get(ctx, params.refund_request_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/refund-requests/:refund_request_id/approve',
      summary: 'Approve a refund request: the refund is made',
      description:
        'Makes the refund as `POST /v1/orders/{order_id}/refunds` would, with the request’s amount, step and reason, ' +
        'as the approving operator. The operator who filed the request cannot approve it (`403 ' +
        'orders.self_approval`). When the refund is refused (`422 settlement.refund_exceeds_order`, ' +
        '`settlement.refund_exceeds_leg`, `409 settlement.refund_exceeds_after_chargebacks`, …), nothing changes and ' +
        'the request stays pending. `409 orders.refund_request_decided` once approved or rejected, ' +
        '`409 orders.refund_request_expired` seven days after it was filed.',
      tags: TAGS,
      access: MONEY_MOVERS,
      audit: { action: 'order.refund_request.approve', targetParam: 'refund_request_id' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      params: requestParams,
      body: z.strictObject({}),
      response: RefundMadeJson.extend({ request: RefundRequestJson }),
      handler: async (ctx, { params }) => {
        const approved = await approvals.approve(ctx, params.refund_request_id);
        const { request } = approved;
        return {
          request: refundRequestJson(request),
          ...refundMadeJson(ctx.actor, request.amountMinor, request.currency, approved),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/refund-requests/:refund_request_id/reject',
      summary: 'Reject a refund request',
      description:
        'Turns the request down with a reason; nothing moves. The operator who filed it may withdraw it this way. ' +
        '`409 orders.refund_request_decided` once approved or rejected, `409 orders.refund_request_expired` once expired.',
      tags: TAGS,
      access: MONEY_MOVERS,
      audit: { action: 'order.refund_request.reject', targetParam: 'refund_request_id' },
      params: requestParams,
      body: z.strictObject({ reason }),
      response: RefundRequestJson,
      handler: async (ctx, { params, body }) =>
        refundRequestJson(await approvals.reject(ctx, params.refund_request_id, body.reason)),
    }),
  ];
}
