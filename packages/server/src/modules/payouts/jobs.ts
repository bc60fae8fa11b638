import type { Kysely } from 'kysely';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import { type PayoutsService, RUN_DUE_JOB, SEND_BATCH_JOB } from './service.js';

export function payoutsJobs(deps: {
  payouts: PayoutsService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<object>[] {
  const send: JobDefinition<{ batch_id: string }> = {
    name: SEND_BATCH_JOB,
    handler: async ({ batch_id }) => {
      await deps.payouts.sendBatch(deps.db, batch_id, deps.clock.now());
    },
  };
  return [
    {
      name: RUN_DUE_JOB,
      // Once a day: the partners due today are paid, and every payout the provider has not
      // settled yet is asked about again (a timeout, a crash between commit and call).
      cron: '0 6 * * *',
      retryLimit: 2,
      handler: async () => {
        await deps.payouts.retryUnsettled(deps.db, deps.clock.now());
        await deps.payouts.run(deps.db, { now: deps.clock.now() });
      },
    },
    send as JobDefinition<object>,
  ];
}
