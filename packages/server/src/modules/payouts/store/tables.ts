import type { Generated } from 'kysely';
import type { PayoutSchedule, PayoutStatus, Weekday } from '../domain/payout.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    payout_settings: PayoutSettingsTable;
    payout_batches: PayoutBatchesTable;
    payouts: PayoutsTable;
    reserve_holds: ReserveHoldsTable;
  }
}

/** How and when one partner is paid; the row a run locks first for that partner. */
export interface PayoutSettingsTable {
  partner_id: string;
  schedule: PayoutSchedule;
  weekday: Weekday | null;
  minimum_minor: bigint;
  currency: string;
  /** The provider's token for the partner's bank account. */
  destination: string | null;
  /** Payouts wait until then after the destination changed; null when none was changed. */
  destination_held_until: Date | null;
  /** Whether a destination was ever set: only the first one holds nothing. */
  had_destination: boolean;
  /** Why the last payout to the destination failed, when the reason says it cannot be paid. */
  destination_failure_code: Generated<string | null>;
  destination_failed_at: Generated<Date | null>;
  reserve_bps: number;
  reserve_days: number;
  /** The UTC date of the last run that considered the partner, `YYYY-MM-DD`. */
  last_run_on: string | null;
  /** The payable statement line up to which earnings were already counted for the reserve. */
  earnings_cursor: string | null;
  created_at: Date;
  updated_at: Date;
}

/** One payout run: the payouts it created. */
export interface PayoutBatchesTable {
  id: string;
  created_at: Date;
  actor_kind: string;
  actor_id: string | null;
  /** The partners the run was asked for, or null for those due by their schedule. */
  partner_ids: string[] | null;
  include_manual: boolean;
  payout_count: Generated<number>;
}

export interface PayoutsTable {
  id: string;
  batch_id: string;
  partner_id: string;
  amount_minor: bigint;
  currency: string;
  destination: string;
  status: PayoutStatus;
  failure_code: string | null;
  provider_id: string | null;
  /** Calls to the provider so far. */
  attempts: Generated<number>;
  netted_minor: bigint;
  reserved_minor: bigint;
  created_at: Date;
  updated_at: Date;
  settled_at: Date | null;
  /** When the partner's bank sent a paid payout back. */
  returned_at: Generated<Date | null>;
}

/** A share of a partner's earnings held in its reserve until `release_at`. */
export interface ReserveHoldsTable {
  id: string;
  partner_id: string;
  batch_id: string;
  amount_minor: bigint;
  currency: string;
  held_at: Date;
  release_at: Date;
  released_at: Date | null;
}
