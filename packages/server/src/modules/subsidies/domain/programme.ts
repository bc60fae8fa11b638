import type { FieldError } from '../../../kernel/errors.js';
import { AMOUNT_MINOR_MAX, applyBasisPointsHalfUp } from '../../../kernel/money.js';

/** Which side of the market a programme pays for: the partners' fees or the customers'. */
export const SIDES = ['partner', 'customer'] as const;
export type Side = (typeof SIDES)[number];

/**
 * How the subsidy is described to its beneficiary. Both post the same money the same way (the
 * budget pays the beneficiary a share of the fee, in the transaction that applies it): a
 * `waiver` is presented as a fee not charged, a `rebate` as money given back after the fee.
 * On the customer side the fee is the platform's margin on an order, and both are paid when the
 * order is placed, into its escrow, so that the customer is charged the rest: a rebate is given
 * up front rather than paid back later, which would take a second movement at the provider.
 */
export const KINDS = ['waiver', 'rebate'] as const;
export type Kind = (typeof KINDS)[number];

/**
 * A programme's life: `draft` until funded and activated; `active` while it pays; `exhausted`
 * when its budget is spent (a top-up or a refund makes it `active` again while its window lasts);
 * `ended` once its window is over, `cancelled` when the operator stops it. The last two are final
 * and return the unspent budget.
 */
export const PROGRAMME_STATUSES = ['draft', 'active', 'exhausted', 'ended', 'cancelled'] as const;
export type ProgrammeStatus = (typeof PROGRAMME_STATUSES)[number];
export const CLOSED_STATUSES: readonly ProgrammeStatus[] = ['ended', 'cancelled'];

/** 10 000 basis points: the whole fee. */
export const SHARE_BPS_MAX = 10_000;
export const NAME_LENGTH_MAX = 200;
/** Most values in one targeting list. */
export const TARGETS_MAX = 50;
export const TARGET_KEY_PATTERN = /^[a-z0-9][a-z0-9_-]{0,59}$/;
/** The caller's idempotency keys leave room for the prefix of the ledger keys made from them. */
export const APPLY_KEY_LENGTH_MAX = 150;

/** Who a programme is for; an empty list does not narrow it. */
export interface Targeting {
  readonly partnerTypes: readonly string[];
  readonly regions: readonly string[];
  /** The segments of the customers whose orders it pays for, on either side. */
  readonly customerSegments: readonly string[];
  readonly capabilities: readonly string[];
}

/** A programme's terms as the operator states them, amounts already parsed. */
export interface ProgrammeTerms {
  readonly name: string;
  readonly side: Side;
  readonly kind: Kind;
  readonly shareBps: number;
  readonly currency: string;
  readonly budgetMinor: bigint;
  readonly capPerParticipantMinor: bigint;
  readonly startsAt: Date;
  readonly endsAt: Date;
  readonly targeting: Targeting;
}

/** What a programme looks like to the rules below. */
export interface ProgrammeView {
  readonly id: string;
  readonly side: Side;
  readonly shareBps: number;
  readonly currency: string;
  readonly status: ProgrammeStatus;
  readonly startsAt: Date;
  readonly endsAt: Date;
  readonly targeting: Targeting;
}

/**
 * The fee a subsidy is asked to pay for, and who it is for: on the partner side, the partner's
 * type and, for a fee on an order, the segment of the order's customer.
 */
export interface Occasion {
  readonly side: Side;
  readonly partnerType?: string | undefined;
  readonly customerSegment?: string | undefined;
  readonly region: string;
  readonly capability?: string | undefined;
  readonly currency: string;
}

/**
 * Every rule a programme's terms must meet, as field errors (JSON Pointers into the request).
 * `now` is the time of the request: a programme cannot be created for a window already over.
 */
export function termsErrors(terms: ProgrammeTerms, now: Date): FieldError[] {
  const errors: FieldError[] = [];
  if (!Number.isInteger(terms.shareBps) || terms.shareBps < 1 || terms.shareBps > SHARE_BPS_MAX) {
    errors.push({ path: '/share_bps', rule: 'range', message: `must be from 1 to ${SHARE_BPS_MAX}` });
  }
  if (terms.budgetMinor <= 0n || terms.budgetMinor > AMOUNT_MINOR_MAX) {
    errors.push({ path: '/budget/amount', rule: 'positive', message: 'must be more than zero' });
  }
  if (terms.capPerParticipantMinor <= 0n || terms.capPerParticipantMinor > AMOUNT_MINOR_MAX) {
    errors.push({ path: '/cap_per_participant/amount', rule: 'positive', message: 'must be more than zero' });
  }
  if (terms.endsAt.getTime() <= terms.startsAt.getTime()) {
    errors.push({ path: '/ends_at', rule: 'after', message: 'must be after starts_at' });
  } else if (terms.endsAt.getTime() <= now.getTime()) {
    errors.push({ path: '/ends_at', rule: 'future', message: 'must be in the future' });
  }
  const lists: [keyof Targeting, string][] = [
    ['partnerTypes', 'partner_types'],
    ['regions', 'regions'],
    ['customerSegments', 'customer_segments'],
    ['capabilities', 'capabilities'],
  ];
  for (const [field, json] of lists) {
    const values = terms.targeting[field];
    if (values.length > TARGETS_MAX) {
      errors.push({ path: `/targeting/${json}`, rule: 'maxItems', message: `at most ${TARGETS_MAX} values` });
    }
    if (new Set(values).size !== values.length) {
      errors.push({ path: `/targeting/${json}`, rule: 'uniqueItems', message: 'must not repeat a value' });
    }
    values.forEach((value, index) => {
      if (!TARGET_KEY_PATTERN.test(value)) {
        errors.push({
          path: `/targeting/${json}/${index}`,
          rule: 'pattern',
          message: 'must be a key such as "eu-west" (lowercase letters, digits, dashes, underscores)',
        });
      }
    });
  }
  // A list that can never match is a mistake, not a programme that quietly pays nobody. Segments
  // are the order's customer's on either side: a partner-side programme with segments pays the
  // partners' fees on the orders of those customers.
  if (terms.side === 'customer' && terms.targeting.partnerTypes.length > 0) {
    errors.push({
      path: '/targeting/partner_types',
      rule: 'side',
      message: 'targets partners; this programme is for customers',
    });
  }
  return errors;
}

const matches = (list: readonly string[], value: string | undefined) =>
  list.length === 0 || (value !== undefined && list.includes(value));

/**
 * Whether a programme pays for this occasion at `now`: active, inside its window (start
 * included, end excluded), same side and currency, and every non-empty targeting list names the
 * occasion's value. An occasion without a value (no capability given) does not match a list.
 */
export function isEligible(programme: ProgrammeView, occasion: Occasion, now: Date): boolean {
  const t = programme.targeting;
  return (
    programme.status === 'active' &&
    programme.startsAt.getTime() <= now.getTime() &&
    now.getTime() < programme.endsAt.getTime() &&
    programme.side === occasion.side &&
    programme.currency === occasion.currency &&
    matches(t.regions, occasion.region) &&
    matches(t.capabilities, occasion.capability) &&
    matches(t.partnerTypes, occasion.side === 'partner' ? occasion.partnerType : undefined) &&
    matches(t.customerSegments, occasion.customerSegment)
  );
}

/**
 * The order in which eligible programmes are tried: the one ending soonest first (its money
 * is the first to lapse), then the oldest. Only one programme pays for one fee.
 */
export function byPreference(a: ProgrammeView, b: ProgrammeView): number {
  const end = a.endsAt.getTime() - b.endsAt.getTime();
  if (end !== 0) return end;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * What a programme pays towards a fee: its share of the fee (rounded half up, so never more
 * than the fee), limited by what the participant may still receive, by the budget left and by
 * `maxMinor` when the caller names one (what a quote promised).
 */
export function subsidyAmount(input: {
  readonly feeMinor: bigint;
  readonly shareBps: number;
  readonly capRemainingMinor: bigint;
  readonly budgetMinor: bigint;
  readonly maxMinor?: bigint | undefined;
}): bigint {
  const share = applyBasisPointsHalfUp(input.feeMinor, BigInt(input.shareBps));
  let amount = share;
  if (input.maxMinor !== undefined && input.maxMinor < amount) amount = input.maxMinor;
  if (input.capRemainingMinor < amount) amount = input.capRemainingMinor;
  if (input.budgetMinor < amount) amount = input.budgetMinor;
  return amount > 0n ? amount : 0n;
}
