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

const money = (minor: bigint, currency: string) => ({
  amount: formatAmount(minor, parseCurrency(currency)),
  currency,
});

/** The ledger's expected failures, each named after the rule it enforces. */
export const ledgerErrors = {
  accountNotFound: (id: string) => notFound('ledger.account_not_found', `No account ${id}.`),
  transactionNotFound: (id: string) => notFound('ledger.transaction_not_found', `No transaction ${id}.`),
  /** The transaction breaks a rule of double entry; `errors` names each field. */
  postingInvalid: (errors: readonly FieldError[]) =>
    unprocessable('ledger.entries_must_balance', 'The transaction is not valid; see errors for each field.', {
      errors,
    }),
  /** An entry in another currency than its account's. */
  currencyMismatch: (index: number, accountId: string, accountCurrency: string, currency: string) =>
    unprocessable(
      'ledger.currency_mismatch',
      `Entry ${index} is in ${currency}; account ${accountId} is in ${accountCurrency}.`,
      {
        errors: [
          { path: `/entries/${index}/currency`, rule: 'currency', message: `must be ${accountCurrency}` },
        ],
      },
    ),
  /** The account's owner does not match its purpose (a partner payable owned by an order, ...). */
  ownerInvalid: (purpose: string, ownerId: string) =>
    unprocessable('ledger.owner_invalid', `${ownerId} cannot own a ${purpose} account.`),
  /** The same idempotency key was used for a different transaction. */
  existsWithDifferentContent: (key: string, transactionId: string) =>
    conflict(
      'ledger.exists_with_different_content',
      `The idempotency key ${key} already names transaction ${transactionId}, with different content.`,
      { transaction_id: transactionId },
    ),
  /** The posting would take a non-negative account below zero. */
  insufficientFunds: (accountId: string, balanceMinor: bigint, neededMinor: bigint) =>
    conflict(
      'ledger.insufficient_funds',
      `Account ${accountId} holds ${balanceMinor} minor units; the transaction needs ${neededMinor}.`,
      { account_id: accountId, balance: balanceMinor.toString(), needed: neededMinor.toString() },
    ),
  /** A transaction is reversed at most once; `reversal_id` names the transaction that reversed it. */
  alreadyReversed: (transactionId: string, reversalId: string) =>
    conflict(
      'ledger.already_reversed',
      `Transaction ${transactionId} was already reversed, by transaction ${reversalId}.`,
      { transaction_id: transactionId, reversal_id: reversalId },
    ),
  /**
   * A reversal is final: undoing it would put back what it took out, which is a new posting of
   * the original's movement, not a reversal.
   */
  reversalNotReversible: (transactionId: string) =>
    unprocessable(
      'ledger.reversal_not_reversible',
      `Transaction ${transactionId} is a reversal, and a reversal is not reversed; post the movement anew instead.`,
      { transaction_id: transactionId },
    ),
  /**
   * Postings whose money moves as the payment provider answers are not reversed by hand. A
   * payout sent is settled or returned by its provider's answer, and a reversal would put the
   * money back on the partner's payable while the provider pays it all the same, for the next
   * run to pay again (`ledger.payout_not_reversible`). A payment's capture, a refund's or a
   * chargeback's postings mirror what the provider did, and a reversal would leave the next of
   * them (a refund's settlement, say) short of the money it moves
   * (`ledger.provider_posting_not_reversible`).
   */
  notReversible: (transactionId: string, causeKind: 'payment' | 'refund' | 'chargeback' | 'payout') =>
    causeKind === 'payout'
      ? unprocessable(
          'ledger.payout_not_reversible',
          `Transaction ${transactionId} was posted by a payout, whose money moves only as the provider answers; it is not reversed by hand.`,
          { transaction_id: transactionId },
        )
      : unprocessable(
          'ledger.provider_posting_not_reversible',
          `Transaction ${transactionId} was posted for a ${causeKind}, whose money moves only as the payment provider answers; it is not reversed by hand.`,
          { transaction_id: transactionId, cause_kind: causeKind },
        ),
  /**
   * Every amount is at most 10^15 minor units, but a balance sums many: one that would pass what
   * the database keeps (2^63 − 1 minor units either way) is refused, with nothing written.
   */
  amountOutOfRange: () =>
    unprocessable(
      'ledger.amount_out_of_range',
      'This would take a balance beyond what the ledger can hold (9,223,372,036,854,775,807 minor units either way); nothing was written.',
    ),
  statementCursorInvalid: (after: string) =>
    unprocessable('ledger.cursor_invalid', `${after} is not a line of this account's statement.`),
  /**
   * Four eyes: what one operator moves by hand alone in a day (UTC) stays at or below the
   * threshold of its currency; beyond it, the movement is a posting request another operator
   * approves.
   */
  postingNeedsApproval: (
    currency: string,
    approvalAboveMinor: bigint,
    movedAloneMinor: bigint,
    amountMinor: bigint,
  ) => {
    const above = money(approvalAboveMinor, currency);
    const alone = money(movedAloneMinor, currency);
    return new DomainError(
      'forbidden',
      'ledger.posting_needs_approval',
      `Moving ${money(amountMinor, currency).amount} ${currency} by hand would take what you moved alone today (UTC) from ${alone.amount} to above ${above.amount} ${currency}: file it as a posting request (POST /v1/ledger/posting-requests) for another operator to approve.`,
      { currency, approval_above: above, moved_alone_today: alone, amount: money(amountMinor, currency) },
    );
  },
  approvalThresholdNegative: () =>
    invalid('ledger.approval_threshold_negative', 'An approval threshold is an amount of zero or more.', {
      errors: [{ path: '/approval_above', rule: 'minimum', message: 'must not be negative' }],
    }),
  approvalThresholdNotFound: (currency: string) =>
    notFound('ledger.approval_threshold_not_found', `No approval threshold is set for ${currency}.`),
  postingRequestNotFound: (id: string) =>
    notFound('ledger.posting_request_not_found', `No posting request ${id}.`),
  postingRequestDecided: (id: string, status: string) =>
    conflict('ledger.posting_request_decided', `Posting request ${id} is already ${status}.`, { status }),
  postingRequestExpired: (id: string, expiresAt: Date) =>
    conflict(
      'ledger.posting_request_expired',
      `Posting request ${id} expired at ${expiresAt.toISOString()} undecided; file it anew if it still stands.`,
      { expires_at: expiresAt.toISOString() },
    ),
  selfApproval: (id: string) =>
    forbidden('ledger.self_approval', `Posting request ${id} is yours: another operator must decide it.`),
  /** An all-or-nothing batch in which some item failed; nothing was written. */
  batchRejected: (items: readonly { index: number; code: string; message: string }[]) =>
    unprocessable('ledger.batch_rejected', 'Some transactions of the batch were refused; none was written.', {
      items,
    }),
};
