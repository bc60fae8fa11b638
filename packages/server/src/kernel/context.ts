import type { Actor } from './actor.js';
import type { Executor } from './database/database.js';

/**
 * What every use case receives: where to read and write (a transaction for writes), who is
 * acting, the time of the operation, and where the request came from. Services hold no
 * database handle of their own, so a write can never escape the caller's transaction.
 */
export interface Context {
  readonly db: Executor;
  readonly actor: Actor;
  readonly now: Date;
  readonly requestId: string | null;
  readonly ip: string | null;
}
