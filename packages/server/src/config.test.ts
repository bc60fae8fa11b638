import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('configuration', () => {
  it('runs on the embedded database in ./.baton/data by default', () => {
    const config = loadConfig({}, {});
    expect(config.databaseUrl).toBeNull();
    expect(config.dataDir).toBe(path.resolve('.baton/data'));
    expect(config.port).toBe(8080);
    expect(config.demo).toBe(true);
    expect(config.databasePrepare).toBe(true);
  });

  it('turns prepared statements off with BATON_DATABASE_PREPARE=false', () => {
    expect(loadConfig({}, { BATON_DATABASE_PREPARE: 'false' }).databasePrepare).toBe(false);
  });

  it('turns the demo of a new embedded database off with BATON_DEMO=off', () => {
    expect(loadConfig({}, { BATON_DEMO: 'off' }).demo).toBe(false);
    expect(loadConfig({}, { BATON_DEMO: 'on' }).demo).toBe(true);
    expect(loadConfig({}, { BATON_DEMO: 'false' }).demo).toBe(false);
  });

  it('lets command-line flags win over the environment', () => {
    const config = loadConfig(
      { BATON_PORT: '9000' },
      { BATON_PORT: '7000', DATABASE_URL: 'postgres://db/baton' },
    );
    expect(config.port).toBe(9000);
    expect(config.databaseUrl).toBe('postgres://db/baton');
  });

  it.each([
    ['BATON_PORT', 'eighty'],
    ['BATON_PORT', '70000'],
    ['DATABASE_URL', 'mysql://localhost/baton'],
    ['BATON_LOG_LEVEL', 'loud'],
    ['BATON_TRUST_PROXY', 'maybe'],
    ['BATON_DATABASE_POOL_SIZE', '0'],
    ['BATON_DATABASE_PREPARE', 'sometimes'],
    ['BATON_DEMO', 'maybe'],
  ])('stops on a bad %s with a message naming the variable', (variable, value) => {
    const attempt = () => loadConfig({}, { [variable]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(new RegExp(`^${variable}: `));
  });
});
