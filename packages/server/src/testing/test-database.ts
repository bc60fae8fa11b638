import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { inject } from 'vitest';
import { type Database, openEmbedded, openPostgres } from '../kernel/database/database.js';
import { adminQuery, withDatabase } from './global-setup.js';

/** Which database the suite runs on: the project sets it, CI runs both. */
export const TEST_DATABASE_KIND: 'embedded' | 'postgres' =
  process.env.BATON_TEST_DATABASE === 'postgres' ? 'postgres' : 'embedded';

/**
 * A fresh, migrated database for one test file: a copy of the run's template, on the
 * embedded database or on PostgreSQL. Closing it drops it.
 */
export async function createTestDatabase(options: { poolSize?: number } = {}): Promise<Database> {
  if (TEST_DATABASE_KIND === 'postgres') {
    const url = process.env.TEST_DATABASE_URL as string;
    const name = `baton_test_${randomBytes(6).toString('hex')}`;
    await adminQuery(url, `create database ${name} template ${inject('postgresTemplate')}`);
    const database = openPostgres(withDatabase(url, name), options.poolSize ?? 10);
    return {
      ...database,
      async close() {
        await database.close();
        await adminQuery(url, `drop database if exists ${name} with (force)`);
      },
    };
  }
  const dump = new Blob([await readFile(inject('embeddedTemplate'))]);
  return openEmbedded({ dataDir: 'memory://', loadDataDir: dump });
}
