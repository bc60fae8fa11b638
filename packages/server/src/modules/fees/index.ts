/** Fee schedules and quotes, partner subscriptions (access fees), and value-added services. */
export {
  COMMISSION_BPS_MAX,
  DEFAULT_TIER,
  type FeeBreakdown,
  type FeeQuery,
  type FeeResult,
  type FeeRule,
  type FeeVersion,
  feeFor,
  MATCH_FIELDS,
  ROUNDINGS,
  type Rounding,
} from './domain/schedule.js';
export {
  PLAN_INTERVALS,
  type PlanInterval,
  SUBSCRIPTION_STATUSES,
  type SubscriptionStatus,
} from './domain/subscription.js';
export { feesErrors } from './errors.js';
export { feesRoutes } from './http/routes.js';
export { feesJobs } from './jobs.js';
export {
  BILL_SUBSCRIPTIONS_JOB,
  type BillingRun,
  type Commission,
  type CommissionInput,
  createFeesService,
  type FeesService,
  type Quote,
  type QuoteInput,
  type RuleSpec,
  type VersionInput,
} from './service.js';
export type {
  FeeScheduleVersion,
  ServiceCharge,
  Subscription,
  SubscriptionCharge,
  SubscriptionPlan,
  ValueAddedService,
} from './store/fees-store.js';
export { feesMigrations } from './store/migrations.js';
