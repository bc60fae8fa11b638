import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../config.js';
import { createLogger } from '../../main.js';
import { storedCardNumbers } from '../../testing/stored-card-numbers.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import { createTestDatabase, TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { recordAudit } from '../audit/audit-log.js';
import { ManualClock } from '../clock.js';
import { conflict } from '../errors.js';
import { createHttpApp } from './app.js';
import { defineRoute, type Route } from './route.js';

const REQUEST_ID = /^req_[0-9a-z]{26}$/;
const PROBLEM_JSON = 'application/problem+json; charset=utf-8';
const PROFILE_SCHEMA = { type: 'object', properties: { vat_number: { type: 'string' } } };
/** Identical requests sent at once with one key (L1); `npm run soak -- stampede` sends 1,000. */
const STAMPEDE_REQUESTS = Number(process.env.STAMPEDE_REQUESTS ?? 100);

/** Asserts `response` is a problem document with `code`, carrying the request's own id. */
function expectProblem(response: ApiResponse, status: number, code: string): void {
  expect(response.status, response.text).toBe(status);
  expect(response.headers['content-type']).toBe(PROBLEM_JSON);
  expect(response.headers['x-request-id']).toMatch(REQUEST_ID);
  expect(response.body).toMatchObject({
    type: `urn:baton:problem:${code}`,
    title: expect.any(String),
    status,
    code,
    request_id: response.headers['x-request-id'],
  });
  expectNoInternals(response.text);
}

/** Asserts a response body shows neither a stack trace nor SQL. */
function expectNoInternals(text: string): void {
  expect(text).not.toMatch(/\bat .*:\d+:\d+/);
  expect(text).not.toMatch(/node_modules|\.[jt]s:\d+/);
  expect(text).not.toMatch(/"stack"/);
  expect(text).not.toMatch(/\b(select|insert into|update|delete from)\b.*\b(from|values|set|where)\b/i);
}

let typeCount = 0;
/** A partner type body with a key no other test uses. */
function newPartnerType(overrides: Record<string, unknown> = {}) {
  return { key: `type-${++typeCount}`, name: 'Courier', profile_schema: PROFILE_SCHEMA, ...overrides };
}

describe('HTTP conventions', async () => {
  const app = await createTestApp();

  describe('request ids', () => {
    it('puts a fresh request id on every response: successes, errors and unknown routes', async () => {
      const responses = await Promise.all([
        app.request('GET', '/healthz', { key: null }),
        app.request('GET', '/v1/me'),
        app.request('GET', '/v1/me', { key: null }),
        app.request('POST', '/v1/partner-types', { body: { key: 'x' } }),
        app.request('GET', '/v1/no-such-thing'),
        app.request('GET', '/no-such-thing', { key: null }),
      ]);
      expect(responses.map((response) => response.status)).toEqual([200, 200, 401, 400, 404, 404]);
      const ids = responses.map((response) => response.headers['x-request-id']);
      for (const id of ids) expect(id).toMatch(REQUEST_ID);
      expect(new Set(ids).size).toBe(ids.length);
    });

    it('ignores a request id sent by the caller', async () => {
      const response = await app.request('GET', '/healthz', { headers: { 'x-request-id': 'req_forged' } });
      expect(response.headers['x-request-id']).toMatch(REQUEST_ID);
      expect(response.headers['x-request-id']).not.toBe('req_forged');
    });
  });

  describe('problem documents', () => {
    it('answers an unknown route with 404 request.route_not_found', async () => {
      expectProblem(await app.request('GET', '/v1/no-such-thing'), 404, 'request.route_not_found');
      expectProblem(
        await app.request('DELETE', '/v1/partner-types', { key: null }),
        404,
        'request.route_not_found',
      );
    });

    it('answers malformed or empty JSON with 400 request.malformed_json', async () => {
      const headers = { 'content-type': 'application/json' };
      expectProblem(
        await app.request('POST', '/v1/partner-types', { body: '{"key": "courier", ', headers }),
        400,
        'request.malformed_json',
      );
      expectProblem(
        await app.request('POST', '/v1/partner-types', { body: '', headers }),
        400,
        'request.malformed_json',
      );
    });

    it('answers a body in another format than JSON with 415 request.unsupported_media_type', async () => {
      const partnerType = newPartnerType();
      for (const contentType of ['application/xml', 'text/plain', 'application/x-www-form-urlencoded']) {
        const response = await app.request('POST', '/v1/partner-types', {
          body: JSON.stringify(partnerType),
          headers: { 'content-type': contentType },
        });
        expectProblem(response, 415, 'request.unsupported_media_type');
      }
      const untyped = await app.request('POST', '/v1/partner-types', { body: JSON.stringify(partnerType) });
      expectProblem(untyped, 415, 'request.unsupported_media_type');
      expect((await app.request('GET', `/v1/partner-types/${partnerType.key}`)).status).toBe(404);
    });

    it('refuses an unknown field (mass assignment) with 400 request.invalid naming it, and stores nothing', async () => {
      const body = newPartnerType({ created_at: '2020-01-01T00:00:00Z', 'owner/id': 'usr_x' });
      const response = await app.request('POST', '/v1/partner-types', { body });
      expectProblem(response, 400, 'request.invalid');
      expect(response.body.errors).toEqual([
        {
          path: '/body/created_at',
          rule: 'unrecognized_keys',
          message: expect.stringContaining('created_at'),
        },
        { path: '/body/owner~1id', rule: 'unrecognized_keys', message: expect.stringContaining('owner/id') },
      ]);
      expectProblem(
        await app.request('GET', `/v1/partner-types/${body.key}`),
        404,
        'participants.partner_type_not_found',
      );
    });

    it('refuses a body that carries __proto__ (prototype pollution) as malformed JSON', async () => {
      const partnerType = newPartnerType();
      const body = JSON.stringify(partnerType).replace(/}$/, ',"__proto__":{"is_admin":true}}');
      const response = await app.request('POST', '/v1/partner-types', {
        body,
        headers: { 'content-type': 'application/json' },
      });
      expectProblem(response, 400, 'request.malformed_json');
      expect((await app.request('GET', `/v1/partner-types/${partnerType.key}`)).status).toBe(404);
    });

    it('lists every field that breaks the schema, each with its path and rule', async () => {
      const response = await app.request('POST', '/v1/partner-types', {
        body: { key: 'Not A Key', name: '', description: 7 },
      });
      expectProblem(response, 400, 'request.invalid');
      const errors = response.body.errors as { path: string; rule: string; message: string }[];
      expect(errors.map((error) => error.path).sort()).toEqual([
        '/body/description',
        '/body/key',
        '/body/name',
        '/body/profile_schema',
      ]);
      for (const error of errors) {
        expect(error.rule).toEqual(expect.any(String));
        expect(error.message).toEqual(expect.any(String));
      }
    });

    it('refuses text the database cannot store (NUL, unpaired surrogates) with 400 naming where, and stores nothing', async () => {
      // NUL in a value, in a nested key of a JSON document, and an unpaired surrogate.
      const body = newPartnerType({
        name: 'Fabric\u0000 mill',
        profile_schema: { type: 'object', properties: { 'a\u0000b': { type: 'string' } } },
        description: 'half a pair: \ud83d',
      });
      const response = await app.request('POST', '/v1/partner-types', { body });
      expectProblem(response, 400, 'request.invalid');
      expect(response.body.errors).toEqual([
        { path: '/body/name', rule: 'text', message: expect.stringContaining('NUL') },
        {
          path: '/body/profile_schema/properties/a\u0000b',
          rule: 'text',
          message: expect.stringContaining('NUL'),
        },
        { path: '/body/description', rule: 'text', message: expect.stringContaining('unpaired surrogate') },
      ]);
      expect((await app.request('GET', `/v1/partner-types/${body.key}`)).status).toBe(404);
      // A pair is a character like any other.
      const paired = newPartnerType({ name: 'Fabric mill \ud83e\uddf5' });
      expect((await app.request('POST', '/v1/partner-types', { body: paired })).status).toBe(201);

      const query = await app.request('GET', '/v1/partners?q=mill%00');
      expectProblem(query, 400, 'request.invalid');
      expect(query.body.errors).toEqual([expect.objectContaining({ path: '/querystring/q', rule: 'text' })]);
      const params = await app.request('GET', '/v1/partner-types/mill%00');
      expectProblem(params, 400, 'request.invalid');
      expect(params.body.errors).toEqual([expect.objectContaining({ path: '/params/key', rule: 'text' })]);
      // Also where the caller may not go, whose refusal is audited with the path's id (found by the fuzz).
      const denied = await app.request('POST', '/v1/partners/ptn%00x/rules-acceptances', {
        body: { version: 1 },
      });
      expectProblem(denied, 400, 'request.invalid');
    });

    it('answers a URL the router cannot read with a problem too: bad percent-encoding, an overlong part', async () => {
      const malformed = await app.request('GET', '/v1/partner-types/%ED%A0%BD');
      expectProblem(malformed, 400, 'request.malformed_url');
      expect(malformed.headers['x-request-id']).toBe(malformed.body.request_id);
      const long = await app.request('GET', `/v1/partner-types/${'k'.repeat(201)}`);
      expectProblem(long, 414, 'request.url_too_long');
    });

    it('checks query strings and path parameters against their schemas too', async () => {
      const query = await app.request('GET', '/v1/operator-users?limit=1000');
      expectProblem(query, 400, 'request.invalid');
      expect(query.body.errors).toEqual([expect.objectContaining({ path: '/querystring/limit' })]);
      const params = await app.request('GET', '/v1/users/not-an-id');
      expectProblem(params, 400, 'request.invalid');
      expect(params.body.errors).toEqual([expect.objectContaining({ path: '/params/user_id' })]);
    });
  });

  describe('authentication and roles', () => {
    it('asks for a key on a protected route: 401 auth.key_required with WWW-Authenticate: Bearer', async () => {
      const response = await app.request('GET', '/v1/me', { key: null });
      expectProblem(response, 401, 'auth.key_required');
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });

    it('refuses an unknown key with 401 auth.invalid_key', async () => {
      for (const key of [`baton_sk_${'x'.repeat(40)}`, 'not-a-baton-key']) {
        const response = await app.request('GET', '/v1/me', { key });
        expectProblem(response, 401, 'auth.invalid_key');
        expect(response.headers['www-authenticate']).toBe('Bearer');
      }
    });

    it('refuses a malformed Authorization header with 401 auth.malformed_authorization', async () => {
      for (const authorization of [
        `Basic ${btoa('admin:admin')}`,
        'Bearer',
        `Bearer ${app.adminKey} x`,
        app.adminKey,
      ]) {
        const response = await app.request('GET', '/v1/me', { key: null, headers: { authorization } });
        expectProblem(response, 401, 'auth.malformed_authorization');
        expect(response.headers['www-authenticate']).toBe('Bearer');
      }
    });

    it('refuses a role the route does not list with 403 auth.role_not_allowed and audits the attempt', async () => {
      const support = await app.operatorKey('support');
      const body = newPartnerType();
      const response = await app.request('POST', '/v1/partner-types', { key: support, body });
      expectProblem(response, 403, 'auth.role_not_allowed');
      expect((await app.request('GET', `/v1/partner-types/${body.key}`)).status).toBe(404);
      const audit = await app.request('GET', '/v1/audit-records?action=participants.partner_type.create');
      expect(audit.body.data).toContainEqual(
        expect.objectContaining({
          outcome: 'denied',
          error_code: 'auth.role_not_allowed',
          request_id: response.headers['x-request-id'],
        }),
      );
    });

    it('lets a key call what its role allows', async () => {
      const support = await app.operatorKey('support');
      const me = await app.request('GET', '/v1/me', { key: support });
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ object: 'user', tenant_kind: 'operator', role: 'support' });
    });
  });

  describe('platform endpoints', () => {
    it('answers GET /healthz with 200 ok without a key', async () => {
      const response = await app.request('GET', '/healthz', { key: null });
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ status: 'ok', database: TEST_DATABASE_KIND });
    });

    it('publishes an OpenAPI 3.1 document with named schemas and a summary for every operation', async () => {
      const response = await app.request('GET', '/openapi.json', { key: null });
      expect(response.status).toBe(200);
      const document = response.body as {
        openapi: string;
        components: { schemas: Record<string, unknown> };
        paths: Record<string, Record<string, { summary?: string }>>;
      };
      expect(document.openapi).toBe('3.1.0');
      expect(Object.keys(document.components.schemas)).toEqual(
        expect.arrayContaining(['Partner', 'PartnerType', 'Problem', 'User', 'ApiKey']),
      );
      const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
        Object.entries(methods).map(([method, operation]) => ({ path, method, summary: operation.summary })),
      );
      expect(operations.length).toBeGreaterThan(20);
      expect(operations.filter((operation) => !operation.summary)).toEqual([]);
      expect(Object.keys(document.paths)).not.toContain('/openapi.json');
      expect(document.paths['/v1/partner-types']?.post).toBeDefined();
    });

    it('serves the API reference as HTML without a key', async () => {
      const response = await app.request('GET', '/docs/', { key: null });
      expect(response.status).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/html/);
    });
  });
});

describe('payment card numbers', async () => {
  const logged: string[] = [];
  const app = await createTestApp({
    logger: createLogger({ logLevel: 'info' }, { write: (line: string) => void logged.push(line) }),
  });
  const cards = /4111\D?1111\D?1111\D?1111|4242\D?4242\D?4242\D?4242|3782\D?822463\D?10005/;

  it('refuses a card number anywhere in a request with 400 naming where, never repeating it, and stores nothing', async () => {
    const body = newPartnerType({
      description: 'Paid with 4111 1111 1111 1111, thanks',
      profile_schema: {
        type: 'object',
        properties: {
          card: { type: 'string', default: '3782-822463-10005' },
          n: { const: 4242424242424242 },
        },
      },
    });
    const response = await app.request('POST', '/v1/partner-types', { body });
    expectProblem(response, 400, 'request.invalid');
    const errors = response.body.errors as { path: string }[];
    expect(errors.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: '/body/description', rule: 'card_number', message: expect.stringContaining('card number') },
      {
        path: '/body/profile_schema/properties/card/default',
        rule: 'card_number',
        message: expect.any(String),
      },
      { path: '/body/profile_schema/properties/n/const', rule: 'card_number', message: expect.any(String) },
    ]);
    expect(response.text).not.toMatch(cards);
    expect((await app.request('GET', `/v1/partner-types/${body.key}`)).status).toBe(404);

    const query = await app.request('GET', '/v1/partners?q=4111+1111+1111+1111');
    expectProblem(query, 400, 'request.invalid');
    expect(query.body.errors).toEqual([
      expect.objectContaining({ path: '/querystring/q', rule: 'card_number' }),
    ]);
    const params = await app.request('GET', '/v1/partner-types/4242424242424242');
    expectProblem(params, 400, 'request.invalid');
    expect(params.body.errors).toEqual([
      expect.objectContaining({ path: '/params/key', rule: 'card_number' }),
    ]);
    for (const refused of [query, params]) expect(refused.text).not.toMatch(cards);

    // Idempotency keys are stored: one holding a card number is refused, and nothing is done.
    const keyed = newPartnerType();
    const withKey = await app.request('POST', '/v1/partner-types', {
      body: keyed,
      headers: { 'idempotency-key': 'order-4242-4242-4242-4242' },
    });
    expectProblem(withKey, 400, 'idempotency.invalid_key');
    expect(withKey.text).not.toMatch(cards);
    expect((await app.request('GET', `/v1/partner-types/${keyed.key}`)).status).toBe(404);
    // Nor did the refusals' audit records or anything else keep one.
    expect(await storedCardNumbers(app.baton.database.db)).toEqual([]);
  });

  it('takes numbers that only look like card numbers: a wrong check digit, ids, digests, phone numbers', async () => {
    const body = newPartnerType({
      description:
        'Ref 4111 1111 1111 1112, digest e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4, call +4915112345678',
    });
    expect((await app.request('POST', '/v1/partner-types', { body })).status).toBe(201);
  });

  it('keeps card numbers out of the logs, also of requests it refuses', () => {
    const log = logged.join('');
    expect(log).toContain('[card number]');
    expect(log).toContain('"url":"/v1/partner-types/[card number]"');
    expect(log).not.toMatch(cards);
  });
});

describe('idempotency', async () => {
  const app = await createTestApp();

  /** A fresh operator user's key, and a way to count the API keys it owns. */
  async function newCaller() {
    const key = await app.operatorKey('ops');
    const countKeys = async () => {
      const list = await app.request<{ data: unknown[] }>('GET', '/v1/api-keys', { key });
      expect(list.status).toBe(200);
      return list.body.data.length;
    };
    return { key, countKeys };
  }

  it('replays the first response byte for byte for the same key and body, and acts once', async () => {
    const caller = await newCaller();
    const send = () =>
      app.request('POST', '/v1/api-keys', {
        key: caller.key,
        body: { name: 'order sync' },
        headers: { 'idempotency-key': 'create-sync-key-1' },
      });
    const first = await send();
    expect(first.status).toBe(201);
    expect(first.headers['idempotency-replayed']).toBeUndefined();
    const second = await send();
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(second.headers['idempotency-replayed']).toBe('true');
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
    expect(await caller.countKeys()).toBe(2); // its first key and the one created here
  });

  it('acts again for the same body without a key', async () => {
    const caller = await newCaller();
    for (let i = 0; i < 2; i++) {
      const response = await app.request('POST', '/v1/api-keys', { key: caller.key, body: { name: 'sync' } });
      expect(response.status).toBe(201);
    }
    expect(await caller.countKeys()).toBe(3);
  });

  it('refuses the same key with a different request: 422 idempotency.key_reused', async () => {
    const caller = await newCaller();
    const headers = { 'idempotency-key': 'reused-key' };
    const first = await app.request('POST', '/v1/api-keys', {
      key: caller.key,
      body: { name: 'a' },
      headers,
    });
    expect(first.status).toBe(201);
    expectProblem(
      await app.request('POST', '/v1/api-keys', { key: caller.key, body: { name: 'b' }, headers }),
      422,
      'idempotency.key_reused',
    );
    expectProblem(
      await app.request('POST', '/v1/customers', {
        key: caller.key,
        body: { kind: 'consumer', name: 'a', email: 'a@customer.test' },
        headers,
      }),
      422,
      'idempotency.key_reused',
    );
    expect(await caller.countKeys()).toBe(2);
  });

  it('treats bodies that differ only in the order of their fields as the same request', async () => {
    const caller = await newCaller();
    const headers = { 'idempotency-key': 'field-order' };
    const first = await app.request('POST', '/v1/api-keys', {
      key: caller.key,
      body: '{"name":"sync","expires_at":"2027-01-01T00:00:00Z"}',
      headers: { ...headers, 'content-type': 'application/json' },
    });
    expect(first.status).toBe(201);
    const second = await app.request('POST', '/v1/api-keys', {
      key: caller.key,
      body: '{"expires_at":"2027-01-01T00:00:00Z","name":"sync"}',
      headers: { ...headers, 'content-type': 'application/json' },
    });
    expect(second.headers['idempotency-replayed']).toBe('true');
    expect(second.text).toBe(first.text);
  });

  it('scopes a key to the caller: another user with the same key and body gets its own object', async () => {
    const alice = await newCaller();
    const bob = await newCaller();
    const send = (key: string) =>
      app.request<{ api_key: { id: string; user_id: string } }>('POST', '/v1/api-keys', {
        key,
        body: { name: 'shared name' },
        headers: { 'idempotency-key': 'same-key-for-both' },
      });
    const fromAlice = await send(alice.key);
    const fromBob = await send(bob.key);
    expect(fromAlice.status).toBe(201);
    expect(fromBob.status).toBe(201);
    expect(fromBob.headers['idempotency-replayed']).toBeUndefined();
    expect(fromBob.body.api_key.id).not.toBe(fromAlice.body.api_key.id);
    expect(fromBob.body.api_key.user_id).not.toBe(fromAlice.body.api_key.user_id);
    const aliceAgain = await send(alice.key);
    expect(aliceAgain.headers['idempotency-replayed']).toBe('true');
    expect(aliceAgain.text).toBe(fromAlice.text);
    expect(await alice.countKeys()).toBe(2);
    expect(await bob.countKeys()).toBe(2);
  });

  it('refuses a key that is too long or not printable ASCII: 400 idempotency.invalid_key', async () => {
    const caller = await newCaller();
    for (const idempotencyKey of ['k'.repeat(256), 'has a space', 'tab\there', '']) {
      const response = await app.request('POST', '/v1/api-keys', {
        key: caller.key,
        body: { name: 'sync' },
        headers: { 'idempotency-key': idempotencyKey },
      });
      expectProblem(response, 400, 'idempotency.invalid_key');
    }
    const longest = await app.request('POST', '/v1/api-keys', {
      key: caller.key,
      body: { name: 'sync' },
      headers: { 'idempotency-key': 'k'.repeat(255) },
    });
    expect(longest.status).toBe(201);
    expect(await caller.countKeys()).toBe(2);
  });

  it('replays a refusal (409 participants.partner_type_exists) for the same key', async () => {
    const body = newPartnerType();
    expect((await app.request('POST', '/v1/partner-types', { body })).status).toBe(201);
    const headers = { 'idempotency-key': 'duplicate-type' };
    const first = await app.request('POST', '/v1/partner-types', { body, headers });
    expectProblem(first, 409, 'participants.partner_type_exists');
    const second = await app.request('POST', '/v1/partner-types', { body, headers });
    expect(second.status).toBe(409);
    expect(second.headers['content-type']).toBe(PROBLEM_JSON);
    expect(second.headers['idempotency-replayed']).toBe('true');
    expect(second.text).toBe(first.text);
  });

  it(`answers ${STAMPEDE_REQUESTS} concurrent identical requests with one effect: the same response or 409 in progress, never a 5xx`, async () => {
    const caller = await newCaller();
    const responses = await Promise.all(
      Array.from({ length: STAMPEDE_REQUESTS }, () =>
        app.request('POST', '/v1/api-keys', {
          key: caller.key,
          body: { name: 'stampede' },
          headers: { 'idempotency-key': 'stampede-1' },
        }),
      ),
    );
    const created = responses.filter((response) => response.status === 201);
    const inProgress = responses.filter((response) => response.status === 409);
    expect(created.length + inProgress.length).toBe(responses.length);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((response) => response.text)).size).toBe(1);
    expect(created.filter((response) => response.headers['idempotency-replayed'] !== 'true')).toHaveLength(1);
    for (const response of inProgress) expectProblem(response, 409, 'idempotency.in_progress');
    expect(await caller.countKeys()).toBe(2);
  });

  it.runIf(TEST_DATABASE_KIND === 'postgres')(
    'answers 409 idempotency.in_progress while another transaction holds the key, and runs once it is free',
    async () => {
      const caller = await newCaller();
      const me = await app.request<{ id: string }>('GET', '/v1/me', { key: caller.key });
      const idempotencyKey = 'held-elsewhere';
      // The lock id the store derives from the scope (the acting user) and the key.
      const lockId = createHash('sha256')
        .update(`${me.body.id}\n${idempotencyKey}`)
        .digest()
        .readBigInt64BE(0);
      const send = () =>
        app.request('POST', '/v1/api-keys', {
          key: caller.key,
          body: { name: 'held' },
          headers: { 'idempotency-key': idempotencyKey },
        });
      const holder = await app.baton.database.pool.connect();
      try {
        await holder.query('select pg_advisory_lock($1::bigint)', [lockId.toString()]);
        expectProblem(await send(), 409, 'idempotency.in_progress');
        expect(await caller.countKeys()).toBe(1);
        await holder.query('select pg_advisory_unlock($1::bigint)', [lockId.toString()]);
      } finally {
        holder.release();
      }
      const after = await send();
      expect(after.status).toBe(201);
      expect(after.headers['idempotency-replayed']).toBeUndefined();
      expect(await caller.countKeys()).toBe(2);
    },
  );

  it('stores a response holding a secret only in encrypted form, and still replays the secret', async () => {
    const idempotencyKey = 'signup-4f1c8a0e-secret-check';
    const send = (ip: string) =>
      app.request<{ api_key: { secret: string } }>('POST', '/v1/customer-signups', {
        key: null,
        ip,
        body: { kind: 'consumer', name: 'Ada', email: 'ada@customer.test' },
        headers: { 'idempotency-key': idempotencyKey },
      });
    const first = await send('198.51.100.7');
    expect(first.status).toBe(201);
    const secret = first.body.api_key.secret;
    expect(secret).toMatch(/^baton_sk_/);

    const { rows } = await sql<{ response: Buffer; row: string }>`
      select response, t::text as row from idempotency_keys t`.execute(app.baton.database.db);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.response.includes(secret)).toBe(false);
      expect(row.response.includes('baton_sk_')).toBe(false);
      expect(row.response.includes('ada@customer.test')).toBe(false);
      expect(row.row).not.toContain(secret);
      expect(row.row).not.toContain(Buffer.from(secret).toString('hex'));
      expect(row.row).not.toContain(idempotencyKey);
      expect(row.row).not.toContain(Buffer.from(idempotencyKey).toString('hex'));
    }

    const replay = await send('198.51.100.7');
    expect(replay.headers['idempotency-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(replay.body.api_key.secret).toBe(secret);

    // Another caller presenting the same key is not shown the secret.
    const stranger = await send('198.51.100.8');
    expectProblem(stranger, 409, 'participants.customer_email_taken');
    expect(stranger.text).not.toContain(secret);
  });
});

describe('limits', async () => {
  const app = await createTestApp({
    config: {
      BATON_RATE_LIMIT_PER_MINUTE: '5',
      BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '2',
      BATON_BODY_LIMIT_BYTES: '2048',
    },
  });

  it('answers the 6th request of a key within a minute with 429 rate_limit.exceeded and Retry-After', async () => {
    const noisy = await app.operatorKey('support');
    const quiet = await app.operatorKey('support');
    for (let i = 0; i < 5; i++) expect((await app.request('GET', '/v1/me', { key: noisy })).status).toBe(200);
    const limited = await app.request('GET', '/v1/me', { key: noisy });
    expectProblem(limited, 429, 'rate_limit.exceeded');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await app.request('GET', '/v1/me', { key: quiet })).status).toBe(200);
  });

  it('counts requests refused for a bad or missing key against the address', async () => {
    const badKey = `baton_sk_${'z'.repeat(40)}`;
    for (let i = 0; i < 5; i++) {
      const key = i % 2 === 0 ? badKey : null;
      expect((await app.request('GET', '/v1/me', { key, ip: '192.0.2.50' })).status).toBe(401);
    }
    expectProblem(
      await app.request('GET', '/v1/me', { key: badKey, ip: '192.0.2.50' }),
      429,
      'rate_limit.exceeded',
    );
    expectProblem(
      await app.request('GET', '/v1/me', { key: badKey, ip: '192.0.2.51' }),
      401,
      'auth.invalid_key',
    );
  });

  it('counts requests refused for the role against the key, and stops auditing them once limited', async () => {
    const support = await app.operatorKey('support');
    const denied = [];
    for (let i = 0; i < 5; i++) {
      denied.push(await app.request('POST', '/v1/partner-types', { key: support, body: newPartnerType() }));
    }
    for (const response of denied) expectProblem(response, 403, 'auth.role_not_allowed');
    const limited = await app.request('POST', '/v1/partner-types', { key: support, body: newPartnerType() });
    expectProblem(limited, 429, 'rate_limit.exceeded');
    const audited = await app.request<{ data: { request_id: string }[] }>(
      'GET',
      '/v1/audit-records?action=participants.partner_type.create&limit=100',
    );
    const requestIds = audited.body.data.map((record) => record.request_id);
    for (const response of denied) expect(requestIds).toContain(response.headers['x-request-id']);
    expect(requestIds).not.toContain(limited.headers['x-request-id']);
  });

  it('limits public sign-ups per address per hour, leaving other addresses alone', async () => {
    const signUp = (ip: string, n: number) =>
      app.request('POST', '/v1/customer-signups', {
        key: null,
        ip,
        body: { kind: 'consumer', name: `Customer ${n}`, email: `customer-${n}@customer.test` },
      });
    expect((await signUp('203.0.113.10', 1)).status).toBe(201);
    expect((await signUp('203.0.113.10', 2)).status).toBe(201);
    const limited = await signUp('203.0.113.10', 3);
    expectProblem(limited, 429, 'rate_limit.exceeded');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await signUp('203.0.113.11', 4)).status).toBe(201);
  });

  it('refuses a body larger than the configured limit with 413 request.body_too_large, and stores nothing', async () => {
    const admin = await app.operatorKey('admin');
    const large = newPartnerType({ description: 'x'.repeat(3000) });
    expectProblem(
      await app.request('POST', '/v1/partner-types', { key: admin, body: large }),
      413,
      'request.body_too_large',
    );
    expect((await app.request('GET', `/v1/partner-types/${large.key}`, { key: admin })).status).toBe(404);
    const small = newPartnerType({ description: 'x'.repeat(1000) });
    expect((await app.request('POST', '/v1/partner-types', { key: admin, body: small })).status).toBe(201);
  });
});

describe('createHttpApp', async () => {
  const database = await createTestDatabase();
  const clock = new ManualClock(new Date('2026-06-01T09:00:00Z'));
  const apps: FastifyInstance[] = [];
  afterAll(async () => {
    for (const app of apps) await app.close();
    await database.close();
  });

  async function build(routes: Route[]): Promise<FastifyInstance> {
    const app = await createHttpApp({
      config: loadConfig({ BATON_LOG_LEVEL: 'silent' }, {}),
      logger: createLogger({ logLevel: 'silent' }),
      db: database.db,
      clock,
      authenticate: async () => null,
      routes,
      version: '0.0.0-test',
    });
    apps.push(app);
    return app;
  }

  const countAudit = async (action: string) => {
    const row = await database.db
      .selectFrom('audit_records')
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .where('action', '=', action)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  };

  const app = await build([
    defineRoute({
      method: 'GET',
      url: '/test/crash',
      summary: 'Crash',
      tags: ['Test'],
      access: 'public',
      response: z.object({}),
      handler: async () => {
        throw new Error('secret internals SELECT password FROM users');
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/test/bad-sql',
      summary: 'Bad SQL',
      tags: ['Test'],
      access: 'public',
      response: z.object({}),
      handler: async (ctx) => {
        await sql`select secret_column from no_such_table`.execute(ctx.db);
        return {};
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/test/write-then-crash',
      summary: 'Write, then crash',
      tags: ['Test'],
      access: 'public',
      status: 201,
      response: z.object({}),
      handler: async (ctx) => {
        await recordAudit(ctx, { action: 'test.crashed_write', targetId: null, outcome: 'succeeded' });
        throw new Error('secret internals SELECT after write');
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/test/write-then-refuse',
      summary: 'Write, then refuse',
      tags: ['Test'],
      access: 'public',
      status: 201,
      response: z.object({}),
      handler: async (ctx) => {
        await recordAudit(ctx, { action: 'test.refused_write', targetId: null, outcome: 'succeeded' });
        throw conflict('test.refused', 'Refused after writing.');
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/test/audited-refuse',
      summary: 'An audited action that writes, then refuses',
      tags: ['Test'],
      access: 'public',
      audit: { action: 'test.audited_action' },
      status: 201,
      response: z.object({}),
      handler: async (ctx) => {
        await recordAudit(ctx, { action: 'test.audited_partial', targetId: null, outcome: 'succeeded' });
        throw conflict('test.refused', 'Refused after writing.');
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/test/search',
      summary: 'A search with a body',
      tags: ['Test'],
      access: 'public',
      readOnly: true,
      response: z.object({ in_transaction: z.boolean() }),
      handler: async (ctx) => ({ in_transaction: ctx.db.isTransaction }),
    }),
  ]);

  const inject = async (method: 'GET' | 'POST', url: string, headers: Record<string, string> = {}) => {
    const response = await app.inject({
      method,
      url,
      headers,
      ...(method === 'POST' ? { payload: {} } : {}),
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      text: response.body,
      body: JSON.parse(response.body) as Record<string, unknown>,
    } satisfies ApiResponse;
  };

  it('answers a bug with an opaque 500 that shows only the request id', async () => {
    const response = await inject('GET', '/test/crash');
    expectProblem(response, 500, 'internal');
    expect(response.text).not.toContain('secret internals');
    expect(response.text).not.toContain('SELECT');
    expect(response.text).not.toContain('password');
  });

  it('does not show a failing query or its error to the caller', async () => {
    const response = await inject('GET', '/test/bad-sql');
    expectProblem(response, 500, 'internal');
    expect(response.text).not.toContain('no_such_table');
    expect(response.text).not.toContain('secret_column');
  });

  it('rolls a crashed write back entirely and does not keep its idempotency key', async () => {
    const headers = { 'idempotency-key': 'crash-once' };
    const first = await inject('POST', '/test/write-then-crash', headers);
    expectProblem(first, 500, 'internal');
    expect(first.text).not.toContain('secret internals');
    const retry = await inject('POST', '/test/write-then-crash', headers);
    expectProblem(retry, 500, 'internal');
    expect(retry.headers['idempotency-replayed']).toBeUndefined();
    expect(await countAudit('test.crashed_write')).toBe(0);
  });

  it("undoes a refused write's partial work but keeps the refusal for replay", async () => {
    const headers = { 'idempotency-key': 'refuse-once' };
    const first = await inject('POST', '/test/write-then-refuse', headers);
    expectProblem(first, 409, 'test.refused');
    const replay = await inject('POST', '/test/write-then-refuse', headers);
    expect(replay.headers['idempotency-replayed']).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(await countAudit('test.refused_write')).toBe(0);
  });

  it('undoes a refused write without a key entirely and answers the refusal each time', async () => {
    const first = await inject('POST', '/test/write-then-refuse');
    expectProblem(first, 409, 'test.refused');
    const again = await inject('POST', '/test/write-then-refuse');
    expectProblem(again, 409, 'test.refused');
    expect(again.headers['idempotency-replayed']).toBeUndefined();
    expect(await countAudit('test.refused_write')).toBe(0);
  });

  it("keeps the audit record of an audited action's refusal, without a key, and undoes its partial work", async () => {
    const response = await inject('POST', '/test/audited-refuse');
    expectProblem(response, 409, 'test.refused');
    const failed = await database.db
      .selectFrom('audit_records')
      .select(['outcome', 'error_code'])
      .where('action', '=', 'test.audited_action')
      .execute();
    expect(failed).toEqual([{ outcome: 'failed', error_code: 'test.refused' }]);
    expect(await countAudit('test.audited_partial')).toBe(0);
  });

  it('runs a read-only POST as a read: no transaction, no stored key, every call answered afresh', async () => {
    const headers = { 'idempotency-key': 'search-once' };
    const first = await inject('POST', '/test/search', headers);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ in_transaction: false });
    const second = await inject('POST', '/test/search', headers);
    expect(second.headers['idempotency-replayed']).toBeUndefined();
  });

  it('refuses to build an app with a route that does not declare who may call it', async () => {
    const unguarded = defineRoute({
      method: 'GET',
      url: '/test/unguarded',
      summary: 'Unguarded',
      tags: ['Test'],
      access: undefined as unknown as 'public',
      response: z.object({}),
      handler: async () => ({}),
    });
    await expect(build([unguarded])).rejects.toThrow('Route GET /test/unguarded declares no access');
  });
});
