import type { Logger } from 'pino';
import { type Actor, systemActor } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Clock } from '../../kernel/clock.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { newId, parseId } from '../../kernel/ids.js';
import { type Currency, formatAmount, parseCurrency } from '../../kernel/money.js';
import type { Page } from '../../kernel/pagination.js';
import { type AccountKey, type LedgerService, PLATFORM_OWNER } from '../ledger/index.js';
import {
  advances,
  type ChargebackLiability,
  type ChargebackStatus,
  captureReferenceOf,
  collectShare,
  OPEN_PAYMENT_STATUSES,
} from './domain/payment.js';
import {
  comparePayout,
  type Discrepancy,
  expectedAtProvider,
  type PayoutRecord,
} from './domain/reconciliation.js';
import { paymentsErrors } from './errors.js';
import {
  type OperationKind,
  type PaymentProvider,
  type ProviderEvent,
  type ProviderOperation,
  ProviderRejectedError,
  ProviderTimeoutError,
} from './provider/port.js';
import {
  advanceOperation,
  type Chargeback,
  capturedAndChargedBack,
  changePayment,
  chargebacksOf,
  decideChargebackRow,
  findChargeback,
  findChargebackByReference,
  findOperation,
  findPayment,
  findPaymentByReference,
  findRefund,
  findRefundByReference,
  findReport,
  insertChargeback,
  insertOperation,
  insertPayment,
  insertRefund,
  insertReport,
  listChargebacks,
  listPayments,
  listReports,
  markOperationUnknown,
  markRefundRetried,
  operationsOf,
  operationsSince,
  owedRefunds,
  type Payment,
  type PaymentFilter,
  type PaymentOperation,
  queueOperationInsert,
  type ReconciliationReport,
  type Refund,
  recordProviderEvent,
  refundsOf,
  retryDelayMs,
  retryTurn,
  unsettledPayments,
  unsettledRefunds,
  updateOperation,
  updatePayment,
  updateRefund,
} from './store/payments-store.js';

/** Calls of one operation before a timeout leaves it `unknown` for the retry job. */
export const PROVIDER_ATTEMPTS_MAX = 2;
/** Payments and refunds one run of the retry job drives on. */
export const RETRY_BATCH_MAX = 100;
/** The longest a payment or refund still open waits between two turns of the retry job. */
export const RETRY_WAIT_MAX_MS = 60 * 60 * 1000;
/** Operations reconciliation reads from the provider per call. */
export const RECONCILE_PAGE_MAX = 200;
/**
 * Tries of a callback to lock an operation another transaction holds, before it waits for the
 * lock. Between tries it holds no connection: the holder is usually applying the same news.
 */
export const CALLBACK_LOCK_ATTEMPTS_MAX = 6;
const CALLBACK_RETRY_BASE_DELAY_MS = 4;
export const ORDER_REF_LENGTH_MAX = 100;
export const REFERENCE_LENGTH_MAX = 100;

export interface ChargeInput {
  /** The order the money is for; its escrow account is owned by this reference. */
  readonly orderRef: string;
  readonly customerId: string | null;
  /** The provider's token for the customer's payment method. */
  readonly paymentMethod: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  /**
   * Baton's reference for the charge at the provider. Give one derived from what is being paid
   * (the order), so that charging again after a crash or timeout resumes the same charge instead
   * of taking the money twice. Defaults to the new payment's id.
   */
  readonly reference?: string;
}

export interface RefundInput {
  readonly paymentId: string;
  readonly amountMinor: bigint;
  /** Chosen by the caller (the refund workflow), deterministic from what is refunded. */
  readonly reference: string;
}

export interface ChargebackDecision {
  readonly liability: ChargebackLiability;
  readonly partnerId?: string | undefined;
  /** For a split: the partner's part, less than the chargeback. */
  readonly partnerShareMinor?: bigint | undefined;
}

export interface PaymentDetail {
  readonly payment: Payment;
  readonly operations: readonly PaymentOperation[];
  readonly refunds: readonly Refund[];
  readonly chargebacks: readonly Chargeback[];
  /** Refunds the provider failed and nobody has retried yet: owed to the customer. */
  readonly refundsOwedMinor: bigint;
}

/**
 * Baton's records of payouts, which the payouts module keeps: reconciliation compares the
 * provider's payouts with them and the ledger postings they made.
 */
export interface PayoutRecords {
  /** The payout with this reference (its id), or null when Baton has none. */
  find(db: Executor, reference: string): Promise<PayoutRecord | null>;
  /** Payouts changed at or after `since`, by reference, after the reference `after`. */
  changedSince(db: Executor, since: Date, after: string | null, limit: number): Promise<PayoutRecord[]>;
}

/** Something else that cares about provider events of one kind: payouts listen for theirs. */
export type OperationListener = (db: Executor, event: ProviderEvent) => Promise<void>;

/**
 * Something that waits for payments to settle (orders do): called in the transaction that
 * records the payment `captured`, `declined` or `failed`, so what it writes commits with it.
 */
export type SettlementListener = (ctx: Context, payment: Payment) => Promise<void>;

/**
 * Payments through the provider port. Provider calls are I/O that may hang or time out, so they
 * never run inside a database transaction: each use case that calls the provider takes the
 * database itself (`db`, not a context), records its intent in one transaction, calls the
 * provider, and records the outcome in another. A call that times out is asked about again under
 * the same reference; a new reference for the same money is never made.
 */
export interface PaymentsService {
  /** The provider this service calls; tests reach the simulated one through it. */
  readonly provider: PaymentProvider;
  /**
   * Charges a customer: records the payment (`pending`), authorizes and captures at the provider,
   * and on capture posts the money into the order's escrow (debit `provider_clearing`, credit
   * `customer_escrow`, key `payment:<id>:capture`). Returns the payment as it stands: `captured`,
   * `declined` (with the provider's code; nothing posted), `failed`, or `authorized`/`unknown`
   * when the provider has not settled yet (a callback or the retry job finishes it).
   * Charging again with the same `reference` and content resumes and returns the same payment.
   *
   * @throws DomainError `payments.reference_reused`, `payments.amount_invalid`,
   *   `money.unknown_currency`, `payments.provider_rejected`
   */
  charge(db: Executor, actor: Actor, input: ChargeInput): Promise<Payment>;
  /**
   * Records a payment's intent only, in the caller's transaction, for callers that must not wait
   * for the provider (an HTTP request): `resume` drives it on afterwards.
   *
   * @throws DomainError `payments.reference_reused`, `payments.amount_invalid`, `money.unknown_currency`
   */
  recordIntent(ctx: Context, input: ChargeInput): Promise<Payment>;
  /** Drives a recorded payment on at the provider (same references); a final payment is returned as is. */
  resume(db: Executor, actor: Actor, paymentId: string): Promise<Payment>;
  /**
   * Refunds (part of) a captured payment. The caller has already moved the money into
   * `refunds_in_transit`; when the provider confirms (now or by callback) this posts debit
   * `refunds_in_transit`, credit `provider_clearing` (key `refund:<reference>:settled`). The same
   * reference and content returns the same refund.
   *
   * @throws DomainError `payments.payment_not_found`, `payments.payment_not_captured`,
   *   `payments.refund_exceeds_capture`, `payments.reference_reused`, `payments.amount_invalid`,
   *   `payments.provider_rejected`
   */
  refund(db: Executor, actor: Actor, input: RefundInput): Promise<Refund>;
  /**
   * Records, in the caller's transaction, the retry of a refund the provider failed: a new
   * refund (`pending`) with a new reference, since the failed one is final at the provider. Its
   * money goes back from what the order's customer is owed to refunds in transit (key
   * `refund:<new reference>:sent`); `resumeRefund` then sends it, and it settles or fails as any
   * refund. A failed refund is retried once; a retry that fails is retried in turn. Audited.
   *
   * @throws DomainError `payments.refund_not_found`, `payments.refund_not_owed`,
   *   `payments.refund_exceeds_capture` (a chargeback took the rest of the capture meanwhile)
   */
  retryRefund(ctx: Context, input: { paymentId: string; refundId: string }): Promise<Refund>;
  /**
   * Drives a recorded refund on at the provider (same reference); a final one is returned as is.
   *
   * @throws DomainError `payments.refund_not_found`
   */
  resumeRefund(db: Executor, refundId: string): Promise<Refund>;
  /**
   * What an order's payments in a currency captured and what chargebacks took back of them, for
   * refunds that must not give back more than the customer has left paid.
   */
  capturedAndChargedBack(
    ctx: Context,
    input: { orderRef: string; currency: string },
  ): Promise<{ capturedMinor: bigint; chargedBackMinor: bigint }>;
  /**
   * Applies a provider callback once per event id and in any order: a stale state after a final
   * one changes nothing. News already applied (usually by the call's own answer) is answered
   * from one read, without a lock; news for an operation another transaction is changing is
   * looked at again once that has ended, rather than waited for on the row's lock. Payout events
   * go to the listeners registered with `onOperation`.
   */
  handleEvent(db: Executor, event: ProviderEvent): Promise<void>;
  /** Registers a listener for provider events of operations this module does not own (payouts). */
  onOperation(kind: 'payout', listener: OperationListener): void;
  /** Registers a listener for payments reaching `captured`, `declined` or `failed`. */
  onSettled(listener: SettlementListener): void;
  /** Drives on payments and refunds left unsettled since `before` (crashes, timeouts, lost callbacks). */
  /**
   * Drives on payments and refunds open and left alone since `before`, longest waiting first,
   * `batch` of each (`RETRY_BATCH_MAX`). Each turn puts the payment or refund behind the others,
   * and one that stays open waits longer each time, up to an hour: those the provider keeps
   * pending for days do not hold up the rest.
   */
  retryUnsettled(
    db: Executor,
    before: Date,
    options?: { batch?: number },
  ): Promise<{ payments: number; refunds: number }>;
  getPayment(ctx: Context, id: string): Promise<PaymentDetail>;
  listPayments(ctx: Context, filter: PaymentFilter): Promise<Page<Payment>>;
  getChargeback(ctx: Context, id: string): Promise<Chargeback>;
  listChargebacks(
    ctx: Context,
    filter: { status?: ChargebackStatus | undefined; after?: string | undefined; limit: number },
  ): Promise<Page<Chargeback>>;
  /**
   * Decides who bears a chargeback the platform has provisionally borne. A partner's share comes
   * from its payable as far as that covers (locked), the rest becomes its receivable; both are
   * credited back to `chargeback_losses` (key `chargeback:<id>:liability`). Audited.
   *
   * @throws DomainError `payments.chargeback_not_found`, `payments.chargeback_already_decided`,
   *   `payments.decision_invalid`
   */
  decideChargeback(ctx: Context, id: string, decision: ChargebackDecision): Promise<Chargeback>;
  /**
   * Compares every provider operation updated since `since` with Baton's records and the ledger,
   * and Baton's records with the provider, and stores a report of every discrepancy.
   */
  reconcile(db: Executor, input: { since: Date }): Promise<ReconciliationReport>;
  /**
   * Reconciles on demand, in the caller's transaction: the report is stored with it, and the run
   * is audited. It only reads from the provider (lists and lookups), which moves no money, so it
   * may wait on the provider inside the transaction. Same comparison as `reconcile`.
   */
  runReconciliation(ctx: Context, input: { since: Date }): Promise<ReconciliationReport>;
  getReport(ctx: Context, id: string): Promise<ReconciliationReport>;
  listReports(
    ctx: Context,
    page: { after?: string | undefined; limit: number },
  ): Promise<Page<ReconciliationReport>>;
}

export interface PaymentsDeps {
  readonly provider: PaymentProvider;
  readonly ledger: LedgerService;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Baton's payout records (the payouts module's) to check payouts against; without them, none are. */
  readonly payoutRecords?: PayoutRecords;
}

type CallResult =
  | { readonly outcome: 'answered'; readonly operation: ProviderOperation }
  | { readonly outcome: 'unknown' }
  | { readonly outcome: 'rejected'; readonly error: ProviderRejectedError };

const PROVIDER_ACTOR = systemActor('payment-provider');

/** What applying a callback came to: `busy` when the operation was locked and the callback did not wait. */
type CallbackOutcome = 'applied' | 'stale' | 'busy';

const inTransit = (currency: string): AccountKey => ({
  purpose: 'refunds_in_transit',
  ownerId: PLATFORM_OWNER,
  currency,
});
/** What an order's customer is owed after a refund the provider failed. */
const owedTo = (orderRef: string, currency: string): AccountKey => ({
  purpose: 'refunds_owed',
  ownerId: orderRef,
  currency,
});
const refundFailedKey = (reference: string) => `refund:${reference}:failed`;

const isOpen = (status: Payment['status']) => (OPEN_PAYMENT_STATUSES as readonly string[]).includes(status);
const ignore = () => {};
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createPaymentsService(deps: PaymentsDeps): PaymentsService {
  const { provider, ledger, clock } = deps;
  const listeners = new Map<string, OperationListener[]>();
  const settlementListeners: SettlementListener[] = [];
  async function settled(ctx: Context, payment: Payment): Promise<void> {
    for (const listener of settlementListeners) await listener(ctx, payment);
  }

  /*
   * Transactions of this process that apply a provider's news about an operation, by reference,
   * until they end. The provider's callback for an answer usually arrives while the caller is
   * still applying that answer: it waits for that here, holding no connection, and then finds
   * its news applied with one read instead of queueing on the operation's row lock. This only
   * spares waiting; the database alone decides what is applied.
   */
  const applying = new Map<string, Promise<void>>();
  function whileApplying<T>(reference: string, work: Promise<T>): Promise<T> {
    const done = work.then(ignore, ignore);
    applying.set(reference, done);
    void done.then(() => {
      if (applying.get(reference) === done) applying.delete(reference);
    });
    return work;
  }

  const contextOf = (db: Executor, actor: Actor): Context => ({
    db,
    actor,
    now: clock.now(),
    requestId: null,
    ip: null,
  });
  const inTransaction = <T>(db: Executor, actor: Actor, work: (ctx: Context) => Promise<T>) =>
    runInTransaction(db, (tx) => work(contextOf(tx, actor)));

  /**
   * Calls the provider, and after a timeout asks whether the operation happened (`find`) before
   * asking again under the same reference, which the provider treats as the same operation.
   *
   * A refusal is looked up too: some providers refuse a repeat of a request they already hold (a
   * retry after a lost answer) instead of answering it, and what they hold is then the answer.
   * Only when the provider holds nothing of this kind and amount under the reference did it
   * refuse the request itself; when it cannot say, the outcome is unknown, for the retry job.
   */
  async function callProvider(
    reference: string,
    expected: { readonly kind: OperationKind; readonly amountMinor: bigint },
    call: () => Promise<ProviderOperation>,
  ): Promise<CallResult> {
    for (let attempt = 1; attempt <= PROVIDER_ATTEMPTS_MAX; attempt++) {
      try {
        return { outcome: 'answered', operation: await call() };
      } catch (error) {
        if (error instanceof ProviderRejectedError) {
          let held: ProviderOperation | null;
          try {
            held = await provider.find(reference);
          } catch (findError) {
            if (!(findError instanceof ProviderTimeoutError)) throw findError;
            return { outcome: 'unknown' };
          }
          if (held && held.kind === expected.kind && held.amountMinor === expected.amountMinor)
            return { outcome: 'answered', operation: held };
          return { outcome: 'rejected', error };
        }
        if (!(error instanceof ProviderTimeoutError)) throw error;
        deps.logger?.warn({ reference, attempt }, 'payment provider timed out');
        try {
          const found = await provider.find(reference);
          if (found) return { outcome: 'answered', operation: found };
        } catch (findError) {
          if (!(findError instanceof ProviderTimeoutError)) throw findError;
        }
      }
    }
    return { outcome: 'unknown' };
  }

  function validateCharge(input: ChargeInput): Currency {
    const currency = parseCurrency(input.currency);
    if (input.amountMinor <= 0n) throw paymentsErrors.amountInvalid('The amount must be positive.');
    if (
      input.orderRef.length === 0 ||
      input.orderRef.length > ORDER_REF_LENGTH_MAX ||
      input.orderRef === PLATFORM_OWNER
    )
      throw paymentsErrors.decisionInvalid(
        '/order_ref',
        `An order reference is 1 to ${ORDER_REF_LENGTH_MAX} characters.`,
      );
    return currency;
  }

  async function recordIntent(ctx: Context, input: ChargeInput): Promise<Payment> {
    requireTransaction(ctx.db);
    const currency = validateCharge(input);
    const id = newId('pay');
    const reference = input.reference ?? id;
    const sameRequest = (p: Payment) =>
      p.orderRef === input.orderRef &&
      p.customerId === input.customerId &&
      p.paymentMethod === input.paymentMethod &&
      p.amountMinor === input.amountMinor &&
      p.currency === currency;
    const inserted = await insertPayment(ctx.db, {
      id,
      reference,
      order_ref: input.orderRef,
      customer_id: input.customerId,
      payment_method: input.paymentMethod,
      amount_minor: input.amountMinor,
      currency,
      status: 'pending',
      failure_code: null,
      captured_minor: 0n,
      refunded_minor: 0n,
      attempts: 0,
      created_at: ctx.now,
      updated_at: ctx.now,
    });
    if (!inserted) {
      const existing = await findPaymentByReference(ctx.db, reference);
      if (!existing || !sameRequest(existing)) throw paymentsErrors.referenceReused(reference);
      return existing;
    }
    // Nothing is read back from it: it travels with the transaction's next statement.
    await queueOperationInsert(ctx.db, {
      id: newId('pop'),
      payment_id: id,
      reference,
      kind: 'authorization',
      status: 'requested',
      amount_minor: input.amountMinor,
      currency,
      provider_id: null,
      parent_reference: null,
      failure_code: null,
      created_at: ctx.now,
      updated_at: ctx.now,
    });
    await appendEvent(ctx, {
      type: 'payment.created',
      subjectId: id,
      data: { id, order_ref: input.orderRef, amount: formatAmount(input.amountMinor, currency), currency },
      audience: input.customerId ? [input.customerId] : [],
    });
    return inserted;
  }

  async function loadPayment(db: Executor, id: string): Promise<Payment> {
    const payment = await findPayment(db, id);
    if (!payment) throw paymentsErrors.paymentNotFound(id);
    return payment;
  }

  /** Marks an operation and its payment as in doubt after a call that never answered; returns the payment. */
  function markUnknown(db: Executor, payment: Payment, reference: string): Promise<Payment> {
    return inTransaction(db, PROVIDER_ACTOR, async (ctx) => {
      await markOperationUnknown(ctx.db, reference, ctx.now);
      const marked = await changePayment(
        ctx.db,
        payment.id,
        { status: 'unknown', addAttempt: true, updated_at: ctx.now },
        { onlyIf: ['pending', 'authorized'] },
      );
      return marked ?? loadPayment(ctx.db, payment.id);
    });
  }

  /**
   * The provider refused a request outright: the payment fails with its code. A payment that
   * meanwhile reached its end (a callback settled it) is left as it is, and returned.
   */
  async function markRejected(
    db: Executor,
    payment: Payment,
    error: ProviderRejectedError,
  ): Promise<Payment> {
    const failed = await inTransaction(db, PROVIDER_ACTOR, async (ctx) => {
      await updateOperation(
        ctx.db,
        error.reference,
        { status: 'failed', failure_code: error.code, updated_at: ctx.now },
        { onlyIf: ['requested', 'unknown', 'pending'] },
      );
      const failed = await changePayment(
        ctx.db,
        payment.id,
        { status: 'failed', failure_code: error.code, updated_at: ctx.now },
        { onlyIf: OPEN_PAYMENT_STATUSES },
      );
      if (!failed) return null;
      await appendEvent(ctx, {
        type: 'payment.failed',
        subjectId: payment.id,
        data: { id: payment.id, failure_code: error.code },
        audience: payment.customerId ? [payment.customerId] : [],
      });
      await settled(ctx, failed);
      return failed;
    });
    if (!failed) return loadPayment(db, payment.id);
    throw paymentsErrors.providerRejected(error.code, error.message);
  }

  /**
   * Authorizes, then captures, each call followed by one transaction that applies its answer:
   * the authorization's also records the capture about to be requested, so that a callback for
   * it always finds its operation. Returns the payment as the last transaction left it.
   */
  async function resume(db: Executor, _actor: Actor, paymentId: string): Promise<Payment> {
    const payment = await loadPayment(db, paymentId);
    if (!isOpen(payment.status)) return payment;

    const authorization = await callProvider(
      payment.reference,
      { kind: 'authorization', amountMinor: payment.amountMinor },
      () =>
        provider.authorize({
          reference: payment.reference,
          paymentMethod: payment.paymentMethod,
          amountMinor: payment.amountMinor,
          currency: payment.currency,
        }),
    );
    if (authorization.outcome === 'unknown') return markUnknown(db, payment, payment.reference);
    if (authorization.outcome === 'rejected') return markRejected(db, payment, authorization.error);
    const captureReference = captureReferenceOf(payment.reference);
    const authorized = await whileApplying(
      payment.reference,
      inTransaction(db, PROVIDER_ACTOR, async (ctx) => {
        const current =
          (await applyAnswer(ctx, authorization.operation)) ?? (await loadPayment(ctx.db, paymentId));
        if (current.status === 'authorized' || current.status === 'unknown')
          await queueOperationInsert(ctx.db, {
            id: newId('pop'),
            payment_id: current.id,
            reference: captureReference,
            kind: 'capture',
            status: 'requested',
            amount_minor: current.amountMinor,
            currency: current.currency,
            provider_id: null,
            parent_reference: current.reference,
            failure_code: null,
            created_at: ctx.now,
            updated_at: ctx.now,
          });
        return current;
      }),
    );
    if (authorized.status !== 'authorized' && authorized.status !== 'unknown') return authorized;

    const capture = await callProvider(
      captureReference,
      { kind: 'capture', amountMinor: authorized.amountMinor },
      () =>
        provider.capture({
          reference: captureReference,
          authorizationReference: authorized.reference,
          amountMinor: authorized.amountMinor,
        }),
    );
    if (capture.outcome === 'unknown') return markUnknown(db, authorized, captureReference);
    if (capture.outcome === 'rejected') return markRejected(db, authorized, capture.error);
    return whileApplying(
      captureReference,
      inTransaction(
        db,
        PROVIDER_ACTOR,
        async (ctx) => (await applyAnswer(ctx, capture.operation)) ?? loadPayment(ctx.db, paymentId),
      ),
    );
  }

  /**
   * Applies the provider's answer to one of Baton's calls, in the caller's transaction, if it is
   * news: the operation's row is changed and locked by one conditional update, so a callback with
   * the same news, racing, applies it exactly once with this. Returns the payment when its effects
   * changed it, null when they did not touch it (a stale answer, a refund, a chargeback).
   */
  async function applyAnswer(ctx: Context, op: ProviderOperation): Promise<Payment | null> {
    const row = (await advanceOperation(ctx.db, op, ctx.now)) ?? (await adoptOperation(ctx, op));
    return row ? applyEffects(ctx, row, op) : null;
  }

  /**
   * Records an operation Baton did not start (a chargeback), or whose request row was lost, under
   * the payment of its parent, and advances it. Null when the operation is already known (the
   * news was stale) or belongs to no payment.
   */
  async function adoptOperation(ctx: Context, op: ProviderOperation): Promise<PaymentOperation | null> {
    if (op.kind === 'authorization' || op.kind === 'payout' || op.parentReference === null) return null;
    if (await findOperation(ctx.db, op.reference)) return null;
    const parent = await findOperation(ctx.db, op.parentReference);
    if (!parent) return null;
    await insertOperation(ctx.db, {
      id: newId('pop'),
      payment_id: parent.paymentId,
      reference: op.reference,
      kind: op.kind,
      status: 'requested',
      amount_minor: op.amountMinor,
      currency: op.currency,
      provider_id: op.providerId,
      parent_reference: op.parentReference,
      failure_code: null,
      created_at: ctx.now,
      updated_at: ctx.now,
    });
    return advanceOperation(ctx.db, op, ctx.now);
  }

  /**
   * Applies a callback once per event id. With `skip_locked`, a callback whose operation another
   * transaction holds does not wait for it (`busy`): the caller tries again later.
   */
  async function applyCallback(
    ctx: Context,
    event: ProviderEvent,
    lock: true | 'skip_locked',
  ): Promise<CallbackOutcome> {
    const op = event.operation;
    if (lock === 'skip_locked') {
      const row = await findOperation(ctx.db, op.reference, { lock });
      if (!row) return 'busy';
      if (!advances(row.status, op.status)) return 'stale';
    }
    const recorded = await recordProviderEvent(ctx.db, {
      eventId: event.eventId,
      reference: op.reference,
      status: op.status,
      receivedAt: ctx.now,
    });
    if (!recorded) return 'stale';
    const row = (await advanceOperation(ctx.db, op, ctx.now)) ?? (await adoptOperation(ctx, op));
    if (!row) return 'stale';
    await applyEffects(ctx, row, op);
    return 'applied';
  }

  /** What an operation's new state does to its payment, refund or chargeback, and to the ledger. */
  async function applyEffects(
    ctx: Context,
    row: PaymentOperation,
    op: ProviderOperation,
  ): Promise<Payment | null> {
    const audienceOf = (payment: Payment) => (payment.customerId ? [payment.customerId] : []);
    /** Announces a payment that ended unpaid (`declined` or `failed`) and tells the listeners. */
    const endedUnpaid = async (payment: Payment, type: string, failureCode: string | null) => {
      await appendEvent(ctx, {
        type,
        subjectId: payment.id,
        data: { id: payment.id, order_ref: payment.orderRef, failure_code: failureCode },
        audience: audienceOf(payment),
      });
      await settled(ctx, payment);
      return payment;
    };
    switch (row.kind) {
      case 'authorization': {
        if (op.status === 'succeeded')
          return changePayment(
            ctx.db,
            row.paymentId,
            { status: 'authorized', updated_at: ctx.now },
            { onlyIf: OPEN_PAYMENT_STATUSES },
          );
        if (op.status !== 'failed') return null;
        const declined = await changePayment(
          ctx.db,
          row.paymentId,
          { status: 'declined', failure_code: op.failureCode, updated_at: ctx.now },
          { onlyIf: OPEN_PAYMENT_STATUSES },
        );
        if (!declined) return null;
        return endedUnpaid(declined, 'payment.declined', op.failureCode);
      }
      case 'capture': {
        if (op.status === 'pending')
          return changePayment(
            ctx.db,
            row.paymentId,
            { status: 'authorized', updated_at: ctx.now },
            { onlyIf: OPEN_PAYMENT_STATUSES },
          );
        if (op.status === 'succeeded') {
          const captured = (await changePayment(ctx.db, row.paymentId, {
            status: 'captured',
            failure_code: null,
            addCapturedMinor: row.amountMinor,
            updated_at: ctx.now,
          })) as Payment;
          await ledger.post(ctx, {
            idempotencyKey: `payment:${captured.id}:capture`,
            description: `Payment ${captured.id} captured for order ${captured.orderRef}`,
            cause: { kind: 'payment', id: captured.id },
            entries: [
              {
                account: { purpose: 'provider_clearing', ownerId: PLATFORM_OWNER, currency: row.currency },
                direction: 'debit',
                amountMinor: row.amountMinor,
              },
              {
                account: { purpose: 'customer_escrow', ownerId: captured.orderRef, currency: row.currency },
                direction: 'credit',
                amountMinor: row.amountMinor,
              },
            ],
            metadata: { order_ref: captured.orderRef, reference: row.reference },
          });
          await appendEvent(ctx, {
            type: 'payment.captured',
            subjectId: captured.id,
            data: {
              id: captured.id,
              order_ref: captured.orderRef,
              amount: formatAmount(row.amountMinor, row.currency as Currency),
              currency: row.currency,
            },
            audience: audienceOf(captured),
          });
          await settled(ctx, captured);
          return captured;
        }
        const failed = (await changePayment(ctx.db, row.paymentId, {
          status: 'failed',
          failure_code: op.failureCode,
          updated_at: ctx.now,
        })) as Payment;
        return endedUnpaid(failed, 'payment.failed', op.failureCode);
      }
      case 'refund': {
        const refund = await findRefundByReference(ctx.db, row.reference);
        if (!refund) return null;
        const payment = (await findPayment(ctx.db, row.paymentId, { lock: true })) as Payment;
        const audience = audienceOf(payment);
        if (op.status === 'pending') {
          await updateRefund(ctx.db, row.reference, { status: 'pending', updated_at: ctx.now });
        } else if (op.status === 'succeeded') {
          await ledger.post(ctx, {
            idempotencyKey: `refund:${refund.reference}:settled`,
            description: `Refund ${refund.id} of payment ${payment.id} settled`,
            cause: { kind: 'refund', id: refund.id },
            entries: [
              { account: inTransit(refund.currency), direction: 'debit', amountMinor: refund.amountMinor },
              {
                account: { purpose: 'provider_clearing', ownerId: PLATFORM_OWNER, currency: refund.currency },
                direction: 'credit',
                amountMinor: refund.amountMinor,
              },
            ],
            metadata: { payment_id: payment.id, reference: refund.reference },
          });
          await updateRefund(ctx.db, row.reference, { status: 'succeeded', updated_at: ctx.now });
          await appendEvent(ctx, {
            type: 'refund.succeeded',
            subjectId: refund.id,
            data: { id: refund.id, payment_id: payment.id, reference: refund.reference },
            audience,
          });
        } else {
          // The money never left the provider, and the customer is still owed it: it moves from
          // refunds in transit to what the order's customer is owed, until a retry is paid. The
          // capture's share set aside for this refund is free again, for that retry.
          await updateRefund(ctx.db, row.reference, {
            status: 'failed',
            failure_code: op.failureCode,
            updated_at: ctx.now,
          });
          await updatePayment(ctx.db, payment.id, {
            refunded_minor: payment.refundedMinor - refund.amountMinor,
            updated_at: ctx.now,
          });
          await ledger.post(ctx, {
            idempotencyKey: refundFailedKey(refund.reference),
            description: `Refund ${refund.id} of payment ${payment.id} failed at the provider: owed to the customer`,
            cause: { kind: 'refund', id: refund.id },
            entries: [
              {
                account: inTransit(refund.currency),
                direction: 'debit',
                amountMinor: refund.amountMinor,
              },
              {
                account: owedTo(payment.orderRef, refund.currency),
                direction: 'credit',
                amountMinor: refund.amountMinor,
              },
            ],
            metadata: {
              payment_id: payment.id,
              reference: refund.reference,
              failure_code: op.failureCode ?? '',
            },
          });
          await appendEvent(ctx, {
            type: 'refund.failed',
            subjectId: refund.id,
            data: {
              id: refund.id,
              payment_id: payment.id,
              reference: refund.reference,
              failure_code: op.failureCode,
            },
            audience,
          });
        }
        return null;
      }
      case 'chargeback': {
        if (op.status !== 'succeeded' || (await findChargebackByReference(ctx.db, row.reference)))
          return null;
        const payment = (await findPayment(ctx.db, row.paymentId, { lock: true })) as Payment;
        const id = newId('cbk');
        await insertChargeback(ctx.db, {
          id,
          payment_id: payment.id,
          reference: row.reference,
          order_ref: payment.orderRef,
          amount_minor: row.amountMinor,
          currency: row.currency,
          status: 'open',
          liability: null,
          partner_id: null,
          partner_share_minor: null,
          decided_by: null,
          decided_at: null,
          created_at: ctx.now,
        });
        // The provider has taken the money: the platform bears it until an operator decides.
        await ledger.post(ctx, {
          idempotencyKey: `chargeback:${id}:taken`,
          description: `Chargeback ${id} on payment ${payment.id}`,
          cause: { kind: 'chargeback', id },
          entries: [
            {
              account: { purpose: 'chargeback_losses', ownerId: PLATFORM_OWNER, currency: row.currency },
              direction: 'debit',
              amountMinor: row.amountMinor,
            },
            {
              account: { purpose: 'provider_clearing', ownerId: PLATFORM_OWNER, currency: row.currency },
              direction: 'credit',
              amountMinor: row.amountMinor,
            },
          ],
          metadata: { payment_id: payment.id, reference: row.reference },
        });
        await appendEvent(ctx, {
          type: 'chargeback.created',
          subjectId: id,
          data: {
            id,
            payment_id: payment.id,
            order_ref: payment.orderRef,
            amount: formatAmount(row.amountMinor, row.currency as Currency),
            currency: row.currency,
          },
          audience: [],
        });
        return null;
      }
      case 'payout':
        return null;
    }
  }

  async function refund(db: Executor, actor: Actor, input: RefundInput): Promise<Refund> {
    if (input.amountMinor <= 0n) throw paymentsErrors.amountInvalid('The amount must be positive.');
    if (input.reference.length === 0 || input.reference.length > REFERENCE_LENGTH_MAX)
      throw paymentsErrors.decisionInvalid(
        '/reference',
        `A reference is 1 to ${REFERENCE_LENGTH_MAX} characters.`,
      );
    const recorded = await inTransaction(db, actor, async (ctx) => {
      const existing = await findRefundByReference(ctx.db, input.reference);
      if (existing) {
        if (existing.paymentId !== input.paymentId || existing.amountMinor !== input.amountMinor)
          throw paymentsErrors.referenceReused(input.reference);
        return existing;
      }
      const payment = await findPayment(ctx.db, input.paymentId, { lock: true });
      if (!payment) throw paymentsErrors.paymentNotFound(input.paymentId);
      if (payment.status !== 'captured') throw paymentsErrors.paymentNotCaptured(payment.id, payment.status);
      const id = newId('rfd');
      await recordRefund(ctx, payment, {
        id,
        reference: input.reference,
        amountMinor: input.amountMinor,
        retryOf: null,
      });
      return (await findRefundByReference(ctx.db, input.reference)) as Refund;
    });
    return driveRefund(db, recorded);
  }

  /**
   * Records a refund of a captured payment, locked by the caller, for the provider to be asked:
   * the refund (`pending`), its operation, the capture's share set aside for it, and its event.
   * Refused when it would refund more than the capture has left after refunds and chargebacks.
   *
   * @throws DomainError `payments.refund_exceeds_capture`
   */
  async function recordRefund(
    ctx: Context,
    payment: Payment,
    refund: { id: string; reference: string; amountMinor: bigint; retryOf: string | null },
  ): Promise<void> {
    const chargedBack = (await chargebacksOf(ctx.db, [payment.id])).reduce(
      (sum, c) => sum + c.amountMinor,
      0n,
    );
    const refundable = payment.capturedMinor - payment.refundedMinor - chargedBack;
    if (refund.amountMinor > refundable)
      throw paymentsErrors.refundExceedsCapture(refund.amountMinor, refundable);
    await insertRefund(ctx.db, {
      id: refund.id,
      payment_id: payment.id,
      reference: refund.reference,
      amount_minor: refund.amountMinor,
      currency: payment.currency,
      status: 'pending',
      failure_code: null,
      retry_of: refund.retryOf,
      retried_by: null,
      created_at: ctx.now,
      updated_at: ctx.now,
    });
    await insertOperation(ctx.db, {
      id: newId('pop'),
      payment_id: payment.id,
      reference: refund.reference,
      kind: 'refund',
      status: 'requested',
      amount_minor: refund.amountMinor,
      currency: payment.currency,
      provider_id: null,
      parent_reference: captureReferenceOf(payment.reference),
      failure_code: null,
      created_at: ctx.now,
      updated_at: ctx.now,
    });
    await updatePayment(ctx.db, payment.id, {
      refunded_minor: payment.refundedMinor + refund.amountMinor,
      updated_at: ctx.now,
    });
    await appendEvent(ctx, {
      type: 'refund.created',
      subjectId: refund.id,
      data: {
        id: refund.id,
        payment_id: payment.id,
        reference: refund.reference,
        amount_minor: refund.amountMinor.toString(),
        ...(refund.retryOf !== null ? { retry_of: refund.retryOf } : {}),
      },
      audience: payment.customerId ? [payment.customerId] : [],
    });
  }

  async function retryRefund(ctx: Context, input: { paymentId: string; refundId: string }): Promise<Refund> {
    requireTransaction(ctx.db);
    const failed = parseId('rfd', input.refundId) ? await findRefund(ctx.db, input.refundId) : null;
    if (!failed || failed.paymentId !== input.paymentId) throw paymentsErrors.refundNotFound(input.refundId);
    const id = newId('rfd');
    // The payment first, as `refund` locks it: one lock order for both.
    const payment = (await findPayment(ctx.db, failed.paymentId, { lock: true })) as Payment;
    if (!(await markRefundRetried(ctx.db, failed.id, id)))
      throw paymentsErrors.refundNotOwed(failed.id, failed.status, failed.retriedBy);
    await recordRefund(ctx, payment, {
      id,
      reference: id,
      amountMinor: failed.amountMinor,
      retryOf: failed.id,
    });
    await ledger.post(ctx, {
      idempotencyKey: `refund:${id}:sent`,
      description: `Refund ${id} retries failed refund ${failed.id} of payment ${payment.id}`,
      cause: { kind: 'refund', id },
      entries: [
        {
          account: owedTo(payment.orderRef, failed.currency),
          direction: 'debit',
          amountMinor: failed.amountMinor,
        },
        { account: inTransit(failed.currency), direction: 'credit', amountMinor: failed.amountMinor },
      ],
      metadata: { payment_id: payment.id, reference: id, retry_of: failed.id },
    });
    await recordAudit(ctx, {
      action: 'payments.refund.retry',
      targetId: failed.id,
      outcome: 'succeeded',
      details: { retried_by: id, amount_minor: failed.amountMinor.toString() },
    });
    return (await findRefund(ctx.db, id)) as Refund;
  }

  async function resumeRefund(db: Executor, refundId: string): Promise<Refund> {
    const recorded = await findRefund(db, refundId);
    if (!recorded) throw paymentsErrors.refundNotFound(refundId);
    return driveRefund(db, recorded);
  }

  async function driveRefund(db: Executor, recorded: Refund): Promise<Refund> {
    if (recorded.status === 'succeeded' || recorded.status === 'failed') return recorded;
    const operation = await findOperation(db, recorded.reference);
    const result = await callProvider(
      recorded.reference,
      { kind: 'refund', amountMinor: recorded.amountMinor },
      () =>
        provider.refund({
          reference: recorded.reference,
          captureReference: operation?.parentReference ?? '',
          amountMinor: recorded.amountMinor,
        }),
    );
    if (result.outcome === 'unknown') {
      await inTransaction(db, PROVIDER_ACTOR, async (ctx) => {
        // What a callback settled while the calls went unanswered stays settled.
        await updateRefund(
          ctx.db,
          recorded.reference,
          { status: 'unknown', updated_at: ctx.now },
          { onlyIf: ['pending', 'unknown'] },
        );
        await markOperationUnknown(ctx.db, recorded.reference, ctx.now);
      });
    } else {
      const answer: ProviderOperation =
        result.outcome === 'answered'
          ? result.operation
          : {
              reference: recorded.reference,
              providerId: '',
              kind: 'refund',
              status: 'failed',
              amountMinor: recorded.amountMinor,
              currency: recorded.currency,
              failureCode: result.error.code,
              parentReference: operation?.parentReference ?? null,
              createdAt: clock.now(),
              updatedAt: clock.now(),
            };
      await whileApplying(
        recorded.reference,
        inTransaction(db, PROVIDER_ACTOR, (ctx) => applyAnswer(ctx, answer)),
      );
    }
    return (await findRefundByReference(db, recorded.reference)) as Refund;
  }

  async function handleEvent(db: Executor, event: ProviderEvent): Promise<void> {
    if (event.operation.kind === 'payout') {
      for (const listener of listeners.get('payout') ?? []) await listener(db, event);
      return;
    }
    const reference = event.operation.reference;
    for (let attempt = 1; ; attempt++) {
      // Read first: news already applied (the usual case, as the call's own answer came first)
      // costs one read and no lock.
      await applying.get(reference);
      const known = await findOperation(db, reference);
      if (known && !advances(known.status, event.operation.status)) return;
      // An operation Baton has no row for yet waits for the lock: its row is about to be inserted.
      const lock = known && attempt < CALLBACK_LOCK_ATTEMPTS_MAX ? 'skip_locked' : true;
      const outcome = await whileApplying(
        reference,
        inTransaction(db, PROVIDER_ACTOR, (ctx) => applyCallback(ctx, event, lock)),
      );
      if (outcome !== 'busy') return;
      // Another transaction is changing the operation, most likely with this very news: look
      // again once it has ended, rather than hold a connection waiting for its lock.
      await delay(CALLBACK_RETRY_BASE_DELAY_MS * 2 ** attempt * (0.5 + Math.random() / 2));
    }
  }

  async function ledgerAmountOf(
    ctx: Context,
    cause: { kind: 'payment' | 'refund' | 'chargeback'; id: string },
    key: string,
  ) {
    const transactions = await ledger.transactionsFor(ctx, cause);
    const posting = transactions.find((t) => t.idempotencyKey === key);
    return {
      posting: posting
        ? posting.entries.filter((e) => e.direction === 'debit').reduce((sum, e) => sum + e.amountMinor, 0n)
        : null,
      any: transactions.length > 0,
    };
  }

  /** The ledger transaction that stands for a succeeded operation, by its key; null when it has none. */
  async function expectedPosting(ctx: Context, row: PaymentOperation) {
    switch (row.kind) {
      case 'capture':
        return ledgerAmountOf(
          ctx,
          { kind: 'payment', id: row.paymentId },
          `payment:${row.paymentId}:capture`,
        );
      case 'refund': {
        const refundRow = await findRefundByReference(ctx.db, row.reference);
        return refundRow
          ? ledgerAmountOf(ctx, { kind: 'refund', id: refundRow.id }, `refund:${row.reference}:settled`)
          : { posting: null, any: false };
      }
      case 'chargeback': {
        const chargeback = await findChargebackByReference(ctx.db, row.reference);
        return chargeback
          ? ledgerAmountOf(
              ctx,
              { kind: 'chargeback', id: chargeback.id },
              `chargeback:${chargeback.id}:taken`,
            )
          : { posting: null, any: false };
      }
      case 'authorization':
        // An authorization moves no money itself; a declined one must not have a capture posting.
        return ledgerAmountOf(
          ctx,
          { kind: 'payment', id: row.paymentId },
          `payment:${row.paymentId}:capture`,
        );
      default:
        return null;
    }
  }

  /** Whether the ledger moved money for an operation whose provider state says none moved. */
  const postedWithout = (row: PaymentOperation, providerStatus: string, posted: bigint | null | undefined) =>
    posted != null &&
    (row.kind === 'authorization' ? providerStatus === 'failed' : providerStatus !== 'succeeded');

  /** Everything reconciliation finds wrong since `since`, read through `db` (a transaction or not). */
  async function compare(
    db: Executor,
    input: { since: Date },
  ): Promise<{ discrepancies: Discrepancy[]; checked: number }> {
    const ctx = contextOf(db, systemActor('reconciliation'));
    const discrepancies: Discrepancy[] = [];
    const seen = new Map<string, ProviderOperation>();
    const note = (
      type: Discrepancy['type'],
      ref: { reference: string; kind: Discrepancy['kind'] },
      views: { provider?: ProviderOperation | null; baton?: PaymentOperation | null; ledger?: bigint | null },
      detail: string,
    ) =>
      discrepancies.push({
        type,
        reference: ref.reference,
        kind: ref.kind,
        provider_status: views.provider?.status ?? null,
        baton_status: views.baton?.status ?? null,
        provider_amount_minor: views.provider?.amountMinor.toString() ?? null,
        baton_amount_minor: views.baton?.amountMinor.toString() ?? null,
        ledger_amount_minor: views.ledger?.toString() ?? null,
        detail,
      });

    // 1. The provider's side: every operation it holds, against Baton's record and the ledger.
    let after: string | undefined;
    for (;;) {
      const batch = await provider.list({
        since: input.since,
        ...(after ? { after } : {}),
        limit: RECONCILE_PAGE_MAX,
      });
      for (const op of batch) {
        seen.set(op.reference, op);
        if (op.kind === 'payout') {
          discrepancies.push(...(await payoutDiscrepancies(db, op)));
          continue;
        }
        const row = await findOperation(db, op.reference);
        if (!row && op.kind === 'chargeback') {
          note(
            'chargeback_unrecorded',
            op,
            { provider: op },
            'The customer’s bank took this money back; Baton has no chargeback for it, and the ledger has not taken it.',
          );
          continue;
        }
        if (!row) {
          note(
            'unknown_operation',
            op,
            { provider: op },
            'The provider holds an operation Baton has no record of.',
          );
          continue;
        }
        const posting = await expectedPosting(ctx, row);
        if (row.kind === 'refund' && row.status === 'pending' && op.status !== 'pending') {
          // The provider's answer never reached Baton (a lost callback, a crash after the call):
          // the refund's money still sits in refunds in transit, neither settled nor owed.
          note(
            'refund_unsettled',
            op,
            { provider: op, baton: row, ledger: posting?.posting ?? null },
            `The provider says ${op.status}; Baton's refund is still pending and the ledger holds its money in transit.`,
          );
          continue;
        }
        if (row.status !== op.status)
          note(
            'status_mismatch',
            op,
            { provider: op, baton: row },
            `The provider says ${op.status}; Baton says ${row.status}.`,
          );
        if (row.amountMinor !== op.amountMinor)
          note(
            'amount_mismatch',
            op,
            { provider: op, baton: row },
            'Baton recorded another amount than the provider.',
          );
        if (row.kind === 'authorization') {
          if (postedWithout(row, op.status, posting?.posting))
            note(
              'posting_without_operation',
              op,
              { provider: op, baton: row, ledger: posting?.posting ?? null },
              'The ledger moved money for a declined payment.',
            );
        } else if (op.status === 'succeeded' && posting && posting.posting === null)
          note(
            'missing_posting',
            op,
            { provider: op, baton: row },
            'The operation succeeded; its ledger transaction is missing.',
          );
        else if (op.status === 'succeeded' && posting?.posting != null && posting.posting !== op.amountMinor)
          note(
            'amount_mismatch',
            op,
            { provider: op, baton: row, ledger: posting.posting },
            'The ledger posted another amount than the provider moved.',
          );
        else if (op.status !== 'succeeded' && posting?.posting != null)
          note(
            'posting_without_operation',
            op,
            { provider: op, baton: row, ledger: posting.posting },
            'The ledger moved money for an operation that did not succeed.',
          );
      }
      if (batch.length < RECONCILE_PAGE_MAX) break;
      after = batch.at(-1)?.reference;
    }

    // 2. Baton's side: what it recorded since, that the provider did not list.
    let cursor: string | null = null;
    let checked = seen.size;
    for (;;) {
      const rows = await operationsSince(db, input.since, cursor, RECONCILE_PAGE_MAX);
      for (const row of rows) {
        if (seen.has(row.reference)) continue;
        checked++;
        const op = await provider.find(row.reference);
        const posting = await expectedPosting(ctx, row);
        if (!op) {
          if (row.status === 'succeeded' || row.status === 'pending')
            note(
              'missing_at_provider',
              row,
              { baton: row },
              'Baton recorded this operation; the provider has no such one.',
            );
          if (posting?.posting != null)
            note(
              'posting_without_operation',
              row,
              { baton: row, ledger: posting.posting },
              'The ledger moved money for an operation the provider does not have.',
            );
          continue;
        }
        if (op.status !== row.status)
          note(
            'status_mismatch',
            row,
            { provider: op, baton: row },
            `The provider says ${op.status}; Baton says ${row.status}.`,
          );
        if (postedWithout(row, op.status, posting?.posting))
          note(
            'posting_without_operation',
            row,
            { provider: op, baton: row, ledger: posting?.posting ?? null },
            'The ledger moved money for an operation that did not succeed.',
          );
      }
      if (rows.length < RECONCILE_PAGE_MAX) break;
      cursor = rows.at(-1)?.id ?? null;
    }

    // 3. Money still owed to customers: refunds the provider failed that nobody has retried. They
    // are reported by every run until they are retried, however old.
    let owedAfter: string | null = null;
    for (;;) {
      const owed = await owedRefunds(db, owedAfter, RECONCILE_PAGE_MAX);
      for (const refund of owed) {
        const posted = await ledgerAmountOf(
          ctx,
          { kind: 'refund', id: refund.id },
          refundFailedKey(refund.reference),
        );
        discrepancies.push({
          type: 'refund_owed',
          reference: refund.reference,
          kind: 'refund',
          provider_status: seen.get(refund.reference)?.status ?? null,
          baton_status: refund.status,
          provider_amount_minor: seen.get(refund.reference)?.amountMinor.toString() ?? null,
          baton_amount_minor: refund.amountMinor.toString(),
          ledger_amount_minor: posted.posting?.toString() ?? null,
          detail: `Refund ${refund.id} of payment ${refund.paymentId} failed at the provider (${refund.failureCode ?? 'no code'}); its amount is owed to the customer until it is retried.`,
        });
      }
      if (owed.length < RECONCILE_PAGE_MAX) break;
      owedAfter = owed.at(-1)?.id ?? null;
    }

    // 4. Baton's payouts since, that the provider did not list: sent, or being sent, and unknown there.
    if (payoutRecords) {
      let payoutAfter: string | null = null;
      for (;;) {
        const records = await payoutRecords.changedSince(db, input.since, payoutAfter, RECONCILE_PAGE_MAX);
        for (const record of records) {
          if (seen.has(record.reference)) continue;
          checked++;
          const op = await provider.find(record.reference);
          if (op) discrepancies.push(...payoutFindings(op, record));
          else if (expectedAtProvider(record))
            discrepancies.push(
              payoutDiscrepancy(
                record,
                null,
                'payout_missing_at_provider',
                `Baton recorded this payout as ${record.status}; the provider has no such payout.`,
                record.sentMinor,
              ),
            );
        }
        if (records.length < RECONCILE_PAGE_MAX) break;
        payoutAfter = records.at(-1)?.reference ?? null;
      }
    }

    return { discrepancies, checked };
  }

  /** Stores a report of what `compare` found, with its event, in the caller's transaction. */
  async function storeReport(
    ctx: Context,
    input: { since: Date },
    found: { discrepancies: Discrepancy[]; checked: number },
  ): Promise<ReconciliationReport> {
    const report: ReconciliationReport = {
      id: newId('rec'),
      since: input.since,
      ranAt: clock.now(),
      operationsChecked: found.checked,
      discrepancies: found.discrepancies,
    };
    await insertReport(ctx.db, report);
    await appendEvent(ctx, {
      type: 'reconciliation.completed',
      subjectId: report.id,
      data: {
        id: report.id,
        operations_checked: found.checked,
        discrepancy_count: found.discrepancies.length,
      },
      audience: [],
    });
    return report;
  }

  async function reconcile(db: Executor, input: { since: Date }): Promise<ReconciliationReport> {
    const found = await compare(db, input);
    return inTransaction(db, systemActor('reconciliation'), (ctx) => storeReport(ctx, input, found));
  }

  async function runReconciliation(ctx: Context, input: { since: Date }): Promise<ReconciliationReport> {
    requireTransaction(ctx.db);
    const report = await storeReport(ctx, input, await compare(ctx.db, input));
    await recordAudit(ctx, {
      action: 'payments.reconciliation.run',
      targetId: report.id,
      outcome: 'succeeded',
      details: {
        since: input.since.toISOString(),
        operations_checked: report.operationsChecked,
        discrepancy_count: report.discrepancies.length,
      },
    });
    return report;
  }

  const payoutRecords = deps.payoutRecords ?? null;

  const payoutDiscrepancy = (
    record: PayoutRecord | null,
    op: ProviderOperation | null,
    type: Discrepancy['type'],
    detail: string,
    ledgerMinor: bigint | null,
  ): Discrepancy => ({
    type,
    reference: record?.reference ?? op?.reference ?? '',
    kind: 'payout',
    provider_status: op?.status ?? null,
    baton_status: record?.status ?? null,
    provider_amount_minor: op?.amountMinor.toString() ?? null,
    baton_amount_minor: record?.amountMinor.toString() ?? null,
    ledger_amount_minor: ledgerMinor?.toString() ?? null,
    detail,
  });

  /**
   * Compares a payout the provider holds with Baton's record of it and its postings. Without the
   * payouts module's records (a payments service on its own) payouts are not compared.
   */
  async function payoutDiscrepancies(db: Executor, op: ProviderOperation): Promise<Discrepancy[]> {
    if (!payoutRecords) return [];
    const record = await payoutRecords.find(db, op.reference);
    if (!record)
      return [
        payoutDiscrepancy(
          null,
          op,
          'payout_unknown',
          'The provider holds a payout Baton has no record of.',
          null,
        ),
      ];
    return payoutFindings(op, record);
  }

  /** Where a payout the provider holds and Baton's record of it disagree. */
  const payoutFindings = (op: ProviderOperation, record: PayoutRecord): Discrepancy[] =>
    comparePayout(op, record).map((finding) =>
      payoutDiscrepancy(record, op, finding.type, finding.detail, finding.ledgerMinor),
    );

  function canSee(ctx: Context, payment: Payment): boolean {
    if (ctx.actor.kind === 'operator' || ctx.actor.kind === 'system') return true;
    return ctx.actor.kind === 'customer' && payment.customerId === ctx.actor.customerId;
  }

  return {
    provider,
    async charge(db, actor, input) {
      validateCharge(input);
      const payment = await inTransaction(db, actor, (ctx) => recordIntent(ctx, input));
      return resume(db, actor, payment.id);
    },
    recordIntent,
    resume,
    refund,
    retryRefund,
    resumeRefund,
    capturedAndChargedBack: (ctx, input) => capturedAndChargedBack(ctx.db, input.orderRef, input.currency),
    handleEvent,
    onOperation(kind, listener) {
      listeners.set(kind, [...(listeners.get(kind) ?? []), listener]);
    },
    onSettled(listener) {
      settlementListeners.push(listener);
    },
    async retryUnsettled(db, before, options = {}) {
      const actor = systemActor('payments-retry');
      const batch = options.batch ?? RETRY_BATCH_MAX;
      // The job's wait is the time since `before`; each turn adds to it (`retryDelayMs`).
      const waitMs = Math.max(0, clock.now().getTime() - before.getTime());
      const delay = (retries: number) => retryDelayMs(retries, waitMs, RETRY_WAIT_MAX_MS);
      let payments = 0;
      for (const payment of await unsettledPayments(db, before, batch)) {
        try {
          await resume(db, actor, payment.id);
        } catch (error) {
          deps.logger?.warn({ err: error, paymentId: payment.id }, 'payment retry failed');
        }
        await retryTurn(db, 'payments', payment.id, clock.now(), delay);
        payments++;
      }
      let refunds = 0;
      for (const pending of await unsettledRefunds(db, before, batch)) {
        try {
          await driveRefund(db, pending);
        } catch (error) {
          deps.logger?.warn({ err: error, refundId: pending.id }, 'refund retry failed');
        }
        await retryTurn(db, 'payment_refunds', pending.id, clock.now(), delay);
        refunds++;
      }
      return { payments, refunds };
    },
    async getPayment(ctx, id) {
      const payment = parseId('pay', id) ? await findPayment(ctx.db, id) : null;
      if (!payment || !canSee(ctx, payment)) throw paymentsErrors.paymentNotFound(id);
      const [operations, refunds, chargebacks] = await Promise.all([
        operationsOf(ctx.db, [payment.id]),
        refundsOf(ctx.db, [payment.id]),
        chargebacksOf(ctx.db, [payment.id]),
      ]);
      const refundsOwedMinor = refunds
        .filter((r) => r.status === 'failed' && r.retriedBy === null)
        .reduce((sum, r) => sum + r.amountMinor, 0n);
      return { payment, operations, refunds, chargebacks, refundsOwedMinor };
    },
    async listPayments(ctx, filter) {
      const scoped = ctx.actor.kind === 'customer' ? { ...filter, customerId: ctx.actor.customerId } : filter;
      const rows = await listPayments(ctx.db, scoped);
      return { items: rows.slice(0, filter.limit), hasMore: rows.length > filter.limit };
    },
    async getChargeback(ctx, id) {
      const found = parseId('cbk', id) ? await findChargeback(ctx.db, id) : null;
      if (!found) throw paymentsErrors.chargebackNotFound(id);
      return found;
    },
    async listChargebacks(ctx, filter) {
      const rows = await listChargebacks(ctx.db, filter);
      return { items: rows.slice(0, filter.limit), hasMore: rows.length > filter.limit };
    },
    async decideChargeback(ctx, id, decision) {
      requireTransaction(ctx.db);
      const chargeback = parseId('cbk', id) ? await findChargeback(ctx.db, id, { lock: true }) : null;
      if (!chargeback) throw paymentsErrors.chargebackNotFound(id);
      if (chargeback.status === 'decided') throw paymentsErrors.chargebackAlreadyDecided(id);
      let shareMinor = 0n;
      let partnerId: string | null = null;
      if (decision.liability !== 'platform') {
        if (!decision.partnerId || !parseId('ptn', decision.partnerId))
          throw paymentsErrors.decisionInvalid(
            '/partner_id',
            'A partner or split liability names the partner.',
          );
        partnerId = decision.partnerId;
        if (decision.liability === 'partner') shareMinor = chargeback.amountMinor;
        else {
          shareMinor = decision.partnerShareMinor ?? 0n;
          if (shareMinor <= 0n || shareMinor >= chargeback.amountMinor)
            throw paymentsErrors.decisionInvalid(
              '/partner_share',
              'A split gives the partner a share above zero and below the chargeback.',
            );
        }
      }
      if (partnerId !== null && shareMinor > 0n) {
        const currency = chargeback.currency;
        const payable = await ledger.lockBalance(ctx, {
          purpose: 'partner_payable',
          ownerId: partnerId,
          currency,
        });
        const { fromPayableMinor, receivableMinor } = collectShare(shareMinor, payable.balanceMinor);
        await ledger.post(ctx, {
          idempotencyKey: `chargeback:${chargeback.id}:liability`,
          description: `Partner ${partnerId}'s share of chargeback ${chargeback.id}`,
          cause: { kind: 'chargeback', id: chargeback.id },
          entries: [
            ...(fromPayableMinor > 0n
              ? [
                  {
                    account: { purpose: 'partner_payable' as const, ownerId: partnerId, currency },
                    direction: 'debit' as const,
                    amountMinor: fromPayableMinor,
                  },
                ]
              : []),
            ...(receivableMinor > 0n
              ? [
                  {
                    account: { purpose: 'partner_receivable' as const, ownerId: partnerId, currency },
                    direction: 'debit' as const,
                    amountMinor: receivableMinor,
                  },
                ]
              : []),
            {
              account: { purpose: 'chargeback_losses', ownerId: PLATFORM_OWNER, currency },
              direction: 'credit',
              amountMinor: shareMinor,
            },
          ],
          metadata: { liability: decision.liability },
        });
      }
      const decidedBy = ctx.actor.kind === 'operator' ? ctx.actor.userId : ctx.actor.kind;
      await decideChargebackRow(ctx.db, chargeback.id, {
        liability: decision.liability,
        partner_id: partnerId,
        partner_share_minor: shareMinor,
        decided_by: decidedBy,
        decided_at: ctx.now,
      });
      await appendEvent(ctx, {
        type: 'chargeback.decided',
        subjectId: chargeback.id,
        data: {
          id: chargeback.id,
          liability: decision.liability,
          partner_id: partnerId,
          partner_share_minor: shareMinor.toString(),
        },
        audience: partnerId ? [partnerId] : [],
      });
      await recordAudit(ctx, {
        action: 'payments.chargeback.decide',
        targetId: chargeback.id,
        outcome: 'succeeded',
        details: {
          liability: decision.liability,
          partner_id: partnerId,
          partner_share_minor: shareMinor.toString(),
        },
      });
      return (await findChargeback(ctx.db, chargeback.id)) as Chargeback;
    },
    reconcile,
    runReconciliation,
    async getReport(ctx, id) {
      const report = parseId('rec', id) ? await findReport(ctx.db, id) : null;
      if (!report) throw paymentsErrors.reportNotFound(id);
      return report;
    },
    async listReports(ctx, page) {
      const rows = await listReports(ctx.db, page);
      return { items: rows.slice(0, page.limit), hasMore: rows.length > page.limit };
    },
  };
}
