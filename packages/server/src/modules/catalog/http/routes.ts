import type { Route } from '../../../kernel/http/route.js';
import type { CatalogService } from '../service.js';

export function catalogRoutes(_catalog: CatalogService): Route[] {
  return [];
}
