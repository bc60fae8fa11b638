/** Budgeted, time-boxed subsidy programmes that pay a share of partners' or customers' fees. */
export {
  KINDS,
  type Kind,
  PROGRAMME_STATUSES,
  type ProgrammeStatus,
  SHARE_BPS_MAX,
  SIDES,
  type Side,
  type Targeting,
} from './domain/programme.js';
export { subsidiesErrors } from './errors.js';
export { ProgrammeJson, programmeJson } from './http/json.js';
export { subsidiesRoutes } from './http/routes.js';
export { subsidiesJobs } from './jobs.js';
export {
  type AppliedSubsidy,
  type ApplyInput,
  createSubsidiesService,
  END_PROGRAMMES_JOB,
  type MoneyText,
  type PreviewedSubsidy,
  type PreviewInput,
  type ProgrammeFilter,
  type ProgrammeInput,
  type ProgrammeReport,
  type RefundedSubsidy,
  type RefundInput,
  type SubsidiesService,
} from './service.js';
export { subsidiesMigrations } from './store/migrations.js';
export type { Application, ParticipantSpend, Programme } from './store/subsidies-store.js';
