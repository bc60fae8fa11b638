import type { Kysely } from 'kysely';
import { systemActor } from '../../kernel/actor.js';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import { type CatalogService, EXPIRE_BATCH_MAX, EXPIRE_HOLDS_JOB } from './service.js';

/** Sweeps of one run at most, so that one run ends even while holds keep expiring. */
const SWEEPS_PER_RUN_MAX = 20;

export function catalogJobs(deps: {
  catalog: CatalogService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<object>[] {
  return [
    {
      name: EXPIRE_HOLDS_JOB,
      // Reservations release expired holds of their own period as they go; the sweep returns the
      // rest and announces each expiry, every minute.
      cron: '* * * * *',
      retryLimit: 0,
      handler: async () => {
        for (let sweep = 0; sweep < SWEEPS_PER_RUN_MAX; sweep++) {
          const expired = await runInTransaction(deps.db, (tx) =>
            deps.catalog.expireHolds({
              db: tx,
              actor: systemActor('capacity-holds'),
              now: deps.clock.now(),
              requestId: null,
              ip: null,
            }),
          );
          if (expired.length < EXPIRE_BATCH_MAX) return;
        }
      },
    },
  ];
}
