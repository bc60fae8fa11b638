import type { Route } from '../../../kernel/http/route.js';
import type { MatchingService } from '../service.js';

export function matchingRoutes(_matching: MatchingService): Route[] {
  return [];
}
