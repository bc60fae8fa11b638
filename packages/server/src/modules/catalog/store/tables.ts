import type { ColumnType } from 'kysely';
import type { FieldError } from '../../../kernel/errors.js';
import type { CapacityPeriod, ReservationStatus } from '../domain/capacity.js';
import type { OfferStatus } from '../domain/offer.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    offers: OffersTable;
    capacity_counters: CapacityCountersTable;
    reservations: ReservationsTable;
  }
}

type Json<T> = ColumnType<T, string, string>;

export interface OffersTable {
  id: string;
  partner_id: string;
  capability_key: string;
  /** The capability version the offer was last checked against. */
  capability_version: number;
  external_ref: string | null;
  attributes: Json<Record<string, unknown>>;
  unit_price_minor: bigint;
  currency: string;
  min_quantity: bigint;
  max_quantity: bigint;
  lead_time_hours: number;
  regions: string[];
  capacity_per_period: bigint;
  capacity_period: CapacityPeriod;
  status: OfferStatus;
  compliance_errors: Json<FieldError[]>;
  created_at: Date;
  updated_at: Date;
}

/** How much of one offer's capacity in one period is held or confirmed: the row reservations race on. */
export interface CapacityCountersTable {
  offer_id: string;
  period_start: Date;
  reserved: bigint;
}

export interface ReservationsTable {
  id: string;
  offer_id: string;
  partner_id: string;
  period_start: Date;
  quantity: bigint;
  status: ReservationStatus;
  expires_at: Date | null;
  reference: string | null;
  created_at: Date;
  /** When the reservation was confirmed, released or expired. */
  settled_at: Date | null;
}
