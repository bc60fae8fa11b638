import type { OperationKind, OperationStatus } from '../provider/port.js';

/**
 * What reconciliation can find wrong between the provider, Baton's records and the ledger:
 *   unknown_operation       the provider holds an operation Baton never asked for
 *   missing_at_provider     Baton believes an operation succeeded; the provider has no such one
 *   status_mismatch         Baton's record and the provider disagree on the state
 *   amount_mismatch         they, or the ledger, disagree on the amount
 *   missing_posting         a succeeded operation has no ledger transaction
 *   posting_without_operation a ledger transaction stands for an operation that did not succeed
 *   refund_owed             a refund failed at the provider and nobody retried it: the customer is owed it
 *   refund_unsettled        the provider finished a refund; Baton's refund is still pending and the
 *                           ledger still holds its money in refunds in transit
 *   chargeback_unrecorded   the customer's bank took money back; Baton has no chargeback for it
 *   payout_unknown          the provider holds a payout Baton has no record of
 *   payout_missing_at_provider Baton sent (or settled) a payout the provider has no record of
 *   payout_status_mismatch  Baton's payout and the provider disagree on the state
 *   payout_amount_mismatch  the provider, Baton's payout or its ledger postings disagree on the amount
 *   payout_unsettled        the provider paid a payout; the ledger has not settled it out of payouts in transit
 *   payout_not_returned     the provider failed a payout (or the partner's bank sent it back); the ledger has
 *                           not given it back to the partner's payable
 *   payout_posting_without_operation the ledger settled or returned a payout the provider has not finished so
 */
export const DISCREPANCY_TYPES = [
  'unknown_operation',
  'missing_at_provider',
  'status_mismatch',
  'amount_mismatch',
  'missing_posting',
  'posting_without_operation',
  'refund_owed',
  'refund_unsettled',
  'chargeback_unrecorded',
  'payout_unknown',
  'payout_missing_at_provider',
  'payout_status_mismatch',
  'payout_amount_mismatch',
  'payout_unsettled',
  'payout_not_returned',
  'payout_posting_without_operation',
] as const;
export type DiscrepancyType = (typeof DISCREPANCY_TYPES)[number];

export interface Discrepancy {
  readonly type: DiscrepancyType;
  readonly reference: string;
  readonly kind: OperationKind;
  /** The provider's view, Baton's and the ledger's, as far as each exists. */
  readonly provider_status: string | null;
  readonly baton_status: string | null;
  readonly provider_amount_minor: string | null;
  readonly baton_amount_minor: string | null;
  readonly ledger_amount_minor: string | null;
  readonly detail: string;
}

/** A payout as Baton recorded it, with the ledger transactions it posted for it (null: none). */
export interface PayoutRecord {
  readonly reference: string;
  readonly status: 'pending' | 'sent' | 'paid' | 'failed' | 'returned';
  readonly amountMinor: bigint;
  /** How often Baton asked the provider to send it: a pending payout with none was never sent. */
  readonly attempts: number;
  /** Moved from the partner's payable into payouts in transit. */
  readonly sentMinor: bigint | null;
  /** Settled out of payouts in transit to the provider. */
  readonly settledMinor: bigint | null;
  /** Returned from payouts in transit to the partner's payable. */
  readonly returnedMinor: bigint | null;
  /** Given back from the provider to the partner's payable, once its bank sent the paid payout back. */
  readonly bankReturnedMinor: bigint | null;
}

/** A finding about one payout: its type and why. */
export interface PayoutFinding {
  readonly type: DiscrepancyType;
  readonly detail: string;
  /** The ledger amount the finding is about, when it is about one. */
  readonly ledgerMinor: bigint | null;
}

/** The provider's state a payout's Baton status stands for. */
const PROVIDER_STATUS_OF: Record<PayoutRecord['status'], OperationStatus> = {
  pending: 'pending',
  sent: 'pending',
  paid: 'succeeded',
  failed: 'failed',
  returned: 'failed',
};

/**
 * Compares a payout the provider holds with Baton's record of it and the postings its status
 * implies: pending at the provider, the money sits in payouts in transit (sent, neither settled
 * nor returned); succeeded, it is settled out of transit; failed, it is back on the partner's
 * payable, returned out of transit or, when the provider paid it before the partner's bank sent
 * it back, settled and then given back from the provider. Each disagreement is one finding.
 */
export function comparePayout(
  provider: { readonly status: OperationStatus; readonly amountMinor: bigint },
  baton: PayoutRecord,
): PayoutFinding[] {
  const findings: PayoutFinding[] = [];
  if (PROVIDER_STATUS_OF[baton.status] !== provider.status)
    findings.push({
      type: 'payout_status_mismatch',
      detail: `The provider says ${provider.status}; Baton says ${baton.status}.`,
      ledgerMinor: null,
    });
  if (baton.amountMinor !== provider.amountMinor)
    findings.push({
      type: 'payout_amount_mismatch',
      detail: 'Baton recorded another amount than the provider.',
      ledgerMinor: null,
    });
  const posted = [baton.sentMinor, baton.settledMinor, baton.returnedMinor, baton.bankReturnedMinor].find(
    (amount) => amount !== null && amount !== provider.amountMinor,
  );
  if (posted !== undefined && posted !== null)
    findings.push({
      type: 'payout_amount_mismatch',
      detail: 'The ledger posted another amount than the provider moved.',
      ledgerMinor: posted,
    });
  if (baton.sentMinor === null)
    findings.push({
      type: 'payout_posting_without_operation',
      detail: 'The provider holds the payout; the ledger never moved its money into payouts in transit.',
      ledgerMinor: null,
    });
  if (provider.status === 'succeeded' && baton.settledMinor === null)
    findings.push({
      type: 'payout_unsettled',
      detail: 'The provider paid the payout; the ledger still holds its money in payouts in transit.',
      ledgerMinor: baton.sentMinor,
    });
  if (provider.status === 'failed' && baton.returnedMinor === null && baton.bankReturnedMinor === null)
    findings.push({
      type: 'payout_not_returned',
      detail:
        baton.settledMinor === null
          ? 'The provider failed the payout; the ledger has not returned its money to the partner’s payable.'
          : 'The provider says the partner’s bank sent the paid payout back; the ledger has not given it back to the partner’s payable.',
      ledgerMinor: baton.settledMinor ?? baton.sentMinor,
    });
  // Settled and failed at the provider is a payout paid and sent back, unless the ledger also
  // returned it out of transit: then it moved the money back twice.
  const settledWrongly =
    provider.status === 'pending' || (provider.status === 'failed' && baton.returnedMinor !== null);
  if (baton.settledMinor !== null && settledWrongly)
    findings.push({
      type: 'payout_posting_without_operation',
      detail: `The ledger settled the payout to the provider; the provider says ${provider.status}.`,
      ledgerMinor: baton.settledMinor,
    });
  if (provider.status !== 'failed' && baton.returnedMinor !== null)
    findings.push({
      type: 'payout_posting_without_operation',
      detail: `The ledger returned the payout to the partner; the provider says ${provider.status}.`,
      ledgerMinor: baton.returnedMinor,
    });
  if (baton.bankReturnedMinor !== null && (provider.status !== 'failed' || baton.settledMinor === null))
    findings.push({
      type: 'payout_posting_without_operation',
      detail:
        provider.status === 'failed'
          ? 'The ledger gave a payout back from the provider that it never settled to the provider.'
          : `The ledger gave the payout back to the partner as sent back by its bank; the provider says ${provider.status}.`,
      ledgerMinor: baton.bankReturnedMinor,
    });
  return findings;
}

/**
 * Whether Baton's payout should be known to the provider: it was sent, or asked to be sent, or
 * settled as paid. A payout the provider refused at once is failed without being held there.
 */
export const expectedAtProvider = (baton: PayoutRecord): boolean =>
  baton.status === 'sent' ||
  baton.status === 'paid' ||
  baton.status === 'returned' ||
  (baton.status === 'pending' && baton.attempts > 0);
