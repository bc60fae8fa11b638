import { type Insertable, type Selectable, sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import { executeUnawaited } from '../../../kernel/database/pipelined-driver.js';
import {
  advancesFrom,
  type ChargebackLiability,
  type ChargebackStatus,
  type KnownStatus,
  type PaymentStatus,
  type RefundStatus,
} from '../domain/payment.js';
import type { Discrepancy } from '../domain/reconciliation.js';
import type { OperationKind, ProviderOperation } from '../provider/port.js';
import type {
  PaymentChargebacksTable,
  PaymentOperationsTable,
  PaymentRefundsTable,
  PaymentsTable,
  ReconciliationReportsTable,
} from './tables.js';

/** A customer's payment for an order, as Baton knows it. */
export interface Payment {
  readonly id: string;
  readonly reference: string;
  readonly orderRef: string;
  readonly customerId: string | null;
  readonly paymentMethod: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly status: PaymentStatus;
  readonly failureCode: string | null;
  readonly capturedMinor: bigint;
  /** Refunded or being refunded: a refund in flight already counts, so two cannot overdraw the capture. */
  readonly refundedMinor: bigint;
  readonly attempts: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** One operation at the provider, as Baton last knew it. */
export interface PaymentOperation {
  readonly id: string;
  readonly paymentId: string;
  readonly reference: string;
  readonly kind: OperationKind;
  readonly status: KnownStatus;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly providerId: string | null;
  readonly parentReference: string | null;
  readonly failureCode: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface Refund {
  readonly id: string;
  readonly paymentId: string;
  readonly reference: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly status: RefundStatus;
  readonly failureCode: string | null;
  /** The failed refund this one retries. */
  readonly retryOf: string | null;
  /** The refund that retries this one, once it failed; a failed refund without one is owed. */
  readonly retriedBy: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface Chargeback {
  readonly id: string;
  readonly paymentId: string;
  readonly reference: string;
  readonly orderRef: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly status: ChargebackStatus;
  readonly liability: ChargebackLiability | null;
  readonly partnerId: string | null;
  readonly partnerShareMinor: bigint | null;
  readonly decidedBy: string | null;
  readonly decidedAt: Date | null;
  readonly createdAt: Date;
}

export interface ReconciliationReport {
  readonly id: string;
  readonly since: Date;
  readonly ranAt: Date;
  readonly operationsChecked: number;
  readonly discrepancies: readonly Discrepancy[];
}

const toPayment = (row: Selectable<PaymentsTable>): Payment => ({
  id: row.id,
  reference: row.reference,
  orderRef: row.order_ref,
  customerId: row.customer_id,
  paymentMethod: row.payment_method,
  amountMinor: row.amount_minor,
  currency: row.currency,
  status: row.status,
  failureCode: row.failure_code,
  capturedMinor: row.captured_minor,
  refundedMinor: row.refunded_minor,
  attempts: row.attempts,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const toOperation = (row: Selectable<PaymentOperationsTable>): PaymentOperation => ({
  id: row.id,
  paymentId: row.payment_id,
  reference: row.reference,
  kind: row.kind,
  status: row.status,
  amountMinor: row.amount_minor,
  currency: row.currency,
  providerId: row.provider_id,
  parentReference: row.parent_reference,
  failureCode: row.failure_code,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const toRefund = (row: Selectable<PaymentRefundsTable>): Refund => ({
  id: row.id,
  paymentId: row.payment_id,
  reference: row.reference,
  amountMinor: row.amount_minor,
  currency: row.currency,
  status: row.status,
  failureCode: row.failure_code,
  retryOf: row.retry_of,
  retriedBy: row.retried_by,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const toChargeback = (row: Selectable<PaymentChargebacksTable>): Chargeback => ({
  id: row.id,
  paymentId: row.payment_id,
  reference: row.reference,
  orderRef: row.order_ref,
  amountMinor: row.amount_minor,
  currency: row.currency,
  status: row.status,
  liability: row.liability,
  partnerId: row.partner_id,
  partnerShareMinor: row.partner_share_minor,
  decidedBy: row.decided_by,
  decidedAt: row.decided_at,
  createdAt: row.created_at,
});

const toReport = (row: Selectable<ReconciliationReportsTable>): ReconciliationReport => ({
  id: row.id,
  since: row.since,
  ranAt: row.ran_at,
  operationsChecked: row.operations_checked,
  discrepancies: row.discrepancies,
});

// --- payments ----------------------------------------------------------------------------------

/** Inserts a payment unless its reference is taken; returns it as inserted, or null when the reference was taken. */
export async function insertPayment(db: Executor, row: Insertable<PaymentsTable>): Promise<Payment | null> {
  const inserted = await db
    .insertInto('payments')
    .values(row)
    .onConflict((oc) => oc.column('reference').doNothing())
    .returningAll()
    .executeTakeFirst();
  return inserted ? toPayment(inserted) : null;
}

export async function findPayment(
  db: Executor,
  id: string,
  options: { lock?: boolean } = {},
): Promise<Payment | null> {
  let query = db.selectFrom('payments').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toPayment(row) : null;
}

export async function findPaymentByReference(db: Executor, reference: string): Promise<Payment | null> {
  const row = await db
    .selectFrom('payments')
    .selectAll()
    .where('reference', '=', reference)
    .executeTakeFirst();
  return row ? toPayment(row) : null;
}

export interface PaymentFilter {
  readonly customerId?: string | undefined;
  readonly orderRef?: string | undefined;
  readonly status?: PaymentStatus | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

/** Newest first; fetches `limit + 1` so the caller can tell whether more follow. */
export async function listPayments(db: Executor, filter: PaymentFilter): Promise<Payment[]> {
  let query = db
    .selectFrom('payments')
    .selectAll()
    .orderBy('id', 'desc')
    .limit(filter.limit + 1);
  if (filter.customerId !== undefined) query = query.where('customer_id', '=', filter.customerId);
  if (filter.orderRef !== undefined) query = query.where('order_ref', '=', filter.orderRef);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.after !== undefined) query = query.where('id', '<', filter.after);
  return (await query.execute()).map(toPayment);
}

export async function updatePayment(
  db: Executor,
  id: string,
  changes: Partial<
    Pick<PaymentsTable, 'status' | 'failure_code' | 'captured_minor' | 'refunded_minor' | 'attempts'>
  > & {
    updated_at: Date;
  },
): Promise<void> {
  await db.updateTable('payments').set(changes).where('id', '=', id).execute();
}

/**
 * Changes a payment and returns it as changed, in one statement that also locks it; with
 * `onlyIf`, only a payment in one of those states is changed, and null is returned otherwise.
 * `addCapturedMinor` adds to what was captured, and `addAttempt` counts a provider call.
 */
export async function changePayment(
  db: Executor,
  id: string,
  changes: Partial<Pick<PaymentsTable, 'status' | 'failure_code' | 'refunded_minor'>> & {
    updated_at: Date;
    addCapturedMinor?: bigint;
    addAttempt?: boolean;
  },
  options: { onlyIf?: readonly PaymentStatus[] } = {},
): Promise<Payment | null> {
  const { addCapturedMinor, addAttempt, ...columns } = changes;
  let query = db
    .updateTable('payments')
    .set({
      ...columns,
      ...(addCapturedMinor !== undefined
        ? { captured_minor: sql<bigint>`captured_minor + ${addCapturedMinor}` }
        : {}),
      ...(addAttempt ? { attempts: sql<number>`attempts + 1` } : {}),
    })
    .where('id', '=', id);
  if (options.onlyIf) query = query.where('status', 'in', [...options.onlyIf]);
  const row = await query.returningAll().executeTakeFirst();
  return row ? toPayment(row) : null;
}

const retryWait = sql<Date>`coalesce(retry_from, updated_at)`;

/**
 * Payments open and left alone since `before` (counted from their last change, or from where
 * their last turn put them), longest waiting first: what the retry job drives on.
 */
export async function unsettledPayments(db: Executor, before: Date, limit: number): Promise<Payment[]> {
  return (
    await db
      .selectFrom('payments')
      .selectAll()
      .where('status', 'in', ['pending', 'authorized', 'unknown'])
      .where(retryWait, '<=', before)
      .orderBy(retryWait)
      .orderBy('id')
      .limit(limit)
      .execute()
  ).map(toPayment);
}

/**
 * How far past its turn an open payment or refund waits for the next one, beyond the retry
 * job's usual wait: nothing after its first turn, then twice as long after each turn, up to an
 * hour in all. Pure, for the job and its tests.
 */
export function retryDelayMs(retries: number, waitMs: number, maxMs: number): number {
  return Math.max(0, Math.min(waitMs * (2 ** Math.min(retries, 20) - 1), maxMs - waitMs));
}

/** Ends the retry job's turn on a payment still open: the next waits longer (`retryDelayMs`). */
export async function retryTurn(
  db: Executor,
  table: 'payments' | 'payment_refunds',
  id: string,
  now: Date,
  delay: (retries: number) => number,
): Promise<void> {
  const row = await db.selectFrom(table).select('retries').where('id', '=', id).executeTakeFirst();
  if (!row) return;
  await db
    .updateTable(table)
    .set({ retries: row.retries + 1, retry_from: new Date(now.getTime() + delay(row.retries)) })
    .where('id', '=', id)
    .where(
      'status',
      'in',
      table === 'payments' ? ['pending', 'authorized', 'unknown'] : ['pending', 'unknown'],
    )
    .execute();
}

// --- operations --------------------------------------------------------------------------------

export async function insertOperation(db: Executor, row: PaymentOperationsTable): Promise<void> {
  await db
    .insertInto('payment_operations')
    .values(row)
    .onConflict((oc) => oc.column('reference').doNothing())
    .execute();
}

/**
 * Queues the insert of an operation Baton is about to request in the caller's transaction,
 * without waiting for it: it is written with the transaction's next statement or its commit.
 */
export async function queueOperationInsert(db: Executor, row: PaymentOperationsTable): Promise<void> {
  await executeUnawaited(
    db,
    db
      .insertInto('payment_operations')
      .values(row)
      .onConflict((oc) => oc.column('reference').doNothing()),
  );
}

/**
 * An operation by reference. `lock: true` waits for the row's lock; `lock: 'skip_locked'` takes
 * it only if nobody holds it, and otherwise finds nothing.
 */
export async function findOperation(
  db: Executor,
  reference: string,
  options: { lock?: boolean | 'skip_locked' } = {},
): Promise<PaymentOperation | null> {
  let query = db.selectFrom('payment_operations').selectAll().where('reference', '=', reference);
  if (options.lock === 'skip_locked') query = query.forUpdate().skipLocked();
  else if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toOperation(row) : null;
}

/**
 * Records the provider's state of an operation if it is news (see `advances`), and returns the
 * operation as changed; null when the operation is unknown or already at or past that state.
 * One statement: the row is locked and checked by the update itself, so callers racing with the
 * same news change it once.
 */
export async function advanceOperation(
  db: Executor,
  reported: Pick<ProviderOperation, 'reference' | 'status' | 'providerId' | 'failureCode'>,
  now: Date,
): Promise<PaymentOperation | null> {
  const row = await db
    .updateTable('payment_operations')
    .set({
      status: reported.status,
      provider_id: reported.providerId,
      failure_code: reported.failureCode,
      updated_at: now,
    })
    .where('reference', '=', reported.reference)
    .where('status', 'in', [...advancesFrom(reported.status)])
    .returningAll()
    .executeTakeFirst();
  return row ? toOperation(row) : null;
}

/** Marks an operation in doubt after a call that never answered, unless the provider's state is known. */
export async function markOperationUnknown(db: Executor, reference: string, now: Date): Promise<void> {
  await db
    .updateTable('payment_operations')
    .set({ status: 'unknown', updated_at: now })
    .where('reference', '=', reference)
    .where('status', 'in', ['requested', 'unknown'])
    .execute();
}

/** Changes an operation; with `onlyIf`, only one in one of those states. */
export async function updateOperation(
  db: Executor,
  reference: string,
  changes: Partial<Pick<PaymentOperationsTable, 'status' | 'provider_id' | 'failure_code'>> & {
    updated_at: Date;
  },
  options: { onlyIf?: readonly KnownStatus[] } = {},
): Promise<void> {
  await db
    .updateTable('payment_operations')
    .set(changes)
    .where('reference', '=', reference)
    .$if(options.onlyIf !== undefined, (query) => query.where('status', 'in', options.onlyIf ?? []))
    .execute();
}

export async function operationsOf(db: Executor, paymentIds: readonly string[]): Promise<PaymentOperation[]> {
  if (paymentIds.length === 0) return [];
  return (
    await db
      .selectFrom('payment_operations')
      .selectAll()
      .where('payment_id', 'in', paymentIds)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
  ).map(toOperation);
}

/** Operations Baton recorded or changed since `since`, after the cursor `after` (an operation id). */
export async function operationsSince(
  db: Executor,
  since: Date,
  after: string | null,
  limit: number,
): Promise<PaymentOperation[]> {
  let query = db
    .selectFrom('payment_operations')
    .selectAll()
    .where('updated_at', '>=', since)
    .orderBy('id')
    .limit(limit);
  if (after !== null) query = query.where('id', '>', after);
  return (await query.execute()).map(toOperation);
}

/** Records a callback's event id; false when it was already applied. */
export async function recordProviderEvent(
  db: Executor,
  event: { eventId: string; reference: string; status: string; receivedAt: Date },
): Promise<boolean> {
  const inserted = await db
    .insertInto('payment_provider_events')
    .values({
      event_id: event.eventId,
      reference: event.reference,
      status: event.status,
      received_at: event.receivedAt,
    })
    .onConflict((oc) => oc.column('event_id').doNothing())
    .returning('event_id')
    .executeTakeFirst();
  return inserted !== undefined;
}

// --- refunds -----------------------------------------------------------------------------------

export async function insertRefund(db: Executor, row: Insertable<PaymentRefundsTable>): Promise<void> {
  await db.insertInto('payment_refunds').values(row).execute();
}

export async function findRefundByReference(db: Executor, reference: string): Promise<Refund | null> {
  const row = await db
    .selectFrom('payment_refunds')
    .selectAll()
    .where('reference', '=', reference)
    .executeTakeFirst();
  return row ? toRefund(row) : null;
}

export async function findRefund(db: Executor, id: string): Promise<Refund | null> {
  const row = await db.selectFrom('payment_refunds').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toRefund(row) : null;
}

/**
 * Names the refund that retries a failed one, unless it was retried already: one conditional
 * update, so two retries of the same refund cannot both go out. Null when it was not failed or
 * was retried.
 */
export async function markRefundRetried(db: Executor, id: string, retriedBy: string): Promise<Refund | null> {
  const row = await db
    .updateTable('payment_refunds')
    .set({ retried_by: retriedBy })
    .where('id', '=', id)
    .where('status', '=', 'failed')
    .where('retried_by', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toRefund(row) : null;
}

/** Failed refunds nobody has retried: money owed to customers, by id after `after`. */
export async function owedRefunds(db: Executor, after: string | null, limit: number): Promise<Refund[]> {
  let query = db
    .selectFrom('payment_refunds')
    .selectAll()
    .where('status', '=', 'failed')
    .where('retried_by', 'is', null);
  if (after !== null) query = query.where('id', '>', after);
  return (await query.orderBy('id').limit(limit).execute()).map(toRefund);
}

export async function refundsOf(db: Executor, paymentIds: readonly string[]): Promise<Refund[]> {
  if (paymentIds.length === 0) return [];
  return (
    await db
      .selectFrom('payment_refunds')
      .selectAll()
      .where('payment_id', 'in', paymentIds)
      .orderBy('id')
      .execute()
  ).map(toRefund);
}

/** Changes a refund; with `onlyIf`, only one in one of those states. */
export async function updateRefund(
  db: Executor,
  reference: string,
  changes: Partial<Pick<PaymentRefundsTable, 'status' | 'failure_code'>> & { updated_at: Date },
  options: { onlyIf?: readonly RefundStatus[] } = {},
): Promise<void> {
  await db
    .updateTable('payment_refunds')
    .set(changes)
    .where('reference', '=', reference)
    .$if(options.onlyIf !== undefined, (query) => query.where('status', 'in', options.onlyIf ?? []))
    .execute();
}

export async function unsettledRefunds(db: Executor, before: Date, limit: number): Promise<Refund[]> {
  return (
    await db
      .selectFrom('payment_refunds')
      .selectAll()
      .where('status', 'in', ['pending', 'unknown'])
      .where(retryWait, '<=', before)
      .orderBy(retryWait)
      .orderBy('id')
      .limit(limit)
      .execute()
  ).map(toRefund);
}

// --- chargebacks -------------------------------------------------------------------------------

export async function insertChargeback(db: Executor, row: PaymentChargebacksTable): Promise<void> {
  await db.insertInto('payment_chargebacks').values(row).execute();
}

export async function findChargeback(
  db: Executor,
  id: string,
  options: { lock?: boolean } = {},
): Promise<Chargeback | null> {
  let query = db.selectFrom('payment_chargebacks').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toChargeback(row) : null;
}

export async function findChargebackByReference(db: Executor, reference: string): Promise<Chargeback | null> {
  const row = await db
    .selectFrom('payment_chargebacks')
    .selectAll()
    .where('reference', '=', reference)
    .executeTakeFirst();
  return row ? toChargeback(row) : null;
}

export async function chargebacksOf(db: Executor, paymentIds: readonly string[]): Promise<Chargeback[]> {
  if (paymentIds.length === 0) return [];
  return (
    await db
      .selectFrom('payment_chargebacks')
      .selectAll()
      .where('payment_id', 'in', paymentIds)
      .orderBy('id')
      .execute()
  ).map(toChargeback);
}

/**
 * What an order's payments in a currency captured, and what chargebacks took back of them: the
 * most that can still go back to the order's customer is the difference, less refunds. The
 * payments are locked first, until the caller's transaction ends, as recording a chargeback or a
 * refund locks its payment: refunds of one order judged against this take turns, and each reads
 * the refunds and chargebacks committed before it.
 */
export async function capturedAndChargedBack(
  db: Executor,
  orderRef: string,
  currency: string,
): Promise<{ capturedMinor: bigint; chargedBackMinor: bigint }> {
  const payments = await db
    .selectFrom('payments')
    .select('captured_minor')
    .where('order_ref', '=', orderRef)
    .where('currency', '=', currency)
    .orderBy('id')
    .forUpdate()
    .execute();
  const chargedBack = await db
    .selectFrom('payment_chargebacks')
    .select(sql<string>`coalesce(sum(amount_minor), 0)::text`.as('total'))
    .where('order_ref', '=', orderRef)
    .where('currency', '=', currency)
    .executeTakeFirstOrThrow();
  return {
    capturedMinor: payments.reduce((sum, payment) => sum + payment.captured_minor, 0n),
    chargedBackMinor: BigInt(chargedBack.total),
  };
}

export async function listChargebacks(
  db: Executor,
  filter: { status?: ChargebackStatus | undefined; after?: string | undefined; limit: number },
): Promise<Chargeback[]> {
  let query = db
    .selectFrom('payment_chargebacks')
    .selectAll()
    .orderBy('id', 'desc')
    .limit(filter.limit + 1);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.after !== undefined) query = query.where('id', '<', filter.after);
  return (await query.execute()).map(toChargeback);
}

export async function decideChargebackRow(
  db: Executor,
  id: string,
  decision: Pick<
    PaymentChargebacksTable,
    'liability' | 'partner_id' | 'partner_share_minor' | 'decided_by' | 'decided_at'
  >,
): Promise<void> {
  await db
    .updateTable('payment_chargebacks')
    .set({ ...decision, status: 'decided' })
    .where('id', '=', id)
    .execute();
}

// --- reconciliation reports ---------------------------------------------------------------------

export async function insertReport(db: Executor, report: ReconciliationReport): Promise<void> {
  await db
    .insertInto('reconciliation_reports')
    .values({
      id: report.id,
      since: report.since,
      ran_at: report.ranAt,
      operations_checked: report.operationsChecked,
      discrepancy_count: report.discrepancies.length,
      discrepancies: JSON.stringify(report.discrepancies),
    })
    .execute();
}

export async function findReport(db: Executor, id: string): Promise<ReconciliationReport | null> {
  const row = await db
    .selectFrom('reconciliation_reports')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? toReport(row) : null;
}

export async function listReports(db: Executor, page: { after?: string | undefined; limit: number }) {
  let query = db
    .selectFrom('reconciliation_reports')
    .selectAll()
    .orderBy('id', 'desc')
    .limit(page.limit + 1);
  if (page.after !== undefined) query = query.where('id', '<', page.after);
  return (await query.execute()).map(toReport);
}
