import { z } from 'zod';
import { iso, isoOrNull, timestamp } from '../../../kernel/http/schemas.js';
import { PARTNER_STATES } from '../domain/lifecycle.js';
import type { RulesVersion } from '../domain/rules.js';
import type { PartnerTypeView, PartnerView } from '../service.js';
import type { Customer, Invitation, PartnerTransition } from '../store/participants-store.js';

export const RulesJson = z
  .object({
    object: z.literal('rules_of_engagement'),
    partner_type: z.string(),
    version: z.number().int(),
    title: z.string(),
    body: z.string(),
    grace_period_days: z.number().int(),
    published_at: timestamp,
  })
  .meta({ id: 'RulesOfEngagement' });

export const PartnerTypeJson = z
  .object({
    object: z.literal('partner_type'),
    key: z.string(),
    name: z.string(),
    description: z.string(),
    profile_schema: z
      .record(z.string(), z.unknown())
      .describe('JSON Schema (2020-12) of the profile partners provide.'),
    current_rules: RulesJson.nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'PartnerType' });

export const PartnerJson = z
  .object({
    id: z.string(),
    object: z.literal('partner'),
    partner_type: z.string(),
    name: z.string(),
    email: z.string(),
    regions: z.array(z.string()),
    profile: z.record(z.string(), z.unknown()),
    state: z.enum(PARTNER_STATES),
    state_reason: z.string().nullable(),
    state_changed_at: timestamp,
    activated_at: timestamp.nullable().describe('When the partner first became active.'),
    tier: z
      .string()
      .describe(
        'The tier fee rules match on: `standard` until an operator sets another. Orders keep the tier they were placed with.',
      ),
    rules: z.object({
      status: z
        .enum(['not_required', 'accepted', 'pending', 'grace', 'lapsed'])
        .describe('Where the partner stands with the current rules of engagement of its type.'),
      current_version: z.number().int().nullable(),
      accepted_version: z.number().int().nullable(),
      grace_until: timestamp.nullable(),
    }),
    can_take_work: z.boolean().describe('Engaged, and within the rules of engagement or their grace period.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Partner' });

export const TransitionJson = z
  .object({
    id: z.string(),
    object: z.literal('partner_transition'),
    partner_id: z.string(),
    from: z.enum(PARTNER_STATES).nullable(),
    to: z.enum(PARTNER_STATES),
    reason: z.string(),
    actor: z.object({ kind: z.string(), id: z.string().nullable() }),
    occurred_at: timestamp,
  })
  .meta({ id: 'PartnerTransition' });

export const InvitationJson = z
  .object({
    id: z.string(),
    object: z.literal('partner_invitation'),
    partner_type: z.string(),
    email: z.string(),
    name: z.string().nullable(),
    pre_approved: z.boolean(),
    status: z.enum(['pending', 'accepted', 'revoked', 'expired']),
    partner_id: z.string().nullable(),
    expires_at: timestamp,
    created_at: timestamp,
  })
  .meta({ id: 'PartnerInvitation' });

export const CustomerJson = z
  .object({
    id: z.string(),
    object: z.literal('customer'),
    kind: z.enum(['consumer', 'business']),
    name: z.string(),
    email: z.string(),
    region: z.string().nullable(),
    segment: z
      .string()
      .nullable()
      .describe(
        'The segment fee rules and subsidy programmes match on; null: none. Operators set it; orders keep the segment they were placed with.',
      ),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Customer' });

export const rulesJson = (rules: RulesVersion): z.input<typeof RulesJson> => ({
  object: 'rules_of_engagement',
  partner_type: rules.partnerType,
  version: rules.version,
  title: rules.title,
  body: rules.body,
  grace_period_days: rules.gracePeriodDays,
  published_at: iso(rules.publishedAt),
});

export const partnerTypeJson = (type: PartnerTypeView): z.input<typeof PartnerTypeJson> => ({
  object: 'partner_type',
  key: type.key,
  name: type.name,
  description: type.description,
  profile_schema: type.profileSchema,
  current_rules: type.currentRules ? rulesJson(type.currentRules) : null,
  created_at: iso(type.createdAt),
  updated_at: iso(type.updatedAt),
});

export const partnerJson = (partner: PartnerView): z.input<typeof PartnerJson> => ({
  id: partner.id,
  object: 'partner',
  partner_type: partner.type,
  name: partner.name,
  email: partner.email,
  regions: [...partner.regions],
  profile: partner.profile,
  state: partner.state,
  state_reason: partner.stateReason,
  state_changed_at: iso(partner.stateChangedAt),
  activated_at: isoOrNull(partner.activatedAt),
  tier: partner.tier,
  rules: {
    status: partner.rules.status,
    current_version: partner.rules.currentVersion,
    accepted_version: partner.rules.acceptedVersion,
    grace_until: isoOrNull(partner.rules.graceUntil),
  },
  can_take_work: partner.canTakeWork,
  created_at: iso(partner.createdAt),
  updated_at: iso(partner.updatedAt),
});

export const transitionJson = (transition: PartnerTransition): z.input<typeof TransitionJson> => ({
  id: transition.id,
  object: 'partner_transition',
  partner_id: transition.partnerId,
  from: transition.from,
  to: transition.to,
  reason: transition.reason,
  actor: transition.actor,
  occurred_at: iso(transition.occurredAt),
});

export const invitationJson = (invitation: Invitation, now: Date): z.input<typeof InvitationJson> => ({
  id: invitation.id,
  object: 'partner_invitation',
  partner_type: invitation.partnerType,
  email: invitation.email,
  name: invitation.name,
  pre_approved: invitation.preApproved,
  status: invitation.acceptedAt
    ? 'accepted'
    : invitation.revokedAt
      ? 'revoked'
      : invitation.expiresAt <= now
        ? 'expired'
        : 'pending',
  partner_id: invitation.partnerId,
  expires_at: iso(invitation.expiresAt),
  created_at: iso(invitation.createdAt),
});

export const customerJson = (customer: Customer): z.input<typeof CustomerJson> => ({
  id: customer.id,
  object: 'customer',
  kind: customer.kind,
  name: customer.name,
  email: customer.email,
  region: customer.region,
  segment: customer.segment,
  created_at: iso(customer.createdAt),
  updated_at: iso(customer.updatedAt),
});
