import type { OperationKind } from '../provider/port.js';

/**
 * What reconciliation can find wrong between the provider, Baton's records and the ledger:
 *   unknown_operation       the provider holds an operation Baton never asked for
 *   missing_at_provider     Baton believes an operation succeeded; the provider has no such one
 *   status_mismatch         Baton's record and the provider disagree on the state
 *   amount_mismatch         they, or the ledger, disagree on the amount
 *   missing_posting         a succeeded operation has no ledger transaction
 *   posting_without_operation a ledger transaction stands for an operation that did not succeed
 *   refund_owed             a refund failed at the provider and nobody retried it: the customer is owed it
 */
export const DISCREPANCY_TYPES = [
  'unknown_operation',
  'missing_at_provider',
  'status_mismatch',
  'amount_mismatch',
  'missing_posting',
  'posting_without_operation',
  'refund_owed',
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
