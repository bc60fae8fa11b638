import {
  conflict,
  DomainError,
  type FieldError,
  forbidden,
  invalid,
  notFound,
  unprocessable,
} from '../../kernel/errors.js';
import { formatAmount, parseCurrency } from '../../kernel/money.js';
import type { WorkOrderStatus } from './domain/work-order.js';

/** Why a step of a quote could not be planned. */
export type InfeasibleReason =
  | 'deadline_unreachable'
  | 'no_offers'
  | 'no_candidate'
  | 'capacity_taken'
  | 'price_below_cost';

export interface Infeasibility {
  readonly step: string | null;
  readonly capability: string | null;
  readonly reason: InfeasibleReason;
  /** Offers of the step's capability in the region that failed each filter. */
  readonly exclusions: Readonly<Record<string, number>>;
  readonly offers: number;
  readonly dueBy: Date | null;
}

/** The orders module's expected failures, each named after the rule it enforces. */
export const ordersErrors = {
  quoteNotFound: (id: string) => notFound('orders.quote_not_found', `No quote ${id}.`),
  orderNotFound: (id: string) => notFound('orders.order_not_found', `No order ${id}.`),
  workOrderNotFound: (id: string) => notFound('orders.work_order_not_found', `No work order ${id}.`),
  legNotFound: (orderId: string, step: string) =>
    notFound('orders.leg_not_found', `Order ${orderId} has no step ${step}.`),
  offeringNotAvailable: (key: string) =>
    unprocessable('orders.offering_not_available', `The offering ${key} is retired and takes no new quotes.`),
  /**
   * A step's constraints no longer fit its capability, whose attribute schema changed since the
   * offering's version was published: the operator must publish the offering anew.
   */
  offeringOutOfDate: (key: string, step: string, capability: string, errors: readonly FieldError[]) =>
    conflict(
      'orders.offering_out_of_date',
      `Step ${step} of the offering ${key} asks for what the capability ${capability} no longer describes; the offering needs a new version.`,
      { step, capability, errors },
    ),
  regionNotOffered: (key: string, region: string, regions: readonly string[]) =>
    unprocessable('orders.region_not_offered', `The offering ${key} is not sold in ${region}.`, {
      regions: [...regions],
    }),
  quantityOutOfRange: (min: number, max: number) =>
    unprocessable('orders.quantity_out_of_range', `The quantity must be between ${min} and ${max}.`, {
      min,
      max,
    }),
  currencyNotScheduled: (currency: string) =>
    unprocessable(
      'orders.no_fee_schedule',
      `No fee schedule in ${currency} is in force: orders in ${currency} cannot be priced.`,
    ),
  customerRequired: () =>
    unprocessable('orders.customer_required', 'An operator quoting for a customer must name the customer.'),
  /** No plan meets the request: names the step and the reason. */
  quoteInfeasible: (message: string, infeasibility: Infeasibility) =>
    unprocessable('orders.quote_infeasible', message, {
      step: infeasibility.step,
      capability: infeasibility.capability,
      reason: infeasibility.reason,
      offers: infeasibility.offers,
      exclusions: { ...infeasibility.exclusions },
      due_by: infeasibility.dueBy?.toISOString() ?? null,
    }),
  quoteExpired: (id: string, validUntil: Date) =>
    conflict('orders.quote_expired', `The quote ${id} was valid until ${validUntil.toISOString()}.`, {
      valid_until: validUntil.toISOString(),
    }),
  quoteAlreadyOrdered: (id: string, orderId: string) =>
    conflict('orders.quote_already_ordered', `The quote ${id} was already ordered as ${orderId}.`, {
      order_id: orderId,
    }),
  /**
   * The customer-side subsidy the quote showed can no longer be paid in full (its programme's
   * budget or the customer's cap ran out, or it ended): the order would cost more than quoted.
   */
  quoteSubsidyUnavailable: (id: string, quotedMinor: bigint, availableMinor: bigint) =>
    conflict(
      'orders.quote_subsidy_unavailable',
      `The subsidy quote ${id} showed is no longer available in full; ask for a new quote. Nothing was charged.`,
      { quoted_subsidy_minor: quotedMinor.toString(), available_subsidy_minor: availableMinor.toString() },
    ),
  /** A hold of the quote lapsed and its capacity went to someone else: nothing was charged. */
  capacityLost: (id: string, step: string) =>
    conflict(
      'orders.capacity_lost',
      `The capacity held for step ${step} of quote ${id} is gone; ask for a new quote. Nothing was charged.`,
      { step },
    ),
  transitionNotAllowed: (id: string, from: WorkOrderStatus, to: WorkOrderStatus) =>
    conflict('orders.transition_not_allowed', `Work order ${id} is ${from}; it cannot become ${to}.`, {
      from,
      to,
    }),
  /** Work in progress is withdrawn from its partner only once its due time has passed. */
  workOrderNotOverdue: (id: string, dueBy: Date) =>
    conflict(
      'orders.work_order_not_overdue',
      `Work order ${id} is in progress and due by ${dueBy.toISOString()}: work under way can be withdrawn from its partner only after its due time.`,
      { due_by: dueBy.toISOString() },
    ),
  /** A suspended or offboarded partner takes on no work; its legs not started go to others. */
  partnerNotEngaged: (id: string, partnerId: string, state: string) =>
    conflict(
      'orders.partner_not_engaged',
      `Partner ${partnerId} is ${state}: it cannot take on work order ${id}; the legs it has not started go to other partners.`,
      { partner_state: state },
    ),
  acceptanceWindowClosed: (id: string, acceptBy: Date) =>
    conflict(
      'orders.acceptance_window_closed',
      `Work order ${id} had to be accepted by ${acceptBy.toISOString()}.`,
      {
        accept_by: acceptBy.toISOString(),
      },
    ),
  legNotDelivered: (orderId: string, step: string) =>
    conflict('orders.leg_not_delivered', `Step ${step} of order ${orderId} has no delivered work to judge.`),
  /**
   * An order's escrow belongs to its legs until they close: a refund by hand is of a closed
   * order, or of a confirmed (paid) leg.
   */
  refundNotAllowed: (orderId: string, status: string, step: string | null) =>
    conflict(
      'orders.refund_not_allowed',
      step === null
        ? `Order ${orderId} is ${status}: refund a confirmed leg by its step, or the order once it is completed or failed.`
        : `Step ${step} of order ${orderId} is ${status}: only a confirmed leg can be refunded by hand.`,
      { status, ...(step === null ? {} : { step }) },
    ),
  currencyMismatch: (orderId: string, currency: string, given: string) =>
    unprocessable('orders.currency_mismatch', `Order ${orderId} is in ${currency}, not ${given}.`, {
      errors: [{ path: '/amount/currency', rule: 'currency', message: `must be ${currency}` }],
    }),
  /**
   * Four eyes: what operators give back of an order by hand alone, and what one operator gives
   * back by hand alone in a day, stay at or below the threshold of the currency; above either,
   * the refund is a request another operator decides. Both counts are given as they stood
   * before this refund.
   */
  refundNeedsApproval: (
    orderId: string,
    currency: string,
    approvalAboveMinor: bigint,
    alone: { orderMinor: bigint; todayMinor: bigint },
  ) => {
    const money = (minor: bigint) => ({ amount: formatAmount(minor, parseCurrency(currency)), currency });
    const above = money(approvalAboveMinor);
    return new DomainError(
      'forbidden',
      'orders.refund_needs_approval',
      `Refunds by hand above ${above.amount} ${currency}, of one order in all or by one operator in a day (UTC), need a second operator (order ${orderId}: ${money(alone.orderMinor).amount} given back alone so far; this operator today: ${money(alone.todayMinor).amount}): file a refund request (POST /v1/orders/${orderId}/refund-requests).`,
      {
        approval_above: above,
        refunded_alone: money(alone.orderMinor),
        refunded_alone_today: money(alone.todayMinor),
      },
    );
  },
  refundThresholdNegative: () =>
    invalid('orders.refund_threshold_negative', 'A refund threshold is an amount of zero or more.', {
      errors: [{ path: '/approval_above', rule: 'minimum', message: 'must not be negative' }],
    }),
  refundThresholdNotFound: (currency: string) =>
    notFound('orders.refund_threshold_not_found', `No refund threshold is set for ${currency}.`),
  refundRequestNotFound: (id: string) =>
    notFound('orders.refund_request_not_found', `No refund request ${id}.`),
  refundRequestDecided: (id: string, status: string) =>
    conflict('orders.refund_request_decided', `Refund request ${id} is already ${status}.`, { status }),
  refundRequestExpired: (id: string, expiresAt: Date) =>
    conflict(
      'orders.refund_request_expired',
      `Refund request ${id} expired at ${expiresAt.toISOString()} undecided; file it anew if it still stands.`,
      { expires_at: expiresAt.toISOString() },
    ),
  selfApproval: (id: string) =>
    forbidden('orders.self_approval', `Refund request ${id} is yours: another operator must decide it.`),
};
