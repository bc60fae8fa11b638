import { conflict, forbidden, invalid, notFound } from '../../kernel/errors.js';

/** The access module's expected failures, each named after the rule it enforces. */
export const accessErrors = {
  userNotFound: (id: string) => notFound('access.user_not_found', `No user ${id}.`),
  apiKeyNotFound: (id: string) => notFound('access.api_key_not_found', `No API key ${id}.`),
  /** Operators hold operator roles, partner staff partner roles, customers the customer role. */
  roleNotInTenant: (tenantKind: string, role: string) =>
    invalid('access.role_not_in_tenant', `A ${tenantKind} user cannot have the role ${role}.`),
  /** One user per e-mail in a tenant. */
  emailTaken: (email: string) =>
    conflict('access.email_taken', `A user with the e-mail ${email} already exists here.`),
  /** Only a manager (operator admin, partner owner) acts on other users and their keys. */
  notAManager: (action: string) => forbidden('access.not_a_manager', `Only a manager may ${action}.`),
  /** A tenant always keeps one active manager. */
  lastManager: (role: string) =>
    conflict('access.last_manager', `The last active ${role} cannot be disabled.`),
  userRequired: () => invalid('access.user_required', 'Name the user the key is for.'),
  userDisabled: () => conflict('access.user_disabled', 'The user is disabled.'),
  expiryInPast: () => invalid('access.expiry_in_past', 'A key must expire in the future.'),
  tooManyKeys: (max: number) =>
    conflict('access.too_many_keys', `A user may hold at most ${max} active keys.`),
};
