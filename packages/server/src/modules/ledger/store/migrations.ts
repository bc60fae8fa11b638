import { type Kysely, sql } from 'kysely';
import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

/*
 * The books defend themselves: whatever the application does, the database refuses
 *   - an entry whose transaction does not balance in its currency,
 *   - an entry in a currency other than its account's, or for an account or transaction that
 *     does not exist, and a transaction with fewer than two entries,
 *   - any UPDATE, DELETE or TRUNCATE of transactions, entries and the hash chain,
 *   - a balance below zero on an account flagged non-negative (a check on the balance row),
 *   - a second reversal of a transaction (a unique index over reversals, 0008).
 * 0001 checked double entry entry by entry at commit; 0002 checks it once per statement (see there).
 */
export const ledgerMigrations: ModuleMigrations = {
  module: 'ledger',
  migrations: {
    '0001_books': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table ledger_accounts (
            id text primary key,
            purpose text not null,
            owner_kind text not null check (owner_kind in ('platform', 'partner', 'order', 'programme')),
            owner_id text not null,
            currency text not null check (currency ~ '^[A-Z]{3}$'),
            normal_side text not null check (normal_side in ('debit', 'credit')),
            non_negative boolean not null,
            slots smallint not null check (slots between 1 and 64),
            created_at timestamptz not null,
            unique (purpose, owner_id, currency)
          );
          create index ledger_accounts_owner on ledger_accounts (owner_kind, owner_id, id);
          create index ledger_accounts_purpose on ledger_accounts (purpose, id);

          create table ledger_transactions (
            id text primary key,
            seq int8 generated always as identity,
            tx_id int8 not null default (pg_current_xact_id()::text::int8),
            idempotency_key text not null unique,
            description text not null,
            cause_kind text not null,
            cause_id text not null,
            metadata jsonb not null,
            posted_at timestamptz not null,
            fingerprint bytea not null,
            content_hash bytea not null
          );
          create index ledger_transactions_cause on ledger_transactions (cause_kind, cause_id);
          create index ledger_transactions_position on ledger_transactions (tx_id, seq);
          create index ledger_transactions_posted on ledger_transactions (posted_at, seq);

          create table ledger_entries (
            transaction_id text not null,
            position smallint not null,
            seq int8 generated always as identity,
            account_id text not null,
            currency text not null,
            amount_minor int8 not null check (amount_minor <> 0),
            posted_at timestamptz not null,
            primary key (transaction_id, position)
          );
          create index ledger_entries_account on ledger_entries (account_id, posted_at, seq) include (amount_minor);

          create table ledger_balances (
            account_id text not null,
            slot smallint not null,
            balance_minor int8 not null,
            normal_sign smallint not null check (normal_sign in (-1, 1)),
            non_negative boolean not null,
            primary key (account_id, slot),
            constraint ledger_balance_non_negative check (not non_negative or balance_minor * normal_sign >= 0)
          );

          create table ledger_chain (
            position int8 primary key,
            transaction_id text not null unique,
            tx_id int8 not null,
            seq int8 not null,
            chain_hash bytea not null,
            sealed_at timestamptz not null
          );

          create function ledger_check_entry() returns trigger language plpgsql as $$
          declare
            off_currency text;
          begin
            if not exists (select 1 from ledger_transactions where id = new.transaction_id) then
              raise exception 'ledger entry names transaction %, which does not exist', new.transaction_id
                using errcode = 'foreign_key_violation';
            end if;
            if not exists (select 1 from ledger_accounts where id = new.account_id and currency = new.currency) then
              raise exception 'ledger entry of % names account % in %, which does not exist in that currency',
                new.transaction_id, new.account_id, new.currency
                using errcode = 'foreign_key_violation';
            end if;
            select currency into off_currency from ledger_entries
              where transaction_id = new.transaction_id
              group by currency having sum(amount_minor) <> 0 limit 1;
            if found then
              raise exception 'ledger transaction % does not balance in %', new.transaction_id, off_currency
                using errcode = 'check_violation';
            end if;
            return null;
          end $$;
          create constraint trigger ledger_entries_balance after insert on ledger_entries
            deferrable initially deferred for each row execute function ledger_check_entry();

          create function ledger_check_transaction() returns trigger language plpgsql as $$
          begin
            if (select count(*) from ledger_entries where transaction_id = new.id) < 2 then
              raise exception 'ledger transaction % has fewer than two entries', new.id
                using errcode = 'check_violation';
            end if;
            return null;
          end $$;
          create constraint trigger ledger_transactions_entries after insert on ledger_transactions
            deferrable initially deferred for each row execute function ledger_check_transaction();

          create trigger ledger_transactions_append_only before update or delete on ledger_transactions
            for each row execute function baton_forbid_change();
          create trigger ledger_transactions_no_truncate before truncate on ledger_transactions
            for each statement execute function baton_forbid_change();
          create trigger ledger_entries_append_only before update or delete on ledger_entries
            for each row execute function baton_forbid_change();
          create trigger ledger_entries_no_truncate before truncate on ledger_entries
            for each statement execute function baton_forbid_change();
          create trigger ledger_chain_append_only before update or delete on ledger_chain
            for each row execute function baton_forbid_change();
          create trigger ledger_chain_no_truncate before truncate on ledger_chain
            for each statement execute function baton_forbid_change();
          create trigger ledger_accounts_no_delete before delete on ledger_accounts
            for each row execute function baton_forbid_change();
        `.execute(db);
      },
    },
    /*
     * Double entry checked once per statement instead of once per entry row at commit: the
     * per-row deferred trigger ran a group-by and two lookups for every entry (four per posting,
     * four thousand per batch): about 100 ms of a batch's commit, against about 10 ms for these
     * checks.
     *
     * A statement-level check sees only the rows of its own statement, so a transaction whose
     * entries arrived in several statements would be judged on a part of them. That cannot pass:
     *   - a transaction's entries must balance, per currency, within the statement that writes
     *     them, and every entry must name an account in its currency and a transaction that exists;
     *   - a transaction may have no entries but those of one statement: a statement that adds
     *     entries to a transaction that already has some (written earlier in the same database
     *     transaction or committed long ago) is refused, whether or not they balance;
     *   - a transaction must have at least two entries when the statement that writes it ends,
     *     so its entries come in the same statement as the transaction (Baton writes both with one
     *     `insert ... with` statement). An entry written before its transaction is refused too,
     *     since its transaction does not exist yet.
     * Together: every transaction's entries are exactly one balanced set, written in one
     * statement. That is stricter than the deferred check, which let any later statement add a
     * balanced pair of entries to a transaction, even a committed one; and nothing is deferred.
     *
     * The lookups are scalar subqueries, so each is an index probe per transaction or account
     * whatever the number of rows (a join could be planned as a scan of the whole table once, and
     * trigger plans are cached).
     */
    '0002_statement_checks': {
      async up(db: Kysely<unknown>) {
        await sql`
          drop trigger ledger_entries_balance on ledger_entries;
          drop function ledger_check_entry();
          drop trigger ledger_transactions_entries on ledger_transactions;
          drop function ledger_check_transaction();

          create function ledger_check_entries() returns trigger language plpgsql as $$
          declare
            bad record;
          begin
            select n.transaction_id, n.account_id, n.currency into bad
            from (
              select account_id, currency, min(transaction_id) as transaction_id
              from new_entries group by account_id, currency
            ) n
            where (select a.currency from ledger_accounts a where a.id = n.account_id) is distinct from n.currency
            limit 1;
            if found then
              raise exception 'ledger entry of % names account % in %, which does not exist in that currency',
                bad.transaction_id, bad.account_id, bad.currency
                using errcode = 'foreign_key_violation';
            end if;

            select transaction_id, currency into bad from new_entries
            group by transaction_id, currency having sum(amount_minor) <> 0
            limit 1;
            if found then
              raise exception 'ledger transaction % does not balance in %', bad.transaction_id, bad.currency
                using errcode = 'check_violation';
            end if;

            select n.transaction_id,
              (select t.id from ledger_transactions t where t.id = n.transaction_id) is not null as known
            into bad
            from (select transaction_id, count(*) as entries from new_entries group by transaction_id) n
            where (select t.id from ledger_transactions t where t.id = n.transaction_id) is null
              or (select count(*) from ledger_entries e where e.transaction_id = n.transaction_id) <> n.entries
            limit 1;
            if found then
              if not bad.known then
                raise exception 'ledger entry names transaction %, which does not exist', bad.transaction_id
                  using errcode = 'foreign_key_violation';
              end if;
              raise exception 'ledger transaction % would get entries from more than one statement', bad.transaction_id
                using errcode = 'check_violation';
            end if;
            return null;
          end $$;
          create trigger ledger_entries_balance after insert on ledger_entries
            referencing new table as new_entries
            for each statement execute function ledger_check_entries();

          create function ledger_check_transactions() returns trigger language plpgsql as $$
          declare
            bad text;
          begin
            select t.id into bad from new_transactions t
            where (select count(*) from ledger_entries e where e.transaction_id = t.id) < 2
            limit 1;
            if found then
              raise exception 'ledger transaction % has fewer than two entries', bad
                using errcode = 'check_violation';
            end if;
            return null;
          end $$;
          create trigger ledger_transactions_entries after insert on ledger_transactions
            referencing new table as new_transactions
            for each statement execute function ledger_check_transactions();
        `.execute(db);
      },
    },
    /*
     * A posting (or a batch of them) in one call: see `postTransactions` in ledger-store.ts for
     * what it does. A function rather than the statement itself, because the database keeps a
     * function's plans for the session, where a statement sent as text is planned again on every
     * call: for a single posting, planning cost about as much as running it. A kept plan is made
     * without knowing how many postings come, though, and a plan for a few rows joins a thousand
     * quadratically; so a single posting runs the kept plan and a batch plans its own (EXECUTE),
     * which costs little next to writing a thousand transactions.
     */
    '0003_post_function': {
      async up(db: Kysely<unknown>) {
        await sql`
          create function ledger_post(
            p_id text[], p_key text[], p_description text[], p_cause_kind text[], p_cause_id text[],
            p_metadata jsonb[], p_fingerprint bytea[], p_content_hash bytea[],
            e_transaction text[], e_position int2[], e_account text[], e_currency text[], e_amount int8[], e_slot int2[],
            p_posted_at timestamptz, p_atomic boolean
          ) returns table (kind text, id text, key text, fingerprint bytea, slot int2, balance_minor int8)
          language plpgsql as $$
          #variable_conflict use_column
          begin
            if cardinality(p_id) = 1 then
              return query ${sql.raw(POST_STATEMENT)};
            else
              return query execute $statement$ ${sql.raw(POST_STATEMENT)} $statement$
                using p_id, p_key, p_description, p_cause_kind, p_cause_id, p_metadata, p_fingerprint, p_content_hash,
                  e_transaction, e_position, e_account, e_currency, e_amount, e_slot, p_posted_at, p_atomic;
            end if;
          end $$;
        `.execute(db);
      },
    },
    /*
     * The balance slots are locked by a statement of their own, before the posting's statement
     * reads them. Locking them inside that statement left their balances to PostgreSQL's
     * re-read of a row updated while the statement waited for its lock, which does not reach
     * every use of the row in a statement like this one: with a credit and a debit of the same
     * non-negative account racing, a debit could be admitted against the balance from before
     * the credit that committed meanwhile, and fail on the balance's check constraint instead
     * of being refused for want of funds (found by the bank workload test, reproduced with
     * pgbench: 5 of 8 clients failed within 4,000 calls; none in 16,000 with this). Once the
     * slots are locked, the posting's statement starts with a snapshot in which nobody else
     * can change them. A replayed posting's slots are locked too, for the short rest of its
     * transaction. The statement alone, from pgbench, runs about 10-15 % slower for it; Baton's
     * own single postings, bound by the client's work, did not measurably.
     */
    '0004_post_locks_first': {
      async up(db: Kysely<unknown>) {
        await sql`
          create or replace function ledger_post(
            p_id text[], p_key text[], p_description text[], p_cause_kind text[], p_cause_id text[],
            p_metadata jsonb[], p_fingerprint bytea[], p_content_hash bytea[],
            e_transaction text[], e_position int2[], e_account text[], e_currency text[], e_amount int8[], e_slot int2[],
            p_posted_at timestamptz, p_atomic boolean
          ) returns table (kind text, id text, key text, fingerprint bytea, slot int2, balance_minor int8)
          language plpgsql as $$
          #variable_conflict use_column
          begin
            -- One index probe and lock per slot, in (account, slot) order.
            perform 1 from (
              select distinct k.account_id, k.slot from unnest(e_account, e_slot) as k(account_id, slot)
              order by k.account_id, k.slot
            ) k
            cross join lateral (
              select 1 from ledger_balances b
              where b.account_id = k.account_id and b.slot = k.slot
              for update
            ) slot_locked;
            if cardinality(p_id) = 1 then
              return query ${sql.raw(POST_STATEMENT)};
            else
              return query execute $statement$ ${sql.raw(POST_STATEMENT)} $statement$
                using p_id, p_key, p_description, p_cause_kind, p_cause_id, p_metadata, p_fingerprint, p_content_hash,
                  e_transaction, e_position, e_account, e_currency, e_amount, e_slot, p_posted_at, p_atomic;
            end if;
          end $$;
        `.execute(db);
      },
    },
    /**
     * A transaction's position in commit order, which the chain's sealer follows, is the
     * kernel's transaction position (kernel migration 0002): the counter of the server plus a
     * shift that moves past the positions of a backup restored on a new server.
     */
    '0005_transaction_positions': {
      async up(db: Kysely<unknown>) {
        await sql`alter table ledger_transactions alter column tx_id set default baton_xact_position()`.execute(
          db,
        );
      },
    },
    /*
     * Busy accounts that may not go below zero get several balance slots (see `slotsOf` in the
     * chart): a partner's payable, which every confirmed leg of that partner credits, and the
     * platform's payouts and refunds in transit. Until now such an account had one balance row,
     * and every posting that raised it waited for the commit of the one before.
     *
     * A posting that raises such an account adds to one slot, as for two-way accounts. A posting
     * that lowers it names the account in `p_sweep`: all its slots are locked, and gathered into
     * slot 0 (the sweep) before the posting's statement reads them, so the running-sum check of
     * that statement sees the whole balance in slot 0, where every entry of the account in that
     * call goes. Each slot stays at or above zero (the balance row's check), so the account does.
     * A sweep moves nothing between accounts: balances are sums of slots.
     *
     * `ledger_lock` is that locking and sweep on its own, for callers that read a balance before
     * they decide what to post (`lockBalance`). The function of 0004, without `p_sweep`, stays
     * for processes still running the code of before while a new version starts.
     */
    '0006_busy_non_negative_accounts': {
      async up(db: Kysely<unknown>) {
        await sql`
          create function ledger_lock(e_account text[], e_slot int2[], p_sweep text[])
          returns table (account_id text, slot int2, balance_minor int8)
          language plpgsql as $$
          #variable_conflict use_column
          begin
            ${sql.raw(LOCK_AND_SWEEP)}
            return query
              select b.account_id, b.slot, b.balance_minor from ledger_balances b
              where (b.account_id, b.slot) in (select * from unnest(e_account, e_slot))
                or b.account_id = any(p_sweep);
          end $$;

          create function ledger_post(
            p_id text[], p_key text[], p_description text[], p_cause_kind text[], p_cause_id text[],
            p_metadata jsonb[], p_fingerprint bytea[], p_content_hash bytea[],
            e_transaction text[], e_position int2[], e_account text[], e_currency text[], e_amount int8[], e_slot int2[],
            p_posted_at timestamptz, p_atomic boolean, p_sweep text[]
          ) returns table (kind text, id text, key text, fingerprint bytea, slot int2, balance_minor int8)
          language plpgsql as $$
          #variable_conflict use_column
          begin
            ${sql.raw(LOCK_AND_SWEEP)}
            if cardinality(p_id) = 1 then
              return query ${sql.raw(POST_STATEMENT)};
            else
              return query execute $statement$ ${sql.raw(POST_STATEMENT)} $statement$
                using p_id, p_key, p_description, p_cause_kind, p_cause_id, p_metadata, p_fingerprint, p_content_hash,
                  e_transaction, e_position, e_account, e_currency, e_amount, e_slot, p_posted_at, p_atomic;
            end if;
          end $$;
        `.execute(db);
      },
    },
    /*
     * Busy non-negative accounts opened before 0006 get their further slots, at zero, so that
     * they take concurrent credits too. A process still running the code of before (during a
     * rolling start) keeps posting to and checking slot 0 alone: it may refuse a debit that the
     * other slots would cover, never admit one they do not. Running it again changes nothing.
     */
    '0007_busy_accounts_slots': {
      async up(db: Kysely<unknown>) {
        await sql`
          insert into ledger_balances (account_id, slot, balance_minor, normal_sign, non_negative)
          select a.id, s.slot, 0, case when a.normal_side = 'debit' then 1 else -1 end, a.non_negative
          from ledger_accounts a cross join lateral generate_series(a.slots, ${sql.raw(String(BUSY_SLOTS))} - 1) as s(slot)
          where a.purpose in ('partner_payable', 'payouts_in_transit', 'refunds_in_transit');
          update ledger_accounts set slots = ${sql.raw(String(BUSY_SLOTS))}
          where purpose in ('partner_payable', 'payouts_in_transit', 'refunds_in_transit')
            and slots < ${sql.raw(String(BUSY_SLOTS))};
        `.execute(db);
      },
    },
    /*
     * A transaction is reversed at most once: a unique index on the reversed transaction's id
     * over the reversal transactions only (cause kind `reversal`, whose cause id names the
     * reversed transaction), so that a posting of any other kind neither writes to it nor pays
     * for it. The service refuses a second reversal before it gets here (`ledger.already_reversed`);
     * the index holds whatever races or bypasses the service.
     *
     * The books may already hold transactions reversed more than once, from before this rule.
     * They stay as they are (the books are append-only, and those reversals moved money that an
     * operator corrects, if need be, with a new transaction), and the index leaves out every
     * reversal but the first of each such transaction, by id: listed in its predicate, which is
     * evaluated only for reversals. Every later reversal of such a transaction meets the first.
     */
    '0008_one_reversal_per_transaction': {
      async up(db: Kysely<unknown>) {
        const { rows: later } = await sql<{ id: string }>`
          select t.id from ledger_transactions t
          where t.cause_kind = 'reversal'
            and exists (
              select 1 from ledger_transactions f
              where f.cause_kind = 'reversal' and f.cause_id = t.cause_id and f.seq < t.seq
            )
          order by t.id`.execute(db);
        const spared =
          later.length === 0 ? sql`` : sql` and id not in (${sql.join(later.map((row) => sql.lit(row.id)))})`;
        await sql`
          create unique index ledger_transactions_one_reversal on ledger_transactions (cause_id)
          where cause_kind = 'reversal'${spared}`.execute(db);
      },
    },
    /*
     * Four eyes on money moved by hand (postings, reversals and batches through the API): per
     * currency, what one operator may move alone in a day (UTC); beyond it, a posting request
     * that another operator approves. `ledger_moved_alone` counts what each operator moved alone.
     */
    '0009_four_eyes': {
      async up(db: Kysely<unknown>) {
        await sql`
          create table ledger_approval_thresholds (
            currency text primary key,
            approval_above_minor int8 not null check (approval_above_minor >= 0),
            updated_by text not null,
            updated_at timestamptz not null
          );
          create table ledger_moved_alone (
            user_id text not null,
            currency text not null,
            day date not null,
            moved_minor numeric(40) not null check (moved_minor >= 0),
            primary key (user_id, currency, day)
          );
          create table ledger_posting_requests (
            id text primary key,
            action text not null check (action in ('post', 'reverse', 'batch')),
            content jsonb not null,
            moves jsonb not null,
            reason text not null,
            status text not null check (status in ('pending', 'approved', 'rejected')),
            requested_by text not null,
            requested_at timestamptz not null,
            decided_by text,
            decided_at timestamptz,
            decision_reason text,
            transaction_ids text[],
            check ((status = 'pending') = (decided_by is null and decided_at is null)),
            check ((status = 'approved') = (transaction_ids is not null)),
            -- Four eyes, kept by the database too: who filed a request may withdraw it, not approve it.
            check (status <> 'approved' or decided_by <> requested_by)
          );
          create index ledger_posting_requests_pending on ledger_posting_requests (id) where status = 'pending';
        `.execute(db);
      },
    },
    // A posting request left undecided expires: what was filed a week ago may no longer be right.
    '0010_posting_requests_expire': {
      async up(db: Kysely<unknown>) {
        await sql`
          alter table ledger_posting_requests add column expires_at timestamptz;
          update ledger_posting_requests set expires_at = requested_at + interval '7 days';
          alter table ledger_posting_requests alter column expires_at set not null;
          alter table ledger_posting_requests add check (expires_at > requested_at);
        `.execute(db);
      },
    },
    /*
     * An account keeps what it was opened as: its owner, purpose, currency and sides; and a
     * balance slot keeps its account and flags (its amount changes, by the ledger's postings).
     * Refused for any statement that sets those columns, so postings, which set only amounts,
     * pay nothing for it.
     */
    '0011_account_identity': {
      async up(db: Kysely<unknown>) {
        await sql`
          create function ledger_refuse_identity_change() returns trigger language plpgsql as $$
          begin
            raise exception '% keeps the account, owner, currency and sides it was opened with', tg_table_name
              using errcode = 'integrity_constraint_violation';
          end $$;
          create trigger ledger_accounts_identity
            before update of id, purpose, owner_kind, owner_id, currency, normal_side, non_negative on ledger_accounts
            for each statement execute function ledger_refuse_identity_change();
          create trigger ledger_balances_identity
            before update of account_id, slot, normal_sign, non_negative on ledger_balances
            for each statement execute function ledger_refuse_identity_change();
        `.execute(db);
      },
    },
  },
};

/** Slots of a busy non-negative account as migration 0007 gave them (the chart's `NON_NEGATIVE_SLOTS`). */
const BUSY_SLOTS = 16;

/*
 * The start of `ledger_lock` and `ledger_post` (migration 0006): locks the balance slots the
 * entries name and every slot of the accounts in `p_sweep`, all in (account, slot) order, one
 * index probe and lock each; then gathers each swept account's slots into slot 0, when another
 * slot holds anything. Part of a migration: change it only by a new migration.
 */
const LOCK_AND_SWEEP = `
            perform 1 from (
              select k.account_id, k.slot from unnest(e_account, e_slot) as k(account_id, slot)
              union
              select b.account_id, b.slot from ledger_balances b where b.account_id = any(p_sweep)
              order by 1, 2
            ) k
            cross join lateral (
              select 1 from ledger_balances b
              where b.account_id = k.account_id and b.slot = k.slot
              for update
            ) slot_locked;
            if cardinality(p_sweep) > 0 then
              update ledger_balances b
              set balance_minor = case when b.slot = 0 then s.total else 0 end
              from (
                select x.account_id, sum(x.balance_minor)::int8 as total from ledger_balances x
                where x.account_id = any(p_sweep)
                group by x.account_id
                having bool_or(x.slot > 0 and x.balance_minor <> 0)
              ) s
              where b.account_id = s.account_id and (b.slot = 0 or b.balance_minor <> 0);
            end if;`;

/*
 * The statement of `ledger_post` (migrations 0003, 0004 and 0006), with the function's arguments as $1 … $16:
 * postings ($1 ids, $2 keys, $3 descriptions, $4 cause kinds, $5 cause ids, $6 metadata,
 * $7 fingerprints, $8 content hashes), entries ($9 transaction ids, $10 positions, $11 accounts,
 * $12 currencies, $13 signed amounts, $14 slots), $15 the posting time, $16 atomic.
 * Part of a migration: change it only by a new migration that replaces the function.
 */
const POST_STATEMENT = `
  with p as (
    select * from unnest($1, $2, $3, $4, $5, $6, $7, $8)
      with ordinality as p(id, idempotency_key, description, cause_kind, cause_id, metadata, fingerprint, content_hash, ord)
  ), taken as (
    -- A lookup by key for each posting, whatever the plan thinks of the table's size.
    select t.id, t.idempotency_key, t.fingerprint, t.fingerprint = p.fingerprint as same
    from p cross join lateral (
      select t.id, t.idempotency_key, t.fingerprint from ledger_transactions t
      where t.idempotency_key = p.idempotency_key
      limit 1
    ) t
  ), fresh as (
    select * from p where not exists (select 1 from taken where taken.idempotency_key = p.idempotency_key)
  ), d as (
    select d.* from unnest($9, $10, $11, $12, $13, $14)
      as d(transaction_id, position, account_id, currency, amount_minor, slot)
    where d.transaction_id in (select fresh.id from fresh)
  ), locked as (
    select b.account_id, b.slot, b.balance_minor, b.normal_sign, b.non_negative
    from ledger_balances b
    where (b.account_id, b.slot) in (select d.account_id, d.slot from d)
    order by b.account_id, b.slot
    for update
  ), short as (
    -- Each slot's balance after each posting in turn, in posting order: the locked balance
    -- (as position 0) and the entries in one sorted run, so that no join of two large sets is
    -- left to the planner's row estimates. Entries of one posting are peers, summed together.
    select 1 from (
      select r.ord,
        first_value(r.non_negative) over w as non_negative,
        first_value(r.normal_sign) over w * sum(r.amount) over w as after
      from (
        select l.account_id, l.slot, 0::int8 as ord, l.balance_minor as amount, l.normal_sign, l.non_negative
        from locked l
        union all
        select d.account_id, d.slot, f.ord, d.amount_minor, null, null
        from d join fresh f on f.id = d.transaction_id
      ) r
      window w as (partition by r.account_id, r.slot order by r.ord)
    ) running
    where running.ord > 0 and running.non_negative and running.after < 0
  ), go as (
    -- Counting the locked rows takes every lock before anything is written.
    select (select count(*) from locked) >= 0
      and not exists (select 1 from short)
      and not ($16 and exists (select 1 from taken where not taken.same)) as ok
  ), t as (
    insert into ledger_transactions
      (id, idempotency_key, description, cause_kind, cause_id, metadata, posted_at, fingerprint, content_hash)
    select f.id, f.idempotency_key, f.description, f.cause_kind, f.cause_id, f.metadata, $15, f.fingerprint, f.content_hash
    from fresh f
    where (select go.ok from go)
    order by f.id
    on conflict (idempotency_key) do nothing
    returning ledger_transactions.id
  ), w as (
    select * from d where d.transaction_id in (select t.id from t)
  ), e as (
    insert into ledger_entries (transaction_id, position, account_id, currency, amount_minor, posted_at)
    select w.transaction_id, w.position, w.account_id, w.currency, w.amount_minor, $15 from w
  ), u as (
    update ledger_balances b set balance_minor = b.balance_minor + x.delta
    from (select w.account_id, w.slot, sum(w.amount_minor)::int8 as delta from w group by w.account_id, w.slot) x
    where b.account_id = x.account_id and b.slot = x.slot
  )
  select 'outcome'::text, null::text, null::text, null::bytea, null::int2,
    case when (select go.ok from go) then 1 else 0 end::int8
  union all
  select 'written', t.id, null, null, null, null from t
  union all
  select 'taken', taken.id, taken.idempotency_key, taken.fingerprint, null, null from taken
  union all
  select 'locked', locked.account_id, null, null, locked.slot, locked.balance_minor
  from locked where not (select go.ok from go)`;
