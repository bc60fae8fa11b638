import { sql } from 'kysely';
import type { Logger } from 'pino';
import { systemActor } from '../kernel/actor.js';
import { assert } from '../kernel/assert.js';
import type { Context } from '../kernel/context.js';
import { type Executor, requireTransaction } from '../kernel/database/database.js';
import { runInTransaction } from '../kernel/database/transaction.js';
import { isDomainError } from '../kernel/errors.js';
import { appendEvent } from '../kernel/events/event-log.js';
import {
  type CustomerId,
  newId,
  type OrderId,
  type PartnerId,
  type QuoteId,
  type WorkOrderId,
} from '../kernel/ids.js';
import type { Jobs } from '../kernel/jobs/jobs.js';
import { allocate, formatAmount, parseCurrency } from '../kernel/money.js';
import type { Page } from '../kernel/pagination.js';
import type { CatalogService } from '../modules/catalog/index.js';
import type { FeesService } from '../modules/fees/index.js';
import type { LedgerService } from '../modules/ledger/index.js';
import {
  ALLOCATION_CANDIDATES_MAX,
  type AllocationOutcome,
  type AllocationRequest,
  type AttributeConstraint,
  type MatchingService,
  type MatchResult,
  matchResultJson,
  type PlannedAllocation,
} from '../modules/matching/index.js';
import {
  type OfferingsService,
  type OfferingWithVersion,
  type StepDefinition,
  stepQuantity,
  topologicalOrder,
} from '../modules/offerings/index.js';
import {
  addRefundedAlone,
  CLOSED_LEGS,
  CUSTOMER_ACTIONS,
  type CustomerAction,
  canTransition,
  dueByMs as dueByOf,
  expectedTimes,
  FINISHED_LEGS,
  findOrder,
  findQuote,
  findQuoteWithLegs,
  findWorkOrder,
  HOUR_MS,
  type Infeasibility,
  insertQuote,
  listOrders,
  listWorkOrders,
  lockOrder,
  NOT_STARTED,
  type Order,
  type OrderLeg,
  type OrderStatus,
  OWED,
  orderLegs,
  ordersErrors,
  orderWithLegs,
  PARTNER_ACTIONS,
  type PartnerAction,
  placeOrderRows,
  priceOrder,
  type Quote,
  type QuoteLeg,
  quoteLegs,
  readySteps,
  refundThreshold,
  saveLegs,
  statusesBefore,
  timedOut,
  unstartedLegsOf,
  updateLeg,
  updateOrder,
  updateWorkOrder,
  type WorkOrder,
  type WorkOrderMove,
  type WorkOrderStatus,
  workOrdersOf,
} from '../modules/orders/index.js';
import { ENGAGED_STATES, type ParticipantsService } from '../modules/participants/index.js';
import { type Payment, type PaymentsService, RESUME_PAYMENT_JOB } from '../modules/payments/index.js';
import {
  escrowOf,
  reclaimReleasedLegs,
  recoverChargedBack,
  refundableAfterChargebacks,
  refundOrder,
  releaseLeg,
  type SettlementDeps,
  settlementErrors,
} from './settlement.js';
import { PROVIDER_REFUND_JOB, type ProviderRefundJob } from './settlement-routes.js';

/*
 * Fulfilment: an integrated offering bought as one order and delivered by several partners.
 *
 * A quote plans every step of the offering with the matching engine, from the last steps back:
 * the last must be done by the customer's deadline, and every other step by the latest start of
 * the steps that follow it, so lead times add up along the critical path. Each step's capacity
 * is held for the quote's validity. Placing the order confirms the holds (a hold that lapsed and
 * lost its capacity refuses the order before anything is charged), records the payment and
 * hands it to the payment job; the capture posts into the order's escrow and starts the order:
 * each leg whose predecessors are finished goes out as a work order. A customer-side subsidy
 * programme that covers the customer pays its share of the platform's margin into the escrow
 * when the order is placed, and the payment is the rest, so escrow holds the whole total as for
 * any order; refunds give the programme back its share.
 *
 * A leg whose partner declines, lets the offer expire or is suspended is re-planned with the
 * next-best candidate that can still be done by the leg's due time, for no more than the
 * customer paid for the leg. When none can, the order compensates: every leg not started is
 * cancelled and its money refunded; the legs under way finish and are paid. A confirmed leg
 * releases its partner's share from escrow; a rejected one is refunded or redone as the
 * offering says. Every change is one transaction, with its events; every money movement goes
 * through the ledger by settlement's steps, whose keys make each of them happen once.
 */

export interface FulfilmentDeps {
  readonly offerings: OfferingsService;
  readonly matching: MatchingService;
  readonly catalog: CatalogService;
  readonly participants: ParticipantsService;
  readonly payments: PaymentsService;
  readonly fees: FeesService;
  readonly settlement: SettlementDeps;
  readonly ledger: LedgerService;
  readonly jobs: Jobs;
  readonly logger?: Logger;
}

export interface QuoteRequest {
  readonly offeringKey: string;
  readonly quantity: number;
  readonly region: string;
  readonly deadline: Date;
  /** Required when an operator quotes for a customer; a customer quotes for itself. */
  readonly customerId?: CustomerId | undefined;
}

export interface QuoteView {
  readonly quote: Quote;
  readonly legs: readonly QuoteLeg[];
}

export interface OrderView {
  readonly order: Order;
  readonly legs: readonly OrderLeg[];
  /** The legs' current work orders. */
  readonly workOrders: readonly WorkOrder[];
}

/** An order, its legs and one leg with its current work order, locked. */
interface LockedLeg {
  readonly order: Order;
  readonly legs: readonly OrderLeg[];
  readonly leg: OrderLeg;
  readonly workOrder: WorkOrder | null;
}

/** A refund by hand: of one confirmed leg (`stepKey`), or of a closed order across its legs. */
export interface RefundByHand {
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly stepKey: string | null;
  readonly reason: string;
}

export interface SweepReport {
  readonly expired: number;
  readonly late: number;
  readonly autoConfirmed: number;
  readonly replanned: number;
  /** Items whose work failed, left as they were for the next run; the others went on. */
  readonly failed: number;
}

/** Work orders or legs one run of the timers handles per kind, each in its own transaction. */
export const SWEEP_BATCH_MAX = 200;
/** Suspended or offboarded partners the timers read per page. */
const PARTNER_PAGE = 100;
/** The job that works the timers: acceptance windows, due times, auto-confirmation, suspensions. */
export const ORDERS_TIMERS_JOB = 'orders.timers';

const MINUTE_MS = 60_000;

/**
 * The reference of an order's next refund, as it stands now: its ledger postings, its provider
 * refund and a reclaim that comes before it are all named by it.
 */
const nextRefundRef = (order: Order) => `${order.id}:refund:${order.refunds + 1}`;
/** The key of an order's customer-side subsidy: one per order, and its refunds name it. */
const orderSubsidyKey = (orderId: string) => `order:${orderId}:subsidy`;

type Step = StepDefinition;

/** The candidate a quote chose for one step, with the demand it was chosen for. */
interface PlannedStep {
  readonly request: AllocationRequest;
  readonly result: MatchResult;
  readonly quantity: number;
}

export type Fulfilment = ReturnType<typeof createFulfilment>;

export function createFulfilment(deps: FulfilmentDeps) {
  const { offerings, matching, catalog, participants, payments, fees, settlement, jobs } = deps;

  /**
   * What Baton does on its own after a participant's action (re-planning, paying, dispatching)
   * runs as Baton, in the same transaction: a partner's decline must be able to reserve another
   * partner's capacity, which the partner itself could not.
   */
  const asBaton = (ctx: Context): Context => ({ ...ctx, actor: systemActor('orders') });

  // -----------------------------------------------------------------------------------------------
  // Quotes

  async function customerOf(ctx: Context, requested: CustomerId | undefined): Promise<CustomerId> {
    if (ctx.actor.kind === 'customer') return ctx.actor.customerId;
    if (requested === undefined) throw ordersErrors.customerRequired();
    await participants.getCustomer(ctx, requested);
    return requested;
  }

  /** Why no offer could take a step: the matcher's exclusions, counted per filter. */
  async function diagnose(
    ctx: Context,
    step: Step,
    request: { region: string; quantity: number; dueBy: Date; customerId: CustomerId },
  ): Promise<Infeasibility> {
    const explanation = await matching.explain(ctx, {
      capability: step.capability,
      region: request.region,
      quantity: request.quantity,
      neededBy: request.dueBy,
      customerId: request.customerId,
      constraints: step.constraints,
    });
    const exclusions: Record<string, number> = {};
    for (const row of explanation.rows) {
      for (const exclusion of row.excluded)
        exclusions[exclusion.filter] = (exclusions[exclusion.filter] ?? 0) + 1;
    }
    return {
      step: step.key,
      capability: step.capability,
      reason:
        explanation.rows.length === 0
          ? 'no_offers'
          : explanation.candidates > 0
            ? 'capacity_taken'
            : 'no_candidate',
      exclusions,
      offers: explanation.rows.length,
      dueBy: request.dueBy,
    };
  }

  function infeasible(infeasibility: Infeasibility, region: string): never {
    const step = `step ${infeasibility.step} (${infeasibility.capability})`;
    const due = infeasibility.dueBy ? ` by ${infeasibility.dueBy.toISOString()}` : '';
    const counted = Object.entries(infeasibility.exclusions)
      .sort((a, b) => b[1] - a[1])
      .map(([filter, count]) => `${count} ${filter.replaceAll('_', ' ')}`)
      .join(', ');
    const message = (() => {
      switch (infeasibility.reason) {
        case 'deadline_unreachable':
          return `No plan meets the deadline: ${step} would have to be done${due}, which has passed.`;
        case 'no_offers':
          return `No partner offers ${step} in ${region}.`;
        case 'no_candidate':
          return `No partner can do ${step} in ${region}${due}: of ${infeasibility.offers} offers, ${counted}.`;
        case 'capacity_taken':
          return `The partners that could do ${step} in ${region}${due} have no capacity left to hold.`;
        case 'price_below_cost':
          return 'The partners chosen cost more than the offering’s fixed price.';
      }
    })();
    throw ordersErrors.quoteInfeasible(message, infeasibility);
  }

  /**
   * Plans an offering for a customer and holds capacity on every leg for the quote's validity.
   *
   * Every step is planned against the matcher's index first, and the holds are taken last, all
   * legs at once, right before the transaction commits: the offers' counters, which every quote
   * for the same steps races for, stay locked only for the end of one transaction. A hold the
   * catalog refuses (the capacity went meanwhile) undoes what the quote wrote, leaves that offer
   * out, and plans again; a step left without candidates is infeasible, as it would have been.
   *
   * @throws DomainError `orders.quote_infeasible` (naming the step and why), `orders.region_not_offered`,
   *   `orders.quantity_out_of_range`, `orders.offering_not_available`, `orders.customer_required`,
   *   `offerings.offering_not_found`
   */
  async function quote(ctx: Context, request: QuoteRequest): Promise<QuoteView> {
    requireTransaction(ctx.db);
    const customerId = await customerOf(ctx, request.customerId);
    const { offering, version } = await offerings.getOffering(ctx, request.offeringKey);
    if (offering.status !== 'active') throw ordersErrors.offeringNotAvailable(offering.key);
    if (!version.regions.includes(request.region))
      throw ordersErrors.regionNotOffered(offering.key, request.region, version.regions);
    if (request.quantity < version.quantityMin || request.quantity > version.quantityMax)
      throw ordersErrors.quantityOutOfRange(version.quantityMin, version.quantityMax);

    const quoteId = newId('quo');
    const order = topologicalOrder(version.steps);
    const steps = new Map(version.steps.map((step) => [step.key, step]));
    /** Offers whose hold the catalog refused for this quote, and, per step, which and why. */
    const refusedOffers = new Set<string>();
    const skipped = new Map<string, { offerId: string; code: string }[]>();
    let feeVersion: Awaited<ReturnType<FeesService['versionInForce']>> | undefined;

    for (let attempt = 1; ; attempt++) {
      const plan = await planSteps(ctx, request, {
        customerId,
        version,
        order,
        steps,
        refusedOffers,
        quoteId,
      });
      if (feeVersion === undefined) feeVersion = await fees.versionInForce(ctx, ctx.now, version.currency);
      const { stored, legs } = await priceQuote(ctx, request, plan, {
        quoteId,
        customerId,
        offeringKey: offering.key,
        version,
        order,
        steps,
        feeVersionId: feeVersion?.id ?? null,
      });

      // The legs are allocated in the order they were planned (the last steps first).
      const planned = [...order].reverse();
      let quoted: QuoteLeg[] = [];
      const allocated = await matching.allocateAll(
        ctx,
        planned.map((key) => {
          const { request: demand, result } = plan.chosen.get(key) as PlannedStep;
          return { request: demand, result, skipped: skipped.get(key) ?? [] };
        }),
        async (ids) => {
          const idsByStep = new Map(planned.map((key, index) => [key, ids[index] as PlannedAllocation]));
          quoted = legs.map((leg) => {
            const held = idsByStep.get(leg.stepKey) as PlannedAllocation;
            return { ...leg, reservationId: held.reservationId, allocationId: held.allocationId };
          });
          await storeQuote(ctx, stored, quoted, version.version);
        },
      );
      if (allocated.allocated) return { quote: stored, legs: quoted };

      // The capacity of some chosen offers went meanwhile: plan again without them.
      for (const refusal of allocated.refused) {
        const key = planned[refusal.index] as string;
        refusedOffers.add(refusal.offerId);
        skipped.set(key, [...(skipped.get(key) ?? []), { offerId: refusal.offerId, code: refusal.code }]);
      }
      if (attempt >= ALLOCATION_CANDIDATES_MAX) {
        const key = planned[(allocated.refused[0] as { index: number }).index] as string;
        const step = steps.get(key) as Step;
        infeasible(
          await diagnose(ctx, step, {
            region: request.region,
            quantity: (plan.chosen.get(key) as PlannedStep).quantity,
            dueBy: new Date(plan.dueBy.get(key) as number),
            customerId,
          }),
          request.region,
        );
      }
    }
  }

  /**
   * Prices a plan: each leg's cost, the margin (or the fixed price split over the legs), the
   * commission under the fee schedule in force, and the expected times along the critical path.
   *
   * @throws DomainError `orders.quote_infeasible` (`price_below_cost`)
   */
  async function priceQuote(
    ctx: Context,
    request: QuoteRequest,
    plan: { chosen: ReadonlyMap<string, PlannedStep>; dueBy: ReadonlyMap<string, number> },
    quoted: {
      quoteId: QuoteId;
      customerId: CustomerId;
      offeringKey: string;
      version: OfferingWithVersion['version'];
      order: readonly string[];
      steps: ReadonlyMap<string, Step>;
      feeVersionId: string | null;
    },
  ): Promise<{ stored: Quote; legs: Omit<QuoteLeg, 'reservationId' | 'allocationId'>[] }> {
    const { version, order, steps, feeVersionId } = quoted;
    const nowMs = ctx.now.getTime();
    const grosses = order.map((key) => {
      const { result, quantity } = plan.chosen.get(key) as PlannedStep;
      return BigInt(result.unitPriceMinor) * BigInt(quantity);
    });
    const price = priceOrder(version.pricing, grosses, request.quantity);
    if (!price) {
      infeasible(
        { step: null, capability: null, reason: 'price_below_cost', exclusions: {}, offers: 0, dueBy: null },
        request.region,
      );
    }
    const expected = expectedTimes(
      order.map((key) => {
        const step = steps.get(key) as Step;
        return { key, after: step.after, leadTimeHours: plan.chosen.get(key)?.result.leadTimeHours ?? 0 };
      }),
      order,
      nowMs,
    );
    const legs: Omit<QuoteLeg, 'reservationId' | 'allocationId'>[] = [];
    let commissionMinor = 0n;
    // What the fee rules match on, as it stands now, in one read for every leg.
    const { customerSegment, partnerTiers } = await participants.feeMatchOf(
      ctx.db,
      quoted.customerId,
      [...plan.chosen.values()].map((chosen) => chosen.result.partnerId as PartnerId),
    );
    for (const [position, key] of order.entries()) {
      const step = steps.get(key) as Step;
      const { result, quantity } = plan.chosen.get(key) as PlannedStep;
      const grossMinor = grosses[position] as bigint;
      const commission = feeVersionId
        ? (
            await fees.commission(ctx, {
              versionId: feeVersionId,
              capability: step.capability,
              partnerId: result.partnerId as PartnerId,
              region: request.region,
              customerSegment,
              tier: partnerTiers.get(result.partnerId as PartnerId),
              amountMinor: grossMinor,
              currency: version.currency,
            })
          ).commissionMinor
        : 0n;
      commissionMinor += commission;
      const times = expected.get(key) as { startMs: number; finishMs: number };
      const json = matchResultJson(result);
      legs.push({
        stepKey: key,
        position,
        name: step.name,
        capability: step.capability,
        constraints: step.constraints as Record<string, unknown>,
        after: step.after,
        partnerId: result.partnerId as PartnerId,
        offerId: result.offerId as QuoteLeg['offerId'],
        quantity,
        unitPriceMinor: BigInt(result.unitPriceMinor),
        grossMinor,
        marginMinor: price.legMarginsMinor[position] as bigint,
        commissionMinor: commission,
        leadTimeHours: result.leadTimeHours,
        earliestStart: new Date(times.startMs),
        earliestFinish: new Date(times.finishMs),
        latestStart: new Date(result.startMs),
        dueBy: new Date(plan.dueBy.get(key) as number),
        score: result.score,
        breakdown: { rank: json.rank, score: json.score, ...json.breakdown },
      });
    }
    // A customer-side programme that covers this customer pays its share of the platform's
    // margin (a waiver and a rebate alike, the rebate given at the order as a lower charge).
    const subsidy = await settlement.subsidies.preview(ctx, {
      side: 'customer',
      customerId: quoted.customerId,
      ...(customerSegment !== null ? { customerSegment } : {}),
      region: request.region,
      feeMinor: price.marginMinor,
      currency: version.currency,
    });
    const stored: Quote = {
      id: quoted.quoteId,
      customerId: quoted.customerId,
      offeringKey: quoted.offeringKey,
      offeringVersionId: version.id,
      quantity: request.quantity,
      region: request.region,
      deadline: request.deadline,
      currency: version.currency,
      pricingKind: version.pricing.kind,
      costMinor: price.costMinor,
      marginMinor: price.marginMinor,
      totalMinor: price.totalMinor,
      commissionMinor,
      feeVersionId,
      subsidyMinor: subsidy?.amountMinor ?? 0n,
      subsidyProgrammeId: subsidy?.programmeId ?? null,
      subsidyKind: subsidy?.kind ?? null,
      earliestFinish: new Date(Math.max(...legs.map((leg) => leg.earliestFinish.getTime()))),
      validUntil: new Date(nowMs + version.quoteValidityMinutes * MINUTE_MS),
      orderId: null,
      createdAt: ctx.now,
    };
    return { stored, legs };
  }

  /**
   * Refuses a quote with `orders.offering_out_of_date` when a step's constraints no longer fit
   * its capability (a new version of the capability changed what offers describe): the
   * operator must publish the offering anew, which no partner can fix. Else returns.
   */
  async function refuseOutOfDate(
    ctx: Context,
    offeringKey: string,
    stepKey: string,
    step: Step,
  ): Promise<void> {
    const errors = await offerings.stepErrors(ctx, step);
    if (errors.length > 0)
      throw ordersErrors.offeringOutOfDate(offeringKey, stepKey, step.capability, errors);
  }

  /**
   * Chooses the best candidate for every step from the matcher's index, from the last steps
   * back: each is planned for the time the steps after it must start. Nothing is reserved.
   */
  async function planSteps(
    ctx: Context,
    request: QuoteRequest,
    plan: {
      customerId: CustomerId;
      version: OfferingWithVersion['version'];
      order: readonly string[];
      steps: ReadonlyMap<string, Step>;
      refusedOffers: ReadonlySet<string>;
      quoteId: string;
    },
  ): Promise<{ chosen: Map<string, PlannedStep>; dueBy: Map<string, number> }> {
    const { customerId, version, order, steps } = plan;
    const nowMs = ctx.now.getTime();
    const scheduled = version.steps.map((step) => ({ key: step.key, after: step.after, leadTimeHours: 0 }));
    const latestStart = new Map<string, number>();
    const dueBy = new Map<string, number>();
    const chosen = new Map<string, PlannedStep>();
    for (const key of [...order].reverse()) {
      const step = steps.get(key) as Step;
      const dueByMs = dueByOf(key, scheduled, latestStart, request.deadline.getTime());
      dueBy.set(key, dueByMs);
      const quantity = stepQuantity(step.quantityPerUnit, request.quantity);
      if (dueByMs <= nowMs) {
        infeasible(
          {
            step: key,
            capability: step.capability,
            reason: 'deadline_unreachable',
            exclusions: {},
            offers: 0,
            dueBy: new Date(dueByMs),
          },
          request.region,
        );
      }
      const demand: AllocationRequest = {
        capability: step.capability,
        region: request.region,
        quantity,
        neededBy: new Date(dueByMs),
        customerId,
        constraints: step.constraints as Record<string, AttributeConstraint>,
        holdMinutes: version.quoteValidityMinutes,
        reference: `${plan.quoteId}:${key}`,
        currency: version.currency,
      };
      const [best] = await matching
        .candidates(ctx, { ...demand, excludeOfferIds: plan.refusedOffers })
        .catch(async (error: unknown) => {
          if (isDomainError(error) && error.code === 'matching.constraints_invalid')
            await refuseOutOfDate(ctx, version.offeringKey, key, step);
          throw error;
        });
      if (!best) {
        // No partner can do it: because no offer fits, or because the step itself no longer does.
        await refuseOutOfDate(ctx, version.offeringKey, key, step);
        infeasible(
          await diagnose(ctx, step, {
            region: request.region,
            quantity,
            dueBy: new Date(dueByMs),
            customerId,
          }),
          request.region,
        );
      }
      chosen.set(key, { request: demand, result: best, quantity });
      latestStart.set(key, best.startMs);
    }
    return { chosen, dueBy };
  }

  /** Writes a quote and its legs, and announces it. */
  async function storeQuote(
    ctx: Context,
    stored: Quote,
    legs: readonly QuoteLeg[],
    offeringVersion: number,
  ): Promise<void> {
    await insertQuote(
      ctx.db,
      {
        id: stored.id,
        customer_id: stored.customerId,
        offering_key: stored.offeringKey,
        offering_version_id: stored.offeringVersionId,
        quantity: stored.quantity,
        region: stored.region,
        deadline: stored.deadline,
        currency: stored.currency,
        pricing_kind: stored.pricingKind,
        cost_minor: stored.costMinor,
        margin_minor: stored.marginMinor,
        total_minor: stored.totalMinor,
        commission_minor: stored.commissionMinor,
        fee_version_id: stored.feeVersionId,
        subsidy_minor: stored.subsidyMinor,
        subsidy_programme_id: stored.subsidyProgrammeId,
        subsidy_kind: stored.subsidyKind,
        earliest_finish: stored.earliestFinish,
        valid_until: stored.validUntil,
        order_id: null,
        created_at: stored.createdAt,
      },
      legs.map((leg) => ({
        quote_id: stored.id,
        step_key: leg.stepKey,
        position: leg.position,
        name: leg.name,
        capability: leg.capability,
        constraints: JSON.stringify(leg.constraints),
        after: [...leg.after],
        partner_id: leg.partnerId,
        offer_id: leg.offerId,
        reservation_id: leg.reservationId,
        allocation_id: leg.allocationId,
        quantity: leg.quantity,
        unit_price_minor: leg.unitPriceMinor,
        gross_minor: leg.grossMinor,
        margin_minor: leg.marginMinor,
        commission_minor: leg.commissionMinor,
        lead_time_hours: leg.leadTimeHours,
        earliest_start: leg.earliestStart,
        earliest_finish: leg.earliestFinish,
        latest_start: leg.latestStart,
        due_by: leg.dueBy,
        score: leg.score,
        breakdown: JSON.stringify(leg.breakdown),
      })),
    );
    await appendEvent(ctx, {
      type: 'quote.created',
      subjectId: stored.id,
      data: {
        id: stored.id,
        offering: stored.offeringKey,
        offering_version: offeringVersion,
        customer_id: stored.customerId,
        total: formatAmount(stored.totalMinor, parseCurrency(stored.currency)),
        charge: formatAmount(stored.totalMinor - stored.subsidyMinor, parseCurrency(stored.currency)),
        currency: stored.currency,
        valid_until: stored.validUntil.toISOString(),
      },
      audience: [stored.customerId],
    });
  }

  async function visibleQuote(ctx: Context, id: string, options: { lock?: boolean } = {}): Promise<Quote> {
    return quoteVisibleTo(ctx, await findQuote(ctx.db, id, options), id);
  }

  /** The quote found, if the actor may see it: another customer's is as absent as a missing one. */
  function quoteVisibleTo(ctx: Context, found: Quote | null | undefined, id: string): Quote {
    if (!found) throw ordersErrors.quoteNotFound(id);
    if (ctx.actor.kind === 'customer' && found.customerId !== ctx.actor.customerId)
      throw ordersErrors.quoteNotFound(id);
    if (ctx.actor.kind === 'partner') throw ordersErrors.quoteNotFound(id);
    return found;
  }

  // -----------------------------------------------------------------------------------------------
  // Orders

  async function visibleOrder(ctx: Context, id: string, options: { lock?: boolean } = {}): Promise<Order> {
    const found = await findOrder(ctx.db, id, options);
    if (!found) throw ordersErrors.orderNotFound(id);
    if (ctx.actor.kind === 'customer' && found.customerId !== ctx.actor.customerId)
      throw ordersErrors.orderNotFound(id);
    if (ctx.actor.kind === 'partner') throw ordersErrors.orderNotFound(id);
    return found;
  }

  async function orderEvent(ctx: Context, order: Order, type: string, data: Record<string, unknown> = {}) {
    await appendEvent(ctx, {
      type,
      subjectId: order.id,
      data: { id: order.id, status: order.status, offering: order.offeringKey, ...data },
      audience: [order.customerId],
    });
  }

  async function workOrderEvent(ctx: Context, workOrder: WorkOrder, type: string, customerId: string) {
    await appendEvent(ctx, {
      type,
      subjectId: workOrder.id,
      data: {
        id: workOrder.id,
        order_id: workOrder.orderId,
        step: workOrder.stepKey,
        partner_id: workOrder.partnerId,
        status: workOrder.status,
        late: workOrder.late,
        reason: workOrder.reason,
      },
      audience: [workOrder.partnerId, customerId],
    });
  }

  /**
   * Places the order of a quote: confirms its holds, records the payment and queues the charge.
   * The order is `awaiting_payment` until the provider answers.
   *
   * A subsidy the quote showed is paid now, from its programme's budget into the order's escrow,
   * and the payment is the total less it: escrow holds the whole total once the payment is
   * captured, and the legs are released from it as for any order. The customer is never charged
   * more than the quote said: when the programme can no longer pay the whole subsidy (its budget
   * or the customer's cap ran out, or it ended) the order is refused and nothing is charged.
   *
   * @throws DomainError `orders.quote_not_found`, `orders.quote_expired`, `orders.quote_already_ordered`,
   *   `orders.capacity_lost`, `orders.quote_subsidy_unavailable`, `payments.amount_invalid`
   */
  async function placeOrder(
    ctx: Context,
    input: { quoteId: QuoteId; paymentMethod: string },
  ): Promise<OrderView> {
    requireTransaction(ctx.db);
    // The quote (locked: one order per quote) and its legs in one query.
    const found = await findQuoteWithLegs(ctx.db, input.quoteId, { lock: true });
    const quoted = quoteVisibleTo(ctx, found?.quote, input.quoteId);
    const legs = (found as { legs: QuoteLeg[] }).legs;
    if (quoted.orderId) throw ordersErrors.quoteAlreadyOrdered(quoted.id, quoted.orderId);
    if (quoted.validUntil <= ctx.now) throw ordersErrors.quoteExpired(quoted.id, quoted.validUntil);
    const version = await offerings.getVersion(ctx.db, quoted.offeringVersionId);
    // The order keeps the fee schedule in force when it is placed: the quote's, unless a newer
    // version took effect since (the quote's commission was a preview; the customer's price
    // does not depend on it).
    const feeVersion = await fees.versionInForce(ctx, ctx.now, quoted.currency);
    // So does it keep its customer's segment and its partners' tiers, which the fee rules match on.
    const { customerSegment, partnerTiers } = await participants.feeMatchOf(
      ctx.db,
      quoted.customerId,
      legs.map((leg) => leg.partnerId),
    );
    const confirmed = await catalog.confirmReservations(
      ctx,
      legs.map((leg) => leg.reservationId),
    );
    for (const [position, result] of confirmed.entries()) {
      if (!('error' in result)) continue;
      if (result.error.code.startsWith('catalog.'))
        throw ordersErrors.capacityLost(quoted.id, (legs[position] as QuoteLeg).stepKey);
      throw result.error;
    }
    const orderId = newId('ord');
    const subsidy =
      quoted.subsidyMinor > 0n
        ? await settlement.subsidies.apply(asBaton(ctx), {
            side: 'customer',
            customerId: quoted.customerId,
            ...(customerSegment !== null ? { customerSegment } : {}),
            region: quoted.region,
            feeMinor: quoted.marginMinor,
            currency: quoted.currency,
            cause: { kind: 'order', id: orderId },
            beneficiary: escrowOf(orderId, quoted.currency),
            idempotencyKey: orderSubsidyKey(orderId),
            maxAmountMinor: quoted.subsidyMinor,
          })
        : null;
    const subsidyMinor = subsidy?.amountMinor ?? 0n;
    // Refusing rolls the subsidy back with the rest of the transaction.
    if (subsidyMinor !== quoted.subsidyMinor)
      throw ordersErrors.quoteSubsidyUnavailable(quoted.id, quoted.subsidyMinor, subsidyMinor);
    // The payment is recorded first, so that the order is written once, with it.
    const payment = await payments.recordIntent(ctx, {
      orderRef: orderId,
      customerId: quoted.customerId,
      paymentMethod: input.paymentMethod,
      amountMinor: quoted.totalMinor - subsidyMinor,
      currency: quoted.currency,
      reference: `order:${orderId}`,
    });
    const placed = await placeOrderRows(
      ctx.db,
      {
        id: orderId,
        quote_id: quoted.id,
        customer_id: quoted.customerId,
        offering_key: quoted.offeringKey,
        offering_version_id: quoted.offeringVersionId,
        quantity: quoted.quantity,
        region: quoted.region,
        deadline: quoted.deadline,
        currency: quoted.currency,
        pricing_kind: quoted.pricingKind,
        total_minor: quoted.totalMinor,
        fee_version_id: feeVersion?.id ?? null,
        customer_segment: customerSegment,
        partner_tiers: Object.fromEntries(partnerTiers),
        subsidy_minor: subsidyMinor,
        subsidy_programme_id: subsidy?.programmeId ?? null,
        rejection_policy: version.rejectionPolicy,
        max_redos: version.maxRedos,
        acceptance_window_minutes: version.acceptanceWindowMinutes,
        auto_confirm_hours: version.autoConfirmHours,
        status: 'awaiting_payment',
        payment_id: payment.id,
        refunded_minor: 0n,
        subsidy_returned_minor: 0n,
        refunded_alone_minor: 0n,
        refunds: 0,
        failure_code: null,
        failure_detail: null,
        created_at: ctx.now,
        updated_at: ctx.now,
        closed_at: null,
      },
      legs.map((leg) => ({
        order_id: orderId,
        step_key: leg.stepKey,
        position: leg.position,
        name: leg.name,
        capability: leg.capability,
        constraints: leg.constraints,
        after: [...leg.after],
        quantity: leg.quantity,
        budget_minor: leg.grossMinor + leg.marginMinor,
        status: 'planned',
        partner_id: leg.partnerId,
        offer_id: leg.offerId,
        reservation_id: leg.reservationId,
        unit_price_minor: leg.unitPriceMinor,
        gross_minor: leg.grossMinor,
        margin_minor: leg.marginMinor,
        lead_time_hours: leg.leadTimeHours,
        due_by: leg.dueBy,
        expected_start: leg.earliestStart,
        expected_finish: leg.earliestFinish,
        work_order_id: null,
        attempts: 0,
        replans: 0,
        failed_partner_ids: [],
        late: false,
        updated_at: ctx.now,
      })),
    );
    await jobs.enqueue(ctx, RESUME_PAYMENT_JOB, { paymentId: payment.id });
    await orderEvent(ctx, placed.order, 'order.placed', {
      quote_id: quoted.id,
      total: formatAmount(placed.order.totalMinor, parseCurrency(placed.order.currency)),
      charged: formatAmount(placed.order.totalMinor - subsidyMinor, parseCurrency(placed.order.currency)),
      currency: placed.order.currency,
      payment_id: payment.id,
    });
    return { order: placed.order, legs: placed.legs, workOrders: [] };
  }

  /** The payment of an order settled: start the order, or cancel it and give its capacity back. */
  async function paymentSettled(ctx: Context, payment: Payment): Promise<void> {
    // The order and its legs, locked, in one query.
    const locked = await lockOrder(ctx.db, { paymentId: payment.id });
    const order = locked?.order;
    if (!locked || order?.status !== 'awaiting_payment') return;
    if (payment.status === 'captured') {
      const started = await updateOrder(ctx.db, order.id, { status: 'in_progress', updated_at: ctx.now });
      await orderEvent(ctx, started, 'order.paid', { payment_id: payment.id });
      await dispatchReady(ctx, started, { legs: locked.legs, changed: [] });
      return;
    }
    for (const leg of locked.legs) await catalog.releaseReservation(ctx, leg.reservationId);
    // Nothing was charged: the subsidy paid into escrow goes back to its programme whole.
    const returned = order.subsidyMinor - order.subsidyReturnedMinor;
    if (returned > 0n) {
      await settlement.subsidies.refund(asBaton(ctx), {
        idempotencyKey: `${orderSubsidyKey(order.id)}:cancelled`,
        originalKey: orderSubsidyKey(order.id),
        amountMinor: returned,
      });
    }
    await saveLegs(
      ctx.db,
      order.id,
      locked.legs.map((leg) => ({ ...leg, status: 'cancelled' as const, updatedAt: ctx.now })),
    );
    const cancelled = await updateOrder(ctx.db, order.id, {
      status: 'cancelled',
      subsidy_returned_minor: order.subsidyReturnedMinor + returned,
      failure_code: `payment_${payment.status}`,
      failure_detail: payment.failureCode,
      updated_at: ctx.now,
      closed_at: ctx.now,
    });
    await orderEvent(ctx, cancelled, 'order.cancelled', { reason: `payment_${payment.status}` });
  }

  /**
   * Sends out a work order for every planned leg whose predecessors are finished, moves the
   * expected times of the legs that wait, and writes every changed leg in one statement.
   *
   * `known` are the order's legs as the caller holds them under the order's lock, with the
   * legs it changed and has not written yet; without it they are read (and locked) first.
   */
  async function dispatchReady(
    ctx: Context,
    order: Order,
    known?: { legs: readonly OrderLeg[]; changed: readonly OrderLeg[] },
  ): Promise<OrderLeg[]> {
    let legs = known ? [...known.legs] : await orderLegs(ctx.db, order.id, { lock: true });
    const changed = new Map((known?.changed ?? []).map((leg) => [leg.stepKey, leg]));
    const offered: WorkOrder[] = [];
    if (order.status === 'in_progress') {
      const finished = new Set(
        legs.filter((leg) => FINISHED_LEGS.includes(leg.status)).map((leg) => leg.stepKey),
      );
      const ready = new Set(
        readySteps(
          legs.map((leg) => ({ key: leg.stepKey, after: leg.after, leadTimeHours: leg.leadTimeHours })),
          finished,
        ).map((step) => step.key),
      );
      // The legs waiting move with when their predecessors actually finished (earlier or later
      // than planned) before any goes out, so a leg goes out with the times it now has.
      for (const leg of rescheduled(ctx, legs)) changed.set(leg.stepKey, leg);
      legs = legs.map((leg) => changed.get(leg.stepKey) ?? leg);
      const { legs: dispatched, workOrders } = await offerWork(
        ctx,
        order,
        legs.filter((leg) => leg.status === 'planned' && ready.has(leg.stepKey)),
      );
      offered.push(...workOrders);
      for (const leg of dispatched) changed.set(leg.stepKey, leg);
      legs = legs.map((leg) => changed.get(leg.stepKey) ?? leg);
    }
    await saveLegs(ctx.db, order.id, [...changed.values()], offered);
    return legs;
  }

  /**
   * Offers legs to their planned partners as new work orders, with an event each. Returns the
   * legs as dispatched and their work orders; the caller writes both (`saveLegs`).
   */
  async function offerWork(
    ctx: Context,
    order: Order,
    legs: readonly OrderLeg[],
  ): Promise<{ legs: OrderLeg[]; workOrders: WorkOrder[] }> {
    const dispatched: OrderLeg[] = [];
    const workOrders: WorkOrder[] = [];
    for (const leg of legs) {
      const workOrder: WorkOrder = {
        id: newId('wko'),
        orderId: order.id,
        stepKey: leg.stepKey,
        attempt: leg.attempts + 1,
        partnerId: leg.partnerId,
        offerId: leg.offerId,
        reservationId: leg.reservationId,
        capability: leg.capability,
        region: order.region,
        quantity: leg.quantity,
        currency: order.currency,
        unitPriceMinor: leg.unitPriceMinor,
        grossMinor: leg.grossMinor,
        status: 'offered',
        acceptBy: new Date(ctx.now.getTime() + order.acceptanceWindowMinutes * MINUTE_MS),
        dueBy: leg.dueBy,
        confirmBy: null,
        late: false,
        reason: null,
        offeredAt: ctx.now,
        acceptedAt: null,
        startedAt: null,
        deliveredAt: null,
        closedAt: null,
        updatedAt: ctx.now,
      };
      workOrders.push(workOrder);
      dispatched.push({
        ...leg,
        status: 'dispatched',
        workOrderId: workOrder.id,
        attempts: workOrder.attempt,
        updatedAt: ctx.now,
      });
      await workOrderEvent(ctx, workOrder, 'work_order.offered', order.customerId);
    }
    return { legs: dispatched, workOrders };
  }

  /**
   * Pure: when each leg of an order is expected to start and finish, along the graph as a quote
   * schedules it: a leg starts when its predecessors are expected done, and not before now. The
   * legs under way or closed keep their times (`fixed`), except `replanning`, a leg about to be
   * given to another partner, which starts when its predecessors let it.
   */
  function schedule(ctx: Context, legs: readonly OrderLeg[], replanning?: string) {
    const fixed = new Map<string, { startMs: number; finishMs: number }>();
    for (const leg of legs) {
      if (leg.stepKey === replanning) continue;
      if (CLOSED_LEGS.includes(leg.status) || leg.status === 'dispatched')
        fixed.set(leg.stepKey, {
          startMs: leg.expectedStart.getTime(),
          finishMs: leg.expectedFinish.getTime(),
        });
    }
    const scheduled = legs.map((leg) => ({
      key: leg.stepKey,
      after: leg.after,
      leadTimeHours: leg.leadTimeHours,
    }));
    const times = expectedTimes(
      scheduled,
      legs.map((leg) => leg.stepKey),
      ctx.now.getTime(),
      fixed,
    );
    return { fixed, times };
  }

  /**
   * Pure: the legs not under way whose expected times move, each starting when its predecessors
   * are done, with their new times.
   */
  function rescheduled(ctx: Context, legs: readonly OrderLeg[]): OrderLeg[] {
    const { fixed, times } = schedule(ctx, legs);
    const moved: OrderLeg[] = [];
    for (const leg of legs) {
      if (fixed.has(leg.stepKey)) continue;
      const next = times.get(leg.stepKey);
      if (!next) continue;
      if (next.startMs === leg.expectedStart.getTime() && next.finishMs === leg.expectedFinish.getTime())
        continue;
      moved.push({
        ...leg,
        expectedStart: new Date(next.startMs),
        expectedFinish: new Date(next.finishMs),
        updatedAt: ctx.now,
      });
    }
    return moved;
  }

  /**
   * Flags a work order and its leg late, with an event. The timers flag work still owed after
   * its due time; a partner's work that ends after its due time before they ran is flagged as it
   * ends (`flaggedIfLate`), so that lateness does not depend on when the timers ran. Callers hold
   * the order's lock and flag only work not flagged yet: each late work order has one event.
   */
  async function flagLate(ctx: Context, order: Order, workOrder: WorkOrder): Promise<WorkOrder> {
    const flagged = await updateWorkOrder(ctx.db, workOrder.id, { late: true, updated_at: ctx.now });
    await updateLeg(ctx.db, order.id, workOrder.stepKey, { late: true, updated_at: ctx.now });
    await workOrderEvent(ctx, flagged, 'work_order.late', order.customerId);
    return flagged;
  }

  /**
   * A work order just moved: when the move ended its partner's work (delivered, declined, expired,
   * cancelled) after its due time and the timers had not flagged it yet, it is flagged late now.
   * Work delivered at its due time is on time.
   */
  async function flaggedIfLate(ctx: Context, order: Order, moved: WorkOrder): Promise<WorkOrder> {
    if (moved.late || OWED.includes(moved.status) || moved.dueBy.getTime() >= ctx.now.getTime()) return moved;
    return flagLate(ctx, order, moved);
  }

  /** A transition the state machine allows, with its timestamps, written under the row's lock. */
  async function transition(
    ctx: Context,
    workOrder: WorkOrder,
    to: WorkOrderStatus,
    extra: { reason?: string | null; confirmBy?: Date } = {},
  ): Promise<WorkOrder> {
    if (!canTransition(workOrder.status, to))
      throw ordersErrors.transitionNotAllowed(workOrder.id, workOrder.status, to);
    return updateWorkOrder(ctx.db, workOrder.id, {
      status: to,
      ...transitionStamps(ctx, to, extra),
      ...(to === 'delivered' ? { confirm_by: extra.confirmBy ?? null } : {}),
    });
  }

  /** What a transition to `to` writes besides the status: when it happened, and why. */
  function transitionStamps(ctx: Context, to: WorkOrderStatus, extra: { reason?: string | null } = {}) {
    const closing = ['declined', 'expired', 'confirmed', 'rejected', 'cancelled'].includes(to);
    return {
      updated_at: ctx.now,
      ...(to === 'accepted' ? { accepted_at: ctx.now } : {}),
      ...(to === 'in_progress' ? { started_at: ctx.now } : {}),
      ...(to === 'delivered' ? { delivered_at: ctx.now } : {}),
      ...(closing ? { closed_at: ctx.now } : {}),
      ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
    };
  }

  /** A transition to `to` as `lockOrder` makes it, in the statement that locks the work order. */
  function moveTo(ctx: Context, to: WorkOrderStatus, extra: { reason?: string | null } = {}): WorkOrderMove {
    return { to, from: statusesBefore(to), set: transitionStamps(ctx, to, extra) };
  }

  /**
   * Locks an order, all its legs and one leg's current work order, in that order (no deadlocks):
   * in one statement, or step by step when that cannot tell (a leg without a work order, or
   * one whose work order changed while the statement waited for the order).
   */
  async function lockLeg(ctx: Context, orderId: string, stepKey: string): Promise<LockedLeg> {
    return (await lockLegAtOnce(ctx, { orderId, stepKey })) ?? lockLegStepwise(ctx, orderId, stepKey);
  }

  async function lockLegAtOnce(
    ctx: Context,
    target: { orderId: string; stepKey: string; customerId?: string | undefined },
  ): Promise<LockedLeg | undefined> {
    const locked = await lockOrder(ctx.db, target);
    const leg = locked?.legs.find((candidate) => candidate.stepKey === target.stepKey);
    if (!locked || !leg || leg.workOrderId !== locked.workOrder?.id) return undefined;
    return { order: locked.order, legs: locked.legs, leg, workOrder: locked.workOrder };
  }

  async function lockLegStepwise(ctx: Context, orderId: string, stepKey: string): Promise<LockedLeg> {
    const order = await findOrder(ctx.db, orderId, { lock: true });
    assert(order, `order ${orderId} vanished`);
    const legs = await orderLegs(ctx.db, orderId, { lock: true });
    const leg = legs.find((candidate) => candidate.stepKey === stepKey);
    if (!leg) throw ordersErrors.legNotFound(orderId, stepKey);
    const workOrder = leg.workOrderId ? await findWorkOrder(ctx.db, leg.workOrderId, { lock: true }) : null;
    return { order, legs, leg, workOrder };
  }

  /**
   * A partner's answer to a work order: accept, decline, start, deliver. A decline re-plans the
   * leg with the next-best partner (or compensates the order when none can do it in time).
   *
   * @throws DomainError `orders.work_order_not_found`, `orders.transition_not_allowed`,
   *   `orders.acceptance_window_closed`
   */
  async function partnerAction(
    ctx: Context,
    id: WorkOrderId,
    action: PartnerAction,
    reason: string | null = null,
  ): Promise<WorkOrder> {
    requireTransaction(ctx.db);
    if (ctx.actor.kind === 'customer') throw ordersErrors.workOrderNotFound(id);
    const to = PARTNER_ACTIONS[action];
    // The work order's order, its legs and the work order, locked, and the work order moved if
    // it may be, in one statement; a partner reaches only its own work orders (and locks
    // nothing of another partner's).
    const locked = await lockOrder(
      ctx.db,
      { workOrderId: id, partnerId: ctx.actor.kind === 'partner' ? ctx.actor.partnerId : undefined },
      {
        ...moveTo(ctx, to, action === 'decline' ? { reason } : {}),
        ...(action === 'accept' ? { openAt: ctx.now } : {}),
        ...(action === 'deliver' ? { confirmHoursFrom: ctx.now } : {}),
      },
    );
    if (!locked?.workOrder) throw ordersErrors.workOrderNotFound(id);
    const { order, legs } = locked;
    const current = locked.workOrder;
    const leg = legs.find((candidate) => candidate.stepKey === current.stepKey);
    if (!leg) throw ordersErrors.legNotFound(order.id, current.stepKey);
    const moved = locked.moved;
    if (!moved) {
      if (!canTransition(current.status, to)) throw ordersErrors.transitionNotAllowed(id, current.status, to);
      if (action === 'accept' && current.acceptBy <= ctx.now)
        throw ordersErrors.acceptanceWindowClosed(id, current.acceptBy);
      assert(false, `work order ${id} may move to ${to} but was not moved`);
    }
    if (action === 'accept' || action === 'start') {
      // Work is taken on only by a partner in good standing: a suspended one's legs not started
      // are given to others by the timers. Refusing rolls the move back with it.
      const { state } = await participants.getPartner(asBaton(ctx), current.partnerId as PartnerId);
      if (!ENGAGED_STATES.includes(state)) throw ordersErrors.partnerNotEngaged(id, current.partnerId, state);
    }
    const updated = await flaggedIfLate(ctx, order, moved);
    await workOrderEvent(ctx, updated, `work_order.${to}`, order.customerId);
    if (action === 'start') {
      const started: OrderLeg = {
        ...leg,
        expectedStart: ctx.now,
        expectedFinish: new Date(ctx.now.getTime() + leg.leadTimeHours * HOUR_MS),
        updatedAt: ctx.now,
      };
      const next = legs.map((candidate) => (candidate.stepKey === leg.stepKey ? started : candidate));
      const waiting = rescheduled(ctx, next).filter((candidate) => candidate.stepKey !== leg.stepKey);
      await saveLegs(ctx.db, order.id, [started, ...waiting]);
    }
    if (action === 'decline') await repair(asBaton(ctx), order, leg, 'declined');
    return updated;
  }

  /**
   * An operator takes work away from its partner: work not started (offered or accepted) at any
   * time, work in progress once its due time has passed, with a reason. The work order is
   * cancelled, and the partner is paid nothing for it; the leg is repaired as after a decline:
   * given to the next-best partner that can still do it by its due time or, when none can (as
   * when the due time has passed), the order compensates and the customer is refunded what was
   * not done.
   *
   * @throws DomainError `orders.work_order_not_found`, `orders.transition_not_allowed`,
   *   `orders.work_order_not_overdue`
   */
  async function withdraw(ctx: Context, id: WorkOrderId, reason: string): Promise<WorkOrder> {
    requireTransaction(ctx.db);
    if (ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system')
      throw ordersErrors.workOrderNotFound(id);
    const found = await findWorkOrder(ctx.db, id);
    if (!found) throw ordersErrors.workOrderNotFound(id);
    const { order, leg, workOrder } = await lockLeg(ctx, found.orderId, found.stepKey);
    // Only the leg's current work order can still be owed: one before it is closed.
    if (workOrder?.id !== id || !OWED.includes(workOrder.status)) {
      const closed = workOrder?.id === id ? workOrder : ((await findWorkOrder(ctx.db, id)) ?? found);
      throw ordersErrors.transitionNotAllowed(id, closed.status, 'cancelled');
    }
    // A partner that has started has work in hand: it keeps it until its due time.
    if (workOrder.status === 'in_progress' && workOrder.dueBy > ctx.now)
      throw ordersErrors.workOrderNotOverdue(id, workOrder.dueBy);
    const withdrawn = await flaggedIfLate(
      ctx,
      order,
      await transition(ctx, workOrder, 'cancelled', { reason: `withdrawn: ${reason}` }),
    );
    await workOrderEvent(ctx, withdrawn, 'work_order.withdrawn', order.customerId);
    await repair(asBaton(ctx), order, leg, 'withdrawn');
    return withdrawn;
  }

  /**
   * The customer's (or an operator's) judgement of a delivered leg. Confirming releases the
   * partner's share from escrow and sends out the legs that were waiting for this one;
   * rejecting refunds the leg or has it redone, as the offering says.
   *
   * @throws DomainError `orders.order_not_found`, `orders.leg_not_found`, `orders.leg_not_delivered`
   */
  async function customerAction(
    ctx: Context,
    orderId: OrderId,
    stepKey: string,
    action: CustomerAction,
    reason: string | null = null,
  ): Promise<OrderView> {
    requireTransaction(ctx.db);
    if (ctx.actor.kind === 'partner') throw ordersErrors.orderNotFound(orderId);
    const to = CUSTOMER_ACTIONS[action];
    // The order, its legs and the leg's work order, locked, and the work order moved if it was
    // delivered, in one statement. A customer reaches only its own orders, and locks nothing
    // of another's.
    const fast = await lockOrder(
      ctx.db,
      { orderId, stepKey, customerId: ctx.actor.kind === 'customer' ? ctx.actor.customerId : undefined },
      moveTo(ctx, to, action === 'reject' ? { reason } : {}),
    );
    const fastLeg = fast?.legs.find((candidate) => candidate.stepKey === stepKey);
    let locked: LockedLeg & { workOrder: WorkOrder };
    let moved: WorkOrder;
    if (fast?.workOrder && fastLeg && fastLeg.workOrderId === fast.workOrder.id) {
      if (!fast.moved) throw ordersErrors.legNotDelivered(orderId, stepKey);
      locked = { order: fast.order, legs: fast.legs, leg: fastLeg, workOrder: fast.workOrder };
      moved = fast.moved;
    } else {
      // A leg without a work order, or one whose work order changed meanwhile: step by step.
      await visibleOrder(ctx, orderId);
      const stepwise = await lockLegStepwise(ctx, orderId, stepKey);
      const { workOrder } = stepwise;
      if (workOrder?.status !== 'delivered') throw ordersErrors.legNotDelivered(orderId, stepKey);
      locked = { ...stepwise, workOrder };
      moved = await transition(ctx, workOrder, to, action === 'reject' ? { reason } : {});
    }
    if (action === 'confirm') await confirmLeg(ctx, locked, moved);
    else await rejectLeg(ctx, locked.order, locked.leg, moved);
    return view(ctx, orderId);
  }

  /**
   * Closes a confirmed leg, locked with its order and the order's other legs: `confirmed` is its
   * work order, just moved to `confirmed`.
   */
  async function confirmLeg(
    ctx: Context,
    { order, legs, leg }: LockedLeg,
    confirmed: WorkOrder,
  ): Promise<void> {
    await workOrderEvent(ctx, confirmed, 'work_order.confirmed', order.customerId);
    const baton = asBaton(ctx);
    await releaseLeg(baton, settlement, {
      orderRef: order.id,
      legRef: confirmed.id,
      partnerId: confirmed.partnerId,
      capability: leg.capability,
      region: order.region,
      // What the order was placed with; a partner that took the leg over later has its tier now.
      ...(order.customerSegment !== null ? { customerSegment: order.customerSegment } : {}),
      ...(order.partnerTiers[confirmed.partnerId] !== undefined
        ? { tier: order.partnerTiers[confirmed.partnerId] as string }
        : {}),
      grossMinor: leg.grossMinor,
      marginMinor: leg.marginMinor,
      currency: order.currency,
      feeVersionId: order.feeVersionId,
    });
    const done: OrderLeg = { ...leg, status: 'done', expectedFinish: ctx.now, updatedAt: ctx.now };
    // Nothing above changes the order or its legs: what was locked is current, with this leg done.
    await afterLegClosed(baton, order, {
      legs: legs.map((candidate) => (candidate.stepKey === leg.stepKey ? done : candidate)),
      changed: [done],
    });
  }

  /** Closes or redoes a rejected leg: `rejected` is its work order, just moved to `rejected`. */
  async function rejectLeg(ctx: Context, order: Order, leg: OrderLeg, rejected: WorkOrder): Promise<void> {
    await workOrderEvent(ctx, rejected, 'work_order.rejected', order.customerId);
    const baton = asBaton(ctx);
    let why = `rejected ${leg.stepKey}`;
    if (order.rejectionPolicy === 'redo' && order.status === 'in_progress') {
      const rejections = (await workOrdersOf(ctx.db, order.id)).filter(
        (workOrder) => workOrder.stepKey === leg.stepKey && workOrder.status === 'rejected',
      ).length;
      if (rejections <= order.maxRedos) {
        // The same partner does the work again, for the same money; the first attempt is not paid.
        const redone = await offerWork(baton, order, [{ ...leg, status: 'planned' }]);
        await saveLegs(ctx.db, order.id, redone.legs, redone.workOrders);
        return;
      }
      // Redone as often as the offering allows: this rejection is refunded.
      why = `rejected ${leg.stepKey} after ${order.maxRedos} ${order.maxRedos === 1 ? 'redo' : 'redos'}`;
    }
    await refund(baton, order, leg.budgetMinor, why, leg.stepKey);
    // Finished now, as a confirmed leg is: the legs after it start from here, not its planned finish.
    await updateLeg(ctx.db, order.id, leg.stepKey, {
      status: 'refunded',
      expected_finish: ctx.now,
      updated_at: ctx.now,
    });
    await catalog.releaseReservation(baton, leg.reservationId);
    await afterLegClosed(baton, order);
  }

  /**
   * After a leg closed: send out what waited for it, and close the order when nothing is left.
   * `known` is the order's legs as the caller holds them (with the legs it changed and has not
   * written), when `order` is current too; without it both are read again.
   */
  async function afterLegClosed(
    ctx: Context,
    order: Order,
    known?: { legs: readonly OrderLeg[]; changed: readonly OrderLeg[] },
  ): Promise<void> {
    const current = known ? order : ((await findOrder(ctx.db, order.id)) as Order);
    const legs = await dispatchReady(ctx, current, known);
    if (!legs.every((leg) => CLOSED_LEGS.includes(leg.status))) return;
    const status: OrderStatus = current.status === 'compensating' ? 'failed' : 'completed';
    const closed = await updateOrder(ctx.db, order.id, { status, updated_at: ctx.now, closed_at: ctx.now });
    await orderEvent(ctx, closed, `order.${status}`, {
      refunded: formatAmount(closed.refundedMinor, parseCurrency(closed.currency)),
    });
  }

  /**
   * Refunds `amountMinor` of the order's value from its money (escrow first), the customer's
   * part through the provider. A subsidised order's refund is split between the customer and
   * the subsidy's programme in the proportions the order was paid in (charged : subsidy), by
   * largest remainder on the refunds so far plus this one: the parts always sum to the refund,
   * many partial refunds add up to one refund of their sum, and the customer never gets back
   * more than it paid. The programme's part goes back from escrow into its budget.
   *
   * When chargebacks already gave the customer back part of the order, the customer is refunded
   * no more than the order has left for it. What Baton gives back of its own accord (a leg that
   * was not done) keeps the rest in the platform's money, recovering what the chargeback cost
   * it; a refund by hand (`beyondChargebacks: 'refuse'`) is refused instead, before anything moves.
   */
  async function refund(
    ctx: Context,
    order: Order,
    amountMinor: bigint,
    why: string,
    /** The leg refunded, when it is one leg's part. */
    step?: string,
    options: { beyondChargebacks: 'recover' | 'refuse' } = { beyondChargebacks: 'recover' },
  ): Promise<{ customerMinor: bigint; subsidyMinor: bigint }> {
    if (amountMinor <= 0n) return { customerMinor: 0n, subsidyMinor: 0n };
    const current = (await findOrder(ctx.db, order.id)) as Order;
    const refundRef = nextRefundRef(current);
    const chargedMinor = current.totalMinor - current.subsidyMinor;
    const split = (amount: bigint) =>
      current.subsidyMinor > 0n ? allocate(amount, [chargedMinor, current.subsidyMinor]) : [amount, 0n];
    const before = current.refundedMinor + current.subsidyReturnedMinor;
    const [customerBefore = 0n, subsidyBefore = 0n] = split(before);
    const [customerAfter = 0n, subsidyAfter = 0n] = split(before + amountMinor);
    const customerPart = customerAfter - customerBefore;
    const subsidyPart = subsidyAfter - subsidyBefore;
    assert(customerPart >= 0n && subsidyPart >= 0n, 'a refund splits into parts of zero or more');
    if (subsidyPart > 0n) {
      await settlement.subsidies.refund(ctx, {
        idempotencyKey: `${refundRef}:subsidy`,
        originalKey: orderSubsidyKey(order.id),
        amountMinor: subsidyPart,
      });
    }
    let toCustomerMinor = customerPart;
    let chargedBackMinor = 0n;
    if (customerPart > 0n) {
      const released = (await workOrdersOf(ctx.db, order.id))
        .filter((workOrder) => workOrder.status === 'confirmed')
        .map((workOrder) => workOrder.id);
      const refundRefs = { orderRef: order.id, currency: order.currency, releasedLegRefs: released };
      if (options.beyondChargebacks === 'recover') {
        const after = await refundableAfterChargebacks(ctx, settlement, refundRefs);
        if (after && after.refundableMinor < customerPart) {
          toCustomerMinor = after.refundableMinor;
          chargedBackMinor = customerPart - toCustomerMinor;
          await recoverChargedBack(ctx, settlement, {
            ...refundRefs,
            refundRef,
            amountMinor: chargedBackMinor,
          });
        }
      }
      if (toCustomerMinor > 0n)
        await refundOrder(ctx, settlement, { ...refundRefs, refundRef, amountMinor: toCustomerMinor });
    }
    await updateOrder(ctx.db, order.id, {
      refunded_minor: current.refundedMinor + toCustomerMinor,
      subsidy_returned_minor: current.subsidyReturnedMinor + subsidyPart,
      refunds: current.refunds + 1,
      updated_at: ctx.now,
    });
    if (toCustomerMinor > 0n) {
      assert(current.paymentId, `order ${order.id} has no payment to refund`);
      await jobs.enqueue<ProviderRefundJob>(ctx, PROVIDER_REFUND_JOB, {
        paymentId: current.paymentId,
        reference: refundRef,
        amountMinor: toCustomerMinor.toString(),
      });
    }
    await orderEvent(ctx, current, 'order.refunded', {
      amount: formatAmount(toCustomerMinor, parseCurrency(order.currency)),
      ...(chargedBackMinor > 0n
        ? { already_charged_back: formatAmount(chargedBackMinor, parseCurrency(order.currency)) }
        : {}),
      ...(subsidyPart > 0n
        ? { subsidy_returned: formatAmount(subsidyPart, parseCurrency(order.currency)) }
        : {}),
      currency: order.currency,
      reason: why,
      ...(step !== undefined ? { step } : {}),
    });
    return { customerMinor: toCustomerMinor, subsidyMinor: subsidyPart };
  }

  /**
   * What a refund by hand of an order would take back: one confirmed leg's work order (by
   * `stepKey`), or, without it, the order's confirmed legs once it has closed.
   *
   * @throws DomainError `settlement.amount_invalid`, `orders.currency_mismatch`, `orders.leg_not_found`,
   *   `orders.refund_not_allowed`
   */
  async function refundTarget(
    ctx: Context,
    order: Order,
    input: Pick<RefundByHand, 'amountMinor' | 'currency' | 'stepKey'>,
  ): Promise<WorkOrderId | undefined> {
    if (input.amountMinor <= 0n) throw settlementErrors.amountInvalid();
    if (input.currency !== order.currency)
      throw ordersErrors.currencyMismatch(order.id, order.currency, input.currency);
    if (input.stepKey === null) {
      if (order.status !== 'completed' && order.status !== 'failed')
        throw ordersErrors.refundNotAllowed(order.id, order.status, null);
      return undefined;
    }
    const leg = (await orderLegs(ctx.db, order.id)).find((candidate) => candidate.stepKey === input.stepKey);
    if (!leg) throw ordersErrors.legNotFound(order.id, input.stepKey);
    if (leg.status !== 'done' || !leg.workOrderId)
      throw ordersErrors.refundNotAllowed(order.id, leg.status, input.stepKey);
    return leg.workOrderId;
  }

  /**
   * Checks that a refund by hand could be made of the order as it stands, before a second
   * operator is asked to approve it (which checks again, amounts included).
   *
   * @throws DomainError `orders.order_not_found`, and as `refundTarget`
   */
  async function checkRefundByHand(ctx: Context, orderId: OrderId, input: RefundByHand): Promise<void> {
    if (ctx.actor.kind !== 'operator') throw ordersErrors.orderNotFound(orderId);
    const order = await findOrder(ctx.db, orderId);
    if (!order) throw ordersErrors.orderNotFound(orderId);
    await refundTarget(ctx, order, input);
  }

  /**
   * An operator's refund of `amountMinor` of an order's value: of one confirmed leg (`stepKey`,
   * that partner's part), or of a completed or failed order (its confirmed legs in proportion to
   * what each can still give back). The legs' money comes back into the order's escrow as a
   * refund reverses it (partner share from its payable or as a debt, commission and margin), and
   * from there is divided as every refund of the order is: the customer's part through the
   * provider, a customer-side subsidy's part back to its programme's budget. While an order runs,
   * its escrow belongs to the legs not yet confirmed, so an order-wide refund waits for it to close.
   * Each partner whose earnings go back gets a `work_order.refunded` event: what of its own share
   * it gives back, and what of that it now owes (its payable being short).
   *
   * Unless a second operator `approved` it (a refund request), neither what the order is given
   * back by hand alone nor what the acting operator gave back by hand alone today (UTC), this
   * refund included, may exceed the threshold set for its currency. Approved refunds count in
   * neither.
   *
   * @throws DomainError `orders.order_not_found`, `orders.leg_not_found`, `orders.refund_not_allowed`,
   *   `orders.currency_mismatch`, `orders.refund_needs_approval`, `settlement.refund_exceeds_order`,
   *   `settlement.refund_exceeds_leg`, `settlement.refund_exceeds_after_chargebacks`
   */
  async function refundByHand(
    ctx: Context,
    orderId: OrderId,
    input: RefundByHand,
    options: { approved?: boolean } = {},
  ): Promise<OrderView & { customerMinor: bigint; subsidyMinor: bigint }> {
    requireTransaction(ctx.db);
    if (ctx.actor.kind !== 'operator') throw ordersErrors.orderNotFound(orderId);
    const order = await findOrder(ctx.db, orderId, { lock: true });
    if (!order) throw ordersErrors.orderNotFound(orderId);
    const legRef = await refundTarget(ctx, order, input);
    if (!options.approved) {
      // Four eyes above the currency's threshold, counting what the order was given back alone
      // before, and what this operator gave back alone today over all orders: refunds of one
      // order take turns on its row and one operator's on its day's row, so two cannot both
      // slip under it. The day's row is taken after the order's, and refused refunds roll back.
      const threshold = await refundThreshold(ctx.db, order.currency);
      const today = await addRefundedAlone(ctx.db, {
        userId: ctx.actor.userId,
        currency: order.currency,
        day: ctx.now.toISOString().slice(0, 10),
        minor: input.amountMinor,
      });
      if (
        threshold &&
        (order.refundedAloneMinor + input.amountMinor > threshold.approvalAboveMinor ||
          today > threshold.approvalAboveMinor)
      )
        throw ordersErrors.refundNeedsApproval(orderId, order.currency, threshold.approvalAboveMinor, {
          orderMinor: order.refundedAloneMinor,
          todayMinor: today - input.amountMinor,
        });
      await updateOrder(ctx.db, orderId, {
        refunded_alone_minor: order.refundedAloneMinor + input.amountMinor,
      });
    }
    const baton = asBaton(ctx);
    const confirmed = (await workOrdersOf(ctx.db, orderId)).filter(
      (workOrder) => workOrder.status === 'confirmed',
    );
    const reclaims = await reclaimReleasedLegs(baton, settlement, {
      orderRef: orderId,
      refundRef: nextRefundRef(order),
      amountMinor: input.amountMinor,
      releasedLegRefs: confirmed.map((workOrder) => workOrder.id),
      ...(legRef !== undefined ? { legRef } : {}),
    });
    // Each partner whose earnings went back is told, with how much of its own share it was.
    const currency = parseCurrency(order.currency);
    for (const reclaim of reclaims) {
      const workOrder = confirmed.find((candidate) => candidate.id === reclaim.cause.id);
      assert(workOrder, `reclaim ${reclaim.id} names a confirmed work order of order ${orderId}`);
      await appendEvent(baton, {
        type: 'work_order.refunded',
        subjectId: workOrder.id,
        data: {
          id: workOrder.id,
          order_id: orderId,
          step: workOrder.stepKey,
          partner_id: workOrder.partnerId,
          amount: formatAmount(BigInt(reclaim.metadata.partner ?? '0'), currency),
          owed: formatAmount(BigInt(reclaim.metadata.clawed_back_as_debt ?? '0'), currency),
          currency: order.currency,
          reason: input.reason,
        },
        audience: [workOrder.partnerId],
      });
    }
    const parts = await refund(baton, order, input.amountMinor, input.reason, input.stepKey ?? undefined, {
      beyondChargebacks: 'refuse',
    });
    return { ...(await view(ctx, orderId)), ...parts };
  }

  /**
   * Gives a leg that its partner will not do (declined, expired, suspended) to the next-best
   * candidate that can still finish by the leg's due time, starting when the leg can start (when
   * its predecessors are expected done, or now), for no more than the customer paid for the leg;
   * compensates the order when none can. The legs after it move with its new lead time.
   */
  async function repair(
    ctx: Context,
    order: Order,
    leg: OrderLeg,
    cause: 'declined' | 'expired' | 'partner_unavailable' | 'withdrawn',
  ): Promise<void> {
    await catalog.releaseReservation(ctx, leg.reservationId);
    const failed = [...new Set([...leg.failedPartnerIds, leg.partnerId])];
    await updateLeg(ctx.db, order.id, leg.stepKey, { failed_partner_ids: failed, updated_at: ctx.now });
    if (order.status !== 'in_progress' && order.status !== 'awaiting_payment') {
      await updateLeg(ctx.db, order.id, leg.stepKey, { status: 'cancelled', updated_at: ctx.now });
      await refund(ctx, order, leg.budgetMinor, `${leg.stepKey} ${cause}`, leg.stepKey);
      await afterLegClosed(ctx, order);
      return;
    }
    const replan = leg.replans + 1;
    const earliestStartMs = (
      schedule(ctx, await orderLegs(ctx.db, order.id), leg.stepKey).times.get(leg.stepKey) as {
        startMs: number;
      }
    ).startMs;
    await sql`savepoint orders_replan`.execute(ctx.db);
    let replacement: AllocationOutcome | null;
    try {
      replacement = await replacementFor(
        ctx,
        {
          capability: leg.capability,
          region: order.region,
          quantity: leg.quantity,
          neededBy: leg.dueBy,
          customerId: order.customerId,
          constraints: leg.constraints as Record<string, AttributeConstraint>,
          holdMinutes: 1,
          reference: `${order.id}:${leg.stepKey}:replan:${replan}`,
          currency: order.currency,
          excludePartnerIds: failed,
          maxUnitPriceMinor: Number(leg.budgetMinor / BigInt(leg.quantity)),
        },
        earliestStartMs,
      );
    } catch (error) {
      // No partner can take the leg over when its constraints no longer fit its capability (a
      // new version of it changed the attributes offers describe).
      if (!isDomainError(error) || error.code !== 'matching.constraints_invalid') throw error;
      replacement = null;
    }
    if (!replacement) {
      await sql`rollback to savepoint orders_replan`.execute(ctx.db);
      const outOfDate = await offerings.stepErrors(ctx, {
        capability: leg.capability,
        constraints: leg.constraints as Record<string, AttributeConstraint>,
      });
      await compensate(
        ctx,
        order,
        leg,
        cause,
        outOfDate.length > 0
          ? `Step ${leg.stepKey} cannot be given to another partner (${cause}): its constraints no longer fit the capability ${leg.capability}.`
          : undefined,
      );
      return;
    }
    const { result, reservation } = replacement;
    await catalog.confirmReservation(ctx, reservation.id);
    await sql`release savepoint orders_replan`.execute(ctx.db);
    const grossMinor = BigInt(result.unitPriceMinor) * BigInt(leg.quantity);
    // The leg starts when its predecessors let it, with its new partner's lead time; the legs
    // after it move when the order's legs are next scheduled (below, or as they are dispatched).
    await updateLeg(ctx.db, order.id, leg.stepKey, {
      status: 'planned',
      partner_id: result.partnerId,
      offer_id: result.offerId,
      reservation_id: reservation.id,
      unit_price_minor: BigInt(result.unitPriceMinor),
      gross_minor: grossMinor,
      margin_minor: leg.budgetMinor - grossMinor,
      lead_time_hours: result.leadTimeHours,
      expected_start: new Date(earliestStartMs),
      expected_finish: new Date(earliestStartMs + result.leadTimeHours * HOUR_MS),
      replans: replan,
      updated_at: ctx.now,
    });
    // The partner taking over is told too, so the event does not name the partner it replaces:
    // who failed a leg is for the customer and operators, who read it in the work order's events.
    await appendEvent(ctx, {
      type: 'order.leg_replanned',
      subjectId: order.id,
      data: {
        id: order.id,
        step: leg.stepKey,
        cause,
        partner_id: result.partnerId,
        replans: replan,
      },
      audience: [order.customerId, result.partnerId],
    });
    if (order.status === 'in_progress') await dispatchReady(ctx, order);
  }

  /**
   * The best candidate that can take a leg over and still be done by its due time
   * (`request.neededBy`) when it starts at `earliestStartMs`, with its capacity held; null when
   * none can. The matcher reckons lead times from now, while a leg whose predecessors are still
   * running can start only when they are expected done: candidates too slow from then are passed
   * over here, and the ranking is read again without them when they filled a whole page. The
   * hold is placed where a quote places it, at the candidate's latest start, which is then never
   * before `earliestStartMs`.
   */
  async function replacementFor(
    ctx: Context,
    request: AllocationRequest,
    earliestStartMs: number,
  ): Promise<AllocationOutcome | null> {
    const dueByMs = request.neededBy.getTime();
    const passed = new Set<string>();
    const skipped: { offerId: string; code: string }[] = [];
    for (;;) {
      const results = await matching.candidates(ctx, { ...request, excludeOfferIds: passed });
      for (const result of results) {
        passed.add(result.offerId);
        if (earliestStartMs + result.leadTimeHours * HOUR_MS > dueByMs) continue;
        const held = await matching.allocateAll(ctx, [{ request, result, skipped: [...skipped] }]);
        if (held.allocated) return held.outcomes[0] as AllocationOutcome;
        // Its capacity went meanwhile (the matcher learnt it): the next candidate, up to the
        // number of holds an allocation tries.
        skipped.push(...held.refused.map(({ offerId, code }) => ({ offerId, code })));
        if (skipped.length >= ALLOCATION_CANDIDATES_MAX) return null;
      }
      if (results.length < ALLOCATION_CANDIDATES_MAX) return null;
    }
  }

  /**
   * The saga's compensation: no partner can do a leg in time. Every leg not started is
   * cancelled and its capacity released, and the customer is refunded what they paid for them;
   * legs under way finish and are paid as usual, and the order ends `failed`.
   */
  async function compensate(
    ctx: Context,
    order: Order,
    failedLeg: OrderLeg,
    cause: string,
    detail = `No partner can do step ${failedLeg.stepKey} by ${failedLeg.dueBy.toISOString()} (${cause}).`,
  ): Promise<void> {
    const compensating = await updateOrder(ctx.db, order.id, {
      status: 'compensating',
      failure_code: 'leg_unrepairable',
      failure_detail: detail,
      updated_at: ctx.now,
    });
    await orderEvent(ctx, compensating, 'order.compensating', { step: failedLeg.stepKey, cause });
    let refundMinor = 0n;
    for (const leg of await orderLegs(ctx.db, order.id, { lock: true })) {
      if (CLOSED_LEGS.includes(leg.status)) continue;
      const workOrder = leg.workOrderId ? await findWorkOrder(ctx.db, leg.workOrderId, { lock: true }) : null;
      const notStarted =
        leg.stepKey === failedLeg.stepKey ||
        leg.status === 'planned' ||
        (workOrder !== null && NOT_STARTED.includes(workOrder.status));
      if (!notStarted) continue;
      if (workOrder && NOT_STARTED.includes(workOrder.status)) {
        const cancelled = await flaggedIfLate(
          ctx,
          order,
          await transition(ctx, workOrder, 'cancelled', { reason: 'order compensated' }),
        );
        await workOrderEvent(ctx, cancelled, 'work_order.cancelled', order.customerId);
      }
      // The failed leg's capacity was released when its partner fell through.
      if (leg.stepKey !== failedLeg.stepKey) await catalog.releaseReservation(ctx, leg.reservationId);
      await updateLeg(ctx.db, order.id, leg.stepKey, { status: 'cancelled', updated_at: ctx.now });
      refundMinor += leg.budgetMinor;
    }
    await refund(ctx, compensating, refundMinor, `compensation after ${failedLeg.stepKey} ${cause}`);
    await afterLegClosed(ctx, compensating);
  }

  /** An order with its legs and their work orders, read in one query. */
  async function view(ctx: Context, orderId: string): Promise<OrderView> {
    if (ctx.actor.kind === 'partner') throw ordersErrors.orderNotFound(orderId);
    const found = await orderWithLegs(ctx.db, orderId);
    if (!found || (ctx.actor.kind === 'customer' && found.order.customerId !== ctx.actor.customerId))
      throw ordersErrors.orderNotFound(orderId);
    return found;
  }

  // -----------------------------------------------------------------------------------------------
  // Timers

  async function inOwnTransaction(db: Executor, now: Date, work: (ctx: Context) => Promise<void>) {
    await runInTransaction(db, (tx) =>
      work({ db: tx, actor: systemActor('orders'), now, requestId: null, ip: null }),
    );
  }

  /**
   * The timers, run every minute: expires offers not accepted in time (and re-plans them), flags
   * late work, confirms deliveries the customer did not judge in time, and re-plans legs not
   * started whose partner was suspended or offboarded. Each item is its own transaction, and
   * one that fails is logged and left for the next run: it does not hold up the others.
   */
  async function sweep(db: Executor, now: Date): Promise<SweepReport> {
    let expired = 0;
    let late = 0;
    let autoConfirmed = 0;
    let replanned = 0;
    let failed = 0;
    const item = async (
      timer: string,
      due: { readonly orderId: string; readonly stepKey: string },
      work: (ctx: Context) => Promise<void>,
    ) => {
      try {
        await inOwnTransaction(db, now, work);
      } catch (error) {
        failed += 1;
        deps.logger?.error(
          { err: error, timer, order_id: due.orderId, step: due.stepKey },
          'a timer failed on one leg; it is left for the next run',
        );
      }
    };
    for (const due of await timedOut(db, 'acceptance', now, SWEEP_BATCH_MAX)) {
      await item('acceptance', due, async (ctx) => {
        const { order, leg, workOrder } = await lockLeg(ctx, due.orderId, due.stepKey);
        if (!workOrder || workOrder.id !== due.id || workOrder.status !== 'offered') return;
        const updated = await flaggedIfLate(
          ctx,
          order,
          await transition(ctx, workOrder, 'expired', { reason: 'not accepted in time' }),
        );
        await workOrderEvent(ctx, updated, 'work_order.expired', order.customerId);
        await repair(ctx, order, leg, 'expired');
        expired += 1;
      });
    }
    for (const due of await timedOut(db, 'due', now, SWEEP_BATCH_MAX)) {
      await item('due', due, async (ctx) => {
        const { order, workOrder } = await lockLeg(ctx, due.orderId, due.stepKey);
        // Work that ended meanwhile was judged on time or late as it ended.
        if (!workOrder || workOrder.id !== due.id || workOrder.late || !OWED.includes(workOrder.status))
          return;
        await flagLate(ctx, order, workOrder);
        late += 1;
      });
    }
    for (const due of await timedOut(db, 'confirmation', now, SWEEP_BATCH_MAX)) {
      await item('confirmation', due, async (ctx) => {
        const locked = await lockLeg(ctx, due.orderId, due.stepKey);
        const { workOrder } = locked;
        if (!workOrder || workOrder.id !== due.id || workOrder.status !== 'delivered') return;
        await confirmLeg(ctx, locked, await transition(ctx, workOrder, CUSTOMER_ACTIONS.confirm));
        autoConfirmed += 1;
      });
    }
    const unavailable: PartnerId[] = [];
    const reader: Context = { db, actor: systemActor('orders'), now, requestId: null, ip: null };
    for (const state of ['suspended', 'offboarded'] as const) {
      let after: string | undefined;
      for (;;) {
        const page = await participants.listPartners(reader, { state, limit: PARTNER_PAGE, after });
        unavailable.push(...page.items.map((partner) => partner.id));
        if (!page.hasMore) break;
        after = page.items.at(-1)?.id;
      }
    }
    for (const due of await unstartedLegsOf(db, unavailable, SWEEP_BATCH_MAX)) {
      await item('partner_unavailable', due, async (ctx) => {
        const { order, leg, workOrder } = await lockLeg(ctx, due.orderId, due.stepKey);
        if (!unavailable.includes(leg.partnerId) || order.status !== 'in_progress') return;
        if (leg.status === 'dispatched') {
          if (!workOrder || !NOT_STARTED.includes(workOrder.status)) return;
          const cancelled = await flaggedIfLate(
            ctx,
            order,
            await transition(ctx, workOrder, 'cancelled', { reason: 'partner unavailable' }),
          );
          await workOrderEvent(ctx, cancelled, 'work_order.cancelled', order.customerId);
        } else if (leg.status !== 'planned') {
          return;
        }
        await repair(ctx, order, leg, 'partner_unavailable');
        replanned += 1;
      });
    }
    return { expired, late, autoConfirmed, replanned, failed };
  }

  return {
    quote,

    /** @throws DomainError `orders.quote_not_found` */
    async getQuote(ctx: Context, id: string): Promise<QuoteView> {
      const found = await visibleQuote(ctx, id);
      return { quote: found, legs: await quoteLegs(ctx.db, id) };
    },

    placeOrder,
    paymentSettled,

    /** @throws DomainError `orders.order_not_found` */
    getOrder: view,

    /** Orders, oldest first: a customer's own, or any for operators. */
    async listOrders(
      ctx: Context,
      filter: {
        status?: OrderStatus | undefined;
        offeringKey?: string | undefined;
        after?: string | undefined;
        limit: number;
      },
    ): Promise<Page<Order>> {
      return listOrders(ctx.db, {
        ...filter,
        ...(ctx.actor.kind === 'customer' ? { customerId: ctx.actor.customerId } : {}),
      });
    },

    partnerAction,
    withdraw,
    customerAction,
    refundByHand,
    checkRefundByHand,

    /** Whether `ref` names an order of Baton's (whoever asks). */
    async keepsOrder(ctx: Context, ref: string): Promise<boolean> {
      return (await findOrder(ctx.db, ref)) !== null;
    },

    /** Whether `ref` names a work order: a leg of an order Baton keeps, whatever its state. */
    async keepsLeg(ctx: Context, ref: string): Promise<boolean> {
      return (await findWorkOrder(ctx.db, ref)) !== null;
    },

    /** @throws DomainError `orders.work_order_not_found` */
    async getWorkOrder(ctx: Context, id: string): Promise<WorkOrder> {
      const found = await findWorkOrder(ctx.db, id);
      if (!found || ctx.actor.kind === 'customer') throw ordersErrors.workOrderNotFound(id);
      if (ctx.actor.kind === 'partner' && found.partnerId !== ctx.actor.partnerId)
        throw ordersErrors.workOrderNotFound(id);
      return found;
    },

    /** Work orders, oldest first: a partner's own, or any for operators. */
    async listWorkOrders(
      ctx: Context,
      filter: {
        status?: WorkOrderStatus | undefined;
        orderId?: string | undefined;
        after?: string | undefined;
        limit: number;
      },
    ): Promise<Page<WorkOrder>> {
      return listWorkOrders(ctx.db, {
        ...filter,
        ...(ctx.actor.kind === 'partner' ? { partnerId: ctx.actor.partnerId } : {}),
      });
    },

    sweep,
  };
}
