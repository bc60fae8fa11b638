import type { Logger } from 'pino';
import { afterAll } from 'vitest';
import { loadConfig } from '../config.js';
import type { OperatorRole } from '../kernel/actor.js';
import { ManualClock } from '../kernel/clock.js';
import { type Baton, createBaton, createOperatorKey } from '../main.js';
import type { PaymentProvider } from '../modules/payments/index.js';
import { createTestDatabase } from './test-database.js';

export interface ApiResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly headers: Record<string, string | string[] | number | undefined>;
  readonly text: string;
  readonly body: T;
}

export interface RequestOptions {
  readonly key?: string | null;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly ip?: string;
}

export interface TestApp {
  readonly baton: Baton;
  readonly clock: ManualClock;
  /** An operator admin's key. */
  readonly adminKey: string;
  request<T = Record<string, unknown>>(
    method: string,
    url: string,
    options?: RequestOptions,
  ): Promise<ApiResponse<T>>;
  /** Creates an operator user with `role` and returns its key. */
  operatorKey(role: OperatorRole): Promise<string>;
}

/**
 * Baton on a fresh database, called in process through HTTP injection. The app is closed and
 * its database dropped after the test file.
 */
export async function createTestApp(
  options: {
    config?: Parameters<typeof loadConfig>[0];
    poolSize?: number;
    provider?: PaymentProvider;
    paymentWebhookSecret?: string;
    logger?: Logger;
  } = {},
): Promise<TestApp> {
  const database = await createTestDatabase({ ...(options.poolSize ? { poolSize: options.poolSize } : {}) });
  const config = loadConfig(
    { BATON_LOG_LEVEL: 'silent', BATON_RATE_LIMIT_PER_MINUTE: '100000', ...options.config },
    {},
  );
  const clock = new ManualClock(new Date('2026-06-01T09:00:00Z'));
  const baton = await createBaton({
    config,
    database,
    clock,
    workJobs: false,
    ...(options.provider ? { provider: options.provider } : {}),
    ...(options.paymentWebhookSecret ? { paymentWebhookSecret: options.paymentWebhookSecret } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  afterAll(async () => {
    await baton.close();
    await database.close();
  });
  let operators = 0;
  const operatorKey = async (role: OperatorRole) =>
    (
      await createOperatorKey(
        database,
        { role, name: `Test ${role}`, email: `${role}-${++operators}@operator.test` },
        clock,
      )
    ).secret;
  const adminKey = await operatorKey('admin');

  return {
    baton,
    clock,
    adminKey,
    operatorKey,
    async request(method, url, { key = adminKey, body, headers = {}, ip } = {}) {
      const response = await baton.http.inject({
        method: method as 'GET',
        url,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
        ...(body === undefined
          ? {}
          : typeof body === 'string'
            ? { payload: body }
            : { payload: body as object }),
        ...(ip ? { remoteAddress: ip } : {}),
      });
      const text = response.body;
      let parsed: unknown = {};
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = {};
      }
      return { status: response.statusCode, headers: response.headers, text, body: parsed as never };
    },
  };
}
