import type { Clock } from '../../../kernel/clock.js';
import {
  type OperationKind,
  type OperationStatus,
  type PaymentProvider,
  type ProviderEvent,
  type ProviderOperation,
  ProviderRejectedError,
  ProviderTimeoutError,
} from './port.js';

/*
 * A payment provider that lives in memory and behaves like a real one, faults included, so
 * that Baton's money paths can be tested against everything a real provider does:
 *   - every call is idempotent on Baton's reference: the same reference with the same request
 *     is the same operation; the same reference with another request is refused
 *     (`reference_reused`);
 *   - authorisations are declined by test cards (`pm_card_declined`,
 *     `pm_card_insufficient_funds`) or by injection (`failNext`);
 *   - captures, refunds and payouts can stay `pending` and settle later (`settle`), a
 *     pending payout can fail after it was accepted (`failPending`, or the destination
 *     `ba_account_closed`), and a paid one can come back from the partner's bank
 *     (`returnPayout`);
 *   - a call can time out before or after the provider applied it (`timeoutNext`), the trap that
 *     charges a customer twice when the caller retries with a new reference, and so can a lookup
 *     (`timeoutNextFind`);
 *   - a request the provider already holds can be refused as a duplicate instead of answered
 *     with the operation (`refuseRepeatNext`), as some providers answer a retry;
 *   - callbacks arrive asynchronously, and tests can hold them, deliver them twice, in reverse
 *     or shuffled, or deliver a stale state after the final one;
 *   - the customer's bank can take money back (`chargeback`).
 * Provider ids and shuffles derive from a seed, so a run is replayable.
 */

/** Payment method tokens with a fixed behaviour, like a real provider's test cards. */
export const TEST_CARDS = {
  ok: 'pm_card_ok',
  declined: 'pm_card_declined',
  insufficientFunds: 'pm_card_insufficient_funds',
} as const;

/** Payout destinations with a fixed behaviour: the account is closed, found out after acceptance. */
export const TEST_DESTINATIONS = {
  ok: 'ba_ok',
  accountClosed: 'ba_account_closed',
} as const;

export type Settlement = 'immediate' | 'pending';
type SettlingKind = 'capture' | 'refund' | 'payout';
type CallKind = 'authorization' | SettlingKind;

export interface SimulatedProviderOptions {
  /** Makes provider ids and shuffled deliveries replayable. */
  readonly seed?: number;
  readonly clock?: Clock;
  /**
   * Whether each kind of operation is final at once or stays pending until `settle`.
   * Defaults: captures and refunds immediate, payouts pending (as bank transfers are).
   */
  readonly settlement?: Partial<Record<SettlingKind, Settlement>>;
  /**
   * Deliver callbacks by themselves, shortly after the change (the default), or hold them
   * until `deliverPending` is called.
   */
  readonly autoDeliver?: boolean;
}

interface Fault {
  readonly type: 'fail' | 'timeout' | 'refuse_repeat';
  readonly code?: string;
  readonly afterApplying?: boolean;
}

interface StoredOperation {
  operation: ProviderOperation;
  /** What the request asked, to tell a retry from a reused reference. */
  readonly fingerprint: string;
  readonly seq: number;
  /** For payouts: the destination decides whether it will fail after acceptance. */
  readonly destination: string | null;
}

/** A deterministic generator (mulberry32): small, fast, and the same sequence for the same seed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROVIDER_ID_PREFIX: Record<OperationKind, string> = {
  authorization: 'sim_auth',
  capture: 'sim_cap',
  refund: 'sim_ref',
  payout: 'sim_po',
  chargeback: 'sim_cb',
};

export class SimulatedProvider implements PaymentProvider {
  readonly name = 'simulated';
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #settlement: Record<SettlingKind, Settlement>;
  readonly #autoDeliver: boolean;
  readonly #operations = new Map<string, StoredOperation>();
  readonly #faults = new Map<CallKind | 'find', Fault[]>();
  /** Events emitted but not yet delivered. */
  #outbox: ProviderEvent[] = [];
  /** Every event ever emitted, in order. */
  readonly #emitted: ProviderEvent[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  #handler: ((event: ProviderEvent) => Promise<void>) | null = null;
  #seq = 0;
  #eventSeq = 0;
  /** Deliveries whose handler threw; they stay queued and are tried again. */
  readonly deliveryErrors: unknown[] = [];
  /** How many times each kind of call was made, for tests that count charges. */
  readonly calls: Record<CallKind | 'find' | 'list', number> = {
    authorization: 0,
    capture: 0,
    refund: 0,
    payout: 0,
    find: 0,
    list: 0,
  };

  constructor(options: SimulatedProviderOptions = {}) {
    this.#clock = options.clock ?? { now: () => new Date() };
    this.#random = seeded(options.seed ?? 1);
    this.#settlement = {
      capture: 'immediate',
      refund: 'immediate',
      payout: 'pending',
      ...options.settlement,
    };
    this.#autoDeliver = options.autoDeliver ?? true;
  }

  // --- the port ----------------------------------------------------------------------------

  async authorize(input: {
    reference: string;
    paymentMethod: string;
    amountMinor: bigint;
    currency: string;
  }): Promise<ProviderOperation> {
    this.calls.authorization++;
    return this.#call('authorization', input.reference, fingerprint(input), () => {
      if (input.amountMinor <= 0n)
        throw rejected(input.reference, 'amount_invalid', 'The amount must be positive.');
      const declined =
        input.paymentMethod === TEST_CARDS.declined
          ? 'card_declined'
          : input.paymentMethod === TEST_CARDS.insufficientFunds
            ? 'insufficient_funds'
            : null;
      return {
        kind: 'authorization',
        status: declined ? 'failed' : 'succeeded',
        failureCode: declined,
        amountMinor: input.amountMinor,
        currency: input.currency,
        parentReference: null,
        destination: null,
      };
    });
  }

  async capture(input: {
    reference: string;
    authorizationReference: string;
    amountMinor: bigint;
  }): Promise<ProviderOperation> {
    this.calls.capture++;
    return this.#call('capture', input.reference, fingerprint(input), () => {
      const parent = this.#operations.get(input.authorizationReference)?.operation;
      if (parent?.kind !== 'authorization')
        throw rejected(input.reference, 'authorization_not_found', 'No such authorization.');
      if (parent.status !== 'succeeded')
        throw rejected(input.reference, 'authorization_not_succeeded', 'The authorization did not succeed.');
      const taken = this.#sumChildren(parent.reference, 'capture');
      if (input.amountMinor <= 0n || taken + input.amountMinor > parent.amountMinor)
        throw rejected(input.reference, 'amount_exceeds_authorization', 'More than the authorized amount.');
      return this.#settling('capture', input.amountMinor, parent.currency, parent.reference, null);
    });
  }

  async refund(input: {
    reference: string;
    captureReference: string;
    amountMinor: bigint;
  }): Promise<ProviderOperation> {
    this.calls.refund++;
    return this.#call('refund', input.reference, fingerprint(input), () => {
      const parent = this.#operations.get(input.captureReference)?.operation;
      if (parent?.kind !== 'capture')
        throw rejected(input.reference, 'capture_not_found', 'No such capture.');
      if (parent.status !== 'succeeded')
        throw rejected(input.reference, 'capture_not_succeeded', 'The capture did not succeed.');
      const refunded = this.#sumChildren(parent.reference, 'refund');
      if (input.amountMinor <= 0n || refunded + input.amountMinor > parent.amountMinor)
        throw rejected(input.reference, 'amount_exceeds_capture', 'More than what is left of the capture.');
      return this.#settling('refund', input.amountMinor, parent.currency, parent.reference, null);
    });
  }

  async payout(input: {
    reference: string;
    destination: string;
    amountMinor: bigint;
    currency: string;
  }): Promise<ProviderOperation> {
    this.calls.payout++;
    return this.#call('payout', input.reference, fingerprint(input), () => {
      if (input.amountMinor <= 0n)
        throw rejected(input.reference, 'amount_invalid', 'The amount must be positive.');
      if (input.destination.length === 0)
        throw rejected(input.reference, 'destination_invalid', 'No payout destination.');
      return this.#settling('payout', input.amountMinor, input.currency, null, input.destination);
    });
  }

  async find(reference: string): Promise<ProviderOperation | null> {
    this.calls.find++;
    if (this.#faults.get('find')?.shift()) throw new ProviderTimeoutError(reference);
    return this.#operations.get(reference)?.operation ?? null;
  }

  async list(input: { since: Date; after?: string; limit: number }): Promise<ProviderOperation[]> {
    this.calls.list++;
    const ordered = this.#ordered().filter((o) => o.operation.updatedAt.getTime() >= input.since.getTime());
    let start = 0;
    if (input.after !== undefined) {
      const index = ordered.findIndex((o) => o.operation.reference === input.after);
      start = index < 0 ? ordered.length : index + 1;
    }
    return ordered.slice(start, start + input.limit).map((o) => o.operation);
  }

  onEvent(handler: (event: ProviderEvent) => Promise<void>): void {
    this.#handler = handler;
  }

  // --- fault injection and control, for tests ----------------------------------------------

  /** The next call of `kind` is applied as a failure with `code` (a decline, for authorisations). */
  failNext(kind: CallKind, code: string): void {
    this.#queueFault(kind, { type: 'fail', code });
  }

  /**
   * The next call of `kind` throws ProviderTimeoutError. With `afterApplying`, the provider
   * applied it first (the money moved); without, it never arrived.
   */
  timeoutNext(kind: CallKind, options: { afterApplying: boolean }): void {
    this.#queueFault(kind, { type: 'timeout', afterApplying: options.afterApplying });
  }

  /** The next lookup (`find`) throws ProviderTimeoutError: the provider cannot say now. */
  timeoutNextFind(): void {
    this.#queueFault('find', { type: 'timeout' });
  }

  /**
   * The next call of `kind`, when the provider already holds its reference, is refused with
   * ProviderRejectedError `code` rather than answered with the operation it holds: the request
   * was not refused, it is a duplicate. A new reference is applied as usual.
   */
  refuseRepeatNext(kind: CallKind, code = 'duplicate_request'): void {
    this.#queueFault(kind, { type: 'refuse_repeat', code });
  }

  /**
   * Settles pending operations (one by reference, or every one): payouts to a closed account
   * fail with `account_closed`, the others succeed. Emits one event per settled operation.
   */
  settle(reference?: string): ProviderOperation[] {
    const settled: ProviderOperation[] = [];
    for (const stored of this.#pending(reference)) {
      const failure = stored.destination === TEST_DESTINATIONS.accountClosed ? 'account_closed' : null;
      settled.push(this.#update(stored, failure ? 'failed' : 'succeeded', failure));
    }
    return settled;
  }

  /** Fails a pending operation after it was accepted (a payout to an account found closed). */
  failPending(reference: string, code = 'account_closed'): ProviderOperation {
    const [stored] = this.#pending(reference);
    if (!stored) throw new Error(`No pending operation ${reference}`);
    return this.#update(stored, 'failed', code);
  }

  /**
   * The partner's bank sends a paid payout back (a closed account found out days later): the
   * payout, succeeded, becomes failed with `code`, and its event is emitted. Real providers
   * report it so, on the same payout.
   */
  returnPayout(reference: string, code = 'account_closed'): ProviderOperation {
    const stored = this.#operations.get(reference);
    if (stored?.operation.kind !== 'payout' || stored.operation.status !== 'succeeded')
      throw new Error(`No paid payout ${reference}`);
    return this.#update(stored, 'failed', code);
  }

  /**
   * The customer's bank takes (part of) a capture back. Creates a chargeback operation whose
   * parent is the capture, and emits its event.
   */
  chargeback(captureReference: string, amountMinor: bigint, reference?: string): ProviderOperation {
    const parent = this.#operations.get(captureReference)?.operation;
    if (parent?.kind !== 'capture' || parent.status !== 'succeeded')
      throw new Error(`No succeeded capture ${captureReference}`);
    const ref = reference ?? `${PROVIDER_ID_PREFIX.chargeback}_ref_${this.#seq + 1}`;
    const stored = this.#create(ref, `chargeback:${captureReference}:${amountMinor}`, {
      kind: 'chargeback',
      status: 'succeeded',
      failureCode: null,
      amountMinor,
      currency: parent.currency,
      parentReference: parent.reference,
      destination: null,
    });
    return stored.operation;
  }

  /** Every event emitted so far, in order. */
  events(): readonly ProviderEvent[] {
    return [...this.#emitted];
  }

  /** Events emitted and not yet delivered (held, or whose delivery failed). */
  undelivered(): readonly ProviderEvent[] {
    return [...this.#outbox];
  }

  /** Every operation the provider holds, oldest first. */
  operations(): readonly ProviderOperation[] {
    return this.#ordered().map((o) => o.operation);
  }

  /**
   * Delivers every held event now, and waits for the handler. `order` reorders them (reversed
   * puts a final state before the pending one it replaced); `duplicate` delivers each twice.
   */
  async deliverPending(
    options: { order?: 'sent' | 'reversed' | 'shuffled'; duplicate?: boolean } = {},
  ): Promise<void> {
    await this.flush();
    const batch = this.#outbox;
    this.#outbox = [];
    const ordered =
      options.order === 'reversed'
        ? [...batch].reverse()
        : options.order === 'shuffled'
          ? this.#shuffle(batch)
          : batch;
    for (const event of ordered) {
      await this.#deliver(event);
      if (options.duplicate) await this.#deliver(event);
    }
  }

  /** Delivers one already emitted event again (same event id), as providers do. */
  async redeliver(eventId: string): Promise<void> {
    const event = this.#emitted.find((e) => e.eventId === eventId);
    if (!event) throw new Error(`No event ${eventId}`);
    await this.#deliver(event);
  }

  /**
   * Delivers a late event carrying a stale state of an operation (by default `pending`) under a
   * new event id: what arrives when a provider's callbacks overtake each other.
   */
  async deliverStale(reference: string, status: OperationStatus = 'pending'): Promise<void> {
    const stored = this.#operations.get(reference);
    if (!stored) throw new Error(`No operation ${reference}`);
    await this.#deliver({
      eventId: this.#nextEventId(),
      operation: { ...stored.operation, status, failureCode: null },
    });
  }

  /** Waits until every delivery already started has finished. */
  async flush(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  // --- internals -----------------------------------------------------------------------------

  async #call(
    kind: CallKind,
    reference: string,
    requestFingerprint: string,
    apply: () => Omit<ProviderOperation, 'reference' | 'providerId' | 'createdAt' | 'updatedAt'> & {
      destination: string | null;
    },
  ): Promise<ProviderOperation> {
    const fault = this.#faults.get(kind)?.shift();
    if (fault?.type === 'timeout' && !fault.afterApplying) throw new ProviderTimeoutError(reference);
    const existing = this.#operations.get(reference);
    let result: ProviderOperation;
    if (existing) {
      if (existing.fingerprint !== requestFingerprint || existing.operation.kind !== kind)
        throw rejected(reference, 'reference_reused', `The reference ${reference} names another request.`);
      if (fault?.type === 'refuse_repeat')
        throw rejected(
          reference,
          fault.code ?? 'duplicate_request',
          `The request ${reference} was made before.`,
        );
      result = existing.operation;
    } else {
      const fields = apply();
      const failed = fault?.type === 'fail';
      result = this.#create(reference, requestFingerprint, {
        ...fields,
        ...(failed ? { status: 'failed' as const, failureCode: fault.code ?? 'processing_error' } : {}),
      }).operation;
    }
    if (fault?.type === 'timeout') throw new ProviderTimeoutError(reference);
    return result;
  }

  #settling(
    kind: SettlingKind,
    amountMinor: bigint,
    currency: string,
    parentReference: string | null,
    destination: string | null,
  ) {
    return {
      kind,
      status: (this.#settlement[kind] === 'immediate' && destination !== TEST_DESTINATIONS.accountClosed
        ? 'succeeded'
        : 'pending') as OperationStatus,
      failureCode: null,
      amountMinor,
      currency,
      parentReference,
      destination,
    };
  }

  #create(
    reference: string,
    requestFingerprint: string,
    fields: Omit<ProviderOperation, 'reference' | 'providerId' | 'createdAt' | 'updatedAt'> & {
      destination: string | null;
    },
  ): StoredOperation {
    const now = this.#clock.now();
    const seq = ++this.#seq;
    const { destination, ...rest } = fields;
    const stored: StoredOperation = {
      operation: {
        ...rest,
        reference,
        providerId: `${PROVIDER_ID_PREFIX[fields.kind]}_${this.#token(seq)}`,
        createdAt: now,
        updatedAt: now,
      },
      fingerprint: requestFingerprint,
      seq,
      destination,
    };
    this.#operations.set(reference, stored);
    this.#emit(stored.operation);
    return stored;
  }

  #update(stored: StoredOperation, status: OperationStatus, failureCode: string | null): ProviderOperation {
    stored.operation = { ...stored.operation, status, failureCode, updatedAt: this.#clock.now() };
    this.#emit(stored.operation);
    return stored.operation;
  }

  #pending(reference?: string): StoredOperation[] {
    return this.#ordered().filter(
      (o) =>
        o.operation.status === 'pending' && (reference === undefined || o.operation.reference === reference),
    );
  }

  #ordered(): StoredOperation[] {
    return [...this.#operations.values()].sort(
      (a, b) => a.operation.updatedAt.getTime() - b.operation.updatedAt.getTime() || a.seq - b.seq,
    );
  }

  #sumChildren(parentReference: string, kind: OperationKind): bigint {
    let sum = 0n;
    for (const { operation } of this.#operations.values()) {
      if (
        operation.parentReference === parentReference &&
        operation.kind === kind &&
        operation.status !== 'failed'
      )
        sum += operation.amountMinor;
    }
    return sum;
  }

  #queueFault(kind: CallKind | 'find', fault: Fault): void {
    const queue = this.#faults.get(kind) ?? [];
    queue.push(fault);
    this.#faults.set(kind, queue);
  }

  #emit(operation: ProviderOperation): void {
    const event: ProviderEvent = { eventId: this.#nextEventId(), operation };
    this.#emitted.push(event);
    this.#outbox.push(event);
    if (this.#autoDeliver) {
      // Delivered after the call that caused it has returned, as a real callback would be.
      const delivery = new Promise<void>((resolve) => setTimeout(resolve, 0)).then(async () => {
        const index = this.#outbox.indexOf(event);
        if (index < 0) return;
        this.#outbox.splice(index, 1);
        await this.#deliver(event);
      });
      this.#track(delivery);
    }
  }

  async #deliver(event: ProviderEvent): Promise<void> {
    if (!this.#handler) {
      this.#outbox.push(event);
      return;
    }
    try {
      await this.#handler(event);
    } catch (error) {
      // A handler that fails gets the event again later, as with a real provider's retries.
      this.deliveryErrors.push(error);
      this.#outbox.push(event);
    }
  }

  #track(delivery: Promise<void>): void {
    this.#inFlight.add(delivery);
    void delivery.finally(() => this.#inFlight.delete(delivery));
  }

  #nextEventId(): string {
    return `sim_evt_${this.#token(++this.#eventSeq)}`;
  }

  /** A provider-looking id: a counter for order and seeded noise so ids differ between seeds. */
  #token(n: number): string {
    const noise = Math.floor(this.#random() * 36 ** 6)
      .toString(36)
      .padStart(6, '0');
    return `${n.toString(36).padStart(6, '0')}${noise}`;
  }

  #shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
    }
    return copy;
  }
}

const rejected = (reference: string, code: string, message: string) =>
  new ProviderRejectedError(reference, code, message);

const fingerprint = (input: Record<string, unknown>): string =>
  JSON.stringify(input, (_key, value) => (typeof value === 'bigint' ? `${value}n` : value));

/** A simulated provider; see `SimulatedProvider` for what it can be made to do. */
export const createSimulatedProvider = (options?: SimulatedProviderOptions): SimulatedProvider =>
  new SimulatedProvider(options);
