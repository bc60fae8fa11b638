import type { ColumnType } from 'kysely';
import type { OfferingStatus, RejectionPolicy } from '../domain/offering.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    offerings: OfferingsTable;
    offering_versions: OfferingVersionsTable;
  }
}

type Json<T> = ColumnType<T, string, string>;

/** One row per offering: its status and which of its versions is sold now. */
export interface OfferingsTable {
  key: string;
  name: string;
  status: OfferingStatus;
  current_version: number;
  created_at: Date;
  updated_at: Date;
  retired_at: Date | null;
}

/** A step as a version stores it: the API's names, so the stored document reads like the API. */
export interface StoredStep {
  key: string;
  name: string;
  capability: string;
  constraints: Record<string, StoredConstraint>;
  quantity_per_unit: string;
  after: string[];
}

export interface StoredConstraint {
  eq?: string | number | boolean;
  in?: (string | number | boolean)[];
  min?: number;
  max?: number;
}

/** Every published version of an offering; append-only (a trigger refuses changes). */
export interface OfferingVersionsTable {
  id: string;
  offering_key: string;
  version: number;
  name: string;
  description: string;
  unit: string;
  currency: string;
  pricing_kind: 'cost_plus' | 'fixed';
  margin_bps: number | null;
  unit_price_minor: bigint | null;
  regions: string[];
  steps: Json<StoredStep[]>;
  quantity_min: number;
  quantity_max: number;
  quote_validity_minutes: number;
  acceptance_window_minutes: number;
  auto_confirm_hours: number;
  rejection_policy: RejectionPolicy;
  max_redos: number;
  published_at: Date;
  published_by: string | null;
}
