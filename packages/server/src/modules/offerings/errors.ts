import { conflict, type FieldError, forbidden, notFound, unprocessable } from '../../kernel/errors.js';

/** The offerings module's expected failures, each named after the rule it enforces. */
export const offeringsErrors = {
  /** A retired offering is as absent as a missing one to partners and customers. */
  offeringNotFound: (key: string) => notFound('offerings.offering_not_found', `No offering ${key}.`),
  versionNotFound: (key: string, version: number) =>
    notFound('offerings.version_not_found', `No version ${version} of the offering ${key}.`),
  versionIdNotFound: (id: string) => notFound('offerings.version_not_found', `No offering version ${id}.`),
  alreadyExists: (key: string) =>
    conflict('offerings.already_exists', `The offering ${key} already exists; publish a new version of it.`),
  /**
   * A definition breaks its rules: its own fields, its steps' graph, or what the standards say
   * of its capabilities. `errors` names each field.
   */
  definitionInvalid: (errors: readonly FieldError[]) =>
    unprocessable('offerings.definition_invalid', 'The offering is not valid; see errors for each field.', {
      errors,
    }),
  /** A retired offering takes no new version and cannot be retired again. */
  offeringRetired: (key: string) =>
    conflict('offerings.offering_retired', `The offering ${key} is retired.`, { offering_status: 'retired' }),
  /** Offerings are the operator's to define; a use case called for anyone else is refused. */
  operatorsOnly: () =>
    forbidden('offerings.operators_only', 'Only the operator publishes and retires offerings.'),
};
