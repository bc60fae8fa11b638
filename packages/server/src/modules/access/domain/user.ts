import type { OperatorRole, PartnerRole } from '../../../kernel/actor.js';
import type { CustomerId, PartnerId, UserId } from '../../../kernel/ids.js';

/** Whom a user belongs to: the operator's staff, a partner's staff, or a customer account. */
export type Tenant =
  | { readonly kind: 'operator' }
  | { readonly kind: 'partner'; readonly partnerId: PartnerId }
  | { readonly kind: 'customer'; readonly customerId: CustomerId };

export type UserRole = OperatorRole | PartnerRole | 'customer';
export type UserStatus = 'active' | 'disabled';

export interface User {
  readonly id: UserId;
  readonly tenant: Tenant;
  readonly role: UserRole;
  readonly name: string;
  readonly email: string;
  readonly status: UserStatus;
  readonly createdAt: Date;
  readonly disabledAt: Date | null;
}

/** The tenant's key in the users table: `operator`, a partner id or a customer id. */
export function tenantKey(tenant: Tenant): string {
  switch (tenant.kind) {
    case 'operator':
      return 'operator';
    case 'partner':
      return tenant.partnerId;
    case 'customer':
      return tenant.customerId;
  }
}

/** The roles a user of each kind of tenant may hold. */
export const ROLES_BY_TENANT = {
  operator: ['admin', 'ops', 'finance', 'support'],
  partner: ['owner', 'member'],
  customer: ['customer'],
} as const satisfies Record<Tenant['kind'], readonly UserRole[]>;

/** The role that manages a tenant's users and keys. */
export const MANAGER_ROLE = { operator: 'admin', partner: 'owner', customer: 'customer' } as const;
