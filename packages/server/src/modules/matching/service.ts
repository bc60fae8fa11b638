import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import type { CatalogService } from '../catalog/index.js';
import type { ParticipantsService } from '../participants/index.js';
import type { StandardsService } from '../standards/index.js';

export interface MatchingDeps {
  readonly db: Kysely<Tables>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly catalog: CatalogService;
  readonly standards: StandardsService;
  readonly participants: ParticipantsService;
}

export type MatchingService = ReturnType<typeof createMatchingService>;

export function createMatchingService(_deps: MatchingDeps) {
  return {
    /** Builds the in-memory index and starts following the event log. */
    async start(): Promise<void> {},
    async stop(): Promise<void> {},
  };
}
