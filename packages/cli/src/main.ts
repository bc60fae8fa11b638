#!/usr/bin/env node
import {
  BATON_VERSION,
  ConfigError,
  type ConfigVariable,
  createBaton,
  createOperatorKey,
  DataDirLockedError,
  DEMO_ORDERS,
  DEMO_ORDERS_MAX,
  DEMO_PARTNERS,
  DEMO_PARTNERS_MAX,
  DEMO_PARTNERS_MIN,
  DEMO_SEED,
  DemoFailedError,
  DemoRefusedError,
  demoConfig,
  existingData,
  formatAmount,
  loadConfig,
  ManualClock,
  migrate,
  OPERATOR_ROLES,
  type OperatorRole,
  openDatabase,
  runDemo,
  runPayouts,
  sealChain,
  startServer,
  verifyLedger,
} from '@baton/server';
import { Command, InvalidArgumentError, Option } from 'commander';
import { demoLines, demoProgress } from './demo-output.js';

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
    .description(
      'Serve the API (and run background jobs) on the embedded database or PostgreSQL. A new embedded ' +
        'database is first loaded with the demo ecosystem, unless --empty.',
    )
    .option('-p, --port <port>', 'port to listen on (default 8080; env BATON_PORT)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1; env BATON_HOST)')
    .option('--empty', 'start a new embedded database empty, without the demo (env BATON_DEMO=off)'),
).action(async (flags: DatabaseFlags & { port?: string; host?: string; empty?: boolean }) => {
  const config = configFrom(flags);
  const progress = demoProgress('This is a new database: loading the demo ecosystem first.');
  const server = await startServer(config, flags.empty ? {} : { demo: { onProgress: progress.update } }).then(
    (started) => {
      progress.stop();
      return started;
    },
    (error: unknown) => {
      progress.stop(true);
      throw error;
    },
  );
  const where = config.databaseUrl ? 'PostgreSQL' : `the embedded database in ${config.dataDir}`;
  const lines = [
    `Baton ${BATON_VERSION} is serving ${server.url} on ${where}.`,
    `API reference: ${server.url}/docs`,
  ];
  if (server.demo) lines.push('', ...demoLines(server.demo));
  if (server.bootstrapSecret) {
    lines.push(
      '',
      'This is a new database: an operator admin key was created. It is shown only now, so keep it:',
      '',
      `  ${server.bootstrapSecret}`,
      '',
      `Try: curl -H "Authorization: Bearer ${server.bootstrapSecret}" ${server.url}/v1/me`,
    );
    if (server.demo) {
      const auth = `-H "Authorization: Bearer ${server.bootstrapSecret}"`;
      lines.push(
        `     curl ${auth} ${server.url}/v1/offerings`,
        `     curl ${auth} "${server.url}/v1/orders?status=failed"`,
        `     curl ${auth} "${server.url}/v1/work-orders?status=declined"`,
        `     curl ${auth} "${server.url}/v1/events?types=order.leg_replanned,work_order.late"`,
      );
    }
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

/** A whole number of at least `min` and at most `max`, for counting flags. */
const count = (min: number, max: number) => (value: string) => {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed < min || parsed > max)
    throw new InvalidArgumentError(`Not a whole number from ${min} to ${max}.`);
  return parsed;
};

databaseOptions(
  program
    .command('demo')
    .description(
      'Load the demo ecosystem into an empty database: partners of eleven types across regions, their ' +
        'offers, three integrated offerings, and orders played through their whole lifecycle over simulated ' +
        'weeks. Then print a summary.',
    )
    .option('--orders <n>', `orders to place (default ${DEMO_ORDERS})`, count(1, DEMO_ORDERS_MAX))
    .option(
      '--partners <n>',
      `partners to seed (default ${DEMO_PARTNERS})`,
      count(DEMO_PARTNERS_MIN, DEMO_PARTNERS_MAX),
    )
    .option('--seed <n>', `seed of the demo's choices (default ${DEMO_SEED})`, count(0, 2 ** 32 - 1)),
).action(async (flags: DatabaseFlags & { orders?: number; partners?: number; seed?: number }) => {
  const config = configFrom(flags);
  const database = await openDatabase(config);
  try {
    await migrate(database);
    // The demo's Baton: on a clock that lives in the past, working the jobs itself.
    const clock = new ManualClock();
    const baton = await createBaton({ config: demoConfig(config), database, clock, workJobs: false });
    try {
      const existing = await existingData(baton);
      if (existing) throw new DemoRefusedError(existing);
      const progress = demoProgress('Loading the demo ecosystem.');
      const result = await runDemo(baton, {
        clock,
        ...(flags.orders !== undefined ? { orders: flags.orders } : {}),
        ...(flags.partners !== undefined ? { partners: flags.partners } : {}),
        ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
        onProgress: progress.update,
      }).then(
        (done) => {
          progress.stop();
          return done;
        },
        (error: unknown) => {
          progress.stop(true);
          throw new DemoFailedError(
            `The demo failed (${(error as Error).message}). The database holds part of it: ` +
              'run the demo again on a new one.',
            { cause: error },
          );
        },
      );
      const serve = config.databaseUrl
        ? 'baton serve --database-url <url>'
        : `baton serve --data-dir ${config.dataDir}`;
      process.stdout.write(`${demoLines(result, serve).join('\n')}\n`);
    } finally {
      await baton.close();
    }
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
  if (
    error instanceof ConfigError ||
    error instanceof DataDirLockedError ||
    error instanceof DemoRefusedError
  ) {
    process.stderr.write(`baton: ${error.message}\n`);
  } else if (error instanceof DemoFailedError) {
    const cause = error.cause instanceof Error ? `\n\n${error.cause.stack ?? error.cause.message}` : '';
    process.stderr.write(`baton: ${error.message}${cause}\n`);
  } else {
    process.stderr.write(`baton: ${(error as Error)?.stack ?? String(error)}\n`);
  }
  process.exit(1);
});
