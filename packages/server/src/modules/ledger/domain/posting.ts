import { createHash } from 'node:crypto';
import type { FieldError } from '../../../kernel/errors.js';
import { AMOUNT_MINOR_MAX } from '../../../kernel/money.js';
import type { NormalSide } from './chart.js';

/** What caused a ledger transaction: every transaction links to one object of one of these kinds. */
export const CAUSE_KINDS = [
  'payment',
  'order',
  'leg',
  'refund',
  'chargeback',
  'payout',
  'subscription',
  'service_charge',
  'subsidy',
  'adjustment',
  'reversal',
] as const;
export type CauseKind = (typeof CAUSE_KINDS)[number];

/** Cause kinds whose postings move as the payment provider answers: not reversed by hand. */
export const PROVIDER_CAUSE_KINDS = [
  'payment',
  'refund',
  'chargeback',
  'payout',
] as const satisfies readonly CauseKind[];
export type ProviderCauseKind = (typeof PROVIDER_CAUSE_KINDS)[number];
export const isProviderCause = (kind: string): kind is ProviderCauseKind =>
  (PROVIDER_CAUSE_KINDS as readonly string[]).includes(kind);

export interface Cause {
  readonly kind: CauseKind;
  readonly id: string;
}

/** Most entries in one transaction, most transactions in one batch. */
export const ENTRIES_MAX = 64;
export const BATCH_MAX = 1000;
export const IDEMPOTENCY_KEY_LENGTH_MAX = 200;
export const DESCRIPTION_LENGTH_MAX = 500;
export const METADATA_KEYS_MAX = 20;
export const METADATA_VALUE_LENGTH_MAX = 500;

/** One line of a transaction as the ledger stores it, with the account already resolved. */
export interface ResolvedEntry {
  readonly accountId: string;
  readonly currency: string;
  readonly direction: NormalSide;
  readonly amountMinor: bigint;
}

/** A transaction as the poster describes it, accounts resolved. */
export interface ResolvedPosting {
  readonly idempotencyKey: string;
  readonly description: string;
  readonly cause: Cause;
  readonly entries: readonly ResolvedEntry[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Debits are stored positive, credits negative: every balanced transaction sums to zero. */
export const signedAmount = (entry: Pick<ResolvedEntry, 'direction' | 'amountMinor'>): bigint =>
  entry.direction === 'debit' ? entry.amountMinor : -entry.amountMinor;

/**
 * What a transaction moves in each currency: the sum of its debits, which equals the sum of its
 * credits when it balances. Four eyes on postings by hand count this.
 */
export function movedPerCurrency(
  entries: readonly Pick<ResolvedEntry, 'currency' | 'direction' | 'amountMinor'>[],
): Map<string, bigint> {
  const moved = new Map<string, bigint>();
  for (const entry of entries) {
    if (entry.direction === 'debit')
      moved.set(entry.currency, (moved.get(entry.currency) ?? 0n) + entry.amountMinor);
  }
  return moved;
}

/** Adds what several transactions move, currency by currency. */
export function addMoved(
  totals: Map<string, bigint>,
  moved: ReadonlyMap<string, bigint>,
): Map<string, bigint> {
  for (const [currency, minor] of moved) totals.set(currency, (totals.get(currency) ?? 0n) + minor);
  return totals;
}

/**
 * Every rule a transaction must meet before it is written: at least two entries, positive
 * amounts within bounds, and debits equal to credits in each currency. The database checks the
 * balance again for every statement that writes entries (a statement-level trigger, see the
 * ledger's migrations), so a bug here cannot corrupt the books.
 */
export function postingErrors(posting: ResolvedPosting): FieldError[] {
  const errors: FieldError[] = [];
  const key = posting.idempotencyKey;
  if (key.length === 0 || key.length > IDEMPOTENCY_KEY_LENGTH_MAX) {
    errors.push({
      path: '/idempotency_key',
      rule: 'length',
      message: `must have 1 to ${IDEMPOTENCY_KEY_LENGTH_MAX} characters`,
    });
  }
  if (posting.description.length > DESCRIPTION_LENGTH_MAX) {
    errors.push({
      path: '/description',
      rule: 'maxLength',
      message: `must have at most ${DESCRIPTION_LENGTH_MAX} characters`,
    });
  }
  if (posting.entries.length < 2 || posting.entries.length > ENTRIES_MAX) {
    errors.push({ path: '/entries', rule: 'length', message: `must have 2 to ${ENTRIES_MAX} entries` });
  }
  const metadataKeys = Object.keys(posting.metadata);
  if (
    metadataKeys.length > METADATA_KEYS_MAX ||
    Object.values(posting.metadata).some((value) => value.length > METADATA_VALUE_LENGTH_MAX)
  ) {
    errors.push({
      path: '/metadata',
      rule: 'size',
      message: `must have at most ${METADATA_KEYS_MAX} keys of at most ${METADATA_VALUE_LENGTH_MAX} characters`,
    });
  }
  const sums = new Map<string, bigint>();
  posting.entries.forEach((entry, index) => {
    if (entry.amountMinor <= 0n || entry.amountMinor > AMOUNT_MINOR_MAX) {
      errors.push({
        path: `/entries/${index}/amount`,
        rule: 'range',
        message: 'must be positive and within the largest amount Baton books',
      });
    }
    sums.set(entry.currency, (sums.get(entry.currency) ?? 0n) + signedAmount(entry));
  });
  for (const [currency, sum] of sums) {
    if (sum !== 0n) {
      errors.push({
        path: '/entries',
        rule: 'balanced',
        message: `debits and credits in ${currency} differ by ${sum < 0n ? -sum : sum} minor units`,
      });
    }
  }
  return errors;
}

/**
 * The fingerprint of what the poster asked for: the same key with the same fingerprint is a
 * replay, with another one a conflict. Object keys are sorted so that the fingerprint does not
 * depend on how the request was written.
 */
export function fingerprintOf(posting: ResolvedPosting): Buffer {
  // The canonical JSON of { key, description, cause, metadata, entries }, written out in key
  // order: a batch fingerprints a thousand postings, and the generic walk sorted and copied
  // every level. An array of strings has one canonical form, JSON.stringify's.
  const entries = JSON.stringify(
    posting.entries.map((entry) => [
      entry.accountId,
      entry.currency,
      entry.direction,
      entry.amountMinor.toString(),
    ]),
  );
  return sha256(
    `{"cause":${canonicalJson(posting.cause)},"description":${JSON.stringify(posting.description)},` +
      `"entries":${entries},"key":${JSON.stringify(posting.idempotencyKey)},"metadata":${canonicalJson(posting.metadata)}}`,
  );
}

/**
 * The hash of a written transaction: its fingerprint bound to its id and posting time. The
 * hash chain links these, and `verify` recomputes both from the stored rows.
 */
export function contentHashOf(id: string, postedAt: Date, fingerprint: Buffer): Buffer {
  return sha256(`${id}\n${postedAt.toISOString()}\n${fingerprint.toString('hex')}`);
}

/** The next link of the hash chain: the previous link and this transaction's hash. */
export function chainHashOf(previous: Buffer, contentHash: Buffer): Buffer {
  return createHash('sha256').update(previous).update(contentHash).digest();
}

/** The link before the first transaction. */
export const CHAIN_GENESIS: Buffer = Buffer.alloc(32);

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
