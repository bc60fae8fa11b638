import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/*
 * The suite runs on the embedded database, and again on PostgreSQL when TEST_DATABASE_URL is
 * set (CI sets it): one project per database, each test file on a fresh copy of a migrated
 * template.
 */
const databases = ['embedded', ...(process.env.TEST_DATABASE_URL ? ['postgres'] : [])];

export default defineConfig({
  resolve: {
    alias: { '@baton/server': fileURLToPath(new URL('./packages/server/src/index.ts', import.meta.url)) },
  },
  test: {
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: databases.map((name) => ({
      extends: true,
      test: {
        name,
        include: ['packages/*/src/**/*.test.ts'],
        env: { BATON_TEST_DATABASE: name },
        globalSetup: ['packages/server/src/testing/global-setup.ts'],
      },
    })),
  },
});
