import { z } from 'zod';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { email, idSchema, name, page, pageQuery, toPage } from '../../../kernel/http/schemas.js';
import { apiKeyJson, NewApiKeyJson, UserJson, userJson } from '../../access/index.js';
import { PARTNER_STATES } from '../domain/lifecycle.js';
import { INVITATION_VALIDITY_DAYS_MAX, type ParticipantsService } from '../service.js';
import {
  CustomerJson,
  customerJson,
  InvitationJson,
  invitationJson,
  PartnerJson,
  PartnerTypeJson,
  partnerJson,
  partnerTypeJson,
  RulesJson,
  rulesJson,
  TransitionJson,
  transitionJson,
} from './json.js';

const REGIONS_MAX = 100;
const region = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,31}$/,
    'must be a region code such as "eu-west" (lowercase letters, digits, dashes)',
  );
const regions = z
  .array(region)
  .min(1)
  .max(REGIONS_MAX)
  .refine((list) => new Set(list).size === list.length, 'must not repeat a region');
const typeKey = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,39}$/, 'must be a key such as "courier" (lowercase, digits, dashes)');
const profile = z.record(z.string(), z.unknown());
const jsonSchema = z
  .record(z.string(), z.unknown())
  .describe('A JSON Schema (2020-12) with "type": "object".');
const reason = z.string().trim().min(1).max(2000);
/** A tier or a segment: a key fee rules and subsidy programmes can name. */
const matchKey = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,59}$/,
    'must be a key such as "gold" or "smb" (lowercase letters, digits, dashes, underscores)',
  );
const search = z.string().trim().min(1).max(100);

const partnerIdParams = z.strictObject({ partner_id: idSchema('ptn') });
const customerIdParams = z.strictObject({ customer_id: idSchema('cus') });
const typeKeyParams = z.strictObject({ key: typeKey });

const TYPES = ['Partner types'];
const PARTNERS = ['Partners'];
const CUSTOMERS = ['Customers'];

export function participantsRoutes(
  participants: ParticipantsService,
  options: { publicRateLimitPerHour: number },
): Route[] {
  const publicLimit = { max: options.publicRateLimitPerHour, timeWindowMs: 60 * 60 * 1000 };
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/partner-types',
      summary: 'List partner types',
      description: 'Public, so that prospective partners can see what to provide and which rules apply.',
      tags: TYPES,
      access: 'public',
      response: z.object({ data: z.array(PartnerTypeJson) }),
      handler: async (ctx) => ({ data: (await participants.listPartnerTypes(ctx.db)).map(partnerTypeJson) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partner-types/:key',
      summary: 'Get a partner type',
      tags: TYPES,
      access: 'public',
      params: typeKeyParams,
      response: PartnerTypeJson,
      handler: async (ctx, { params }) =>
        partnerTypeJson(await participants.getPartnerType(ctx.db, params.key)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partner-types',
      summary: 'Define a partner type',
      tags: TYPES,
      access: { operator: ['admin'] },
      audit: { action: 'participants.partner_type.create' },
      body: z.strictObject({
        key: typeKey,
        name,
        description: z.string().max(5000).default(''),
        profile_schema: jsonSchema,
      }),
      status: 201,
      response: PartnerTypeJson,
      handler: async (ctx, { body }) =>
        partnerTypeJson(
          await participants.createPartnerType(ctx, {
            key: body.key,
            name: body.name,
            description: body.description,
            profileSchema: body.profile_schema,
          }),
        ),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/partner-types/:key',
      summary: 'Change a partner type',
      tags: TYPES,
      access: { operator: ['admin'] },
      audit: { action: 'participants.partner_type.update', targetParam: 'key' },
      params: typeKeyParams,
      body: z.strictObject({
        name: name.optional(),
        description: z.string().max(5000).optional(),
        profile_schema: jsonSchema.optional(),
      }),
      response: PartnerTypeJson,
      handler: async (ctx, { params, body }) =>
        partnerTypeJson(
          await participants.updatePartnerType(ctx, params.key, {
            name: body.name,
            description: body.description,
            profileSchema: body.profile_schema,
          }),
        ),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partner-types/:key/rules',
      summary: 'Publish new rules of engagement',
      description:
        'Publishes the next version. Engaged partners keep taking work for the grace period; after it, only ' +
        'those that accepted it can.',
      tags: TYPES,
      access: { operator: ['admin'] },
      audit: { action: 'participants.rules.publish', targetParam: 'key' },
      params: typeKeyParams,
      body: z.strictObject({
        title: name,
        body: z.string().min(1).max(200_000),
        grace_period_days: z.number().int().min(0).max(365),
      }),
      status: 201,
      response: RulesJson,
      handler: async (ctx, { params, body }) =>
        rulesJson(
          await participants.publishRules(ctx, params.key, {
            title: body.title,
            body: body.body,
            gracePeriodDays: body.grace_period_days,
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partner-types/:key/rules',
      summary: 'List the versions of the rules of engagement',
      tags: TYPES,
      access: 'public',
      params: typeKeyParams,
      response: z.object({ data: z.array(RulesJson) }),
      handler: async (ctx, { params }) => ({
        data: (await participants.listRules(ctx.db, params.key)).map(rulesJson),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partner-types/:key/rules/:version',
      summary: 'Get one version of the rules of engagement',
      tags: TYPES,
      access: 'public',
      params: z.strictObject({ key: typeKey, version: z.coerce.number().int().min(1).max(2_147_483_647) }),
      response: RulesJson,
      handler: async (ctx, { params }) =>
        rulesJson(await participants.getRules(ctx.db, params.key, params.version)),
    }),

    defineRoute({
      method: 'POST',
      url: '/v1/partner-applications',
      summary: 'Apply to become a partner',
      description:
        'Public and rate limited per address. Creates the partner (state `applied`), its owner user and a first ' +
        'API key, returned once. Pass `accept_rules_version` to accept the current rules of engagement now.',
      tags: PARTNERS,
      access: 'public',
      rateLimit: publicLimit,
      body: z.strictObject({
        partner_type: typeKey,
        name,
        email,
        regions,
        profile: profile.default({}),
        accept_rules_version: z.number().int().min(1).optional(),
        invitation_token: z.string().max(200).optional(),
        owner: z.strictObject({ name, email }).optional(),
      }),
      status: 201,
      response: z.object({ partner: PartnerJson, owner: UserJson, api_key: NewApiKeyJson }),
      handler: async (ctx, { body }) => {
        const result = await participants.apply(ctx, {
          partnerType: body.partner_type,
          name: body.name,
          email: body.email,
          regions: body.regions,
          profile: body.profile,
          acceptRulesVersion: body.accept_rules_version,
          invitationToken: body.invitation_token,
          owner: body.owner,
        });
        return {
          partner: partnerJson(result.partner),
          owner: userJson(result.owner),
          api_key: { api_key: apiKeyJson(result.apiKey), secret: result.secret },
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partner-invitations',
      summary: 'Invite a partner',
      description: 'Returns a token, once, that the invitee passes as `invitation_token` when applying.',
      tags: PARTNERS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'participants.invitation.create' },
      body: z.strictObject({
        partner_type: typeKey,
        email,
        name: name.optional(),
        pre_approved: z
          .boolean()
          .default(false)
          .describe('Skip the review: active as soon as the rules are accepted.'),
        valid_days: z.number().int().min(1).max(INVITATION_VALIDITY_DAYS_MAX).default(14),
      }),
      status: 201,
      response: z.object({ invitation: InvitationJson, token: z.string() }),
      handler: async (ctx, { body }) => {
        const { invitation, token } = await participants.invite(ctx, {
          partnerType: body.partner_type,
          email: body.email,
          name: body.name,
          preApproved: body.pre_approved,
          validDays: body.valid_days,
        });
        return { invitation: invitationJson(invitation, ctx.now), token };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partner-invitations',
      summary: 'List invitations',
      tags: PARTNERS,
      access: { operator: ['admin', 'ops'] },
      query: z.strictObject(pageQuery),
      response: page(InvitationJson),
      handler: async (ctx, { query }) => {
        return toPage(await participants.listInvitations(ctx, query), (invitation) =>
          invitationJson(invitation, ctx.now),
        );
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partner-invitations/:invitation_id/revoke',
      summary: 'Revoke an unused invitation',
      tags: PARTNERS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'participants.invitation.revoke', targetParam: 'invitation_id' },
      params: z.strictObject({ invitation_id: idSchema('inv') }),
      response: InvitationJson,
      handler: async (ctx, { params }) =>
        invitationJson(await participants.revokeInvitation(ctx, params.invitation_id), ctx.now),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners',
      summary: 'Search partners',
      description: 'By state, type, region, tier and name (`q`, a substring), oldest first.',
      tags: PARTNERS,
      access: { operator: ALL_OPERATOR_ROLES },
      query: z.strictObject({
        ...pageQuery,
        state: z.enum(PARTNER_STATES).optional(),
        partner_type: typeKey.optional(),
        region: region.optional(),
        tier: matchKey.optional(),
        q: search.optional(),
      }),
      response: page(PartnerJson),
      handler: async (ctx, { query }) => {
        const partners = await participants.listPartners(ctx, {
          state: query.state,
          partnerType: query.partner_type,
          region: query.region,
          tier: query.tier,
          query: query.q,
          after: query.after,
          limit: query.limit,
        });
        return toPage(partners, partnerJson);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id',
      summary: 'Get a partner',
      tags: PARTNERS,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      params: partnerIdParams,
      response: PartnerJson,
      handler: async (ctx, { params }) => partnerJson(await participants.getPartner(ctx, params.partner_id)),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/partners/:partner_id',
      summary: "Change a partner's name, regions or profile",
      tags: PARTNERS,
      access: { operator: ['admin', 'ops'], partner: ['owner'] },
      params: partnerIdParams,
      body: z.strictObject({
        name: name.optional(),
        regions: regions.optional(),
        profile: profile.optional(),
      }),
      response: PartnerJson,
      handler: async (ctx, { params, body }) =>
        partnerJson(await participants.updatePartner(ctx, params.partner_id, body)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/transitions',
      summary: 'Move a partner through its lifecycle',
      description:
        'applied → under_review → active ⇄ probation → suspended → offboarded, or rejected. A transition the ' +
        'lifecycle does not allow is `409 participants.transition_not_allowed`.',
      tags: PARTNERS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'participants.partner.transition', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: z.strictObject({ to: z.enum(PARTNER_STATES), reason }),
      response: PartnerJson,
      handler: async (ctx, { params, body }) =>
        partnerJson(await participants.transition(ctx, params.partner_id, body.to, body.reason)),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/partners/:partner_id/tier',
      summary: "Set a partner's tier",
      description:
        'The tier fee rules match on (`standard` until set). Orders already placed keep the tier they were ' +
        'placed with. Operators only: a partner cannot set its own tier, and `tier` is not a field of ' +
        '`PATCH /v1/partners/{partner_id}`. Errors: `404 participants.partner_not_found`, ' +
        '`409 participants.partner_closed`.',
      tags: PARTNERS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'participants.partner.tier', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: z.strictObject({ tier: matchKey, reason }),
      response: PartnerJson,
      handler: async (ctx, { params, body }) =>
        partnerJson(await participants.setTier(ctx, params.partner_id, body.tier, body.reason)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/transitions',
      summary: "A partner's lifecycle history",
      tags: PARTNERS,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      params: partnerIdParams,
      query: z.strictObject(pageQuery),
      response: page(TransitionJson),
      handler: async (ctx, { params, query }) => {
        return toPage(await participants.listTransitions(ctx, params.partner_id, query), transitionJson);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/rules-acceptances',
      summary: 'Accept the current rules of engagement',
      tags: PARTNERS,
      access: { partner: ['owner'] },
      audit: { action: 'participants.rules.accept', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: z.strictObject({ version: z.number().int().min(1) }),
      response: PartnerJson,
      handler: async (ctx, { params, body }) =>
        partnerJson(await participants.acceptRules(ctx, params.partner_id, body.version)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/users',
      summary: "A partner's staff users",
      tags: PARTNERS,
      access: { operator: ['admin', 'support'], partner: ALL_PARTNER_ROLES },
      params: partnerIdParams,
      query: z.strictObject(pageQuery),
      response: page(UserJson),
      handler: async (ctx, { params, query }) => {
        return toPage(await participants.listStaff(ctx, params.partner_id, query), userJson);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/users',
      summary: 'Add a staff user to a partner',
      description: 'By the partner’s owner or an operator admin. Give the user a key with POST /v1/api-keys.',
      tags: PARTNERS,
      access: { operator: ['admin'], partner: ['owner'] },
      audit: { action: 'access.user.create', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: z.strictObject({ name, email, role: z.enum(['owner', 'member']) }),
      status: 201,
      response: UserJson,
      handler: async (ctx, { params, body }) =>
        userJson(await participants.addStaff(ctx, params.partner_id, body)),
    }),

    defineRoute({
      method: 'POST',
      url: '/v1/customer-signups',
      summary: 'Open a customer account',
      description:
        'Public and rate limited per address. Returns the customer, its user and an API key, once.',
      tags: CUSTOMERS,
      access: 'public',
      rateLimit: publicLimit,
      body: z.strictObject({
        kind: z.enum(['consumer', 'business']),
        name,
        email,
        region: region.optional(),
      }),
      status: 201,
      response: z.object({ customer: CustomerJson, user: UserJson, api_key: NewApiKeyJson }),
      handler: async (ctx, { body }) => {
        const result = await participants.createCustomer(ctx, body, { issueKey: true });
        return {
          customer: customerJson(result.customer),
          user: userJson(result.user),
          api_key: { api_key: apiKeyJson(result.apiKey!), secret: result.secret! },
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/customers',
      summary: 'Open a customer account for a customer',
      tags: CUSTOMERS,
      access: { operator: ['admin', 'ops', 'support'] },
      body: z.strictObject({
        kind: z.enum(['consumer', 'business']),
        name,
        email,
        region: region.optional(),
      }),
      status: 201,
      response: CustomerJson,
      handler: async (ctx, { body }) =>
        customerJson((await participants.createCustomer(ctx, body, { issueKey: false })).customer),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/customers',
      summary: 'Search customers',
      tags: CUSTOMERS,
      access: { operator: ALL_OPERATOR_ROLES },
      query: z.strictObject({
        ...pageQuery,
        region: region.optional(),
        segment: matchKey.optional(),
        q: search.optional(),
      }),
      response: page(CustomerJson),
      handler: async (ctx, { query }) => {
        const customers = await participants.listCustomers(ctx, {
          after: query.after,
          limit: query.limit,
          region: query.region,
          segment: query.segment,
          query: query.q,
        });
        return toPage(customers, customerJson);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/customers/:customer_id',
      summary: 'Get a customer',
      tags: CUSTOMERS,
      access: { operator: ALL_OPERATOR_ROLES, customer: true },
      params: customerIdParams,
      response: CustomerJson,
      handler: async (ctx, { params }) =>
        customerJson(await participants.getCustomer(ctx, params.customer_id)),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/customers/:customer_id',
      summary: "Change a customer's name or region",
      tags: CUSTOMERS,
      access: { operator: ['admin', 'ops', 'support'], customer: true },
      params: customerIdParams,
      body: z.strictObject({ name: name.optional(), region: region.nullable().optional() }),
      response: CustomerJson,
      handler: async (ctx, { params, body }) =>
        customerJson(await participants.updateCustomer(ctx, params.customer_id, body)),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/customers/:customer_id/segment',
      summary: "Set a customer's segment",
      description:
        'The segment fee rules and subsidy programmes match on; null for none. Orders already placed keep ' +
        'the segment they were placed with. Operators only: `segment` is not a field of ' +
        '`PATCH /v1/customers/{customer_id}`. Errors: `404 participants.customer_not_found`.',
      tags: CUSTOMERS,
      access: { operator: ['admin', 'ops'] },
      audit: { action: 'participants.customer.segment', targetParam: 'customer_id' },
      params: customerIdParams,
      body: z.strictObject({ segment: matchKey.nullable(), reason }),
      response: CustomerJson,
      handler: async (ctx, { params, body }) =>
        customerJson(await participants.setSegment(ctx, params.customer_id, body.segment, body.reason)),
    }),
  ];
}
