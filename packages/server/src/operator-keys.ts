import { OPERATOR_ROLES, type OperatorRole, systemActor } from './kernel/actor.js';
import { type Clock, systemClock } from './kernel/clock.js';
import type { Database } from './kernel/database/database.js';
import { runInTransaction } from './kernel/database/transaction.js';
import { createAccessService } from './modules/access/index.js';

/**
 * Creates an operator user with `role` and an API key for it, acting as Baton itself: the way
 * in on a new installation. Apart from `main.ts` so that the demo, which `main.ts` loads, can
 * use it without importing the wiring back.
 */
export async function createOperatorKey(
  database: Database,
  input: { role: OperatorRole; name: string; email: string },
  clock: Clock = systemClock,
): Promise<{ userId: string; keyId: string; secret: string }> {
  if (!OPERATOR_ROLES.includes(input.role)) throw new Error(`Unknown operator role ${input.role}`);
  const access = createAccessService();
  return runInTransaction(database.db, async (tx) => {
    const ctx = { db: tx, actor: systemActor('command-line'), now: clock.now(), requestId: null, ip: null };
    const user = await access.createUser(ctx, { tenant: { kind: 'operator' }, ...input });
    const { apiKey, secret } = await access.issueInitialKey(ctx, user, 'Created from the command line');
    return { userId: user.id, keyId: apiKey.id, secret };
  });
}
