import type { Kysely } from 'kysely';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import type { CatalogService } from './service.js';

export function catalogJobs(_deps: {
  catalog: CatalogService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<object>[] {
  return [];
}
