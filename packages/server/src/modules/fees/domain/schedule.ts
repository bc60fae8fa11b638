import type { FieldError } from '../../../kernel/errors.js';

/*
 * Fee schedules: commission rules and the pure function that picks one and computes a fee.
 *
 * A version of the schedule holds rules for one currency. A rule matches on up to five fields;
 * a field left null matches anything. The rule with the most fields set wins; between rules
 * with as many fields set, the one whose fields rank higher in MATCH_FIELDS wins (capability,
 * then partner type, tier, region and segment). Two rules that set the same fields to the same
 * values would be a tie nothing could break, so a version with such a pair is refused.
 */

/** How the percentage part is rounded to minor units. */
export const ROUNDINGS = ['half_up', 'half_even', 'down'] as const;
export type Rounding = (typeof ROUNDINGS)[number];

/** The fields a rule may match on, in the order of precedence that breaks ties of specificity. */
export const MATCH_FIELDS = ['capability', 'partnerType', 'tier', 'region', 'segment'] as const;
export type MatchField = (typeof MATCH_FIELDS)[number];

/** The tier every partner has until an operator sets another. */
export const DEFAULT_TIER = 'standard';
/** Commission is at most the whole amount: 10 000 basis points. */
export const COMMISSION_BPS_MAX = 10_000;
/** Most rules one version holds. */
export const RULES_MAX = 500;

export type RuleMatch = { readonly [F in MatchField]: string | null };

export interface FeeRule extends RuleMatch {
  readonly id: string;
  readonly commissionBps: number;
  readonly fixedMinor: bigint;
  readonly floorMinor: bigint | null;
  readonly capMinor: bigint | null;
  readonly rounding: Rounding;
}

/** A version of the fee schedule of one currency, in force from `effectiveFrom` until the next one. */
export interface FeeVersion {
  readonly id: string;
  readonly currency: string;
  readonly effectiveFrom: Date;
  readonly rules: readonly FeeRule[];
}

/** A hypothetical or real order line, as the fee rules see it. */
export interface FeeQuery {
  readonly capability: string;
  readonly partnerType: string;
  readonly tier: string;
  readonly region: string | null;
  readonly segment: string | null;
  readonly amountMinor: bigint;
  readonly currency: string;
}

export interface FeeBreakdown {
  /** The amount times the rule's basis points, rounded as the rule says. */
  readonly percentageMinor: bigint;
  readonly fixedMinor: bigint;
  /** The floor raised the fee. */
  readonly floored: boolean;
  /** The cap lowered the fee. */
  readonly capped: boolean;
  /** The fee was lowered to the amount itself: a fee never takes more than the whole amount. */
  readonly limitedToAmount: boolean;
}

export interface FeeResult {
  /** The rule applied, or null when no rule matches (no fee). */
  readonly ruleId: string | null;
  readonly commissionMinor: bigint;
  readonly breakdown: FeeBreakdown;
}

const NO_FEE: FeeBreakdown = {
  percentageMinor: 0n,
  fixedMinor: 0n,
  floored: false,
  capped: false,
  limitedToAmount: false,
};

/** `amountMinor × bps / 10 000` for a non-negative amount, rounded as named. */
export function applyBasisPoints(amountMinor: bigint, bps: number, rounding: Rounding): bigint {
  const product = amountMinor * BigInt(bps);
  const quotient = product / 10_000n;
  const remainder = product % 10_000n;
  switch (rounding) {
    case 'down':
      return quotient;
    case 'half_up':
      return remainder >= 5_000n ? quotient + 1n : quotient;
    case 'half_even':
      if (remainder > 5_000n) return quotient + 1n;
      if (remainder < 5_000n) return quotient;
      return quotient % 2n === 0n ? quotient : quotient + 1n;
  }
}

/** How many match fields a rule sets, and which: higher is more specific. */
export function specificity(rule: RuleMatch): number {
  let count = 0;
  let precedence = 0;
  for (const [index, field] of MATCH_FIELDS.entries()) {
    if (rule[field] !== null) {
      count++;
      precedence |= 1 << (MATCH_FIELDS.length - 1 - index);
    }
  }
  // The count dominates: any rule with more fields set beats every rule with fewer.
  return count * (1 << MATCH_FIELDS.length) + precedence;
}

export function ruleMatches(rule: RuleMatch, query: FeeQuery): boolean {
  return (
    (rule.capability === null || rule.capability === query.capability) &&
    (rule.partnerType === null || rule.partnerType === query.partnerType) &&
    (rule.tier === null || rule.tier === query.tier) &&
    (rule.region === null || rule.region === query.region) &&
    (rule.segment === null || rule.segment === query.segment)
  );
}

/** The most specific rule of the version that matches, or null when none does. */
export function ruleFor(version: Pick<FeeVersion, 'rules'>, query: FeeQuery): FeeRule | null {
  let best: FeeRule | null = null;
  let bestRank = -1;
  for (const rule of version.rules) {
    if (!ruleMatches(rule, query)) continue;
    const rank = specificity(rule);
    if (rank > bestRank) {
      best = rule;
      bestRank = rank;
    }
  }
  return best;
}

/** The fee one rule charges on an amount: percentage plus fixed, then floor, cap, and the amount itself. */
export function feeOfRule(rule: FeeRule, amountMinor: bigint): Omit<FeeResult, 'ruleId'> {
  const percentageMinor = applyBasisPoints(amountMinor, rule.commissionBps, rule.rounding);
  let fee = percentageMinor + rule.fixedMinor;
  let floored = false;
  let capped = false;
  let limitedToAmount = false;
  if (rule.floorMinor !== null && fee < rule.floorMinor) {
    fee = rule.floorMinor;
    floored = true;
  }
  if (rule.capMinor !== null && fee > rule.capMinor) {
    fee = rule.capMinor;
    capped = true;
  }
  // A fee above the amount would leave the partner owing money for its own sale.
  if (fee > amountMinor) {
    fee = amountMinor;
    limitedToAmount = true;
  }
  return {
    commissionMinor: fee,
    breakdown: { percentageMinor, fixedMinor: rule.fixedMinor, floored, capped, limitedToAmount },
  };
}

/**
 * The commission a version charges on one order line: the most specific matching rule's fee,
 * or no fee when no rule matches. The caller checks that the currencies agree and that the
 * amount is not negative.
 */
export function feeFor(version: Pick<FeeVersion, 'rules'>, query: FeeQuery): FeeResult {
  const rule = ruleFor(version, query);
  if (!rule) return { ruleId: null, commissionMinor: 0n, breakdown: NO_FEE };
  return { ruleId: rule.id, ...feeOfRule(rule, query.amountMinor) };
}

/** A rule as an operator states it, before it has an id. */
export type RuleInput = Omit<FeeRule, 'id'>;

const WIRE_NAMES: Readonly<Record<MatchField, string>> = {
  capability: 'capability',
  partnerType: 'partner_type',
  tier: 'tier',
  region: 'region',
  segment: 'customer_segment',
};

/**
 * Every rule a version's rules break, by field: amounts in range, a cap not below the floor,
 * and no two rules that set the same fields to the same values.
 */
export function ruleErrors(rules: readonly RuleInput[]): FieldError[] {
  const errors: FieldError[] = [];
  const seen = new Map<string, number>();
  for (const [index, rule] of rules.entries()) {
    const at = `/rules/${index}`;
    if (
      rule.commissionBps < 0 ||
      rule.commissionBps > COMMISSION_BPS_MAX ||
      !Number.isInteger(rule.commissionBps)
    ) {
      errors.push({
        path: `${at}/commission_bps`,
        rule: 'range',
        message: `must be a whole number from 0 to ${COMMISSION_BPS_MAX}`,
      });
    }
    for (const [field, value] of [
      ['fixed', rule.fixedMinor],
      ['floor', rule.floorMinor],
      ['cap', rule.capMinor],
    ] as const) {
      if (value !== null && value < 0n) {
        errors.push({ path: `${at}/${field}`, rule: 'minimum', message: 'must not be negative' });
      }
    }
    if (rule.floorMinor !== null && rule.capMinor !== null && rule.capMinor < rule.floorMinor) {
      errors.push({ path: `${at}/cap`, rule: 'cap_below_floor', message: 'must not be below the floor' });
    }
    const match = JSON.stringify(MATCH_FIELDS.map((field) => rule[field]));
    const earlier = seen.get(match);
    if (earlier !== undefined) {
      const fields = MATCH_FIELDS.filter((field) => rule[field] !== null).map((field) => WIRE_NAMES[field]);
      errors.push({
        path: at,
        rule: 'ambiguous',
        message: `matches exactly what rule ${earlier} matches (${fields.length > 0 ? fields.join(', ') : 'everything'}); one of them could never apply`,
      });
    } else {
      seen.set(match, index);
    }
  }
  return errors;
}
