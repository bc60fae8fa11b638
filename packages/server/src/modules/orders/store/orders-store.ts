import { type Insertable, type RawBuilder, type Selectable, sql, type Updateable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import { executeUnawaited } from '../../../kernel/database/pipelined-driver.js';
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
  /** What a customer-side subsidy would pay of the margin when ordered; charged: total less it. */
  readonly subsidyMinor: bigint;
  readonly subsidyProgrammeId: string | null;
  readonly subsidyKind: 'waiver' | 'rebate' | null;
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
  /** The customer's segment when the order was placed; null: none. */
  readonly customerSegment: string | null;
  /** What a customer-side subsidy paid into escrow at placement; the payment is the total less it. */
  readonly subsidyMinor: bigint;
  readonly subsidyProgrammeId: string | null;
  /**
   * The tier of each partner the order was placed with, by partner id: its legs' fees match on
   * it. A partner that took a leg over later is not in it.
   */
  readonly partnerTiers: Readonly<Record<string, string>>;
  readonly rejectionPolicy: 'refund' | 'redo';
  /** Under `redo`, how many times a leg is redone; the rejection after that is refunded. */
  readonly maxRedos: number;
  readonly acceptanceWindowMinutes: number;
  readonly autoConfirmHours: number;
  readonly status: OrderStatus;
  readonly paymentId: string | null;
  /** Given back to the customer through the provider. */
  readonly refundedMinor: bigint;
  /** Of the refunds, the subsidy's part, back in its programme's budget. */
  readonly subsidyReturnedMinor: bigint;
  /** Of the refunds, what operators gave back by hand without a second operator's approval. */
  readonly refundedAloneMinor: bigint;
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
  subsidyMinor: row.subsidy_minor,
  subsidyProgrammeId: row.subsidy_programme_id,
  subsidyKind: row.subsidy_kind,
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
  customerSegment: row.customer_segment,
  subsidyMinor: row.subsidy_minor,
  subsidyProgrammeId: row.subsidy_programme_id,
  partnerTiers: row.partner_tiers,
  rejectionPolicy: row.rejection_policy,
  maxRedos: row.max_redos,
  acceptanceWindowMinutes: row.acceptance_window_minutes,
  autoConfirmHours: row.auto_confirm_hours,
  status: row.status,
  paymentId: row.payment_id,
  refundedMinor: row.refunded_minor,
  subsidyReturnedMinor: row.subsidy_returned_minor,
  refundedAloneMinor: row.refunded_alone_minor,
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
// Reading several tables in one query: each table's columns under a prefix of their own.

/** Every column of a table, checked against its type so that none is forgotten. */
function columnsOf<T>(columns: Record<keyof T & string, true>): readonly (keyof T & string)[] {
  return Object.keys(columns) as (keyof T & string)[];
}

const QUOTE_COLUMNS = columnsOf<QuotesTable>({
  id: true,
  customer_id: true,
  offering_key: true,
  offering_version_id: true,
  quantity: true,
  region: true,
  deadline: true,
  currency: true,
  pricing_kind: true,
  cost_minor: true,
  margin_minor: true,
  total_minor: true,
  commission_minor: true,
  fee_version_id: true,
  subsidy_minor: true,
  subsidy_programme_id: true,
  subsidy_kind: true,
  earliest_finish: true,
  valid_until: true,
  order_id: true,
  created_at: true,
});

const QUOTE_LEG_COLUMNS = columnsOf<QuoteLegsTable>({
  quote_id: true,
  step_key: true,
  position: true,
  name: true,
  capability: true,
  constraints: true,
  after: true,
  partner_id: true,
  offer_id: true,
  reservation_id: true,
  allocation_id: true,
  quantity: true,
  unit_price_minor: true,
  gross_minor: true,
  margin_minor: true,
  commission_minor: true,
  lead_time_hours: true,
  earliest_start: true,
  earliest_finish: true,
  latest_start: true,
  due_by: true,
  score: true,
  breakdown: true,
});

const ORDER_COLUMNS = columnsOf<OrdersTable>({
  id: true,
  quote_id: true,
  customer_id: true,
  offering_key: true,
  offering_version_id: true,
  quantity: true,
  region: true,
  deadline: true,
  currency: true,
  pricing_kind: true,
  total_minor: true,
  fee_version_id: true,
  customer_segment: true,
  partner_tiers: true,
  subsidy_minor: true,
  subsidy_programme_id: true,
  rejection_policy: true,
  max_redos: true,
  acceptance_window_minutes: true,
  auto_confirm_hours: true,
  status: true,
  payment_id: true,
  refunded_minor: true,
  subsidy_returned_minor: true,
  refunded_alone_minor: true,
  refunds: true,
  failure_code: true,
  failure_detail: true,
  created_at: true,
  updated_at: true,
  closed_at: true,
});

const LEG_COLUMNS = columnsOf<OrderLegsTable>({
  order_id: true,
  step_key: true,
  position: true,
  name: true,
  capability: true,
  constraints: true,
  after: true,
  quantity: true,
  budget_minor: true,
  status: true,
  partner_id: true,
  offer_id: true,
  reservation_id: true,
  unit_price_minor: true,
  gross_minor: true,
  margin_minor: true,
  lead_time_hours: true,
  due_by: true,
  expected_start: true,
  expected_finish: true,
  work_order_id: true,
  attempts: true,
  replans: true,
  failed_partner_ids: true,
  late: true,
  updated_at: true,
});

const WORK_ORDER_COLUMNS = columnsOf<WorkOrdersTable>({
  id: true,
  order_id: true,
  step_key: true,
  attempt: true,
  partner_id: true,
  offer_id: true,
  reservation_id: true,
  capability: true,
  region: true,
  quantity: true,
  currency: true,
  unit_price_minor: true,
  gross_minor: true,
  status: true,
  accept_by: true,
  due_by: true,
  confirm_by: true,
  late: true,
  reason: true,
  offered_at: true,
  accepted_at: true,
  started_at: true,
  delivered_at: true,
  closed_at: true,
  updated_at: true,
});

/** The selections `prefixed` built, by column list and alias. */
const selections = new Map<readonly string[], Map<string, RawBuilder<unknown>>>();

/**
 * `alias.column as alias__column` for each column. Built once per list and alias: the text
 * never changes, and these lists are long.
 */
function prefixed(alias: string, columns: readonly string[]): RawBuilder<unknown> {
  let byAlias = selections.get(columns);
  if (!byAlias) {
    byAlias = new Map();
    selections.set(columns, byAlias);
  }
  let selection = byAlias.get(alias);
  if (!selection) {
    selection = sql.raw(
      columns.map((column) => `"${alias}"."${column}" as "${alias}__${column}"`).join(', '),
    );
    byAlias.set(alias, selection);
  }
  return selection;
}

/** The columns `prefixed` selected under `alias`, as the table's row. */
function unprefixed<T>(
  row: Record<string, unknown>,
  alias: string,
  columns: readonly string[],
): Selectable<T> {
  return Object.fromEntries(columns.map((column) => [column, row[`${alias}__${column}`]])) as Selectable<T>;
}

/** A work order as its row. */
const workOrderRow = (workOrder: WorkOrder): Selectable<WorkOrdersTable> => ({
  id: workOrder.id,
  order_id: workOrder.orderId,
  step_key: workOrder.stepKey,
  attempt: workOrder.attempt,
  partner_id: workOrder.partnerId,
  offer_id: workOrder.offerId,
  reservation_id: workOrder.reservationId,
  capability: workOrder.capability,
  region: workOrder.region,
  quantity: workOrder.quantity,
  currency: workOrder.currency,
  unit_price_minor: workOrder.unitPriceMinor,
  gross_minor: workOrder.grossMinor,
  status: workOrder.status,
  accept_by: workOrder.acceptBy,
  due_by: workOrder.dueBy,
  confirm_by: workOrder.confirmBy,
  late: workOrder.late,
  reason: workOrder.reason,
  offered_at: workOrder.offeredAt,
  accepted_at: workOrder.acceptedAt,
  started_at: workOrder.startedAt,
  delivered_at: workOrder.deliveredAt,
  closed_at: workOrder.closedAt,
  updated_at: workOrder.updatedAt,
});

// -------------------------------------------------------------------------------------------------
// Quotes

/** Writes a quote and its legs in one statement. */
export async function insertQuote(
  db: Executor,
  quote: Insertable<QuotesTable>,
  legs: readonly Insertable<QuoteLegsTable>[],
): Promise<void> {
  if (legs.length === 0) {
    await db.insertInto('quotes').values(quote).execute();
    return;
  }
  await db
    .with('quote', (creator) => creator.insertInto('quotes').values(quote).returning('id'))
    .insertInto('quote_legs')
    .values([...legs])
    .execute();
}

/**
 * A quote with its legs in one query, the quote locked when asked (its legs never change).
 * Undefined when there is no such quote.
 */
export async function findQuoteWithLegs(
  db: Executor,
  id: string,
  options: { lock?: boolean } = {},
): Promise<{ quote: Quote; legs: QuoteLeg[] } | undefined> {
  const { rows } = await sql<Record<string, unknown>>`
    select ${prefixed('q', QUOTE_COLUMNS)}, ${prefixed('l', QUOTE_LEG_COLUMNS)}
    from quotes q left join quote_legs l on l.quote_id = q.id
    where q.id = ${id}
    order by l.position
    ${options.lock ? sql`for update of q` : sql``}
  `.execute(db);
  const first = rows[0];
  if (!first) return undefined;
  return {
    quote: toQuote(unprefixed<QuotesTable>(first, 'q', QUOTE_COLUMNS)),
    legs: rows
      .filter((row) => row.l__quote_id !== null)
      .map((row) => toQuoteLeg(unprefixed<QuoteLegsTable>(row, 'l', QUOTE_LEG_COLUMNS))),
  };
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

// -------------------------------------------------------------------------------------------------
// Orders and legs

/**
 * Writes an order placed from a quote, its legs, and the quote's mark that it was ordered, in
 * one statement. The order and legs are returned as written. Nothing is read back, so the
 * statement is not waited for: it travels with the transaction's next statement, which (or the
 * commit) reports its failure. Must run inside a transaction.
 */
export async function placeOrderRows(
  db: Executor,
  order: Selectable<OrdersTable>,
  legs: readonly Selectable<OrderLegsTable>[],
): Promise<{ order: Order; legs: OrderLeg[] }> {
  const legRow = (leg: Selectable<OrderLegsTable>): Insertable<OrderLegsTable> => ({
    ...leg,
    constraints: JSON.stringify(leg.constraints),
  });
  let query = db.with('placed', (creator) =>
    creator
      .insertInto('orders')
      .values({ ...order, partner_tiers: JSON.stringify(order.partner_tiers) })
      .returning('id'),
  );
  if (legs.length > 0) {
    query = query.with('placed_legs', (creator) =>
      creator.insertInto('order_legs').values(legs.map(legRow)).returning('order_id'),
    ) as unknown as typeof query;
  }
  await executeUnawaited(
    db,
    query.updateTable('quotes').set({ order_id: order.id }).where('id', '=', order.quote_id),
  );
  return { order: toOrder(order), legs: legs.map(toLeg) };
}

export async function findOrder(db: Executor, id: string, options: { lock?: boolean } = {}) {
  let query = db.selectFrom('orders').selectAll().where('id', '=', id);
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

/**
 * Writes each leg's changeable fields (status, partner and price, times, work order, counts,
 * flags) as `legs` has them, and the new work orders `offered`, in one statement. Callers pass
 * legs read under the order's lock and changed since, so that nothing written in between is lost.
 * Nothing is read back, so the statement is not waited for: it travels with the transaction's
 * next statement, which (or the commit) reports its failure. Must run inside a transaction.
 */
export async function saveLegs(
  db: Executor,
  orderId: string,
  legs: readonly OrderLeg[],
  offered: readonly WorkOrder[] = [],
): Promise<void> {
  const inserting =
    offered.length === 0
      ? null
      : sql`insert into work_orders (${sql.raw(WORK_ORDER_COLUMNS.map((column) => `"${column}"`).join(', '))})
        values ${sql.join(
          offered.map((workOrder) => {
            const row = workOrderRow(workOrder);
            return sql`(${sql.join(WORK_ORDER_COLUMNS.map((column) => sql`${row[column]}`))})`;
          }),
        )}`;
  if (legs.length === 0) {
    if (inserting) await executeUnawaited(db, inserting.compile(db));
    return;
  }
  const values = legs.map(
    (leg) => sql`(
      ${leg.stepKey}::text, ${leg.status}::text, ${leg.partnerId}::text, ${leg.offerId}::text,
      ${leg.reservationId}::text, ${leg.unitPriceMinor}::int8, ${leg.grossMinor}::int8,
      ${leg.marginMinor}::int8, ${leg.leadTimeHours}::int4, ${leg.expectedStart}::timestamptz,
      ${leg.expectedFinish}::timestamptz, ${leg.workOrderId}::text, ${leg.attempts}::int4,
      ${leg.replans}::int4, ${[...leg.failedPartnerIds]}::text[], ${leg.late}::bool,
      ${leg.updatedAt}::timestamptz
    )`,
  );
  const saving = sql`
    ${inserting ? sql`with offered as (${inserting})` : sql``}
    update order_legs as l set
      status = v.status, partner_id = v.partner_id, offer_id = v.offer_id,
      reservation_id = v.reservation_id, unit_price_minor = v.unit_price_minor,
      gross_minor = v.gross_minor, margin_minor = v.margin_minor, lead_time_hours = v.lead_time_hours,
      expected_start = v.expected_start, expected_finish = v.expected_finish,
      work_order_id = v.work_order_id, attempts = v.attempts, replans = v.replans,
      failed_partner_ids = v.failed_partner_ids, late = v.late, updated_at = v.updated_at
    from (values ${sql.join(values)}) as v(
      step_key, status, partner_id, offer_id, reservation_id, unit_price_minor, gross_minor,
      margin_minor, lead_time_hours, expected_start, expected_finish, work_order_id, attempts,
      replans, failed_partner_ids, late, updated_at
    )
    where l.order_id = ${orderId} and l.step_key = v.step_key
  `;
  await executeUnawaited(db, saving.compile(db));
}

/** What `lockOrder` finds by. */
export type OrderLockTarget =
  /** The order of a work order (only among `partnerId`'s when given), and that work order. */
  | { readonly workOrderId: string; readonly partnerId?: string | undefined }
  /** An order (only `customerId`'s when given) and the current work order of one of its legs. */
  | { readonly orderId: string; readonly stepKey: string; readonly customerId?: string | undefined }
  /** The order a payment pays for, without a work order. */
  | { readonly paymentId: string };

/** An order, all its legs and one work order, locked together. */
export interface LockedOrder {
  readonly order: Order;
  readonly legs: readonly OrderLeg[];
  /** The work order as it was locked, before any move. */
  readonly workOrder: WorkOrder | null;
  /** The work order after the move asked for, or null when its status did not allow it. */
  readonly moved: WorkOrder | null;
}

/** A change of the locked work order's status, made in the statement that locks it. */
export interface WorkOrderMove {
  readonly to: WorkOrderStatus;
  /** The statuses it may move from; from any other it stays as it is. */
  readonly from: readonly WorkOrderStatus[];
  /** What else the move sets: its timestamps, a reason. */
  readonly set: Omit<Updateable<WorkOrdersTable>, 'status' | 'confirm_by'>;
  /** Moves only while the acceptance window is open at this time. */
  readonly openAt?: Date | undefined;
  /** Sets `confirm_by` to this time plus the order's auto-confirm hours. */
  readonly confirmHoursFrom?: Date | undefined;
}

/**
 * Reads and locks an order, every leg of it and (by work order or by leg) one work order, in
 * one statement. Each row is locked in that order (order, then leg, then work order), as every
 * writer of an order's legs and work orders locks them, and every such writer holds the order's
 * lock first: so the legs and the work order are the latest versions, never older than the
 * order. Undefined when nothing matches, including a leg without a work order: the caller then
 * tells which by reading step by step.
 *
 * A leg whose current work order changed while this waited for the order's lock comes back
 * with the work order it had before: by leg, callers check that the leg names the work order.
 *
 * With `move`, the same statement then moves the work order (by leg, only while the leg still
 * names it), so that a partner's or customer's answer is one statement: `moved` says whether
 * it did.
 */
export async function lockOrder(
  db: Executor,
  target: OrderLockTarget,
  move?: WorkOrderMove,
): Promise<LockedOrder | undefined> {
  let join = sql``;
  let where: ReturnType<typeof sql>;
  if ('workOrderId' in target) {
    join = sql`join work_orders w on w.id = ${target.workOrderId} and w.order_id = o.id`;
    where = sql`o.id = (select order_id from work_orders where id = ${target.workOrderId}
      ${target.partnerId !== undefined ? sql`and partner_id = ${target.partnerId}` : sql``})`;
  } else if ('stepKey' in target) {
    join = sql`join work_orders w on w.id = (
      select work_order_id from order_legs where order_id = ${target.orderId} and step_key = ${target.stepKey}
    )`;
    where = sql`o.id = ${target.orderId}
      ${target.customerId !== undefined ? sql`and o.customer_id = ${target.customerId}` : sql``}`;
  } else {
    where = sql`o.payment_id = ${target.paymentId}`;
  }
  const withWorkOrder = !('paymentId' in target);
  const locking = sql`
    select ${prefixed('o', ORDER_COLUMNS)}, ${prefixed('l', LEG_COLUMNS)}
      ${withWorkOrder ? sql`, ${prefixed('w', WORK_ORDER_COLUMNS)}` : sql``}
    from orders o
    join order_legs l on l.order_id = o.id
    ${join}
    where ${where}
    order by l.position
    for update of o, l ${withWorkOrder ? sql`, w` : sql``}`;
  let query = locking;
  if (move && withWorkOrder) {
    const sets = Object.entries(move.set)
      .filter(([, value]) => value !== undefined)
      .map(([column, value]) => sql`${sql.ref(column)} = ${value}`);
    query = sql`
      with locked as (${locking}),
      moved as (
        update work_orders as m set status = ${move.to}
          ${sets.length > 0 ? sql`, ${sql.join(sets)}` : sql``}
          ${
            move.confirmHoursFrom
              ? sql`, confirm_by = ${move.confirmHoursFrom}::timestamptz
                  + (select o__auto_confirm_hours from locked limit 1) * interval '1 hour'`
              : sql``
          }
        -- Read to the end (every row locked) before the work order changes: a row locked after
        -- it changed in this very statement would be skipped.
        where m.id = (select min(w__id) from locked)
          and m.status in (${sql.join(move.from.map((status) => sql`${status}`))})
          ${move.openAt ? sql`and m.accept_by > ${move.openAt}` : sql``}
          ${
            'stepKey' in target
              ? sql`and exists (
                  select 1 from locked where l__step_key = ${target.stepKey} and l__work_order_id = m.id
                )`
              : sql``
          }
        returning ${prefixed('m', WORK_ORDER_COLUMNS)}
      )
      select * from locked left join moved on true order by l__position`;
  }
  const { rows } = await query.execute(db);
  const first = rows[0] as Record<string, unknown> | undefined;
  if (!first) return undefined;
  return {
    order: toOrder(unprefixed<OrdersTable>(first, 'o', ORDER_COLUMNS)),
    legs: rows.map((row) =>
      toLeg(unprefixed<OrderLegsTable>(row as Record<string, unknown>, 'l', LEG_COLUMNS)),
    ),
    workOrder: withWorkOrder
      ? toWorkOrder(unprefixed<WorkOrdersTable>(first, 'w', WORK_ORDER_COLUMNS))
      : null,
    moved:
      move && first.m__id !== null && first.m__id !== undefined
        ? toWorkOrder(unprefixed<WorkOrdersTable>(first, 'm', WORK_ORDER_COLUMNS))
        : null,
  };
}

/** An order with its legs and their current work orders, in one query; undefined when there is no such order. */
export async function orderWithLegs(
  db: Executor,
  orderId: string,
): Promise<{ order: Order; legs: OrderLeg[]; workOrders: WorkOrder[] } | undefined> {
  const { rows } = await sql<Record<string, unknown>>`
    select ${prefixed('o', ORDER_COLUMNS)}, ${prefixed('l', LEG_COLUMNS)}, ${prefixed('w', WORK_ORDER_COLUMNS)}
    from orders o
    left join order_legs l on l.order_id = o.id
    left join work_orders w on w.id = l.work_order_id
    where o.id = ${orderId}
    order by l.position
  `.execute(db);
  const first = rows[0];
  if (!first) return undefined;
  return {
    order: toOrder(unprefixed<OrdersTable>(first, 'o', ORDER_COLUMNS)),
    legs: rows
      .filter((row) => row.l__order_id !== null)
      .map((row) => toLeg(unprefixed<OrderLegsTable>(row, 'l', LEG_COLUMNS))),
    workOrders: rows
      .filter((row) => row.w__id !== null)
      .map((row) => toWorkOrder(unprefixed<WorkOrdersTable>(row, 'w', WORK_ORDER_COLUMNS))),
  };
}

// -------------------------------------------------------------------------------------------------
// Work orders

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
