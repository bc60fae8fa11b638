import type { ApiKeyId, CustomerId, PartnerId, UserId } from './ids.js';

export const OPERATOR_ROLES = ['admin', 'ops', 'finance', 'support'] as const;
export const PARTNER_ROLES = ['owner', 'member'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];
export type PartnerRole = (typeof PARTNER_ROLES)[number];

/** Someone acting through an API key: an operator user, a partner's staff user or a customer. */
export type Principal =
  | {
      readonly kind: 'operator';
      readonly userId: UserId;
      readonly role: OperatorRole;
      readonly keyId: ApiKeyId;
    }
  | {
      readonly kind: 'partner';
      readonly partnerId: PartnerId;
      readonly userId: UserId;
      readonly role: PartnerRole;
      readonly keyId: ApiKeyId;
    }
  | {
      readonly kind: 'customer';
      readonly customerId: CustomerId;
      readonly userId: UserId;
      readonly keyId: ApiKeyId;
    };

/** Whoever causes a change: a principal, an unauthenticated caller, or Baton itself (jobs, CLI). */
export type Actor =
  | Principal
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'system'; readonly name: string };

/** How an actor is written into events and audit records. */
export interface ActorRef {
  readonly kind: Actor['kind'];
  readonly id: string | null;
  readonly role: string | null;
}

export function actorRef(actor: Actor): ActorRef {
  switch (actor.kind) {
    case 'operator':
    case 'partner':
    case 'customer':
      return { kind: actor.kind, id: actor.userId, role: actor.kind === 'customer' ? null : actor.role };
    case 'system':
      return { kind: 'system', id: actor.name, role: null };
    case 'anonymous':
      return { kind: 'anonymous', id: null, role: null };
  }
}

/** The participant an actor belongs to (its partner or customer), or null for the operator and Baton. */
export function tenantOf(actor: Actor): PartnerId | CustomerId | null {
  if (actor.kind === 'partner') return actor.partnerId;
  if (actor.kind === 'customer') return actor.customerId;
  return null;
}

export const isOperator = (actor: Actor): actor is Extract<Actor, { kind: 'operator' }> =>
  actor.kind === 'operator';

/** Baton acting on its own behalf, for jobs and the command line. */
export const systemActor = (name: string): Actor => ({ kind: 'system', name });
