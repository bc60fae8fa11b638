import type { Clock } from '../../kernel/clock.js';
import type { Executor } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import { sealChain } from './store/chain.js';

export const SEAL_CHAIN_JOB = 'ledger.seal-chain';

/** The ledger's background work: extending the hash chain over newly committed transactions, every minute. */
export function ledgerJobs({ db, clock }: { db: Executor; clock: Clock }): JobDefinition<object>[] {
  return [
    {
      name: SEAL_CHAIN_JOB,
      cron: '* * * * *',
      handler: async () => {
        // Seal until caught up, one batch per transaction.
        while ((await runInTransaction(db, (tx) => sealChain(tx, clock.now()))) > 0) {}
      },
    },
  ];
}
