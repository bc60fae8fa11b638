import type { Kysely } from 'kysely';
import { systemActor } from '../../kernel/actor.js';
import type { Clock } from '../../kernel/clock.js';
import type { Tables } from '../../kernel/database/tables.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import { type ParticipantsService, RULES_GRACE_ENDED_JOB } from './service.js';

export function participantsJobs(deps: {
  participants: ParticipantsService;
  db: Kysely<Tables>;
  clock: Clock;
}): JobDefinition<{ partnerType: string; version: number }>[] {
  return [
    {
      name: RULES_GRACE_ENDED_JOB,
      handler: async ({ partnerType, version }) => {
        await runInTransaction(deps.db, (tx) =>
          deps.participants.announceLapsedRules(
            { db: tx, actor: systemActor('rules-grace'), now: deps.clock.now(), requestId: null, ip: null },
            partnerType,
            version,
          ),
        );
      },
    },
  ];
}
