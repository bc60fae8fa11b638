import { loadConfig } from '../../packages/server/src/config.js';
import { ManualClock } from '../../packages/server/src/kernel/clock.js';
import { openPostgres } from '../../packages/server/src/kernel/database/database.js';
import { createBaton } from '../../packages/server/src/main.js';
import { liveBytes } from '../lib/memory.js';

/**
 * A real Baton for the HTTP measurement, in its own process so that it has a core of its own
 * and the clients' work does not count as the server's. Started by `baton-http.ts` with the
 * bench database's URL and the data set's "now"; it reports how long start-up took (the
 * matching index is built from the database during it) and then serves until told to stop.
 */

export interface ServerReady {
  readonly type: 'ready';
  readonly url: string;
  readonly startMs: number;
  readonly heapBytes: number;
}

async function serve(databaseUrl: string, now: Date): Promise<void> {
  const config = loadConfig(
    {
      DATABASE_URL: databaseUrl,
      BATON_HOST: '127.0.0.1',
      BATON_PORT: '0',
      BATON_LOG_LEVEL: 'warn',
      // The benchmark is one tenant sending many requests on purpose.
      BATON_RATE_LIMIT_PER_MINUTE: '1000000',
      BATON_MIGRATE_ON_START: 'false',
    },
    {},
  );
  const database = openPostgres(databaseUrl, config.databasePoolSize);
  const before = liveBytes();
  const started = performance.now();
  const baton = await createBaton({ config, database, clock: new ManualClock(now), workJobs: false });
  const startMs = performance.now() - started;
  const heapBytes = liveBytes() - before;
  const url = await baton.http.listen({ host: config.host, port: config.port });
  process.on('message', (message: { type?: string }) => {
    if (message.type !== 'stop') return;
    void (async () => {
      await baton.close();
      await database.close();
      process.exit(0);
    })();
  });
  process.send?.({ type: 'ready', url, startMs, heapBytes } satisfies ServerReady);
}

const [databaseUrl, now] = process.argv.slice(2);
if (!databaseUrl || !now) throw new Error('usage: baton-server.ts <database-url> <now>');
serve(databaseUrl, new Date(now)).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
