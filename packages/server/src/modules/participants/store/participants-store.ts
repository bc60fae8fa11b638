import type { Selectable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { CustomerId, InvitationId, PartnerId } from '../../../kernel/ids.js';
import type { PartnerState } from '../domain/lifecycle.js';
import type { RulesVersion } from '../domain/rules.js';
import type {
  CustomersTable,
  EngagementRulesTable,
  PartnerInvitationsTable,
  PartnersTable,
  PartnerTransitionsTable,
  PartnerTypesTable,
} from './tables.js';

export interface PartnerType {
  readonly key: string;
  readonly name: string;
  readonly description: string;
  readonly profileSchema: Record<string, unknown>;
  readonly currentRulesVersion: number | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface Partner {
  readonly id: PartnerId;
  readonly type: string;
  readonly name: string;
  readonly email: string;
  readonly regions: readonly string[];
  readonly profile: Record<string, unknown>;
  readonly state: PartnerState;
  readonly stateReason: string | null;
  readonly stateChangedAt: Date;
  readonly activatedAt: Date | null;
  /** The tier fee rules match on. */
  readonly tier: string;
  readonly acceptedRulesVersion: number | null;
  readonly acceptedRulesAt: Date | null;
  readonly invitationId: InvitationId | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface PartnerTransition {
  readonly id: string;
  readonly partnerId: PartnerId;
  readonly from: PartnerState | null;
  readonly to: PartnerState;
  readonly reason: string;
  readonly actor: { readonly kind: string; readonly id: string | null };
  readonly occurredAt: Date;
}

export interface Invitation {
  readonly id: InvitationId;
  readonly partnerType: string;
  readonly email: string;
  readonly name: string | null;
  readonly preApproved: boolean;
  readonly invitedBy: string | null;
  readonly expiresAt: Date;
  readonly acceptedAt: Date | null;
  readonly partnerId: PartnerId | null;
  readonly revokedAt: Date | null;
  readonly createdAt: Date;
}

export interface Customer {
  readonly id: CustomerId;
  readonly kind: 'consumer' | 'business';
  readonly name: string;
  readonly email: string;
  readonly region: string | null;
  /** The segment fee rules and subsidy programmes match on; null: none. */
  readonly segment: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export const toPartnerType = (row: Selectable<PartnerTypesTable>): PartnerType => ({
  key: row.key,
  name: row.name,
  description: row.description,
  profileSchema: row.profile_schema,
  currentRulesVersion: row.current_rules_version,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const toRules = (row: Selectable<EngagementRulesTable>): RulesVersion => ({
  partnerType: row.partner_type,
  version: row.version,
  title: row.title,
  body: row.body,
  gracePeriodDays: row.grace_period_days,
  publishedAt: row.published_at,
});

export const toPartner = (row: Selectable<PartnersTable>): Partner => ({
  id: row.id as PartnerId,
  type: row.partner_type,
  name: row.name,
  email: row.email,
  regions: row.regions,
  profile: row.profile,
  state: row.state,
  stateReason: row.state_reason,
  stateChangedAt: row.state_changed_at,
  activatedAt: row.activated_at,
  tier: row.tier,
  acceptedRulesVersion: row.accepted_rules_version,
  acceptedRulesAt: row.accepted_rules_at,
  invitationId: row.invitation_id as InvitationId | null,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const toTransition = (row: Selectable<PartnerTransitionsTable>): PartnerTransition => ({
  id: row.id,
  partnerId: row.partner_id as PartnerId,
  from: row.from_state,
  to: row.to_state,
  reason: row.reason,
  actor: { kind: row.actor_kind, id: row.actor_id },
  occurredAt: row.occurred_at,
});

export const toInvitation = (row: Selectable<PartnerInvitationsTable>): Invitation => ({
  id: row.id as InvitationId,
  partnerType: row.partner_type,
  email: row.email,
  name: row.name,
  preApproved: row.pre_approved,
  invitedBy: row.invited_by,
  expiresAt: row.expires_at,
  acceptedAt: row.accepted_at,
  partnerId: row.partner_id as PartnerId | null,
  revokedAt: row.revoked_at,
  createdAt: row.created_at,
});

export const toCustomer = (row: Selectable<CustomersTable>): Customer => ({
  id: row.id as CustomerId,
  kind: row.kind,
  name: row.name,
  email: row.email,
  region: row.region,
  segment: row.segment,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export async function findPartnerType(db: Executor, key: string, forUpdate = false) {
  let query = db.selectFrom('partner_types').selectAll().where('key', '=', key);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toPartnerType(row) : undefined;
}

export async function findRules(db: Executor, partnerType: string, version: number) {
  const row = await db
    .selectFrom('engagement_rules')
    .selectAll()
    .where('partner_type', '=', partnerType)
    .where('version', '=', version)
    .executeTakeFirst();
  return row ? toRules(row) : undefined;
}

export async function currentRules(db: Executor, type: PartnerType): Promise<RulesVersion | null> {
  return type.currentRulesVersion === null
    ? null
    : ((await findRules(db, type.key, type.currentRulesVersion)) ?? null);
}

export async function findPartner(db: Executor, id: PartnerId, forUpdate = false) {
  let query = db.selectFrom('partners').selectAll().where('id', '=', id);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toPartner(row) : undefined;
}

/**
 * A partner with the current rules of its type, in one query: the rules are null when the type
 * has none (or, which never happens, when the type is missing).
 */
export async function findPartnerWithRules(
  db: Executor,
  id: PartnerId,
): Promise<{ partner: Partner; rules: RulesVersion | null } | undefined> {
  const row = await db
    .selectFrom('partners as p')
    .leftJoin('partner_types as t', 't.key', 'p.partner_type')
    .leftJoin('engagement_rules as r', (join) =>
      join.onRef('r.partner_type', '=', 't.key').onRef('r.version', '=', 't.current_rules_version'),
    )
    .selectAll('p')
    .select([
      'r.version as rules_version',
      'r.title as rules_title',
      'r.body as rules_body',
      'r.grace_period_days as rules_grace_period_days',
      'r.published_at as rules_published_at',
    ])
    .where('p.id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  const rules =
    row.rules_version === null
      ? null
      : toRules({
          partner_type: row.partner_type,
          version: row.rules_version,
          title: row.rules_title as string,
          body: row.rules_body as string,
          grace_period_days: row.rules_grace_period_days as number,
          published_at: row.rules_published_at as Date,
          published_by: null,
        });
  return { partner: toPartner(row), rules };
}

/** The type of a partner, or undefined when there is no such partner. */
export async function typeOfPartner(db: Executor, id: PartnerId): Promise<string | undefined> {
  const row = await db.selectFrom('partners').select('partner_type').where('id', '=', id).executeTakeFirst();
  return row?.partner_type;
}

export async function findCustomer(db: Executor, id: CustomerId, forUpdate = false) {
  let query = db.selectFrom('customers').selectAll().where('id', '=', id);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toCustomer(row) : undefined;
}
