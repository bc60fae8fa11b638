import { conflict, invalid, notFound, unprocessable } from '../../kernel/errors.js';

/** The payments module's expected failures, each named after the rule it enforces. */
export const paymentsErrors = {
  paymentNotFound: (id: string) => notFound('payments.payment_not_found', `No payment ${id}.`),
  chargebackNotFound: (id: string) => notFound('payments.chargeback_not_found', `No chargeback ${id}.`),
  reportNotFound: (id: string) => notFound('payments.report_not_found', `No reconciliation report ${id}.`),
  /** One reference names one request: a charge or refund with the same reference and other content. */
  referenceReused: (reference: string) =>
    conflict('payments.reference_reused', `The reference ${reference} already names a different request.`),
  amountInvalid: (message: string) =>
    unprocessable('payments.amount_invalid', message, {
      errors: [{ path: '/amount', rule: 'minimum', message }],
    }),
  /** Only a captured payment can be refunded. */
  paymentNotCaptured: (id: string, status: string) =>
    conflict('payments.payment_not_captured', `The payment ${id} is ${status}, not captured.`, {
      payment_status: status,
    }),
  /** Refunds never exceed the captured amount minus earlier refunds. */
  refundExceedsCapture: (requested: bigint, refundable: bigint) =>
    conflict(
      'payments.refund_exceeds_capture',
      `Only ${refundable} minor units of the capture are left to refund; ${requested} were asked for.`,
      { refundable_minor: refundable.toString() },
    ),
  /** The provider refused the request itself; retrying the same request will not help. */
  providerRejected: (code: string, message: string) =>
    unprocessable('payments.provider_rejected', message, { provider_code: code }),
  refundNotFound: (id: string) => notFound('payments.refund_not_found', `No refund ${id}.`),
  /** Only a failed refund nobody has retried yet can be retried: its money is what is owed. */
  refundNotOwed: (id: string, status: string, retriedBy: string | null) =>
    conflict(
      'payments.refund_not_owed',
      retriedBy
        ? `The refund ${id} was already retried by ${retriedBy}.`
        : `The refund ${id} is ${status}, not failed: nothing of it is owed.`,
      { refund_status: status, retried_by: retriedBy },
    ),
  chargebackAlreadyDecided: (id: string) =>
    conflict('payments.chargeback_already_decided', `The liability for chargeback ${id} is already decided.`),
  /** A partner or split liability names the partner and, for a split, its share. */
  decisionInvalid: (path: string, message: string) =>
    unprocessable('payments.decision_invalid', message, { errors: [{ path, rule: 'required', message }] }),
  /** A reconciliation looks back from now, and at most as far as its limit. */
  reconciliationWindowInvalid: (message: string) =>
    unprocessable('payments.reconciliation_window_invalid', message, {
      errors: [{ path: '/since', rule: 'range', message }],
    }),
  /** The provider's callback is not signed with the shared secret, or its timestamp is too far off. */
  // 400 rather than 401: the caller has no API key to fix, only a delivery to reject.
  signatureInvalid: (message: string) => invalid('payments.signature_invalid', message),
  eventInvalid: (message: string) => invalid('payments.event_invalid', message),
};
