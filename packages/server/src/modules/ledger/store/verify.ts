import { sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import {
  type CauseKind,
  CHAIN_GENESIS,
  chainHashOf,
  contentHashOf,
  fingerprintOf,
} from '../domain/posting.js';
import { entriesOf } from './ledger-store.js';

export type ProblemKind =
  | 'fingerprint'
  | 'content_hash'
  | 'unbalanced'
  | 'too_few_entries'
  | 'chain'
  | 'chain_gap'
  | 'unsealed'
  | 'entry_time'
  | 'balance'
  | 'balance_flags'
  | 'negative'
  | 'currency_total';

export interface VerifyProblem {
  readonly kind: ProblemKind;
  readonly transactionId?: string;
  readonly accountId?: string;
  readonly message: string;
}

export interface VerifyReport {
  readonly transactions: number;
  readonly sealed: number;
  readonly accounts: number;
  readonly problems: readonly VerifyProblem[];
  /** The first transaction, in posting order, whose stored content or chain link does not check out. */
  readonly firstTampered: string | null;
}

const PAGE = 2000;
const PROBLEMS_MAX = 1000;

/**
 * Recomputes the books from their rows: every transaction's fingerprint and hash from its
 * entries, the chain link by link, every balance from the entries, every currency's total.
 * Reads only; run it in a repeatable-read transaction for a consistent picture.
 */
export async function verifyLedger(db: Executor): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  const tampered: { seq: bigint; id: string }[] = [];
  const note = (problem: VerifyProblem, seq?: bigint) => {
    if (problems.length < PROBLEMS_MAX) problems.push(problem);
    if (seq !== undefined && problem.transactionId) tampered.push({ seq, id: problem.transactionId });
  };

  // 1. Each transaction: content, hash, balance.
  const storedHashes = new Map<string, { hash: Buffer; seq: bigint }>();
  let transactions = 0;
  let afterSeq = -1n;
  for (;;) {
    const rows = await db
      .selectFrom('ledger_transactions')
      .selectAll()
      .where('seq', '>', afterSeq)
      .orderBy('seq')
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    const byTransaction = await entriesOf(
      db,
      rows.map((row) => row.id),
    );
    for (const row of rows) {
      transactions++;
      const seq = BigInt(row.seq);
      const list = byTransaction.get(row.id) ?? [];
      const fingerprint = fingerprintOf({
        idempotencyKey: row.idempotency_key,
        description: row.description,
        cause: { kind: row.cause_kind as CauseKind, id: row.cause_id },
        metadata: row.metadata,
        entries: list,
      });
      if (!fingerprint.equals(row.fingerprint)) {
        note(
          {
            kind: 'fingerprint',
            transactionId: row.id,
            message: `the content of ${row.id} does not match its fingerprint`,
          },
          seq,
        );
      }
      if (!contentHashOf(row.id, row.posted_at, row.fingerprint).equals(row.content_hash)) {
        note(
          {
            kind: 'content_hash',
            transactionId: row.id,
            message: `the hash of ${row.id} does not match its content`,
          },
          seq,
        );
      }
      if (list.length < 2) {
        note(
          { kind: 'too_few_entries', transactionId: row.id, message: `${row.id} has ${list.length} entries` },
          seq,
        );
      }
      const sums = new Map<string, bigint>();
      for (const entry of list) {
        sums.set(
          entry.currency,
          (sums.get(entry.currency) ?? 0n) +
            (entry.direction === 'debit' ? entry.amountMinor : -entry.amountMinor),
        );
      }
      for (const [currency, sum] of sums) {
        if (sum !== 0n)
          note(
            {
              kind: 'unbalanced',
              transactionId: row.id,
              message: `${row.id} is off by ${sum} in ${currency}`,
            },
            seq,
          );
      }
      storedHashes.set(row.id, { hash: row.content_hash, seq });
    }
    afterSeq = BigInt((rows[rows.length - 1] as { seq: bigint }).seq);
  }

  // 2. The chain, link by link.
  let previous = CHAIN_GENESIS;
  let expectedPosition = 1n;
  let sealed = 0;
  let chainBroken = false;
  for (;;) {
    const links = await db
      .selectFrom('ledger_chain')
      .selectAll()
      .where('position', '>=', expectedPosition)
      .orderBy('position')
      .limit(PAGE)
      .execute();
    if (links.length === 0 || chainBroken) break;
    for (const link of links) {
      sealed++;
      const position = BigInt(link.position);
      if (position !== expectedPosition) {
        note({
          kind: 'chain_gap',
          transactionId: link.transaction_id,
          message: `the chain jumps from ${expectedPosition - 1n} to ${position}`,
        });
        chainBroken = true;
        break;
      }
      const stored = storedHashes.get(link.transaction_id);
      const recomputed = stored ? chainHashOf(previous, stored.hash) : null;
      if (!recomputed?.equals(link.chain_hash)) {
        note(
          {
            kind: 'chain',
            transactionId: link.transaction_id,
            message: `the chain breaks at position ${position} (${link.transaction_id})`,
          },
          stored?.seq ?? 0n,
        );
        chainBroken = true;
        break;
      }
      previous = link.chain_hash;
      expectedPosition++;
    }
  }

  // Behind the chain's head every transaction is linked: the sealer links them in commit order,
  // so one that is not was written behind the sealer's back.
  const { rows: unsealed } = await sql<{ id: string; seq: string }>`
    select t.id, t.seq::text as seq from ledger_transactions t
    where (t.tx_id, t.seq) <= (select c.tx_id, c.seq from ledger_chain c order by c.position desc limit 1)
      and not exists (select 1 from ledger_chain c where c.transaction_id = t.id)
    order by t.seq limit ${PROBLEMS_MAX}`.execute(db);
  for (const row of unsealed)
    note(
      {
        kind: 'unsealed',
        transactionId: row.id,
        message: `${row.id} stands behind the chain's head and is not linked in it`,
      },
      BigInt(row.seq),
    );

  // An entry is dated as its transaction: statements and balances in time read the entry's date.
  const { rows: misdated } = await sql<{ id: string; seq: string }>`
    select t.id, t.seq::text as seq from ledger_entries e join ledger_transactions t on t.id = e.transaction_id
    where e.posted_at <> t.posted_at group by t.id, t.seq order by t.seq limit ${PROBLEMS_MAX}`.execute(db);
  for (const row of misdated)
    note(
      {
        kind: 'entry_time',
        transactionId: row.id,
        message: `an entry of ${row.id} is dated otherwise than its transaction`,
      },
      BigInt(row.seq),
    );

  // 3. Balances from entries against the kept balances, non-negative accounts, currency totals.
  const { rows: balances } = await sql<{
    id: string;
    from_entries: string;
    kept: string;
    non_negative: boolean;
    normal_side: string;
  }>`
    select a.id, coalesce(e.total, 0)::text as from_entries, coalesce(b.total, 0)::text as kept,
      a.non_negative, a.normal_side
    from ledger_accounts a
    left join (select account_id, sum(amount_minor) as total from ledger_entries group by account_id) e on e.account_id = a.id
    left join (select account_id, sum(balance_minor) as total from ledger_balances group by account_id) b on b.account_id = a.id
    order by a.id`.execute(db);
  for (const row of balances) {
    const fromEntries = BigInt(row.from_entries);
    if (fromEntries !== BigInt(row.kept)) {
      note({
        kind: 'balance',
        accountId: row.id,
        message: `${row.id} keeps ${row.kept} but its entries sum to ${row.from_entries}`,
      });
    }
    const normal = row.normal_side === 'debit' ? fromEntries : -fromEntries;
    if (row.non_negative && normal < 0n) {
      note({
        kind: 'negative',
        accountId: row.id,
        message: `${row.id} must not go below zero and stands at ${normal}`,
      });
    }
  }
  // A balance slot carries its account's sides and floor: the database's check reads the slot's.
  const { rows: flags } = await sql<{ account_id: string }>`
    select distinct b.account_id from ledger_balances b join ledger_accounts a on a.id = b.account_id
    where b.non_negative <> a.non_negative
      or b.normal_sign <> (case a.normal_side when 'debit' then 1 else -1 end)
    order by b.account_id limit ${PROBLEMS_MAX}`.execute(db);
  for (const row of flags)
    note({
      kind: 'balance_flags',
      accountId: row.account_id,
      message: `a balance slot of ${row.account_id} does not carry its account's sides or floor`,
    });
  const { rows: totals } = await sql<{ currency: string; total: string }>`
    select currency, sum(amount_minor)::text as total from ledger_entries group by currency having sum(amount_minor) <> 0`.execute(
    db,
  );
  for (const row of totals) {
    note({ kind: 'currency_total', message: `the entries in ${row.currency} sum to ${row.total}, not zero` });
  }

  tampered.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  return {
    transactions,
    sealed,
    accounts: balances.length,
    problems,
    firstTampered: tampered[0]?.id ?? null,
  };
}
