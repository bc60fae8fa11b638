import { z } from 'zod';
import { OPERATOR_ROLES } from '../../../kernel/actor.js';
import { type Access, ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import {
  email,
  idSchema,
  iso,
  isoOrNull,
  name,
  page,
  pageQuery,
  timestamp,
  toPage,
} from '../../../kernel/http/schemas.js';
import type { UserId } from '../../../kernel/ids.js';
import { tenantKey, type User } from '../domain/user.js';
import type { AccessService } from '../service.js';
import type { ApiKey } from '../store/access-store.js';

export const UserJson = z
  .object({
    id: z.string(),
    object: z.literal('user'),
    tenant_kind: z.enum(['operator', 'partner', 'customer']),
    tenant_id: z.string().describe('`operator`, or the id of the partner or customer the user belongs to.'),
    role: z.string(),
    name: z.string(),
    email: z.string(),
    status: z.enum(['active', 'disabled']),
    created_at: timestamp,
    disabled_at: timestamp.nullable(),
  })
  .meta({ id: 'User' });

export const ApiKeyJson = z
  .object({
    id: z.string(),
    object: z.literal('api_key'),
    user_id: z.string(),
    name: z.string(),
    hint: z.string().describe('The last characters of the secret, to recognise the key.'),
    created_at: timestamp,
    expires_at: timestamp.nullable(),
    revoked_at: timestamp.nullable(),
  })
  .meta({ id: 'ApiKey' });

export const NewApiKeyJson = z
  .object({
    api_key: ApiKeyJson,
    secret: z.string().describe('The key itself. It is shown only in this response: store it now.'),
  })
  .meta({ id: 'NewApiKey' });

export function userJson(user: User): z.input<typeof UserJson> {
  return {
    id: user.id,
    object: 'user',
    tenant_kind: user.tenant.kind,
    tenant_id: tenantKey(user.tenant),
    role: user.role,
    name: user.name,
    email: user.email,
    status: user.status,
    created_at: iso(user.createdAt),
    disabled_at: isoOrNull(user.disabledAt),
  };
}

export function apiKeyJson(key: ApiKey): z.input<typeof ApiKeyJson> {
  return {
    id: key.id,
    object: 'api_key',
    user_id: key.userId,
    name: key.name,
    hint: `…${key.hint}`,
    created_at: iso(key.createdAt),
    expires_at: isoOrNull(key.expiresAt),
    revoked_at: isoOrNull(key.revokedAt),
  };
}

const ANY_PRINCIPAL: Access = { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES, customer: true };
const TAGS = ['Access'];

export function accessRoutes(access: AccessService): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/me',
      summary: 'Who am I',
      description: 'The user and tenant the calling API key acts for.',
      tags: TAGS,
      access: ANY_PRINCIPAL,
      response: UserJson,
      handler: async (ctx) => {
        const actor = ctx.actor as { userId: UserId };
        return userJson(await access.getUser(ctx, actor.userId));
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/api-keys',
      summary: 'Create an API key',
      description:
        'Creates a key for your own user, or, for a manager (operator admin, partner owner), for another user ' +
        'of the same tenant. The secret is in the response only.',
      tags: TAGS,
      access: ANY_PRINCIPAL,
      audit: { action: 'access.api_key.create' },
      body: z.strictObject({
        name: name.describe('What the key is for, e.g. "order sync".'),
        user_id: idSchema('usr').optional(),
        expires_at: timestamp.optional(),
      }),
      status: 201,
      response: NewApiKeyJson,
      handler: async (ctx, { body }) => {
        const { apiKey, secret } = await access.createApiKey(ctx, {
          name: body.name,
          userId: body.user_id,
          expiresAt: body.expires_at ? new Date(body.expires_at) : null,
        });
        return { api_key: apiKeyJson(apiKey), secret };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/api-keys',
      summary: 'List API keys',
      description:
        'Keys of your tenant: all of them for a manager, your own otherwise. Secrets are never shown.',
      tags: TAGS,
      access: ANY_PRINCIPAL,
      query: z.strictObject({ ...pageQuery, user_id: idSchema('usr').optional() }),
      response: page(ApiKeyJson),
      handler: async (ctx, { query }) => {
        return toPage(await access.listApiKeys(ctx, { ...query, userId: query.user_id }), apiKeyJson);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/api-keys/:api_key_id/revoke',
      summary: 'Revoke an API key',
      description:
        'Stops the key working, within five seconds on every Baton process. Revoking twice is harmless.',
      tags: TAGS,
      access: ANY_PRINCIPAL,
      audit: { action: 'access.api_key.revoke', targetParam: 'api_key_id' },
      params: z.strictObject({ api_key_id: idSchema('key') }),
      response: ApiKeyJson,
      handler: async (ctx, { params }) => apiKeyJson(await access.revokeApiKey(ctx, params.api_key_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/operator-users',
      summary: 'Create an operator user',
      tags: TAGS,
      access: { operator: ['admin'] },
      audit: { action: 'access.user.create' },
      body: z.strictObject({ name, email, role: z.enum(OPERATOR_ROLES) }),
      status: 201,
      response: UserJson,
      handler: async (ctx, { body }) =>
        userJson(await access.createUser(ctx, { tenant: { kind: 'operator' }, ...body })),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/operator-users',
      summary: 'List operator users',
      tags: TAGS,
      access: { operator: ['admin', 'support'] },
      query: z.strictObject(pageQuery),
      response: page(UserJson),
      handler: async (ctx, { query }) => {
        return toPage(await access.listUsers(ctx, { kind: 'operator' }, query), userJson);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/users/:user_id',
      summary: 'Get a user of your tenant',
      tags: TAGS,
      access: ANY_PRINCIPAL,
      params: z.strictObject({ user_id: idSchema('usr') }),
      response: UserJson,
      handler: async (ctx, { params }) => userJson(await access.getUser(ctx, params.user_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/users/:user_id/disable',
      summary: 'Disable a user of your tenant',
      description:
        'Disables the user and revokes all its keys. A tenant always keeps one active admin or owner.',
      tags: TAGS,
      access: { operator: ['admin'], partner: ['owner'] },
      audit: { action: 'access.user.disable', targetParam: 'user_id' },
      params: z.strictObject({ user_id: idSchema('usr') }),
      response: UserJson,
      handler: async (ctx, { params }) => userJson(await access.disableUser(ctx, params.user_id)),
    }),
  ];
}
