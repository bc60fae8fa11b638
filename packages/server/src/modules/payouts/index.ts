/** Paying partners: schedules, minimum, rolling reserve, netting, batches through the provider. */
export {
  DESTINATION_HOLD_MS,
  isDue,
  PAYOUT_SCHEDULES,
  PAYOUT_STATUSES,
  type PayoutPlan,
  type PayoutSchedule,
  type PayoutStatus,
  planPayout,
  SKIP_REASONS,
  type SkipReason,
  WEEKDAYS,
  type Weekday,
} from './domain/payout.js';
export { payoutsErrors } from './errors.js';
export { PayoutJson, payoutJson } from './http/json.js';
export { payoutsRoutes } from './http/routes.js';
export { payoutsJobs } from './jobs.js';
export {
  createPayoutsService,
  type PartnerOutcome,
  type PayoutSettingsInput,
  type PayoutsService,
  RUN_DUE_JOB,
  type RunOptions,
  type RunResult,
  SEND_BATCH_JOB,
} from './service.js';
export { payoutsMigrations } from './store/migrations.js';
export type { Payout, PayoutBatch, PayoutSettings } from './store/payouts-store.js';
