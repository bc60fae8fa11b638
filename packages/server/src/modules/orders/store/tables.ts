import type { ColumnType } from 'kysely';
import type { LegStatus, OrderStatus, WorkOrderStatus } from '../domain/work-order.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    quotes: QuotesTable;
    quote_legs: QuoteLegsTable;
    orders: OrdersTable;
    order_legs: OrderLegsTable;
    work_orders: WorkOrdersTable;
    refund_thresholds: RefundThresholdsTable;
    refund_requests: RefundRequestsTable;
    refunded_alone_daily: RefundedAloneDailyTable;
  }
}

type Json<T> = ColumnType<T, string, string>;

export type PricingKind = 'cost_plus' | 'fixed';

export interface QuotesTable {
  id: string;
  customer_id: string;
  offering_key: string;
  offering_version_id: string;
  quantity: number;
  region: string;
  deadline: Date;
  currency: string;
  pricing_kind: PricingKind;
  cost_minor: bigint;
  margin_minor: bigint;
  total_minor: bigint;
  /** What the partners would pay in commission under the fee schedule in force, summed. */
  commission_minor: bigint;
  fee_version_id: string | null;
  /** What a customer-side subsidy programme would pay of the margin; the customer is charged the rest. */
  subsidy_minor: ColumnType<bigint, bigint | undefined, bigint>;
  subsidy_programme_id: ColumnType<string | null, string | null | undefined, string | null>;
  subsidy_kind: ColumnType<
    'waiver' | 'rebate' | null,
    'waiver' | 'rebate' | null | undefined,
    'waiver' | 'rebate' | null
  >;
  earliest_finish: Date;
  valid_until: Date;
  /** The order placed from this quote: one at most. */
  order_id: string | null;
  created_at: Date;
}

export interface QuoteLegsTable {
  quote_id: string;
  step_key: string;
  position: number;
  name: string;
  capability: string;
  constraints: Json<Record<string, unknown>>;
  after: string[];
  partner_id: string;
  offer_id: string;
  reservation_id: string;
  allocation_id: string;
  quantity: number;
  unit_price_minor: bigint;
  gross_minor: bigint;
  margin_minor: bigint;
  commission_minor: bigint;
  lead_time_hours: number;
  earliest_start: Date;
  earliest_finish: Date;
  latest_start: Date;
  due_by: Date;
  score: number;
  breakdown: Json<Record<string, unknown>>;
}

export interface OrdersTable {
  id: string;
  quote_id: string;
  customer_id: string;
  offering_key: string;
  offering_version_id: string;
  quantity: number;
  region: string;
  deadline: Date;
  currency: string;
  pricing_kind: PricingKind;
  total_minor: bigint;
  fee_version_id: string | null;
  /** The customer's segment when the order was placed; null: none. */
  customer_segment: string | null;
  /** The tier of each partner the order was placed with, by partner id. */
  partner_tiers: Json<Record<string, string>>;
  /** What a customer-side subsidy programme paid into escrow at placement; charged: total less it. */
  subsidy_minor: ColumnType<bigint, bigint | undefined, bigint>;
  subsidy_programme_id: ColumnType<string | null, string | null | undefined, string | null>;
  rejection_policy: 'refund' | 'redo';
  max_redos: number;
  acceptance_window_minutes: number;
  auto_confirm_hours: number;
  status: OrderStatus;
  payment_id: string | null;
  /** Given back to the customer through the provider. */
  refunded_minor: bigint;
  /** Of the refunds, what went back to the subsidy programme's budget. */
  subsidy_returned_minor: ColumnType<bigint, bigint | undefined, bigint>;
  /** Of the refunds, what operators gave back by hand without a second operator's approval. */
  refunded_alone_minor: ColumnType<bigint, bigint | undefined, bigint>;
  refunds: number;
  failure_code: string | null;
  failure_detail: string | null;
  created_at: Date;
  updated_at: Date;
  closed_at: Date | null;
}

export interface OrderLegsTable {
  order_id: string;
  step_key: string;
  position: number;
  name: string;
  capability: string;
  constraints: Json<Record<string, unknown>>;
  after: string[];
  quantity: number;
  budget_minor: bigint;
  status: LegStatus;
  partner_id: string;
  offer_id: string;
  reservation_id: string;
  unit_price_minor: bigint;
  gross_minor: bigint;
  margin_minor: bigint;
  lead_time_hours: number;
  due_by: Date;
  expected_start: Date;
  expected_finish: Date;
  work_order_id: string | null;
  attempts: number;
  replans: number;
  failed_partner_ids: string[];
  late: boolean;
  updated_at: Date;
}

export interface WorkOrdersTable {
  id: string;
  order_id: string;
  step_key: string;
  attempt: number;
  partner_id: string;
  offer_id: string;
  reservation_id: string;
  capability: string;
  region: string;
  quantity: number;
  currency: string;
  unit_price_minor: bigint;
  gross_minor: bigint;
  status: WorkOrderStatus;
  accept_by: Date;
  due_by: Date;
  confirm_by: Date | null;
  late: boolean;
  reason: string | null;
  offered_at: Date;
  accepted_at: Date | null;
  started_at: Date | null;
  delivered_at: Date | null;
  closed_at: Date | null;
  updated_at: Date;
}

/** Above what amount, per currency, a refund by hand needs a second operator's approval. */
export interface RefundThresholdsTable {
  currency: string;
  approval_above_minor: bigint;
  updated_by: string;
  updated_at: Date;
}

/** What one operator user gave back by hand alone in a currency on a day (UTC). */
export interface RefundedAloneDailyTable {
  user_id: string;
  currency: string;
  day: string;
  /** `numeric`: a day's refunds may add up beyond `int8`. */
  refunded_minor: ColumnType<string, bigint, bigint>;
}

/** `expired` is not stored: a request still pending at its expiry is shown so. */
export const REFUND_REQUEST_STATUSES = ['pending', 'approved', 'rejected', 'expired'] as const;
export type RefundRequestStatus = (typeof REFUND_REQUEST_STATUSES)[number];

/** A refund by hand that waits for, or got, a second operator's decision. */
export interface RefundRequestsTable {
  id: string;
  order_id: string;
  step_key: string | null;
  amount_minor: bigint;
  currency: string;
  reason: string;
  status: Exclude<RefundRequestStatus, 'expired'>;
  requested_by: string;
  requested_at: Date;
  /** A request still pending then can no longer be decided. */
  expires_at: Date;
  decided_by: string | null;
  decided_at: Date | null;
  decision_reason: string | null;
  /** Once approved: what the customer got back, and what went back to a subsidy programme. */
  refunded_minor: bigint | null;
  subsidy_returned_minor: bigint | null;
}
