import type { Rounding } from '../domain/schedule.js';
import type { PlanInterval, SubscriptionStatus } from '../domain/subscription.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    fee_schedule_versions: FeeScheduleVersionsTable;
    fee_rules: FeeRulesTable;
    subscription_plans: SubscriptionPlansTable;
    subscriptions: SubscriptionsTable;
    subscription_charges: SubscriptionChargesTable;
    value_added_services: ValueAddedServicesTable;
    service_charges: ServiceChargesTable;
  }
}

/** A version of one currency's fee schedule; never changed once written. */
export interface FeeScheduleVersionsTable {
  id: string;
  currency: string;
  effective_from: Date;
  note: string | null;
  created_at: Date;
}

export interface FeeRulesTable {
  id: string;
  version_id: string;
  /** The rule's place in the version as it was published, for listing it back in that order. */
  position: number;
  capability: string | null;
  partner_type: string | null;
  tier: string | null;
  region: string | null;
  customer_segment: string | null;
  commission_bps: number;
  fixed_minor: bigint;
  floor_minor: bigint | null;
  cap_minor: bigint | null;
  rounding: Rounding;
}

export interface SubscriptionPlansTable {
  id: string;
  key: string;
  name: string;
  interval: PlanInterval;
  price_minor: bigint;
  currency: string;
  trial_days: number;
  created_at: Date;
}

export interface SubscriptionsTable {
  id: string;
  partner_id: string;
  plan_id: string;
  status: SubscriptionStatus;
  /** The end of the trial, where the paid periods start. */
  billing_anchor: Date;
  /** Paid periods already billed; the current period is the one with this index. */
  periods_billed: number;
  current_period_start: Date;
  current_period_end: Date;
  cancel_at_period_end: boolean;
  canceled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** One billed period of a subscription: at most one per period, whatever runs the job. */
export interface SubscriptionChargesTable {
  id: string;
  subscription_id: string;
  partner_id: string;
  period_start: Date;
  period_end: Date;
  amount_minor: bigint;
  currency: string;
  from_payable_minor: bigint;
  owed_minor: bigint;
  /** Null for a free plan, which moves no money. */
  transaction_id: string | null;
  created_at: Date;
}

export interface ValueAddedServicesTable {
  key: string;
  name: string;
  description: string | null;
  price_minor: bigint;
  currency: string;
  orderable_by_partner: boolean;
  created_at: Date;
}

export interface ServiceChargesTable {
  id: string;
  partner_id: string;
  service_key: string;
  amount_minor: bigint;
  currency: string;
  from_payable_minor: bigint;
  owed_minor: bigint;
  transaction_id: string;
  note: string | null;
  created_at: Date;
}
