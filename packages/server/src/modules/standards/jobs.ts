import type { Kysely } from 'kysely';
import { systemActor } from '../../kernel/actor.js';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import type { StandardsService } from './service.js';

/** The daily job that expires the certifications whose validity ended. */
export const CERTIFICATION_EXPIRY_JOB = 'standards.expire-certifications';
/** Every day at 02:07 UTC, away from the top of the hour when other schedules fire. */
export const CERTIFICATION_EXPIRY_CRON = '7 2 * * *';

export function standardsJobs(deps: {
  standards: StandardsService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<object>[] {
  return [
    {
      name: CERTIFICATION_EXPIRY_JOB,
      cron: CERTIFICATION_EXPIRY_CRON,
      handler: async () => {
        await runInTransaction(deps.db, (tx) =>
          deps.standards.expireCertifications({
            db: tx,
            actor: systemActor('certification-expiry'),
            now: deps.clock.now(),
            requestId: null,
            ip: null,
          }),
        );
      },
    },
  ];
}
