/** The double-entry ledger: the only module that writes money. */
export {
  createLedgerApprovals,
  type HandMovement,
  type LedgerApprovals,
  type PostingRequest,
} from './approvals.js';
export {
  ACCOUNT_PURPOSES,
  type AccountPurpose,
  BALANCE_SLOTS,
  CHART,
  type NormalSide,
  type OwnerKind,
  PLATFORM_OWNER,
} from './domain/chart.js';
export { BATCH_MAX, CAUSE_KINDS, type Cause, type CauseKind } from './domain/posting.js';
export { ledgerErrors } from './errors.js';
export { ledgerApprovalRoutes } from './http/approval-routes.js';
export {
  AccountJson,
  accountJson,
  BalanceJson,
  balanceJson,
  TransactionJson,
  transactionJson,
} from './http/json.js';
export { ledgerRoutes } from './http/routes.js';
export { ledgerJobs, SEAL_CHAIN_JOB } from './jobs.js';
export {
  type AccountKey,
  type AccountRef,
  type Balance,
  type BatchItemResult,
  createLedgerService,
  type EntryInput,
  type LedgerService,
  type PostingInput,
  type PostResult,
  type Statement,
} from './service.js';
export { sealChain } from './store/chain.js';
export type { Account, Entry, LedgerTransaction } from './store/ledger-store.js';
export { ledgerMigrations } from './store/migrations.js';
export { type VerifyProblem, type VerifyReport, verifyLedger } from './store/verify.js';
