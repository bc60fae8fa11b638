import path from 'node:path';
import { z } from 'zod';

/**
 * Baton's configuration. This file is the only reader of the environment: everything else
 * receives a `Config`. Values are parsed and validated once, at start-up, and a bad value
 * stops start-up with a message that names the variable.
 */
export interface Config {
  /** Where the HTTP API listens. */
  readonly host: string;
  readonly port: number;
  /** PostgreSQL connection string; when absent Baton runs on the embedded database. */
  readonly databaseUrl: string | null;
  /** Folder of the embedded database (ignored when `databaseUrl` is set). */
  readonly dataDir: string;
  readonly databasePoolSize: number;
  /**
   * Whether statements sent again and again are prepared on each PostgreSQL connection. Off
   * behind a connection pooler that hands one client's statements to several server
   * connections and cannot keep prepared statements (PgBouncer in transaction mode before 1.21).
   */
  readonly databasePrepare: boolean;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Requests per minute allowed to one API key (or one address when unauthenticated). */
  readonly rateLimitPerMinute: number;
  /** Requests per hour allowed to one address on the public sign-up endpoints. */
  readonly publicRateLimitPerHour: number;
  /** Largest request body accepted, in bytes. */
  readonly bodyLimitBytes: number;
  /** Whether to trust `X-Forwarded-For` from a reverse proxy for the caller's address. */
  readonly trustProxy: boolean;
  /** Whether `serve` applies pending migrations at start-up. */
  readonly migrateOnStart: boolean;
  /**
   * Whether `serve` loads the demo ecosystem on the first start of an empty embedded database,
   * so a new user has something to explore.
   */
  readonly demo: boolean;
}

/** Raised when a variable has a value Baton cannot use; the message names the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/** Each variable, its parser and its default. */
const VARIABLES = {
  BATON_HOST: { key: 'host', schema: z.string().min(1), fallback: '127.0.0.1' },
  BATON_PORT: { key: 'port', schema: integer(0, 65535), fallback: '8080' },
  DATABASE_URL: {
    key: 'databaseUrl',
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// connection string'),
    fallback: null,
  },
  BATON_DATA_DIR: { key: 'dataDir', schema: z.string().min(1), fallback: './.baton/data' },
  BATON_DATABASE_POOL_SIZE: { key: 'databasePoolSize', schema: integer(1, 200), fallback: '10' },
  BATON_DATABASE_PREPARE: { key: 'databasePrepare', schema: boolean, fallback: 'true' },
  BATON_LOG_LEVEL: {
    key: 'logLevel',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    fallback: 'info',
  },
  BATON_RATE_LIMIT_PER_MINUTE: { key: 'rateLimitPerMinute', schema: integer(1, 1_000_000), fallback: '600' },
  BATON_PUBLIC_RATE_LIMIT_PER_HOUR: {
    key: 'publicRateLimitPerHour',
    schema: integer(1, 1_000_000),
    fallback: '30',
  },
  BATON_BODY_LIMIT_BYTES: {
    key: 'bodyLimitBytes',
    schema: integer(1024, 64 * 1024 * 1024),
    fallback: '1048576',
  },
  BATON_TRUST_PROXY: { key: 'trustProxy', schema: boolean, fallback: 'false' },
  BATON_MIGRATE_ON_START: { key: 'migrateOnStart', schema: boolean, fallback: 'true' },
  BATON_DEMO: {
    key: 'demo',
    schema: z
      .enum(['on', 'off', 'true', 'false', '1', '0', 'yes', 'no'], { message: 'must be on or off' })
      .transform((value) => ['on', 'true', '1', 'yes'].includes(value)),
    fallback: 'on',
  },
} as const;

export type ConfigVariable = keyof typeof VARIABLES;

/**
 * Reads and validates the configuration.
 *
 * @param overrides values that win over the environment (command-line flags), by variable name.
 * @param env the environment to read; the process environment unless a test passes its own.
 * @throws ConfigError naming the first variable with an unusable value.
 */
export function loadConfig(
  overrides: Partial<Record<ConfigVariable, string | undefined>> = {},
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const config: Record<string, unknown> = {};
  for (const [variable, spec] of Object.entries(VARIABLES)) {
    const raw = overrides[variable as ConfigVariable] ?? env[variable];
    const value = raw === undefined || raw === '' ? spec.fallback : raw;
    if (value === null) {
      config[spec.key] = null;
      continue;
    }
    const parsed = spec.schema.safeParse(value);
    if (!parsed.success) {
      throw new ConfigError(variable, parsed.error.issues[0]?.message ?? 'is not valid');
    }
    config[spec.key] = parsed.data;
  }
  config.dataDir = path.resolve(config.dataDir as string);
  return config as unknown as Config;
}
