import { ENGAGED_STATES, type PartnerState } from './lifecycle.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** One published version of a partner type's rules of engagement. */
export interface RulesVersion {
  readonly partnerType: string;
  readonly version: number;
  readonly title: string;
  readonly body: string;
  /** Days an engaged partner may keep taking work before it accepts this version. */
  readonly gracePeriodDays: number;
  readonly publishedAt: Date;
}

/**
 * Where a partner stands with the rules of its type:
 * - `not_required`: the type has no rules;
 * - `accepted`: it accepted the current version;
 * - `pending`: it has not yet accepted the current version and is not engaged yet;
 * - `grace`: engaged, a newer version was published, and the grace period runs;
 * - `lapsed`: engaged, and the grace period ended without acceptance.
 */
export type RulesStatus = 'not_required' | 'accepted' | 'pending' | 'grace' | 'lapsed';

export interface RulesStanding {
  readonly status: RulesStatus;
  readonly currentVersion: number | null;
  readonly acceptedVersion: number | null;
  readonly graceUntil: Date | null;
}

export function graceEnd(rules: RulesVersion): Date {
  return new Date(rules.publishedAt.getTime() + rules.gracePeriodDays * DAY_MS);
}

export function rulesStanding(
  state: PartnerState,
  current: RulesVersion | null,
  acceptedVersion: number | null,
  now: Date,
): RulesStanding {
  const base = { currentVersion: current?.version ?? null, acceptedVersion, graceUntil: null };
  if (!current) return { ...base, status: 'not_required' };
  if (acceptedVersion !== null && acceptedVersion >= current.version) return { ...base, status: 'accepted' };
  if (!ENGAGED_STATES.includes(state)) return { ...base, status: 'pending' };
  const until = graceEnd(current);
  return { ...base, status: now < until ? 'grace' : 'lapsed', graceUntil: until };
}

/** Whether a partner may be given work now: engaged, and within the rules or their grace period. */
export function canTakeWork(state: PartnerState, standing: RulesStanding): boolean {
  return ENGAGED_STATES.includes(state) && standing.status !== 'lapsed' && standing.status !== 'pending';
}
