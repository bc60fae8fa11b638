import type { Kind, ProgrammeStatus, Side } from '../domain/programme.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    subsidy_programmes: SubsidyProgrammesTable;
    subsidy_participants: SubsidyParticipantsTable;
    subsidy_applications: SubsidyApplicationsTable;
    subsidy_refunds: SubsidyRefundsTable;
  }
}

/**
 * A programme and its running totals. The money itself is in the ledger (the programme's
 * `subsidy_budget` account); the totals are kept beside it in the same transactions, so that
 * `funded - spent - returned` always equals that account's balance.
 */
export interface SubsidyProgrammesTable {
  id: string;
  name: string;
  side: Side;
  kind: Kind;
  share_bps: number;
  currency: string;
  /** The budget the operator planned; activation funds it. */
  budget_minor: bigint;
  cap_per_participant_minor: bigint;
  partner_types: string[];
  regions: string[];
  customer_segments: string[];
  capabilities: string[];
  starts_at: Date;
  ends_at: Date;
  status: ProgrammeStatus;
  /** Everything moved into the budget: the activation and every top-up. */
  funded_minor: bigint;
  /** Paid to beneficiaries, net of refunds. */
  spent_minor: bigint;
  /** Moved back to the operator: the leftover at the end, and refunds after it. */
  returned_minor: bigint;
  /** Fundings so far; the next one's ledger key is made from it. */
  fundings: number;
  applications: number;
  created_at: Date;
  updated_at: Date;
  closed_at: Date | null;
}

/** What one participant has received from one programme, net of refunds: the row caps are checked on. */
export interface SubsidyParticipantsTable {
  programme_id: string;
  participant_id: string;
  spent_minor: bigint;
  applications: number;
  updated_at: Date;
}

/**
 * One request to subsidise a fee, by the caller's idempotency key; `programme_id` is null when
 * nothing applied, so that a replay answers the same.
 */
export interface SubsidyApplicationsTable {
  id: string;
  idempotency_key: string;
  /** A digest of the request, to tell a replay from another request with the same key. */
  fingerprint: string;
  programme_id: string | null;
  participant_id: string | null;
  cause_kind: string;
  cause_id: string;
  fee_minor: bigint;
  currency: string;
  amount_minor: bigint;
  refunded_minor: bigint;
  beneficiary_account_id: string | null;
  transaction_id: string | null;
  created_at: Date;
}

export interface SubsidyRefundsTable {
  idempotency_key: string;
  application_id: string;
  amount_minor: bigint;
  transaction_id: string;
  created_at: Date;
}
