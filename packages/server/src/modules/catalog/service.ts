import type { Jobs } from '../../kernel/jobs/jobs.js';
import type { StandardsService } from '../standards/index.js';

export type CatalogService = ReturnType<typeof createCatalogService>;

export function createCatalogService(_deps: { standards: StandardsService; jobs: Jobs }) {
  return {};
}
