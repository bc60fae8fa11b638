/** Payments: the provider port, the simulated provider, charges, refunds, chargebacks, reconciliation. */
export {
  CHARGEBACK_LIABILITIES,
  type ChargebackLiability,
  PAYMENT_STATUSES,
  type PaymentStatus,
  REFUND_STATUSES,
  type RefundStatus,
} from './domain/payment.js';
export {
  DISCREPANCY_TYPES,
  type Discrepancy,
  type DiscrepancyType,
  type PayoutRecord,
} from './domain/reconciliation.js';
export { paymentsErrors } from './errors.js';
export { PaymentJson, PaymentMethodInput, paymentJson } from './http/json.js';
export {
  PROVIDER_EVENTS_URL,
  registerProviderEventsRoute,
  signProviderEvent,
} from './http/provider-events.js';
export { paymentsRoutes } from './http/routes.js';
export {
  PAYMENTS_RECONCILE_JOB,
  paymentsJobs,
  RESUME_PAYMENT_JOB,
  RESUME_REFUND_JOB,
  RETRY_UNSETTLED_JOB,
} from './jobs.js';
export {
  DESTINATION_FAILURE_CODES,
  type OperationKind,
  type OperationStatus,
  type PaymentProvider,
  type ProviderEvent,
  type ProviderOperation,
  ProviderRejectedError,
  ProviderTimeoutError,
} from './provider/port.js';
export {
  createSimulatedProvider,
  type Settlement,
  SimulatedProvider,
  type SimulatedProviderOptions,
  TEST_CARDS,
  TEST_DESTINATIONS,
} from './provider/simulated.js';
export {
  type ChargebackDecision,
  type ChargeInput,
  createPaymentsService,
  type OperationListener,
  type PaymentDetail,
  type PaymentsDeps,
  type PaymentsService,
  type PayoutRecords,
  type RefundInput,
  type SettlementListener,
} from './service.js';
export { paymentsMigrations } from './store/migrations.js';
export type {
  Chargeback,
  Payment,
  PaymentOperation,
  ReconciliationReport,
  Refund,
} from './store/payments-store.js';
