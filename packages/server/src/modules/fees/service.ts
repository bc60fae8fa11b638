import { sql } from 'kysely';
import { systemActor } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { requireTransaction, type Tx } from '../../kernel/database/database.js';
import { type FieldError, isDomainError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { newId, type PartnerId, type SubscriptionId } from '../../kernel/ids.js';
import { type Currency, formatAmount, parseAmount, parseCurrency } from '../../kernel/money.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import type { LedgerService } from '../ledger/index.js';
import { type ParticipantsService, TRANSITIONS } from '../participants/index.js';
import {
  DEFAULT_TIER,
  type FeeBreakdown,
  type FeeRule,
  feeFor,
  type Rounding,
  RULES_MAX,
  type RuleInput,
  ruleErrors,
} from './domain/schedule.js';
import { type PlanInterval, periodStartAt, trialEnd } from './domain/subscription.js';
import { feesErrors } from './errors.js';
import { serviceChargeJson, subscriptionChargeJson, subscriptionJson } from './http/json.js';
import {
  type ChargeSplit,
  type FeeScheduleVersion,
  findVersion,
  findVersionIdInForce,
  listVersions,
  type ServiceCharge,
  type Subscription,
  type SubscriptionCharge,
  type SubscriptionPlan,
  toPlan,
  toService,
  toServiceCharge,
  toSubscription,
  toSubscriptionCharge,
  type ValueAddedService,
} from './store/fees-store.js';

/** The daily job that bills the subscriptions whose period has ended. */
export const BILL_SUBSCRIPTIONS_JOB = 'fees.bill-subscriptions';
/** Subscriptions one `billDue` call bills in one transaction; the job calls again while a call is full. */
export const BILL_BATCH_MAX = 200;
/** Periods one subscription catches up on in one call, so that a long outage cannot stall a batch. */
const CATCH_UP_PERIODS_MAX = 24;
/** Fee schedule versions one process keeps; past it, the oldest are forgotten first. */
const VERSIONS_CACHED_MAX = 1_000;
/** SQLSTATE of a unique violation. */
const UNIQUE_VIOLATION = '23505';

/** A rule as a caller states it: amounts as decimal strings in the version's currency. */
export interface RuleSpec {
  readonly capability?: string | null | undefined;
  readonly partnerType?: string | null | undefined;
  readonly tier?: string | null | undefined;
  readonly region?: string | null | undefined;
  readonly customerSegment?: string | null | undefined;
  readonly commissionBps: number;
  readonly fixed?: string | undefined;
  readonly floor?: string | null | undefined;
  readonly cap?: string | null | undefined;
  readonly rounding: Rounding;
}

export interface VersionInput {
  readonly currency: string;
  /** When the version takes effect: now or later; now when left out. */
  readonly effectiveFrom?: Date | undefined;
  readonly rules: readonly RuleSpec[];
  readonly note?: string | null | undefined;
}

export interface CommissionInput {
  /** The version the order keeps: the one `versionInForce` gave when it was placed. */
  readonly versionId: string;
  readonly capability: string;
  readonly partnerId: PartnerId;
  readonly region: string | null;
  readonly customerSegment?: string | null | undefined;
  /**
   * The partner's tier: the one the order was placed with. Left out, the partner's tier now
   * (`standard` unless an operator set another).
   */
  readonly tier?: string | undefined;
  readonly amountMinor: bigint;
  readonly currency: string;
}

export interface Commission {
  readonly commissionMinor: bigint;
  readonly ruleId: string | null;
  readonly breakdown: FeeBreakdown;
}

export interface QuoteInput {
  readonly capability: string;
  readonly partnerId: PartnerId;
  readonly region?: string | null | undefined;
  readonly customerSegment?: string | null | undefined;
  /** The tier to quote for; the partner's tier now when left out. */
  readonly tier?: string | undefined;
  readonly amount: { readonly amount: string; readonly currency: string };
  /** When the hypothetical order is placed; now when left out. */
  readonly at?: Date | undefined;
}

export interface Quote extends Commission {
  readonly version: FeeScheduleVersion;
  readonly rule: FeeRule | null;
  readonly partnerType: string;
  readonly tier: string;
  readonly amountMinor: bigint;
  readonly currency: Currency;
  readonly at: Date;
}

export interface PlanInput {
  readonly key: string;
  readonly name: string;
  readonly interval: PlanInterval;
  readonly price: { readonly amount: string; readonly currency: string };
  readonly trialDays: number;
}

export interface ServiceInput {
  readonly key: string;
  readonly name: string;
  readonly description?: string | null | undefined;
  readonly price: { readonly amount: string; readonly currency: string };
  readonly orderableByPartner: boolean;
}

/** What one `billDue` call did: the periods it billed and the subscriptions that ended. */
export interface BillingRun {
  readonly charges: readonly SubscriptionCharge[];
  readonly canceled: readonly Subscription[];
  /** Subscriptions looked at; the batch was full when this is `BILL_BATCH_MAX`. */
  readonly processed: number;
}

export type FeesService = ReturnType<typeof createFeesService>;

function isOperator(ctx: Context): boolean {
  return ctx.actor.kind === 'operator' || ctx.actor.kind === 'system';
}

function requireOperator(ctx: Context): void {
  if (!isOperator(ctx)) throw feesErrors.operatorOnly();
}

/** Parses an amount of a request field into minor units, or records why it cannot. */
function amountField(text: string, currency: Currency, path: string, errors: FieldError[]): bigint | null {
  try {
    const minor = parseAmount(text, currency);
    if (minor < 0n) {
      errors.push({ path, rule: 'minimum', message: 'must not be negative' });
      return null;
    }
    return minor;
  } catch (error) {
    if (!isDomainError(error)) throw error;
    errors.push({ path, rule: error.code, message: error.message });
    return null;
  }
}

/** A price of a request: a currency Baton books and a positive (or, where allowed, zero) amount. */
function parsePrice(
  price: { amount: string; currency: string },
  allowZero: boolean,
): { amountMinor: bigint; currency: Currency } {
  const currency = parseCurrency(price.currency);
  const errors: FieldError[] = [];
  const amountMinor = amountField(price.amount, currency, '/price/amount', errors);
  if (amountMinor === null || (!allowZero && amountMinor === 0n)) {
    throw feesErrors.priceInvalid(
      errors.length > 0
        ? errors
        : [{ path: '/price/amount', rule: 'minimum', message: 'must be above zero' }],
    );
  }
  return { amountMinor, currency };
}

/** Runs an insert that may break a unique constraint, turning that into `onConflict()`'s error. */
async function insertUnique<T>(tx: Tx, work: () => Promise<T>, onConflict: () => Error): Promise<T> {
  await sql`savepoint fees_unique`.execute(tx);
  try {
    const result = await work();
    await sql`release savepoint fees_unique`.execute(tx);
    return result;
  } catch (error) {
    // Undo the failed statement either way, so the transaction stays usable for the caller.
    await sql`rollback to savepoint fees_unique`.execute(tx);
    await sql`release savepoint fees_unique`.execute(tx);
    if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw onConflict();
    throw error;
  }
}

export function createFeesService({
  participants,
  ledger,
}: {
  participants: ParticipantsService;
  ledger: LedgerService;
}) {
  /** The partner's type, looked up as Baton itself: fees apply whoever places the order. */
  async function partnerTypeOf(ctx: Context, partnerId: PartnerId): Promise<string> {
    const type = await participants.partnerTypeOf(ctx.db, partnerId);
    if (type === undefined) throw feesErrors.partnerNotFound(partnerId);
    return type;
  }

  /** A partner's tier now; the default for a partner that has none (which never happens). */
  async function tierOf(ctx: Context, partnerId: PartnerId): Promise<string> {
    return (await participants.partnerTiers(ctx.db, [partnerId])).get(partnerId) ?? DEFAULT_TIER;
  }

  /** A partner's state when it has left the ecosystem for good (rejected, offboarded); else null. */
  async function closedState(ctx: Context, partnerId: PartnerId): Promise<string | null> {
    const { state } = await participants.getPartner({ ...ctx, actor: systemActor('fees') }, partnerId);
    return TRANSITIONS[state].length === 0 ? state : null;
  }

  /** Operators reach every partner; a partner only itself; others none, as if it did not exist. */
  async function requirePartnerAccess(ctx: Context, partnerId: PartnerId): Promise<void> {
    const allowed = isOperator(ctx) || (ctx.actor.kind === 'partner' && ctx.actor.partnerId === partnerId);
    if (!allowed) throw feesErrors.partnerNotFound(partnerId);
    await partnerTypeOf(ctx, partnerId);
  }

  /**
   * Charges a partner: what its payable covers is taken from it, the rest is owed as a
   * receivable; the whole amount is the platform's revenue on `revenue`. The payable is locked
   * first, so concurrent payouts cannot spend what this charge takes.
   */
  async function chargePartner(
    ctx: Context,
    input: {
      partnerId: PartnerId;
      amountMinor: bigint;
      currency: Currency;
      revenue: 'platform_access_fees' | 'platform_services';
      idempotencyKey: string;
      cause: { kind: 'subscription' | 'service_charge'; id: string };
      description: string;
      metadata: Record<string, string>;
    },
  ): Promise<Omit<ChargeSplit, 'amount'>> {
    if (input.amountMinor === 0n) return { fromPayableMinor: 0n, owedMinor: 0n, transactionId: null };
    const account = (purpose: 'partner_payable' | 'partner_receivable') => ({
      purpose,
      ownerId: input.partnerId,
      currency: input.currency,
    });
    const { balanceMinor } = await ledger.lockBalance(ctx, account('partner_payable'));
    const fromPayableMinor =
      balanceMinor < input.amountMinor ? (balanceMinor > 0n ? balanceMinor : 0n) : input.amountMinor;
    const owedMinor = input.amountMinor - fromPayableMinor;
    const { transaction } = await ledger.post(ctx, {
      idempotencyKey: input.idempotencyKey,
      description: input.description,
      cause: input.cause,
      metadata: input.metadata,
      entries: [
        ...(fromPayableMinor > 0n
          ? [
              {
                account: account('partner_payable'),
                direction: 'debit' as const,
                amountMinor: fromPayableMinor,
              },
            ]
          : []),
        ...(owedMinor > 0n
          ? [{ account: account('partner_receivable'), direction: 'debit' as const, amountMinor: owedMinor }]
          : []),
        {
          account: { purpose: input.revenue, ownerId: 'platform', currency: input.currency },
          direction: 'credit' as const,
          amountMinor: input.amountMinor,
        },
      ],
    });
    return { fromPayableMinor, owedMinor, transactionId: transaction.id };
  }

  /** Turns rule specs into rules, collecting every field error of every rule. */
  function parseRules(rules: readonly RuleSpec[], currency: Currency): RuleInput[] {
    const errors: FieldError[] = [];
    const parsed = rules.map((rule, index): RuleInput => {
      const at = `/rules/${index}`;
      const optional = (text: string | null | undefined, field: string) =>
        text === null || text === undefined ? null : amountField(text, currency, `${at}/${field}`, errors);
      return {
        capability: rule.capability ?? null,
        partnerType: rule.partnerType ?? null,
        tier: rule.tier ?? null,
        region: rule.region ?? null,
        segment: rule.customerSegment ?? null,
        commissionBps: rule.commissionBps,
        fixedMinor: optional(rule.fixed, 'fixed') ?? 0n,
        floorMinor: optional(rule.floor, 'floor'),
        capMinor: optional(rule.cap, 'cap'),
        rounding: rule.rounding,
      };
    });
    if (rules.length === 0 || rules.length > RULES_MAX) {
      errors.push({ path: '/rules', rule: 'length', message: `must have 1 to ${RULES_MAX} rules` });
    }
    // Amounts that did not parse are already reported; the rules' own checks report the rest.
    errors.push(...ruleErrors(parsed));
    if (errors.length > 0) throw feesErrors.versionInvalid(errors);
    return parsed;
  }

  /**
   * Versions already read, by id. A version and its rules never change once created, and an id
   * names one version only, so a version read once (even by a transaction that then rolled
   * back, whose id nobody else can know) is kept without ever being read again.
   */
  const versions = new Map<string, FeeScheduleVersion>();

  async function loadVersion(ctx: Context, id: string): Promise<FeeScheduleVersion> {
    const known = versions.get(id);
    if (known) return known;
    const version = await findVersion(ctx.db, id);
    if (!version) throw feesErrors.versionNotFound(id);
    if (versions.size >= VERSIONS_CACHED_MAX) {
      const oldest = versions.keys().next();
      if (!oldest.done) versions.delete(oldest.value);
    }
    versions.set(id, version);
    return version;
  }

  /** The version of `currency` in force at `at`: which one is read each time, its rules are kept. */
  async function versionInForce(
    ctx: Context,
    currency: string,
    at: Date,
  ): Promise<FeeScheduleVersion | null> {
    const id = await findVersionIdInForce(ctx.db, currency, at);
    return id === undefined ? null : loadVersion(ctx, id);
  }

  async function findPlanByKey(ctx: Context, key: string): Promise<SubscriptionPlan> {
    const row = await ctx.db
      .selectFrom('subscription_plans')
      .selectAll()
      .where('key', '=', key)
      .executeTakeFirst();
    if (!row) throw feesErrors.planNotFound(key);
    return toPlan(row);
  }

  async function planById(ctx: Context, id: string): Promise<SubscriptionPlan> {
    const row = await ctx.db
      .selectFrom('subscription_plans')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return toPlan(row);
  }

  async function emitSubscription(
    ctx: Context,
    type: string,
    subscription: Subscription,
    plan: SubscriptionPlan,
  ) {
    await appendEvent(ctx, {
      type,
      subjectId: subscription.id,
      data: { subscription: subscriptionJson(subscription, plan) },
      audience: [subscription.partnerId],
    });
  }

  /**
   * Moves one due subscription on: ends its trial, bills the periods that ended, and ends it
   * when it was cancelled at period end. A partner that has left the ecosystem (offboarded,
   * rejected) is billed nothing more: its subscription ends where the unbilled period starts.
   */
  async function advance(
    ctx: Context,
    found: Subscription,
    plan: SubscriptionPlan,
    run: { charges: SubscriptionCharge[]; canceled: Subscription[] },
  ): Promise<void> {
    let subscription = found;
    if (subscription.currentPeriodEnd <= ctx.now && (await closedState(ctx, subscription.partnerId))) {
      const ended = toSubscription(
        await ctx.db
          .updateTable('subscriptions')
          .set({ status: 'canceled', canceled_at: subscription.currentPeriodStart, updated_at: ctx.now })
          .where('id', '=', subscription.id)
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
      run.canceled.push(ended);
      await emitSubscription(ctx, 'subscription.canceled', ended, plan);
      return;
    }
    for (let step = 0; step < CATCH_UP_PERIODS_MAX && subscription.currentPeriodEnd <= ctx.now; step++) {
      const ending = subscription;
      if (ending.status === 'active') {
        const key = `subscription:${ending.id}:${ending.currentPeriodStart.toISOString()}`;
        const split = await chargePartner(ctx, {
          partnerId: ending.partnerId,
          amountMinor: plan.price.amountMinor,
          currency: plan.price.currency,
          revenue: 'platform_access_fees',
          idempotencyKey: key,
          cause: { kind: 'subscription', id: ending.id },
          description: `Access fee: ${plan.name}, ${ending.currentPeriodStart.toISOString()} to ${ending.currentPeriodEnd.toISOString()}`,
          metadata: { plan: plan.key, period_start: ending.currentPeriodStart.toISOString() },
        });
        const row = await ctx.db
          .insertInto('subscription_charges')
          .values({
            id: newId('sbc'),
            subscription_id: ending.id,
            partner_id: ending.partnerId,
            period_start: ending.currentPeriodStart,
            period_end: ending.currentPeriodEnd,
            amount_minor: plan.price.amountMinor,
            currency: plan.price.currency,
            from_payable_minor: split.fromPayableMinor,
            owed_minor: split.owedMinor,
            transaction_id: split.transactionId,
            created_at: ctx.now,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const charge = toSubscriptionCharge(row);
        run.charges.push(charge);
        await appendEvent(ctx, {
          type: 'subscription.billed',
          subjectId: ending.id,
          data: { charge: subscriptionChargeJson(charge), subscription: subscriptionJson(ending, plan) },
          audience: [ending.partnerId],
        });
      }
      const periodsBilled = ending.status === 'active' ? ending.periodsBilled + 1 : ending.periodsBilled;
      const ends = ending.cancelAtPeriodEnd;
      const updated = await ctx.db
        .updateTable('subscriptions')
        .set(
          ends
            ? { status: 'canceled', canceled_at: ending.currentPeriodEnd, updated_at: ctx.now }
            : {
                status: 'active',
                periods_billed: periodsBilled,
                current_period_start: periodStartAt(ending.billingAnchor, plan.interval, periodsBilled),
                current_period_end: periodStartAt(ending.billingAnchor, plan.interval, periodsBilled + 1),
                updated_at: ctx.now,
              },
        )
        .where('id', '=', ending.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      subscription = toSubscription(updated);
      if (ends) {
        run.canceled.push(subscription);
        await emitSubscription(ctx, 'subscription.canceled', subscription, plan);
        return;
      }
      if (ending.status === 'trialing')
        await emitSubscription(ctx, 'subscription.trial_ended', subscription, plan);
    }
  }

  return {
    /**
     * Publishes a version of a currency's fee schedule, in force from `effectiveFrom` (now or
     * later) until the next version takes effect. Versions never change once written.
     *
     * @throws DomainError `fees.version_invalid`, `fees.effective_from_in_past`, `fees.version_exists`,
     *   `money.unknown_currency`
     */
    async createVersion(ctx: Context, input: VersionInput): Promise<FeeScheduleVersion> {
      requireTransaction(ctx.db);
      requireOperator(ctx);
      const currency = parseCurrency(input.currency);
      const effectiveFrom = input.effectiveFrom ?? ctx.now;
      if (effectiveFrom < ctx.now) throw feesErrors.effectiveFromPast();
      const rules = parseRules(input.rules, currency);
      const id = newId('fsv');
      const tx = ctx.db;
      await insertUnique(
        tx,
        () =>
          tx
            .insertInto('fee_schedule_versions')
            .values({
              id,
              currency,
              effective_from: effectiveFrom,
              note: input.note ?? null,
              created_at: ctx.now,
            })
            .execute(),
        () => feesErrors.versionExists(currency, effectiveFrom),
      );
      await tx
        .insertInto('fee_rules')
        .values(
          rules.map((rule, position) => ({
            id: newId('fru'),
            version_id: id,
            position,
            capability: rule.capability,
            partner_type: rule.partnerType,
            tier: rule.tier,
            region: rule.region,
            customer_segment: rule.segment,
            commission_bps: rule.commissionBps,
            fixed_minor: rule.fixedMinor,
            floor_minor: rule.floorMinor,
            cap_minor: rule.capMinor,
            rounding: rule.rounding,
          })),
        )
        .execute();
      const version = await loadVersion(ctx, id);
      await recordAudit(ctx, {
        action: 'fees.version.create',
        targetId: id,
        outcome: 'succeeded',
        details: { currency, effective_from: effectiveFrom.toISOString(), rules: rules.length },
      });
      await appendEvent(ctx, {
        type: 'fee_schedule_version.created',
        subjectId: id,
        data: {
          id,
          currency,
          effective_from: effectiveFrom.toISOString(),
          rules: version.rules.length,
        },
        audience: [],
      });
      return version;
    },

    /** @throws DomainError `fees.version_not_found` */
    async getVersion(ctx: Context, id: string): Promise<FeeScheduleVersion> {
      requireOperator(ctx);
      return loadVersion(ctx, id);
    },

    async listVersions(
      ctx: Context,
      filter: PageRequest & { currency?: string | undefined },
    ): Promise<Page<FeeScheduleVersion>> {
      requireOperator(ctx);
      return pageOf(await listVersions(ctx.db, filter), filter.limit, (version) => version);
    },

    /**
     * The version of `currency`'s schedule in force at `at`, or null when none was: an order
     * placed at `at` keeps it (store its id with the order) whatever versions follow.
     */
    async versionInForce(ctx: Context, at: Date, currency: string): Promise<FeeScheduleVersion | null> {
      return versionInForce(ctx, currency, at);
    },

    /**
     * The commission of one order line under the version the order keeps. The partner's type
     * comes from the participants module; its tier too, unless given (an order gives the tier it
     * was placed with).
     *
     * @throws DomainError `fees.version_not_found`, `fees.partner_not_found`, `fees.currency_mismatch`,
     *   `fees.amount_negative`
     */
    async commission(ctx: Context, input: CommissionInput): Promise<Commission> {
      const version = await loadVersion(ctx, input.versionId);
      if (version.currency !== input.currency)
        throw feesErrors.currencyMismatch(version.currency, input.currency);
      if (input.amountMinor < 0n) throw feesErrors.amountNegative();
      const partnerType = await partnerTypeOf(ctx, input.partnerId);
      const result = feeFor(version, {
        capability: input.capability,
        partnerType,
        tier: input.tier ?? (await tierOf(ctx, input.partnerId)),
        region: input.region,
        segment: input.customerSegment ?? null,
        amountMinor: input.amountMinor,
        currency: input.currency,
      });
      return { commissionMinor: result.commissionMinor, ruleId: result.ruleId, breakdown: result.breakdown };
    },

    /**
     * The fees a hypothetical order would carry: the version in force at `at`, its rule for
     * the partner and the order, and the breakdown. Partners ask only about themselves.
     *
     * @throws DomainError `fees.partner_not_found`, `fees.no_schedule_in_force`, `fees.amount_negative`,
     *   `money.unknown_currency`, `money.invalid_amount`, `money.too_many_decimals`
     */
    async quote(ctx: Context, input: QuoteInput): Promise<Quote> {
      if (!isOperator(ctx) && !(ctx.actor.kind === 'partner' && ctx.actor.partnerId === input.partnerId)) {
        throw feesErrors.partnerNotFound(input.partnerId);
      }
      const currency = parseCurrency(input.amount.currency);
      const amountMinor = parseAmount(input.amount.amount, currency);
      if (amountMinor < 0n) throw feesErrors.amountNegative();
      const partnerType = await partnerTypeOf(ctx, input.partnerId);
      const at = input.at ?? ctx.now;
      const version = await versionInForce(ctx, currency, at);
      if (!version) throw feesErrors.noScheduleInForce(currency, at);
      const tier = input.tier ?? (await tierOf(ctx, input.partnerId));
      const result = feeFor(version, {
        capability: input.capability,
        partnerType,
        tier,
        region: input.region ?? null,
        segment: input.customerSegment ?? null,
        amountMinor,
        currency,
      });
      return {
        ...result,
        version,
        rule: version.rules.find((rule) => rule.id === result.ruleId) ?? null,
        partnerType,
        tier,
        amountMinor,
        currency,
        at,
      };
    },

    /**
     * Offers a subscription plan to partners. Plans never change once offered, so what a
     * partner subscribed to stays what it pays for.
     *
     * @throws DomainError `fees.plan_key_taken`, `fees.price_invalid`, `money.unknown_currency`
     */
    async createPlan(ctx: Context, input: PlanInput): Promise<SubscriptionPlan> {
      requireTransaction(ctx.db);
      requireOperator(ctx);
      const price = parsePrice(input.price, true);
      const tx = ctx.db;
      const row = await insertUnique(
        tx,
        () =>
          tx
            .insertInto('subscription_plans')
            .values({
              id: newId('spl'),
              key: input.key,
              name: input.name,
              interval: input.interval,
              price_minor: price.amountMinor,
              currency: price.currency,
              trial_days: input.trialDays,
              created_at: ctx.now,
            })
            .returningAll()
            .executeTakeFirstOrThrow(),
        () => feesErrors.planKeyTaken(input.key),
      );
      const plan = toPlan(row);
      await recordAudit(ctx, { action: 'fees.plan.create', targetId: plan.id, outcome: 'succeeded' });
      await appendEvent(ctx, {
        type: 'subscription_plan.created',
        subjectId: plan.id,
        data: { id: plan.id, key: plan.key, name: plan.name },
        audience: [],
      });
      return plan;
    },

    /** Every plan, for operators and for partners choosing one. */
    async listPlans(ctx: Context, page: PageRequest): Promise<Page<SubscriptionPlan>> {
      let query = ctx.db
        .selectFrom('subscription_plans')
        .selectAll()
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      return pageOf(await query.execute(), page.limit, toPlan);
    },

    /**
     * Subscribes a partner to a plan: its trial starts now, and its paid periods follow the
     * trial's end. A partner has a plan's trial once: subscribed again, it pays from the start.
     * A partner holds one live subscription to a plan at a time.
     *
     * @throws DomainError `fees.partner_not_found`, `fees.plan_not_found`, `fees.already_subscribed`
     */
    async subscribe(
      ctx: Context,
      partnerId: PartnerId,
      planKey: string,
    ): Promise<{ subscription: Subscription; plan: SubscriptionPlan }> {
      requireTransaction(ctx.db);
      await requirePartnerAccess(ctx, partnerId);
      const closed = await closedState(ctx, partnerId);
      if (closed) throw feesErrors.partnerClosed(partnerId, closed);
      const plan = await findPlanByKey(ctx, planKey);
      // A plan's trial is had once: a partner that held the plan before starts paying at once.
      const heldBefore = await ctx.db
        .selectFrom('subscriptions')
        .select('id')
        .where('partner_id', '=', partnerId)
        .where('plan_id', '=', plan.id)
        .limit(1)
        .executeTakeFirst();
      const trialDays = heldBefore ? 0 : plan.trialDays;
      const anchor = trialEnd(ctx.now, trialDays);
      const trialing = trialDays > 0;
      const tx = ctx.db;
      const row = await insertUnique(
        tx,
        () =>
          tx
            .insertInto('subscriptions')
            .values({
              id: newId('sub'),
              partner_id: partnerId,
              plan_id: plan.id,
              status: trialing ? 'trialing' : 'active',
              billing_anchor: anchor,
              periods_billed: 0,
              // The trial is a period of its own, ended by the billing job without a charge.
              current_period_start: trialing ? ctx.now : anchor,
              current_period_end: trialing ? anchor : periodStartAt(anchor, plan.interval, 1),
              cancel_at_period_end: false,
              canceled_at: null,
              created_at: ctx.now,
              updated_at: ctx.now,
            })
            .returningAll()
            .executeTakeFirstOrThrow(),
        () => feesErrors.alreadySubscribed(plan.key),
      );
      const subscription = toSubscription(row);
      if (ctx.actor.kind === 'operator') {
        await recordAudit(ctx, {
          action: 'fees.subscription.create',
          targetId: subscription.id,
          outcome: 'succeeded',
          details: { partner_id: partnerId, plan: plan.key },
        });
      }
      await emitSubscription(ctx, 'subscription.created', subscription, plan);
      return { subscription, plan };
    },

    /** A partner's subscriptions, newest last; other partners' are as absent as missing ones. */
    async listSubscriptions(
      ctx: Context,
      partnerId: PartnerId,
      page: PageRequest,
    ): Promise<Page<{ id: string; subscription: Subscription; plan: SubscriptionPlan }>> {
      await requirePartnerAccess(ctx, partnerId);
      let query = ctx.db
        .selectFrom('subscriptions')
        .selectAll()
        .where('partner_id', '=', partnerId)
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      const rows = await query.execute();
      const items: { id: string; subscription: Subscription; plan: SubscriptionPlan }[] = [];
      for (const row of rows.slice(0, page.limit)) {
        items.push({ id: row.id, subscription: toSubscription(row), plan: await planById(ctx, row.plan_id) });
      }
      return { items, hasMore: rows.length > page.limit };
    },

    /**
     * The periods billed for a subscription, oldest first; another partner's subscription is
     * as absent as a missing one.
     *
     * @throws DomainError `fees.subscription_not_found`
     */
    async listSubscriptionCharges(
      ctx: Context,
      subscriptionId: SubscriptionId,
    ): Promise<SubscriptionCharge[]> {
      let query = ctx.db.selectFrom('subscriptions').select('id').where('id', '=', subscriptionId);
      if (ctx.actor.kind === 'partner') query = query.where('partner_id', '=', ctx.actor.partnerId);
      else if (!isOperator(ctx)) throw feesErrors.subscriptionNotFound(subscriptionId);
      if (!(await query.executeTakeFirst())) throw feesErrors.subscriptionNotFound(subscriptionId);
      const rows = await ctx.db
        .selectFrom('subscription_charges')
        .selectAll()
        .where('subscription_id', '=', subscriptionId)
        .orderBy('period_start')
        .execute();
      return rows.map(toSubscriptionCharge);
    },

    /**
     * Cancels a subscription at the end of its current period: that period is still billed
     * (a trial is not), and nothing after it. Periods that ended before (the billing job behind)
     * are billed first, so that the period cancelled is the one under way now. Cancelling twice
     * is the same as once.
     *
     * @throws DomainError `fees.subscription_not_found`, `fees.subscription_canceled`
     */
    async cancelSubscription(
      ctx: Context,
      id: SubscriptionId,
    ): Promise<{ subscription: Subscription; plan: SubscriptionPlan }> {
      requireTransaction(ctx.db);
      let query = ctx.db.selectFrom('subscriptions').selectAll().where('id', '=', id).forUpdate();
      // A partner never locks another partner's row: the query itself is scoped to its own.
      if (ctx.actor.kind === 'partner') query = query.where('partner_id', '=', ctx.actor.partnerId);
      else if (!isOperator(ctx)) throw feesErrors.subscriptionNotFound(id);
      const row = await query.executeTakeFirst();
      if (!row) throw feesErrors.subscriptionNotFound(id);
      const plan = await planById(ctx, row.plan_id);
      if (row.status === 'canceled') throw feesErrors.subscriptionCanceled(id);
      if (row.cancel_at_period_end) return { subscription: toSubscription(row), plan };
      // Billed as the job would have, under the lock taken above (the job skips locked rows).
      await advance(ctx, toSubscription(row), plan, { charges: [], canceled: [] });
      const updated = toSubscription(
        await ctx.db
          .updateTable('subscriptions')
          .set({ cancel_at_period_end: true, updated_at: ctx.now })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
      if (ctx.actor.kind === 'operator') {
        await recordAudit(ctx, { action: 'fees.subscription.cancel', targetId: id, outcome: 'succeeded' });
      }
      await emitSubscription(ctx, 'subscription.cancel_scheduled', updated, plan);
      return { subscription: updated, plan };
    },

    /**
     * Bills up to `BILL_BATCH_MAX` subscriptions whose period has ended: each ended paid
     * period is posted once (key `subscription:<id>:<period_start>`), first from the partner's
     * payable and the rest as a receivable; trials end without a charge; subscriptions
     * cancelled at period end end. Rows are claimed with SKIP LOCKED, so concurrent runs
     * share the work, and a period once billed is never due again.
     */
    async billDue(ctx: Context): Promise<BillingRun> {
      requireTransaction(ctx.db);
      const rows = await ctx.db
        .selectFrom('subscriptions')
        .selectAll()
        .where('status', '<>', 'canceled')
        .where('current_period_end', '<=', ctx.now)
        .orderBy('current_period_end')
        .orderBy('id')
        .limit(BILL_BATCH_MAX)
        .forUpdate()
        .skipLocked()
        .execute();
      const run = { charges: [] as SubscriptionCharge[], canceled: [] as Subscription[] };
      const plans = new Map<string, SubscriptionPlan>();
      for (const row of rows) {
        let plan = plans.get(row.plan_id);
        if (!plan) {
          plan = await planById(ctx, row.plan_id);
          plans.set(plan.id, plan);
        }
        await advance(ctx, toSubscription(row), plan, run);
      }
      return { ...run, processed: rows.length };
    },

    /**
     * Adds a paid service to the catalogue partners are charged from.
     *
     * @throws DomainError `fees.service_key_taken`, `fees.price_invalid`, `money.unknown_currency`
     */
    async createService(ctx: Context, input: ServiceInput): Promise<ValueAddedService> {
      requireTransaction(ctx.db);
      requireOperator(ctx);
      const price = parsePrice(input.price, false);
      const tx = ctx.db;
      const row = await insertUnique(
        tx,
        () =>
          tx
            .insertInto('value_added_services')
            .values({
              key: input.key,
              name: input.name,
              description: input.description ?? null,
              price_minor: price.amountMinor,
              currency: price.currency,
              orderable_by_partner: input.orderableByPartner,
              created_at: ctx.now,
            })
            .returningAll()
            .executeTakeFirstOrThrow(),
        () => feesErrors.serviceKeyTaken(input.key),
      );
      await recordAudit(ctx, { action: 'fees.service.create', targetId: input.key, outcome: 'succeeded' });
      await appendEvent(ctx, {
        type: 'value_added_service.created',
        subjectId: input.key,
        data: { key: input.key, name: input.name },
        audience: [],
      });
      return toService(row);
    },

    async listServices(ctx: Context, page: PageRequest): Promise<Page<ValueAddedService & { id: string }>> {
      let query = ctx.db
        .selectFrom('value_added_services')
        .selectAll()
        .orderBy('key')
        .limit(page.limit + 1);
      if (page.after) query = query.where('key', '>', page.after);
      return pageOf(await query.execute(), page.limit, (row) => ({ ...toService(row), id: row.key }));
    },

    /**
     * Charges a partner for a value-added service it used: from its payable first, the rest
     * owed. A partner orders for itself only the services open to partners.
     *
     * @throws DomainError `fees.partner_not_found`, `fees.service_not_found`, `fees.service_not_orderable`
     */
    async chargeService(
      ctx: Context,
      partnerId: PartnerId,
      input: { service: string; note?: string | null | undefined },
    ): Promise<ServiceCharge> {
      requireTransaction(ctx.db);
      await requirePartnerAccess(ctx, partnerId);
      const row = await ctx.db
        .selectFrom('value_added_services')
        .selectAll()
        .where('key', '=', input.service)
        .executeTakeFirst();
      if (!row) throw feesErrors.serviceNotFound(input.service);
      const service = toService(row);
      if (!isOperator(ctx) && !service.orderableByPartner) throw feesErrors.serviceNotOrderable(service.key);
      const id = newId('svc');
      const split = await chargePartner(ctx, {
        partnerId,
        amountMinor: service.price.amountMinor,
        currency: service.price.currency,
        revenue: 'platform_services',
        idempotencyKey: `service_charge:${id}`,
        cause: { kind: 'service_charge', id },
        description: `Value-added service: ${service.name}`,
        metadata: { service: service.key },
      });
      const charge = toServiceCharge(
        await ctx.db
          .insertInto('service_charges')
          .values({
            id,
            partner_id: partnerId,
            service_key: service.key,
            amount_minor: service.price.amountMinor,
            currency: service.price.currency,
            from_payable_minor: split.fromPayableMinor,
            owed_minor: split.owedMinor,
            transaction_id: split.transactionId as string,
            note: input.note ?? null,
            created_at: ctx.now,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
      if (ctx.actor.kind === 'operator') {
        await recordAudit(ctx, {
          action: 'fees.service_charge.create',
          targetId: id,
          outcome: 'succeeded',
          details: {
            partner_id: partnerId,
            service: service.key,
            amount: formatAmount(service.price.amountMinor, service.price.currency),
          },
        });
      }
      await appendEvent(ctx, {
        type: 'service_charge.created',
        subjectId: id,
        data: { service_charge: serviceChargeJson(charge) },
        audience: [partnerId],
      });
      return charge;
    },

    /** A partner's service charges; other partners' are as absent as missing ones. */
    async listServiceCharges(
      ctx: Context,
      partnerId: PartnerId,
      page: PageRequest,
    ): Promise<Page<ServiceCharge>> {
      await requirePartnerAccess(ctx, partnerId);
      let query = ctx.db
        .selectFrom('service_charges')
        .selectAll()
        .where('partner_id', '=', partnerId)
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      return pageOf(await query.execute(), page.limit, toServiceCharge);
    },
  };
}
