import { mkdir } from 'node:fs/promises';
import lockfile from 'proper-lockfile';

/** How long a lock may go without being refreshed before another process may take it over. */
const LOCK_STALE_MS = 10_000;

/** Another process holds the embedded database's data folder. */
export class DataDirLockedError extends Error {
  constructor(readonly dataDir: string) {
    super(
      `The data folder ${dataDir} is in use by another Baton process (or by one that stopped less than ` +
        `${LOCK_STALE_MS / 1000} s ago). Stop that process, or point BATON_DATA_DIR elsewhere.`,
    );
    this.name = 'DataDirLockedError';
  }
}

/**
 * Takes an exclusive lock on a data folder for this process, refreshed while it lives. If the
 * lock is lost (the lock file removed or taken over), the process stops at once rather than
 * risk two writers on one database.
 *
 * @returns a function that releases the lock.
 * @throws DataDirLockedError when another process holds it.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true });
  try {
    const release = await lockfile.lock(dataDir, {
      stale: LOCK_STALE_MS,
      update: LOCK_STALE_MS / 2,
      realpath: true,
      retries: 0,
      onCompromised: (error) => {
        process.stderr.write(`Lost the lock on ${dataDir}: ${error.message}. Stopping.\n`);
        process.exit(70);
      },
    });
    return async () => {
      await release().catch(() => {});
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') throw new DataDirLockedError(dataDir);
    throw error;
  }
}
