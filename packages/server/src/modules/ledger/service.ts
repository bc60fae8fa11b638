import { randomInt } from 'node:crypto';
import type { Context } from '../../kernel/context.js';
import { requireTransaction } from '../../kernel/database/database.js';
import { DomainError, type FieldError } from '../../kernel/errors.js';
import { type AccountId, type LedgerTransactionId, newId, parseId } from '../../kernel/ids.js';
import { isCurrency } from '../../kernel/money.js';
import type { Page } from '../../kernel/pagination.js';
import {
  type AccountPurpose,
  CHART,
  type NormalSide,
  normalSign,
  PLATFORM_OWNER,
  type PurposeRules,
  slotsOf,
} from './domain/chart.js';
import {
  type Cause,
  contentHashOf,
  fingerprintOf,
  postingErrors,
  type ResolvedEntry,
  type ResolvedPosting,
  signedAmount,
} from './domain/posting.js';
import { ledgerErrors } from './errors.js';
import {
  type Account,
  type AccountListFilter,
  type ExistingPosting,
  entriesBalance,
  findAccountsById,
  findAccountsByKey,
  findPostingsByKey,
  findReversals,
  findTransactions,
  findTransactionsByCause,
  insertPostings,
  type LedgerTransaction,
  listAccounts,
  listTransactions,
  lockReversalsOf,
  lockSlots,
  openAccounts,
  type PostingRow,
  postTransactions,
  type SlotRef,
  type StatementLine,
  slotBalance,
  slotKey,
  statementLines,
  type TransactionListFilter,
} from './store/ledger-store.js';

/** An account named by what it is for: purpose, owner (`platform` for the platform's own) and currency. */
export interface AccountKey {
  readonly purpose: AccountPurpose;
  readonly ownerId: string;
  readonly currency: string;
}

export type AccountRef = AccountId | AccountKey;

export interface EntryInput {
  readonly account: AccountRef;
  /** When given, must be the account's currency (`ledger.currency_mismatch` otherwise). */
  readonly currency?: string;
  readonly direction: NormalSide;
  readonly amountMinor: bigint;
}

export interface PostingInput {
  /** Chosen by the poster: the same key with the same content returns the original transaction. */
  readonly idempotencyKey: string;
  readonly description?: string;
  readonly cause: Cause;
  readonly entries: readonly EntryInput[];
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface PostResult {
  readonly transaction: LedgerTransaction;
  /** The key named an existing transaction with the same content, which is returned unchanged. */
  readonly replayed: boolean;
}

export type BatchItemResult =
  | { readonly status: 'posted' | 'replayed'; readonly transaction: LedgerTransaction }
  | { readonly status: 'rejected'; readonly error: DomainError };

/** A balance on the account's normal side: what the platform holds, owes or earned on it. */
export interface Balance {
  readonly account: Account;
  readonly balanceMinor: bigint;
  readonly asOf: Date;
}

export interface Statement {
  readonly account: Account;
  readonly lines: Page<StatementLine & { readonly id: string }>;
}

/**
 * The books: the only code that writes money. Every movement is a transaction of entries
 * that balance per currency, written with the balances it changes in the caller's database
 * transaction, so money moves if and only if the caller's work commits.
 */
export interface LedgerService {
  /**
   * The account for a purpose, owner and currency, opened on first use.
   *
   * @throws DomainError `ledger.owner_invalid`, `money.unknown_currency`
   */
  account(ctx: Context, key: AccountKey): Promise<Account>;
  /** An account by id, only when the actor may see it (the operator, or the partner owning it). */
  getAccount(ctx: Context, id: string): Promise<Account>;
  listAccounts(ctx: Context, filter: Omit<AccountListFilter, 'ownerKind'>): Promise<Page<Account>>;
  /**
   * Posts one transaction, or returns the one its idempotency key already names.
   *
   * @throws DomainError `ledger.entries_must_balance` (also for an unknown account, named per field),
   *   `ledger.currency_mismatch`, `ledger.owner_invalid`, `ledger.insufficient_funds`,
   *   `ledger.exists_with_different_content`; for a cause of kind `reversal`, also
   *   `ledger.already_reversed`, `ledger.reversal_not_reversible` and `ledger.payout_not_reversible`
   *   (see `reverse`)
   */
  post(ctx: Context, input: PostingInput): Promise<PostResult>;
  /**
   * Posts up to `BATCH_MAX` transactions in one go. `atomic`: all or none (a failure throws
   * `ledger.batch_rejected` naming each failed item); otherwise each item stands alone and the
   * result says what happened to it. Items are applied in order.
   */
  postBatch(
    ctx: Context,
    inputs: readonly PostingInput[],
    options: { atomic: boolean },
  ): Promise<BatchItemResult[]>;
  /**
   * What each posting would be refused for before anything is written, without writing, nor
   * opening an account: accounts named by id that do not exist, keys whose owner does not fit
   * the purpose, entries in another currency than their account's, and the rules of double
   * entry. Funds and idempotency keys are not checked: they may change before the posting.
   */
  checkPostings(ctx: Context, inputs: readonly PostingInput[]): Promise<FieldError[][]>;
  /**
   * Posts the mirror image of a transaction: every debit becomes a credit and back. The
   * original stays as it was; corrections are new transactions. A transaction is reversed at
   * most once (the same idempotency key again returns that reversal), and a reversal is final:
   * to undo one, post the original's movement anew.
   *
   * @throws DomainError `ledger.transaction_not_found`, `ledger.already_reversed` (naming the
   *   reversal), `ledger.reversal_not_reversible`, `ledger.payout_not_reversible`, `ledger.insufficient_funds`,
   *   `ledger.exists_with_different_content`
   */
  reverse(
    ctx: Context,
    transactionId: string,
    input: { idempotencyKey: string; description?: string },
  ): Promise<PostResult>;
  /** The balance now, or as of a past time (from the entries). */
  balance(ctx: Context, account: AccountRef, options?: { asOf?: Date }): Promise<Balance>;
  /**
   * Locks a non-negative account against concurrent postings until the caller's transaction
   * ends, and returns its balance: for decisions that depend on it (how much to pay out, how
   * much of a clawback the payable covers).
   */
  lockBalance(ctx: Context, account: AccountRef): Promise<Balance>;
  /**
   * A transaction as the actor may see it: whole for the operator; for a partner, only when it
   * touches one of its accounts, with only the entries on its accounts and no metadata.
   *
   * @throws DomainError `ledger.transaction_not_found` (also for a transaction another's)
   */
  transaction(ctx: Context, id: string): Promise<LedgerTransaction>;
  /** Every transaction of a cause, whole, whoever asks: for the modules that post them. */
  transactionsFor(ctx: Context, cause: Cause): Promise<LedgerTransaction[]>;
  /** Transactions newest first, each as `transaction` shows it to the actor. */
  listTransactions(
    ctx: Context,
    filter: Omit<TransactionListFilter, 'accountIds'> & { accountId?: string },
  ): Promise<Page<LedgerTransaction>>;
  statement(ctx: Context, accountId: string, page: { after?: string; limit: number }): Promise<Statement>;
}

/**
 * A balance the database cannot hold (SQLSTATE 22003, numeric value out of range) is a request
 * the ledger refuses, not a fault of Baton's: `ledger.amount_out_of_range`. The transaction is
 * spoilt by then, so the error ends it, as any refusal of a posting does.
 */
async function withinRange<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code === '22003') throw ledgerErrors.amountOutOfRange();
    throw error;
  }
}

export function createLedgerService(): LedgerService {
  // Accounts never change once written, so a committed account can be remembered for good.
  const accountsById = new Map<string, Account>();
  const accountsByKey = new Map<string, Account>();
  const remember = ({ account, createdHere }: { account: Account; createdHere: boolean }) => {
    if (!createdHere) {
      accountsById.set(account.id, account);
      accountsByKey.set(keyOf(account), account);
    }
    return account;
  };

  /** Why a key cannot name an account, if it cannot. */
  function keyRefusal(key: AccountKey): DomainError | null {
    const rules: PurposeRules | undefined = CHART[key.purpose];
    if (!rules) return ledgerErrors.ownerInvalid(key.purpose, key.ownerId);
    if (!isCurrency(key.currency)) {
      return ledgerErrors.postingInvalid([
        { path: '/currency', rule: 'currency', message: `${key.currency} is not an ISO 4217 currency` },
      ]);
    }
    if (!ownerFits(rules, key.ownerId)) return ledgerErrors.ownerInvalid(key.purpose, key.ownerId);
    return null;
  }

  /**
   * The accounts for some valid keys, by `keyOf`: those not remembered are read in one query,
   * and those that do not exist yet are opened in one statement.
   */
  async function accountsByKeys(ctx: Context, keys: readonly AccountKey[]): Promise<Map<string, Account>> {
    const found = new Map<string, Account>();
    const read = async (wanted: readonly AccountKey[]) => {
      for (const row of await findAccountsByKey(ctx.db, wanted)) found.set(keyOf(row.account), remember(row));
    };
    await read(keys);
    const missing = keys.filter((key) => !found.has(keyOf(key)));
    if (missing.length === 0) return found;
    requireTransaction(ctx.db);
    const opened = await openAccounts(
      ctx.db,
      missing.map((key) => {
        const rules: PurposeRules = CHART[key.purpose];
        return {
          id: newId('acc'),
          purpose: key.purpose,
          ownerKind: rules.owner,
          ownerId: key.ownerId,
          currency: key.currency,
          normalSide: rules.normalSide,
          nonNegative: rules.nonNegative,
          slots: slotsOf(rules),
          createdAt: ctx.now,
        };
      }),
    );
    // Opened by this transaction, which may yet roll back: used, not remembered.
    for (const account of opened) found.set(keyOf(account), account);
    const raced = missing.filter((key) => !found.has(keyOf(key)));
    if (raced.length > 0) await read(raced);
    return found;
  }

  async function account(ctx: Context, key: AccountKey): Promise<Account> {
    const cached = accountsByKey.get(keyOf(key));
    if (cached) return cached;
    const refusal = keyRefusal(key);
    if (refusal) throw refusal;
    const found = (await accountsByKeys(ctx, [key])).get(keyOf(key));
    if (!found) throw new Error(`account ${keyOf(key)} vanished after a conflict`);
    return found;
  }

  /**
   * Resolves account references. A key that cannot name an account (an owner that does not fit
   * the purpose) throws, unless `refusals` is given: then it is recorded there and resolves to
   * null, so that one bad item of a batch does not fail the others.
   */
  async function accountsOf(
    ctx: Context,
    refs: readonly AccountRef[],
    refusals?: Map<AccountRef, DomainError>,
  ): Promise<Map<AccountRef, Account | null>> {
    const resolved = new Map<AccountRef, Account | null>();
    const missingIds: AccountId[] = [];
    const missingKeys = new Map<string, AccountKey>();
    const pending: AccountKey[] = [];
    for (const ref of refs) {
      if (resolved.has(ref)) continue;
      if (typeof ref === 'string') {
        const cached = accountsById.get(ref);
        if (cached) resolved.set(ref, cached);
        else missingIds.push(ref);
        continue;
      }
      const key = keyOf(ref);
      const cached = accountsByKey.get(key);
      if (cached) {
        resolved.set(ref, cached);
        continue;
      }
      if (missingKeys.has(key)) {
        pending.push(ref);
        resolved.set(ref, null);
        continue;
      }
      const refusal = keyRefusal(ref);
      if (refusal && !refusals) throw refusal;
      if (refusal) {
        refusals?.set(ref, refusal);
        resolved.set(ref, null);
        continue;
      }
      missingKeys.set(key, ref);
      pending.push(ref);
      resolved.set(ref, null);
    }
    if (missingKeys.size > 0) {
      const found = await accountsByKeys(ctx, [...missingKeys.values()]);
      for (const ref of pending) {
        const match = found.get(keyOf(ref));
        if (!match) throw new Error(`account ${keyOf(ref)} vanished after a conflict`);
        resolved.set(ref, match);
      }
    }
    if (missingIds.length > 0) {
      const found = new Map(
        (await findAccountsById(ctx.db, missingIds)).map((f) => [f.account.id, remember(f)]),
      );
      for (const id of missingIds) resolved.set(id, found.get(id) ?? null);
    }
    return resolved;
  }

  async function resolve(ctx: Context, ref: AccountRef): Promise<Account> {
    const found = (await accountsOf(ctx, [ref])).get(ref);
    if (!found) throw ledgerErrors.accountNotFound(String(ref));
    return found;
  }

  async function postBatch(
    ctx: Context,
    inputs: readonly PostingInput[],
    options: { atomic: boolean },
  ): Promise<BatchItemResult[]> {
    requireTransaction(ctx.db);
    const results: (BatchItemResult | undefined)[] = new Array(inputs.length);
    const refusals = new Map<AccountRef, DomainError>();
    const accounts = await accountsOf(
      ctx,
      inputs.flatMap((input) => input.entries.map((entry) => entry.account)),
      refusals,
    );

    const byId = new Map<string, Account>();
    for (const found of accounts.values()) if (found) byId.set(found.id, found);

    // 1. Each item on its own: accounts, currencies, double entry.
    const candidates: { index: number; posting: ResolvedPosting; fingerprint: Buffer }[] = [];
    inputs.forEach((input, index) => {
      const errors: FieldError[] = [];
      const coded: DomainError[] = [];
      const entries: ResolvedEntry[] = [];
      input.entries.forEach((entry, position) => {
        const found = accounts.get(entry.account);
        const refusal = refusals.get(entry.account);
        if (refusal) {
          coded.push(refusal);
          errors.push({ path: `/entries/${position}/account`, rule: refusal.code, message: refusal.message });
          return;
        }
        if (!found) {
          errors.push({
            path: `/entries/${position}/account`,
            rule: 'exists',
            message: `no account ${String(entry.account)}`,
          });
          return;
        }
        if (entry.currency !== undefined && entry.currency !== found.currency) {
          const mismatch = ledgerErrors.currencyMismatch(position, found.id, found.currency, entry.currency);
          coded.push(mismatch);
          errors.push(...(mismatch.details.errors ?? []));
          return;
        }
        entries.push({
          accountId: found.id,
          currency: found.currency,
          direction: entry.direction,
          amountMinor: entry.amountMinor,
        });
      });
      const posting: ResolvedPosting = {
        idempotencyKey: input.idempotencyKey,
        description: input.description ?? '',
        cause: input.cause,
        entries,
        metadata: input.metadata ?? {},
      };
      errors.push(...postingErrors(posting));
      if (errors.length > 0) {
        // An entry in a foreign currency (`ledger.currency_mismatch`) or on an account its
        // owner cannot have (`ledger.owner_invalid`) is named as such, with every field error
        // of the item; other faults are faults of double entry.
        const [mismatch] = coded;
        const error: DomainError = mismatch
          ? new DomainError('unprocessable', mismatch.code, mismatch.message, { errors })
          : ledgerErrors.postingInvalid(errors);
        results[index] = { status: 'rejected', error };
      } else {
        candidates.push({ index, posting, fingerprint: fingerprintOf(posting) });
      }
    });

    /**
     * Admits postings in order while every non-negative account stays at or above zero, against
     * `balances` (locked); refused ones get their result. Returns the rows to write. A
     * non-negative account that the call lowers has its balance in slot 0: its only slot, or the
     * one its slots were swept into; one it only raises cannot fall below zero.
     */
    const admit = (pending: readonly PostingItem[], balances: Map<string, bigint>): PostingRow[] => {
      const rows: PostingRow[] = [];
      for (const item of pending) {
        const changes = new Map<string, bigint>();
        for (const entry of item.row.entries) {
          changes.set(entry.accountId, (changes.get(entry.accountId) ?? 0n) + signedAmount(entry));
        }
        let refusal: DomainError | null = null;
        for (const [accountId, change] of changes) {
          const target = byId.get(accountId);
          if (!target?.nonNegative) continue;
          const sign = normalSign(target.normalSide);
          const current = (balances.get(slotKey(accountId, 0)) ?? 0n) * sign;
          if (current + change * sign < 0n) {
            refusal = ledgerErrors.insufficientFunds(accountId, current, -change * sign);
            break;
          }
        }
        if (refusal) {
          results[item.index] = { status: 'rejected', error: refusal };
          continue;
        }
        for (const [accountId, change] of changes) {
          const key = slotKey(accountId, 0);
          if (balances.has(key)) balances.set(key, (balances.get(key) ?? 0n) + change);
        }
        rows.push(item.row);
      }
      return rows;
    };

    // One slot of each many-slot account for the whole call, picked at random: the call locks
    // one row of a busy account rather than all of them, so concurrent calls seldom meet there.
    // A many-slot account that must not go below zero and that the call lowers is swept instead:
    // all its slots are locked and gathered into slot 0, where all its entries of the call go,
    // so that it is checked against its whole balance (see `NON_NEGATIVE_SLOTS`).
    const sweep = new Set<string>();
    for (const candidate of candidates) {
      for (const entry of candidate.posting.entries) {
        const target = byId.get(entry.accountId);
        if (
          target?.nonNegative &&
          target.slots > 1 &&
          signedAmount(entry) * normalSign(target.normalSide) < 0n
        )
          sweep.add(entry.accountId);
      }
    }
    const swept = [...sweep].sort();
    const slotsPicked = new Map<string, number>();
    const slotOf = (accountId: string, slots: number): number => {
      let slot = slotsPicked.get(accountId);
      if (slot === undefined) {
        slot = randomInt(slots);
        slotsPicked.set(accountId, slot);
      }
      return slot;
    };

    // 2. A key repeated within the batch is judged against its first use: other content is a
    // conflict at once, the same content shares the first use's fate once that is settled.
    const firstUse = new Map<string, PostingItem>();
    const repeats: { index: number; key: string }[] = [];
    const conflicting: { index: number; key: string }[] = [];
    const items: PostingItem[] = [];
    for (const candidate of candidates) {
      const key = candidate.posting.idempotencyKey;
      const first = firstUse.get(key);
      if (first) {
        if (first.fingerprint.equals(candidate.fingerprint)) repeats.push({ index: candidate.index, key });
        else {
          conflicting.push({ index: candidate.index, key });
          results[candidate.index] = {
            status: 'rejected',
            error: ledgerErrors.existsWithDifferentContent(key, first.id),
          };
        }
        continue;
      }
      const id = newId('txn');
      const item: PostingItem = {
        ...candidate,
        id,
        row: {
          id,
          idempotencyKey: key,
          description: candidate.posting.description,
          cause: candidate.posting.cause,
          metadata: candidate.posting.metadata,
          fingerprint: candidate.fingerprint,
          contentHash: contentHashOf(id, ctx.now, candidate.fingerprint),
          entries: candidate.posting.entries.map((entry) => {
            const slots = byId.get(entry.accountId)?.slots ?? 1;
            return {
              ...entry,
              slot: slots === 1 || sweep.has(entry.accountId) ? 0 : slotOf(entry.accountId, slots),
            };
          }),
        },
      };
      firstUse.set(key, item);
      items.push(item);
    }

    // A transaction is reversed at most once, and a reversal not at all; the database keeps the
    // first rule too (migration 0008). Looked at only when the call reverses something.
    if (items.some((item) => item.row.cause.kind === 'reversal')) {
      const refusals = await repeatedReversals(ctx, items);
      for (const [index, error] of refusals) results[index] = { status: 'rejected', error };
      if (refusals.size > 0) {
        const kept = items.filter((item) => !refusals.has(item.index));
        items.splice(0, items.length, ...kept);
      }
    }

    // 3. Write. Usually one statement does it all (see `postTransactions`); when it declines (a
    // non-negative account would go below zero, or an atomic batch has a refused item), the
    // postings are admitted one by one, in order, against the balances it locked.
    const replayIds = new Map<number, string>();
    const rejectedAtomic = () => {
      const failed = results.flatMap((result, index) =>
        result?.status === 'rejected' ? [{ index, code: result.error.code, error: result.error }] : [],
      );
      if (inputs.length === 1) return (failed[0] as { error: DomainError }).error;
      return ledgerErrors.batchRejected(
        failed.map(({ index, code, error }) => ({ index, code, message: error.message })),
      );
    };
    const refuseTaken = (item: PostingItem, prior: ExistingPosting) => {
      if (prior.fingerprint.equals(item.fingerprint)) replayIds.set(item.index, prior.id);
      else
        results[item.index] = {
          status: 'rejected',
          error: ledgerErrors.existsWithDifferentContent(item.row.idempotencyKey, prior.id),
        };
    };
    let written: ReadonlySet<string> = new Set<string>();
    let taken: ReadonlyMap<string, ExistingPosting>;
    let balances: Map<string, bigint> | null = null;
    if (items.length === 0) {
      taken = new Map();
    } else if (!(options.atomic && results.some((result) => result !== undefined))) {
      const outcome = await withinRange(
        postTransactions(
          ctx.db,
          ctx.now,
          items.map((item) => item.row),
          { atomic: options.atomic, sweep: swept },
        ),
      );
      taken = outcome.taken;
      if (outcome.applied) written = outcome.written;
      else balances = new Map(outcome.balances);
    } else {
      // An atomic batch already refused: nothing is written, but every refused item is named.
      taken = new Map(
        (await findPostingsByKey(ctx.db, [...firstUse.keys()])).map((e) => [e.idempotencyKey, e]),
      );
      balances = await withinRange(
        lockSlots(ctx.db, slotRefsOf(items.filter((item) => !taken.has(item.row.idempotencyKey))), swept),
      );
    }
    for (const item of items) {
      const prior = taken.get(item.row.idempotencyKey);
      if (prior) refuseTaken(item, prior);
    }
    for (const { index, key } of conflicting) {
      const prior = taken.get(key);
      if (prior)
        results[index] = {
          status: 'rejected',
          error: ledgerErrors.existsWithDifferentContent(key, prior.id),
        };
    }
    if (balances) {
      const admitted = admit(
        items.filter((item) => !taken.has(item.row.idempotencyKey)),
        balances,
      );
      if (options.atomic && results.some((result) => result?.status === 'rejected')) throw rejectedAtomic();
      written =
        admitted.length > 0
          ? await withinRange(insertPostings(ctx.db, ctx.now, admitted))
          : new Set<string>();
    }

    // 4. A key taken by a concurrent poster since the statement began is a replay or a conflict.
    const lost = items.filter(
      (item) =>
        !written.has(item.id) && !taken.has(item.row.idempotencyKey) && results[item.index] === undefined,
    );
    if (lost.length > 0) {
      const winners = new Map(
        (
          await findPostingsByKey(
            ctx.db,
            lost.map((item) => item.row.idempotencyKey),
          )
        ).map((e) => [e.idempotencyKey, e]),
      );
      for (const item of lost) {
        const winner = winners.get(item.row.idempotencyKey);
        if (winner) refuseTaken(item, winner);
        else
          results[item.index] = {
            status: 'rejected',
            error: ledgerErrors.existsWithDifferentContent(item.row.idempotencyKey, ''),
          };
      }
      if (options.atomic && results.some((result) => result?.status === 'rejected')) throw rejectedAtomic();
    }
    for (const item of items) {
      if (!written.has(item.id) || results[item.index]) continue;
      results[item.index] = {
        status: 'posted',
        transaction: {
          id: item.id,
          idempotencyKey: item.row.idempotencyKey,
          description: item.row.description,
          cause: item.row.cause,
          metadata: item.row.metadata,
          postedAt: ctx.now,
          entries: item.posting.entries,
          contentHash: item.row.contentHash.toString('hex'),
        },
      };
    }
    if (replayIds.size > 0) {
      const originals = new Map(
        (await findTransactions(ctx.db, [...new Set(replayIds.values())])).map((t) => [t.id, t]),
      );
      for (const [index, id] of replayIds) {
        const original = originals.get(id);
        if (original) results[index] = { status: 'replayed', transaction: original };
      }
    }
    // A repeated key shares its first use's fate: the same content gets its transaction (or its
    // refusal), other content is a conflict.
    for (const repeat of repeats) {
      const outcome = results[(firstUse.get(repeat.key) as PostingItem).index];
      if (outcome?.status === 'rejected') results[repeat.index] = outcome;
      else if (outcome) results[repeat.index] = { status: 'replayed', transaction: outcome.transaction };
    }
    if (options.atomic && results.some((result) => result?.status === 'rejected')) throw rejectedAtomic();
    return results.map((result) => {
      if (!result) throw new Error('every batch item has a result');
      return result;
    });
  }

  async function checkPostings(ctx: Context, inputs: readonly PostingInput[]): Promise<FieldError[][]> {
    const ids = inputs.flatMap((input) =>
      input.entries.flatMap((entry) => (typeof entry.account === 'string' ? [entry.account] : [])),
    );
    const known = await accountsOf(ctx, ids);
    return inputs.map((input) => {
      const errors: FieldError[] = [];
      const entries: ResolvedEntry[] = [];
      input.entries.forEach((entry, position) => {
        const path = `/entries/${position}/account`;
        let currency: string;
        if (typeof entry.account === 'string') {
          const found = known.get(entry.account);
          if (!found) {
            errors.push({ path, rule: 'exists', message: `no account ${entry.account}` });
            return;
          }
          currency = found.currency;
        } else {
          const refusal = keyRefusal(entry.account);
          if (refusal) {
            errors.push({ path, rule: refusal.code, message: refusal.message });
            return;
          }
          currency = entry.account.currency;
        }
        if (entry.currency !== undefined && entry.currency !== currency) {
          errors.push({
            path: `/entries/${position}/currency`,
            rule: 'currency',
            message: `must be ${currency}`,
          });
          return;
        }
        entries.push({ accountId: '', currency, direction: entry.direction, amountMinor: entry.amountMinor });
      });
      errors.push(
        ...postingErrors({
          idempotencyKey: input.idempotencyKey,
          description: input.description ?? '',
          cause: input.cause,
          entries,
          metadata: input.metadata ?? {},
        }),
      );
      return errors;
    });
  }

  async function post(ctx: Context, input: PostingInput): Promise<PostResult> {
    const [result] = await postBatch(ctx, [input], { atomic: true });
    if (!result || result.status === 'rejected') throw result?.error ?? new Error('a posting has a result');
    return { transaction: result.transaction, replayed: result.status === 'replayed' };
  }

  /** Whether the actor sees everything: accounts, and transactions whole. The operator and Baton itself. */
  const seesWhole = (ctx: Context) => ctx.actor.kind === 'operator' || ctx.actor.kind === 'system';

  function visible(ctx: Context, target: Account): boolean {
    if (seesWhole(ctx)) return true;
    return (
      ctx.actor.kind === 'partner' && target.ownerKind === 'partner' && target.ownerId === ctx.actor.partnerId
    );
  }

  async function getAccount(ctx: Context, id: string): Promise<Account> {
    const found = parseId('acc', id) ? (await accountsOf(ctx, [id as AccountId])).get(id as AccountId) : null;
    if (!found || !visible(ctx, found)) throw ledgerErrors.accountNotFound(id);
    return found;
  }

  /**
   * A transaction, whole, when the actor may see it: the operator always, anyone else when it
   * touches one of their accounts (another's is a 404 like a missing one).
   *
   * @throws DomainError `ledger.transaction_not_found`
   */
  async function readable(ctx: Context, id: string): Promise<LedgerTransaction> {
    const [found] = parseId('txn', id) ? await findTransactions(ctx.db, [id as LedgerTransactionId]) : [];
    if (!found) throw ledgerErrors.transactionNotFound(id);
    if (!seesWhole(ctx)) {
      const touched = await accountsOf(
        ctx,
        found.entries.map((entry) => entry.accountId as AccountId),
      );
      if (![...touched.values()].some((a) => a && visible(ctx, a)))
        throw ledgerErrors.transactionNotFound(id);
    }
    return found;
  }

  /**
   * What the actor may see of transactions it may read. The operator sees them whole. A partner
   * sees only its own accounts: of a transaction, the entries on its accounts (which need not
   * balance on their own), and no metadata. Metadata is the poster's record for the platform's
   * books (a leg's release keeps its gross, margin, commission, fee rule and version and subsidy
   * programme there), and orders show partners none of that; an allowlist of harmless keys
   * would have to follow every module that posts, and a key added there would be shown by
   * default. What a partner's money did is in its own entries and statements.
   */
  async function seenBy(
    ctx: Context,
    transactions: readonly LedgerTransaction[],
  ): Promise<LedgerTransaction[]> {
    if (seesWhole(ctx)) return [...transactions];
    const accounts = await accountsOf(
      ctx,
      transactions.flatMap((t) => t.entries.map((entry) => entry.accountId as AccountId)),
    );
    const own = (accountId: string) => {
      const account = accounts.get(accountId as AccountId);
      return account !== null && account !== undefined && visible(ctx, account);
    };
    return transactions.map((t) => ({
      ...t,
      metadata: {},
      entries: t.entries.filter((e) => own(e.accountId)),
    }));
  }

  async function balanceOf(ctx: Context, target: Account, asOf?: Date): Promise<Balance> {
    const signed = asOf
      ? await entriesBalance(ctx.db, target.id, asOf)
      : await slotBalance(ctx.db, target.id);
    return { account: target, balanceMinor: signed * normalSign(target.normalSide), asOf: asOf ?? ctx.now };
  }

  return {
    account,
    getAccount,
    async listAccounts(ctx, filter) {
      const scoped =
        ctx.actor.kind === 'partner'
          ? { ...filter, ownerKind: 'partner' as const, ownerId: ctx.actor.partnerId }
          : filter;
      const rows = await listAccounts(ctx.db, scoped);
      return { items: rows.slice(0, filter.limit), hasMore: rows.length > filter.limit };
    },
    post,
    postBatch,
    checkPostings,
    async reverse(ctx, transactionId, input) {
      const original = await readable(ctx, transactionId);
      return post(ctx, {
        idempotencyKey: input.idempotencyKey,
        description: input.description ?? `Reversal of ${original.id}`,
        cause: { kind: 'reversal', id: original.id },
        metadata: { reverses: original.id },
        entries: original.entries.map((entry) => ({
          account: entry.accountId as AccountId,
          direction: entry.direction === 'debit' ? 'credit' : 'debit',
          amountMinor: entry.amountMinor,
        })),
      });
    },
    async balance(ctx, ref, options = {}) {
      const target = await resolve(ctx, ref);
      return balanceOf(ctx, target, options.asOf);
    },
    async lockBalance(ctx, ref) {
      requireTransaction(ctx.db);
      const target = await resolve(ctx, ref);
      if (!target.nonNegative)
        throw new Error(`lockBalance needs a non-negative account; ${target.purpose} is not`);
      // Every slot locked, gathered into slot 0: nothing can change the balance meanwhile.
      const balances = await withinRange(lockSlots(ctx.db, [], [target.id]));
      return {
        account: target,
        balanceMinor: (balances.get(slotKey(target.id, 0)) ?? 0n) * normalSign(target.normalSide),
        asOf: ctx.now,
      };
    },
    async transaction(ctx, id) {
      const [shown] = await seenBy(ctx, [await readable(ctx, id)]);
      if (!shown) throw ledgerErrors.transactionNotFound(id);
      return shown;
    },
    transactionsFor: (ctx, cause) => findTransactionsByCause(ctx.db, cause),
    async listTransactions(ctx, filter) {
      let accountIds: string[] | undefined;
      if (filter.accountId !== undefined) accountIds = [(await getAccount(ctx, filter.accountId)).id];
      else if (ctx.actor.kind === 'partner') {
        accountIds = (
          await listAccounts(ctx.db, { ownerKind: 'partner', ownerId: ctx.actor.partnerId, limit: 1000 })
        ).map((a) => a.id);
      }
      const rows = await listTransactions(ctx.db, { ...filter, accountIds });
      return { items: await seenBy(ctx, rows.slice(0, filter.limit)), hasMore: rows.length > filter.limit };
    },
    async statement(ctx, accountId, page) {
      const target = await getAccount(ctx, accountId);
      const lines = await statementLines(ctx.db, target.id, page);
      if (!lines) throw ledgerErrors.statementCursorInvalid(page.after ?? '');
      const sign = normalSign(target.normalSide);
      const items = lines.slice(0, page.limit).map((line) => ({
        ...line,
        id: `${line.transactionId}.${line.position}`,
        amountMinor: line.amountMinor,
        balanceAfterMinor: line.balanceAfterMinor * sign,
      }));
      return { account: target, lines: { items, hasMore: lines.length > page.limit } };
    },
  };
}

/** A posting of a batch, ready to write: its place in the batch, its id, its row. */
interface PostingItem {
  readonly index: number;
  readonly id: string;
  readonly posting: ResolvedPosting;
  readonly fingerprint: Buffer;
  readonly row: PostingRow;
}

/**
 * The refusals of postings that would reverse a transaction already reversed (by another key:
 * the same key as the reversal posted is a replay, or a conflict of content, as for any key),
 * reverse a reversal or reverse a payout's posting, by the posting's index. Reversals of one transaction wait for each other
 * here (`lockReversalsOf`), so that the one that waited is refused, naming the first, rather
 * than running into the database's unique index. Within a call, the first posting that reverses
 * a transaction claims it.
 */
async function repeatedReversals(
  ctx: Context,
  items: readonly PostingItem[],
): Promise<Map<number, DomainError>> {
  const reversing = items.filter((item) => item.row.cause.kind === 'reversal');
  const targets = reversing.map((item) => item.row.cause.id);
  await lockReversalsOf(ctx.db, targets);
  const known = await findReversals(ctx.db, targets);
  const firstOf = new Map<string, string>();
  for (const [target, [first]] of known.of) if (first) firstOf.set(target, first.id);
  const refusals = new Map<number, DomainError>();
  for (const item of reversing) {
    const target = item.row.cause.id;
    if (known.of.get(target)?.some((reversal) => reversal.idempotencyKey === item.row.idempotencyKey))
      continue;
    const first = firstOf.get(target);
    if (known.areReversals.has(target)) refusals.set(item.index, ledgerErrors.reversalNotReversible(target));
    else if (known.providerDriven.has(target))
      refusals.set(
        item.index,
        ledgerErrors.notReversible(target, known.providerDriven.get(target) ?? 'payout'),
      );
    else if (first !== undefined) refusals.set(item.index, ledgerErrors.alreadyReversed(target, first));
    else firstOf.set(target, item.id);
  }
  return refusals;
}

/** The balance slots some postings change, in the (account, slot) order every locker follows. */
function slotRefsOf(items: readonly PostingItem[]): SlotRef[] {
  const refs = new Map<string, SlotRef>();
  for (const item of items) {
    for (const entry of item.row.entries)
      refs.set(slotKey(entry.accountId, entry.slot), { accountId: entry.accountId, slot: entry.slot });
  }
  return [...refs.values()].sort((a, b) =>
    a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : a.slot - b.slot,
  );
}

const keyOf = (key: { purpose: string; ownerId: string; currency: string }) =>
  `${key.purpose}/${key.ownerId}/${key.currency}`;

function ownerFits(rules: PurposeRules, ownerId: string): boolean {
  switch (rules.owner) {
    case 'platform':
      return ownerId === PLATFORM_OWNER;
    case 'partner':
      return parseId('ptn', ownerId) !== null;
    case 'order':
    case 'programme':
      return ownerId.length > 0 && ownerId.length <= 100 && ownerId !== PLATFORM_OWNER;
  }
}
