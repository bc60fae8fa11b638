#!/usr/bin/env node
import {
  BATON_VERSION,
  ConfigError,
  type ConfigVariable,
  createOperatorKey,
  DataDirLockedError,
  loadConfig,
  migrate,
  OPERATOR_ROLES,
  type OperatorRole,
  openDatabase,
  startServer,
} from '@baton/server';
import { Command, InvalidArgumentError, Option } from 'commander';

interface DatabaseFlags {
  databaseUrl?: string;
  dataDir?: string;
}

/** Command-line flags win over the environment; `loadConfig` validates both the same way. */
function configFrom(flags: DatabaseFlags & { port?: string; host?: string }) {
  const overrides: Partial<Record<ConfigVariable, string | undefined>> = {
    DATABASE_URL: flags.databaseUrl,
    BATON_DATA_DIR: flags.dataDir,
    BATON_PORT: flags.port,
    BATON_HOST: flags.host,
  };
  return loadConfig(overrides);
}

const databaseOptions = (command: Command) =>
  command
    .option(
      '--database-url <url>',
      'PostgreSQL connection string (default: the embedded database; env DATABASE_URL)',
    )
    .option(
      '--data-dir <path>',
      'folder of the embedded database (default ./.baton/data; env BATON_DATA_DIR)',
    );

const program = new Command()
  .name('baton')
  .description('Baton: the platform core for ecosystem orchestrators.')
  .version(BATON_VERSION);

databaseOptions(
  program
    .command('serve')
    .description('Serve the API (and run background jobs) on the embedded database or PostgreSQL.')
    .option('-p, --port <port>', 'port to listen on (default 8080; env BATON_PORT)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1; env BATON_HOST)'),
).action(async (flags: DatabaseFlags & { port?: string; host?: string }) => {
  const config = configFrom(flags);
  const server = await startServer(config);
  const where = config.databaseUrl ? 'PostgreSQL' : `the embedded database in ${config.dataDir}`;
  const lines = [
    `Baton ${BATON_VERSION} is serving ${server.url} on ${where}.`,
    `API reference: ${server.url}/docs`,
  ];
  if (server.bootstrapSecret) {
    lines.push(
      '',
      'This is a new database: an operator admin key was created. It is shown only now, so keep it:',
      '',
      `  ${server.bootstrapSecret}`,
      '',
      `Try: curl -H "Authorization: Bearer ${server.bootstrapSecret}" ${server.url}/v1/me`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const stop = async (signal: string) => {
    process.stdout.write(`Stopping on ${signal}...\n`);
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
});

databaseOptions(
  program.command('migrate').description('Apply pending database migrations, then exit.'),
).action(async (flags: DatabaseFlags) => {
  const database = await openDatabase(configFrom(flags));
  try {
    const applied = await migrate(database);
    process.stdout.write(applied.length ? `Applied:\n  ${applied.join('\n  ')}\n` : 'Already up to date.\n');
  } finally {
    await database.close();
  }
});

const keys = program.command('keys').description('Manage API keys directly in the database.');
databaseOptions(
  keys
    .command('create')
    .description('Create an operator user and an API key for it (the way in on a new installation).')
    .addOption(
      new Option('--role <role>', 'operator role').choices([...OPERATOR_ROLES]).makeOptionMandatory(),
    )
    .option('--name <name>', 'name of the new operator user')
    .option('--email <email>', 'e-mail of the new operator user', (value) => {
      if (!/^[^@\s]+@[^@\s]+$/.test(value)) throw new InvalidArgumentError('Not an e-mail address.');
      return value;
    }),
).action(async (flags: DatabaseFlags & { role: OperatorRole; name?: string; email?: string }) => {
  const database = await openDatabase(configFrom(flags));
  try {
    await migrate(database);
    const stamp = Date.now().toString(36);
    const { userId, secret } = await createOperatorKey(database, {
      role: flags.role,
      name: flags.name ?? `Operator ${flags.role}`,
      email: flags.email ?? `${flags.role}-${stamp}@baton.invalid`,
    });
    process.stdout.write(
      `Created operator user ${userId} (${flags.role}). Its API key, shown only now:\n\n  ${secret}\n`,
    );
  } finally {
    await database.close();
  }
});

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof DataDirLockedError) {
    process.stderr.write(`baton: ${error.message}\n`);
  } else {
    process.stderr.write(`baton: ${(error as Error)?.stack ?? String(error)}\n`);
  }
  process.exit(1);
});
