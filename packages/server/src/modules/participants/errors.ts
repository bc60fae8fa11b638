import { conflict, type FieldError, forbidden, notFound, unprocessable } from '../../kernel/errors.js';
import type { PartnerState } from './domain/lifecycle.js';

/** The participants module's expected failures, each named after the rule it enforces. */
export const participantsErrors = {
  partnerNotFound: (id: string) => notFound('participants.partner_not_found', `No partner ${id}.`),
  partnerTypeNotFound: (key: string) =>
    notFound('participants.partner_type_not_found', `No partner type ${key}.`),
  partnerTypeExists: (key: string) =>
    conflict('participants.partner_type_exists', `The partner type ${key} already exists.`),
  rulesNotFound: (key: string, version: number) =>
    notFound('participants.rules_not_found', `No version ${version} of the ${key} rules.`),
  /** Only the current version of the rules of engagement can be accepted. */
  rulesVersionNotCurrent: (current: number | null) =>
    conflict(
      'participants.rules_version_not_current',
      `The current rules of engagement are version ${current ?? 'none'}.`,
    ),
  /** A partner becomes active only once it accepted the current rules of engagement. */
  rulesNotAccepted: () =>
    conflict(
      'participants.rules_not_accepted',
      'The partner must accept the current rules of engagement before it can be active.',
    ),
  transitionNotAllowed: (from: PartnerState, to: PartnerState, allowed: readonly PartnerState[]) =>
    conflict('participants.transition_not_allowed', `A partner cannot go from ${from} to ${to}.`, {
      from,
      to,
      allowed,
    }),
  /** The profile does not match the partner type's schema; `errors` names each field. */
  profileInvalid: (partnerType: string, errors: readonly FieldError[]) =>
    unprocessable(
      'participants.profile_invalid',
      `The profile does not match what a ${partnerType} must provide.`,
      {
        errors,
      },
    ),
  /** One live partner per type and e-mail. */
  alreadyApplied: (partnerType: string, email: string) =>
    conflict('participants.already_applied', `A ${partnerType} with the e-mail ${email} already exists.`),
  /** A rejected or offboarded partner is kept as it was. */
  partnerClosed: (state: PartnerState) =>
    conflict('participants.partner_closed', `A ${state} partner cannot be changed.`),
  invitationNotFound: (id: string) => notFound('participants.invitation_not_found', `No invitation ${id}.`),
  /** The token is unknown, used, revoked, expired, or for another partner type. */
  invitationInvalid: (why: string) => unprocessable('participants.invitation_invalid', why),
  invitationUsed: () => conflict('participants.invitation_used', 'The invitation was already used.'),
  customerNotFound: (id: string) => notFound('participants.customer_not_found', `No customer ${id}.`),
  /** A partner's tier and a customer's segment change what they pay: only operators set them. */
  operatorOnly: (field: string) =>
    forbidden('participants.operator_only', `Only operators set a participant's ${field}.`),
  customerEmailTaken: (email: string) =>
    conflict('participants.customer_email_taken', `A customer with the e-mail ${email} exists.`),
};
