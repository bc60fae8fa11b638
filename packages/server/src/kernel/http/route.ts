import type { z } from 'zod';
import type { Context } from '../context.js';
import type { Access } from './access.js';

type Output<S> = S extends z.ZodType ? z.output<S> : Record<string, never>;

export interface RouteInput<P, Q, B> {
  readonly params: Output<P>;
  readonly query: Output<Q>;
  readonly body: Output<B>;
}

/**
 * One endpoint of the API: its schemas (which give validation, types and the OpenAPI
 * document), who may call it, and its handler. A handler returns the response body; it
 * never touches the reply, so a write can be retried and its response stored for replay.
 */
export interface RouteSpec<P, Q, B, R extends z.ZodType> {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  readonly url: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  readonly access: Access;
  /**
   * The privileged action this route performs. Its successes are audited by the service;
   * naming it here also audits the attempts that are denied or fail.
   */
  readonly audit?: { readonly action: string; readonly targetParam?: string };
  /**
   * A POST that changes nothing (a search whose query is a body): it runs as a read, without a
   * transaction or an idempotency key.
   */
  readonly readOnly?: boolean;
  /** Whether a POST must carry an `Idempotency-Key` (money-moving calls must). */
  readonly idempotencyKey?: 'required' | 'optional';
  /**
   * How long this route's idempotency keys are kept: 24 hours unless said
   * (`IDEMPOTENCY_MONEY_OUT_TTL_MS`, 7 days, for payouts and refunds).
   */
  readonly idempotencyRetentionMs?: number;
  /** A stricter limit than the per-key default, counted per caller address (public sign-ups). */
  readonly rateLimit?: { readonly max: number; readonly timeWindowMs: number };
  readonly bodyLimitBytes?: number;
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  readonly status?: 200 | 201 | 202;
  readonly response: R;
  readonly handler: (ctx: Context, input: RouteInput<P, Q, B>) => Promise<z.input<R>>;
}

/** A route with its types erased, as the HTTP layer registers it. */
export type Route = RouteSpec<unknown, unknown, unknown, z.ZodType> & {
  readonly handler: (ctx: Context, input: RouteInput<unknown, unknown, unknown>) => Promise<unknown>;
};

/** Declares a route, checking the handler against the schemas. */
export function defineRoute<
  P extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType = z.ZodType,
>(spec: RouteSpec<P, Q, B, R>): Route {
  return spec as unknown as Route;
}
