import { sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { NormalSide, OwnerKind } from '../domain/chart.js';
import {
  type Cause,
  type CauseKind,
  isProviderCause,
  PROVIDER_CAUSE_KINDS,
  type ProviderCauseKind,
} from '../domain/posting.js';
import type { LedgerAccountsTable } from './tables.js';

/*
 * The ledger's SQL. Postings are written set-based, a whole batch in one statement (see
 * `postTransactions`): it reads the idempotency keys already taken, locks every balance row the
 * batch touches (in a fixed order, so concurrent postings cannot deadlock on them), checks that
 * no non-negative account goes below zero, and writes the transactions, their entries and the
 * balance changes together.
 */

export interface Account {
  readonly id: string;
  readonly purpose: string;
  readonly ownerKind: OwnerKind;
  readonly ownerId: string;
  readonly currency: string;
  readonly normalSide: NormalSide;
  readonly nonNegative: boolean;
  readonly slots: number;
  readonly createdAt: Date;
}

export interface Entry {
  readonly accountId: string;
  readonly currency: string;
  readonly direction: NormalSide;
  readonly amountMinor: bigint;
}

export interface LedgerTransaction {
  readonly id: string;
  readonly idempotencyKey: string;
  readonly description: string;
  readonly cause: Cause;
  readonly metadata: Readonly<Record<string, string>>;
  readonly postedAt: Date;
  readonly entries: readonly Entry[];
  /** Hex SHA-256 of the transaction's content, the link the hash chain covers. */
  readonly contentHash: string;
}

export const accountFromRow = (row: LedgerAccountsTable): Account => ({
  id: row.id,
  purpose: row.purpose,
  ownerKind: row.owner_kind,
  ownerId: row.owner_id,
  currency: row.currency,
  normalSide: row.normal_side,
  nonNegative: row.non_negative,
  slots: row.slots,
  createdAt: row.created_at,
});

/**
 * Finds accounts by purpose, owner and currency, all in one query. `createdHere` tells whether a
 * row was written by the calling transaction (and so may still be rolled back).
 */
export async function findAccountsByKey(
  db: Executor,
  keys: readonly { purpose: string; ownerId: string; currency: string }[],
): Promise<{ account: Account; createdHere: boolean }[]> {
  if (keys.length === 0) return [];
  const { rows } = await sql<LedgerAccountsTable & { created_here: boolean }>`
    select ledger_accounts.*, ${CREATED_HERE} as created_here
    from unnest(
      ${keys.map((k) => k.purpose)}::text[],
      ${keys.map((k) => k.ownerId)}::text[],
      ${keys.map((k) => k.currency)}::text[]
    ) as k(purpose, owner_id, currency)
    join ledger_accounts
      on ledger_accounts.purpose = k.purpose and ledger_accounts.owner_id = k.owner_id and ledger_accounts.currency = k.currency`.execute(
    db,
  );
  return rows.map((row) => ({ account: accountFromRow(row), createdHere: row.created_here }));
}

/**
 * Inserts accounts and their balance slots in one statement, skipping those whose purpose, owner
 * and currency another account already has; returns the accounts inserted.
 */
export async function openAccounts(db: Executor, accounts: readonly Account[]): Promise<Account[]> {
  if (accounts.length === 0) return [];
  const { rows } = await sql<LedgerAccountsTable>`
    with a as (
      insert into ledger_accounts (id, purpose, owner_kind, owner_id, currency, normal_side, non_negative, slots, created_at)
      select * from unnest(
        ${accounts.map((a) => a.id)}::text[],
        ${accounts.map((a) => a.purpose)}::text[],
        ${accounts.map((a) => a.ownerKind)}::text[],
        ${accounts.map((a) => a.ownerId)}::text[],
        ${accounts.map((a) => a.currency)}::text[],
        ${accounts.map((a) => a.normalSide)}::text[],
        ${accounts.map((a) => a.nonNegative)}::boolean[],
        ${accounts.map((a) => a.slots)}::int2[],
        ${accounts.map((a) => a.createdAt)}::timestamptz[]
      )
      on conflict (purpose, owner_id, currency) do nothing
      returning *
    ), b as (
      insert into ledger_balances (account_id, slot, balance_minor, normal_sign, non_negative)
      select a.id, slot, 0, case when a.normal_side = 'debit' then 1 else -1 end, a.non_negative
      from a cross join lateral generate_series(0, a.slots - 1) as slot
    )
    select * from a`.execute(db);
  return rows.map(accountFromRow);
}

export async function findAccountsById(
  db: Executor,
  ids: readonly string[],
): Promise<{ account: Account; createdHere: boolean }[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('ledger_accounts')
    .selectAll()
    .select(sql<boolean>`${CREATED_HERE}`.as('created_here'))
    .where('id', 'in', ids)
    .execute();
  return rows.map((row) => ({ account: accountFromRow(row), createdHere: row.created_here }));
}

/*
 * Whether the row may have been written by the current transaction, which could still roll
 * back (a savepoint rolled back, or the whole transaction): such an account must not be
 * remembered. The row's xmin is the id of the (sub)transaction that wrote it, in 32 bits, and
 * a subtransaction's id follows its parent's, so the test is "xmin follows or equals the
 * current transaction id" in the database's circular xid order. A transaction without an id
 * has written nothing. Rows written by transactions that began later and committed also pass
 * the test; they are merely not remembered this time.
 */
const CREATED_HERE = sql`coalesce((ledger_accounts.xmin::text::int8 - pg_current_xact_id_if_assigned()::text::int8 % 4294967296 + 4294967296) % 4294967296 < 2147483648, false)`;

export interface AccountListFilter {
  readonly ownerId?: string | undefined;
  readonly ownerKind?: OwnerKind | undefined;
  readonly purpose?: string | undefined;
  readonly currency?: string | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

export async function listAccounts(db: Executor, filter: AccountListFilter): Promise<Account[]> {
  let query = db
    .selectFrom('ledger_accounts')
    .selectAll()
    .orderBy('id')
    .limit(filter.limit + 1);
  if (filter.ownerId !== undefined) query = query.where('owner_id', '=', filter.ownerId);
  if (filter.ownerKind !== undefined) query = query.where('owner_kind', '=', filter.ownerKind);
  if (filter.purpose !== undefined) query = query.where('purpose', '=', filter.purpose);
  if (filter.currency !== undefined) query = query.where('currency', '=', filter.currency);
  if (filter.after !== undefined) query = query.where('id', '>', filter.after);
  return (await query.execute()).map(accountFromRow);
}

export interface ExistingPosting {
  readonly id: string;
  readonly idempotencyKey: string;
  readonly fingerprint: Buffer;
}

export async function findPostingsByKey(db: Executor, keys: readonly string[]): Promise<ExistingPosting[]> {
  if (keys.length === 0) return [];
  const rows = await db
    .selectFrom('ledger_transactions')
    .select(['id', 'idempotency_key', 'fingerprint'])
    .where('idempotency_key', 'in', keys)
    .execute();
  return rows.map((row) => ({
    id: row.id,
    idempotencyKey: row.idempotency_key,
    fingerprint: row.fingerprint,
  }));
}

export interface SlotRef {
  readonly accountId: string;
  readonly slot: number;
}

/**
 * Locks the balance slots a posting will change and every slot of the accounts in `sweep`, in
 * (account, slot) order, gathers each swept account's balance into its slot 0 (ledger migration
 * 0006), and returns the locked balances (debits positive). Every posting locks in the same
 * order, so two postings never wait for each other in a cycle.
 */
export async function lockSlots(
  db: Executor,
  slots: readonly SlotRef[],
  sweep: readonly string[] = [],
): Promise<Map<string, bigint>> {
  if (slots.length === 0 && sweep.length === 0) return new Map();
  const { rows } = await sql<{ account_id: string; slot: number; balance_minor: bigint }>`
    select account_id, slot, balance_minor from ledger_lock(
      ${slots.map((s) => s.accountId)}::text[], ${slots.map((s) => s.slot)}::int2[], ${sweep}::text[]
    )`.execute(db);
  return new Map(rows.map((row) => [slotKey(row.account_id, row.slot), BigInt(row.balance_minor)]));
}

export const slotKey = (accountId: string, slot: number) => `${accountId}#${slot}`;

export interface PostingRow {
  readonly id: string;
  readonly idempotencyKey: string;
  readonly description: string;
  readonly cause: Cause;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fingerprint: Buffer;
  readonly contentHash: Buffer;
  readonly entries: readonly (Entry & { readonly slot: number })[];
}

/**
 * The postings' columns as array parameters, in the order both posting statements take them:
 * ids, keys, descriptions, cause kinds, cause ids, metadata, fingerprints, content hashes.
 */
function postingArrays(postings: readonly PostingRow[]) {
  return sql.join([
    sql`${postings.map((p) => p.id)}::text[]`,
    sql`${postings.map((p) => p.idempotencyKey)}::text[]`,
    sql`${postings.map((p) => p.description)}::text[]`,
    sql`${postings.map((p) => p.cause.kind)}::text[]`,
    sql`${postings.map((p) => p.cause.id)}::text[]`,
    sql`${postings.map((p) => JSON.stringify(p.metadata))}::jsonb[]`,
    sql`${postings.map((p) => p.fingerprint)}::bytea[]`,
    sql`${postings.map((p) => p.contentHash)}::bytea[]`,
  ]);
}

/**
 * The postings' entries as array parameters, in the order both posting statements take them:
 * transaction ids, positions, accounts, currencies, signed amounts (debits positive), slots.
 */
function entryArrays(postings: readonly PostingRow[]) {
  const entries = postings.flatMap((posting) =>
    posting.entries.map((entry, position) => ({ transactionId: posting.id, position, ...entry })),
  );
  return sql.join([
    sql`${entries.map((e) => e.transactionId)}::text[]`,
    sql`${entries.map((e) => e.position)}::int2[]`,
    sql`${entries.map((e) => e.accountId)}::text[]`,
    sql`${entries.map((e) => e.currency)}::text[]`,
    sql`${entries.map((e) => (e.direction === 'debit' ? e.amountMinor : -e.amountMinor).toString())}::int8[]`,
    sql`${entries.map((e) => e.slot)}::int2[]`,
  ]);
}

/**
 * Writes transactions, entries and balance changes in one statement. A transaction whose key
 * another transaction took meanwhile is skipped with its entries and balance changes; the
 * ids of the transactions written are returned.
 */
export async function insertPostings(
  db: Executor,
  postedAt: Date,
  postings: readonly PostingRow[],
): Promise<Set<string>> {
  const { rows } = await sql<{ id: string }>`
    with t as (
      insert into ledger_transactions
        (id, idempotency_key, description, cause_kind, cause_id, metadata, posted_at, fingerprint, content_hash)
      select id, idempotency_key, description, cause_kind, cause_id, metadata, ${postedAt}::timestamptz, fingerprint, content_hash
      from unnest(
        ${postingArrays(postings)}
      ) as p(id, idempotency_key, description, cause_kind, cause_id, metadata, fingerprint, content_hash)
      order by id
      on conflict (idempotency_key) do nothing
      returning id
    ), d as (
      select * from unnest(
        ${entryArrays(postings)}
      ) as d(transaction_id, position, account_id, currency, amount_minor, slot)
      where d.transaction_id in (select id from t)
    ), e as (
      insert into ledger_entries (transaction_id, position, account_id, currency, amount_minor, posted_at)
      select transaction_id, position, account_id, currency, amount_minor, ${postedAt}::timestamptz from d
    ), u as (
      update ledger_balances b set balance_minor = b.balance_minor + x.delta
      from (select account_id, slot, sum(amount_minor)::int8 as delta from d group by account_id, slot) x
      where b.account_id = x.account_id and b.slot = x.slot
    )
    select id from t`.execute(db);
  return new Set(rows.map((row) => row.id));
}

export interface PostOutcome {
  /** Keys of the postings that already named a transaction when the statement began. */
  readonly taken: ReadonlyMap<string, ExistingPosting>;
  /** Whether the postings were applied; when not, nothing was written. */
  readonly applied: boolean;
  /** The ids of the transactions written (a key taken concurrently skips its posting). */
  readonly written: ReadonlySet<string>;
  /**
   * When not applied: the balances of the locked slots (debits positive), by `slotKey`, so that
   * the caller can decide item by item; the slots stay locked until its transaction ends.
   */
  readonly balances: ReadonlyMap<string, bigint>;
}

/**
 * Posts transactions in one round trip, a call of `ledger_post` (migrations 0003, 0004 and 0006),
 * which locks the balance slots the postings change, in (account, slot) order, with every slot
 * of the accounts in `sweep` gathered into slot 0 (see `lockSlots`), and then does this in one
 * statement, with a snapshot in which those slots cannot change any more:
 *   1. postings whose idempotency key already names a transaction are set aside (returned in
 *      `taken`, with the stored fingerprint, to be told apart as replays or conflicts);
 *   2. the balance slots of the others are read (and locked again, which costs little);
 *   3. if every non-negative account stays at or above zero after each posting in turn (a running
 *      sum in posting order), and, when `atomic`, no key is taken by other content, all of them
 *      are written with their entries and balance changes. Otherwise nothing is written, and the
 *      locked balances are returned for the caller to decide posting by posting (`insertPostings`).
 * A key taken by a concurrent transaction after the statement began skips its posting (`on
 * conflict do nothing`), which the caller sees as missing from `written`.
 */
export async function postTransactions(
  db: Executor,
  postedAt: Date,
  postings: readonly PostingRow[],
  options: { atomic: boolean; sweep: readonly string[] },
): Promise<PostOutcome> {
  const { rows } = await sql<{
    kind: 'written' | 'taken' | 'locked' | 'outcome';
    id: string | null;
    key: string | null;
    fingerprint: Buffer | null;
    slot: number | null;
    balance_minor: bigint | null;
  }>`
    select * from ledger_post(
      ${postingArrays(postings)},
      ${entryArrays(postings)},
      ${postedAt}::timestamptz,
      ${options.atomic}::boolean,
      ${options.sweep}::text[]
    )`.execute(db);
  const taken = new Map<string, ExistingPosting>();
  const written = new Set<string>();
  const balances = new Map<string, bigint>();
  let applied = false;
  for (const row of rows) {
    if (row.kind === 'outcome') applied = BigInt(row.balance_minor ?? 0n) === 1n;
    else if (row.kind === 'written') written.add(row.id as string);
    else if (row.kind === 'taken') {
      const key = row.key as string;
      taken.set(key, { id: row.id as string, idempotencyKey: key, fingerprint: row.fingerprint as Buffer });
    } else balances.set(slotKey(row.id as string, row.slot as number), BigInt(row.balance_minor ?? 0n));
  }
  return { taken, applied, written, balances };
}

interface TransactionRow {
  id: string;
  idempotency_key: string;
  description: string;
  cause_kind: string;
  cause_id: string;
  metadata: Record<string, string>;
  posted_at: Date;
  content_hash: Buffer;
}

/** The entries of some transactions, in their order, by transaction id. */
export async function entriesOf(
  db: Executor,
  transactionIds: readonly string[],
): Promise<Map<string, Entry[]>> {
  const byTransaction = new Map<string, Entry[]>();
  if (transactionIds.length === 0) return byTransaction;
  const entries = await db
    .selectFrom('ledger_entries')
    .select(['transaction_id', 'account_id', 'currency', 'amount_minor'])
    .where('transaction_id', 'in', transactionIds)
    .orderBy('transaction_id')
    .orderBy('position')
    .execute();
  for (const entry of entries) {
    const amount = BigInt(entry.amount_minor);
    const list = byTransaction.get(entry.transaction_id) ?? [];
    list.push({
      accountId: entry.account_id,
      currency: entry.currency,
      direction: amount > 0n ? 'debit' : 'credit',
      amountMinor: amount > 0n ? amount : -amount,
    });
    byTransaction.set(entry.transaction_id, list);
  }
  return byTransaction;
}

async function withEntries(db: Executor, rows: readonly TransactionRow[]): Promise<LedgerTransaction[]> {
  if (rows.length === 0) return [];
  const byTransaction = await entriesOf(
    db,
    rows.map((row) => row.id),
  );
  return rows.map((row) => ({
    id: row.id,
    idempotencyKey: row.idempotency_key,
    description: row.description,
    cause: { kind: row.cause_kind as CauseKind, id: row.cause_id },
    metadata: row.metadata,
    postedAt: row.posted_at,
    entries: byTransaction.get(row.id) ?? [],
    contentHash: row.content_hash.toString('hex'),
  }));
}

const TRANSACTION_COLUMNS = [
  'id',
  'idempotency_key',
  'description',
  'cause_kind',
  'cause_id',
  'metadata',
  'posted_at',
  'content_hash',
] as const;

export async function findTransactions(db: Executor, ids: readonly string[]): Promise<LedgerTransaction[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('ledger_transactions')
    .select(TRANSACTION_COLUMNS)
    .where('id', 'in', ids)
    .execute();
  return withEntries(db, rows);
}

export async function findTransactionsByCause(db: Executor, cause: Cause): Promise<LedgerTransaction[]> {
  const rows = await db
    .selectFrom('ledger_transactions')
    .select(TRANSACTION_COLUMNS)
    .where('cause_kind', '=', cause.kind)
    .where('cause_id', '=', cause.id)
    .orderBy('seq')
    .execute();
  return withEntries(db, rows);
}

/**
 * Takes, for each transaction named, the right to reverse it, held until the caller's
 * transaction ends: reversals of one transaction wait for each other, so the one that waited
 * reads the reversal that went first (`findReversals`, in a later statement). A lock of the
 * database keyed on the id, since the id need not name a transaction that exists (a posting by
 * hand may name any id as the cause of a reversal). Taken in id order, so that two callers
 * reversing several transactions cannot deadlock on them.
 */
export async function lockReversalsOf(db: Executor, transactionIds: readonly string[]): Promise<void> {
  if (transactionIds.length === 0) return;
  await sql`
    select pg_advisory_xact_lock(hashtextextended('ledger.reversal:' || r.id, 0))
    from (select distinct id from unnest(${[...transactionIds]}::text[]) as id order by id) r`.execute(db);
}

export interface Reversals {
  /** The reversals of each transaction named, first posted first. */
  readonly of: ReadonlyMap<string, readonly { id: string; idempotencyKey: string }[]>;
  /** The transactions named that are reversals themselves. */
  readonly areReversals: ReadonlySet<string>;
  /**
   * The transactions named whose money moves as the payment provider answers (a payment, a
   * refund, a chargeback, a payout), with their cause kind: they are not reversed by hand.
   */
  readonly providerDriven: ReadonlyMap<string, ProviderCauseKind>;
}

/** The reversals of some transactions, and which of them are reversals themselves. */
export async function findReversals(db: Executor, transactionIds: readonly string[]): Promise<Reversals> {
  const of = new Map<string, { id: string; idempotencyKey: string }[]>();
  const areReversals = new Set<string>();
  const providerDriven = new Map<string, ProviderCauseKind>();
  if (transactionIds.length === 0) return { of, areReversals, providerDriven };
  const ids = [...transactionIds];
  const rows = await db
    .selectFrom('ledger_transactions')
    .select(['id', 'idempotency_key', 'cause_kind', 'cause_id'])
    .where((eb) =>
      eb.or([
        eb.and([eb('cause_kind', '=', 'reversal'), eb('cause_id', 'in', ids)]),
        eb.and([eb('cause_kind', 'in', ['reversal', ...PROVIDER_CAUSE_KINDS]), eb('id', 'in', ids)]),
      ]),
    )
    .orderBy('seq')
    .execute();
  const named = new Set(ids);
  for (const row of rows) {
    if (named.has(row.id) && row.cause_kind === 'reversal') areReversals.add(row.id);
    if (named.has(row.id) && isProviderCause(row.cause_kind)) providerDriven.set(row.id, row.cause_kind);
    if (row.cause_kind !== 'reversal' || !named.has(row.cause_id)) continue;
    const list = of.get(row.cause_id) ?? [];
    list.push({ id: row.id, idempotencyKey: row.idempotency_key });
    of.set(row.cause_id, list);
  }
  return { of, areReversals, providerDriven };
}

export interface TransactionListFilter {
  readonly accountIds?: readonly string[] | undefined;
  readonly cause?: Partial<Cause> | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

/** Transactions newest first by id (ids sort by creation time). */
export async function listTransactions(
  db: Executor,
  filter: TransactionListFilter,
): Promise<LedgerTransaction[]> {
  let query = db
    .selectFrom('ledger_transactions')
    .select(TRANSACTION_COLUMNS)
    .orderBy('id', 'desc')
    .limit(filter.limit + 1);
  if (filter.cause?.kind !== undefined) query = query.where('cause_kind', '=', filter.cause.kind);
  if (filter.cause?.id !== undefined) query = query.where('cause_id', '=', filter.cause.id);
  if (filter.after !== undefined) query = query.where('id', '<', filter.after);
  if (filter.accountIds !== undefined) {
    const accountIds = filter.accountIds;
    if (accountIds.length === 0) return [];
    query = query.where((eb) =>
      eb.exists(
        eb
          .selectFrom('ledger_entries')
          .select(sql`1`.as('one'))
          .whereRef('ledger_entries.transaction_id', '=', 'ledger_transactions.id')
          .where('ledger_entries.account_id', 'in', accountIds),
      ),
    );
  }
  return withEntries(db, await query.execute());
}

/** The sum of an account's slots (debits positive). */
export async function slotBalance(db: Executor, accountId: string): Promise<bigint> {
  const row = await db
    .selectFrom('ledger_balances')
    .select(sql<string>`coalesce(sum(balance_minor), 0)::text`.as('sum'))
    .where('account_id', '=', accountId)
    .executeTakeFirstOrThrow();
  return BigInt(row.sum);
}

/** The sum of an account's entries posted at or before `asOf` (debits positive). */
export async function entriesBalance(db: Executor, accountId: string, asOf: Date): Promise<bigint> {
  const row = await db
    .selectFrom('ledger_entries')
    .select(sql<string>`coalesce(sum(amount_minor), 0)::text`.as('sum'))
    .where('account_id', '=', accountId)
    .where('posted_at', '<=', asOf)
    .executeTakeFirstOrThrow();
  return BigInt(row.sum);
}

export interface StatementLine {
  readonly transactionId: string;
  readonly position: number;
  readonly amountMinor: bigint;
  readonly postedAt: Date;
  readonly description: string;
  readonly cause: Cause;
  /** The account's balance after this line (debits positive). */
  readonly balanceAfterMinor: bigint;
}

/**
 * An account's entries in posting order, each with the balance after it. `after` is a line's
 * cursor (`<transaction id>.<position>`) from an earlier page.
 */
export async function statementLines(
  db: Executor,
  accountId: string,
  page: { after?: string | undefined; limit: number },
): Promise<StatementLine[] | null> {
  let start: { posted_at: Date; seq: bigint } | null = null;
  if (page.after !== undefined) {
    // A line's id is its transaction's id and its position there (`txn_….3`).
    const cursor = /^(txn_[0-9a-z]{26})\.(\d{1,4})$/.exec(page.after);
    if (!cursor) return null;
    const found = await db
      .selectFrom('ledger_entries')
      .select(['posted_at', 'seq'])
      .where('transaction_id', '=', cursor[1] as string)
      .where('position', '=', Number(cursor[2]))
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    if (!found) return null;
    start = found;
  }
  const { rows } = await sql<{
    transaction_id: string;
    position: number;
    amount_minor: bigint;
    posted_at: Date;
    description: string;
    cause_kind: string;
    cause_id: string;
    balance_after: string;
  }>`
    with page as (
      select e.transaction_id, e.position, e.amount_minor, e.posted_at, e.seq
      from ledger_entries e
      where e.account_id = ${accountId}
        ${start ? sql`and (e.posted_at, e.seq) > (${start.posted_at}, ${start.seq})` : sql``}
      order by e.posted_at, e.seq
      limit ${page.limit + 1}
    ), opening as (
      select coalesce(sum(amount_minor), 0) as amount from ledger_entries
      where account_id = ${accountId}
        ${start ? sql`and (posted_at, seq) <= (${start.posted_at}, ${start.seq})` : sql`and false`}
    )
    select page.transaction_id, page.position, page.amount_minor, page.posted_at,
      t.description, t.cause_kind, t.cause_id,
      ((select amount from opening) + sum(page.amount_minor) over (order by page.posted_at, page.seq))::text as balance_after
    from page join ledger_transactions t on t.id = page.transaction_id
    order by page.posted_at, page.seq`.execute(db);
  return rows.map((row) => ({
    transactionId: row.transaction_id,
    position: row.position,
    amountMinor: BigInt(row.amount_minor),
    postedAt: row.posted_at,
    description: row.description,
    cause: { kind: row.cause_kind as CauseKind, id: row.cause_id },
    balanceAfterMinor: BigInt(row.balance_after),
  }));
}
