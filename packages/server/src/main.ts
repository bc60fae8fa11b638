import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';
import {
  DemoFailedError,
  type DemoOptions,
  DemoRefusedError,
  type DemoResult,
  demoConfig,
  runDemo,
} from './demo/index.js';
import { systemActor } from './kernel/actor.js';
import { type Clock, ManualClock, systemClock } from './kernel/clock.js';
import { type Database, openEmbedded, openPostgres } from './kernel/database/database.js';
import { migrateToLatest } from './kernel/database/migrations.js';
import { realignTransactionPositions } from './kernel/database/positions.js';
import { runInTransaction } from './kernel/database/transaction.js';
import { createHttpApp } from './kernel/http/app.js';
import { requestForLog } from './kernel/http/log.js';
import { platformRoutes } from './kernel/http/platform-routes.js';
import { purgeExpiredIdempotencyKeys } from './kernel/idempotency/idempotency-store.js';
import type { PartnerId } from './kernel/ids.js';
import { createJobs, type Jobs } from './kernel/jobs/jobs.js';
import { kernelMigrations } from './kernel/migrations.js';
import {
  type AccessService,
  accessMigrations,
  accessRoutes,
  createAccessService,
} from './modules/access/index.js';
import {
  type CatalogService,
  catalogJobs,
  catalogMigrations,
  catalogRoutes,
  createCatalogService,
} from './modules/catalog/index.js';
import {
  createFeesService,
  type FeesService,
  feesJobs,
  feesMigrations,
  feesRoutes,
} from './modules/fees/index.js';
import {
  createLedgerApprovals,
  createLedgerService,
  type LedgerService,
  ledgerApprovalRoutes,
  ledgerJobs,
  ledgerMigrations,
  ledgerRoutes,
} from './modules/ledger/index.js';
import {
  createMatchingService,
  type MatchingService,
  matchingMigrations,
  matchingRoutes,
} from './modules/matching/index.js';
import {
  createOfferingsService,
  type OfferingsService,
  offeringsMigrations,
  offeringsRoutes,
} from './modules/offerings/index.js';
import { ordersMigrations } from './modules/orders/index.js';
import {
  createParticipantsService,
  type ParticipantsService,
  participantsJobs,
  participantsMigrations,
  participantsRoutes,
} from './modules/participants/index.js';
import {
  createPaymentsService,
  createSimulatedProvider,
  type PaymentProvider,
  type PaymentsService,
  paymentsJobs,
  paymentsMigrations,
  paymentsRoutes,
  registerProviderEventsRoute,
} from './modules/payments/index.js';
import {
  createPayoutsService,
  type PayoutsService,
  payoutsJobs,
  payoutsMigrations,
  payoutsRoutes,
  type RunResult,
} from './modules/payouts/index.js';
import {
  createStandardsService,
  type StandardsService,
  standardsJobs,
  standardsMigrations,
  standardsRoutes,
} from './modules/standards/index.js';
import {
  createSubsidiesService,
  type SubsidiesService,
  subsidiesJobs,
  subsidiesMigrations,
  subsidiesRoutes,
} from './modules/subsidies/index.js';
import { createOperatorKey } from './operator-keys.js';
import { BATON_VERSION } from './version.js';
import { createFulfilment, type Fulfilment, ORDERS_TIMERS_JOB } from './workflows/fulfilment.js';
import { fulfilmentRoutes } from './workflows/fulfilment-routes.js';
import { refundApprovalRoutes } from './workflows/refund-approval-routes.js';
import { createRefundApprovals } from './workflows/refund-approvals.js';
import { workflowRoutes } from './workflows/routes.js';
import { partnerTypes } from './workflows/settlement.js';
import {
  PROVIDER_REFUND_JOB,
  type ProviderRefundJob,
  settlementRoutes,
} from './workflows/settlement-routes.js';

export { createOperatorKey };

/** Every module's migrations, in the order they apply. */
export const MIGRATIONS = [
  kernelMigrations,
  accessMigrations,
  participantsMigrations,
  standardsMigrations,
  catalogMigrations,
  matchingMigrations,
  offeringsMigrations,
  ledgerMigrations,
  paymentsMigrations,
  feesMigrations,
  payoutsMigrations,
  subsidiesMigrations,
  ordersMigrations,
];

export interface Baton {
  readonly http: FastifyInstance;
  readonly jobs: Jobs;
  readonly database: Database;
  readonly services: {
    readonly access: AccessService;
    readonly participants: ParticipantsService;
    readonly standards: StandardsService;
    readonly catalog: CatalogService;
    readonly matching: MatchingService;
    readonly offerings: OfferingsService;
    readonly ledger: LedgerService;
    readonly payments: PaymentsService;
    readonly fees: FeesService;
    readonly payouts: PayoutsService;
    readonly subsidies: SubsidiesService;
    readonly fulfilment: Fulfilment;
  };
  close(): Promise<void>;
}

export interface BatonOptions {
  readonly config: Config;
  readonly database: Database;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Whether this process works background jobs (servers do; tests that drive jobs by hand do not). */
  readonly workJobs?: boolean;
  /** The payment provider; the simulated one when none is given. */
  readonly provider?: PaymentProvider;
  /** The secret a real provider signs its callbacks with; without it, callbacks are refused. */
  readonly paymentWebhookSecret?: string;
}

const IDEMPOTENCY_PURGE_JOB = 'kernel.purge-idempotency-keys';

/** Baton's logger: JSON lines to standard output, or to `destination`. */
export function createLogger(config: Pick<Config, 'logLevel'>, destination?: DestinationStream): Logger {
  return pino(
    {
      level: config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["idempotency-key"]'],
      serializers: { req: requestForLog },
    },
    destination,
  );
}

/** Opens the database the configuration names: PostgreSQL with a URL, the embedded one otherwise. */
export async function openDatabase(config: Config, logger?: Logger): Promise<Database> {
  return config.databaseUrl
    ? openPostgres(config.databaseUrl, config.databasePoolSize, logger, { prepare: config.databasePrepare })
    : openEmbedded({ dataDir: config.dataDir });
}

/**
 * Applies every pending migration, then moves transaction positions past those of a backup
 * restored on a new server, if this database is one (`realignTransactionPositions`): every
 * command that writes runs this first. Returns the names of the migrations applied.
 */
export async function migrate(database: Database, logger?: Logger): Promise<string[]> {
  const applied = await migrateToLatest(database.db as unknown as Kysely<unknown>, MIGRATIONS);
  await realignPositions(database, logger);
  return applied;
}

async function realignPositions(database: Database, logger?: Logger): Promise<void> {
  const moved = await realignTransactionPositions(database.db);
  if (moved > 0n) {
    logger?.warn(
      { moved: moved.toString() },
      'transaction positions moved past those stored: this database was restored on another server',
    );
  }
}

/** Wires Baton: services, jobs and the HTTP API over an open, migrated database. */
export async function createBaton(options: BatonOptions): Promise<Baton> {
  const { config, database } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config);
  const db = database.db;

  const access = createAccessService();
  const jobs = createJobs({ pool: database.pool, logger });
  const participants = createParticipantsService({ access, jobs });
  const standards = createStandardsService({ jobs, participants });
  const catalog = createCatalogService({ standards, participants, jobs });
  const matching = createMatchingService({ db, clock, logger, catalog, standards, participants });
  const offerings = createOfferingsService({ standards });
  const ledger = createLedgerService();
  const ledgerApprovals = createLedgerApprovals({ ledger });
  const fees = createFeesService({ participants, ledger });
  const provider = options.provider ?? createSimulatedProvider({ clock });
  const payouts = createPayoutsService({ ledger, participants, jobs, provider, logger });
  const payments = createPaymentsService({
    provider,
    ledger,
    clock,
    logger,
    payoutRecords: payouts.reconciliationRecords,
  });
  // The port keeps one callback handler: payments take every event and hand payouts theirs.
  payments.onOperation('payout', (eventDb, event) =>
    payouts.handleProviderEvent(eventDb, event, clock.now()),
  );
  provider.onEvent((event) => payments.handleEvent(db, event));
  const subsidies = createSubsidiesService({ ledger });
  const settlement = {
    ledger,
    fees,
    subsidies,
    partners: partnerTypes(participants),
    chargebacks: payments,
  };
  const fulfilment = createFulfilment({
    offerings,
    matching,
    catalog,
    participants,
    payments,
    fees,
    ledger,
    jobs,
    settlement,
    logger,
  });
  payments.onSettled((ctx, payment) => fulfilment.paymentSettled(ctx, payment));

  for (const job of participantsJobs({ participants, db, clock })) jobs.define(job);
  for (const job of standardsJobs({ standards, db, clock })) jobs.define(job);
  for (const job of catalogJobs({ catalog, db, clock })) jobs.define(job);
  for (const job of ledgerJobs({ db, clock })) jobs.define(job);
  for (const job of feesJobs({ fees, db, clock })) jobs.define(job);
  for (const job of paymentsJobs({ payments, db, clock })) jobs.define(job);
  for (const job of payoutsJobs({ payouts, db, clock })) jobs.define(job);
  for (const job of subsidiesJobs({ subsidies, db, clock })) jobs.define(job);
  jobs.define<ProviderRefundJob>({
    name: PROVIDER_REFUND_JOB,
    pollingIntervalSeconds: 0.5,
    handler: async (refund) => {
      await payments.refund(db, systemActor('settlement'), {
        paymentId: refund.paymentId,
        reference: refund.reference,
        amountMinor: BigInt(refund.amountMinor),
      });
    },
  });
  jobs.define({
    name: ORDERS_TIMERS_JOB,
    cron: '* * * * *',
    handler: async () => {
      await fulfilment.sweep(db, clock.now());
    },
  });
  jobs.define({
    name: IDEMPOTENCY_PURGE_JOB,
    cron: '17 * * * *',
    handler: async () => {
      await runInTransaction(db, (tx) => purgeExpiredIdempotencyKeys(tx, clock.now()));
    },
  });
  await jobs.start({ work: options.workJobs ?? true });

  const http = await createHttpApp({
    config,
    logger,
    db,
    clock,
    version: BATON_VERSION,
    authenticate: (secret) => access.authenticate(db, secret, clock.now()),
    routes: [
      ...platformRoutes({ eventAudience: participants.eventAudience, databaseKind: database.kind }),
      ...accessRoutes(access),
      ...participantsRoutes(participants, { publicRateLimitPerHour: config.publicRateLimitPerHour }),
      ...standardsRoutes(standards),
      ...catalogRoutes(catalog),
      ...matchingRoutes(matching),
      ...offeringsRoutes(offerings),
      ...ledgerRoutes(ledger, ledgerApprovals),
      ...ledgerApprovalRoutes(ledgerApprovals),
      ...feesRoutes(fees),
      ...paymentsRoutes(payments, { jobs }),
      ...payoutsRoutes(payouts),
      ...subsidiesRoutes(subsidies),
      ...workflowRoutes({ standards, catalog, offerings }),
      ...fulfilmentRoutes(fulfilment),
      ...refundApprovalRoutes(createRefundApprovals({ fulfilment })),
      ...settlementRoutes({
        ...settlement,
        afterRefund: (ctx, refund) =>
          jobs.enqueue<ProviderRefundJob>(ctx, PROVIDER_REFUND_JOB, {
            paymentId: refund.paymentId,
            reference: refund.refundRef,
            amountMinor: refund.amountMinor.toString(),
          }),
        keepsOrder: fulfilment.keepsOrder,
        keepsLeg: fulfilment.keepsLeg,
        paymentOrder: async (ctx, paymentId) => (await payments.getPayment(ctx, paymentId)).payment.orderRef,
      }),
    ],
  });
  await registerProviderEventsRoute(http, {
    payments,
    db,
    clock,
    secret: options.paymentWebhookSecret ?? null,
  });
  await http.ready();
  await matching.start();

  return {
    http,
    jobs,
    database,
    services: {
      access,
      participants,
      standards,
      catalog,
      matching,
      offerings,
      ledger,
      payments,
      fees,
      subsidies,
      payouts,
      fulfilment,
    },
    async close() {
      // Requests first, then the jobs under way (which may still match and post), then what
      // keeps the matcher's index current.
      await http.close();
      await jobs.stop();
      await matching.stop();
    },
  };
}

/**
 * Runs payouts once, as Baton itself, against an open and migrated database: the partners due
 * today, or the ones named, or every `manual` one with `includeManual`. For the command line.
 */
export async function runPayouts(
  database: Database,
  options: { partnerIds?: readonly string[]; includeManual?: boolean; provider?: PaymentProvider },
  clock: Clock = systemClock,
): Promise<RunResult> {
  const logger = createLogger({ logLevel: 'silent' });
  const jobs = createJobs({ pool: database.pool, logger });
  const access = createAccessService();
  const payouts = createPayoutsService({
    ledger: createLedgerService(),
    participants: createParticipantsService({ access, jobs }),
    jobs,
    provider: options.provider ?? createSimulatedProvider({ clock }),
  });
  return payouts.run(database.db, {
    now: clock.now(),
    actor: systemActor('command-line'),
    // Ids that name no partner with settings are reported as skipped, not refused.
    partnerIds: options.partnerIds as readonly PartnerId[] | undefined,
    includeManual: options.includeManual ?? false,
  });
}

export interface Server {
  readonly baton: Baton;
  readonly url: string;
  /** The admin key created on the first start of an empty embedded database, or null. */
  readonly bootstrapSecret: string | null;
  /** The demo loaded before the server started listening, or null. */
  readonly demo: DemoResult | null;
  close(): Promise<void>;
}

export interface ServerOptions {
  /**
   * Loads the demo ecosystem before listening, on the first start of an empty embedded database
   * and unless `config.demo` is off: its size and a progress callback. Without it, nothing is loaded.
   */
  readonly demo?: Omit<DemoOptions, 'clock' | 'present'>;
}

/**
 * Runs Baton's server: opens and migrates the database, starts the jobs and the API. On the
 * first start of an empty embedded database it loads the demo ecosystem (when asked to) and
 * creates an operator admin key, so a new user can call the API at once.
 *
 * @throws DemoFailedError when the demo could not be loaded; the database then holds part of it.
 */
export async function startServer(config: Config, options: ServerOptions = {}): Promise<Server> {
  const logger = createLogger(config);
  const database = await openDatabase(config, logger);
  try {
    if (config.migrateOnStart) {
      const applied = await migrate(database, logger);
      if (applied.length > 0) logger.info({ migrations: applied }, 'database migrated');
    } else {
      await realignPositions(database, logger);
    }
    const fresh =
      database.kind === 'embedded' && !(await createAccessService().hasOperatorUsers(database.db));
    let demo: DemoResult | null = null;
    if (fresh && config.demo && options.demo) {
      // The demo runs on its own Baton: on a clock that lives in the past, without job workers
      // (it works the jobs itself) and without the public API's rate limits.
      const clock = new ManualClock();
      const demoBaton = await createBaton({ config: demoConfig(config), database, clock, workJobs: false });
      try {
        demo = await runDemo(demoBaton, { ...options.demo, clock });
      } catch (error) {
        if (error instanceof DemoRefusedError) throw error;
        throw new DemoFailedError(
          `The demo could not be loaded (${(error as Error).message}). The database holds part of it: ` +
            `remove ${config.dataDir} and start again, or start without the demo (--empty, BATON_DEMO=off).`,
          { cause: error },
        );
      } finally {
        await demoBaton.close();
      }
    }
    const baton = await createBaton({ config, database, logger });
    let bootstrapSecret: string | null = null;
    if (fresh) {
      ({ secret: bootstrapSecret } = await createOperatorKey(database, {
        role: 'admin',
        name: 'Administrator',
        email: 'admin@baton.invalid',
      }));
    }
    const url = await baton.http.listen({ host: config.host, port: config.port });
    return {
      baton,
      url,
      bootstrapSecret,
      demo,
      async close() {
        await baton.close();
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}
