import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../config.js';
import { openEmbedded, openPostgres } from '../kernel/database/database.js';
import { createBaton, migrate } from '../main.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The embedded database, migrated, dumped to a file that each test file loads. */
    embeddedTemplate: string;
    /** The PostgreSQL template database, migrated, that each test file copies. */
    postgresTemplate: string;
  }
}

/**
 * Prepares one migrated database per run, so that each test file starts from a copy in a
 * fraction of a second instead of migrating its own.
 */
export default async function setup(project: TestProject) {
  const config = loadConfig({ BATON_LOG_LEVEL: 'silent' });
  if (project.name === 'postgres') {
    const url = process.env.TEST_DATABASE_URL;
    if (!url) throw new Error('The postgres test project needs TEST_DATABASE_URL');
    const name = `baton_template_${randomBytes(4).toString('hex')}`;
    await adminQuery(url, `create database ${name}`);
    const database = openPostgres(withDatabase(url, name), 2);
    await migrate(database);
    const baton = await createBaton({ config, database, workJobs: false });
    await baton.close();
    await database.close();
    project.provide('postgresTemplate', name);
    return async () => {
      await adminQuery(url, `drop database if exists ${name} with (force)`);
    };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'baton-test-'));
  const database = await openEmbedded({ dataDir: 'memory://' });
  await migrate(database);
  const baton = await createBaton({ config, database, workJobs: false });
  await baton.close();
  const dump = await database.pglite.dumpDataDir('none');
  await database.close();
  const file = path.join(dir, 'template.tar');
  await writeFile(file, Buffer.from(await dump.arrayBuffer()));
  project.provide('embeddedTemplate', file);
  return async () => {
    await rm(dir, { recursive: true, force: true });
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
