import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import { actorRef, systemActor } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Clock } from '../../kernel/clock.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import type { Tables } from '../../kernel/database/tables.js';
import { type FieldError, isDomainError } from '../../kernel/errors.js';
import { appendEvent, type LoggedEvent } from '../../kernel/events/event-log.js';
import { createEventTail } from '../../kernel/events/event-tail.js';
import {
  type AllocationId,
  type CustomerId,
  newId,
  type OfferId,
  type PartnerId,
  type ReservationId,
} from '../../kernel/ids.js';
import { parseAmount, parseCurrency } from '../../kernel/money.js';
import type { CatalogService, Reservation } from '../catalog/index.js';
import { ENGAGED_STATES, type ParticipantsService, type PartnerView } from '../participants/index.js';
import type { Capability, StandardsService } from '../standards/index.js';
import { LapsingHolds } from './domain/lapsing-holds.js';
import {
  type AttributeConstraint,
  type ExplainAnswer,
  type IndexedOffer,
  indexedOffer,
  type MatchAnswer,
  type MatchResult,
  OfferIndex,
  type PartnerStanding,
  QUERY_LIMIT_MAX,
} from './domain/offer-index.js';
import { type CapacityPeriod, DAY_MS, PERIOD_CODES, periodStartMs } from './domain/periods.js';
import { DEFAULT_SETTINGS, EXPOSURE_WINDOW_DAYS_MAX, type MatchingSettings } from './domain/settings.js';
import { matchingErrors } from './errors.js';
import {
  type Allocation,
  findSettings,
  insertAllocations,
  listAllocationsSince,
  listSettings,
  type StoredSettings,
  saveSettings,
} from './store/matching-store.js';

export interface MatchingDeps {
  readonly db: Kysely<Tables>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly catalog: CatalogService;
  readonly standards: StandardsService;
  readonly participants: ParticipantsService;
}

/** A piece of demand to match. */
export interface MatchRequest {
  readonly capability: string;
  readonly region: string;
  readonly quantity: number;
  readonly neededBy: Date;
  /** Whose demand it is; a customer asking for itself may leave it out. */
  readonly customerId?: CustomerId | undefined;
  readonly constraints?: Readonly<Record<string, AttributeConstraint>> | undefined;
  readonly limit: number;
}

export interface ExplainRequest extends Omit<MatchRequest, 'limit'> {
  /** Report only this offer, which may be outside the capability or region. */
  readonly offerId?: OfferId | undefined;
  /** Report only this partner's offers; a partner always sees only its own. */
  readonly partnerId?: PartnerId | undefined;
}

export interface AllocationRequest extends Omit<MatchRequest, 'limit'> {
  readonly holdMinutes: number;
  readonly reference?: string | undefined;
  /** Only offers priced in this currency. */
  readonly currency?: string | undefined;
  /** Partners not to allocate to (those that already failed this piece of demand). */
  readonly excludePartnerIds?: readonly string[] | undefined;
  /** Only offers whose unit price is at most this. */
  readonly maxUnitPriceMinor?: number | undefined;
}

/** An allocation with the hold it placed and the ranking that chose it. */
export interface AllocationOutcome {
  readonly allocation: Allocation;
  readonly reservation: Reservation;
  readonly result: MatchResult;
}

/** A candidate chosen for a piece of demand, to be allocated with others at once (`allocateAll`). */
export interface AllocationPick {
  readonly request: AllocationRequest;
  /** One of the results `candidates` gave for the request. */
  readonly result: MatchResult;
  /** Candidates tried for the request before this one and refused, recorded with the allocation. */
  readonly skipped?: readonly { readonly offerId: string; readonly code: string }[] | undefined;
}

/** The ids an allocation of `allocateAll` will have, known before its capacity is held. */
export interface PlannedAllocation {
  readonly allocationId: AllocationId;
  readonly reservationId: ReservationId;
}

/** Every allocation of an `allocateAll`, or the candidates the catalog refused (and nothing was allocated). */
export type AllocationsOutcome =
  | { readonly allocated: true; readonly outcomes: readonly AllocationOutcome[] }
  | {
      readonly allocated: false;
      /** The picks refused, by their position, with the catalog's error code. */
      readonly refused: readonly {
        readonly index: number;
        readonly offerId: OfferId;
        readonly code: string;
      }[];
    };

/** Results an allocation tries, best first, before it gives up. */
export const ALLOCATION_CANDIDATES_MAX = 20;
/** Rows read per page when the index is built. */
const LOAD_PAGE_SIZE = 500;
/** The events that change what the index knows. */
const INDEXED_EVENT_TYPES = [
  'offer.created',
  'offer.updated',
  'offer.status_changed',
  'capacity.reserved',
  'capacity.confirmed',
  'capacity.released',
  'capacity.expired',
  'certification.granted',
  'certification.revoked',
  'certification.expired',
  'capability.published',
  'partner.approved',
  'partner.reinstated',
  'partner.placed_on_probation',
  'partner.suspended',
  'partner.offboarded',
  'partner.rejected',
  'partner.rules_accepted',
  'partner.rules_lapsed',
  'partner_type.rules_published',
  'matching.allocated',
  'matching.settings_updated',
] as const;

/** How often the index forgets reservations of past periods. */
const PRUNE_INTERVAL_MS = 60 * 60 * 1000;

export type MatchingService = ReturnType<typeof createMatchingService>;

/**
 * Matching: answers queries from an in-memory index (`domain/offer-index.ts`) that it builds
 * from the database at start-up and keeps current from the event log. The index may lag the
 * database by a poll interval, so it never decides an allocation alone: an allocation reserves
 * capacity through the catalog, whose conditional update in the database is the truth, and a
 * refusal refreshes the index and moves on to the next candidate.
 */
export function createMatchingService(deps: MatchingDeps) {
  const { db, clock, logger, catalog, standards, participants } = deps;
  const index = new OfferIndex();
  /** Holds whose time runs out: the index stops counting each the moment it lapses. */
  const holds = new LapsingHolds();
  /** The current version of each capability, for checking constraints against its attributes. */
  const capabilities = new Map<string, Capability>();
  const tail = createEventTail({ db, logger, types: INDEXED_EVENT_TYPES });
  /** When the index last forgot the reservations of past periods. */
  let lastPrunedMs = clock.now().getTime();
  tail.subscribe((events) => applyEvents(events));

  const systemContext = (executor: Executor = db): Context => ({
    db: executor,
    actor: systemActor('matching'),
    now: clock.now(),
    requestId: null,
    ip: null,
  });

  // -----------------------------------------------------------------------------------------------
  // Building the index and keeping it current.

  async function load(): Promise<void> {
    const ctx = systemContext();
    for (const stored of await listSettings(db)) index.setSettings(stored.capability, stored.settings);
    for (const capability of await standards.listCapabilities(db)) learnCapability(capability);
    for (const state of ENGAGED_STATES) {
      let after: string | undefined;
      for (;;) {
        const page = await participants.listPartners(ctx, { state, limit: LOAD_PAGE_SIZE, after });
        for (const partner of page.items) index.setPartner(standingOf(partner));
        if (!page.hasMore) break;
        after = page.items.at(-1)?.id;
      }
    }
    let after: string | undefined;
    for (;;) {
      const page = await standards.listCertifications(ctx, {
        status: 'granted',
        limit: LOAD_PAGE_SIZE,
        after,
      });
      for (const certification of page.items) {
        if (!certification.validFrom || !certification.validUntil) continue;
        index.grantCertification({
          id: certification.id,
          partnerId: certification.partnerId,
          programKey: certification.programKey,
          validFromMs: certification.validFrom.getTime(),
          validUntilMs: certification.validUntil.getTime(),
        });
      }
      if (!page.hasMore) break;
      after = page.items.at(-1)?.id;
    }
    after = undefined;
    for (;;) {
      const page = await catalog.listOffersForIndex(db, { limit: LOAD_PAGE_SIZE, after });
      for (const offer of page.items) {
        index.upsertOffer(indexedOffer(offer));
      }
      if (!page.hasMore) break;
      after = page.items.at(-1)?.id;
    }
    for (const hold of await catalog.listLiveHolds(db)) {
      holds.hold({
        reservationId: hold.id,
        offerId: hold.offerId,
        periodStartMs: hold.periodStart.getTime(),
        quantity: Number(hold.quantity),
        expiresAtMs: hold.expiresAt.getTime(),
      });
    }
    for (const usage of await catalog.listCapacityUsage(db, { from: ctx.now })) {
      setReserved(usage.offerId, usage.periodStart.getTime(), Number(usage.reserved));
    }
    index.compact();
    let afterSeq = 0n;
    const since = new Date(ctx.now.getTime() - EXPOSURE_WINDOW_DAYS_MAX * DAY_MS);
    for (;;) {
      const allocations = await listAllocationsSince(db, since, { afterSeq, limit: LOAD_PAGE_SIZE });
      // An allocation whose capacity was given back (a quote never ordered, a declined leg)
      // no longer counts towards its partner's exposure.
      const givenBack = await catalog.reservationsGivenBack(
        db,
        allocations.map((allocation) => allocation.reservationId),
      );
      for (const allocation of allocations) {
        if (givenBack.has(allocation.reservationId)) continue;
        index.recordAllocation({
          id: allocation.id,
          capability: allocation.capability,
          region: allocation.region,
          partnerId: allocation.partnerId,
          atMs: allocation.allocatedAt.getTime(),
          reservationId: allocation.reservationId,
        });
      }
      if (allocations.length < LOAD_PAGE_SIZE) break;
      afterSeq = allocations.at(-1)?.seq ?? afterSeq;
    }
    catchUpLapses(ctx.now.getTime());
  }

  /** Tells the index an offer-period's counter total, less the holds of it that lapsed. */
  function setReserved(offerId: string, periodStartMs: number, reserved: number): void {
    index.setReserved(offerId, periodStartMs, holds.count(offerId, periodStartMs, reserved));
  }

  /**
   * Stops counting the holds whose time ran out by `nowMs`, before the sweep expires them in the
   * database: their capacity is free (a new hold in that period expires them on its way) and
   * their allocations no longer count towards their partners' exposure.
   */
  function catchUpLapses(nowMs: number): void {
    const lapsed = holds.lapse(nowMs);
    for (const period of lapsed.counts)
      index.setReserved(period.offerId, period.periodStartMs, period.reserved);
    for (const reservationId of lapsed.reservationIds) index.withdrawAllocation(reservationId);
  }

  function learnCapability(capability: Capability): void {
    capabilities.set(capability.key, capability);
    index.setRequiredCertifications(capability.key, capability.requiredCertifications);
  }

  /**
   * Applies a batch of events. Most carry what the index needs; partners and capabilities are
   * read again from their modules (the event names the change, the module knows the standing).
   * Every step is idempotent, as the event tail requires.
   */
  async function applyEvents(events: readonly LoggedEvent[]): Promise<void> {
    const nowMs = clock.now().getTime();
    if (nowMs - lastPrunedMs >= PRUNE_INTERVAL_MS) {
      index.forgetReservationsBefore(nowMs);
      for (const period of holds.forgetLapsedBefore(nowMs - PRUNE_INTERVAL_MS)) {
        index.setReserved(period.offerId, period.periodStartMs, period.reserved);
      }
      lastPrunedMs = nowMs;
    }
    const partners = new Set<PartnerId>();
    const partnerTypes = new Set<string>();
    const changedCapabilities = new Set<string>();
    for (const event of events) {
      try {
        const data = event.data;
        if (event.type.startsWith('offer.')) {
          index.upsertOffer(offerFromJson(data.offer as Record<string, unknown>));
        } else if (event.type.startsWith('capacity.')) {
          const reservationId = String(data.reservation_id);
          const offerId = String(data.offer_id);
          const periodStart = Date.parse(String(data.period_start));
          if (event.type === 'capacity.reserved' && typeof data.expires_at === 'string') {
            holds.hold({
              reservationId,
              offerId,
              periodStartMs: periodStart,
              quantity: Number(String(data.quantity)),
              expiresAtMs: Date.parse(data.expires_at),
            });
          } else if (event.type !== 'capacity.reserved') {
            holds.settle(reservationId);
          }
          setReserved(offerId, periodStart, Number(String(data.reserved)));
          if (event.type === 'capacity.released' || event.type === 'capacity.expired')
            index.withdrawAllocation(reservationId);
        } else if (event.type === 'certification.granted') {
          if (data.valid_from && data.valid_until) {
            index.grantCertification({
              id: String(data.id),
              partnerId: String(data.partner_id),
              programKey: String(data.program),
              validFromMs: Date.parse(String(data.valid_from)),
              validUntilMs: Date.parse(String(data.valid_until)),
            });
          }
        } else if (event.type.startsWith('certification.')) {
          index.withdrawCertification(String(data.id), String(data.partner_id), String(data.program));
        } else if (event.type === 'capability.published') {
          changedCapabilities.add(event.subjectId);
        } else if (event.type === 'partner_type.rules_published') {
          partnerTypes.add(String(data.partner_type));
        } else if (event.type.startsWith('partner.')) {
          partners.add(event.subjectId as PartnerId);
        } else if (event.type === 'matching.allocated') {
          index.recordAllocation({
            id: String(data.id),
            capability: String(data.capability),
            region: String(data.region),
            partnerId: String(data.partner_id),
            atMs: Date.parse(String(data.allocated_at)),
            reservationId: typeof data.reservation_id === 'string' ? data.reservation_id : null,
          });
        } else if (event.type === 'matching.settings_updated') {
          index.setSettings(event.subjectId, settingsFromJson(data.settings as SettingsJsonShape));
        }
      } catch (error) {
        // A malformed event is a bug elsewhere; one must not stop the index following the rest.
        logger.error({ err: error, event: event.id, type: event.type }, 'matching could not apply an event');
      }
    }
    catchUpLapses(nowMs);
    const ctx = systemContext();
    for (const key of changedCapabilities) learnCapability(await standards.getCapability(db, key));
    for (const partnerType of partnerTypes) {
      let after: string | undefined;
      for (;;) {
        const page = await participants.listPartners(ctx, { partnerType, limit: LOAD_PAGE_SIZE, after });
        for (const partner of page.items) index.setPartner(standingOf(partner));
        if (!page.hasMore) break;
        after = page.items.at(-1)?.id;
      }
    }
    for (const id of partners) await refreshPartner(ctx, id);
  }

  async function refreshPartner(ctx: Context, id: PartnerId): Promise<void> {
    try {
      index.setPartner(standingOf(await participants.getPartner(ctx, id)));
    } catch (error) {
      if (!isDomainError(error) || error.kind !== 'not_found') throw error;
    }
  }

  /** Reads an offer and its free capacity from the database into the index: after a refusal. */
  async function refreshOffer(ctx: Context, offerId: OfferId, atMs: number): Promise<void> {
    const system = { ...systemContext(ctx.db), now: ctx.now };
    try {
      const offer = await catalog.getOffer(system, offerId);
      index.upsertOffer(indexedOffer(offer));
      const free = await catalog.freeCapacity(ctx.db, offerId, new Date(atMs));
      const periodStart = periodStartMs(PERIOD_CODES[offer.capacityPeriod], atMs);
      setReserved(offerId, periodStart, Number(offer.capacityPerPeriod - free));
    } catch (error) {
      if (!isDomainError(error) || error.kind !== 'not_found') throw error;
      index.removeOffer(offerId);
    }
  }

  /**
   * The acceptable results for a prepared request, best first: ranked by the index, then
   * narrowed by currency, price, partners and offers to leave out.
   */
  function rankedCandidates(
    ctx: Context,
    prepared: Omit<MatchRequest, 'limit'>,
    request: AllocationRequest,
    excludeOfferIds?: ReadonlySet<string>,
  ): MatchResult[] {
    const narrowed =
      request.excludePartnerIds !== undefined ||
      request.currency !== undefined ||
      request.maxUnitPriceMinor !== undefined ||
      (excludeOfferIds !== undefined && excludeOfferIds.size > 0);
    // Narrowing happens after ranking: read deeper, so that excluded offers do not use up the tries.
    catchUpLapses(ctx.now.getTime());
    const answer = index.query(
      { ...toQuery(prepared), limit: narrowed ? QUERY_LIMIT_MAX : ALLOCATION_CANDIDATES_MAX },
      ctx.now.getTime(),
    );
    const excluded = new Set(request.excludePartnerIds ?? []);
    return answer.results
      .filter(
        (result) =>
          !excluded.has(result.partnerId) &&
          !excludeOfferIds?.has(result.offerId) &&
          (request.currency === undefined || result.currency === request.currency) &&
          (request.maxUnitPriceMinor === undefined || result.unitPriceMinor <= request.maxUnitPriceMinor),
      )
      .slice(0, ALLOCATION_CANDIDATES_MAX);
  }

  /** The audit record and event of an allocation. */
  async function announceAllocation(ctx: Context, allocation: Allocation): Promise<void> {
    await recordAudit(ctx, {
      action: 'matching.allocation.create',
      targetId: allocation.id,
      outcome: 'succeeded',
      details: {
        offer_id: allocation.offerId,
        reservation_id: allocation.reservationId,
        skipped: allocation.skipped.length,
      },
    });
    await appendEvent(ctx, {
      type: 'matching.allocated',
      subjectId: allocation.id,
      data: {
        id: allocation.id,
        capability: allocation.capability,
        region: allocation.region,
        partner_id: allocation.partnerId,
        offer_id: allocation.offerId,
        reservation_id: allocation.reservationId,
        quantity: Number(allocation.quantity),
        customer_id: allocation.customerId,
        reference: allocation.reference,
        allocated_at: allocation.allocatedAt.toISOString(),
      },
      // The partner's, not the customer's: the offer it names would tell the customer the
      // partner's price, which customers see only in what they buy.
      audience: [allocation.partnerId],
    });
  }

  // -----------------------------------------------------------------------------------------------
  // Checking requests.

  /**
   * Works out whose demand it is and checks the request against what the caller may see: a
   * customer asks for itself; naming a customer the caller may not see is answered like naming
   * one that does not exist.
   */
  async function prepare<T extends Omit<MatchRequest, 'limit'>>(ctx: Context, request: T): Promise<T> {
    const actor = ctx.actor;
    let customerId = request.customerId;
    if (customerId === undefined && actor.kind === 'customer') customerId = actor.customerId;
    if (customerId !== undefined && !(actor.kind === 'customer' && actor.customerId === customerId)) {
      await participants.getCustomer(ctx, customerId);
    }
    await checkConstraints(ctx, request);
    return { ...request, customerId };
  }

  /**
   * Checks that the capability exists and that every constrained attribute is one its schema
   * defines, so a typo is an error rather than a silent empty answer.
   *
   * @throws DomainError `standards.capability_not_found`, `matching.constraints_invalid`
   */
  async function checkConstraints(ctx: Context, request: Omit<MatchRequest, 'limit'>): Promise<void> {
    let capability = capabilities.get(request.capability);
    // The index may not have heard of a capability defined a moment ago: the database decides.
    if (!capability) capability = await standards.getCapability(ctx.db, request.capability);
    const properties = capability.attributeSchema.properties;
    if (!properties || typeof properties !== 'object') return;
    const errors: FieldError[] = [];
    for (const [name, constraint] of Object.entries(request.constraints ?? {})) {
      if (!Object.hasOwn(properties, name)) {
        errors.push({
          path: `/constraints/${pointerSegment(name)}`,
          rule: 'known_attribute',
          message: `${request.capability} has no attribute ${name}`,
        });
      }
      if (constraint.min !== undefined && constraint.max !== undefined && constraint.min > constraint.max) {
        errors.push({
          path: `/constraints/${pointerSegment(name)}/min`,
          rule: 'minimum',
          message: 'must not be above max',
        });
      }
    }
    if (errors.length > 0) throw matchingErrors.constraintsInvalid(errors);
  }

  function toQuery(request: Omit<MatchRequest, 'limit'>) {
    return {
      capability: request.capability,
      region: request.region,
      quantity: request.quantity,
      neededByMs: request.neededBy.getTime(),
      customerId: request.customerId ?? null,
      constraints: request.constraints,
    };
  }

  return {
    /**
     * Builds the index from the database and starts following the event log. The log position
     * is noted first, so that every change committed while the index loads is applied after.
     */
    async start(): Promise<void> {
      const position = await tail.endPosition();
      await load();
      tail.start(position);
      logger.info({ offers: index.size }, 'matching index built');
    },

    async stop(): Promise<void> {
      await tail.stop();
    },

    /** Applies every event committed before the call to the index: tests call it instead of waiting. */
    async sync(): Promise<void> {
      await tail.sync();
    },

    /**
     * The best offers for a piece of demand, each with its score breakdown, from the index.
     *
     * @throws DomainError `standards.capability_not_found`, `participants.customer_not_found`,
     *   `matching.constraints_invalid`
     */
    async query(ctx: Context, request: MatchRequest): Promise<MatchAnswer> {
      const prepared = await prepare(ctx, request);
      catchUpLapses(ctx.now.getTime());
      return index.query({ ...toQuery(prepared), limit: request.limit }, ctx.now.getTime());
    },

    /**
     * Every offer of the capability and region with its rank and breakdown, or the filters that
     * excluded it. A partner sees only its own offers' rows.
     *
     * @throws DomainError `standards.capability_not_found`, `participants.customer_not_found`,
     *   `matching.constraints_invalid`, `matching.offer_not_found`, `matching.partner_not_found`
     */
    async explain(ctx: Context, request: ExplainRequest): Promise<ExplainAnswer> {
      const prepared = await prepare(ctx, request);
      let partnerId = request.partnerId;
      if (ctx.actor.kind === 'partner') {
        if (partnerId !== undefined && partnerId !== ctx.actor.partnerId) {
          throw matchingErrors.partnerNotFound(partnerId);
        }
        partnerId = ctx.actor.partnerId;
      }
      if (request.offerId !== undefined) {
        const offer = index.offer(request.offerId);
        if (!offer || (ctx.actor.kind === 'partner' && offer.partnerId !== ctx.actor.partnerId)) {
          throw matchingErrors.offerNotFound(request.offerId);
        }
      }
      catchUpLapses(ctx.now.getTime());
      return index.explain(toQuery(prepared), ctx.now.getTime(), { offerId: request.offerId, partnerId });
    },

    /**
     * Gives a piece of demand to the best offer that can take it: ranks the candidates, then
     * reserves capacity through the catalog on each in turn until one reservation succeeds.
     * The database decides: a candidate the stale index thought free but the catalog refuses
     * is refreshed in the index and skipped. Records the allocation, which the exposure cap
     * counts, with an event and an audit record.
     *
     * @throws DomainError `matching.no_candidate` (409), `standards.capability_not_found`,
     *   `participants.customer_not_found`, `matching.constraints_invalid`
     */
    async allocate(ctx: Context, request: AllocationRequest): Promise<AllocationOutcome> {
      requireTransaction(ctx.db);
      const prepared = await prepare(ctx, request);
      const skipped: { offerId: string; code: string }[] = [];
      for (const result of rankedCandidates(ctx, prepared, request)) {
        let reservation: Reservation;
        try {
          // A refused hold leaves nothing behind to undo (only lapsed holds it gave back).
          reservation = await catalog.reserve(ctx, {
            offerId: result.offerId as OfferId,
            quantity: BigInt(request.quantity),
            at: new Date(result.startMs),
            holdMinutes: request.holdMinutes,
            ...(request.reference !== undefined ? { reference: request.reference } : {}),
          });
        } catch (error) {
          if (!isDomainError(error)) throw error;
          skipped.push({ offerId: result.offerId, code: error.code });
          await refreshOffer(ctx, result.offerId as OfferId, result.startMs);
          continue;
        }
        const allocation: Allocation = {
          id: newId('alc') as AllocationId,
          capability: request.capability,
          region: request.region,
          partnerId: result.partnerId as PartnerId,
          offerId: result.offerId as OfferId,
          reservationId: reservation.id,
          quantity: BigInt(request.quantity),
          customerId: prepared.customerId ?? null,
          reference: request.reference ?? null,
          rank: result.rank,
          score: result.score,
          allocatedAt: ctx.now,
          skipped,
        };
        await insertAllocations(ctx.db, [allocation], actorRef(ctx.actor).id);
        await announceAllocation(ctx, allocation);
        return { allocation, reservation, result };
      }
      throw matchingErrors.noCandidate(
        skipped.map((entry) => ({ offer_id: entry.offerId, code: entry.code })),
      );
    },

    /**
     * The offers that could take a piece of demand, best first, from the index alone: nothing is
     * reserved. `allocateAll` then holds the chosen ones, and the database decides.
     *
     * @returns at most `ALLOCATION_CANDIDATES_MAX` results, after the request's narrowing and
     *   without `excludeOfferIds`.
     * @throws DomainError `standards.capability_not_found`, `participants.customer_not_found`,
     *   `matching.constraints_invalid`
     */
    async candidates(
      ctx: Context,
      request: AllocationRequest & { readonly excludeOfferIds?: ReadonlySet<string> | undefined },
    ): Promise<MatchResult[]> {
      const prepared = await prepare(ctx, request);
      return rankedCandidates(ctx, prepared, request, request.excludeOfferIds);
    },

    /**
     * Allocates several pieces of demand at once to the candidates chosen for them (from
     * `candidates`): records the allocations, with their events and audit records, runs
     * `beforeHold` (the caller's own writes, which may name the allocations and reservations to
     * be), and holds every allocation's capacity through the catalog in one statement, last, so
     * that the offers' counters stay locked only until the transaction commits. All or none:
     * when the catalog refuses any hold, everything written since the call is undone, the index
     * learns what the database says about the refused offers, and the refusals are returned for
     * the caller to choose again.
     *
     * @throws DomainError `standards.capability_not_found`, `participants.customer_not_found`,
     *   `matching.constraints_invalid`, and whatever `beforeHold` throws
     */
    async allocateAll(
      ctx: Context,
      picks: readonly AllocationPick[],
      beforeHold?: (planned: readonly PlannedAllocation[]) => Promise<void>,
    ): Promise<AllocationsOutcome> {
      requireTransaction(ctx.db);
      const allocations: Allocation[] = [];
      for (const pick of picks) {
        const { request, result } = pick;
        const customerId =
          request.customerId ?? (ctx.actor.kind === 'customer' ? ctx.actor.customerId : undefined);
        allocations.push({
          id: newId('alc') as AllocationId,
          capability: request.capability,
          region: request.region,
          partnerId: result.partnerId as PartnerId,
          offerId: result.offerId as OfferId,
          reservationId: newId('rsv') as ReservationId,
          quantity: BigInt(request.quantity),
          customerId: customerId ?? null,
          reference: request.reference ?? null,
          rank: result.rank,
          score: result.score,
          allocatedAt: ctx.now,
          skipped: pick.skipped ?? [],
        });
      }
      // Everything before the hold can be undone at once if the catalog refuses a hold.
      await sql`savepoint matching_allocate_all`.execute(ctx.db);
      await insertAllocations(ctx.db, allocations, actorRef(ctx.actor).id);
      for (const allocation of allocations) await announceAllocation(ctx, allocation);
      await beforeHold?.(
        allocations.map((allocation) => ({
          allocationId: allocation.id,
          reservationId: allocation.reservationId,
        })),
      );
      const held = await catalog.reserveAll(
        ctx,
        picks.map((pick, index) => ({
          id: (allocations[index] as Allocation).reservationId,
          offerId: pick.result.offerId as OfferId,
          quantity: BigInt(pick.request.quantity),
          at: new Date(pick.result.startMs),
          holdMinutes: pick.request.holdMinutes,
          ...(pick.request.reference !== undefined ? { reference: pick.request.reference } : {}),
        })),
      );
      if (held.held) {
        // The index learns the new totals now rather than a poll later; the events confirm them.
        for (const { reservation, reserved } of held.holds) {
          setReserved(reservation.offerId, reservation.periodStart.getTime(), Number(reserved));
        }
        return {
          allocated: true,
          outcomes: held.holds.map(({ reservation }, position) => ({
            allocation: allocations[position] as Allocation,
            reservation,
            result: (picks[position] as AllocationPick).result,
          })),
        };
      }
      await sql`rollback to savepoint matching_allocate_all`.execute(ctx.db);
      const refused = held.refusals.map(({ index: position, error }) => ({
        index: position,
        offerId: (picks[position] as AllocationPick).result.offerId as OfferId,
        code: error.code,
      }));
      for (const { index: position, offerId } of refused) {
        await refreshOffer(ctx, offerId, (picks[position] as AllocationPick).result.startMs);
      }
      return { allocated: false, refused };
    },

    /**
     * A capability's settings: its own, or the defaults.
     *
     * @throws DomainError `standards.capability_not_found`
     */
    async getSettings(db: Executor, capability: string): Promise<StoredSettings | DefaultSettings> {
      const stored = await findSettings(db, capability);
      if (stored) return stored;
      await standards.getCapability(db, capability);
      return { capability, settings: DEFAULT_SETTINGS, updatedAt: null, updatedBy: null };
    },

    /** Every capability that has settings of its own. */
    async listSettings(db: Executor): Promise<StoredSettings[]> {
      return listSettings(db);
    },

    /**
     * Replaces a capability's settings, with an audit record and an event that every process's
     * index applies.
     *
     * @throws DomainError `standards.capability_not_found`, `matching.settings_invalid`
     */
    async updateSettings(
      ctx: Context,
      capability: string,
      settings: MatchingSettings,
    ): Promise<StoredSettings> {
      requireTransaction(ctx.db);
      await standards.getCapability(ctx.db, capability);
      const weights = Object.values(settings.weights);
      if (weights.every((weight) => weight === 0)) {
        throw matchingErrors.settingsInvalid([
          { path: '/weights', rule: 'positive_sum', message: 'at least one weight must be above 0' },
        ]);
      }
      const stored = await saveSettings(ctx.db, {
        capability,
        settings,
        updatedAt: ctx.now,
        updatedBy: actorRef(ctx.actor).id,
      });
      await recordAudit(ctx, {
        action: 'matching.settings.update',
        targetId: capability,
        outcome: 'succeeded',
        details: { settings: settingsJson(settings) },
      });
      await appendEvent(ctx, {
        type: 'matching.settings_updated',
        subjectId: capability,
        data: { capability, settings: settingsJson(settings) },
        audience: [],
      });
      return stored;
    },

    /** Offers in the index, of any status. */
    get indexedOffers(): number {
      return index.size;
    },
  };
}

/** Settings of a capability that has none of its own. */
export interface DefaultSettings {
  readonly capability: string;
  readonly settings: MatchingSettings;
  readonly updatedAt: null;
  readonly updatedBy: null;
}

/** A partner's standing as the index keeps it, from the participants module's view of it. */
function standingOf(partner: PartnerView): PartnerStanding {
  const { status, graceUntil } = partner.rules;
  return {
    partnerId: partner.id,
    engaged: ENGAGED_STATES.includes(partner.state),
    rulesValidUntilMs:
      status === 'accepted' || status === 'not_required'
        ? Number.POSITIVE_INFINITY
        : (status === 'grace' || status === 'lapsed') && graceUntil
          ? graceUntil.getTime()
          : Number.NEGATIVE_INFINITY,
    activatedAtMs: partner.activatedAt?.getTime() ?? null,
  };
}

/** An offer from the API form the catalog's events carry. */
function offerFromJson(json: Record<string, unknown>): IndexedOffer {
  const price = json.unit_price as { amount: string; currency: string };
  const currency = parseCurrency(price.currency);
  return {
    id: String(json.id),
    partnerId: String(json.partner_id),
    capability: String(json.capability),
    status: json.status as IndexedOffer['status'],
    unitPriceMinor: parseAmount(price.amount, currency),
    currency,
    minQuantity: Number(json.min_quantity),
    maxQuantity: Number(json.max_quantity),
    leadTimeHours: Number(json.lead_time_hours),
    regions: json.regions as string[],
    capacityPerPeriod: Number(json.capacity_per_period),
    capacityPeriod: json.capacity_period as CapacityPeriod,
    attributes: (json.attributes ?? {}) as Record<string, unknown>,
  };
}

/** Settings in the snake_case form of the API and the events. */
export interface SettingsJsonShape {
  readonly weights: {
    readonly price: number;
    readonly quality: number;
    readonly reliability: number;
    readonly lead_time: number;
    readonly affinity: number;
  };
  readonly exposure_cap: {
    readonly share: number;
    readonly window_days: number;
    readonly min_allocations: number;
  };
  readonly new_entrant: { readonly boost: number; readonly days: number };
  readonly max_per_partner: number;
}

export function settingsJson(settings: MatchingSettings): SettingsJsonShape {
  return {
    weights: {
      price: settings.weights.price,
      quality: settings.weights.quality,
      reliability: settings.weights.reliability,
      lead_time: settings.weights.leadTime,
      affinity: settings.weights.affinity,
    },
    exposure_cap: {
      share: settings.exposureCapShare,
      window_days: settings.exposureWindowDays,
      min_allocations: settings.exposureMinAllocations,
    },
    new_entrant: { boost: settings.newEntrantBoost, days: settings.newEntrantDays },
    max_per_partner: settings.maxPerPartner,
  };
}

export function settingsFromJson(json: SettingsJsonShape): MatchingSettings {
  return {
    weights: {
      price: json.weights.price,
      quality: json.weights.quality,
      reliability: json.weights.reliability,
      leadTime: json.weights.lead_time,
      affinity: json.weights.affinity,
    },
    exposureCapShare: json.exposure_cap.share,
    exposureWindowDays: json.exposure_cap.window_days,
    exposureMinAllocations: json.exposure_cap.min_allocations,
    newEntrantBoost: json.new_entrant.boost,
    newEntrantDays: json.new_entrant.days,
    maxPerPartner: json.max_per_partner,
  };
}

function pointerSegment(name: string): string {
  return name.replaceAll('~', '~0').replaceAll('/', '~1');
}
