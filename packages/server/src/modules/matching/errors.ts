import { conflict, type FieldError, invalid, notFound, unprocessable } from '../../kernel/errors.js';

/** The matching module's expected failures, each named after the rule it enforces. */
export const matchingErrors = {
  /**
   * No candidate could take the demand: none passed the filters, or the catalog refused every
   * one that did (its capacity was taken meanwhile). `attempts` lists the refusals.
   */
  noCandidate: (attempts: readonly { offer_id: string; code: string }[]) =>
    conflict(
      'matching.no_candidate',
      attempts.length === 0
        ? 'No offer meets the demand.'
        : `No offer could take the demand: the catalog refused all ${attempts.length} tried.`,
      { attempts },
    ),
  /** Constraints name attributes the capability does not define, or are not valid. */
  constraintsInvalid: (errors: readonly FieldError[]) =>
    unprocessable('matching.constraints_invalid', 'The constraints do not fit the capability.', { errors }),
  constraintsMalformed: (message: string) =>
    invalid('matching.constraints_malformed', `The constraints are not valid: ${message}`),
  offerNotFound: (id: string) => notFound('matching.offer_not_found', `No offer ${id}.`),
  partnerNotFound: (id: string) => notFound('matching.partner_not_found', `No partner ${id}.`),
  /** Settings whose weights are all zero would rank every offer alike. */
  settingsInvalid: (errors: readonly FieldError[]) =>
    unprocessable('matching.settings_invalid', 'The settings are not valid.', { errors }),
};
