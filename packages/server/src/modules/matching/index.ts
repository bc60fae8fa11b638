/** Finding and ranking the partners' offers that can serve a piece of demand. */
export { matchingRoutes } from './http/routes.js';
export { createMatchingService, type MatchingService } from './service.js';
export { matchingMigrations } from './store/migrations.js';
