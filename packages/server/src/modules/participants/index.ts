/** Partner types, rules of engagement, partners and their lifecycle, customers. */
export { ENGAGED_STATES, PARTNER_STATES, type PartnerState, TRANSITIONS } from './domain/lifecycle.js';
export { canTakeWork, type RulesStanding, type RulesStatus, type RulesVersion } from './domain/rules.js';
export { CustomerJson, PartnerJson } from './http/json.js';
export { participantsRoutes } from './http/routes.js';
export { participantsJobs } from './jobs.js';
export {
  createParticipantsService,
  type ParticipantsService,
  type PartnerView,
  partnerTypeAudience,
  RULES_GRACE_ENDED_JOB,
} from './service.js';
export { participantsMigrations } from './store/migrations.js';
export type { Customer, Partner } from './store/participants-store.js';
