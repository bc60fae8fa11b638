import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { Actor, Principal } from '../actor.js';
import { recordAudit } from '../audit/audit-log.js';
import { containsCardNumber } from '../card-numbers.js';
import type { Clock } from '../clock.js';
import type { Context } from '../context.js';
import type { Executor } from '../database/database.js';
import { executeUnawaited } from '../database/pipelined-driver.js';
import type { Tables } from '../database/tables.js';
import { isDatabaseUnavailable, runInTransaction } from '../database/transaction.js';
import { DomainError, type FieldError, invalid, isDomainError, unauthenticated } from '../errors.js';
import {
  claimIdempotencyKey,
  fingerprintRequest,
  IDEMPOTENCY_KEY_LENGTH_MAX,
  type StoredResponse,
  saveIdempotentResponse,
} from '../idempotency/idempotency-store.js';
import { newId } from '../ids.js';
import { type Access, decideAccess } from './access.js';
import { PROBLEM_CONTENT_TYPE, Problem, problem, problemFromDomainError } from './problem.js';
import type { Route } from './route.js';
import { refusedText } from './text.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor;
    /** Why the request's key was refused; raised once the rate limit has counted the request. */
    authError: DomainError | null;
  }
  interface FastifyInstance {
    /** Every route served, with who may call it: what the access and tenancy tests enumerate. */
    servedRoutes: readonly ServedRoute[];
  }
  interface FastifyContextConfig {
    access?: Access;
    audit?: Route['audit'];
  }
}

/** A route as served: `GET /v1/partners/:partner_id`, and who may call it. */
export interface ServedRoute {
  readonly method: string;
  readonly url: string;
  readonly access: Access;
}

export interface HttpDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly db: Kysely<Tables>;
  readonly clock: Clock;
  /** Resolves an API key's secret to the principal it acts for, or null when unknown or revoked. */
  readonly authenticate: (secret: string) => Promise<Principal | null>;
  readonly routes: readonly Route[];
  readonly version: string;
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
/** Routes of the API reference page, served by the Swagger UI plugin. */
const DOCS_PREFIX = '/docs';
const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]+$/;
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Builds the HTTP API: conventions (problem+json errors, request ids, authentication,
 * deny-by-default authorisation, rate limits, idempotency, transactions) around the routes
 * the modules declare.
 */
export async function createHttpApp(deps: HttpDeps): Promise<FastifyInstance> {
  const { config, logger, db, clock } = deps;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    genReqId: () => newId('req'),
    requestIdHeader: false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: PATH_PARAMETER_LENGTH_MAX },
    // The router's own refusals, before any hook runs: problems like every other answer.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      const known = ROUTER_ERRORS[error.code] ?? {
        status: 400,
        code: 'request.invalid',
        detail: 'The request is not valid.',
      };
      return sendProblem(reply, problem(known.status, known.code, request.id, known.detail));
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Bodies are JSON only. Fastify also parses text/plain, which would hand a schema a string
  // and answer with a confusing validation error instead of 415.
  app.removeContentTypeParser('text/plain');
  app.decorateRequest<Actor | null>('actor', null);
  app.decorateRequest<DomainError | null>('authError', null);

  // Deny by default: a route that does not say who may call it cannot even be registered.
  const servedRoutes: ServedRoute[] = [];
  app.decorate('servedRoutes', servedRoutes);
  app.addHook('onRoute', (route) => {
    if (!route.config?.access) {
      if (!route.url.startsWith(DOCS_PREFIX))
        throw new Error(`Route ${route.method} ${route.url} declares no access`);
      route.config = { ...route.config, access: 'public' };
    }
    const access = route.config.access as Access;
    for (const method of [route.method].flat()) servedRoutes.push({ method, url: route.url, access });
  });

  /*
   * The rate limit runs as a route-level `onRequest` hook, after these app-level ones. So a
   * refused key passes as anonymous here and the access decision waits for `preParsing`: every
   * refusal (bad key, no key, wrong role) is counted against the caller's key or address, and
   * cannot be repeated unthrottled (a denied privileged call also writes an audit record).
   */
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    try {
      request.actor = await authenticateRequest(request, deps.authenticate);
    } catch (error) {
      if (!isDomainError(error)) throw error;
      request.actor = { kind: 'anonymous' };
      request.authError = error;
    }
  });

  app.addHook('preParsing', async (request) => {
    if (request.authError) {
      // A refused credential is an authentication event: audited once, after the rate limit.
      await recordAudit(requestContext(request, db, clock), {
        action: 'auth.authenticate',
        targetId: null,
        outcome: 'denied',
        errorCode: request.authError.code,
      });
      throw request.authError;
    }
    // Text the database cannot store and card numbers, in the path or the query, are refused
    // before anything reads them, an audit record of a refusal included (see `refusedText`).
    refuseText([...refusedText(request.params, '/params'), ...refusedText(request.query, '/querystring')]);
    const access = request.routeOptions.config?.access;
    if (access === undefined) return; // no route matched: the not-found handler answers.
    const decision = decideAccess(access, request.actor);
    if (decision === 'allowed') return;
    const error =
      decision === 'unauthenticated'
        ? unauthenticated('auth.key_required', 'This endpoint needs an API key: Authorization: Bearer <key>.')
        : new DomainError('forbidden', 'auth.role_not_allowed', 'Your role may not call this endpoint.');
    const audit = request.routeOptions.config?.audit;
    if (audit) await recordDenied(requestContext(request, db, clock), audit, request, error);
    throw error;
  });

  // The body's text, once parsed, before the schema sees it (the URL's is checked above).
  app.addHook('preValidation', async (request) => {
    refuseText(refusedText(request.body, '/body'));
  });

  await app.register(rateLimit, {
    global: true,
    max: config.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => rateLimitKey(request),
    errorResponseBuilder: (_request, context) =>
      new DomainError('rate_limited', 'rate_limit.exceeded', `Too many requests; retry in ${context.after}.`),
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Baton API',
        version: deps.version,
        description:
          'The platform core for ecosystem orchestrators. Errors are RFC 9457 problem documents with a stable ' +
          '`code`; every POST accepts an `Idempotency-Key`; lists are paginated with `limit` and `after`.',
      },
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key.' } },
      },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX });

  app.setErrorHandler((error: FastifyError, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(404, 'request.route_not_found', request.id, `No route ${request.method} ${request.url}.`),
    ),
  );

  for (const route of deps.routes) registerRoute(app, route, deps);
  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  return app;
}

function registerRoute(app: FastifyInstance, route: Route, deps: HttpDeps): void {
  const status = route.status ?? 200;
  app.route({
    method: route.method,
    url: route.url,
    ...(route.bodyLimitBytes ? { bodyLimit: route.bodyLimitBytes } : {}),
    config: {
      access: route.access,
      ...(route.audit ? { audit: route.audit } : {}),
      ...(route.rateLimit
        ? {
            rateLimit: {
              max: route.rateLimit.max,
              timeWindow: route.rateLimit.timeWindowMs,
              keyGenerator: (request: FastifyRequest) => `ip:${request.ip}`,
            },
          }
        : {}),
    },
    schema: {
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [...route.tags],
      ...(route.access === 'public' ? { security: [] } : {}),
      ...(route.params ? { params: route.params } : {}),
      ...(route.query ? { querystring: route.query } : {}),
      ...(route.body ? { body: route.body } : {}),
      response: { [status]: route.response, '4XX': Problem, '5XX': Problem },
    },
    handler: async (request, reply) => {
      const input = { params: request.params, query: request.query, body: request.body } as Parameters<
        Route['handler']
      >[1];
      const response =
        WRITE_METHODS.has(route.method) && !route.readOnly
          ? await executeWrite(request, reply, route, status, input, deps)
          : await executeRead(request, reply, route, status, input, deps);
      reply.code(response.status).header('content-type', response.contentType);
      if (response.replayed) reply.header('idempotency-replayed', 'true');
      return reply.send(response.payload);
    },
  });
}

/** Runs a read outside any transaction: each query sees the latest committed state. */
async function executeRead(
  request: FastifyRequest,
  reply: FastifyReply,
  route: Route,
  status: number,
  input: Parameters<Route['handler']>[1],
  deps: HttpDeps,
): Promise<StoredResponse & { replayed: boolean }> {
  const body = await route.handler(requestContext(request, deps.db, deps.clock), input);
  return { status, contentType: JSON_CONTENT_TYPE, payload: serialize(reply, status, body), replayed: false };
}

/**
 * Runs a write in one transaction, retried as a whole on serialization failures. With an
 * `Idempotency-Key`, the key is claimed and the response stored in that same transaction, so
 * a key is answered by the response of exactly the effects that were committed, and a crash
 * before commit leaves neither effects nor key behind.
 */
async function executeWrite(
  request: FastifyRequest,
  reply: FastifyReply,
  route: Route,
  status: number,
  input: Parameters<Route['handler']>[1],
  deps: HttpDeps,
): Promise<StoredResponse & { replayed: boolean }> {
  const key = idempotencyKeyOf(request, route);
  try {
    return await runInTransaction(deps.db, async (tx) => {
      const ctx = requestContext(request, tx, deps.clock);
      const use = key
        ? {
            scope: idempotencyScope(request),
            key,
            fingerprint: fingerprintRequest(request.method, request.url, request.body),
            now: ctx.now,
            ...(route.idempotencyRetentionMs !== undefined
              ? { retentionMs: route.idempotencyRetentionMs }
              : {}),
          }
        : null;
      if (use) {
        const stored = await claimIdempotencyKey(tx, use);
        if (stored) return { ...stored, replayed: true };
      }
      // A refusal that is kept (stored for replay, audited) needs the handler's partial work
      // undone first, so a savepoint; it travels with the handler's first statement.
      const keepsRefusal = use !== null || route.audit !== undefined;
      if (keepsRefusal) await executeUnawaited(tx, sql`savepoint handler`.compile(tx));
      let response: StoredResponse;
      try {
        const body = await route.handler(ctx, input);
        response = { status, contentType: JSON_CONTENT_TYPE, payload: serialize(reply, status, body) };
      } catch (error) {
        if (!isDomainError(error)) throw error;
        const body = problemFromDomainError(error, request.id);
        response = { status: body.status, contentType: PROBLEM_CONTENT_TYPE, payload: JSON.stringify(body) };
        // An expected refusal with nothing to keep: the whole transaction is rolled back.
        if (!keepsRefusal) throw new RefusedWrite(response);
        // Undo the handler's partial work, keep the audit record and the key.
        await executeUnawaited(tx, sql`rollback to savepoint handler`.compile(tx));
        if (route.audit) await recordDenied(ctx, route.audit, request, error);
      }
      if (use) await saveIdempotentResponse(tx, use, response);
      return { ...response, replayed: false };
    });
  } catch (error) {
    if (error instanceof RefusedWrite) return { ...error.response, replayed: false };
    throw error;
  }
}

/** A handler's refusal that leaves nothing to store: thrown to roll its transaction back. */
class RefusedWrite extends Error {
  readonly response: StoredResponse;

  constructor(response: StoredResponse) {
    super('the write was refused');
    this.response = response;
  }
}

function serialize(reply: FastifyReply, status: number, body: unknown): string {
  reply.code(status);
  return reply.serialize(body) as string;
}

function idempotencyKeyOf(request: FastifyRequest, route: Route): string | null {
  if (route.method !== 'POST') return null;
  const header = request.headers['idempotency-key'];
  if (header === undefined) {
    if (route.idempotencyKey === 'required') {
      throw invalid('idempotency.key_required', 'This endpoint needs an Idempotency-Key header.');
    }
    return null;
  }
  if (
    typeof header !== 'string' ||
    header.length > IDEMPOTENCY_KEY_LENGTH_MAX ||
    !IDEMPOTENCY_KEY_PATTERN.test(header)
  ) {
    throw invalid(
      'idempotency.invalid_key',
      `An Idempotency-Key is 1 to ${IDEMPOTENCY_KEY_LENGTH_MAX} printable ASCII characters.`,
    );
  }
  // Keys are stored: one holding a card number would keep it (see `containsCardNumber`).
  if (containsCardNumber(header)) {
    throw invalid(
      'idempotency.invalid_key',
      'An Idempotency-Key may not hold a payment card number; Baton stores its keys.',
    );
  }
  return header;
}

/** Keys are scoped to the user acting, or to the caller's address when unauthenticated. */
function idempotencyScope(request: FastifyRequest): string {
  const actor = request.actor;
  return actor.kind === 'operator' || actor.kind === 'partner' || actor.kind === 'customer'
    ? actor.userId
    : `anonymous:${request.ip}`;
}

function rateLimitKey(request: FastifyRequest): string {
  const actor = request.actor;
  return actor && (actor.kind === 'operator' || actor.kind === 'partner' || actor.kind === 'customer')
    ? `key:${actor.keyId}`
    : `ip:${request.ip}`;
}

function requestContext(request: FastifyRequest, db: Executor, clock: Clock): Context {
  return { db, actor: request.actor, now: clock.now(), requestId: request.id, ip: request.ip };
}

const BEARER = /^Bearer ([\x21-\x7e]{1,200})$/;

async function authenticateRequest(
  request: FastifyRequest,
  authenticate: HttpDeps['authenticate'],
): Promise<Actor> {
  const header = request.headers.authorization;
  if (header === undefined) return { kind: 'anonymous' };
  const match = BEARER.exec(header);
  if (!match?.[1]) {
    throw unauthenticated(
      'auth.malformed_authorization',
      'Send the API key as: Authorization: Bearer <key>.',
    );
  }
  const principal = await authenticate(match[1]);
  if (!principal) throw unauthenticated('auth.invalid_key', 'This API key is unknown or has been revoked.');
  return principal;
}

async function recordDenied(
  ctx: Context,
  audit: NonNullable<Route['audit']>,
  request: FastifyRequest,
  error: DomainError,
): Promise<void> {
  const params = request.params as Record<string, string> | undefined;
  await recordAudit(ctx, {
    action: audit.action,
    targetId: audit.targetParam ? (params?.[audit.targetParam] ?? null) : null,
    outcome: error.kind === 'forbidden' || error.kind === 'unauthenticated' ? 'denied' : 'failed',
    errorCode: error.code,
  });
}

/** Fastify's own request errors, by code, with the stable code Baton answers with. */
const FRAMEWORK_ERRORS: Record<string, { status: number; code: string; detail: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    code: 'request.malformed_json',
    detail: 'The body is not valid JSON.',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'request.malformed_json',
    detail: 'The body is empty but the content type is JSON.',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    code: 'request.body_too_large',
    detail: 'The body is too large.',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'request.unsupported_media_type',
    detail: 'Send request bodies as application/json.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'request.invalid_content_length',
    detail: 'Content-Length does not match the body.',
  },
  FST_ERR_CTP_INVALID_TYPE: {
    status: 400,
    code: 'request.invalid_content_type',
    detail: 'The Content-Type header is invalid.',
  },
};

function refuseText(errors: FieldError[]): void {
  if (errors.length > 0)
    throw invalid('request.invalid', 'The request holds text that Baton does not take.', { errors });
}

/** Longest path parameter the router takes. */
const PATH_PARAMETER_LENGTH_MAX = 200;

const ROUTER_ERRORS: Record<string, { status: number; code: string; detail: string }> = {
  FST_ERR_BAD_URL: {
    status: 400,
    code: 'request.malformed_url',
    detail: 'The URL is not valid: a percent-encoded sequence is not UTF-8.',
  },
  FST_ERR_MAX_PARAM_LENGTH: {
    status: 414,
    code: 'request.url_too_long',
    detail: `A part of the path is longer than ${PATH_PARAMETER_LENGTH_MAX} characters.`,
  },
};

function sendError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (isDomainError(error)) {
    if (error.kind === 'unauthenticated') reply.header('www-authenticate', 'Bearer');
    return sendProblem(reply, problemFromDomainError(error, request.id));
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const errors: FieldError[] = error.validation.flatMap((issue) => {
      // The document itself is `/body`, not `/body/` (which would point at a field named "").
      const path = `/${error.validationContext ?? 'body'}${issue.instancePath === '/' ? '' : issue.instancePath}`;
      const message = issue.message ?? 'is not valid';
      // One issue lists every unknown field; the report names each rejected field by its path.
      const unknownKeys = issue.keyword === 'unrecognized_keys' ? issue.params.keys : undefined;
      return Array.isArray(unknownKeys) && unknownKeys.length > 0
        ? unknownKeys.map((key) => ({
            path: `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`,
            rule: issue.keyword,
            message: `${String(key)} is not a known field`,
          }))
        : [{ path, rule: issue.keyword, message }];
    });
    return sendProblem(
      reply,
      problem(400, 'request.invalid', request.id, 'The request does not match the schema.', { errors }),
    );
  }
  const known = error.code ? FRAMEWORK_ERRORS[error.code] : undefined;
  if (known) return sendProblem(reply, problem(known.status, known.code, request.id, known.detail));
  if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON/i.test(error.message))) {
    return sendProblem(
      reply,
      problem(400, 'request.malformed_json', request.id, 'The body is not valid JSON.'),
    );
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return sendProblem(
      reply,
      problem(error.statusCode, 'request.invalid', request.id, 'The request is not valid.'),
    );
  }
  if (isDatabaseUnavailable(error)) {
    // An outage, not a bug: the client can act on it. A write cut off here may have committed.
    request.log.error({ err: error }, 'database unavailable');
    reply.header('retry-after', '1');
    return sendProblem(
      reply,
      problem(
        503,
        'database.unavailable',
        request.id,
        'The database could not be reached. Send the request again; a write cut off this way may have ' +
          'taken effect, so send it with the same Idempotency-Key to get its original answer.',
      ),
    );
  }
  // A bug or an outage: the log gets everything, the caller only the request id to quote.
  request.log.error({ err: error }, 'request failed');
  return sendProblem(
    reply,
    problem(500, 'internal', request.id, 'Something went wrong; quote the request id.'),
  );
}

function sendProblem(reply: FastifyReply, body: Problem) {
  return reply.code(body.status).header('content-type', PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}
