import { conflict, type FieldError, invalid, notFound, unprocessable } from '../../kernel/errors.js';
import type { ProgrammeStatus } from './domain/programme.js';

/** The subsidies module's expected failures, each named after the rule it enforces. */
export const subsidiesErrors = {
  programmeNotFound: (id: string) => notFound('subsidies.programme_not_found', `No subsidy programme ${id}.`),
  /** The programme's terms break their rules; `errors` names each field. */
  programmeInvalid: (errors: readonly FieldError[]) =>
    unprocessable('subsidies.programme_invalid', 'The programme is not valid; see errors for each field.', {
      errors,
    }),
  /** The action needs the programme in another status (activating an active one, topping up a closed one). */
  statusNotAllowed: (id: string, status: ProgrammeStatus, action: string) =>
    conflict(
      'subsidies.status_not_allowed',
      `The programme ${id} is ${status}; it cannot be ${action}.`,
      // Not `status`: details sit beside the problem's own fields, and `status` is the HTTP one.
      { programme_status: status },
    ),
  /** A programme whose window is over can no longer be activated or topped up. */
  windowOver: (id: string, endsAt: Date) =>
    conflict('subsidies.window_over', `The programme ${id} ended at ${endsAt.toISOString()}.`, {
      ends_at: endsAt.toISOString(),
    }),
  /** An amount of money that is not in the programme's currency or not positive. */
  amountInvalid: (errors: readonly FieldError[]) =>
    unprocessable('subsidies.amount_invalid', 'The amount is not valid; see errors.', { errors }),
  /** A call to apply or refund that a workflow got wrong: a bug in the caller, reported clearly. */
  applicationInvalid: (errors: readonly FieldError[]) =>
    invalid('subsidies.application_invalid', 'The subsidy request is not valid; see errors.', { errors }),
  /** An idempotency key names an earlier request with other content. */
  keyReused: (key: string) =>
    conflict(
      'subsidies.key_reused',
      `The idempotency key ${key} was used for another subsidy request with other content.`,
    ),
  applicationNotFound: (key: string) =>
    notFound('subsidies.application_not_found', `No subsidy was applied with the key ${key}.`),
  /** A refund gives back at most what the application paid and was not given back yet. */
  refundExceedsApplication: (key: string, refundableMinor: bigint) =>
    conflict(
      'subsidies.refund_exceeds_application',
      `The subsidy applied with the key ${key} has ${refundableMinor} minor units left to refund.`,
      { refundable_minor: refundableMinor.toString() },
    ),
};
