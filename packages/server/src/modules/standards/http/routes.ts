import type { Route } from '../../../kernel/http/route.js';
import type { StandardsService } from '../service.js';

export function standardsRoutes(_standards: StandardsService): Route[] {
  return [];
}
