import fc from 'fast-check';
import { generateSync, type JsonSchema } from 'json-schema-faker';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { verifyLedger } from './modules/ledger/index.js';
import { createFulfilmentFixture, type OrderBody, type QuoteBody } from './testing/fulfilment-fixture.js';
import { servedRoutes } from './testing/served-routes.js';
import { storedCardNumbers } from './testing/stored-card-numbers.js';
import { TEST_DATABASE_KIND } from './testing/test-database.js';

/*
 * Schema fuzz (B1): every operation the OpenAPI document describes gets requests generated from
 * its own description (json-schema-faker, seeded by fast-check), sent as they are and broken the
 * ways clients break them: a field dropped, added, of another type, text the database cannot
 * store, extreme numbers, bodies that are not JSON or not objects, parameters of any shape; ids
 * in them name real objects at times, and the caller is one the operation lets in. Not
 * one may be answered with a 5xx (an answer that did not match its documented schema would be
 * one: the serializer checks), every refusal is a problem with a stable code, no answer carries
 * a stack trace or database text, and the books balance afterwards. `FUZZ_RUNS_PER_OPERATION`
 * (12 here) and `FUZZ_SEED` size and vary a run; `FUZZ_RUNS_PER_FAMILY` instead shares that many
 * requests among the operations of each endpoint family (an OpenAPI tag), as RELIABILITY.md's full
 * size of 10,000 per family asks (`npm run soak -- fuzz`).
 */
const RUNS_PER_OPERATION = Number(process.env.FUZZ_RUNS_PER_OPERATION ?? 12);
const RUNS_PER_FAMILY =
  process.env.FUZZ_RUNS_PER_FAMILY === undefined ? null : Number(process.env.FUZZ_RUNS_PER_FAMILY);
const SEED = Number(process.env.FUZZ_SEED ?? 20261121);

interface Parameter {
  readonly in: 'path' | 'query' | 'header';
  readonly name: string;
  readonly required?: boolean;
  readonly schema: JsonSchema;
}
interface Operation {
  readonly tags?: string[];
  readonly parameters?: Parameter[];
  readonly requestBody?: { content: Record<string, { schema: JsonSchema }> };
}
interface OpenApi {
  readonly paths: Record<string, Record<string, Operation>>;
  readonly components: { schemas: Record<string, JsonSchema> };
}

/** Text clients send by mistake or on purpose. */
const HOSTILE_TEXT = [
  '',
  ' ',
  'nul\u0000inside',
  'half a pair \ud83d',
  "'; drop table ledger_entries; --",
  '%00',
  '../../etc/passwd',
  'ℌ𝔢𝔩𝔩𝔬 \u202e RTL',
  'x'.repeat(10_000),
  '1e309',
  '-0',
  '99999999999999999999.999',
  'NaN',
  '0x10',
  '2026-02-30T25:61:00Z',
  'card 4111 1111 1111 1111',
  '378282246310005',
] as const;
const HOSTILE_VALUES: readonly unknown[] = [
  ...HOSTILE_TEXT,
  null,
  true,
  0,
  -1,
  1.5,
  2 ** 53 + 1,
  4242424242424242,
  1e308,
  -1e308,
  [],
  {},
  [[[[[[[[[[]]]]]]]]]],
  { __proto__: null, constructor: { prototype: {} } },
];

type Mutation =
  | { kind: 'as generated' }
  | { kind: 'drop'; pick: number }
  | { kind: 'add'; name: string; value: unknown }
  | { kind: 'replace'; pick: number; value: unknown }
  | { kind: 'raw'; text: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'as generated' } as const) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      name: fc.oneof(fc.constantFrom('id', 'created_at', 'status', 'tenant_id', 'is_admin'), fc.string()),
      value: fc.jsonValue(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('replace' as const),
      pick: fc.nat(),
      value: fc.oneof(fc.constantFrom(...HOSTILE_VALUES), fc.jsonValue()),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      text: fc.oneof(
        fc.constantFrom('', '{', '{"a":', 'null', '[]', '"text"', '1', '{"a":1}{"b":2}', '[[['.repeat(2_000)),
        fc.string(),
      ),
    }),
  },
);

/** The places in a JSON value where a field may be dropped or a value replaced, as paths. */
function places(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value))
    return value.flatMap((item, index) => [[...path, index], ...places(item, [...path, index])]);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([key, item]) => [[...path, key], ...places(item, [...path, key])]);
  return [];
}

/** The body to send: `value` as JSON, changed as `change` says. */
function mutate(value: unknown, change: Mutation): string {
  if (change.kind === 'raw') return change.text;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  if (change.kind === 'add') {
    if (copy !== null && typeof copy === 'object' && !Array.isArray(copy)) copy[change.name] = change.value;
    return JSON.stringify(copy);
  }
  if (change.kind === 'as generated') return JSON.stringify(copy);
  const all = places(copy);
  const target = all[change.pick % Math.max(all.length, 1)];
  if (!target) return JSON.stringify(change.kind === 'replace' ? change.value : copy);
  let parent = copy as Record<string | number, unknown>;
  for (const step of target.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  const last = target.at(-1) as string | number;
  if (change.kind === 'drop') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else parent[last] = change.value;
  return JSON.stringify(copy);
}

/**
 * Percent-encodes a path segment as a client would send it, also one with an unpaired surrogate
 * (which `encodeURIComponent` refuses): as the three bytes a careless encoder writes for it.
 */
function encodePath(text: string): string {
  return Array.from(text, (character) => {
    const unit = character.charCodeAt(0);
    if (character.length > 1 || unit < 0xd800 || unit > 0xdfff) return encodeURIComponent(character);
    return [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]
      .map((byte) => `%${byte.toString(16).toUpperCase()}`)
      .join('');
  }).join('');
}

describe(`schema fuzz (B1, ${TEST_DATABASE_KIND})`, async () => {
  // An ecosystem with one of everything, so that generated requests can name real objects and
  // reach past the lookups: a partner with an offer, an offering, a customer with a paid order.
  const f = await createFulfilmentFixture();
  const { app } = f;
  await f.capability('courier');
  const partner = await f.partnerOffering('courier', { price: '3.00', leadTimeHours: 1 });
  // Another partner, for requests that change a partner's standing to name.
  await f.partnerOffering('courier', { price: '4.00', leadTimeHours: 1 });
  await f.publishOffering('delivery', {
    name: 'Delivery',
    unit: 'parcel',
    pricing: { kind: 'cost_plus', margin_bps: 1000 },
    steps: [{ key: 'courier', name: 'Courier', capability: 'courier' }],
  });
  const customer = await f.customer();
  const quoted = f.ok<QuoteBody>(
    await f.quote(customer.key, { offering: 'delivery', quantity: 1, deadline: f.inHours(48) }),
    201,
  );
  f.ok<OrderBody>(await f.order(customer.key, quoted.id), 201);
  await f.runJobs();
  /** Every id in the database's main tables, for parameters and bodies to name at times. */
  const ids: string[] = [];
  for (const table of [
    'partners',
    'offers',
    'customers',
    'orders',
    'quotes',
    'work_orders',
    'payments',
    'reservations',
    'ledger_accounts',
    'ledger_transactions',
  ] as const) {
    const rows = await sql<{ id: string }>`select id from ${sql.table(table)} limit 50`.execute(
      app.baton.database.db,
    );
    ids.push(...rows.rows.map((row) => row.id));
  }
  // The callers themselves stay out of reach (their users and keys are not named at all): a
  // partner suspended or a key revoked early would leave the rest of the run at 401 and 403.
  ids.splice(ids.indexOf(partner.id), 1);
  ids.splice(ids.indexOf(customer.id), 1);
  /** Ids by prefix (`ptn`, `ord`, …). */
  const idsByPrefix = new Map<string, string[]>();
  for (const id of ids) {
    const prefix = id.slice(0, id.indexOf('_'));
    idsByPrefix.set(prefix, [...(idsByPrefix.get(prefix) ?? []), id]);
  }
  /** A generated body whose ids name real objects of their kind, for the seeds that say so. */
  const naming = (value: unknown, seed: number): unknown => {
    if (seed % 4 === 0) return value;
    if (typeof value === 'string') {
      const known = idsByPrefix.get(/^([a-z]+)_[0-9a-z]{26}$/.exec(value)?.[1] ?? '');
      return known ? known[seed % known.length] : value;
    }
    if (Array.isArray(value)) return value.map((item) => naming(item, seed));
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, naming(item, seed)]));
    return value;
  };
  /**
   * The callers an operation lets in, of an operator admin, the partner's owner and the
   * customer (all three where it is public): who may call what is the access tests' subject.
   */
  const callers = (method: string, path: string): string[] => {
    const url = path.replaceAll(/\{([^}]+)\}/g, ':$1');
    const access = servedRoutes(app.baton.http).find(
      (route) => route.method === method && route.url === url,
    )?.access;
    if (access === undefined || access === 'public') return [app.adminKey, partner.key, customer.key];
    return [
      ...(access.operator ? [app.adminKey] : []),
      ...(access.partner ? [partner.key] : []),
      ...(access.customer ? [customer.key] : []),
    ];
  };
  const document = (await app.request<OpenApi>('GET', '/openapi.json', { key: null })).body;
  /** A schema with the document's components beside it, so that its references resolve. */
  const rooted = (schema: JsonSchema): JsonSchema =>
    ({ ...(schema as object), components: document.components }) as JsonSchema;
  const fake = (schema: JsonSchema, seed: number): unknown =>
    generateSync(rooted(schema), { seed, maxItems: 3, maxLength: 40, optionalsProbability: 0.5 });

  const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({ path, method: method.toUpperCase(), operation })),
  );

  /** Operations per endpoint family (their first tag). */
  const family = (operation: Operation) => operation.tags?.[0] ?? 'untagged';
  const familySizes = new Map<string, number>();
  for (const { operation } of operations)
    familySizes.set(family(operation), (familySizes.get(family(operation)) ?? 0) + 1);
  const runsOf = (operation: Operation) =>
    RUNS_PER_FAMILY === null
      ? RUNS_PER_OPERATION
      : Math.ceil(RUNS_PER_FAMILY / (familySizes.get(family(operation)) as number));

  it('covers the API', () => {
    expect(operations.length).toBeGreaterThan(100);
    expect(familySizes.get('untagged')).toBeUndefined();
  });

  it.each(operations)(
    '$method $path: a documented answer to anything, never a 5xx',
    async ({ path, method, operation }) => {
      const parameters = operation.parameters ?? [];
      const bodySchema = operation.requestBody?.content['application/json']?.schema;
      const keys = callers(method, path);
      /** The real ids each parameter's pattern admits. */
      const known = parameters.map((parameter) => {
        const pattern = (parameter.schema as { pattern?: string }).pattern;
        return pattern ? ids.filter((id) => new RegExp(pattern).test(id)) : [];
      });
      const request = fc.record({
        seed: fc.nat(),
        body: mutation,
        // Half the requests have one parameter replaced; the others have them as generated.
        parameter: fc.option(fc.record({ pick: fc.nat(), value: fc.constantFrom(...HOSTILE_VALUES) }), {
          nil: undefined,
          freq: 2,
        }),
        // Mostly with an Idempotency-Key, as clients that move money must send one.
        idempotencyKey: fc.option(fc.stringMatching(/^[!-~]{1,40}$/), { nil: undefined, freq: 5 }),
      });
      await fc.assert(
        fc.asyncProperty(request, async (input) => {
          let url = path;
          const query = new URLSearchParams();
          const replaced = input.parameter ? input.parameter.pick % Math.max(parameters.length, 1) : -1;
          parameters.forEach((parameter, index) => {
            const hostile = index === replaced ? input.parameter?.value : undefined;
            if (!parameter.required && (input.seed >> index) % 2 === 0 && hostile === undefined) return;
            const named = known[index] ?? [];
            const value =
              hostile !== undefined
                ? hostile
                : named.length > 0 && input.seed % 2 === 0
                  ? named[(input.seed >> 1) % named.length]
                  : fake(parameter.schema, input.seed + index);
            const text = typeof value === 'string' ? value : JSON.stringify(value);
            if (parameter.in === 'path') url = url.replace(`{${parameter.name}}`, encodePath(text || 'x'));
            else if (parameter.in === 'query') query.set(parameter.name, text);
          });
          const search = query.toString();
          const target = `${url}${search ? `?${search}` : ''}`;
          const body = bodySchema
            ? mutate(naming(fake(bodySchema, input.seed), input.seed), input.body)
            : undefined;
          const response = await app.baton.http.inject({
            method: method as 'POST',
            url: target,
            headers: {
              authorization: `Bearer ${keys[input.seed % keys.length]}`,
              ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
              ...(input.idempotencyKey !== undefined && method !== 'GET'
                ? { 'idempotency-key': `fuzz-${input.seed}-${input.idempotencyKey}` }
                : {}),
            },
            ...(body !== undefined ? { payload: body } : {}),
          });
          const replay = `${method} ${target} ${body?.slice(0, 500) ?? ''}`;

          expect(response.statusCode, `${replay} → ${response.body.slice(0, 500)}`).toBeLessThan(500);
          expect(response.body, replay).not.toMatch(
            /\n\s+at |node_modules|\.(js|ts):\d+:\d+|violates .* constraint|duplicate key value|syntax error at or near|invalid input syntax for|relation "|column "/,
          );
          if (response.statusCode >= 400) {
            expect(response.headers['content-type'], replay).toMatch(/^application\/problem\+json/);
            const problem = response.json() as { status: number; code: unknown };
            expect(problem.status, replay).toBe(response.statusCode);
            expect(problem.code, replay).toMatch(/^[a-z_]+(\.[a-z_]+)+$/);
          }
        }),
        { numRuns: runsOf(operation), seed: SEED, endOnFailure: true },
      );
    },
  );

  // Card numbers never reach Baton (A4): every operation refuses one in its path, its query and
  // its body, wherever the schema would have put it, before anything reads them.
  it.each(operations)(
    '$method $path: refuses a card number in any input',
    async ({ path, method, operation }) => {
      const card = 'card 4111 1111 1111 1111';
      const pathParameters = (operation.parameters ?? []).filter((parameter) => parameter.in === 'path');
      const send = (url: string, body?: unknown) =>
        app.baton.http.inject({
          method: method as 'POST',
          url,
          headers: {
            authorization: `Bearer ${callers(method, path)[0]}`,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
        });
      const plain = pathParameters.reduce((url, parameter) => url.replace(`{${parameter.name}}`, 'x'), path);
      const attempts: [string, unknown, string][] = [
        [`${plain}?note=${encodeURIComponent(card)}`, undefined, '/querystring/note'],
      ];
      for (const parameter of pathParameters) {
        attempts.push([
          path.replace(`{${parameter.name}}`, encodeURIComponent(card)).replaceAll(/\{[^}]+\}/g, 'x'),
          undefined,
          `/params/${parameter.name}`,
        ]);
      }
      if (operation.requestBody) attempts.push([plain, { note: { deep: [card] } }, '/body/note/deep/0']);
      for (const [url, body, where] of attempts) {
        const response = await send(url, body);
        expect(response.statusCode, `${url} → ${response.body}`).toBe(400);
        expect(response.json()).toMatchObject({
          code: 'request.invalid',
          errors: expect.arrayContaining([expect.objectContaining({ path: where, rule: 'card_number' })]),
        });
        expect(response.body).not.toContain('1111');
      }
    },
  );

  it('leaves the books balanced', async () => {
    const report = await app.baton.database.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute((tx) => verifyLedger(tx));
    expect(report.problems).toEqual([]);
  });

  it('stores no card number anywhere (A4)', async () => {
    expect(await storedCardNumbers(app.baton.database.db)).toEqual([]);
  });
});
