import { sql } from 'kysely';
import type { Executor } from './database.js';

/*
 * Transaction positions (kernel migration 0002): rows read in commit order carry the position
 * of the transaction that wrote them, `baton_xact_position()`, the server's transaction counter
 * plus a shift. On a server that has always held this database the shift is 0. A backup
 * restored on another server (`pg_dump` and `pg_restore`) brings positions from the old
 * server's counter, which the new one's may be far behind: rows written from then on would sort
 * before the restored ones, and readers, who take rows below the current horizon after their
 * last position, would not see them. Realigning moves the shift so that every position to come
 * is past every position stored.
 */

// An arbitrary number that names the realignment's advisory lock.
const REALIGN_LOCK = 7_401_338_912n;

/** Where positions stand: the highest stored in any column positioned by default, and the next one. */
async function positions(db: Executor): Promise<{ stored: bigint; next: bigint; shift: bigint }> {
  const { rows: columns } = await sql<{ table_name: string; column_name: string }>`
    select c.relname as table_name, a.attname as column_name
      from pg_attrdef d
      join pg_class c on c.oid = d.adrelid
      join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
     where c.relnamespace = current_schema()::regnamespace
       and pg_get_expr(d.adbin, d.adrelid) = 'baton_xact_position()'`.execute(db);
  let stored = -1n;
  for (const { table_name, column_name } of columns) {
    const { rows } = await sql<{ max: string | null }>`
      select max(${sql.ref(column_name)})::text as max from ${sql.table(table_name)}`.execute(db);
    const max = rows[0]?.max;
    if (max !== null && max !== undefined && BigInt(max) > stored) stored = BigInt(max);
  }
  const { rows } = await sql<{ next: string; shift: string }>`
    select (pg_current_xact_id()::text::bigint + baton_xact_shift())::text as next,
           baton_xact_shift()::text as shift`.execute(db);
  return { stored, next: BigInt(rows[0]?.next ?? 0), shift: BigInt(rows[0]?.shift ?? 0) };
}

/**
 * Moves transaction positions past every stored one, if any is at or ahead of them: after a
 * restore on a new server. Does nothing otherwise, as on every start of a database that never
 * moved. Several processes may start at once: one realigns, the others then find nothing to do.
 *
 * @returns how far the positions moved ahead (0 when they did not).
 */
export async function realignTransactionPositions(db: Executor): Promise<bigint> {
  return db.transaction().execute(async (tx) => {
    let { stored, next, shift } = await positions(tx);
    if (stored < next) return 0n;
    await sql`select pg_advisory_xact_lock(${REALIGN_LOCK})`.execute(tx);
    ({ stored, next, shift } = await positions(tx));
    if (stored < next) return 0n;
    // This transaction's own position becomes the stored one + 1, and later ones are larger.
    const moved = stored - next + 1n;
    await sql`${sql.raw(`create or replace function baton_xact_shift() returns bigint
      language sql stable parallel safe as 'select ${shift + moved}::bigint'`)}`.execute(tx);
    return moved;
  });
}
