import { CompiledQuery } from 'kysely';
import type pg from 'pg';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { assert } from '../assert.js';
import type { Context } from '../context.js';
import { requireTransaction } from '../database/database.js';
import { afterCommit } from '../database/pipelined-driver.js';

/** A background job's handler; it receives the data the job was enqueued with. */
export type JobHandler<T> = (data: T) => Promise<void>;

export interface JobDefinition<T> {
  readonly name: string;
  readonly handler: JobHandler<T>;
  /** A cron expression (UTC) on which Baton enqueues this job by itself. */
  readonly cron?: string;
  /** Attempts before a failing job is given up. */
  readonly retryLimit?: number;
  /**
   * How long a worker waits between fetches, at least 0.5 s: jobs a request waits for (charging
   * a payment) want less than the default.
   */
  readonly pollingIntervalSeconds?: number;
  /**
   * Jobs of this name a process runs at once, 1 by default. More suits jobs that wait on
   * others (a payment provider) and never on each other: each holds a database connection
   * while it runs, so keep it well below the pool's size.
   */
  readonly concurrency?: number;
}

export interface EnqueueOptions {
  /** Run no earlier than this. */
  readonly startAfter?: Date;
  /** At most one queued job per key. */
  readonly singletonKey?: string;
}

/**
 * Background jobs and timers, kept in the database by pg-boss so they survive restarts and are
 * shared by every Baton process (jobs are claimed with SKIP LOCKED).
 */
export interface Jobs {
  /** Declares a job; call before `start`. */
  define<T extends object>(definition: JobDefinition<T>): void;
  /**
   * Enqueues a job in the caller's transaction: it exists if and only if the caller commits. A
   * job due at once wakes this process's worker for it when the caller commits, so it starts
   * then rather than at the worker's next poll (other processes find it at their next poll).
   */
  enqueue<T extends object>(ctx: Context, name: string, data: T, options?: EnqueueOptions): Promise<void>;
  /** Prepares the queues, and when `work` is set, starts working them and the cron schedules. */
  start(options: { work: boolean }): Promise<void>;
  stop(): Promise<void>;
  /**
   * Works, in this process and one at a time, the jobs of `name` that are queued and due, until
   * none is left or `limit` ran; returns how many ran. For processes that do not start workers
   * (tests, the command line). A job that throws is failed, to be retried as its definition says.
   */
  runQueued(name: string, options?: { limit?: number }): Promise<number>;
}

/** Jobs `runQueued` works by default before it returns. */
const RUN_QUEUED_LIMIT = 1_000;

const POLLING_INTERVAL_SECONDS = 2;
/**
 * Jobs a worker fetches at once. pg-boss waits out the polling interval after every fetch, even
 * one that found work, so one job per fetch would cap each queue at one job per interval.
 */
const FETCH_BATCH_SIZE = 20;
/** How long `stop` waits for jobs under way to finish before it gives up on them. */
const STOP_WAIT_MS = 10_000;
const STOP_POLL_MS = 20;

export function createJobs({ pool, logger }: { pool: pg.Pool; logger: Logger }): Jobs {
  const definitions = new Map<string, JobDefinition<object>>();
  let boss: PgBoss | null = null;
  /** This process's worker of each job it works. */
  const workers = new Map<string, string>();
  /*
   * What is under way, for `stop` to wait for: pg-boss's own statements (a worker's fetch among
   * them, which may yet bring jobs) and the handlers of fetched jobs.
   */
  let statementsUnderWay = 0;
  let handlersUnderWay = 0;
  const executeSql = async (text: string, values: unknown[]) => {
    statementsUnderWay += 1;
    try {
      return await pool.query(text, values);
    } finally {
      statementsUnderWay -= 1;
    }
  };
  /**
   * Resolves once nothing is under way, or false after `STOP_WAIT_MS`. A fetch that returns jobs
   * hands them to their handler in the same chain of promise callbacks, so a check between two
   * timer ticks never falls in the gap between the two.
   */
  async function quiet(): Promise<boolean> {
    const until = Date.now() + STOP_WAIT_MS;
    while (statementsUnderWay > 0 || handlersUnderWay > 0) {
      if (Date.now() >= until) return false;
      await new Promise((resolve) => setTimeout(resolve, STOP_POLL_MS));
    }
    return true;
  }

  /** Runs one job; a job that throws is failed (to be retried as defined) and false returned. */
  async function runJob(
    definition: JobDefinition<object>,
    job: { id: string; data: object },
  ): Promise<boolean> {
    logger.debug({ job: definition.name, id: job.id }, 'job started');
    try {
      await definition.handler(job.data);
      return true;
    } catch (error) {
      logger.warn({ err: error, job: definition.name, id: job.id }, 'job failed');
      await boss?.fail(definition.name, job.id, {
        message: error instanceof Error ? error.message : String(error),
      });
      return false;
    }
  }

  /** The stop under way, which every caller of `stop` waits for. */
  let stopping: Promise<void> | null = null;

  async function drainAndStop(running: PgBoss): Promise<void> {
    // 1. No worker fetches again. A fetch under way may still bring jobs: they run to the end
    // (enqueueing and failing as usual) and pg-boss completes them, before the caller closes
    // the pool under them.
    const names = [...workers.keys()];
    workers.clear();
    for (const name of names) await running.offWork(name);
    if (!(await quiet())) logger.warn('jobs still running at shutdown; they run again once they expire');
    // 2. pg-boss's timers (schedules, maintenance), then the statements they had under way.
    await running.stop({ graceful: false });
    await quiet();
  }

  return {
    define(definition) {
      assert(boss === null, 'jobs must be defined before start');
      assert(!definitions.has(definition.name), `job ${definition.name} is defined twice`);
      assert(
        definition.concurrency === undefined ||
          (Number.isInteger(definition.concurrency) && definition.concurrency >= 1),
        `job ${definition.name} needs a concurrency of at least 1`,
      );
      definitions.set(definition.name, definition as JobDefinition<object>);
    },

    async enqueue(ctx, name, data, options = {}) {
      assert(boss !== null, 'jobs must be started before enqueueing');
      assert(definitions.has(name), `job ${name} is not defined`);
      requireTransaction(ctx.db);
      const tx = ctx.db;
      await boss.send(name, data, {
        ...(options.startAfter ? { startAfter: options.startAfter } : {}),
        ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
        retryLimit: definitions.get(name)?.retryLimit ?? 5,
        retryBackoff: true,
        db: {
          executeSql: (text: string, values: unknown[]) => tx.executeQuery(CompiledQuery.raw(text, values)),
        },
      });
      const worker = workers.get(name);
      if (worker && (!options.startAfter || options.startAfter <= ctx.now)) {
        await afterCommit(tx, () => boss?.notifyWorker(worker));
      }
    },

    async start({ work }) {
      assert(boss === null, 'jobs are already started');
      boss = new PgBoss({
        db: { executeSql },
        supervise: work,
        schedule: work,
        migrate: true,
      });
      boss.on('error', (error) => logger.error({ err: error }, 'job queue error'));
      await boss.start();
      for (const definition of definitions.values()) {
        await boss.createQueue(definition.name);
        if (!work) continue;
        if (definition.cron) await boss.schedule(definition.name, definition.cron, {}, { tz: 'UTC' });
        const worker = await boss.work<object>(
          definition.name,
          {
            pollingIntervalSeconds: definition.pollingIntervalSeconds ?? POLLING_INTERVAL_SECONDS,
            batchSize: FETCH_BATCH_SIZE,
          },
          async (jobs) => {
            // One failing job fails alone: the others of its batch complete when this returns
            // (pg-boss completes only jobs still active). Jobs fetched while stopping still run:
            // they are claimed, and `stop` waits for them.
            handlersUnderWay += 1;
            try {
              let next = 0;
              const lane = async () => {
                for (let job = jobs[next++]; job; job = jobs[next++]) await runJob(definition, job);
              };
              await Promise.all(
                Array.from({ length: Math.min(definition.concurrency ?? 1, jobs.length) }, lane),
              );
            } finally {
              handlersUnderWay -= 1;
            }
          },
        );
        workers.set(definition.name, worker);
      }
    },

    async runQueued(name, { limit = RUN_QUEUED_LIMIT } = {}) {
      assert(boss !== null, 'jobs must be started before running them');
      const definition = definitions.get(name);
      assert(definition, `job ${name} is not defined`);
      let ran = 0;
      while (ran < limit) {
        const [job] = await boss.fetch<object>(name, { batchSize: 1 });
        if (!job) break;
        ran += 1;
        if (await runJob(definition, job)) await boss.complete(name, job.id);
      }
      return ran;
    },

    async stop() {
      if (!boss) return;
      stopping ??= drainAndStop(boss).finally(() => {
        boss = null;
        stopping = null;
      });
      await stopping;
    },
  };
}
