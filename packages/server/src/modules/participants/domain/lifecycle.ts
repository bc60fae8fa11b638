import { participantsErrors } from '../errors.js';

/**
 * A partner's lifecycle. A partner applies, is reviewed, and is approved or rejected; an
 * active partner may be put on probation and back, suspended and reinstated, and finally
 * offboarded. `rejected` and `offboarded` are final.
 */
export const PARTNER_STATES = [
  'applied',
  'under_review',
  'active',
  'probation',
  'suspended',
  'offboarded',
  'rejected',
] as const;
export type PartnerState = (typeof PARTNER_STATES)[number];

export const TRANSITIONS: Readonly<Record<PartnerState, readonly PartnerState[]>> = {
  applied: ['under_review', 'rejected'],
  under_review: ['active', 'rejected'],
  active: ['probation', 'suspended', 'offboarded'],
  probation: ['active', 'suspended', 'offboarded'],
  suspended: ['active', 'probation', 'offboarded'],
  offboarded: [],
  rejected: [],
};

/** States in which a partner is part of the ecosystem and may, rules permitting, take work. */
export const ENGAGED_STATES: readonly PartnerState[] = ['active', 'probation'];

export function isFinal(state: PartnerState): boolean {
  return TRANSITIONS[state].length === 0;
}

/**
 * Checks a transition against the lifecycle and its guard: a partner becomes active only
 * once it has accepted the current rules of engagement of its type.
 *
 * @returns the event type announcing the transition.
 * @throws DomainError `participants.transition_not_allowed`, `participants.rules_not_accepted`
 */
export function checkTransition(
  from: PartnerState,
  to: PartnerState,
  guard: { readonly acceptedCurrentRules: boolean },
): string {
  if (!TRANSITIONS[from].includes(to)) {
    throw participantsErrors.transitionNotAllowed(from, to, TRANSITIONS[from]);
  }
  if (to === 'active' && !guard.acceptedCurrentRules) {
    throw participantsErrors.rulesNotAccepted();
  }
  return transitionEvent(from, to);
}

function transitionEvent(from: PartnerState, to: PartnerState): string {
  switch (to) {
    case 'under_review':
      return 'partner.review_started';
    case 'active':
      return from === 'under_review' ? 'partner.approved' : 'partner.reinstated';
    case 'probation':
      return 'partner.placed_on_probation';
    case 'suspended':
      return 'partner.suspended';
    case 'offboarded':
      return 'partner.offboarded';
    case 'rejected':
      return 'partner.rejected';
    case 'applied':
      return 'partner.applied';
  }
}
