/** Integrated offerings: versioned blueprints of steps, each bought from a partner. */
export {
  ACCEPTANCE_WINDOW_MINUTES_MAX,
  AUTO_CONFIRM_HOURS_MAX,
  checkDefinition,
  MARGIN_BPS_MAX,
  type OfferingInput,
  type PriceText,
  type PricingInput,
  QUANTITY_MAX,
  QUOTE_VALIDITY_MINUTES_MAX,
  validateDefinition,
} from './domain/definition.js';
export {
  parseQuantityPerUnit,
  predecessors,
  QUANTITY_PER_UNIT_MAX,
  stepQuantity,
  successors,
  topologicalOrder,
  validateSteps,
} from './domain/graph.js';
export {
  KEY_PATTERN,
  OFFERING_REGIONS_MAX,
  OFFERING_STATUSES,
  type Offering,
  type OfferingDefinition,
  type OfferingStatus,
  type OfferingVersion,
  type Pricing,
  REJECTION_POLICIES,
  type RejectionPolicy,
  STEPS_MAX,
  type StepDefinition,
} from './domain/offering.js';
export { offeringsErrors } from './errors.js';
export { OfferingJson, OfferingVersionJson, offeringJson, offeringVersionJson } from './http/json.js';
export { offeringsRoutes } from './http/routes.js';
export {
  createOfferingsService,
  type OfferingFilter,
  type OfferingsService,
  type PublishMode,
  type StepOutOfDate,
} from './service.js';
export { offeringsMigrations } from './store/migrations.js';
export type { OfferingWithVersion } from './store/offerings-store.js';
