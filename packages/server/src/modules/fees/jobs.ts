import type { Kysely } from 'kysely';
import { systemActor } from '../../kernel/actor.js';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import { BILL_BATCH_MAX, BILL_SUBSCRIPTIONS_JOB, type FeesService } from './service.js';

/** Batches of one run at most, so that one run ends; the next day's run takes the rest. */
const BATCHES_PER_RUN_MAX = 50;

export function feesJobs(deps: {
  fees: FeesService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<object>[] {
  return [
    {
      name: BILL_SUBSCRIPTIONS_JOB,
      // Daily, early in the UTC day. Billing is idempotent per period, so a retried or doubled
      // run bills nothing twice.
      cron: '23 1 * * *',
      handler: async () => {
        for (let batch = 0; batch < BATCHES_PER_RUN_MAX; batch++) {
          const run = await runInTransaction(deps.db, (tx) =>
            deps.fees.billDue({
              db: tx,
              actor: systemActor('subscription-billing'),
              now: deps.clock.now(),
              requestId: null,
              ip: null,
            }),
          );
          if (run.processed < BILL_BATCH_MAX) return;
        }
      },
    },
  ];
}
