import type { FastifyInstance } from 'fastify';
import type { ServedRoute } from '../kernel/http/app.js';

/**
 * Every route the app serves, as it registered them (HEAD copies of GET routes included),
 * but the API reference page's static files. The access and tenancy tests enumerate these,
 * so a new route without a case fails them.
 */
export function servedRoutes(http: FastifyInstance): ServedRoute[] {
  return http.servedRoutes.filter((route) => !route.url.startsWith('/docs'));
}
