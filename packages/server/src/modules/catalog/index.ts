/** Partners' offers against capabilities, and their capacity. */
export {
  CAPACITY_PERIODS,
  type CapacityPeriod,
  HOLD_MINUTES_MAX,
  periodEnd,
  periodStart,
  RESERVATION_STATUSES,
  type ReservationStatus,
} from './domain/capacity.js';
export {
  IMPORT_ITEMS_MAX,
  OFFER_STATUSES,
  type OfferStatus,
  type PriceInput,
  SETTABLE_OFFER_STATUSES,
  type SettableOfferStatus,
} from './domain/offer.js';
export { OfferJson, offerJson, ReservationJson, reservationJson, seesPartnerPrices } from './http/json.js';
export { catalogRoutes } from './http/routes.js';
export { catalogJobs } from './jobs.js';
export {
  type CapacityUsage,
  type CatalogService,
  createCatalogService,
  EXPIRE_HOLDS_JOB,
  type HoldInput,
  type HoldsOutcome,
  type ImportResult,
  type LiveHold,
  type OfferChanges,
  type OfferFilter,
  type OfferInput,
  type ReserveInput,
} from './service.js';
export type { Offer, Reservation } from './store/catalog-store.js';
export { catalogMigrations } from './store/migrations.js';
