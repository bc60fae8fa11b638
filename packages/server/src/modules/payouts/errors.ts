import { type FieldError, notFound, unprocessable } from '../../kernel/errors.js';

/** The payouts module's expected failures, each named after the rule it enforces. */
export const payoutsErrors = {
  payoutNotFound: (id: string) => notFound('payouts.payout_not_found', `No payout ${id}.`),
  batchNotFound: (id: string) => notFound('payouts.batch_not_found', `No payout batch ${id}.`),
  /** The partner has no payout settings yet: an operator sets them first. */
  settingsNotFound: (partnerId: string) =>
    notFound('payouts.settings_not_found', `The partner ${partnerId} has no payout settings yet.`),
  /** The settings break a rule; `errors` names each field. */
  settingsInvalid: (errors: readonly FieldError[]) =>
    unprocessable(
      'payouts.settings_invalid',
      'The payout settings are not valid; see errors for each field.',
      {
        errors,
      },
    ),
};
