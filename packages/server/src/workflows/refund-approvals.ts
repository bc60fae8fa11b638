import { recordAudit } from '../kernel/audit/audit-log.js';
import type { Context } from '../kernel/context.js';
import { requireTransaction } from '../kernel/database/database.js';
import { appendEvent } from '../kernel/events/event-log.js';
import { APPROVAL_REQUEST_TTL_MS, operatorOf } from '../kernel/four-eyes.js';
import { newId, type OrderId } from '../kernel/ids.js';
import { formatAmount, parseCurrency } from '../kernel/money.js';
import type { Page } from '../kernel/pagination.js';
import {
  decideRefundRequest,
  findRefundRequest,
  insertRefundRequest,
  listRefundRequests,
  ordersErrors,
  type RefundRequest,
  type RefundRequestQuery,
  type RefundThreshold,
  refundThresholds,
  removeRefundThreshold,
  saveRefundThreshold,
} from '../modules/orders/index.js';
import type { Fulfilment, OrderView, RefundByHand } from './fulfilment.js';

/**
 * Four eyes on refunds by hand. Above a threshold per currency (what one order is given back by
 * hand alone, in all, and what one operator gives back by hand alone in a UTC day), a refund is
 * filed as a request and made only when another operator approves it; the database, too,
 * refuses an approval by the operator who filed the request.
 */
export function createRefundApprovals(deps: { fulfilment: Fulfilment }) {
  const { fulfilment } = deps;

  /** A request and the operator user asking for it; to anyone else it does not exist. */
  async function requested(ctx: Context, id: string, options: { lock?: boolean } = {}) {
    const by = operatorOf(ctx, () => ordersErrors.refundRequestNotFound(id));
    const request = await findRefundRequest(ctx.db, id, { ...options, now: ctx.now });
    if (!request) throw ordersErrors.refundRequestNotFound(id);
    return { request, by };
  }

  /** A request still to decide: pending, not expired. */
  async function undecided(ctx: Context, id: string) {
    const found = await requested(ctx, id, { lock: true });
    const { request } = found;
    if (request.status === 'expired') throw ordersErrors.refundRequestExpired(id, request.expiresAt);
    if (request.status !== 'pending') throw ordersErrors.refundRequestDecided(id, request.status);
    return found;
  }

  /** A request's event, for operators only: it names the customer's order and the amount. */
  async function announce(ctx: Context, type: string, request: RefundRequest) {
    await appendEvent(ctx, {
      type,
      subjectId: request.id,
      data: {
        id: request.id,
        order_id: request.orderId,
        ...(request.stepKey !== null ? { step: request.stepKey } : {}),
        amount: formatAmount(request.amountMinor, parseCurrency(request.currency)),
        currency: request.currency,
        reason: request.reason,
        status: request.status,
        ...(request.decisionReason !== null ? { decision_reason: request.decisionReason } : {}),
      },
      audience: [],
    });
  }

  return {
    thresholds: (ctx: Context): Promise<RefundThreshold[]> => refundThresholds(ctx.db),

    /**
     * Sets what operators may give back of one order by hand alone, in a currency.
     *
     * @throws DomainError `orders.refund_threshold_negative`
     */
    async setThreshold(ctx: Context, currency: string, approvalAboveMinor: bigint): Promise<RefundThreshold> {
      requireTransaction(ctx.db);
      if (approvalAboveMinor < 0n) throw ordersErrors.refundThresholdNegative();
      const by = operatorOf(ctx, () => new Error('only operators set refund thresholds'));
      const threshold = await saveRefundThreshold(ctx.db, {
        currency,
        approvalAboveMinor,
        updatedBy: by,
        updatedAt: ctx.now,
      });
      await recordAudit(ctx, {
        action: 'order.refund_threshold.set',
        targetId: currency,
        outcome: 'succeeded',
        details: { approval_above_minor: approvalAboveMinor.toString() },
      });
      return threshold;
    },

    /**
     * Removes a currency's threshold: refunds by hand in it need no second operator again.
     *
     * @throws DomainError `orders.refund_threshold_not_found`
     */
    async removeThreshold(ctx: Context, currency: string): Promise<void> {
      requireTransaction(ctx.db);
      if (!(await removeRefundThreshold(ctx.db, currency)))
        throw ordersErrors.refundThresholdNotFound(currency);
      await recordAudit(ctx, {
        action: 'order.refund_threshold.remove',
        targetId: currency,
        outcome: 'succeeded',
      });
    },

    /**
     * Files a refund by hand for another operator to approve, whatever its amount. It is checked
     * against the order as it stands (`fulfilment.checkRefundByHand`); the amount is checked
     * when it is approved, against what the order can give back then.
     */
    async request(ctx: Context, orderId: OrderId, input: RefundByHand): Promise<RefundRequest> {
      requireTransaction(ctx.db);
      const by = operatorOf(ctx, () => ordersErrors.orderNotFound(orderId));
      await fulfilment.checkRefundByHand(ctx, orderId, input);
      const request = await insertRefundRequest(ctx.db, {
        id: newId('rrq'),
        orderId,
        stepKey: input.stepKey,
        amountMinor: input.amountMinor,
        currency: input.currency,
        reason: input.reason,
        requestedBy: by,
        requestedAt: ctx.now,
        expiresAt: new Date(ctx.now.getTime() + APPROVAL_REQUEST_TTL_MS),
      });
      await announce(ctx, 'refund_request.created', request);
      await recordAudit(ctx, {
        action: 'order.refund_request.create',
        targetId: orderId,
        outcome: 'succeeded',
        details: { request_id: request.id, amount: input.amountMinor.toString(), currency: input.currency },
      });
      return request;
    },

    get: async (ctx: Context, id: string): Promise<RefundRequest> => (await requested(ctx, id)).request,

    list(ctx: Context, query: RefundRequestQuery): Promise<Page<RefundRequest>> {
      operatorOf(ctx, () => new Error('only operators read refund requests'));
      return listRefundRequests(ctx.db, query, ctx.now);
    },

    /**
     * Makes the refund a request asks for, as the approving operator, who may not be the one who
     * filed it. When the refund is refused (the order gave back more meanwhile, say), nothing
     * changes and the request stays pending, to be rejected or approved later.
     *
     * @throws DomainError `orders.refund_request_not_found`, `orders.self_approval`,
     *   `orders.refund_request_decided`, and as `fulfilment.refundByHand`
     */
    async approve(
      ctx: Context,
      id: string,
    ): Promise<{ request: RefundRequest } & OrderView & { customerMinor: bigint; subsidyMinor: bigint }> {
      requireTransaction(ctx.db);
      const { request, by } = await undecided(ctx, id);
      if (request.requestedBy === by) throw ordersErrors.selfApproval(id);
      const refunded = await fulfilment.refundByHand(
        ctx,
        request.orderId,
        {
          amountMinor: request.amountMinor,
          currency: request.currency,
          stepKey: request.stepKey,
          reason: request.reason,
        },
        { approved: true },
      );
      const approved = await decideRefundRequest(ctx.db, request.id, {
        status: 'approved',
        by,
        at: ctx.now,
        refundedMinor: refunded.customerMinor,
        subsidyReturnedMinor: refunded.subsidyMinor,
      });
      await announce(ctx, 'refund_request.approved', approved);
      await recordAudit(ctx, {
        action: 'order.refund_request.approve',
        targetId: request.id,
        outcome: 'succeeded',
        details: {
          order_id: request.orderId,
          amount: request.amountMinor.toString(),
          currency: request.currency,
          requested_by: request.requestedBy,
        },
      });
      return { request: approved, ...refunded };
    },

    /**
     * Turns a request down, with a reason; nothing moves. The operator who filed it may
     * withdraw it this way too.
     *
     * @throws DomainError `orders.refund_request_not_found`, `orders.refund_request_decided`
     */
    async reject(ctx: Context, id: string, reason: string): Promise<RefundRequest> {
      requireTransaction(ctx.db);
      const { request, by } = await undecided(ctx, id);
      const rejected = await decideRefundRequest(ctx.db, request.id, {
        status: 'rejected',
        by,
        at: ctx.now,
        reason,
      });
      await announce(ctx, 'refund_request.rejected', rejected);
      await recordAudit(ctx, {
        action: 'order.refund_request.reject',
        targetId: request.id,
        outcome: 'succeeded',
        details: { order_id: request.orderId, reason },
      });
      return rejected;
    },
  };
}

export type RefundApprovals = ReturnType<typeof createRefundApprovals>;
