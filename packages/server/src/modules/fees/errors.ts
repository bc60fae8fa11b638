import {
  conflict,
  type FieldError,
  forbidden,
  invalid,
  notFound,
  unprocessable,
} from '../../kernel/errors.js';

/** The fees module's expected failures, each named after the rule it enforces. */
export const feesErrors = {
  versionNotFound: (id: string) => notFound('fees.version_not_found', `No fee schedule version ${id}.`),
  /** Asked about another partner: as absent as a partner that does not exist. */
  partnerNotFound: (id: string) => notFound('fees.partner_not_found', `No partner ${id}.`),
  planNotFound: (key: string) => notFound('fees.plan_not_found', `No subscription plan ${key}.`),
  subscriptionNotFound: (id: string) => notFound('fees.subscription_not_found', `No subscription ${id}.`),
  serviceNotFound: (key: string) => notFound('fees.service_not_found', `No value-added service ${key}.`),
  /** The version's rules break their own rules; `errors` names each field. */
  versionInvalid: (errors: readonly FieldError[]) =>
    unprocessable(
      'fees.version_invalid',
      'The fee schedule version is not valid; see errors for each field.',
      {
        errors,
      },
    ),
  /** Orders already placed keep the version in force when they were placed: the past cannot change. */
  effectiveFromPast: () =>
    unprocessable('fees.effective_from_in_past', 'A version takes effect now or later, never in the past.', {
      errors: [{ path: '/effective_from', rule: 'minimum', message: 'must not be in the past' }],
    }),
  versionExists: (currency: string, effectiveFrom: Date) =>
    conflict(
      'fees.version_exists',
      `A ${currency} version already takes effect at ${effectiveFrom.toISOString()}.`,
    ),
  /** No version of the currency's schedule was in force at the time asked about. */
  noScheduleInForce: (currency: string, at: Date) =>
    unprocessable(
      'fees.no_schedule_in_force',
      `No ${currency} fee schedule version was in force at ${at.toISOString()}.`,
    ),
  currencyMismatch: (expected: string, got: string) =>
    unprocessable('fees.currency_mismatch', `The fee schedule version is in ${expected}, not ${got}.`, {
      errors: [{ path: '/amount/currency', rule: 'currency', message: `must be ${expected}` }],
    }),
  amountNegative: () =>
    invalid('fees.amount_negative', 'A fee is computed on an amount of zero or more.', {
      errors: [{ path: '/amount', rule: 'minimum', message: 'must not be negative' }],
    }),
  /** A price is an amount of a currency Baton books, above zero (plans may be free). */
  priceInvalid: (errors: readonly FieldError[]) =>
    unprocessable('fees.price_invalid', 'The price is not valid; see errors.', { errors }),
  planKeyTaken: (key: string) =>
    conflict('fees.plan_key_taken', `A subscription plan ${key} exists already.`),
  serviceKeyTaken: (key: string) =>
    conflict('fees.service_key_taken', `A value-added service ${key} exists already.`),
  /** A partner holds one live subscription to a plan at a time. */
  alreadySubscribed: (key: string) =>
    conflict('fees.already_subscribed', `The partner already holds a subscription to ${key}.`),
  /** A partner rejected or offboarded has left the ecosystem: it takes no subscription. */
  partnerClosed: (partnerId: string, state: string) =>
    conflict('fees.partner_closed', `Partner ${partnerId} is ${state}: it takes no subscription.`, {
      partner_state: state,
    }),
  subscriptionCanceled: (id: string) =>
    conflict('fees.subscription_canceled', `The subscription ${id} has ended.`),
  /** Some services are ordered only through the operator (an express payout it grants, say). */
  serviceNotOrderable: (key: string) =>
    forbidden(
      'fees.service_not_orderable',
      `The value-added service ${key} is ordered through the operator.`,
    ),
  operatorOnly: () =>
    forbidden('fees.operator_only', 'Only operators manage fee schedules, plans and services.'),
};
