import type { Selectable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type {
  FeeScheduleVersionId,
  PartnerId,
  ServiceChargeId,
  SubscriptionChargeId,
  SubscriptionId,
  SubscriptionPlanId,
} from '../../../kernel/ids.js';
import { type Currency, type Money, money } from '../../../kernel/money.js';
import type { FeeRule, FeeVersion } from '../domain/schedule.js';
import type { PlanInterval, SubscriptionStatus } from '../domain/subscription.js';
import type {
  FeeRulesTable,
  FeeScheduleVersionsTable,
  ServiceChargesTable,
  SubscriptionChargesTable,
  SubscriptionPlansTable,
  SubscriptionsTable,
  ValueAddedServicesTable,
} from './tables.js';

/** A stored version of a currency's fee schedule, with its rules in the order they were published. */
export interface FeeScheduleVersion extends FeeVersion {
  readonly id: FeeScheduleVersionId;
  readonly note: string | null;
  readonly createdAt: Date;
}

export interface SubscriptionPlan {
  readonly id: SubscriptionPlanId;
  readonly key: string;
  readonly name: string;
  readonly interval: PlanInterval;
  readonly price: Money;
  readonly trialDays: number;
  readonly createdAt: Date;
}

export interface Subscription {
  readonly id: SubscriptionId;
  readonly partnerId: PartnerId;
  readonly planId: SubscriptionPlanId;
  readonly status: SubscriptionStatus;
  readonly billingAnchor: Date;
  readonly periodsBilled: number;
  readonly currentPeriodStart: Date;
  readonly currentPeriodEnd: Date;
  readonly cancelAtPeriodEnd: boolean;
  readonly canceledAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** What a charge to a partner took from its payable, and what it left owing. */
export interface ChargeSplit {
  readonly amount: Money;
  readonly fromPayableMinor: bigint;
  readonly owedMinor: bigint;
  readonly transactionId: string | null;
}

export interface SubscriptionCharge extends ChargeSplit {
  readonly id: SubscriptionChargeId;
  readonly subscriptionId: SubscriptionId;
  readonly partnerId: PartnerId;
  readonly periodStart: Date;
  readonly periodEnd: Date;
  readonly createdAt: Date;
}

export interface ValueAddedService {
  readonly key: string;
  readonly name: string;
  readonly description: string | null;
  readonly price: Money;
  readonly orderableByPartner: boolean;
  readonly createdAt: Date;
}

export interface ServiceCharge extends ChargeSplit {
  readonly id: ServiceChargeId;
  readonly partnerId: PartnerId;
  readonly serviceKey: string;
  readonly transactionId: string;
  readonly note: string | null;
  readonly createdAt: Date;
}

export const toRule = (row: Selectable<FeeRulesTable>): FeeRule => ({
  id: row.id,
  capability: row.capability,
  partnerType: row.partner_type,
  tier: row.tier,
  region: row.region,
  segment: row.customer_segment,
  commissionBps: row.commission_bps,
  fixedMinor: row.fixed_minor,
  floorMinor: row.floor_minor,
  capMinor: row.cap_minor,
  rounding: row.rounding,
});

const toVersion = (
  row: Selectable<FeeScheduleVersionsTable>,
  rules: readonly Selectable<FeeRulesTable>[],
): FeeScheduleVersion => ({
  id: row.id as FeeScheduleVersionId,
  currency: row.currency,
  effectiveFrom: row.effective_from,
  note: row.note,
  createdAt: row.created_at,
  rules: rules.map(toRule),
});

export const toPlan = (row: Selectable<SubscriptionPlansTable>): SubscriptionPlan => ({
  id: row.id as SubscriptionPlanId,
  key: row.key,
  name: row.name,
  interval: row.interval,
  price: money(row.price_minor, row.currency as Currency),
  trialDays: row.trial_days,
  createdAt: row.created_at,
});

export const toSubscription = (row: Selectable<SubscriptionsTable>): Subscription => ({
  id: row.id as SubscriptionId,
  partnerId: row.partner_id as PartnerId,
  planId: row.plan_id as SubscriptionPlanId,
  status: row.status,
  billingAnchor: row.billing_anchor,
  periodsBilled: row.periods_billed,
  currentPeriodStart: row.current_period_start,
  currentPeriodEnd: row.current_period_end,
  cancelAtPeriodEnd: row.cancel_at_period_end,
  canceledAt: row.canceled_at,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const toSubscriptionCharge = (row: Selectable<SubscriptionChargesTable>): SubscriptionCharge => ({
  id: row.id as SubscriptionChargeId,
  subscriptionId: row.subscription_id as SubscriptionId,
  partnerId: row.partner_id as PartnerId,
  periodStart: row.period_start,
  periodEnd: row.period_end,
  amount: money(row.amount_minor, row.currency as Currency),
  fromPayableMinor: row.from_payable_minor,
  owedMinor: row.owed_minor,
  transactionId: row.transaction_id,
  createdAt: row.created_at,
});

export const toService = (row: Selectable<ValueAddedServicesTable>): ValueAddedService => ({
  key: row.key,
  name: row.name,
  description: row.description,
  price: money(row.price_minor, row.currency as Currency),
  orderableByPartner: row.orderable_by_partner,
  createdAt: row.created_at,
});

export const toServiceCharge = (row: Selectable<ServiceChargesTable>): ServiceCharge => ({
  id: row.id as ServiceChargeId,
  partnerId: row.partner_id as PartnerId,
  serviceKey: row.service_key,
  amount: money(row.amount_minor, row.currency as Currency),
  fromPayableMinor: row.from_payable_minor,
  owedMinor: row.owed_minor,
  transactionId: row.transaction_id,
  note: row.note,
  createdAt: row.created_at,
});

async function withRules(
  db: Executor,
  rows: readonly Selectable<FeeScheduleVersionsTable>[],
): Promise<FeeScheduleVersion[]> {
  if (rows.length === 0) return [];
  const rules = await db
    .selectFrom('fee_rules')
    .selectAll()
    .where(
      'version_id',
      'in',
      rows.map((row) => row.id),
    )
    .orderBy('version_id')
    .orderBy('position')
    .execute();
  return rows.map((row) =>
    toVersion(
      row,
      rules.filter((rule) => rule.version_id === row.id),
    ),
  );
}

export async function findVersion(db: Executor, id: string): Promise<FeeScheduleVersion | undefined> {
  const row = await db
    .selectFrom('fee_schedule_versions')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? (await withRules(db, [row]))[0] : undefined;
}

/** The version of `currency` in force at `at`: the latest that took effect at or before it. */
export async function findVersionInForce(
  db: Executor,
  currency: string,
  at: Date,
): Promise<FeeScheduleVersion | undefined> {
  const row = await db
    .selectFrom('fee_schedule_versions')
    .selectAll()
    .where('currency', '=', currency)
    .where('effective_from', '<=', at)
    .orderBy('effective_from', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? (await withRules(db, [row]))[0] : undefined;
}

/** The id of the version of `currency` in force at `at`, without its rules: for callers that keep versions. */
export async function findVersionIdInForce(
  db: Executor,
  currency: string,
  at: Date,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('fee_schedule_versions')
    .select('id')
    .where('currency', '=', currency)
    .where('effective_from', '<=', at)
    .orderBy('effective_from', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.id;
}

export async function listVersions(
  db: Executor,
  filter: { currency?: string | undefined; after?: string | undefined; limit: number },
): Promise<FeeScheduleVersion[]> {
  let query = db
    .selectFrom('fee_schedule_versions')
    .selectAll()
    .orderBy('id')
    .limit(filter.limit + 1);
  if (filter.currency) query = query.where('currency', '=', filter.currency);
  if (filter.after) query = query.where('id', '>', filter.after);
  return withRules(db, await query.execute());
}
