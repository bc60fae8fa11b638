import { type ColumnType, type Generated, sql } from 'kysely';
import { type ActorRef, actorRef } from '../actor.js';
import { assert } from '../assert.js';
import type { Context } from '../context.js';
import { type Executor, requireTransaction } from '../database/database.js';
import { insertAtCommit } from '../database/pipelined-driver.js';
import { type EventId, newId } from '../ids.js';
import { type Page, pageOf } from '../pagination.js';

declare module '../database/tables.js' {
  interface Tables {
    events: EventsTable;
  }
}

export interface EventsTable {
  id: string;
  seq: Generated<bigint>;
  /** The writing transaction's id: readers order by it to see a gap-free, commit-safe sequence. */
  tx_id: ColumnType<bigint, never, never>;
  type: string;
  subject_id: string;
  data: ColumnType<Record<string, unknown>, string, never>;
  actor_kind: string;
  actor_id: string | null;
  audience: string[];
  request_id: string | null;
  occurred_at: Date;
}

/** A state change, as it is appended to the log. */
export interface NewEvent {
  /** What happened, `<subject>.<past tense verb>`: `partner.approved`. */
  readonly type: string;
  /** The id of the object that changed. */
  readonly subjectId: string;
  /** The change, in the API's JSON form (snake_case, amounts as strings). */
  readonly data: Record<string, unknown>;
  /** The participants (partners, customers) allowed to read it; operators read everything. */
  readonly audience: readonly string[];
}

/** A change as readers see it. */
export interface LoggedEvent {
  readonly id: EventId;
  readonly type: string;
  readonly subjectId: string;
  readonly data: Record<string, unknown>;
  readonly actor: Omit<ActorRef, 'role'>;
  readonly occurredAt: Date;
}

/**
 * Appends an event in the caller's transaction, so the event exists if and only if the change
 * it describes was committed. This table is also the outbox that later deliveries read.
 */
export async function appendEvent(ctx: Context, event: NewEvent): Promise<EventId> {
  requireTransaction(ctx.db);
  const id = newId('evt');
  const actor = actorRef(ctx.actor);
  // Written at commit, with the transaction's other events in one statement: an event is
  // visible only from the commit anyway, and its position (tx_id, seq) keeps the append order.
  await insertAtCommit(ctx.db, 'events', {
    id,
    type: event.type,
    subject_id: event.subjectId,
    data: JSON.stringify(event.data),
    actor_kind: actor.kind,
    actor_id: actor.id,
    audience: [...event.audience],
    request_id: ctx.requestId,
    occurred_at: ctx.now,
  });
  return id;
}

/**
 * The commit horizon of this database: every transaction with an id below it has ended, and
 * any transaction still to write an event will have a larger id. Readers see only events below
 * it, so a cursor can never pass an event whose transaction commits late.
 *
 * It is computed from this database's running transactions (pg_stat_activity), not from the
 * server-wide snapshot, so a long transaction in another database on the same server does not
 * hold the feed back. The running transactions' ids are taken relative to the snapshot's xmax,
 * which errs low (safe). It must be read in its own statement before the events are selected
 * in a later one: a transaction that ends in between is then visible to that later statement.
 * Like positions, it includes the shift of `realignTransactionPositions`.
 */
export async function readHorizon(db: Executor): Promise<bigint> {
  const { rows } = await sql<{ horizon: bigint }>`
    select pg_snapshot_xmax(pg_current_snapshot())::text::int8 + baton_xact_shift()
      - coalesce(max(age(backend_xid)), 0) as horizon
    from pg_stat_activity
    where datname = current_database() and backend_xid is not null`.execute(db);
  const horizon = rows[0]?.horizon;
  assert(horizon !== undefined, 'the commit horizon query returns one row');
  return BigInt(horizon);
}

/** Most events returned by one read of the feed. */
export const EVENT_PAGE_MAX = 500;

export interface EventQuery {
  /** `all` for operators, otherwise the audience tokens of the reader (its id, its groups). */
  readonly viewer: 'all' | readonly string[];
  readonly after: EventId | null;
  readonly limit: number;
  readonly types?: readonly string[];
}

/**
 * Reads the event log in commit order after a cursor. Only events below the commit horizon
 * (`readHorizon`) are returned, so a reader that resumes from its last event never skips one
 * that committed late.
 *
 * @returns null when `after` names no event the viewer can see.
 */
export async function readEvents(db: Executor, query: EventQuery): Promise<Page<LoggedEvent> | null> {
  assert(query.limit >= 1 && query.limit <= EVENT_PAGE_MAX, 'event page size out of range');
  let position = sql<boolean>`true`;
  if (query.after !== null) {
    const cursor = await db
      .selectFrom('events')
      .select(['tx_id', 'seq', 'audience'])
      .where('id', '=', query.after)
      .executeTakeFirst();
    const viewer = query.viewer;
    if (!cursor || (viewer !== 'all' && !cursor.audience.some((token) => viewer.includes(token))))
      return null;
    position = sql<boolean>`(tx_id, seq) > (${cursor.tx_id}, ${cursor.seq})`;
  }
  let select = db
    .selectFrom('events')
    .selectAll()
    .where('tx_id', '<', await readHorizon(db))
    .where(position)
    .orderBy('tx_id')
    .orderBy('seq')
    .limit(query.limit + 1);
  if (query.viewer !== 'all') {
    select = select.where('audience', '&&', sql<string[]>`${[...query.viewer]}::text[]`);
  }
  if (query.types && query.types.length > 0) select = select.where('type', 'in', query.types);
  const rows = await select.execute();
  return pageOf(rows, query.limit, (row) => ({
    id: row.id as EventId,
    type: row.type,
    subjectId: row.subject_id,
    data: row.data,
    actor: { kind: row.actor_kind as ActorRef['kind'], id: row.actor_id },
    occurredAt: row.occurred_at,
  }));
}
