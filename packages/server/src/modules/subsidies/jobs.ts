import type { Kysely } from 'kysely';
import { systemActor } from '../../kernel/actor.js';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import { END_BATCH_MAX, END_PROGRAMMES_JOB, type SubsidiesService } from './service.js';

/** Runs of the end sweep in one job at most, so that one run ends even with a backlog. */
const SWEEPS_PER_RUN_MAX = 20;

export function subsidiesJobs(deps: {
  subsidies: SubsidiesService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<object>[] {
  return [
    {
      name: END_PROGRAMMES_JOB,
      // Applications already stop at `ends_at` by themselves; the sweep only closes the books
      // (status and leftover budget), so every 15 minutes is soon enough.
      cron: '*/15 * * * *',
      retryLimit: 0,
      handler: async () => {
        for (let sweep = 0; sweep < SWEEPS_PER_RUN_MAX; sweep++) {
          const ended = await runInTransaction(deps.db, (tx) =>
            deps.subsidies.endDueProgrammes({
              db: tx,
              actor: systemActor('subsidy-programmes'),
              now: deps.clock.now(),
              requestId: null,
              ip: null,
            }),
          );
          if (ended.length < END_BATCH_MAX) return;
        }
      },
    },
  ];
}
