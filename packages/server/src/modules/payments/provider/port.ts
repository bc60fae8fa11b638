/*
 * The payment provider port: everything Baton asks of the outside world that holds the money.
 * Card numbers never reach Baton; it keeps the provider's tokens and ids.
 *
 * Every call carries a `reference` chosen by Baton (its own id for the operation). A provider
 * must treat a call with a reference it has seen as the same operation, returning the original
 * result without acting twice: this is what makes a retry after a timeout safe (a timeout says
 * nothing about whether the operation happened, so Baton asks again with the same reference, or
 * looks it up with `find`).
 *
 * Results may be final at once (`succeeded`, `failed`) or `pending`, settled later by a callback
 * (`ProviderEvent`). Callbacks can come twice, late, or out of order; Baton applies each
 * operation's final state once, whatever order the callbacks arrive in.
 */

export type OperationKind = 'authorization' | 'capture' | 'refund' | 'payout' | 'chargeback';
export type OperationStatus = 'pending' | 'succeeded' | 'failed';

export interface ProviderOperation {
  /** Baton's reference for the operation. */
  readonly reference: string;
  /** The provider's own id for it. */
  readonly providerId: string;
  readonly kind: OperationKind;
  readonly status: OperationStatus;
  readonly amountMinor: bigint;
  readonly currency: string;
  /** Why it failed, in the provider's words (`card_declined`, `insufficient_funds`, `account_closed`). */
  readonly failureCode: string | null;
  /** For captures and refunds: the reference of the authorization or capture they act on. */
  readonly parentReference: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/**
 * The failure codes by which a provider says a payout's destination cannot be paid (the account
 * is closed, frozen, unknown or not the partner's), as opposed to a failure of the provider or
 * the platform's own balance. An adapter maps its provider's codes onto these.
 */
export const DESTINATION_FAILURE_CODES: readonly string[] = [
  'account_closed',
  'account_frozen',
  'bank_account_restricted',
  'bank_ownership_changed',
  'incorrect_account_holder_name',
  'invalid_account_number',
  'invalid_currency',
  'no_account',
];

/** A callback from the provider: one operation reached a state (possibly one already reported). */
export interface ProviderEvent {
  /** The provider's id for this event; the same event may be delivered more than once. */
  readonly eventId: string;
  readonly operation: ProviderOperation;
}

/** The call did not answer in time. It may or may not have happened at the provider. */
export class ProviderTimeoutError extends Error {
  constructor(readonly reference: string) {
    super(`The payment provider did not answer in time for ${reference}.`);
    this.name = 'ProviderTimeoutError';
  }
}

/** The provider refused the request itself (malformed, unknown parent): retrying will not help. */
export class ProviderRejectedError extends Error {
  constructor(
    readonly reference: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProviderRejectedError';
  }
}

export interface PaymentProvider {
  readonly name: string;
  /** Reserves an amount on the customer's payment method (`paymentMethod` is the provider's token). */
  authorize(input: {
    reference: string;
    paymentMethod: string;
    amountMinor: bigint;
    currency: string;
  }): Promise<ProviderOperation>;
  /** Takes (part of) an authorized amount. */
  capture(input: {
    reference: string;
    authorizationReference: string;
    amountMinor: bigint;
  }): Promise<ProviderOperation>;
  /** Gives (part of) a capture back to the customer. */
  refund(input: {
    reference: string;
    captureReference: string;
    amountMinor: bigint;
  }): Promise<ProviderOperation>;
  /** Sends money to a partner's payout destination (the provider's token for its bank account). */
  payout(input: {
    reference: string;
    destination: string;
    amountMinor: bigint;
    currency: string;
  }): Promise<ProviderOperation>;
  /** The operation with this reference, or null if the provider never received it. */
  find(reference: string): Promise<ProviderOperation | null>;
  /** Every operation updated at or after `since`, oldest first, for reconciliation. */
  list(input: { since: Date; after?: string; limit: number }): Promise<ProviderOperation[]>;
  /** Where callbacks go: Baton registers its handler once at start. */
  onEvent(handler: (event: ProviderEvent) => Promise<void>): void;
}
