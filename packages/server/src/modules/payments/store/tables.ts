import type { ColumnType, Generated } from 'kysely';
import type {
  ChargebackLiability,
  ChargebackStatus,
  PaymentStatus,
  RefundStatus,
} from '../domain/payment.js';
import type { Discrepancy } from '../domain/reconciliation.js';
import type { OperationKind, OperationStatus } from '../provider/port.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    payments: PaymentsTable;
    payment_operations: PaymentOperationsTable;
    payment_provider_events: PaymentProviderEventsTable;
    payment_refunds: PaymentRefundsTable;
    payment_chargebacks: PaymentChargebacksTable;
    reconciliation_reports: ReconciliationReportsTable;
  }
}

type Json<T> = ColumnType<T, string, string>;

export interface PaymentsTable {
  id: string;
  /** Baton's reference at the provider: the authorization's; the capture's is derived from it. */
  reference: string;
  order_ref: string;
  customer_id: string | null;
  payment_method: string;
  amount_minor: bigint;
  currency: string;
  status: PaymentStatus;
  failure_code: string | null;
  captured_minor: bigint;
  refunded_minor: bigint;
  /** Provider calls made for it that went unanswered. */
  attempts: number;
  /** Turns the retry job has taken on it. */
  retries: Generated<number>;
  /** The retry job's wait counts from then, when later than the last change (`retryTurn`). */
  retry_from: Generated<Date | null>;
  created_at: Date;
  updated_at: Date;
}

/** Every operation at the provider Baton asked for or heard of, as Baton last knew it. */
export interface PaymentOperationsTable {
  id: string;
  payment_id: string;
  reference: string;
  kind: OperationKind;
  status: OperationStatus | 'requested' | 'unknown';
  amount_minor: bigint;
  currency: string;
  provider_id: string | null;
  parent_reference: string | null;
  failure_code: string | null;
  created_at: Date;
  updated_at: Date;
}

/** Callbacks already applied, by the provider's event id: a redelivery has no second effect. */
export interface PaymentProviderEventsTable {
  event_id: string;
  reference: string;
  status: string;
  received_at: Date;
}

export interface PaymentRefundsTable {
  id: string;
  payment_id: string;
  reference: string;
  amount_minor: bigint;
  currency: string;
  status: RefundStatus;
  failure_code: string | null;
  /** The failed refund this one retries. */
  retry_of: string | null;
  /** The refund that retries this failed one; null while its money is owed to the customer. */
  retried_by: string | null;
  /** Turns the retry job has taken on it. */
  retries: Generated<number>;
  /** The retry job's wait counts from then, when later than the last change (`retryTurn`). */
  retry_from: Generated<Date | null>;
  created_at: Date;
  updated_at: Date;
}

export interface PaymentChargebacksTable {
  id: string;
  payment_id: string;
  reference: string;
  order_ref: string;
  amount_minor: bigint;
  currency: string;
  status: ChargebackStatus;
  liability: ChargebackLiability | null;
  partner_id: string | null;
  partner_share_minor: bigint | null;
  decided_by: string | null;
  decided_at: Date | null;
  created_at: Date;
}

export interface ReconciliationReportsTable {
  id: string;
  since: Date;
  ran_at: Date;
  operations_checked: number;
  discrepancy_count: number;
  discrepancies: Json<Discrepancy[]>;
}
