#!/usr/bin/env node
import {
  BATON_VERSION,
  ConfigError,
  type ConfigVariable,
  createOperatorKey,
  DataDirLockedError,
  formatAmount,
  loadConfig,
  migrate,
  OPERATOR_ROLES,
  type OperatorRole,
  openDatabase,
  runPayouts,
  sealChain,
  startServer,
  verifyLedger,
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

const payouts = program.command('payouts').description('Pay partners what the platform owes them.');
databaseOptions(
  payouts
    .command('run')
    .description(
      'Run payouts now: the partners due by their schedule, or the ones named, and print what was paid.',
    )
    .option(
      '--partner <id>',
      'pay this partner whatever its schedule (repeatable)',
      (value: string, previous: string[] = []) => {
        if (!/^ptn_[0-9a-z]{26}$/.test(value)) throw new InvalidArgumentError('Not a partner id (ptn_...).');
        return [...previous, value];
      },
    )
    .option('--all-manual', 'also pay every partner on the manual schedule'),
).action(async (flags: DatabaseFlags & { partner?: string[]; allManual?: boolean }) => {
  const database = await openDatabase(configFrom(flags));
  try {
    await migrate(database);
    const result = await runPayouts(database, {
      ...(flags.partner ? { partnerIds: flags.partner } : {}),
      includeManual: flags.allManual ?? false,
    });
    const paid = result.payouts.map((payout) => [
      payout.id,
      payout.partnerId,
      formatAmount(payout.amountMinor, payout.currency as Parameters<typeof formatAmount>[1]),
      payout.currency,
      payout.status + (payout.failureCode ? ` (${payout.failureCode})` : ''),
    ]);
    const lines = [`Payout batch ${result.batch.id}: ${paid.length} payout${paid.length === 1 ? '' : 's'}.`];
    if (paid.length > 0)
      lines.push('', ...table(['PAYOUT', 'PARTNER', 'AMOUNT', 'CURRENCY', 'STATUS'], paid));
    const skipped = result.outcomes.filter((outcome) => outcome.skipped !== null);
    if (skipped.length > 0) {
      lines.push('', 'Not paid:');
      for (const outcome of skipped) lines.push(`  ${outcome.partnerId}  ${outcome.skipped}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await database.close();
  }
});

/** Left-aligned columns, two spaces apart, numbers right-aligned. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) =>
        column === 2 ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

const ledger = program.command('ledger').description('Inspect the books.');
databaseOptions(
  ledger
    .command('verify')
    .description(
      'Recompute every transaction hash, the hash chain and every balance from the entries; ' +
        'exit with status 1 when anything differs.',
    )
    .option('--seal', 'link committed transactions to the hash chain before verifying (writes)'),
).action(async (flags: DatabaseFlags & { seal?: boolean }) => {
  const database = await openDatabase(configFrom(flags));
  try {
    await migrate(database);
    let sealedNow = 0;
    if (flags.seal) {
      for (;;) {
        const linked = await database.db.transaction().execute((tx) => sealChain(tx, new Date()));
        if (linked === 0) break;
        sealedNow += linked;
      }
    }
    // One repeatable-read transaction: every figure comes from the same picture of the books.
    const report = await database.db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute((tx) => verifyLedger(tx));
    const rows: [string, string][] = [
      ['transactions', String(report.transactions)],
      ['sealed', String(report.sealed)],
      ['accounts', String(report.accounts)],
      ['problems', String(report.problems.length)],
    ];
    const width = Math.max(...rows.map(([name]) => name.length));
    const lines = [
      ...(flags.seal ? [`Sealed ${sealedNow} transaction${sealedNow === 1 ? '' : 's'}.`, ''] : []),
      ...rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`),
    ];
    if (report.problems.length > 0) {
      if (report.firstTampered) lines.push('', `First tampered transaction: ${report.firstTampered}`);
      lines.push('', 'Problems:');
      for (const problem of report.problems) lines.push(`  ${problem.kind.padEnd(14)}  ${problem.message}`);
    } else {
      lines.push('', 'The books balance: every hash, link and balance checks out.');
    }
    process.stdout.write(`${lines.join('\n')}\n`);
    if (report.problems.length > 0) process.exitCode = 1;
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
