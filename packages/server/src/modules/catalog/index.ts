/** Partners' offers against capabilities, and their capacity. */
export { catalogRoutes } from './http/routes.js';
export { catalogJobs } from './jobs.js';
export { type CatalogService, createCatalogService } from './service.js';
export { catalogMigrations } from './store/migrations.js';
