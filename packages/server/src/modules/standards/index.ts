/** Capabilities (the standards partners conform to) and certification programs. */
export { standardsRoutes } from './http/routes.js';
export { standardsJobs } from './jobs.js';
export { createStandardsService, type StandardsService } from './service.js';
export { standardsMigrations } from './store/migrations.js';
