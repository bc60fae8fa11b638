import type { OperationStatus } from '../provider/port.js';

/*
 * A payment's life: `pending` (the intent is recorded, the provider has not answered yet),
 * `unknown` (a call timed out: the provider may or may not have acted; the retry job finds out),
 * `authorized` (the money is reserved, the capture has not settled), and the final states
 * `captured` (the money is in escrow), `declined` (the authorization failed) and `failed` (the
 * capture failed).
 */
export const PAYMENT_STATUSES = [
  'pending',
  'authorized',
  'captured',
  'declined',
  'failed',
  'unknown',
] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

export const REFUND_STATUSES = ['pending', 'succeeded', 'failed', 'unknown'] as const;
export type RefundStatus = (typeof REFUND_STATUSES)[number];

export const CHARGEBACK_STATUSES = ['open', 'decided'] as const;
export type ChargebackStatus = (typeof CHARGEBACK_STATUSES)[number];

/** Who bears a chargeback: the platform, the partner who delivered, or both in a stated share. */
export const CHARGEBACK_LIABILITIES = ['platform', 'partner', 'split'] as const;
export type ChargebackLiability = (typeof CHARGEBACK_LIABILITIES)[number];

/** Payments whose outcome is still open: the provider may yet authorize, capture or decline them. */
export const OPEN_PAYMENT_STATUSES = [
  'pending',
  'authorized',
  'unknown',
] as const satisfies readonly PaymentStatus[];

/** How Baton knows an operation: asked for but unanswered, unknown after a timeout, or the provider's state. */
export const KNOWN_STATUSES = ['requested', 'unknown', 'pending', 'succeeded', 'failed'] as const;
export type KnownStatus = (typeof KNOWN_STATUSES)[number];

export const isFinal = (status: KnownStatus): status is 'succeeded' | 'failed' =>
  status === 'succeeded' || status === 'failed';

/**
 * Whether a reported state moves an operation on. Callbacks come late, twice and out of order,
 * so a state is applied only when it is news: a final state over a non-final one, or `pending`
 * over one Baton has not heard from the provider. A stale `pending` after `succeeded` changes
 * nothing, and neither does a final state that contradicts an earlier final one (reconciliation
 * reports that).
 */
export function advances(current: KnownStatus, reported: OperationStatus): boolean {
  if (isFinal(current)) return false;
  if (reported === 'pending') return current !== 'pending';
  return true;
}

/**
 * The states a reported state moves an operation on from (see `advances`), so that a store can
 * apply it with one conditional update instead of reading the row first.
 */
export const advancesFrom = (reported: OperationStatus): readonly KnownStatus[] =>
  KNOWN_STATUSES.filter((current) => advances(current, reported));

/** What is left of a capture to refund: refunds never exceed the captured amount. */
export const refundableMinor = (payment: { capturedMinor: bigint; refundedMinor: bigint }): bigint =>
  payment.capturedMinor - payment.refundedMinor;

/**
 * How a partner's share of a chargeback is collected: from its payable as far as that covers,
 * the rest as a receivable the platform nets from later earnings.
 */
export function collectShare(
  shareMinor: bigint,
  payableMinor: bigint,
): { fromPayableMinor: bigint; receivableMinor: bigint } {
  const fromPayableMinor = shareMinor < payableMinor ? shareMinor : payableMinor > 0n ? payableMinor : 0n;
  return { fromPayableMinor, receivableMinor: shareMinor - fromPayableMinor };
}

/** The provider reference of a payment's capture, derived so that a retry always names the same capture. */
export const captureReferenceOf = (paymentReference: string): string => `${paymentReference}:capture`;
