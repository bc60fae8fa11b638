import { sql } from 'kysely';
import type { Actor } from '../../kernel/actor.js';
import { assert } from '../../kernel/assert.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import { type DomainError, type FieldError, isDomainError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { newId, type OfferId, type PartnerId, type ReservationId } from '../../kernel/ids.js';
import type { Jobs } from '../../kernel/jobs/jobs.js';
import { formatAmount } from '../../kernel/money.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import type { ParticipantsService } from '../participants/index.js';
import { type Capability, type StandardsService, validateAttributes } from '../standards/index.js';
import { type CapacityPeriod, HOLD_MINUTES_MAX, periodEnd, periodStart } from './domain/capacity.js';
import {
  attributeErrors,
  checkServiceLevels,
  checkTerms,
  IMPORT_ITEMS_MAX,
  type InitialOfferStatus,
  type OfferStatus,
  type OfferTerms,
  type SettableOfferStatus,
  statusAfterChange,
} from './domain/offer.js';
import { catalogErrors } from './errors.js';
import { offerJson } from './http/json.js';
import {
  adjustCounter,
  adjustCounters,
  catchingUniqueViolation,
  confirmHeld,
  counterKey,
  findOffer,
  findOfferByExternalRef,
  findReservation,
  type HoldRow,
  holdAll,
  type Offer,
  type Reservation,
  reservedIn,
  toOffer,
  toReservation,
} from './store/catalog-store.js';

/** The job that expires the holds whose time ran out and announces it. */
export const EXPIRE_HOLDS_JOB = 'catalog.expire-holds';
/** Holds one sweep expires in one transaction; the job sweeps again while a sweep is full. */
export const EXPIRE_BATCH_MAX = 500;
/** Offers re-checked per query when a capability version is published. */
const REVALIDATE_BATCH_MAX = 500;
const MINUTE_MS = 60 * 1000;
/** A month is the longest capacity period: counters that started earlier have ended. */
const LONGEST_PERIOD_MS = 31 * 24 * 60 * MINUTE_MS;

/** An offer as a caller states it. */
export interface OfferInput extends OfferTerms {
  readonly capability: string;
  readonly externalRef?: string | null | undefined;
  readonly attributes: Record<string, unknown>;
  /** `draft` unless asked; `active` only if the offer is valid, like every offer stored. */
  readonly status?: InitialOfferStatus | undefined;
}

/** What an update changes; the rest is kept. The capability of an offer never changes. */
export type OfferChanges = {
  readonly [K in keyof Omit<OfferInput, 'capability' | 'status'>]?: OfferInput[K] | undefined;
};

/** The outcome of one item of a bulk import, by its position in the request. */
export interface ImportResult {
  readonly index: number;
  readonly status: 'created' | 'updated' | 'rejected';
  readonly offerId?: OfferId;
  readonly errors?: readonly FieldError[];
}

export interface OfferFilter extends PageRequest {
  readonly partnerId?: PartnerId | undefined;
  readonly capability?: string | undefined;
  readonly status?: OfferStatus | undefined;
  readonly region?: string | undefined;
}

export interface ReserveInput {
  readonly offerId: OfferId;
  readonly quantity: bigint;
  /** Any time in the capacity period to reserve in. */
  readonly at: Date;
  /** How long the hold lasts unless confirmed, 1 to `HOLD_MINUTES_MAX`. */
  readonly holdMinutes: number;
  /** The caller's reference, such as the order leg the capacity is for. */
  readonly reference?: string | undefined;
}

/** One hold of `reserveAll`: a reservation as `reserve` takes it, with the id it is to have. */
export interface HoldInput extends ReserveInput {
  /** Chosen by the caller, so that what it writes before the hold can already name it. */
  readonly id: ReservationId;
}

/** Every hold of a `reserveAll`, or why some could not be made (and then none was). */
export type HoldsOutcome =
  | {
      readonly held: true;
      /** Each reservation, in the order asked, with its offer-period's total right after it. */
      readonly holds: readonly { readonly reservation: Reservation; readonly reserved: bigint }[];
    }
  | {
      readonly held: false;
      /** The holds refused, by their position in the request. */
      readonly refusals: readonly { readonly index: number; readonly error: DomainError }[];
    };

export interface CapacityUsage {
  readonly offerId: OfferId;
  readonly periodStart: Date;
  readonly reserved: bigint;
}

/** A hold not yet confirmed, released or expired, and when it lapses. */
export interface LiveHold {
  readonly id: ReservationId;
  readonly offerId: OfferId;
  readonly periodStart: Date;
  readonly quantity: bigint;
  readonly expiresAt: Date;
}

export type CatalogService = ReturnType<typeof createCatalogService>;

/** Capabilities already read in this transaction, by key; null for a key that names none. */
type CapabilityCache = Map<string, Capability | null>;

/** Who sees an offer: operators and Baton always, its partner always, everyone else only while active. */
function canRead(actor: Actor, offer: Offer): boolean {
  return canWrite(actor, offer.partnerId) || offer.status === 'active';
}

/** Who changes a partner's offers: operators, Baton itself, and that partner's staff. */
function canWrite(actor: Actor, partnerId: PartnerId): boolean {
  return (
    actor.kind === 'operator' ||
    actor.kind === 'system' ||
    (actor.kind === 'partner' && actor.partnerId === partnerId)
  );
}

/** Another partner's reservations are as absent as missing ones; other callers reach them through workflows. */
function canTouchReservation(actor: Actor, reservation: Reservation): boolean {
  return actor.kind !== 'partner' || actor.partnerId === reservation.partnerId;
}

function offerData(offer: Offer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { offer: offerJson(offer), ...extra };
}

function termsOf(offer: Offer): OfferInput {
  return {
    capability: offer.capabilityKey,
    externalRef: offer.externalRef,
    attributes: offer.attributes,
    unitPrice: {
      amount: formatAmount(offer.unitPrice.amountMinor, offer.unitPrice.currency),
      currency: offer.unitPrice.currency,
    },
    minQuantity: offer.minQuantity,
    maxQuantity: offer.maxQuantity,
    leadTimeHours: offer.leadTimeHours,
    regions: offer.regions,
    capacityPerPeriod: offer.capacityPerPeriod,
    capacityPeriod: offer.capacityPeriod,
  };
}

/** Whether one hold of a batch can be made: why not, or its offer, period and counter's new total. */
type HoldVerdict =
  | { readonly error: DomainError }
  | {
      readonly offer: { readonly partnerId: PartnerId; readonly capacityPerPeriod: bigint };
      readonly start: Date;
      /** The counter's total after the batch, when it took the batch's holds. */
      readonly counted: bigint | undefined;
    };

/** Offer, then period, then id: the one order counters are locked in. */
function counterOrder(a: Reservation, b: Reservation): number {
  if (a.offerId !== b.offerId) return a.offerId < b.offerId ? -1 : 1;
  if (a.periodStart.getTime() !== b.periodStart.getTime())
    return a.periodStart.getTime() - b.periodStart.getTime();
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function sameErrors(a: readonly FieldError[], b: readonly FieldError[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function createCatalogService({
  standards,
  participants,
}: {
  standards: StandardsService;
  participants: ParticipantsService;
  jobs: Jobs;
}) {
  /** Loads an offer the actor may see (`read`) or change (`write`); others are as absent as missing ones. */
  async function visibleOffer(
    ctx: Context,
    id: OfferId,
    mode: 'read' | 'write',
    lock: 'none' | 'share' | 'update' = 'none',
  ): Promise<Offer> {
    // A partner never locks another partner's offer: the query itself is scoped to its own.
    const scope = mode === 'write' && ctx.actor.kind === 'partner' ? ctx.actor.partnerId : null;
    if (mode === 'write' && ctx.actor.kind === 'customer') throw catalogErrors.offerNotFound(id);
    const offer = await findOffer(ctx.db, id, lock, scope);
    if (!offer || !canRead(ctx.actor, offer)) {
      throw catalogErrors.offerNotFound(id);
    }
    if (mode === 'write' && !canWrite(ctx.actor, offer.partnerId)) throw catalogErrors.offerNotFound(id);
    return offer;
  }

  async function requirePartnerAccess(ctx: Context, partnerId: PartnerId): Promise<void> {
    if (!canWrite(ctx.actor, partnerId)) throw catalogErrors.partnerNotFound(partnerId);
    // The partner must exist: an operator cannot publish offers for an id nobody holds.
    await participants.getPartner(ctx, partnerId);
  }

  async function visibleReservation(ctx: Context, id: ReservationId): Promise<Reservation> {
    const reservation = await findReservation(ctx.db, id);
    if (!reservation || !canTouchReservation(ctx.actor, reservation)) {
      throw catalogErrors.reservationNotFound(id);
    }
    return reservation;
  }

  /**
   * Checks a whole offer against its own rules and its capability's current version, and
   * reports every broken rule by field.
   *
   * @throws DomainError `catalog.offer_invalid`
   */
  async function validate(db: Executor, input: OfferInput, capabilities: CapabilityCache = new Map()) {
    const { price, errors } = checkTerms(input);
    const capability = await currentCapability(db, input.capability, errors, capabilities);
    if (capability) {
      errors.push(...attributeErrors(validateAttributes(capability, input.attributes)));
      if (Number.isInteger(input.leadTimeHours)) {
        errors.push(...checkServiceLevels(input.leadTimeHours, capability.serviceLevels));
      }
    }
    if (errors.length > 0 || !price || !capability) throw catalogErrors.offerInvalid(errors);
    return { price, capability };
  }

  /** The capability's current version, or null with a field error when there is no such capability. */
  async function currentCapability(
    db: Executor,
    key: string,
    errors: FieldError[],
    capabilities: CapabilityCache = new Map(),
  ): Promise<Capability | null> {
    let capability = capabilities.get(key);
    if (capability === undefined) {
      try {
        capability = await standards.getCapability(db, key);
      } catch (error) {
        if (!isDomainError(error) || error.code !== 'standards.capability_not_found') throw error;
        capability = null;
      }
      capabilities.set(key, capability);
    }
    if (capability === null)
      errors.push({ path: '/capability', rule: 'exists', message: `no capability ${key}` });
    return capability;
  }

  /** Why an offer does not conform to a version of its capability; empty when it does. */
  function nonConformance(offer: Offer, capability: Capability): FieldError[] {
    return [
      ...attributeErrors(validateAttributes(capability, offer.attributes)),
      ...checkServiceLevels(offer.leadTimeHours, capability.serviceLevels),
    ];
  }

  async function insertOffer(
    ctx: Context,
    partnerId: PartnerId,
    input: OfferInput,
    capabilities?: CapabilityCache,
  ): Promise<Offer> {
    requireTransaction(ctx.db);
    const { price, capability } = await validate(ctx.db, input, capabilities);
    // The unique constraint decides between concurrent offers with one external reference.
    const row = await ctx.db
      .insertInto('offers')
      .values({
        id: newId('off'),
        partner_id: partnerId,
        capability_key: capability.key,
        capability_version: capability.version,
        external_ref: input.externalRef ?? null,
        attributes: JSON.stringify(input.attributes),
        unit_price_minor: price.amountMinor,
        currency: price.currency,
        min_quantity: input.minQuantity,
        max_quantity: input.maxQuantity,
        lead_time_hours: input.leadTimeHours,
        regions: [...input.regions],
        capacity_per_period: input.capacityPerPeriod,
        capacity_period: input.capacityPeriod,
        status: input.status ?? 'draft',
        compliance_errors: '[]',
        created_at: ctx.now,
        updated_at: ctx.now,
      })
      .onConflict((oc) => oc.columns(['partner_id', 'external_ref']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw catalogErrors.externalRefTaken(input.externalRef ?? '');
    const offer = toOffer(row);
    await appendEvent(ctx, {
      type: 'offer.created',
      subjectId: offer.id,
      data: offerData(offer),
      audience: [offer.partnerId],
    });
    return offer;
  }

  /** Replaces a locked offer's terms with `input`, which must be valid as a whole. */
  async function replaceOffer(
    ctx: Context,
    offer: Offer,
    input: OfferInput,
    requestedStatus: SettableOfferStatus | undefined,
    capabilities?: CapabilityCache,
  ): Promise<Offer> {
    const tx = ctx.db;
    requireTransaction(tx);
    const { price, capability } = await validate(tx, input, capabilities);
    if (input.capacityPeriod !== offer.capacityPeriod && (await hasLiveReservations(tx, offer.id))) {
      throw catalogErrors.offerInvalid([
        {
          path: '/capacity_period',
          rule: 'immutable',
          message: 'cannot change while the offer has held or confirmed reservations',
        },
      ]);
    }
    const status = statusAfterChange(offer.status, requestedStatus);
    const row = await catchingUniqueViolation(
      tx,
      () =>
        tx
          .updateTable('offers')
          .set({
            capability_version: capability.version,
            external_ref: input.externalRef ?? null,
            attributes: JSON.stringify(input.attributes),
            unit_price_minor: price.amountMinor,
            currency: price.currency,
            min_quantity: input.minQuantity,
            max_quantity: input.maxQuantity,
            lead_time_hours: input.leadTimeHours,
            regions: [...input.regions],
            capacity_per_period: input.capacityPerPeriod,
            capacity_period: input.capacityPeriod,
            status,
            compliance_errors: '[]',
            updated_at: ctx.now,
          })
          .where('id', '=', offer.id)
          .returningAll()
          .executeTakeFirstOrThrow(),
      () => {
        throw catalogErrors.externalRefTaken(input.externalRef ?? '');
      },
    );
    const updated = toOffer(row);
    await appendEvent(ctx, {
      type: 'offer.updated',
      subjectId: offer.id,
      data: offerData(updated),
      audience: [offer.partnerId],
    });
    if (status !== offer.status) await statusChanged(ctx, updated, offer.status);
    return updated;
  }

  async function statusChanged(ctx: Context, offer: Offer, previous: OfferStatus): Promise<void> {
    await appendEvent(ctx, {
      type: 'offer.status_changed',
      subjectId: offer.id,
      data: offerData(offer, { previous_status: previous }),
      audience: [offer.partnerId],
    });
  }

  async function hasLiveReservations(db: Executor, offerId: OfferId): Promise<boolean> {
    const row = await db
      .selectFrom('reservations')
      .select('id')
      .where('offer_id', '=', offerId)
      .where('status', 'in', ['held', 'confirmed'])
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Creates an offer, or updates the partner's offer with the same external reference. */
  async function upsertOffer(
    ctx: Context,
    partnerId: PartnerId,
    input: OfferInput,
    capabilities: CapabilityCache,
  ): Promise<{ status: 'created' | 'updated'; offer: Offer }> {
    if (input.externalRef) {
      const existing = await findOfferByExternalRef(ctx.db, partnerId, input.externalRef);
      if (existing) {
        if (existing.capabilityKey !== input.capability) {
          throw catalogErrors.offerInvalid([
            {
              path: '/capability',
              rule: 'immutable',
              message: `the offer ${input.externalRef} is for ${existing.capabilityKey}; an offer's capability never changes`,
            },
          ]);
        }
        return {
          status: 'updated',
          offer: await replaceOffer(ctx, existing, input, input.status, capabilities),
        };
      }
    }
    return { status: 'created', offer: await insertOffer(ctx, partnerId, input, capabilities) };
  }

  /**
   * Expires holds the caller has locked (in id order, so that two transactions settling
   * overlapping holds cannot deadlock), and gives their quantity back to their offer-periods.
   */
  async function expireLocked(ctx: Context, reservationIds: readonly string[]): Promise<Reservation[]> {
    const tx = ctx.db;
    requireTransaction(tx);
    if (reservationIds.length === 0) return [];
    const rows = await tx
      .updateTable('reservations')
      .set({ status: 'expired', settled_at: ctx.now })
      .where('id', 'in', [...reservationIds])
      // The status guard makes the decrement happen once: a second settler finds no held row.
      .where('status', '=', 'held')
      .returningAll()
      .execute();
    // Counters are updated in one order everywhere, so concurrent sweeps cannot deadlock on them.
    const expired = rows.map(toReservation).sort(counterOrder);
    for (const reservation of expired) {
      const reserved = await adjustCounter(
        tx,
        reservation.offerId,
        reservation.periodStart,
        -reservation.quantity,
      );
      await capacityEvent(ctx, 'capacity.expired', reservation, reserved);
    }
    return expired;
  }

  /** The service's `reserveAll`, which `reserve` is made of too. */
  async function reserveAll(ctx: Context, inputs: readonly HoldInput[]): Promise<HoldsOutcome> {
    requireTransaction(ctx.db);
    const tx = ctx.db;
    if (inputs.length === 0) return { held: true, holds: [] };
    for (const input of inputs) {
      assert(input.quantity > 0n, 'a reservation needs a positive quantity');
      assert(
        Number.isInteger(input.holdMinutes) &&
          input.holdMinutes >= 1 &&
          input.holdMinutes <= HOLD_MINUTES_MAX,
        'hold minutes out of range',
      );
    }
    const startIn = (period: CapacityPeriod, at: Date): Date | null => {
      const start = periodStart(period, at);
      return periodEnd(period, start) <= ctx.now ? null : start;
    };
    const rows: HoldRow[] = inputs.map((input) => ({
      id: input.id,
      offerId: input.offerId,
      quantity: input.quantity,
      periodStarts: {
        day: startIn('day', input.at),
        week: startIn('week', input.at),
        month: startIn('month', input.at),
      },
      expiresAt: new Date(ctx.now.getTime() + input.holdMinutes * MINUTE_MS),
      reference: input.reference ?? null,
    }));
    const found = await holdAll(tx, rows, ctx.now);

    // Each hold's offer-period, and why it was refused (if it was), as `reserve` would say it.
    const judged = inputs.map((input, index): HoldVerdict => {
      const offer = found.offers.get(input.offerId);
      const visible =
        offer !== undefined && (offer.status === 'active' || canWrite(ctx.actor, offer.partnerId));
      if (!offer || !visible) return { error: catalogErrors.offerNotFound(input.offerId) };
      if (offer.status !== 'active')
        return { error: catalogErrors.offerNotAvailable(input.offerId, offer.status) };
      if (input.quantity < offer.minQuantity || input.quantity > offer.maxQuantity)
        return { error: catalogErrors.quantityOutOfRange(offer.minQuantity, offer.maxQuantity) };
      const start = (rows[index] as HoldRow).periodStarts[offer.capacityPeriod];
      if (start === null) return { error: catalogErrors.periodEnded() };
      return { offer, start, counted: found.counted.get(counterKey(input.offerId, start)) };
    });

    const freed = new Map<string, bigint>();
    for (const lapsed of found.lapsed) {
      const key = counterKey(lapsed.offerId, lapsed.periodStart);
      freed.set(key, (freed.get(key) ?? 0n) + lapsed.quantity);
    }
    const wanted = new Map<string, { offerId: string; periodStart: Date; quantity: bigint }>();
    for (const [index, verdict] of judged.entries()) {
      if (!('start' in verdict)) continue;
      const input = inputs[index] as HoldInput;
      const key = counterKey(input.offerId, verdict.start);
      const entry = wanted.get(key) ?? { offerId: input.offerId, periodStart: verdict.start, quantity: 0n };
      wanted.set(key, { ...entry, quantity: entry.quantity + input.quantity });
    }

    if (found.written) {
      // Announced as `reserve` would have: the expiries first, then each hold, with the
      // running total of its counter after it.
      const running = new Map<string, bigint>();
      for (const [key, reserved] of found.counted) {
        running.set(key, reserved + (freed.get(key) ?? 0n) - (wanted.get(key)?.quantity ?? 0n));
      }
      await announceLapsed(ctx, found.lapsed, running);
      const holds: { reservation: Reservation; reserved: bigint }[] = [];
      for (const [index, input] of inputs.entries()) {
        const verdict = judged[index] as Extract<HoldVerdict, { start: Date }>;
        const key = counterKey(input.offerId, verdict.start);
        const reserved = (running.get(key) ?? 0n) + input.quantity;
        running.set(key, reserved);
        const reservation: Reservation = {
          id: input.id,
          offerId: input.offerId,
          partnerId: verdict.offer.partnerId,
          periodStart: verdict.start,
          quantity: input.quantity,
          status: 'held',
          expiresAt: (rows[index] as HoldRow).expiresAt,
          reference: input.reference ?? null,
          createdAt: ctx.now,
        };
        holds.push({ reservation, reserved });
        await capacityEvent(ctx, 'capacity.reserved', reservation, reserved);
      }
      return { held: true, holds };
    }

    // Not every hold could be made: give back what was counted, keep the expiries.
    const deltas = [...wanted.entries()].flatMap(([key, entry]) => {
      const counted = found.counted.has(key);
      const delta = counted ? -entry.quantity : -(freed.get(key) ?? 0n);
      return delta === 0n ? [] : [{ offerId: entry.offerId, periodStart: entry.periodStart, delta }];
    });
    const totals = await adjustCounters(tx, deltas);
    // Every offer-period with expiries was adjusted: its total before them is known.
    const running = new Map<string, bigint>();
    for (const [key, reserved] of totals) running.set(key, reserved + (freed.get(key) ?? 0n));
    await announceLapsed(ctx, found.lapsed, running);
    const refusals: { index: number; error: DomainError }[] = [];
    for (const [index, verdict] of judged.entries()) {
      if ('error' in verdict) {
        refusals.push({ index, error: verdict.error });
      } else if (verdict.counted === undefined) {
        const input = inputs[index] as HoldInput;
        const reserved = await reservedIn(tx, input.offerId, verdict.start);
        const free = verdict.offer.capacityPerPeriod - reserved;
        refusals.push({
          index,
          error: catalogErrors.capacityExceeded(input.quantity, free > 0n ? free : 0n, verdict.start),
        });
      }
    }
    assert(refusals.length > 0, 'holds that were not written have a refusal');
    return { held: false, refusals };
  }

  /** The service's `confirmReservation`, which `confirmReservations` falls back on. */
  async function confirmReservation(ctx: Context, id: ReservationId): Promise<Reservation> {
    requireTransaction(ctx.db);
    const partnerId = ctx.actor.kind === 'partner' ? ctx.actor.partnerId : null;
    // The common case, a live hold, in one statement; the others are told apart after.
    const [done] = await confirmHeld(ctx.db, [id], ctx.now, partnerId);
    if (done) {
      await capacityEvent(ctx, 'capacity.confirmed', done.reservation, done.reserved);
      return done.reservation;
    }
    const current = await visibleReservation(ctx, id);
    if (current.status === 'confirmed') return current;
    if (current.status === 'held') throw catalogErrors.reservationExpired(id);
    throw catalogErrors.reservationNotHeld(id, current.status);
  }

  /**
   * Announces holds that lapsed on the way to a new hold, each with its counter's total after
   * it: `before` holds each counter's total before the first of them expired, and is updated.
   */
  async function announceLapsed(
    ctx: Context,
    lapsed: readonly Omit<Reservation, 'status' | 'expiresAt' | 'reference' | 'createdAt'>[],
    before: Map<string, bigint>,
  ): Promise<void> {
    for (const entry of lapsed) {
      const key = counterKey(entry.offerId, entry.periodStart);
      const reserved = (before.get(key) ?? entry.quantity) - entry.quantity;
      before.set(key, reserved);
      await capacityEvent(
        ctx,
        'capacity.expired',
        { ...entry, status: 'expired', expiresAt: null, reference: null, createdAt: ctx.now },
        reserved,
      );
    }
  }

  async function capacityEvent(
    ctx: Context,
    type: string,
    reservation: Reservation,
    reserved: bigint,
  ): Promise<void> {
    await appendEvent(ctx, {
      type,
      subjectId: reservation.id,
      data: {
        reservation_id: reservation.id,
        offer_id: reservation.offerId,
        period_start: reservation.periodStart.toISOString(),
        quantity: reservation.quantity.toString(),
        reserved: reserved.toString(),
        // A hold says when it lapses, so that a reader can stop counting it then.
        ...(reservation.status === 'held' && reservation.expiresAt
          ? { expires_at: reservation.expiresAt.toISOString() }
          : {}),
      },
      audience: [reservation.partnerId],
    });
  }

  /**
   * Searches offers, oldest first. Operators see every offer; a partner sees the active ones
   * and its own; a customer the active ones.
   */
  async function listOffers(ctx: Context, filter: OfferFilter): Promise<Page<Offer>> {
    let query = ctx.db
      .selectFrom('offers')
      .selectAll()
      .orderBy('id')
      .limit(filter.limit + 1);
    const actor = ctx.actor;
    if (actor.kind === 'partner') {
      query = query.where((eb) =>
        eb.or([eb('status', '=', 'active'), eb('partner_id', '=', actor.partnerId)]),
      );
    } else if (actor.kind !== 'operator' && actor.kind !== 'system') {
      query = query.where('status', '=', 'active');
    }
    if (filter.partnerId) query = query.where('partner_id', '=', filter.partnerId);
    if (filter.capability) query = query.where('capability_key', '=', filter.capability);
    if (filter.status) query = query.where('status', '=', filter.status);
    if (filter.region) query = query.where('regions', '@>', sql<string[]>`array[${filter.region}]::text[]`);
    if (filter.after) query = query.where('id', '>', filter.after);
    return pageOf(await query.execute(), filter.limit, toOffer);
  }

  return {
    /**
     * Creates a partner's offer, as `draft` unless `active` is asked for. Nothing is stored
     * unless the whole offer is valid.
     *
     * @throws DomainError `catalog.partner_not_found` (another partner's), `catalog.offer_invalid`
     *   (with an error per field), `catalog.external_ref_taken`
     */
    async createOffer(ctx: Context, partnerId: PartnerId, input: OfferInput): Promise<Offer> {
      requireTransaction(ctx.db);
      await requirePartnerAccess(ctx, partnerId);
      return insertOffer(ctx, partnerId, input);
    },

    /**
     * Changes an offer's terms; the result is checked as a whole against the capability's
     * current version. A `non_compliant` offer that conforms again becomes `paused`.
     *
     * @throws DomainError `catalog.offer_not_found`, `catalog.offer_invalid`,
     *   `catalog.external_ref_taken`
     */
    async updateOffer(ctx: Context, id: OfferId, changes: OfferChanges): Promise<Offer> {
      requireTransaction(ctx.db);
      const offer = await visibleOffer(ctx, id, 'write', 'update');
      const current = termsOf(offer);
      const defined = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
      return replaceOffer(ctx, offer, { ...current, ...defined } as OfferInput, undefined);
    },

    /**
     * Moves an offer to `draft`, `active` or `paused`. Activating it, or moving it out of
     * `non_compliant`, re-checks it against its capability's current version.
     *
     * @throws DomainError `catalog.offer_not_found`, `catalog.offer_invalid`
     */
    async setOfferStatus(ctx: Context, id: OfferId, status: SettableOfferStatus): Promise<Offer> {
      requireTransaction(ctx.db);
      const offer = await visibleOffer(ctx, id, 'write', 'update');
      if (offer.status === status) return offer;
      let version = offer.capabilityVersion;
      if (status === 'active' || offer.status === 'non_compliant') {
        const errors: FieldError[] = [];
        const capability = await currentCapability(ctx.db, offer.capabilityKey, errors);
        if (capability) errors.push(...nonConformance(offer, capability));
        if (errors.length > 0 || !capability) throw catalogErrors.offerInvalid(errors);
        version = capability.version;
      }
      const row = await ctx.db
        .updateTable('offers')
        .set({ status, capability_version: version, compliance_errors: '[]', updated_at: ctx.now })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const updated = toOffer(row);
      await statusChanged(ctx, updated, offer.status);
      return updated;
    },

    /**
     * An offer: any of its partner's to the partner and to operators, an active one to anyone.
     *
     * @throws DomainError `catalog.offer_not_found`
     */
    async getOffer(ctx: Context, id: OfferId): Promise<Offer> {
      return visibleOffer(ctx, id, 'read');
    },

    listOffers,

    /**
     * Every offer of one partner, whatever its status: for the partner itself and operators.
     *
     * @throws DomainError `catalog.partner_not_found`
     */
    async listPartnerOffers(
      ctx: Context,
      partnerId: PartnerId,
      filter: Omit<OfferFilter, 'partnerId'>,
    ): Promise<Page<Offer>> {
      await requirePartnerAccess(ctx, partnerId);
      return listOffers(ctx, { ...filter, partnerId });
    },

    /**
     * Creates or updates (by `externalRef`) up to `IMPORT_ITEMS_MAX` offers of one partner. Each
     * item runs in its own savepoint: a rejected item leaves no trace and does not stop the
     * others. An item repeating an earlier accepted item's `externalRef` is rejected.
     *
     * @returns one result per item, in order.
     * @throws DomainError `catalog.partner_not_found`
     */
    async importOffers(
      ctx: Context,
      partnerId: PartnerId,
      items: readonly OfferInput[],
    ): Promise<ImportResult[]> {
      requireTransaction(ctx.db);
      assert(items.length <= IMPORT_ITEMS_MAX, `an import carries at most ${IMPORT_ITEMS_MAX} items`);
      await requirePartnerAccess(ctx, partnerId);
      const results: ImportResult[] = [];
      const accepted = new Map<string, number>();
      // One import is one transaction: each capability is read once for all its items.
      const capabilities: CapabilityCache = new Map();
      for (const [index, item] of items.entries()) {
        const earlier = item.externalRef ? accepted.get(item.externalRef) : undefined;
        if (earlier !== undefined) {
          results.push({
            index,
            status: 'rejected',
            errors: [
              {
                path: '/external_ref',
                rule: 'uniqueItems',
                message: `repeats the external_ref of item ${earlier}`,
              },
            ],
          });
          continue;
        }
        await sql`savepoint import_item`.execute(ctx.db);
        try {
          const { status, offer } = await upsertOffer(ctx, partnerId, item, capabilities);
          await sql`release savepoint import_item`.execute(ctx.db);
          if (item.externalRef) accepted.set(item.externalRef, index);
          results.push({ index, status, offerId: offer.id });
        } catch (error) {
          await sql`rollback to savepoint import_item`.execute(ctx.db);
          await sql`release savepoint import_item`.execute(ctx.db);
          if (!isDomainError(error)) throw error;
          results.push({ index, status: 'rejected', errors: fieldErrorsOf(error) });
        }
      }
      return results;
    },

    /**
     * Re-checks every offer of a capability against its current version (call it in the
     * transaction that publishes the version). Offers that do not conform become
     * `non_compliant` with the reason per field; `non_compliant` offers that conform again
     * become `paused`. Each change is an event to the offer's partner.
     *
     * @returns the offers that do not conform (newly or still), and those restored.
     * @throws DomainError `standards.capability_not_found`
     */
    async revalidateOffers(
      ctx: Context,
      capabilityKey: string,
    ): Promise<{ nonCompliant: OfferId[]; restored: OfferId[] }> {
      requireTransaction(ctx.db);
      const capability = await standards.getCapability(ctx.db, capabilityKey);
      const nonCompliant: OfferId[] = [];
      const restored: OfferId[] = [];
      let after: string | null = null;
      for (;;) {
        let query = ctx.db
          .selectFrom('offers')
          .selectAll()
          .where('capability_key', '=', capabilityKey)
          .orderBy('id')
          .limit(REVALIDATE_BATCH_MAX)
          // Locked, so that an update racing the publication is checked by one or the other.
          .forUpdate();
        if (after !== null) query = query.where('id', '>', after);
        const rows = await query.execute();
        for (const offer of rows.map(toOffer)) {
          const errors = nonConformance(offer, capability);
          const conforms = errors.length === 0;
          const status: OfferStatus = conforms
            ? offer.status === 'non_compliant'
              ? 'paused'
              : offer.status
            : 'non_compliant';
          if (!conforms) nonCompliant.push(offer.id);
          if (status === offer.status && sameErrors(errors, offer.complianceErrors)) {
            // Unchanged for matching: only the version it was checked against moves on.
            if (offer.capabilityVersion !== capability.version) {
              await ctx.db
                .updateTable('offers')
                .set({ capability_version: capability.version })
                .where('id', '=', offer.id)
                .execute();
            }
            continue;
          }
          const row = await ctx.db
            .updateTable('offers')
            .set({
              status,
              capability_version: capability.version,
              compliance_errors: JSON.stringify(errors),
              updated_at: ctx.now,
            })
            .where('id', '=', offer.id)
            .returningAll()
            .executeTakeFirstOrThrow();
          const updated = toOffer(row);
          if (status !== offer.status) {
            if (conforms) restored.push(offer.id);
            await statusChanged(ctx, updated, offer.status);
          } else {
            await appendEvent(ctx, {
              type: 'offer.updated',
              subjectId: offer.id,
              data: offerData(updated),
              audience: [offer.partnerId],
            });
          }
        }
        if (rows.length < REVALIDATE_BATCH_MAX) break;
        after = rows.at(-1)?.id ?? null;
      }
      return { nonCompliant, restored };
    },

    /**
     * Holds `quantity` of an active offer's capacity in the period containing `at`, until
     * `holdMinutes` from now unless confirmed. Expired holds of that period are released first.
     * Concurrent reservations never overbook: the period's counter only grows by a conditional
     * update that re-checks the capacity under the row's lock. Any actor that sees the offer may
     * reserve through the service (workflows act for customers); the HTTP route is for operators.
     *
     * @throws DomainError `catalog.offer_not_found`, `catalog.offer_not_available` (not active),
     *   `catalog.quantity_out_of_range`, `catalog.period_ended`, `catalog.capacity_exceeded`
     */
    async reserve(ctx: Context, input: ReserveInput): Promise<Reservation> {
      // One hold is a batch of one: the same statement, the same guarantees.
      const outcome = await reserveAll(ctx, [{ ...input, id: newId('rsv') }]);
      if (!outcome.held) throw (outcome.refusals[0] as { error: DomainError }).error;
      return (outcome.holds[0] as { reservation: Reservation }).reservation;
    },

    /**
     * Holds capacity for several reservations at once, all or none, in one statement, with the
     * guarantees of `reserve` for each: active offers only, quantities within range, periods not
     * over, lapsed holds of the period given back first, and never more than an offer-period's
     * capacity (holds of one offer-period count together). Counters are locked for the shortest
     * time the caller allows: call it last before the transaction commits.
     *
     * @returns the reservations, in the order asked; or, when any hold is refused, each refusal
     *   with its error (`catalog.offer_not_found`, `catalog.offer_not_available`,
     *   `catalog.quantity_out_of_range`, `catalog.period_ended`, `catalog.capacity_exceeded`),
     *   and nothing held.
     */
    reserveAll,

    /**
     * Confirms a hold that has not expired: its capacity stays reserved until released, and it
     * never expires. Confirming a confirmed reservation changes nothing. A partner reaches only
     * the reservations of its own offers; other actors reach any (workflows act for customers).
     *
     * @throws DomainError `catalog.reservation_not_found`, `catalog.reservation_expired`,
     *   `catalog.reservation_not_held` (released or expired)
     */
    confirmReservation,

    /**
     * Confirms several holds as `confirmReservation` does each, the common case (held, not
     * expired) in one statement.
     *
     * @returns one result per id, in order: the confirmed reservation, or the error
     *   `confirmReservation` gives for it (`catalog.reservation_not_found`,
     *   `catalog.reservation_expired`, `catalog.reservation_not_held`).
     */
    async confirmReservations(
      ctx: Context,
      ids: readonly ReservationId[],
    ): Promise<({ reservation: Reservation } | { error: DomainError })[]> {
      requireTransaction(ctx.db);
      const partnerId = ctx.actor.kind === 'partner' ? ctx.actor.partnerId : null;
      const confirmed = new Map(
        (await confirmHeld(ctx.db, ids, ctx.now, partnerId)).map((entry) => [entry.reservation.id, entry]),
      );
      const results: ({ reservation: Reservation } | { error: DomainError })[] = [];
      for (const id of ids) {
        const done = confirmed.get(id);
        if (done) {
          await capacityEvent(ctx, 'capacity.confirmed', done.reservation, done.reserved);
          results.push({ reservation: done.reservation });
          continue;
        }
        // Not a live hold of the caller's: the single path tells which (or finds it confirmed).
        try {
          results.push({ reservation: await confirmReservation(ctx, id) });
        } catch (error) {
          if (!isDomainError(error)) throw error;
          results.push({ error });
        }
      }
      return results;
    },

    /**
     * Gives a held or confirmed reservation's capacity back. Releasing one that is already
     * released or expired changes nothing.
     *
     * @throws DomainError `catalog.reservation_not_found`
     */
    async releaseReservation(ctx: Context, id: ReservationId): Promise<Reservation> {
      requireTransaction(ctx.db);
      const tx = ctx.db;
      await visibleReservation(ctx, id);
      const row = await tx
        .updateTable('reservations')
        .set({ status: 'released', settled_at: ctx.now })
        .where('id', '=', id)
        .where('status', 'in', ['held', 'confirmed'])
        .returningAll()
        .executeTakeFirst();
      if (!row) {
        const current = await findReservation(tx, id);
        assert(current, `reservation ${id} vanished`);
        return current;
      }
      const reservation = toReservation(row);
      const reserved = await adjustCounter(
        tx,
        reservation.offerId,
        reservation.periodStart,
        -reservation.quantity,
      );
      await capacityEvent(ctx, 'capacity.released', reservation, reserved);
      return reservation;
    },

    /**
     * Expires up to `EXPIRE_BATCH_MAX` holds whose time ran out, giving their capacity back,
     * with an event each. Holds another transaction is settling are left to it.
     *
     * @returns the ids of the holds expired.
     */
    async expireHolds(ctx: Context): Promise<ReservationId[]> {
      requireTransaction(ctx.db);
      const due = await ctx.db
        .selectFrom('reservations')
        .select('id')
        .where('status', '=', 'held')
        .where('expires_at', '<=', ctx.now)
        .orderBy('id')
        .limit(EXPIRE_BATCH_MAX)
        .forUpdate()
        .skipLocked()
        .execute();
      const expired = await expireLocked(
        ctx,
        due.map((row) => row.id),
      );
      return expired.map((reservation) => reservation.id);
    },

    /**
     * A reservation: to operators, and to the partner whose offer it holds.
     *
     * @throws DomainError `catalog.reservation_not_found`
     */
    async getReservation(ctx: Context, id: ReservationId): Promise<Reservation> {
      const reservation = await visibleReservation(ctx, id);
      if (ctx.actor.kind === 'customer') throw catalogErrors.reservationNotFound(id);
      return reservation;
    },

    /**
     * How much of an offer's capacity is free in the period containing `at`. With `now`, holds
     * that ran out by then count as free even before they are swept.
     *
     * @throws DomainError `catalog.offer_not_found`
     */
    async freeCapacity(db: Executor, offerId: OfferId, at: Date, now?: Date): Promise<bigint> {
      const offer = await findOffer(db, offerId);
      if (!offer) throw catalogErrors.offerNotFound(offerId);
      const start = periodStart(offer.capacityPeriod, at);
      let reserved = await reservedIn(db, offerId, start);
      if (now) {
        const lapsed = await db
          .selectFrom('reservations')
          .select(sql<bigint>`coalesce(sum(quantity), 0)::int8`.as('quantity'))
          .where('offer_id', '=', offerId)
          .where('period_start', '=', start)
          .where('status', '=', 'held')
          .where('expires_at', '<=', now)
          .executeTakeFirstOrThrow();
        reserved -= lapsed.quantity;
      }
      const free = offer.capacityPerPeriod - reserved;
      return free > 0n ? free : 0n;
    },

    /** Every offer, whatever its status, by id: what the matching index is built from. */
    async listOffersForIndex(db: Executor, page: PageRequest): Promise<Page<Offer>> {
      let query = db
        .selectFrom('offers')
        .selectAll()
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      return pageOf(await query.execute(), page.limit, toOffer);
    },

    /**
     * Of some reservations, those whose capacity was given back (released, or lapsed holds
     * expired): the matcher counts an allocation towards its partner's exposure only while its
     * reservation holds or used capacity.
     */
    async reservationsGivenBack(db: Executor, ids: readonly ReservationId[]): Promise<Set<ReservationId>> {
      if (ids.length === 0) return new Set();
      const rows = await db
        .selectFrom('reservations')
        .select('id')
        .where('id', 'in', [...ids])
        .where('status', 'in', ['released', 'expired'])
        .execute();
      return new Set(rows.map((row) => row.id as ReservationId));
    },

    /** Every hold not yet settled (some may have lapsed, awaiting the sweep), by id. */
    async listLiveHolds(db: Executor): Promise<LiveHold[]> {
      const rows = await db
        .selectFrom('reservations')
        .select(['id', 'offer_id', 'period_start', 'quantity', 'expires_at'])
        .where('status', '=', 'held')
        .where('expires_at', 'is not', null)
        .orderBy('id')
        .execute();
      return rows.map((row) => ({
        id: row.id as ReservationId,
        offerId: row.offer_id as OfferId,
        periodStart: row.period_start,
        quantity: row.quantity,
        expiresAt: row.expires_at as Date,
      }));
    },

    /** The held and confirmed total of every offer-period that has not ended by `from`, where it is not 0. */
    async listCapacityUsage(db: Executor, { from }: { from: Date }): Promise<CapacityUsage[]> {
      const rows = await db
        .selectFrom('capacity_counters')
        .innerJoin('offers', 'offers.id', 'capacity_counters.offer_id')
        .select([
          'capacity_counters.offer_id',
          'capacity_counters.period_start',
          'capacity_counters.reserved',
          'offers.capacity_period',
        ])
        .where('capacity_counters.period_start', '>', new Date(from.getTime() - LONGEST_PERIOD_MS))
        .where('capacity_counters.reserved', '>', 0n)
        .orderBy('capacity_counters.offer_id')
        .orderBy('capacity_counters.period_start')
        .execute();
      return rows
        .filter((row) => periodEnd(row.capacity_period as CapacityPeriod, row.period_start) > from)
        .map((row) => ({
          offerId: row.offer_id as OfferId,
          periodStart: row.period_start,
          reserved: row.reserved,
        }));
    },
  };
}

/** The field errors of a refusal; one naming its code when it names no field. */
function fieldErrorsOf(error: DomainError): FieldError[] {
  if (error.details.errors && error.details.errors.length > 0) return [...error.details.errors];
  return [{ path: '', rule: error.code, message: error.message }];
}
