import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Executor } from '../database/database.js';
import type { EventId } from '../ids.js';
import { EVENT_PAGE_MAX, type LoggedEvent, readEvents, readHorizon } from './event-log.js';

/** How often a tail asks the log for new events, unless told otherwise. */
export const EVENT_TAIL_POLL_MS = 500;
/** Deliveries of one batch that fail before the tail gives up on it and moves on. */
export const EVENT_TAIL_ATTEMPTS_MAX = 5;
/** How long `sync` waits for the events committed before it to become readable. */
export const EVENT_TAIL_SYNC_TIMEOUT_MS = 30_000;
const SYNC_RETRY_MS = 5;

/**
 * Receives events in commit order, a batch at a time. It must be idempotent: after a failure
 * the same batch is delivered again, and a process that starts up delivers again events whose
 * effects it may already have loaded.
 */
export type EventBatchHandler = (events: readonly LoggedEvent[]) => void | Promise<void>;

export interface EventTailOptions {
  readonly db: Executor;
  readonly logger: Logger;
  readonly pollIntervalMs?: number;
  /** Only events of these types are delivered (all when absent). */
  readonly types?: readonly string[];
}

/**
 * Follows the event log from a cursor and hands each new batch to its subscribers, in commit
 * order, one batch at a time. It reads the log as an operator does (every event) through
 * `readEvents`, which only returns events of transactions older than every transaction still
 * running: so the cursor never passes an event that commits late.
 *
 * A reader that builds state from the database and then follows the log starts like this:
 * `const from = await tail.endPosition()` first, then load the state, then `tail.start(from)`.
 * Events committed while it loads are delivered again, which idempotent handlers shrug off;
 * no event committed after the load can be missed.
 */
export interface EventTail {
  subscribe(handler: EventBatchHandler): () => void;
  /** The last event readers can see now, or null when there is none: where to start following. */
  endPosition(): Promise<EventId | null>;
  /** Starts following after `position` (from the beginning when null), polling in the background. */
  start(position: EventId | null): void;
  /**
   * Delivers every event committed before the call, and resolves once the subscribers have
   * handled them: for tests, and for callers that must read their own writes.
   *
   * @throws Error when a subscriber fails, or when the events do not become readable in time.
   */
  sync(): Promise<void>;
  /** Stops polling, after the batch being delivered (if any). */
  stop(): Promise<void>;
  /** The last event delivered, or the starting point. */
  readonly position: EventId | null;
}

export function createEventTail(options: EventTailOptions): EventTail {
  const { db, logger } = options;
  const pollIntervalMs = options.pollIntervalMs ?? EVENT_TAIL_POLL_MS;
  const handlers = new Set<EventBatchHandler>();
  let cursor: EventId | null = null;
  let started = false;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  /** Deliveries run one after another: a poll and a sync never deliver at the same time. */
  let queue: Promise<unknown> = Promise.resolve();
  let failures = 0;

  /** Reads and delivers batches until the log has nothing more; returns how many were delivered. */
  async function drain(): Promise<number> {
    let delivered = 0;
    for (;;) {
      const page = await readEvents(db, {
        viewer: 'all',
        after: cursor,
        limit: EVENT_PAGE_MAX,
        ...(options.types ? { types: options.types } : {}),
      });
      if (page === null) throw new Error(`The event tail's cursor ${cursor} is not in the event log`);
      if (page.items.length === 0) return delivered;
      try {
        for (const handler of handlers) await handler(page.items);
        failures = 0;
      } catch (error) {
        failures++;
        if (failures < EVENT_TAIL_ATTEMPTS_MAX) throw error;
        // A batch that keeps failing would stop every later event: skip it, loudly.
        logger.error(
          { err: error, from: page.items[0]?.id, to: page.items.at(-1)?.id },
          'event tail gave up on a batch its subscribers keep failing',
        );
        failures = 0;
      }
      cursor = page.items.at(-1)?.id ?? cursor;
      delivered += page.items.length;
      if (!page.hasMore) return delivered;
    }
  }

  function enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      enqueue(drain)
        .catch((error) => logger.warn({ err: error }, 'event tail could not read the event log'))
        .finally(schedule);
    }, pollIntervalMs);
    // Polling alone must not keep a process alive.
    timer.unref();
  }

  /** Whether the cursor has reached `target` in commit order. */
  async function reached(target: EventId): Promise<boolean> {
    if (cursor === null) return false;
    const { rows } = await sql<{ reached: boolean }>`
      select (c.tx_id, c.seq) >= (t.tx_id, t.seq) as reached
      from events c, events t
      where c.id = ${cursor} and t.id = ${target}`.execute(db);
    return rows[0]?.reached === true;
  }

  return {
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },

    async endPosition() {
      const row = await db
        .selectFrom('events')
        .select('id')
        .where('tx_id', '<', await readHorizon(db))
        .orderBy('tx_id', 'desc')
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return (row?.id as EventId | undefined) ?? null;
    },

    start(position) {
      if (started) throw new Error('The event tail is already started');
      started = true;
      cursor = position;
      schedule();
    },

    async sync() {
      // The newest committed event, whether or not older transactions still hide it from readers.
      let newestQuery = db.selectFrom('events').select('id');
      if (options.types) newestQuery = newestQuery.where('type', 'in', options.types);
      const newest = await newestQuery
        .orderBy('tx_id', 'desc')
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      const target = (newest?.id as EventId | undefined) ?? null;
      const deadline = Date.now() + EVENT_TAIL_SYNC_TIMEOUT_MS;
      for (;;) {
        await enqueue(drain);
        if (target === null || (await reached(target))) return;
        if (Date.now() > deadline) {
          throw new Error(`The event tail did not reach ${target} within ${EVENT_TAIL_SYNC_TIMEOUT_MS} ms`);
        }
        // A transaction older than the target still runs somewhere; its end makes the target readable.
        await new Promise((resolve) => setTimeout(resolve, SYNC_RETRY_MS));
      }
    },

    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await queue;
    },

    get position() {
      return cursor;
    },
  };
}
