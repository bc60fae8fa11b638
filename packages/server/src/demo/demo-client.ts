import type { FastifyInstance } from 'fastify';

/** A response of the API, its body parsed. */
export interface ApiAnswer<T> {
  readonly status: number;
  readonly body: T;
}

/** The shape of the API's errors (RFC 9457 problems with Baton's code). */
export interface ProblemBody {
  readonly code?: string;
  readonly detail?: string;
  readonly errors?: readonly { path: string; message: string }[];
}

/** An answer the demo did not expect: the demo stops on it, naming the call and the problem. */
export class DemoRequestError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly problem: ProblemBody,
  ) {
    const fields = problem.errors?.map((error) => `${error.path}: ${error.message}`).join('; ');
    super(
      `${method} ${url} answered ${status} ${problem.code ?? ''}: ${problem.detail ?? ''}${fields ? ` (${fields})` : ''}`,
    );
    this.name = 'DemoRequestError';
  }
}

export interface CallOptions {
  /** The API key to call with; null for the public endpoints. */
  readonly key: string | null;
  readonly body?: unknown;
  /** Sends an `Idempotency-Key`, as the money-moving endpoints require. */
  readonly idempotent?: boolean;
}

export type DemoClient = ReturnType<typeof createDemoClient>;

/**
 * Calls Baton's HTTP API in process, as an integrator would over the network: every request
 * goes through authentication, validation, idempotency and the routes' access rules.
 */
export function createDemoClient(http: FastifyInstance, keyPrefix: string) {
  let sequence = 0;

  async function send<T>(
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    options: CallOptions,
  ): Promise<ApiAnswer<T>> {
    const headers: Record<string, string> = {};
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    if (options.idempotent) headers['idempotency-key'] = `${keyPrefix}-${++sequence}`;
    const response = await http.inject({
      method,
      url,
      headers,
      ...(options.body === undefined ? {} : { payload: options.body as object }),
    });
    const body = (response.body ? JSON.parse(response.body) : {}) as T;
    return { status: response.statusCode, body };
  }

  /** A call that must succeed; anything else stops the demo with the API's problem. */
  async function ok<T>(method: 'GET' | 'POST' | 'PUT', url: string, options: CallOptions): Promise<T> {
    const answer = await send<T>(method, url, options);
    if (answer.status >= 300)
      throw new DemoRequestError(method, url, answer.status, answer.body as ProblemBody);
    return answer.body;
  }

  return {
    send,
    get: <T>(url: string, key: string) => ok<T>('GET', url, { key }),
    post: <T>(url: string, options: CallOptions) => ok<T>('POST', url, options),
    put: <T>(url: string, options: CallOptions) => ok<T>('PUT', url, options),
  };
}
