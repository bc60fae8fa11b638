import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

/*
 * The `baton` command as a user runs it, for the command's tests: the built program in its own
 * process. `npm test` builds before it tests, so the program is current.
 */

export const BATON = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

const run = promisify(execFile);

/** The tests' environment: no database URL, and new embedded databases start empty unless asked. */
export function cleanEnv(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { DATABASE_URL: _ignored, ...rest } = process.env;
  return { ...rest, BATON_LOG_LEVEL: 'warn', BATON_DEMO: 'off', ...overrides };
}

/** Runs `baton` with arguments and more environment; rejects with its exit code, stdout and stderr when it fails. */
export const runBaton = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [BATON, ...args], { env: cleanEnv(env) });

/** Runs `baton` with arguments, in the tests' environment. */
export const baton = (...args: string[]) => runBaton(args);

export interface ServedBaton {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything it printed so far. */
  output(): string;
  /** The admin key a new embedded database prints on its first start, if this was one. */
  readonly secret: string | undefined;
}

/**
 * Starts `baton serve` on a free port and resolves once it prints its address (and, on a new
 * embedded database, the key it made); rejects if it exits first.
 */
export function serve(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ServedBaton> {
  const child = spawn(process.execPath, [BATON, 'serve', '--port', '0', ...args], { env: cleanEnv(env) });
  let output = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = /serving (http:\/\/\S+) /.exec(output)?.[1];
      const secret = /(baton_sk_\S+)\n/.exec(output)?.[1];
      if (url && (!output.includes('new database') || secret)) {
        resolve({ child, url, secret, output: () => output });
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`baton serve exited (${code ?? signal}): ${output}`)),
    );
  });
}

/** Stops a server as an operator would (SIGTERM), or as a crash does (SIGKILL). */
export async function stop(child: ChildProcess, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** A database of its own on the test PostgreSQL server (`TEST_DATABASE_URL`), made anew by `create`. */
export function scratchPostgres(name: string) {
  // Read lazily: vitest collects a test file's blocks even when it does not run them.
  const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://unused';
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    await client.query(text).finally(() => client.end());
  };
  return {
    url: Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString(),
    async create(): Promise<void> {
      await admin(`drop database if exists ${name} with (force)`);
      await admin(`create database ${name}`);
    },
    drop: () => admin(`drop database if exists ${name} with (force)`),
  };
}
