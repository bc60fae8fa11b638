import { sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import { readHorizon } from '../../../kernel/events/event-log.js';
import { CHAIN_GENESIS, chainHashOf } from '../domain/posting.js';

/*
 * The hash chain. Postings do not extend the chain themselves: that would make every posting
 * wait for the one before it to commit, and the ledger could write no faster than one
 * transaction at a time. A sealer links committed transactions instead, in commit order
 * (transaction id, then sequence, below the horizon of transactions still running, as the event
 * log is read), one batch at a time under an advisory lock, so that the chain is one line
 * whatever the number of Baton processes. A transaction is covered by the chain within a minute or so after it
 * commits (the sealer runs every minute); `verify` also checks the content of those not yet sealed.
 */

/** Most transactions linked by one pass of the sealer. */
export const SEAL_BATCH_MAX = 5000;

// An arbitrary number that names the sealer's advisory lock.
const SEALER_LOCK = 7_401_338_911n;

/** Links committed transactions to the chain; returns how many. Runs in the caller's transaction. */
export async function sealChain(db: Executor, now: Date): Promise<number> {
  const { rows: locked } = await sql<{
    locked: boolean;
  }>`select pg_try_advisory_xact_lock(${SEALER_LOCK}) as locked`.execute(db);
  if (!locked[0]?.locked) return 0;
  const horizon = await readHorizon(db);
  const last = await db
    .selectFrom('ledger_chain')
    .select(['position', 'tx_id', 'seq', 'chain_hash'])
    .orderBy('position', 'desc')
    .limit(1)
    .executeTakeFirst();
  const rows = await db
    .selectFrom('ledger_transactions')
    .select(['id', 'tx_id', 'seq', 'content_hash'])
    .where('tx_id', '<', horizon)
    .$if(last !== undefined, (query) =>
      query.where((eb) => eb(eb.refTuple('tx_id', 'seq'), '>', eb.tuple(last?.tx_id ?? 0n, last?.seq ?? 0n))),
    )
    .orderBy('tx_id')
    .orderBy('seq')
    .limit(SEAL_BATCH_MAX)
    .execute();
  if (rows.length === 0) return 0;
  let previous = last?.chain_hash ?? CHAIN_GENESIS;
  let position = last ? BigInt(last.position) : 0n;
  const links = rows.map((row) => {
    previous = chainHashOf(previous, row.content_hash);
    position += 1n;
    return {
      position,
      transaction_id: row.id,
      tx_id: row.tx_id,
      seq: row.seq,
      chain_hash: previous,
      sealed_at: now,
    };
  });
  await db.insertInto('ledger_chain').values(links).execute();
  return links.length;
}
