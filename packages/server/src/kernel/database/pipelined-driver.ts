import {
  type Compilable,
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  type Insertable,
  isCompilable,
  type Kysely,
  PostgresDialect,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type pg from 'pg';
import { assert } from '../assert.js';
import type { Tables } from './tables.js';

/*
 * Every statement of a request used to be one round trip to the database: written, then waited
 * for, before the next was written. Most of a write's time went into those waits, and much of
 * the server's CPU into the system calls that wrote each statement. This driver puts
 * node-postgres in pipeline mode (a client writes a statement without waiting for the answers
 * to the ones before), and holds back the statements whose answers nobody needs yet, to write
 * them in one go with the next statement that is waited for:
 *
 * - `begin` goes with the transaction's first statement (a transaction that sends nothing
 *   costs nothing);
 * - `executeUnawaited` queues a statement (a savepoint, an upsert whose result is not read);
 * - `executeTogether` writes several statements and waits once for all their answers;
 * - `insertAtCommit` keeps rows (events, audit records) in memory and writes them as one
 *   multi-row insert per table, with `commit`.
 *
 * Errors keep their meaning: a statement's failure is reported by the next statement that is
 * waited for (or by `commit`), before any failure of its own, so callers see the error that
 * broke the transaction, not the "current transaction is aborted" that follows it.
 *
 * Statements sent again and again are prepared once per connection (see
 * `PreparedNames`): the database then parses them once, and plans them once when a generic plan
 * serves as well as one made for the values, instead of at every call.
 */

/** Rows of one table written by one insert when buffered rows are flushed (9 columns: 9,000 parameters). */
const BUFFERED_ROWS_PER_INSERT_MAX = 1_000;
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
const SAVEPOINT = /^\s*savepoint\b/i;
const ROLLBACK_TO_SAVEPOINT = /^\s*rollback\s+to\b/i;

/** Uses of a statement's text through one pool before it is prepared on the connections that run it. */
const PREPARE_AFTER_USES = 3;
/** Statements prepared on one connection at most; later ones are sent unprepared. */
const PREPARED_PER_CONNECTION_MAX = 400;
/** Statements given a name through one pool at most. */
const NAMES_MAX = 2_000;
/** Texts whose uses are counted at once; the count starts over beyond it. */
const TEXTS_COUNTED_MAX = 10_000;
/** Longer texts (inserts of many rows) are never prepared: they are seldom sent twice alike. */
const PREPARED_TEXT_LENGTH_MAX = 16_384;
/** PostgreSQL's refusal to run a prepared statement whose result's columns changed since it was prepared. */
const STALE_PREPARED_STATEMENT = /cached plan must not change result type/;

/**
 * The names under which a pool's statements are prepared, one per text for all its connections,
 * so that a name means the same statement on every connection. A text earns one by being sent
 * `PREPARE_AFTER_USES` times; statements without parameters (`begin`, `commit`, savepoints,
 * schema changes) never do. A name whose statement became stale (a migration changed the
 * columns it returns) is dropped: that call fails once, and the next prepares the text afresh
 * under a new name.
 */
class PreparedNames {
  readonly #uses = new Map<string, number>();
  readonly #names = new Map<string, string>();
  readonly #enabled: boolean;
  #issued = 0;

  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  nameOf(text: string, parameterCount: number): string | undefined {
    if (!this.#enabled) return undefined;
    const name = this.#names.get(text);
    if (name !== undefined || parameterCount === 0 || text.length > PREPARED_TEXT_LENGTH_MAX) return name;
    const uses = (this.#uses.get(text) ?? 0) + 1;
    if (uses < PREPARE_AFTER_USES || this.#names.size >= NAMES_MAX) {
      if (this.#uses.size >= TEXTS_COUNTED_MAX) this.#uses.clear();
      this.#uses.set(text, uses);
      return undefined;
    }
    this.#uses.delete(text);
    const named = `baton_${++this.#issued}`;
    this.#names.set(text, named);
    return named;
  }

  forget(text: string): void {
    this.#names.delete(text);
  }
}

type Row = Readonly<Record<string, unknown>>;
type ConnectionUse = (connection: PipelinedConnection) => Promise<void>;

/**
 * Marker queries that stand for "run this function with the connection": Kysely hands every
 * query of a transaction to the transaction's connection, one at a time, so this is how the
 * helpers below reach the connection under a `Transaction` in order with its other statements.
 */
const connectionUses = new WeakMap<CompiledQuery, ConnectionUse>();

const ignore = () => {};

/**
 * What a marker query holds. Only a connection of this driver runs markers, and it runs their
 * function instead; should another driver ever see one, its statement fails loudly.
 */
const MARKER = CompiledQuery.raw(
  "do $$ begin raise exception 'a connection of the pipelined driver is required'; end $$",
);

/** Runs `use` with the connection under `executor` (a transaction's own connection, or one of the pool's). */
async function withConnection<T>(
  executor: Kysely<Tables>,
  use: (connection: PipelinedConnection) => T | Promise<T>,
): Promise<T> {
  let value: T | undefined;
  // A fresh object per use, as the key of the function; its statement is never sent.
  const marker: CompiledQuery = { ...MARKER };
  connectionUses.set(marker, async (connection) => {
    value = await use(connection);
  });
  await executor.executeQuery(marker);
  return value as T;
}

/**
 * Queues `query` in the caller's transaction without waiting for its answer: it is written
 * with the next statement that is waited for (at the latest `commit`), which reports its
 * failure. Only statements whose result is not read may be sent this way.
 */
export async function executeUnawaited(
  executor: Kysely<Tables>,
  query: Compilable | CompiledQuery,
): Promise<void> {
  assert(executor.isTransaction, 'a statement sent without waiting must run inside a transaction');
  const compiled = isCompilable(query) ? query.compile() : query;
  await withConnection(executor, (connection) => connection.send(compiled));
}

/**
 * Sends `queries` one after the other in a single round trip and returns their results, in
 * order. Each runs as its own statement (in read committed, with its own snapshot, after the
 * one before it has finished). The first failure is thrown.
 */
export function executeTogether(
  executor: Kysely<Tables>,
  queries: readonly (Compilable | CompiledQuery)[],
): Promise<QueryResult<unknown>[]> {
  const compiled = queries.map((query) => (isCompilable(query) ? query.compile() : query));
  return withConnection(executor, (connection) => connection.executeAll(compiled));
}

/**
 * Inserts `row` into `table` when the caller's transaction commits, with the other rows of that
 * table in one statement, in the order they were given. The row is written only if the
 * transaction commits, like any other insert: a rolled-back savepoint drops the rows given
 * after it, and a statement of the transaction that names the table sees them (they are
 * written just before it). Nothing is returned: ids and defaults the caller needs must be in
 * `row`.
 */
export async function insertAtCommit<T extends keyof Tables & string>(
  executor: Kysely<Tables>,
  table: T,
  row: Insertable<Tables[T]>,
): Promise<void> {
  assert(executor.isTransaction, 'rows inserted at commit must belong to a transaction');
  await withConnection(executor, (connection) => connection.bufferRow(table, row as Row));
}

/**
 * Calls `callback` once the caller's transaction has committed, and never if it does not: for
 * telling the rest of this process what the transaction made visible (a job a worker here can
 * take at once). Only a hint may be given this way: it runs after the commit, so it cannot undo
 * it, and it also runs when a savepoint it was given after was rolled back. A callback that
 * throws is not reported to the committer, whose transaction succeeded.
 */
export async function afterCommit(executor: Kysely<Tables>, callback: () => void): Promise<void> {
  assert(executor.isTransaction, 'a callback after commit needs a transaction');
  await withConnection(executor, (connection) => connection.onCommit(callback));
}

/** A statement not yet written to the connection. */
interface Statement {
  readonly text: string;
  readonly parameters: readonly unknown[];
}

/**
 * A connection that writes statements whose answers nobody waits for yet together with the
 * next one that is waited for, and checks all answers in order. On a client without pipeline
 * mode it sends one statement at a time, so it stays correct, only slower.
 */
class PipelinedConnection implements DatabaseConnection {
  readonly #client: pg.PoolClient;
  #inTransaction = false;
  /** Whether this transaction's `begin` was written: until then the transaction has cost nothing. */
  #begun = false;
  /** A transaction whose end failed: the connection's state is unknown, so it is not reused. */
  #broken = false;
  /** Statements whose answers nobody waits for, to be written with the next one that is waited for. */
  #outbox: Statement[] = [];
  /** Answers of statements written but not yet checked, in the order written. */
  #unchecked: Promise<pg.QueryResult>[] = [];
  /** Rows to insert before the next statement that needs them, at the latest at commit, by table. */
  readonly #buffered = new Map<string, Row[]>();
  /** Without pipeline mode, the statement each new one must wait for. */
  #tail: Promise<unknown> = Promise.resolve();
  /** What to call once this transaction has committed. */
  #committed: (() => void)[] = [];
  readonly #names: PreparedNames;
  /** Names of the statements prepared on this connection (or being prepared). */
  readonly #prepared = new Set<string>();

  constructor(client: pg.PoolClient, names: PreparedNames) {
    this.#client = client;
    this.#names = names;
  }

  get broken(): boolean {
    return this.#broken;
  }

  get client(): pg.PoolClient {
    return this.#client;
  }

  /** Whether the connection is idle and can go back to the pool. */
  get idle(): boolean {
    return (
      !this.#inTransaction &&
      this.#outbox.length === 0 &&
      this.#unchecked.length === 0 &&
      this.#buffered.size === 0
    );
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const use = connectionUses.get(query);
    if (use) {
      await use(this);
      return { rows: [] };
    }
    try {
      const [result] = await this.executeAll([query]);
      return result as QueryResult<R>;
    } catch (error) {
      // The database's error tells what failed; the stack from here tells which code sent it.
      if (error instanceof Error)
        error.stack = `${error.stack}\n${new Error().stack?.split('\n').slice(1).join('\n')}`;
      throw error;
    }
  }

  // biome-ignore lint/correctness/useYield: streaming is not offered, it needs a cursor across round trips.
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming queries is not supported by the pipelined driver');
  }

  /**
   * Writes the waiting statements and `queries`, then waits for the answers, reporting the first
   * failure in the order written: the failure that broke the transaction, not the "current
   * transaction is aborted" of the statements after it.
   */
  async executeAll(queries: readonly CompiledQuery[]): Promise<QueryResult<unknown>[]> {
    assert(queries.length > 0, 'statements to execute together need at least one');
    for (const query of queries) this.#enqueue(query.sql, query.parameters);
    const answers = this.#write().slice(-queries.length);
    await this.#checkAnswers();
    return Promise.all(answers.map(async (answer) => toQueryResult(await answer)));
  }

  /** Queues `query` to be written with the next statement that is waited for. */
  send(query: CompiledQuery): void {
    assert(this.#inTransaction, 'a statement sent without waiting must run inside a transaction');
    this.#enqueue(query.sql, query.parameters);
  }

  onCommit(callback: () => void): void {
    assert(this.#inTransaction, 'a callback after commit needs a transaction');
    this.#committed.push(callback);
  }

  bufferRow(table: string, row: Row): void {
    assert(this.#inTransaction, 'rows inserted at commit must belong to a transaction');
    assert(IDENTIFIER.test(table), `not a plain table name: ${table}`);
    const rows = this.#buffered.get(table);
    if (rows) rows.push(row);
    else this.#buffered.set(table, [row]);
  }

  begin(settings: TransactionSettings): void {
    assert(this.idle, 'a transaction is already open on this connection');
    let text = 'begin';
    if (settings.isolationLevel || settings.accessMode) {
      text = 'start transaction';
      if (settings.isolationLevel) text += ` isolation level ${settings.isolationLevel}`;
      if (settings.accessMode) text += ` ${settings.accessMode}`;
    }
    this.#inTransaction = true;
    this.#begun = false;
    /*
     * Written with the transaction's first statement. Should it fail, that statement reports
     * the failure; and a `begin` that fails on a connection able to run the next statement is
     * not a failure PostgreSQL has (it fails only with the connection).
     */
    this.#outbox.push({ text, parameters: [] });
  }

  async commit(): Promise<void> {
    const committed = this.#committed;
    this.#committed = [];
    try {
      this.#flushRows();
      if (!this.#begun && this.#outbox.length === 1) {
        // Nothing but `begin`: a transaction that did nothing needs no round trip.
        this.#outbox = [];
        callAll(committed);
        return;
      }
      this.#enqueue('commit', []);
      const commit = this.#write().at(-1);
      await this.#checkAnswers();
      // PostgreSQL answers `commit` in a failed transaction by rolling it back, without an error.
      // A failure is always reported before (by the statement that failed); this is the last guard
      // against ever reporting a write as done that was not.
      assert((await commit)?.command === 'COMMIT', 'the transaction failed and was rolled back at commit');
      callAll(committed);
    } catch (error) {
      // Kysely rolls back after a failed commit; the transaction is already over.
      this.#buffered.clear();
      this.#outbox = [];
      throw error;
    } finally {
      this.#inTransaction = false;
    }
  }

  async rollback(): Promise<void> {
    // The transaction is abandoned: what was not written need not be, and the failures of what
    // was are reported already, or moot.
    this.#buffered.clear();
    this.#outbox = [];
    this.#committed = [];
    this.#inTransaction = false;
    if (!this.#begun) return;
    this.#enqueue('rollback', []);
    const [rollback] = this.#write();
    this.#unchecked = [];
    try {
      await rollback;
    } catch (error) {
      this.#broken = true;
      throw error;
    }
  }

  /** Queues a statement, keeping the buffered rows consistent with it. */
  #enqueue(text: string, parameters: readonly unknown[]): void {
    if (this.#buffered.size > 0) {
      if (ROLLBACK_TO_SAVEPOINT.test(text)) {
        // Every buffered row was given after the newest savepoint (the rows are written whenever a
        // savepoint is taken), so after any savepoint still open: rolling back to one drops them all.
        this.#buffered.clear();
      } else if (SAVEPOINT.test(text) || [...this.#buffered.keys()].some((table) => mentions(text, table))) {
        this.#flushRows();
      }
    }
    this.#outbox.push({ text, parameters });
  }

  /** Queues one insert per table (per `BUFFERED_ROWS_PER_INSERT_MAX` rows) for the buffered rows. */
  #flushRows(): void {
    for (const [table, rows] of this.#buffered) {
      for (let start = 0; start < rows.length; start += BUFFERED_ROWS_PER_INSERT_MAX) {
        this.#outbox.push(multiRowInsert(table, rows.slice(start, start + BUFFERED_ROWS_PER_INSERT_MAX)));
      }
    }
    this.#buffered.clear();
  }

  /**
   * Writes the queued statements, in one system call when the socket allows it, and returns
   * their answers (which are also left for `#checkAnswers`).
   */
  #write(): Promise<pg.QueryResult>[] {
    const statements = this.#outbox;
    this.#outbox = [];
    if (this.#inTransaction) this.#begun = true;
    const stream = this.#client.pipeline ? this.#client.connection.stream : undefined;
    // node-postgres corks the socket around each statement; corked around all of them, they
    // leave in one write instead of one each.
    const corks = typeof stream?.cork === 'function';
    if (corks) stream.cork();
    try {
      return statements.map((statement) => this.#submit(statement));
    } finally {
      if (corks) stream.uncork();
    }
  }

  #submit({ text, parameters }: Statement): Promise<pg.QueryResult> {
    const query: pg.QueryConfig = { text, values: [...parameters] };
    const name = this.#names.nameOf(text, parameters.length);
    if (
      name !== undefined &&
      (this.#prepared.has(name) || this.#prepared.size < PREPARED_PER_CONNECTION_MAX)
    ) {
      this.#prepared.add(name);
      query.name = name;
    }
    let answer: Promise<pg.QueryResult>;
    if (this.#client.pipeline) {
      answer = this.#client.query(query);
    } else {
      answer = this.#tail.then(() => this.#client.query(query));
      this.#tail = answer.catch(ignore);
    }
    // Checked in order by `#checkAnswers`; a failure nobody waits for must not crash the process.
    answer.catch((error: unknown) => {
      if (query.name !== undefined && error instanceof Error && STALE_PREPARED_STATEMENT.test(error.message))
        this.#names.forget(text);
    });
    this.#unchecked.push(answer);
    return answer;
  }

  /** Waits for every answer not yet checked, in order, and throws the first failure. */
  async #checkAnswers(): Promise<void> {
    const answers = this.#unchecked;
    this.#unchecked = [];
    for (const answer of answers) await answer;
  }
}

/** Calls each callback given to `afterCommit`; one that throws does not stop the others. */
function callAll(callbacks: readonly (() => void)[]): void {
  for (const callback of callbacks) {
    try {
      callback();
    } catch {
      // A hint that failed changes nothing that was committed.
    }
  }
}

const mentionPatterns = new Map<string, RegExp>();

function mentions(text: string, table: string): boolean {
  let pattern = mentionPatterns.get(table);
  if (!pattern) {
    pattern = new RegExp(`\\b${table}\\b`, 'i');
    mentionPatterns.set(table, pattern);
  }
  return pattern.test(text);
}

function multiRowInsert(table: string, rows: readonly Row[]): { text: string; parameters: unknown[] } {
  const first = rows[0];
  assert(first !== undefined, 'an insert needs rows');
  const columns = Object.keys(first);
  for (const column of columns) assert(IDENTIFIER.test(column), `not a plain column name: ${column}`);
  const parameters: unknown[] = [];
  const tuples: string[] = [];
  for (const row of rows) {
    assert(Object.keys(row).length === columns.length, `rows of ${table} differ in their columns`);
    const placeholders = columns.map((column) => {
      const value = row[column];
      assert(value !== undefined, `${table}.${column} is missing from a row`);
      parameters.push(value);
      return `$${parameters.length}`;
    });
    tuples.push(`(${placeholders.join(', ')})`);
  }
  const columnList = columns.map((column) => `"${column}"`).join(', ');
  return { text: `insert into "${table}" (${columnList}) values ${tuples.join(', ')}`, parameters };
}

function toQueryResult(result: pg.QueryResult): QueryResult<unknown> {
  const { command, rowCount, rows } = result;
  return {
    ...(command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE'
      ? { numAffectedRows: BigInt(rowCount ?? 0) }
      : {}),
    rows: rows ?? [],
  };
}

export interface DriverOptions {
  /** Whether statements sent again and again are prepared on each connection (default true). */
  readonly prepare?: boolean;
}

class PipelinedPostgresDriver implements Driver {
  readonly #pool: pg.Pool;
  readonly #connections = new WeakMap<pg.PoolClient, PipelinedConnection>();
  readonly #names: PreparedNames;

  constructor(pool: pg.Pool, options: DriverOptions) {
    this.#pool = pool;
    this.#names = new PreparedNames(options.prepare ?? true);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    const client = await this.#pool.connect();
    let connection = this.#connections.get(client);
    if (!connection) {
      connection = new PipelinedConnection(client, this.#names);
      this.#connections.set(client, connection);
    }
    return connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    (connection as PipelinedConnection).begin(settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as PipelinedConnection).commit();
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as PipelinedConnection).rollback();
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdentifier(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdentifier(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdentifier(name)}`));
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const pipelined = connection as PipelinedConnection;
    // A connection in an unknown state (a failed rollback, answers never checked) is closed,
    // never handed to the next request.
    const reusable = pipelined.idle && !pipelined.broken;
    if (!reusable) this.#connections.delete(pipelined.client);
    pipelined.client.release(!reusable);
  }

  async destroy(): Promise<void> {
    await this.#pool.end();
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** PostgreSQL through a pool of pipelined clients (`pipeline: true`), with the driver above. */
export class PipelinedPostgresDialect extends PostgresDialect {
  readonly #pool: pg.Pool;
  readonly #options: DriverOptions;

  constructor(pool: pg.Pool, options: DriverOptions = {}) {
    super({ pool });
    this.#pool = pool;
    this.#options = options;
  }

  override createDriver(): Driver {
    return new PipelinedPostgresDriver(this.#pool, this.#options);
  }
}
