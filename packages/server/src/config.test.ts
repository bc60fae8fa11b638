import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('configuration', () => {
  it('runs on the embedded database in ./.baton/data by default', () => {
    const config = loadConfig({}, {});
    expect(config.databaseUrl).toBeNull();
    expect(config.dataDir).toBe(path.resolve('.baton/data'));
    expect(config.port).toBe(8080);
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
  ])('stops on a bad %s with a message naming the variable', (variable, value) => {
    const attempt = () => loadConfig({}, { [variable]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(new RegExp(`^${variable}: `));
  });
});
