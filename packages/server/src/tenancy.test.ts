import { type Kysely, sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { Tables } from './kernel/database/tables.js';
import { runInTransaction } from './kernel/database/transaction.js';
import { EVENT_PAGE_MAX } from './kernel/events/event-log.js';
import type { ServedRoute } from './kernel/http/app.js';
import { newId } from './kernel/ids.js';
import { PLATFORM_OWNER } from './modules/ledger/index.js';
import { RESUME_PAYMENT_JOB, type SimulatedProvider } from './modules/payments/index.js';
import { servedRoutes } from './testing/served-routes.js';
import { type ApiResponse, createTestApp, type TestApp } from './testing/test-app.js';

/*
 * A1, the object-level access matrix: for every route that takes an object's id, another
 * tenant's id is a 404 indistinguishable from a missing one (or the 403 every id gets, where
 * the caller's role may not call the route at all), and nothing changes in the database.
 */

type Attacker = 'partner owner' | 'partner member' | 'customer';
const ATTACKERS: readonly Attacker[] = ['partner owner', 'partner member', 'customer'];

/**
 * What a route with a path parameter answers another tenant. `public` routes show the same
 * thing to everyone; a scoped route answers each kind of attacker with 404 (it may call the
 * route, but not for that object) or 403 (its role may not call the route at all). `body` is
 * a valid body, so that only the tenancy check stands between the attacker and a change.
 */
type Case =
  | { readonly kind: 'public'; readonly why: string }
  | { readonly kind: 'shared'; readonly why: string }
  | {
      readonly kind: 'scoped';
      readonly expect: Readonly<Record<Attacker, 403 | 404>>;
      readonly body?: (n: number) => unknown;
      /** Headers a valid request carries, such as the `Idempotency-Key` a money-moving route needs. */
      readonly headers?: (n: number) => Record<string, string>;
    };

const PUBLIC = (why: string): Case => ({ kind: 'public', why });
/** A route every principal with a key reads alike: the operator's objects, no tenant's. */
const SHARED = (why: string): Case => ({ kind: 'shared', why });
/** A route only operators may call: every tenant gets 403, whatever the id. */
const OPERATOR_ONLY: Extract<Case, { kind: 'scoped' }> = {
  kind: 'scoped',
  expect: { 'partner owner': 403, 'partner member': 403, customer: 403 },
};

/** A customer's own object: partners may not call the route, other customers find nothing. */
const CUSTOMERS_OWN: Extract<Case, { kind: 'scoped' }> = {
  kind: 'scoped',
  expect: { 'partner owner': 403, 'partner member': 403, customer: 404 },
};
/** A partner's own object: other partners find nothing, customers may not call the route. */
const PARTNERS_OWN: Extract<Case, { kind: 'scoped' }> = {
  kind: 'scoped',
  expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
};

/**
 * One case per `METHOD url` with a path parameter. Fastify's HEAD routes are copies of the GET
 * routes and are probed with the GET case. A route with a parameter and no case fails the test.
 */
const CASES: Readonly<Record<string, Case>> = {
  'GET /v1/partner-types/:key': PUBLIC('partner types are published to prospective partners'),
  'GET /v1/partner-types/:key/rules': PUBLIC('rules of engagement are published to prospective partners'),
  'GET /v1/partner-types/:key/rules/:version': PUBLIC('rules of engagement are published'),
  'PATCH /v1/partner-types/:key': { ...OPERATOR_ONLY, body: () => ({ name: 'Hijacked' }) },
  'POST /v1/partner-types/:key/rules': {
    ...OPERATOR_ONLY,
    body: () => ({ title: 'Hijacked', body: 'Hijacked.', grace_period_days: 0 }),
  },
  'POST /v1/partner-invitations/:invitation_id/revoke': OPERATOR_ONLY,
  'GET /v1/partners/:partner_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'PATCH /v1/partners/:partner_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: () => ({ name: 'Hijacked', regions: ['hijacked'] }),
  },
  'POST /v1/partners/:partner_id/transitions': {
    ...OPERATOR_ONLY,
    body: () => ({ to: 'under_review', reason: 'Hijacked.' }),
  },
  'PUT /v1/partners/:partner_id/tier': {
    ...OPERATOR_ONLY,
    body: () => ({ tier: 'gold', reason: 'Hijacked.' }),
  },
  'GET /v1/partners/:partner_id/transitions': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/partners/:partner_id/rules-acceptances': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: () => ({ version: 1 }),
  },
  'GET /v1/partners/:partner_id/users': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/partners/:partner_id/users': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: (n) => ({ name: 'Intruder', email: `intruder-${n}@attacker.test`, role: 'owner' }),
  },
  'GET /v1/customers/:customer_id': {
    kind: 'scoped',
    expect: { 'partner owner': 403, 'partner member': 403, customer: 404 },
  },
  'PATCH /v1/customers/:customer_id': {
    kind: 'scoped',
    expect: { 'partner owner': 403, 'partner member': 403, customer: 404 },
    body: () => ({ name: 'Hijacked', region: 'hijacked' }),
  },
  'PUT /v1/customers/:customer_id/segment': {
    ...OPERATOR_ONLY,
    body: () => ({ segment: 'hijacked', reason: 'Hijacked.' }),
  },
  'GET /v1/users/:user_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 404 },
  },
  'POST /v1/users/:user_id/disable': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
  },
  'POST /v1/api-keys/:api_key_id/revoke': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 404 },
  },
  'GET /v1/capabilities/:key': SHARED('capabilities are the standards every offer is checked against'),
  'GET /v1/capabilities/:key/versions': SHARED(
    'capabilities are the standards every offer is checked against',
  ),
  'GET /v1/capabilities/:key/versions/:version': SHARED('capability versions are standards'),
  'GET /v1/certification-programs/:key': SHARED('partners read what a program asks before applying'),
  'PATCH /v1/certification-programs/:key': { ...OPERATOR_ONLY, body: () => ({ name: 'Hijacked' }) },
  'POST /v1/partners/:partner_id/certifications': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: () => ({ program: 'supplier', evidence: { licence: 'Forged.' } }),
  },
  'GET /v1/partners/:partner_id/certifications': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'GET /v1/certifications/:certification_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/certifications/:certification_id/grant': {
    ...OPERATOR_ONLY,
    body: () => ({ note: 'Hijacked.' }),
  },
  'POST /v1/certifications/:certification_id/reject': {
    ...OPERATOR_ONLY,
    body: () => ({ reason: 'Hijacked.' }),
  },
  'POST /v1/certifications/:certification_id/revoke': {
    ...OPERATOR_ONLY,
    body: () => ({ reason: 'Hijacked.' }),
  },
  'POST /v1/capabilities/:key/versions': { ...OPERATOR_ONLY, body: () => ({ name: 'Hijacked' }) },
  'POST /v1/partners/:partner_id/offers': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
    body: () => OFFER,
  },
  'POST /v1/partners/:partner_id/offers/import': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
    body: () => ({ items: [OFFER] }),
  },
  'GET /v1/partners/:partner_id/offers': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  // The victim offer is a draft: an active offer is visible to every tenant by design.
  'GET /v1/offers/:offer_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 404 },
  },
  'PATCH /v1/offers/:offer_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
    body: () => ({ lead_time_hours: 1, regions: ['hijacked'] }),
  },
  'POST /v1/offers/:offer_id/status': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
    body: () => ({ status: 'active' }),
  },
  'POST /v1/offers/:offer_id/reservations': {
    ...OPERATOR_ONLY,
    body: () => ({ quantity: 1, at: '2026-06-01T09:00:00Z', hold_minutes: 5 }),
  },
  'GET /v1/reservations/:reservation_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/reservations/:reservation_id/confirm': OPERATOR_ONLY,
  'POST /v1/reservations/:reservation_id/release': OPERATOR_ONLY,
  'GET /v1/matching/settings/:capability': OPERATOR_ONLY,
  'PUT /v1/matching/settings/:capability': { ...OPERATOR_ONLY, body: () => ({ max_per_partner: 2 }) },
  // Ledger: the victim account is partner A's payable, the victim transaction credits it.
  'GET /v1/ledger/accounts/:account_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'GET /v1/ledger/accounts/:account_id/statement': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'GET /v1/ledger/transactions/:transaction_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/ledger/transactions/:transaction_id/reverse': {
    ...OPERATOR_ONLY,
    body: (n) => ({ idempotency_key: `tenancy-reverse-${n}` }),
  },
  'PUT /v1/ledger/approval-thresholds/:currency': {
    ...OPERATOR_ONLY,
    body: () => ({ approval_above: '1000000.00' }),
  },
  'DELETE /v1/ledger/approval-thresholds/:currency': OPERATOR_ONLY,
  'GET /v1/ledger/posting-requests/:posting_request_id': OPERATOR_ONLY,
  'POST /v1/ledger/posting-requests/:posting_request_id/approve': {
    ...OPERATOR_ONLY,
    body: () => ({}),
    headers: (n: number) => ({ 'idempotency-key': `tenancy-posting-approve-${n}` }),
  },
  'POST /v1/ledger/posting-requests/:posting_request_id/reject': {
    ...OPERATOR_ONLY,
    body: () => ({ reason: 'Hijacked.' }),
  },
  // Fees (cases for the fees module's routes go here).
  'GET /v1/fee-schedule-versions/:fee_version_id': OPERATOR_ONLY,
  'POST /v1/partners/:partner_id/subscriptions': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: () => ({ plan: 'tenancy-plan' }),
  },
  'GET /v1/partners/:partner_id/subscriptions': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/subscriptions/:subscription_id/cancel': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
  },
  'GET /v1/subscriptions/:subscription_id/charges': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'POST /v1/partners/:partner_id/service-charges': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: () => ({ service: 'tenancy-service' }),
    headers: (n) => ({ 'idempotency-key': `tenancy-service-charge-${n}` }),
  },
  'GET /v1/partners/:partner_id/service-charges': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  // Subsidies (cases for the subsidies module's routes go here).
  'GET /v1/subsidies/programmes/:programme_id': OPERATOR_ONLY,
  'GET /v1/subsidies/programmes/:programme_id/report': OPERATOR_ONLY,
  'POST /v1/subsidies/programmes/:programme_id/activate': OPERATOR_ONLY,
  'POST /v1/subsidies/programmes/:programme_id/top-ups': {
    ...OPERATOR_ONLY,
    body: () => ({ amount: { amount: '1.00', currency: 'EUR' } }),
  },
  'POST /v1/subsidies/programmes/:programme_id/cancel': OPERATOR_ONLY,
  // Payments (cases for the payments module's routes go here).
  // The victim payment is customer A's; chargebacks and reconciliation reports are the operator's.
  'GET /v1/payments/:payment_id': {
    kind: 'scoped',
    expect: { 'partner owner': 403, 'partner member': 403, customer: 404 },
  },
  'GET /v1/chargebacks/:chargeback_id': OPERATOR_ONLY,
  'POST /v1/chargebacks/:chargeback_id/decision': {
    ...OPERATOR_ONLY,
    body: () => ({ liability: 'platform' }),
  },
  'GET /v1/reconciliation/reports/:report_id': OPERATOR_ONLY,
  'POST /v1/payments/:payment_id/refunds/:refund_id/retry': {
    ...OPERATOR_ONLY,
    headers: (n) => ({ 'idempotency-key': `tenancy-refund-retry-${n}` }),
  },
  // Payouts (cases for the payouts module's routes go here).
  'GET /v1/payouts/:payout_id': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'GET /v1/payout-batches/:payout_batch_id': OPERATOR_ONLY,
  'GET /v1/partners/:partner_id/payout-settings': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 404, customer: 403 },
  },
  'PUT /v1/partners/:partner_id/payout-settings': {
    ...OPERATOR_ONLY,
    body: () => ({
      schedule: 'daily',
      minimum: { amount: '0.00', currency: 'EUR' },
      destination: 'ba_hijacked',
      reserve_bps: 0,
      reserve_days: 0,
    }),
  },
  'PUT /v1/partners/:partner_id/payout-destination': {
    kind: 'scoped',
    expect: { 'partner owner': 404, 'partner member': 403, customer: 403 },
    body: () => ({ destination: 'ba_hijacked' }),
  },
  // Settlements (cases for the money workflows' routes go here).
  // Offerings (cases for the offerings module's routes go here).
  'GET /v1/offerings/:key': SHARED('active offerings are what every partner and customer may read'),
  'GET /v1/offerings/:key/versions/:version': SHARED('versions of active offerings are read alike'),
  'POST /v1/offerings/:key/versions': {
    ...OPERATOR_ONLY,
    body: () => ({
      name: 'Hijacked',
      unit: 'piece',
      currency: 'EUR',
      pricing: { kind: 'cost_plus', margin_bps: 0 },
      regions: ['eu-west'],
      steps: [{ key: 'supply', name: 'Supply', capability: 'supplier' }],
      quantity_max: 10,
    }),
  },
  'POST /v1/offerings/:key/retire': OPERATOR_ONLY,
  // Fulfilment: customer A's quote and order, and the work order it sends partner C.
  'GET /v1/quotes/:quote_id': CUSTOMERS_OWN,
  'GET /v1/orders/:order_id': CUSTOMERS_OWN,
  ...Object.fromEntries(
    ['confirm', 'reject'].map((action) => [
      `POST /v1/orders/:order_id/legs/:step/${action}`,
      {
        ...CUSTOMERS_OWN,
        body: () => ({}),
        headers: (n: number) => ({ 'idempotency-key': `tenancy-leg-${n}` }),
      },
    ]),
  ),
  'POST /v1/orders/:order_id/refunds': {
    ...OPERATOR_ONLY,
    body: () => ({ amount: { amount: '1.00', currency: 'EUR' }, reason: 'Hijacked.' }),
    headers: (n: number) => ({ 'idempotency-key': `tenancy-order-refund-${n}` }),
  },
  'PUT /v1/refund-thresholds/:currency': { ...OPERATOR_ONLY, body: () => ({ approval_above: '1000000.00' }) },
  'DELETE /v1/refund-thresholds/:currency': OPERATOR_ONLY,
  'POST /v1/orders/:order_id/refund-requests': {
    ...OPERATOR_ONLY,
    body: () => ({ amount: { amount: '1.00', currency: 'EUR' }, reason: 'Hijacked.' }),
    headers: (n: number) => ({ 'idempotency-key': `tenancy-refund-request-${n}` }),
  },
  'GET /v1/refund-requests/:refund_request_id': OPERATOR_ONLY,
  'POST /v1/refund-requests/:refund_request_id/approve': {
    ...OPERATOR_ONLY,
    body: () => ({}),
    headers: (n: number) => ({ 'idempotency-key': `tenancy-refund-approve-${n}` }),
  },
  'POST /v1/refund-requests/:refund_request_id/reject': {
    ...OPERATOR_ONLY,
    body: () => ({ reason: 'Hijacked.' }),
  },
  'GET /v1/work-orders/:work_order_id': PARTNERS_OWN,
  'POST /v1/work-orders/:work_order_id/withdraw': {
    ...OPERATOR_ONLY,
    body: () => ({ reason: 'Hijacked.' }),
    headers: (n: number) => ({ 'idempotency-key': `tenancy-withdraw-${n}` }),
  },
  ...Object.fromEntries(
    ['accept', 'decline', 'start', 'deliver'].map((action) => [
      `POST /v1/work-orders/:work_order_id/${action}`,
      { ...PARTNERS_OWN, body: () => ({}) },
    ]),
  ),
};

/**
 * Path parameters that only pick a part of the object another parameter names (the step of an
 * order, a refund of a payment): probed with the victim's own value, so that the object's id is
 * what the check decides on. The refund's id is the setup's (below).
 */
const PART_PARAMS: Record<string, string> = { step: 'supply' };

/** A valid offer for the `supplier` capability the setup defines. */
const OFFER = {
  capability: 'supplier',
  attributes: {},
  unit_price: { amount: '1.00', currency: 'EUR' },
  min_quantity: 1,
  max_quantity: 10,
  lead_time_hours: 24,
  regions: ['eu-west'],
  capacity_per_period: 10,
  capacity_period: 'week',
};

interface PartnerTenant {
  readonly id: string;
  readonly ownerUserId: string;
  readonly ownerKey: string;
  readonly ownerKeyId: string;
  readonly memberUserId: string;
  readonly memberKey: string;
  readonly memberKeyId: string;
}

interface CustomerTenant {
  readonly id: string;
  readonly userId: string;
  readonly key: string;
  readonly keyId: string;
}

interface NewKey {
  api_key: { id: string };
  secret: string;
}

function ok<T>(response: ApiResponse<T>, status = 200): T {
  expect(response.status, response.text).toBe(status);
  return response.body;
}

async function applyAsPartner(app: TestApp, name: string): Promise<PartnerTenant> {
  const applied = ok(
    await app.request<{ partner: { id: string }; owner: { id: string }; api_key: NewKey }>(
      'POST',
      '/v1/partner-applications',
      {
        key: null,
        body: { partner_type: 'supplier', name, email: `${name}@partner.test`, regions: ['eu-west'] },
      },
    ),
    201,
  );
  const ownerKey = applied.api_key.secret;
  const member = ok(
    await app.request<{ id: string }>('POST', `/v1/partners/${applied.partner.id}/users`, {
      key: ownerKey,
      body: { name: `${name} member`, email: `member@${name}.test`, role: 'member' },
    }),
    201,
  );
  const memberKey = ok(
    await app.request<NewKey>('POST', '/v1/api-keys', {
      key: ownerKey,
      body: { name: 'member key', user_id: member.id },
    }),
    201,
  );
  return {
    id: applied.partner.id,
    ownerUserId: applied.owner.id,
    ownerKey,
    ownerKeyId: applied.api_key.api_key.id,
    memberUserId: member.id,
    memberKey: memberKey.secret,
    memberKeyId: memberKey.api_key.id,
  };
}

async function signUpAsCustomer(app: TestApp, name: string): Promise<CustomerTenant> {
  const signedUp = ok(
    await app.request<{ customer: { id: string }; user: { id: string }; api_key: NewKey }>(
      'POST',
      '/v1/customer-signups',
      { key: null, body: { kind: 'consumer', name, email: `${name}@customer.test` } },
    ),
    201,
  );
  return {
    id: signedUp.customer.id,
    userId: signedUp.user.id,
    key: signedUp.api_key.secret,
    keyId: signedUp.api_key.api_key.id,
  };
}

/**
 * Every row of every table but the audit log (which records refusals) and the idempotency keys
 * (which keep the attacker's own refusal for its own retries), in a stable order.
 */
async function snapshot(db: Kysely<Tables>): Promise<Record<string, string[]>> {
  const tables = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'
      and table_name not in ('audit_records', 'idempotency_keys')
    order by table_name`.execute(db);
  const result: Record<string, string[]> = {};
  for (const { table_name } of tables.rows) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table_name)}`.execute(db);
    result[table_name] = rows.rows
      .map((row) => JSON.stringify(row, (_key, value) => (typeof value === 'bigint' ? `${value}` : value)))
      .sort();
  }
  return result;
}

async function auditSeq(db: Kysely<Tables>): Promise<string> {
  const row = await sql<{
    seq: string;
  }>`select coalesce(max(seq), 0)::text as seq from audit_records`.execute(db);
  return row.rows[0]?.seq ?? '0';
}

/** A response as a caller can compare it: without the request id, and with the probed id (if any) masked. */
function comparable(response: ApiResponse, id: string) {
  const text = id ? response.text.replaceAll(id, '<id>') : response.text;
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
  if (body) delete body.request_id;
  return { status: response.status, contentType: response.headers['content-type'], body };
}

describe('object-level access (A1)', async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
    }),
    201,
  );
  // Published rules make an acceptance by the wrong partner a change that could succeed.
  ok(
    await app.request('POST', '/v1/partner-types/supplier/rules', {
      body: { title: 'Rules', body: 'Deliver on time.', grace_period_days: 0 },
    }),
    201,
  );
  const partnerA = await applyAsPartner(app, 'alpha');
  const partnerB = await applyAsPartner(app, 'bravo');
  const customerA = await signUpAsCustomer(app, 'carol');
  // A capability and a program named like the partner type, so that `:key` probes reach them too.
  ok(
    await app.request('POST', '/v1/certification-programs', {
      body: {
        key: 'supplier',
        name: 'Supplier',
        evidence: [{ key: 'licence', description: 'Licence' }],
        validity_days: 365,
      },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/capabilities', {
      body: {
        key: 'supplier',
        name: 'Supply',
        unit: 'piece',
        attribute_schema: { type: 'object' },
        required_certifications: ['supplier'],
      },
    }),
    201,
  );
  // Granted, so that another application for it by a broken check would succeed (as a renewal).
  const certificationA = ok(
    await app.request<{ id: string }>('POST', `/v1/partners/${partnerA.id}/certifications`, {
      key: partnerA.ownerKey,
      body: { program: 'supplier', evidence: { licence: 'L-1' } },
    }),
    201,
  );
  ok(await app.request('POST', `/v1/certifications/${certificationA.id}/grant`, { body: {} }));
  // A draft offer (seen only by its partner and operators) and a reservation on an active one.
  const offerA = ok(
    await app.request<{ id: string }>('POST', `/v1/partners/${partnerA.id}/offers`, {
      key: partnerA.ownerKey,
      body: OFFER,
    }),
    201,
  );
  const activeOfferA = ok(
    await app.request<{ id: string }>('POST', `/v1/partners/${partnerA.id}/offers`, {
      key: partnerA.ownerKey,
      body: { ...OFFER, status: 'active' },
    }),
    201,
  );
  const reservationA = ok(
    await app.request<{ id: string }>('POST', `/v1/offers/${activeOfferA.id}/reservations`, {
      body: { quantity: 1, at: app.clock.now().toISOString(), hold_minutes: 60 },
    }),
    201,
  );
  const adjustmentA = ok(
    await app.request<{ id: string; entries: { account_id: string }[] }>('POST', '/v1/ledger/transactions', {
      body: {
        idempotency_key: 'tenancy-adjustment',
        cause: { kind: 'adjustment', id: 'tenancy' },
        entries: [
          {
            account: { purpose: 'operator_adjustments', owner_id: 'platform' },
            direction: 'debit',
            amount: { amount: '5.00', currency: 'EUR' },
          },
          {
            account: { purpose: 'partner_payable', owner_id: partnerA.id },
            direction: 'credit',
            amount: { amount: '5.00', currency: 'EUR' },
          },
        ],
      },
    }),
    201,
  );
  const payableA = adjustmentA.entries[1]?.account_id as string;
  // Payouts: partner A's settings, and a run that pays it (the victim payout and batch).
  ok(
    await app.request('PUT', `/v1/partners/${partnerA.id}/payout-settings`, {
      body: {
        schedule: 'manual',
        minimum: { amount: '1.00', currency: 'EUR' },
        destination: 'ba_ok',
        reserve_bps: 0,
        reserve_days: 0,
      },
    }),
  );
  const payoutRunA = ok(
    await app.request<{ batch: { id: string }; payouts: { id: string }[] }>('POST', '/v1/payouts/runs', {
      body: { partner_ids: [partnerA.id] },
      headers: { 'idempotency-key': 'tenancy-payout-run' },
    }),
    202,
  );
  // Fees: a version, a plan partner A holds (the victim subscription) and a service it may order.
  const feeVersion = ok(
    await app.request<{ id: string }>('POST', '/v1/fee-schedule-versions', {
      body: { currency: 'EUR', rules: [{ commission_bps: 1000 }] },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/subscription-plans', {
      body: {
        key: 'tenancy-plan',
        name: 'Tenancy',
        interval: 'month',
        price: { amount: '1.00', currency: 'EUR' },
      },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/value-added-services', {
      body: { key: 'tenancy-service', name: 'Tenancy', price: { amount: '1.00', currency: 'EUR' } },
    }),
    201,
  );
  const subscriptionA = ok(
    await app.request<{ id: string }>('POST', `/v1/partners/${partnerA.id}/subscriptions`, {
      key: partnerA.ownerKey,
      body: { plan: 'tenancy-plan' },
    }),
    201,
  );
  const customerB = await signUpAsCustomer(app, 'dave');
  const invitation = ok(
    await app.request<{ invitation: { id: string } }>('POST', '/v1/partner-invitations', {
      body: { partner_type: 'supplier', email: 'invitee@partner.test' },
    }),
    201,
  ).invitation;

  // A funded programme, so that a top-up or cancel by a broken check would move money.
  const programmeA = ok(
    await app.request<{ id: string }>('POST', '/v1/subsidies/programmes', {
      body: {
        name: 'Tenancy',
        side: 'partner',
        kind: 'waiver',
        share_bps: 10000,
        budget: { amount: '10.00', currency: 'EUR' },
        cap_per_participant: { amount: '5.00', currency: 'EUR' },
        starts_at: app.clock.now().toISOString(),
        ends_at: new Date(app.clock.now().getTime() + 86_400_000).toISOString(),
      },
    }),
    201,
  );
  ok(
    await app.request('POST', `/v1/subsidies/programmes/${programmeA.id}/activate`, {
      headers: { 'idempotency-key': 'tenancy-programme' },
    }),
  );

  // Payments: customer A's captured payment, a chargeback on it, and a reconciliation report.
  const paymentA = ok(
    await app.request<{ id: string; reference: string }>('POST', '/v1/payments', {
      body: {
        order_ref: 'tenancy-order',
        customer_id: customerA.id,
        payment_method: 'pm_card_ok',
        amount: { amount: '20.00', currency: 'EUR' },
      },
      headers: { 'idempotency-key': 'tenancy-payment' },
    }),
    202,
  );
  const payments = app.baton.services.payments;
  await payments.resume(app.baton.database.db, { kind: 'system', name: 'tenancy' }, paymentA.id);
  const simulated = payments.provider as SimulatedProvider;
  simulated.chargeback(`${paymentA.reference}:capture`, 500n, 'tenancy-chargeback');
  await simulated.flush();
  const systemCtx = {
    db: app.baton.database.db,
    actor: { kind: 'system', name: 'tenancy' } as const,
    now: app.clock.now(),
    requestId: null,
    ip: null,
  };
  const chargebackA = (await payments.listChargebacks(systemCtx, { limit: 1 })).items[0] as { id: string };
  // A refund of it the provider failed, owed to customer A: what a retry would send again.
  await runInTransaction(app.baton.database.db, (tx) =>
    app.baton.services.ledger.post(
      { ...systemCtx, db: tx },
      {
        idempotencyKey: 'tenancy-refund-move',
        cause: { kind: 'order', id: 'tenancy-order' },
        entries: [
          {
            account: { purpose: 'customer_escrow', ownerId: 'tenancy-order', currency: 'EUR' },
            direction: 'debit',
            amountMinor: 200n,
          },
          {
            account: { purpose: 'refunds_in_transit', ownerId: PLATFORM_OWNER, currency: 'EUR' },
            direction: 'credit',
            amountMinor: 200n,
          },
        ],
      },
    ),
  );
  simulated.failNext('refund', 'processing_error');
  const refundA = await payments.refund(app.baton.database.db, systemCtx.actor, {
    paymentId: paymentA.id,
    amountMinor: 200n,
    reference: 'tenancy-refund',
  });
  expect(refundA.status).toBe('failed');
  // Its retry route is probed through the payment's id: the refund is part of the payment.
  PART_PARAMS.refund_id = refundA.id;
  const reportA = await payments.reconcile(app.baton.database.db, { since: new Date(0) });

  // Fulfilment: an offering, customer A's quote and paid order, and the work
  // order it sends partner C (offered, so that a broken check would let another partner accept it).
  ok(
    await app.request('POST', '/v1/offerings', {
      body: {
        key: 'supplier',
        name: 'Supply',
        unit: 'piece',
        currency: 'EUR',
        pricing: { kind: 'cost_plus', margin_bps: 1000 },
        regions: ['eu-west'],
        steps: [{ key: 'supply', name: 'Supply', capability: 'supplier' }],
        quantity_max: 10,
      },
    }),
    201,
  );
  // Partner C does the work: partners A and B keep the states the other cases need.
  const partnerC = ok(
    await app.request<{ partner: { id: string }; api_key: NewKey }>('POST', '/v1/partner-applications', {
      key: null,
      body: {
        partner_type: 'supplier',
        name: 'charlie',
        email: 'charlie@partner.test',
        regions: ['eu-west'],
        accept_rules_version: 1,
      },
    }),
    201,
  );
  const partnerCKey = partnerC.api_key.secret;
  for (const to of ['under_review', 'active']) {
    ok(
      await app.request('POST', `/v1/partners/${partnerC.partner.id}/transitions`, {
        body: { to, reason: 'Ready to take work' },
      }),
    );
  }
  const certificationC = ok(
    await app.request<{ id: string }>('POST', `/v1/partners/${partnerC.partner.id}/certifications`, {
      key: partnerCKey,
      body: { program: 'supplier', evidence: { licence: 'L-3' } },
    }),
    201,
  );
  ok(await app.request('POST', `/v1/certifications/${certificationC.id}/grant`, { body: {} }));
  ok(
    await app.request('POST', `/v1/partners/${partnerC.partner.id}/offers`, {
      key: partnerCKey,
      body: { ...OFFER, status: 'active' },
    }),
    201,
  );
  await app.baton.services.matching.sync();
  /** Customer A's quote of one `supplier`, ordered and paid. */
  async function paidOrderOfA(idempotencyKey: string) {
    const quote = ok(
      await app.request<{ id: string }>('POST', '/v1/quotes', {
        key: customerA.key,
        body: {
          offering: 'supplier',
          quantity: 1,
          region: 'eu-west',
          deadline: new Date(app.clock.now().getTime() + 3 * 86_400_000).toISOString(),
        },
      }),
      201,
    );
    const order = ok(
      await app.request<{ id: string }>('POST', '/v1/orders', {
        key: customerA.key,
        body: { quote_id: quote.id, payment_method: 'pm_card_ok' },
        headers: { 'idempotency-key': idempotencyKey },
      }),
      201,
    );
    await app.baton.jobs.runQueued(RESUME_PAYMENT_JOB);
    return { quote, order };
  }
  const { quote: quoteA, order: orderA } = await paidOrderOfA('tenancy-order-a');
  const workOrderA = ok(
    await app.request<{ data: { id: string; status: string }[] }>(
      'GET',
      `/v1/work-orders?order_id=${orderA.id}`,
      { key: partnerCKey },
    ),
  ).data[0] as { id: string; status: string };
  expect(workOrderA.status).toBe('offered');
  // A second order of customer A, done and confirmed, of which a refund by hand waits for approval.
  const { order: doneOrderA } = await paidOrderOfA('tenancy-order-a-done');
  const doneWorkOrderA = ok(
    await app.request<{ data: { id: string }[] }>('GET', `/v1/work-orders?order_id=${doneOrderA.id}`, {
      key: partnerCKey,
    }),
  ).data[0] as { id: string };
  for (const action of ['accept', 'start', 'deliver']) {
    ok(
      await app.request('POST', `/v1/work-orders/${doneWorkOrderA.id}/${action}`, {
        key: partnerCKey,
        body: {},
      }),
    );
  }
  ok(
    await app.request('POST', `/v1/orders/${doneOrderA.id}/legs/supply/confirm`, {
      key: customerA.key,
      body: {},
      headers: { 'idempotency-key': 'tenancy-confirm-a-done' },
    }),
  );
  ok(await app.request('PUT', '/v1/refund-thresholds/EUR', { body: { approval_above: '0.50' } }));
  const refundRequestA = ok(
    await app.request<{ id: string }>('POST', `/v1/orders/${doneOrderA.id}/refund-requests`, {
      body: { amount: { amount: '0.75', currency: 'EUR' }, reason: 'Late delivery' },
      headers: { 'idempotency-key': 'tenancy-refund-request-a' },
    }),
    201,
  );
  // Money for partner A by hand, waiting for a second operator.
  ok(await app.request('PUT', '/v1/ledger/approval-thresholds/EUR', { body: { approval_above: '1.00' } }));
  const postingRequestA = ok(
    await app.request<{ id: string }>('POST', '/v1/ledger/posting-requests', {
      body: {
        action: 'post',
        reason: 'Goodwill',
        transaction: {
          idempotency_key: 'tenancy-posting-request',
          cause: { kind: 'adjustment', id: 'tenancy-posting-request' },
          entries: [
            {
              account: { purpose: 'operator_adjustments', owner_id: 'platform' },
              direction: 'debit',
              amount: { amount: '50.00', currency: 'EUR' },
            },
            { account_id: payableA, direction: 'credit', amount: { amount: '50.00', currency: 'EUR' } },
          ],
        },
      },
      headers: { 'idempotency-key': 'tenancy-posting-request-a' },
    }),
    201,
  );

  const attackerKeys: Readonly<Record<Attacker, string>> = {
    'partner owner': partnerB.ownerKey,
    'partner member': partnerB.memberKey,
    customer: customerB.key,
  };

  /** The other tenants' objects each path parameter is probed with, and a well-formed id of none. */
  const targets: Readonly<Record<string, { readonly victims: readonly string[]; readonly missing: string }>> =
    {
      partner_id: { victims: [partnerA.id], missing: newId('ptn') },
      customer_id: { victims: [customerA.id], missing: newId('cus') },
      user_id: {
        victims: [partnerA.ownerUserId, partnerA.memberUserId, customerA.userId],
        missing: newId('usr'),
      },
      api_key_id: {
        victims: [partnerA.ownerKeyId, partnerA.memberKeyId, customerA.keyId],
        missing: newId('key'),
      },
      invitation_id: { victims: [invitation.id], missing: newId('inv') },
      certification_id: { victims: [certificationA.id], missing: newId('crt') },
      offer_id: { victims: [offerA.id], missing: newId('off') },
      reservation_id: { victims: [reservationA.id], missing: newId('rsv') },
      key: { victims: ['supplier'], missing: 'no-such-type' },
      capability: { victims: ['supplier'], missing: 'no-such-capability' },
      account_id: { victims: [payableA], missing: newId('acc') },
      transaction_id: { victims: [adjustmentA.id], missing: newId('txn') },
      fee_version_id: { victims: [feeVersion.id], missing: newId('fsv') },
      subscription_id: { victims: [subscriptionA.id], missing: newId('sub') },
      payout_id: { victims: payoutRunA.payouts.map((payout) => payout.id), missing: newId('po') },
      payout_batch_id: { victims: [payoutRunA.batch.id], missing: newId('pob') },
      programme_id: { victims: [programmeA.id], missing: newId('sbp') },
      payment_id: { victims: [paymentA.id], missing: newId('pay') },
      chargeback_id: { victims: [chargebackA.id], missing: newId('cbk') },
      report_id: { victims: [reportA.id], missing: newId('rec') },
      quote_id: { victims: [quoteA.id], missing: newId('quo') },
      order_id: { victims: [orderA.id], missing: newId('ord') },
      work_order_id: { victims: [workOrderA.id], missing: newId('wko') },
      currency: { victims: ['EUR'], missing: 'XTS' },
      refund_request_id: { victims: [refundRequestA.id], missing: newId('rrq') },
      posting_request_id: { victims: [postingRequestA.id], missing: newId('lpr') },
    };

  const routes = servedRoutes(app.baton.http);
  const withParams = routes.filter((route) => /[:*]/.test(route.url));
  /** HEAD routes are Fastify's copies of GET routes and share their case. */
  const caseKey = (route: ServedRoute) => `${route.method === 'HEAD' ? 'GET' : route.method} ${route.url}`;

  it('has a case for every registered route with a path parameter, and no case for a route that is gone', () => {
    expect(routes.length).toBeGreaterThan(20);
    const uncovered = [...new Set(withParams.map(caseKey))].filter((key) => !(key in CASES));
    expect(uncovered, `Routes with a path parameter but no case in CASES: ${uncovered.join(', ')}`).toEqual(
      [],
    );
    const registered = new Set(withParams.map(caseKey));
    const stale = Object.keys(CASES).filter((key) => !registered.has(key));
    expect(stale, `Cases for routes that are not registered: ${stale.join(', ')}`).toEqual([]);
  });

  it("lets each tenant reach its own objects, so the attackers' probes below aim at real ones", async () => {
    expect(ok(await app.request('GET', `/v1/partners/${partnerA.id}`, { key: partnerA.memberKey })).id).toBe(
      partnerA.id,
    );
    expect(ok(await app.request('GET', `/v1/customers/${customerA.id}`, { key: customerA.key })).id).toBe(
      customerA.id,
    );
    for (const userId of [partnerA.ownerUserId, partnerA.memberUserId]) {
      expect(ok(await app.request('GET', `/v1/users/${userId}`, { key: partnerA.ownerKey })).id).toBe(userId);
    }
    expect(ok(await app.request('GET', `/v1/users/${customerA.userId}`, { key: customerA.key })).id).toBe(
      customerA.userId,
    );
    const keyIds = async (key: string) =>
      ok(await app.request<{ data: { id: string }[] }>('GET', '/v1/api-keys', { key })).data.map(
        (apiKey) => apiKey.id,
      );
    expect(await keyIds(partnerA.ownerKey)).toEqual(
      expect.arrayContaining([partnerA.ownerKeyId, partnerA.memberKeyId]),
    );
    expect(await keyIds(customerA.key)).toEqual([customerA.keyId]);
    const invitations = ok(await app.request<{ data: { id: string }[] }>('GET', '/v1/partner-invitations'));
    expect(invitations.data.map((item) => item.id)).toContain(invitation.id);
  });

  it('answers the public routes with parameters alike to every tenant and to no key at all', async () => {
    const publicRoutes = Object.entries(CASES).filter(([, routeCase]) => routeCase.kind === 'public');
    expect(publicRoutes.length).toBeGreaterThan(0);
    for (const [key] of publicRoutes) {
      const url = (key.split(' ')[1] ?? '').replace(':key', 'supplier').replace(':version', '1');
      const anonymous = await app.request('GET', url, { key: null });
      expect(anonymous.status, `${key}: ${anonymous.text}`).toBe(200);
      for (const attacker of ATTACKERS) {
        const answer = await app.request('GET', url, { key: attackerKeys[attacker] });
        expect(comparable(answer, ''), `${key} as ${attacker}`).toEqual(comparable(anonymous, ''));
      }
    }
  });

  it('answers the shared routes alike to every tenant and to the operator', async () => {
    const sharedRoutes = Object.entries(CASES).filter(([, routeCase]) => routeCase.kind === 'shared');
    expect(sharedRoutes.length).toBeGreaterThan(0);
    for (const [key] of sharedRoutes) {
      const url = (key.split(' ')[1] ?? '').replace(':key', 'supplier').replace(':version', '1');
      const operator = await app.request('GET', url);
      expect(operator.status, `${key}: ${operator.text}`).toBe(200);
      for (const attacker of ATTACKERS) {
        const answer = await app.request('GET', url, { key: attackerKeys[attacker] });
        expect(comparable(answer, ''), `${key} as ${attacker}`).toEqual(comparable(operator, ''));
      }
    }
  });

  let probes = 0;
  for (const [key, routeCase] of Object.entries(CASES)) {
    if (routeCase.kind !== 'scoped') continue;
    it(`${key}: another tenant's object answers as a missing one, and nothing changes`, async () => {
      const [method = '', pattern = ''] = key.split(' ');
      const url = Object.entries(PART_PARAMS).reduce(
        (path, [name, value]) => path.replace(`:${name}`, value),
        pattern,
      );
      const params = [...url.matchAll(/:([a-z_]+)/g)].map((match) => match[1] ?? '');
      expect(params, `${key} is probed through exactly one path parameter`).toHaveLength(1);
      const target = targets[params[0] ?? ''];
      if (!target) throw new Error(`No objects to probe the parameter :${params[0]} of ${key} with`);
      const methods = method === 'GET' ? ['GET', 'HEAD'] : [method];
      for (const victim of target.victims) {
        for (const attacker of ATTACKERS) {
          for (const probeMethod of methods) {
            const ask = (id: string) => {
              const n = ++probes;
              return app.request(probeMethod, url.replace(`:${params[0]}`, id), {
                key: attackerKeys[attacker],
                ...(routeCase.body ? { body: routeCase.body(n) } : {}),
                ...(routeCase.headers ? { headers: routeCase.headers(n) } : {}),
              });
            };
            const label = `${attacker}: ${probeMethod} ${url} with ${victim}`;
            const before = await snapshot(db);
            const audited = await auditSeq(db);
            const theirs = await ask(victim);
            const missing = await ask(target.missing);
            expect(theirs.status, `${label}: ${theirs.text}`).toBe(routeCase.expect[attacker]);
            expect(comparable(theirs, victim), label).toEqual(comparable(missing, target.missing));
            expect(await snapshot(db), `${label} changed the database`).toEqual(before);
            const records = await sql<{ outcome: string }>`
              select outcome from audit_records where seq > ${audited}::bigint`.execute(db);
            expect(
              records.rows.filter((record) => record.outcome === 'succeeded'),
              `${label} was audited as a success`,
            ).toEqual([]);
          }
        }
      }
    });
  }

  it('treats ids in bodies and queries like ids in paths', async () => {
    const before = await snapshot(db);
    const missingUser = newId('usr');
    for (const attacker of ATTACKERS) {
      const key = attackerKeys[attacker];
      for (const victim of [partnerA.ownerUserId, customerA.userId]) {
        const label = `${attacker} with ${victim}`;
        // A key for another tenant's user would be that tenant's key in the attacker's hands.
        const create = (userId: string) =>
          app.request('POST', '/v1/api-keys', { key, body: { name: 'stolen', user_id: userId } });
        const theirs = await create(victim);
        expect(theirs.status, `${label}: ${theirs.text}`).toBe(404);
        expect(comparable(theirs, victim), label).toEqual(comparable(await create(missingUser), missingUser));

        const list = (userId: string) => app.request('GET', `/v1/api-keys?user_id=${userId}`, { key });
        const listed = await list(victim);
        expect(listed.body, label).toEqual({ data: [], has_more: false, next_after: null });
        expect(comparable(listed, victim), label).toEqual(comparable(await list(missingUser), missingUser));
      }
    }
    expect(await snapshot(db)).toEqual(before);
  });

  it("never shows a tenant another tenant's events, nor lets it resume after one", async () => {
    const theirs = await db
      .selectFrom('events')
      .select(['id', 'subject_id'])
      .where('subject_id', 'in', [partnerA.id, partnerA.ownerUserId, partnerA.memberKeyId, customerA.id])
      .execute();
    expect(theirs.length).toBeGreaterThan(0);
    const theirSubjects = new Set([
      partnerA.id,
      partnerA.ownerUserId,
      partnerA.memberUserId,
      partnerA.ownerKeyId,
      partnerA.memberKeyId,
      customerA.id,
      customerA.userId,
      customerA.keyId,
    ]);
    const missingEvent = newId('evt');
    for (const attacker of ATTACKERS) {
      const key = attackerKeys[attacker];
      const feed = ok(
        await app.request<{ data: { subject_id: string }[]; has_more: boolean }>(
          'GET',
          `/v1/events?limit=${EVENT_PAGE_MAX}`,
          { key },
        ),
      );
      expect(feed.data.length, attacker).toBeGreaterThan(0);
      expect(feed.has_more, attacker).toBe(false);
      expect(
        feed.data.filter((event) => theirSubjects.has(event.subject_id)),
        attacker,
      ).toEqual([]);
      for (const event of theirs) {
        const after = (id: string) => app.request('GET', `/v1/events?after=${id}`, { key });
        const resumed = await after(event.id);
        expect(resumed.status, `${attacker} after ${event.id}: ${resumed.text}`).toBe(400);
        expect(comparable(resumed, event.id)).toEqual(comparable(await after(missingEvent), missingEvent));
      }
    }
  });
});
