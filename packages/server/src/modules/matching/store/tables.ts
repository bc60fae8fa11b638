import type { ColumnType, Generated } from 'kysely';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    matching_settings: MatchingSettingsTable;
    allocations: AllocationsTable;
  }
}

/** A capability's ranking and fairness settings; a capability without a row uses the defaults. */
export interface MatchingSettingsTable {
  capability: string;
  weight_price: number;
  weight_quality: number;
  weight_reliability: number;
  weight_lead_time: number;
  weight_affinity: number;
  exposure_cap_share: number;
  exposure_window_days: number;
  exposure_min_allocations: number;
  new_entrant_boost: number;
  new_entrant_days: number;
  max_per_partner: number;
  updated_at: Date;
  updated_by: string | null;
}

/** One piece of demand given to one offer: what the exposure cap counts. Append-only. */
export interface AllocationsTable {
  id: string;
  seq: Generated<bigint>;
  capability: string;
  region: string;
  partner_id: string;
  offer_id: string;
  reservation_id: string;
  quantity: bigint;
  customer_id: string | null;
  reference: string | null;
  rank: number;
  score: number;
  allocated_at: Date;
  allocated_by: string | null;
  /** The results that were tried before this one and refused by the catalog. */
  skipped: ColumnType<{ offer_id: string; code: string }[], string, never>;
}
