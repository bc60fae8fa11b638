import type { Route } from '../kernel/http/route.js';
import type { CatalogService } from '../modules/catalog/index.js';
import type { StandardsService } from '../modules/standards/index.js';

/** Routes whose use cases span modules, each run as one transaction across them. */
export function workflowRoutes(_deps: { standards: StandardsService; catalog: CatalogService }): Route[] {
  return [];
}
