import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../packages/server/src/config.js';
import { createBaton, createOperatorKey, migrate, openDatabase } from '../../packages/server/src/main.js';

/**
 * A real Baton for benchmarks, in its own process so that the clients' work does not count as
 * the server's: migrates the database it is given (PostgreSQL by URL, or an embedded one in a
 * folder), works its background jobs as a server does, creates an operator key and reports
 * where it listens. With `--joining` it is a further process on a database the first one has
 * set up, as Baton scales out: it neither migrates nor makes a key. Rate limits are lifted
 * (benchmarks are a few tenants sending many requests on purpose, from one address) unless
 * `BENCH_RATE_LIMIT_PER_MINUTE` sets the per-key limit.
 */

export interface BatonServerReady {
  readonly type: 'ready';
  readonly url: string;
  readonly adminKey: string;
}

/** Starts a Baton server process on `target`; the first one (`first`) also migrates and makes the operator key. */
export async function startServer(
  target: string,
  first: boolean,
  options: { rateLimitPerMinute?: number } = {},
): Promise<{ child: ChildProcess; ready: BatonServerReady }> {
  const child = fork(fileURLToPath(import.meta.url), first ? [target] : [target, '--joining'], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
    env: {
      ...process.env,
      ...(options.rateLimitPerMinute
        ? { BENCH_RATE_LIMIT_PER_MINUTE: String(options.rateLimitPerMinute) }
        : {}),
    },
  });
  const ready = await new Promise<BatonServerReady>((resolve, reject) => {
    child.once('message', (message) => resolve(message as BatonServerReady));
    child.once('exit', (code) => reject(new Error(`the Baton server exited with ${code}`)));
  });
  return { child, ready };
}

export async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send({ type: 'stop' });
  await exited;
}

async function serve(target: string, joining: boolean): Promise<void> {
  const embedded = target.startsWith('embedded:');
  const config = loadConfig(
    {
      ...(embedded ? { BATON_DATA_DIR: target.slice('embedded:'.length) } : { DATABASE_URL: target }),
      BATON_HOST: '127.0.0.1',
      BATON_PORT: '0',
      BATON_LOG_LEVEL: 'warn',
      BATON_RATE_LIMIT_PER_MINUTE: process.env.BENCH_RATE_LIMIT_PER_MINUTE ?? '1000000',
      BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '1000000',
    },
    {},
  );
  const database = await openDatabase(config);
  let secret = '';
  if (!joining) {
    await migrate(database);
    ({ secret } = await createOperatorKey(database, {
      role: 'admin',
      name: 'Benchmark',
      email: 'bench@baton.invalid',
    }));
  }
  const baton = await createBaton({ config, database, workJobs: true });
  const url = await baton.http.listen({ host: config.host, port: config.port });
  process.on('message', (message: { type?: string }) => {
    if (message.type !== 'stop') return;
    void (async () => {
      await baton.close();
      await database.close();
      process.exit(0);
    })();
  });
  process.send?.({ type: 'ready', url, adminKey: secret } satisfies BatonServerReady);
}

// Run as a script (by `startServer`), it serves; imported, it only lends its helpers.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [target, flag] = process.argv.slice(2);
  if (!target) throw new Error('usage: baton-server.ts <database-url | embedded:<folder>> [--joining]');
  serve(target, flag === '--joining').catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
