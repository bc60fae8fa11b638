import { loadConfig } from '../../packages/server/src/config.js';
import { createBaton, createOperatorKey, migrate, openDatabase } from '../../packages/server/src/main.js';

/**
 * A real Baton for the orders benchmark, in its own process so that the clients' work does not
 * count as the server's: migrates the database it is given (PostgreSQL by URL, or an embedded
 * one in a folder), works its background jobs as a server does, creates an operator key and
 * reports where it listens. With `--joining` it is a further process on a database the first
 * one has set up, as Baton scales out: it neither migrates nor makes a key.
 */

export interface OrdersServerReady {
  readonly type: 'ready';
  readonly url: string;
  readonly adminKey: string;
}

async function serve(target: string, joining: boolean): Promise<void> {
  const embedded = target.startsWith('embedded:');
  const config = loadConfig(
    {
      ...(embedded ? { BATON_DATA_DIR: target.slice('embedded:'.length) } : { DATABASE_URL: target }),
      BATON_HOST: '127.0.0.1',
      BATON_PORT: '0',
      BATON_LOG_LEVEL: 'warn',
      // The benchmark is a few tenants sending many requests on purpose, from one address.
      BATON_RATE_LIMIT_PER_MINUTE: '1000000',
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
  process.send?.({ type: 'ready', url, adminKey: secret } satisfies OrdersServerReady);
}

const [target, flag] = process.argv.slice(2);
if (!target) throw new Error('usage: server.ts <database-url | embedded:<folder>> [--joining]');
serve(target, flag === '--joining').catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
