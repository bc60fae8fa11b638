import { describe, expect, it } from 'vitest';
import type { OperatorRole, PartnerRole } from './kernel/actor.js';
import type { Access } from './kernel/http/access.js';
import { newId } from './kernel/ids.js';
import { servedRoutes } from './testing/served-routes.js';
import { type ApiResponse, createTestApp } from './testing/test-app.js';

/*
 * A2, the role matrix: every registered route is called by every kind of principal, and the
 * answer is 401 for no key on a protected route, 403 `auth.role_not_allowed` exactly when
 * the route's declared access leaves the principal out, and neither otherwise. The probes
 * carry bodies that fail validation and ids that do not exist, so none changes anything.
 */

/** The OpenAPI document: public by the app's rule, and not a route of the API itself. */
const EXCLUDED = (url: string) => url === '/openapi.json';

type Who =
  | { readonly kind: 'operator'; readonly role: OperatorRole }
  | { readonly kind: 'partner'; readonly role: PartnerRole }
  | { readonly kind: 'customer' }
  | { readonly kind: 'anonymous' };

type Outcome = 'allowed' | 'unauthenticated' | 'forbidden';

/** What the declaration promises, read independently of the code that enforces it. */
function promised(access: Access, who: Who): Outcome {
  if (access === 'public') return 'allowed';
  switch (who.kind) {
    case 'anonymous':
      return 'unauthenticated';
    case 'operator':
      return access.operator?.includes(who.role) ? 'allowed' : 'forbidden';
    case 'partner':
      return access.partner?.includes(who.role) ? 'allowed' : 'forbidden';
    case 'customer':
      return access.customer === true ? 'allowed' : 'forbidden';
  }
}

function observed(response: ApiResponse, method: string): Outcome | string {
  const code = method === 'HEAD' ? null : response.body.code;
  if (response.status === 401 && (code === null || code === 'auth.key_required')) return 'unauthenticated';
  if (response.status === 403 && (code === null || code === 'auth.role_not_allowed')) return 'forbidden';
  if (response.status === 401 || response.status === 403) return `${response.status} ${String(code)}`;
  return 'allowed';
}

/** A value for each path parameter: well formed, naming nothing that exists. */
const PARAM_VALUES: Readonly<Record<string, () => string>> = {
  partner_id: () => newId('ptn'),
  customer_id: () => newId('cus'),
  user_id: () => newId('usr'),
  api_key_id: () => newId('key'),
  invitation_id: () => newId('inv'),
  certification_id: () => newId('crt'),
  offer_id: () => newId('off'),
  reservation_id: () => newId('rsv'),
  capability: () => 'no-such-capability',
  account_id: () => newId('acc'),
  transaction_id: () => newId('txn'),
  payment_id: () => newId('pay'),
  chargeback_id: () => newId('cbk'),
  refund_id: () => newId('rfd'),
  report_id: () => newId('rec'),
  fee_version_id: () => newId('fsv'),
  subscription_id: () => newId('sub'),
  payout_id: () => newId('po'),
  payout_batch_id: () => newId('pob'),
  programme_id: () => newId('sbp'),
  key: () => 'no-such-type',
  version: () => '1',
  quote_id: () => newId('quo'),
  order_id: () => newId('ord'),
  step: () => 'no-such-step',
  work_order_id: () => newId('wko'),
  refund_request_id: () => newId('rrq'),
  posting_request_id: () => newId('lpr'),
  currency: () => 'XTS',
};

/** A body no route's schema accepts: every body schema is a strict object. */
const INVALID_BODY = { role_matrix_probe: true };

describe('role matrix (A2)', async () => {
  const app = await createTestApp();

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
    }),
    201,
  );
  const applied = ok<{ partner: { id: string }; api_key: { secret: string } }>(
    await app.request('POST', '/v1/partner-applications', {
      key: null,
      body: { partner_type: 'supplier', name: 'Acme', email: 'acme@partner.test', regions: ['eu-west'] },
    }),
    201,
  );
  const member = ok<{ id: string }>(
    await app.request('POST', `/v1/partners/${applied.partner.id}/users`, {
      key: applied.api_key.secret,
      body: { name: 'Member', email: 'member@acme.test', role: 'member' },
    }),
    201,
  );
  const memberKey = ok<{ secret: string }>(
    await app.request('POST', '/v1/api-keys', {
      key: applied.api_key.secret,
      body: { name: 'member', user_id: member.id },
    }),
    201,
  );
  const customer = ok<{ api_key: { secret: string } }>(
    await app.request('POST', '/v1/customer-signups', {
      key: null,
      body: { kind: 'consumer', name: 'Carol', email: 'carol@customer.test' },
    }),
    201,
  );

  const principals: readonly { readonly name: string; readonly who: Who; readonly key: string | null }[] = [
    { name: 'operator admin', who: { kind: 'operator', role: 'admin' }, key: app.adminKey },
    { name: 'operator ops', who: { kind: 'operator', role: 'ops' }, key: await app.operatorKey('ops') },
    {
      name: 'operator finance',
      who: { kind: 'operator', role: 'finance' },
      key: await app.operatorKey('finance'),
    },
    {
      name: 'operator support',
      who: { kind: 'operator', role: 'support' },
      key: await app.operatorKey('support'),
    },
    { name: 'partner owner', who: { kind: 'partner', role: 'owner' }, key: applied.api_key.secret },
    { name: 'partner member', who: { kind: 'partner', role: 'member' }, key: memberKey.secret },
    { name: 'customer', who: { kind: 'customer' }, key: customer.api_key.secret },
    { name: 'no key', who: { kind: 'anonymous' }, key: null },
  ];

  const routes = servedRoutes(app.baton.http).filter((route) => !EXCLUDED(route.url));

  it('serves the routes of every module, each with its declared access', () => {
    // The app refuses to register a route without a declaration (see app.test.ts), so each
    // served route carries the access this matrix checks.
    expect(routes.length).toBeGreaterThan(20);
    for (const prefix of ['/healthz', '/v1/events', '/v1/api-keys', '/v1/partners', '/v1/customers']) {
      expect(
        routes.some((route) => route.url.startsWith(prefix)),
        prefix,
      ).toBe(true);
    }
  });

  it('acts as the principal each key is meant to be', async () => {
    for (const { name, who, key } of principals) {
      if (who.kind === 'anonymous') continue;
      const me = ok<{ tenant_kind: string; role: string }>(await app.request('GET', '/v1/me', { key }));
      expect(me.tenant_kind, name).toBe(who.kind);
      expect(me.role, name).toBe(who.kind === 'customer' ? 'customer' : who.role);
    }
  });

  it('answers every principal on every route exactly as the route declares', async () => {
    const mismatches: string[] = [];
    const changes: string[] = [];
    let probes = 0;
    for (const route of routes) {
      const url = route.url.replace(/:([a-z_]+)/g, (_match, param: string) => {
        const value = PARAM_VALUES[param];
        if (!value) throw new Error(`Add a value for the path parameter :${param} of ${route.url}`);
        return value();
      });
      for (const { name, who, key } of principals) {
        const response = await app.request(route.method, url, {
          key,
          ...(route.method !== 'GET' && route.method !== 'HEAD' ? { body: INVALID_BODY } : {}),
        });
        probes++;
        const expected = promised(route.access, who);
        const actual = observed(response, route.method);
        if (actual !== expected) {
          mismatches.push(
            `${route.method} ${route.url} as ${name}: expected ${expected}, got ${response.status}`,
          );
        }
        if (response.body.code === 'request.route_not_found') {
          mismatches.push(`${route.method} ${url} as ${name} reached no route`);
        }
        if (route.method !== 'GET' && route.method !== 'HEAD' && response.status < 300) {
          changes.push(`${route.method} ${route.url} as ${name} answered ${response.status}`);
        }
      }
    }
    expect(probes).toBe(routes.length * principals.length);
    expect(mismatches, mismatches.join('\n')).toEqual([]);
    expect(changes, `Probes must not change anything:\n${changes.join('\n')}`).toEqual([]);
  });
});

function ok<T = Record<string, unknown>>(response: ApiResponse, status = 200): T {
  expect(response.status, response.text).toBe(status);
  return response.body as T;
}
