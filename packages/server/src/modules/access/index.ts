/** Users, API keys and authentication. */
export type { NewSecret } from './domain/api-key.js';
export { API_KEY_PREFIX } from './domain/api-key.js';
export type { Tenant, User, UserRole } from './domain/user.js';
export { accessRoutes, apiKeyJson, NewApiKeyJson, UserJson, userJson } from './http/routes.js';
export { type AccessService, AUTH_CACHE_TTL_MS, createAccessService } from './service.js';
export type { ApiKey } from './store/access-store.js';
export { accessMigrations } from './store/migrations.js';
