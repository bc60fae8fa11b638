import type { Insertable, Selectable, Updateable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type {
  CustomerId,
  OfferId,
  OfferingVersionId,
  OrderId,
  PartnerId,
  QuoteId,
  ReservationId,
  WorkOrderId,
} from '../../../kernel/ids.js';
import { type Page, pageOf } from '../../../kernel/pagination.js';
import type { LegStatus, OrderStatus, WorkOrderStatus } from '../domain/work-order.js';
import type {
  OrderLegsTable,
  OrdersTable,
  PricingKind,
  QuoteLegsTable,
  QuotesTable,
  WorkOrdersTable,
} from './tables.js';

export interface Quote {
  readonly id: QuoteId;
  readonly customerId: CustomerId;
  readonly offeringKey: string;
  readonly offeringVersionId: OfferingVersionId;
  readonly quantity: number;
  readonly region: string;
  readonly deadline: Date;
  readonly currency: string;
  readonly pricingKind: PricingKind;
  readonly costMinor: bigint;
  readonly marginMinor: bigint;
  readonly totalMinor: bigint;
  readonly commissionMinor: bigint;
  readonly feeVersionId: string | null;
  readonly earliestFinish: Date;
  readonly validUntil: Date;
  readonly orderId: OrderId | null;
  readonly createdAt: Date;
}

export interface QuoteLeg {
  readonly stepKey: string;
  readonly position: number;
  readonly name: string;
  readonly capability: string;
  readonly constraints: Record<string, unknown>;
  readonly after: readonly string[];
  readonly partnerId: PartnerId;
  readonly offerId: OfferId;
  readonly reservationId: ReservationId;
  readonly allocationId: string;
  readonly quantity: number;
  readonly unitPriceMinor: bigint;
  readonly grossMinor: bigint;
  readonly marginMinor: bigint;
  readonly commissionMinor: bigint;
  readonly leadTimeHours: number;
  readonly earliestStart: Date;
  readonly earliestFinish: Date;
  readonly latestStart: Date;
  readonly dueBy: Date;
  readonly score: number;
  readonly breakdown: Record<string, unknown>;
}

export interface Order {
  readonly id: OrderId;
  readonly quoteId: QuoteId;
  readonly customerId: CustomerId;
  readonly offeringKey: string;
  readonly offeringVersionId: OfferingVersionId;
  readonly quantity: number;
  readonly region: string;
  readonly deadline: Date;
  readonly currency: string;
  readonly pricingKind: PricingKind;
  readonly totalMinor: bigint;
  readonly feeVersionId: string | null;
  readonly rejectionPolicy: 'refund' | 'redo';
  readonly acceptanceWindowMinutes: number;
  readonly autoConfirmHours: number;
  readonly status: OrderStatus;
  readonly paymentId: string | null;
  readonly refundedMinor: bigint;
  readonly refunds: number;
  readonly failureCode: string | null;
  readonly failureDetail: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly closedAt: Date | null;
}

export interface OrderLeg {
  readonly orderId: OrderId;
  readonly stepKey: string;
  readonly position: number;
  readonly name: string;
  readonly capability: string;
  readonly constraints: Record<string, unknown>;
  readonly after: readonly string[];
  readonly quantity: number;
  readonly budgetMinor: bigint;
  readonly status: LegStatus;
  readonly partnerId: PartnerId;
  readonly offerId: OfferId;
  readonly reservationId: ReservationId;
  readonly unitPriceMinor: bigint;
  readonly grossMinor: bigint;
  readonly marginMinor: bigint;
  readonly leadTimeHours: number;
  readonly dueBy: Date;
  readonly expectedStart: Date;
  readonly expectedFinish: Date;
  readonly workOrderId: WorkOrderId | null;
  readonly attempts: number;
  readonly replans: number;
  readonly failedPartnerIds: readonly PartnerId[];
  readonly late: boolean;
  readonly updatedAt: Date;
}

export interface WorkOrder {
  readonly id: WorkOrderId;
  readonly orderId: OrderId;
  readonly stepKey: string;
  readonly attempt: number;
  readonly partnerId: PartnerId;
  readonly offerId: OfferId;
  readonly reservationId: ReservationId;
  readonly capability: string;
  readonly region: string;
  readonly quantity: number;
  readonly currency: string;
  readonly unitPriceMinor: bigint;
  readonly grossMinor: bigint;
  readonly status: WorkOrderStatus;
  readonly acceptBy: Date;
  readonly dueBy: Date;
  readonly confirmBy: Date | null;
  readonly late: boolean;
  readonly reason: string | null;
  readonly offeredAt: Date;
  readonly acceptedAt: Date | null;
  readonly startedAt: Date | null;
  readonly deliveredAt: Date | null;
  readonly closedAt: Date | null;
  readonly updatedAt: Date;
}

const toQuote = (row: Selectable<QuotesTable>): Quote => ({
  id: row.id as QuoteId,
  customerId: row.customer_id as CustomerId,
  offeringKey: row.offering_key,
  offeringVersionId: row.offering_version_id as OfferingVersionId,
  quantity: row.quantity,
  region: row.region,
  deadline: row.deadline,
  currency: row.currency,
  pricingKind: row.pricing_kind,
  costMinor: row.cost_minor,
  marginMinor: row.margin_minor,
  totalMinor: row.total_minor,
  commissionMinor: row.commission_minor,
  feeVersionId: row.fee_version_id,
  earliestFinish: row.earliest_finish,
  validUntil: row.valid_until,
  orderId: row.order_id as OrderId | null,
  createdAt: row.created_at,
});

const toQuoteLeg = (row: Selectable<QuoteLegsTable>): QuoteLeg => ({
  stepKey: row.step_key,
  position: row.position,
  name: row.name,
  capability: row.capability,
  constraints: row.constraints,
  after: row.after,
  partnerId: row.partner_id as PartnerId,
  offerId: row.offer_id as OfferId,
  reservationId: row.reservation_id as ReservationId,
  allocationId: row.allocation_id,
  quantity: row.quantity,
  unitPriceMinor: row.unit_price_minor,
  grossMinor: row.gross_minor,
  marginMinor: row.margin_minor,
  commissionMinor: row.commission_minor,
  leadTimeHours: row.lead_time_hours,
  earliestStart: row.earliest_start,
  earliestFinish: row.earliest_finish,
  latestStart: row.latest_start,
  dueBy: row.due_by,
  score: row.score,
  breakdown: row.breakdown,
});

const toOrder = (row: Selectable<OrdersTable>): Order => ({
  id: row.id as OrderId,
  quoteId: row.quote_id as QuoteId,
  customerId: row.customer_id as CustomerId,
  offeringKey: row.offering_key,
  offeringVersionId: row.offering_version_id as OfferingVersionId,
  quantity: row.quantity,
  region: row.region,
  deadline: row.deadline,
  currency: row.currency,
  pricingKind: row.pricing_kind,
  totalMinor: row.total_minor,
  feeVersionId: row.fee_version_id,
  rejectionPolicy: row.rejection_policy,
  acceptanceWindowMinutes: row.acceptance_window_minutes,
  autoConfirmHours: row.auto_confirm_hours,
  status: row.status,
  paymentId: row.payment_id,
  refundedMinor: row.refunded_minor,
  refunds: row.refunds,
  failureCode: row.failure_code,
  failureDetail: row.failure_detail,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  closedAt: row.closed_at,
});

const toLeg = (row: Selectable<OrderLegsTable>): OrderLeg => ({
  orderId: row.order_id as OrderId,
  stepKey: row.step_key,
  position: row.position,
  name: row.name,
  capability: row.capability,
  constraints: row.constraints,
  after: row.after,
  quantity: row.quantity,
  budgetMinor: row.budget_minor,
  status: row.status,
  partnerId: row.partner_id as PartnerId,
  offerId: row.offer_id as OfferId,
  reservationId: row.reservation_id as ReservationId,
  unitPriceMinor: row.unit_price_minor,
  grossMinor: row.gross_minor,
  marginMinor: row.margin_minor,
  leadTimeHours: row.lead_time_hours,
  dueBy: row.due_by,
  expectedStart: row.expected_start,
  expectedFinish: row.expected_finish,
  workOrderId: row.work_order_id as WorkOrderId | null,
  attempts: row.attempts,
  replans: row.replans,
  failedPartnerIds: row.failed_partner_ids as PartnerId[],
  late: row.late,
  updatedAt: row.updated_at,
});

const toWorkOrder = (row: Selectable<WorkOrdersTable>): WorkOrder => ({
  id: row.id as WorkOrderId,
  orderId: row.order_id as OrderId,
  stepKey: row.step_key,
  attempt: row.attempt,
  partnerId: row.partner_id as PartnerId,
  offerId: row.offer_id as OfferId,
  reservationId: row.reservation_id as ReservationId,
  capability: row.capability,
  region: row.region,
  quantity: row.quantity,
  currency: row.currency,
  unitPriceMinor: row.unit_price_minor,
  grossMinor: row.gross_minor,
  status: row.status,
  acceptBy: row.accept_by,
  dueBy: row.due_by,
  confirmBy: row.confirm_by,
  late: row.late,
  reason: row.reason,
  offeredAt: row.offered_at,
  acceptedAt: row.accepted_at,
  startedAt: row.started_at,
  deliveredAt: row.delivered_at,
  closedAt: row.closed_at,
  updatedAt: row.updated_at,
});

// -------------------------------------------------------------------------------------------------
// Quotes

export async function insertQuote(
  db: Executor,
  quote: Insertable<QuotesTable>,
  legs: readonly Insertable<QuoteLegsTable>[],
): Promise<void> {
  await db.insertInto('quotes').values(quote).execute();
  if (legs.length > 0)
    await db
      .insertInto('quote_legs')
      .values([...legs])
      .execute();
}

export async function findQuote(db: Executor, id: string, options: { lock?: boolean } = {}) {
  let query = db.selectFrom('quotes').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toQuote(row) : null;
}

export async function quoteLegs(db: Executor, quoteId: string): Promise<QuoteLeg[]> {
  const rows = await db
    .selectFrom('quote_legs')
    .selectAll()
    .where('quote_id', '=', quoteId)
    .orderBy('position')
    .execute();
  return rows.map(toQuoteLeg);
}

export async function markQuoteOrdered(db: Executor, quoteId: string, orderId: string): Promise<void> {
  await db.updateTable('quotes').set({ order_id: orderId }).where('id', '=', quoteId).execute();
}

// -------------------------------------------------------------------------------------------------
// Orders and legs

export async function insertOrder(
  db: Executor,
  order: Insertable<OrdersTable>,
  legs: readonly Insertable<OrderLegsTable>[],
): Promise<Order> {
  const row = await db.insertInto('orders').values(order).returningAll().executeTakeFirstOrThrow();
  await db
    .insertInto('order_legs')
    .values([...legs])
    .execute();
  return toOrder(row);
}

export async function findOrder(db: Executor, id: string, options: { lock?: boolean } = {}) {
  let query = db.selectFrom('orders').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toOrder(row) : null;
}

export async function findOrderByPayment(db: Executor, paymentId: string, options: { lock?: boolean } = {}) {
  let query = db.selectFrom('orders').selectAll().where('payment_id', '=', paymentId);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toOrder(row) : null;
}

export async function updateOrder(db: Executor, id: string, patch: Updateable<OrdersTable>): Promise<Order> {
  const row = await db
    .updateTable('orders')
    .set(patch)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return toOrder(row);
}

export interface OrderQuery {
  readonly customerId?: string | undefined;
  readonly status?: OrderStatus | undefined;
  readonly offeringKey?: string | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

export async function listOrders(db: Executor, query: OrderQuery): Promise<Page<Order>> {
  let select = db
    .selectFrom('orders')
    .selectAll()
    .orderBy('id')
    .limit(query.limit + 1);
  if (query.customerId !== undefined) select = select.where('customer_id', '=', query.customerId);
  if (query.status !== undefined) select = select.where('status', '=', query.status);
  if (query.offeringKey !== undefined) select = select.where('offering_key', '=', query.offeringKey);
  if (query.after !== undefined) select = select.where('id', '>', query.after);
  return pageOf(await select.execute(), query.limit, toOrder);
}

export async function orderLegs(db: Executor, orderId: string, options: { lock?: boolean } = {}) {
  let query = db.selectFrom('order_legs').selectAll().where('order_id', '=', orderId).orderBy('position');
  if (options.lock) query = query.forUpdate();
  return (await query.execute()).map(toLeg);
}

export async function updateLeg(
  db: Executor,
  orderId: string,
  stepKey: string,
  patch: Updateable<OrderLegsTable>,
): Promise<OrderLeg> {
  const row = await db
    .updateTable('order_legs')
    .set(patch)
    .where('order_id', '=', orderId)
    .where('step_key', '=', stepKey)
    .returningAll()
    .executeTakeFirstOrThrow();
  return toLeg(row);
}

// -------------------------------------------------------------------------------------------------
// Work orders

export async function insertWorkOrder(db: Executor, row: Insertable<WorkOrdersTable>): Promise<WorkOrder> {
  return toWorkOrder(await db.insertInto('work_orders').values(row).returningAll().executeTakeFirstOrThrow());
}

export async function findWorkOrder(db: Executor, id: string, options: { lock?: boolean } = {}) {
  let query = db.selectFrom('work_orders').selectAll().where('id', '=', id);
  if (options.lock) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toWorkOrder(row) : null;
}

export async function updateWorkOrder(
  db: Executor,
  id: string,
  patch: Updateable<WorkOrdersTable>,
): Promise<WorkOrder> {
  return toWorkOrder(
    await db
      .updateTable('work_orders')
      .set(patch)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
}

export interface WorkOrderQuery {
  readonly partnerId?: string | undefined;
  readonly orderId?: string | undefined;
  readonly status?: WorkOrderStatus | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

export async function listWorkOrders(db: Executor, query: WorkOrderQuery): Promise<Page<WorkOrder>> {
  let select = db
    .selectFrom('work_orders')
    .selectAll()
    .orderBy('id')
    .limit(query.limit + 1);
  if (query.partnerId !== undefined) select = select.where('partner_id', '=', query.partnerId);
  if (query.orderId !== undefined) select = select.where('order_id', '=', query.orderId);
  if (query.status !== undefined) select = select.where('status', '=', query.status);
  if (query.after !== undefined) select = select.where('id', '>', query.after);
  return pageOf(await select.execute(), query.limit, toWorkOrder);
}

export async function workOrdersOf(db: Executor, orderId: string): Promise<WorkOrder[]> {
  const rows = await db
    .selectFrom('work_orders')
    .selectAll()
    .where('order_id', '=', orderId)
    .orderBy('id')
    .execute();
  return rows.map(toWorkOrder);
}

// -------------------------------------------------------------------------------------------------
// What the timers look for

/** What each timer looks for: work orders in these states whose time in this column has come. */
export const TIMERS = {
  /** Offers whose acceptance window has closed. */
  acceptance: { statuses: ['offered'], column: 'accept_by', unflaggedOnly: false },
  /** Work still owed after its due time, not flagged late yet. */
  due: { statuses: ['offered', 'accepted', 'in_progress'], column: 'due_by', unflaggedOnly: true },
  /** Deliveries the customer has not judged within the auto-confirm period. */
  confirmation: { statuses: ['delivered'], column: 'confirm_by', unflaggedOnly: false },
} as const satisfies Record<
  string,
  {
    statuses: readonly WorkOrderStatus[];
    column: 'accept_by' | 'due_by' | 'confirm_by';
    unflaggedOnly: boolean;
  }
>;
export type Timer = keyof typeof TIMERS;

/** The work orders whose `timer` has run out by `now`, the oldest first. */
export async function timedOut(db: Executor, timer: Timer, now: Date, limit: number): Promise<WorkOrder[]> {
  const { statuses, column, unflaggedOnly } = TIMERS[timer];
  let query = db
    .selectFrom('work_orders')
    .selectAll()
    .where('status', 'in', [...statuses])
    .where(column, '<=', now)
    .orderBy(column)
    .limit(limit);
  if (unflaggedOnly) query = query.where('late', '=', false);
  return (await query.execute()).map(toWorkOrder);
}

/** Legs not started whose partner is one of `partnerIds`: planned legs and offered or accepted work. */
export async function unstartedLegsOf(
  db: Executor,
  partnerIds: readonly string[],
  limit: number,
): Promise<{ orderId: OrderId; stepKey: string }[]> {
  if (partnerIds.length === 0) return [];
  const planned = await db
    .selectFrom('order_legs')
    .select(['order_id', 'step_key'])
    .where('status', '=', 'planned')
    .where('partner_id', 'in', [...partnerIds])
    .limit(limit)
    .execute();
  const offered = await db
    .selectFrom('work_orders')
    .select(['order_id', 'step_key'])
    .where('status', 'in', ['offered', 'accepted'])
    .where('partner_id', 'in', [...partnerIds])
    .limit(limit)
    .execute();
  return [...planned, ...offered].map((row) => ({ orderId: row.order_id as OrderId, stepKey: row.step_key }));
}
