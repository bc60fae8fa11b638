/** Baton's server, as the command line and other programs use it. */
export { type Config, ConfigError, type ConfigVariable, loadConfig } from './config.js';
export {
  DEMO_ORDERS,
  DEMO_ORDERS_MAX,
  DEMO_PARTNERS,
  DEMO_PARTNERS_MAX,
  DEMO_PARTNERS_MIN,
  DEMO_SEED,
  DemoFailedError,
  type DemoKey,
  type DemoOptions,
  type DemoPhase,
  type DemoProgress,
  DemoRefusedError,
  DemoRequestError,
  type DemoResult,
  type DemoSummary,
  demoConfig,
  existingData,
  runDemo,
} from './demo/index.js';
export { OPERATOR_ROLES, type OperatorRole } from './kernel/actor.js';
export { ManualClock } from './kernel/clock.js';
export { DataDirLockedError } from './kernel/database/data-dir-lock.js';
export { type Database, openEmbedded, openPostgres } from './kernel/database/database.js';
export { formatAmount } from './kernel/money.js';
export {
  type Baton,
  createBaton,
  createLogger,
  createOperatorKey,
  MIGRATIONS,
  migrate,
  openDatabase,
  runPayouts,
  type Server,
  type ServerOptions,
  startServer,
} from './main.js';
export { sealChain, type VerifyProblem, type VerifyReport, verifyLedger } from './modules/ledger/index.js';
export { BATON_VERSION } from './version.js';
