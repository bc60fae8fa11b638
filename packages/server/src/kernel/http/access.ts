import type { Actor, OperatorRole, PartnerRole } from '../actor.js';

/**
 * Who may call a route. Every route declares it; nothing is allowed by default. `public`
 * routes need no key. Otherwise each kind of principal is allowed only when listed, operators
 * and partners only with one of the listed roles.
 */
export type Access =
  | 'public'
  | {
      readonly operator?: readonly OperatorRole[];
      readonly partner?: readonly PartnerRole[];
      readonly customer?: true;
    };

export type AccessDecision = 'allowed' | 'unauthenticated' | 'forbidden';

export function decideAccess(access: Access, actor: Actor): AccessDecision {
  if (access === 'public') return 'allowed';
  switch (actor.kind) {
    case 'anonymous':
      return 'unauthenticated';
    case 'system':
      return 'forbidden';
    case 'operator':
      return access.operator?.includes(actor.role) ? 'allowed' : 'forbidden';
    case 'partner':
      return access.partner?.includes(actor.role) ? 'allowed' : 'forbidden';
    case 'customer':
      return access.customer ? 'allowed' : 'forbidden';
  }
}

export const ALL_OPERATOR_ROLES: readonly OperatorRole[] = ['admin', 'ops', 'finance', 'support'];
export const ALL_PARTNER_ROLES: readonly PartnerRole[] = ['owner', 'member'];
