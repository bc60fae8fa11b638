import { assert } from '../../../kernel/assert.js';
import { ExposureWindow } from './exposure.js';
import {
  type CapacityPeriod,
  DAY_MS,
  HOUR_MS,
  PERIOD_CODES,
  PERIOD_NAMES,
  periodStartDay,
} from './periods.js';
import {
  type CandidateSet,
  type CriterionScore,
  clampSignal,
  NEUTRAL_SIGNALS,
  type PartnerSignals,
  type RankingStrategy,
  weightedSumStrategy,
} from './ranking.js';
import { ReservedUnits } from './reserved-units.js';
import {
  DEFAULT_SETTINGS,
  EXPOSURE_WINDOW_DAYS_MAX,
  MAX_PER_PARTNER_MAX,
  type MatchingSettings,
} from './settings.js';

/*
 * The matching index: every offer in memory, laid out in columns so that a query over tens of
 * thousands of offers is a few tight loops over typed arrays, with no object per offer and no
 * allocation per candidate.
 *
 * - Offers are grouped in one table per capability (a query names one capability, and each
 *   capability has its own attributes). A table holds one row per offer; each field is a typed
 *   array indexed by row, and freed rows are reused.
 * - Attributes are columns of their table: numbers in a Float64Array (NaN when absent), every
 *   other JSON value dictionary-encoded (its canonical JSON → an integer code, -1 when absent).
 * - Each table keeps one bucket per region: the rows of the offers serving it. A query reads one
 *   bucket. Region lists are interned, so a row stores one integer for all of its regions.
 * - Partners, certification programs, currencies and regions are small dictionaries; partner
 *   facts (standing, activation, signals) are typed arrays indexed by partner number.
 * - Whether a partner may be matched for a capability (active, within its rules, holding the
 *   required certifications) and whether it is a new entrant is kept per table and partner
 *   in one byte, worked out again only for partners that changed and when the earliest time
 *   at which any partner's answer changes by itself (a certification or grace period ending)
 *   has passed: a query reads one byte per offer instead of evaluating partners.
 * - Each bucket also keeps its live rows (active offers of eligible partners), with a packed
 *   copy of their quantity limits and lead time, rebuilt only after a change that affects
 *   which rows are live: a query reads those in sequence and touches the table's columns only
 *   for rows that pass.
 * - Reserved capacity is sparse: most offers have none; a pool of linked entries holds the rest
 *   (reserved-units.ts), and each row keeps the capacity left in its fullest period, so only
 *   offers that may be short look up the period in question.
 *
 * The index is a cache of the database. It can be stale; the service therefore never trusts it
 * to allocate: the reservation in the database decides (see service.ts).
 */

export type OfferStatus = 'draft' | 'active' | 'paused' | 'non_compliant';
const STATUS_CODES: Readonly<Record<OfferStatus, number>> = {
  active: 1,
  draft: 2,
  paused: 3,
  non_compliant: 4,
};
const STATUS_NAMES = ['removed', 'active', 'draft', 'paused', 'non_compliant'] as const;
const ACTIVE = 1;

/** An offer as the index takes it in (the catalog's offer, reduced to what matching needs). */
export interface IndexedOffer {
  readonly id: string;
  readonly partnerId: string;
  readonly capability: string;
  readonly status: OfferStatus;
  readonly unitPriceMinor: bigint | number;
  readonly currency: string;
  readonly minQuantity: bigint | number;
  readonly maxQuantity: bigint | number;
  readonly leadTimeHours: number;
  readonly regions: readonly string[];
  readonly capacityPerPeriod: bigint | number;
  readonly capacityPeriod: CapacityPeriod;
  readonly attributes: Readonly<Record<string, unknown>>;
}

/** The fields of a catalog offer the index reads (the catalog's `Offer` has them all). */
export interface OfferFields {
  readonly id: string;
  readonly partnerId: string;
  readonly capabilityKey: string;
  readonly status: IndexedOffer['status'];
  readonly unitPrice: { readonly amountMinor: bigint; readonly currency: string };
  readonly minQuantity: bigint;
  readonly maxQuantity: bigint;
  readonly leadTimeHours: number;
  readonly regions: readonly string[];
  readonly capacityPerPeriod: bigint;
  readonly capacityPeriod: IndexedOffer['capacityPeriod'];
  readonly attributes: IndexedOffer['attributes'];
}

/** An offer as the index holds it. */
export function indexedOffer(offer: OfferFields): IndexedOffer {
  return {
    id: offer.id,
    partnerId: offer.partnerId,
    capability: offer.capabilityKey,
    status: offer.status,
    unitPriceMinor: offer.unitPrice.amountMinor,
    currency: offer.unitPrice.currency,
    minQuantity: offer.minQuantity,
    maxQuantity: offer.maxQuantity,
    leadTimeHours: offer.leadTimeHours,
    regions: offer.regions,
    capacityPerPeriod: offer.capacityPerPeriod,
    capacityPeriod: offer.capacityPeriod,
    attributes: offer.attributes,
  };
}

/** Where a partner stands, as far as being given work goes. */
export interface PartnerStanding {
  readonly partnerId: string;
  /** Active or on probation: part of the ecosystem. */
  readonly engaged: boolean;
  /**
   * Until when the partner's acceptance of its rules of engagement lets it take work:
   * `Infinity` when it accepted the current rules (or its type has none), the end of the grace
   * period while one runs, `-Infinity` when its acceptance lapsed or is still pending.
   */
  readonly rulesValidUntilMs: number;
  /** When it first became active; new entrants are boosted for a while after it. */
  readonly activatedAtMs: number | null;
}

export type Scalar = string | number | boolean;

/** A condition on one attribute; every condition given must hold. */
export interface AttributeConstraint {
  readonly eq?: Scalar | undefined;
  readonly in?: readonly Scalar[] | undefined;
  readonly min?: number | undefined;
  readonly max?: number | undefined;
}

export interface MatchQuery {
  readonly capability: string;
  readonly region: string;
  /** Units wanted: a positive integer. */
  readonly quantity: number;
  /** When the work must be done. */
  readonly neededByMs: number;
  /** The customer asking, whose affinity with each partner counts; null when anonymous. */
  readonly customerId?: string | null | undefined;
  readonly constraints?: Readonly<Record<string, AttributeConstraint>> | undefined;
  /** How many results to return, at most `QUERY_LIMIT_MAX`. */
  readonly limit: number;
}

/** Most results one query returns. */
export const QUERY_LIMIT_MAX = 100;

/** Something that moved a result up or down besides its criteria. */
export type Adjustment =
  | {
      readonly kind: 'new_entrant_boost';
      /** Added to the score. */
      readonly scoreDelta: number;
      /** When the partner stops counting as new. */
      readonly untilMs: number;
    }
  | {
      readonly kind: 'exposure_cap';
      readonly scoreDelta: 0;
      /** The partner's share of the window's allocations, which reached the cap. */
      readonly share: number;
      readonly cap: number;
      readonly partnerAllocations: number;
      readonly windowAllocations: number;
      readonly windowDays: number;
    }
  | {
      readonly kind: 'diversity';
      readonly scoreDelta: 0;
      /** The partner already had this many better offers among the results. */
      readonly maxPerPartner: number;
    };

export interface ScoreBreakdown {
  /** The ranking strategy that scored the criteria. */
  readonly strategy: string;
  readonly criteria: readonly CriterionScore[];
  readonly adjustments: readonly Adjustment[];
}

/** One ranked offer, with why it ranked where it did. */
export interface MatchResult {
  /** 1 for the best. */
  readonly rank: number;
  readonly offerId: string;
  readonly partnerId: string;
  readonly unitPriceMinor: number;
  readonly currency: string;
  readonly leadTimeHours: number;
  /** When the work must start to be done by the time needed: where capacity is counted. */
  readonly startMs: number;
  /** Units still free in the capacity period that contains `startMs`. */
  readonly freeCapacity: number;
  /** The criteria's contributions plus the boosts. */
  readonly score: number;
  readonly breakdown: ScoreBreakdown;
}

export interface MatchAnswer {
  /** Offers that passed every filter. */
  readonly candidates: number;
  readonly results: MatchResult[];
}

/** Why an offer is not a candidate; one per filter that failed. */
export type ExclusionFilter =
  | 'capability_mismatch'
  | 'region_not_served'
  | 'offer_not_active'
  | 'partner_not_active'
  | 'rules_not_accepted'
  | 'certification_missing'
  | 'quantity_out_of_range'
  | 'lead_time_too_long'
  | 'capacity_exhausted'
  | 'attribute_mismatch';

export interface Exclusion {
  readonly filter: ExclusionFilter;
  readonly detail: string;
}

/** An offer as `explain` reports it: ranked with its breakdown, or excluded with the reasons. */
export interface ExplainRow {
  readonly offerId: string;
  readonly partnerId: string;
  /** Its place among all candidates, or null when excluded. */
  readonly rank: number | null;
  readonly result: MatchResult | null;
  readonly excluded: readonly Exclusion[];
}

export interface ExplainAnswer {
  readonly candidates: number;
  readonly rows: ExplainRow[];
}

/** A summary of one indexed offer, for the service (never used on the query path). */
export interface OfferSummary {
  readonly offerId: string;
  readonly partnerId: string;
  readonly capability: string;
  readonly status: OfferStatus;
  readonly capacityPerPeriod: number;
  readonly capacityPeriod: CapacityPeriod;
}

export interface OfferIndexOptions {
  readonly strategy?: RankingStrategy;
  readonly signals?: PartnerSignals;
}

const INITIAL_ROWS = 64;
const INITIAL_PARTNERS = 64;
const NO_CODE = -1;
/** Past capacity periods kept per offer, in days: queries only look at periods from now on. */
const RESERVATION_HISTORY_DAYS = 62;
/** Fields per live row of a bucket's `livePacked` array. */
const PACKED_FIELDS = 3;
/** Bits of a partner's standing byte in a table. */
const ELIGIBLE = 1;
const BOOSTED = 2;
/** Partners whose facts changed, kept before the oldest is dropped and every table recounts. */
const CHANGED_PARTNERS_MAX = 100_000;

/**
 * A region's offers within one capability: the rows of a table, in no particular order. `live`
 * holds those that can be matched at all (the offer is active and its partner eligible), the
 * only rows a query reads; it is rebuilt, on the next query, after any change to which rows
 * qualify (a row's status or buckets, or a partner's eligibility for the table).
 */
interface Bucket {
  rows: Int32Array;
  length: number;
  live: Int32Array;
  /**
   * For each live row, in the same order, its minimum quantity, maximum quantity and lead time
   * as 32-bit floats rounded outwards: the first checks of a query read memory in sequence
   * instead of jumping between the table's columns.
   */
  livePacked: Float32Array;
  liveLength: number;
  /** The table's `liveEpoch` that `live` was built for; -1 when a row of the bucket changed. */
  liveEpoch: number;
}

/** One attribute of one capability, as columns of its table. */
interface AttributeColumn {
  num: Float64Array | null;
  code: Int32Array | null;
  readonly dictionary: Map<string, number>;
}

/** The offers of one capability. */
class CapabilityTable {
  capacity = INITIAL_ROWS;
  rowCount = 0;
  readonly freeRows: number[] = [];
  ids: string[] = [];
  partner = new Int32Array(INITIAL_ROWS);
  status = new Uint8Array(INITIAL_ROWS);
  price = new Float64Array(INITIAL_ROWS);
  currency = new Uint16Array(INITIAL_ROWS);
  minQuantity = new Float64Array(INITIAL_ROWS);
  maxQuantity = new Float64Array(INITIAL_ROWS);
  leadHours = new Float64Array(INITIAL_ROWS);
  capacityPerPeriod = new Float64Array(INITIAL_ROWS);
  /** The capacity left in the offer's fullest stored period: at least this much is free in any. */
  minFree = new Float64Array(INITIAL_ROWS);
  period = new Uint8Array(INITIAL_ROWS);
  regionSet = new Int32Array(INITIAL_ROWS);
  readonly reserved = new ReservedUnits(INITIAL_ROWS);
  readonly attributes = new Map<string, AttributeColumn>();
  readonly buckets = new Map<number, Bucket>();
  /** Certification programs (by number) a partner must hold valid to offer this capability. */
  requiredPrograms: number[] = [];
  /** Each partner's standing for this capability: `ELIGIBLE` and `BOOSTED` bits. */
  standing = new Uint8Array(0);
  /** Whether `standing` must be worked out again for every partner (settings or programs changed). */
  standingStale = true;
  /** The time `standing` holds for, and the earliest time a partner's standing changes by itself. */
  standingAtMs = Number.NEGATIVE_INFINITY;
  standingUntilMs = Number.NEGATIVE_INFINITY;
  /** How far into the index's log of changed partners this table has caught up. */
  changedCursor = 0;
  /** Counts changes of partners' eligibility for the table: every bucket's `live` rows go stale. */
  liveEpoch = 0;
  /**
   * Whether every minimum, maximum and lead time of the table is exact as a 32-bit float (whole
   * numbers below 2^24 are), so that the packed copies decide alone.
   */
  packedExact = true;

  constructor(
    readonly key: string,
    readonly number: number,
  ) {}

  allocateRow(): number {
    const reused = this.freeRows.pop();
    if (reused !== undefined) return reused;
    if (this.rowCount === this.capacity) this.grow(this.capacity * 2);
    return this.rowCount++;
  }

  /**
   * Drops the slack that growth by doubling leaves (up to half of every column) once a bulk
   * load is over; from then on rows arrive one at a time and grow the columns again as needed.
   */
  compact(): void {
    const rows = Math.max(INITIAL_ROWS, this.rowCount + slack(this.rowCount));
    if (rows < this.capacity) this.grow(rows);
    for (const bucket of this.buckets.values()) {
      const length = Math.max(4, bucket.length + slack(bucket.length));
      if (length < bucket.rows.length) bucket.rows = resize(bucket.rows, length);
    }
    this.reserved.compact();
  }

  grow(capacity: number): void {
    this.partner = resize(this.partner, capacity);
    this.status = resize(this.status, capacity);
    this.price = resize(this.price, capacity);
    this.currency = resize(this.currency, capacity);
    this.minQuantity = resize(this.minQuantity, capacity);
    this.maxQuantity = resize(this.maxQuantity, capacity);
    this.leadHours = resize(this.leadHours, capacity);
    this.capacityPerPeriod = resize(this.capacityPerPeriod, capacity);
    this.minFree = resize(this.minFree, capacity);
    this.period = resize(this.period, capacity);
    this.regionSet = resize(this.regionSet, capacity);
    this.reserved.growRows(capacity);
    for (const column of this.attributes.values()) {
      if (column.num) column.num = resize(column.num, capacity, Number.NaN);
      if (column.code) column.code = resize(column.code, capacity, NO_CODE);
    }
    this.capacity = capacity;
  }

  column(name: string): AttributeColumn {
    let column = this.attributes.get(name);
    if (!column) {
      column = { num: null, code: null, dictionary: new Map() };
      this.attributes.set(name, column);
    }
    return column;
  }
}

/** Certifications of one program, per partner. */
interface Program {
  /** Each partner's granted certifications, from which the runs are derived. */
  readonly grants: Map<number, { id: string; fromMs: number; untilMs: number }[]>;
  /**
   * Each partner's runs of validity, in time order, as [from, until, from, until, ...]: a run
   * is a stretch of overlapping or back-to-back certifications, such as one and its renewal.
   */
  readonly runs: Map<number, number[]>;
}

/** A constraint compiled against a table's columns. */
interface CompiledConstraint {
  readonly attribute: string;
  readonly num: Float64Array | null;
  readonly code: Int32Array | null;
  /** Numbers the value may equal (`eq` or `in`), or null when there is no such condition. */
  readonly numbers: Float64Array | null;
  /** Codes the value may have (`eq` or `in` with other values), or null. */
  readonly codes: Int32Array | null;
  readonly min: number;
  readonly max: number;
  /** Whether `eq`/`in` was given: then the value must be one of `numbers` or `codes`. */
  readonly listed: boolean;
}

/**
 * The in-memory index of offers the matcher answers from. Feed it offers, partner standing,
 * certifications, capabilities' required certifications, settings, reserved capacity and
 * allocations; ask it `query` (the top results) and `explain` (every offer with its rank or
 * the filters that excluded it). Methods that take a time take it in epoch milliseconds and
 * never read a clock.
 */
export class OfferIndex {
  readonly #strategy: RankingStrategy;
  readonly #signals: PartnerSignals;

  readonly #tables = new Map<string, CapabilityTable>();
  readonly #tableList: CapabilityTable[] = [];
  /**
   * Offer id → slot; a slot names the offer's table and row. One map with small-integer values
   * (which V8 stores without allocating), and two typed arrays, cost less than two maps.
   */
  readonly #slotOf = new Map<string, number>();
  #slotTable = new Int32Array(INITIAL_ROWS);
  #slotRow = new Int32Array(INITIAL_ROWS);
  #slotCount = 0;
  readonly #freeSlots: number[] = [];

  readonly #regions = new Map<string, number>();
  readonly #regionSets: number[][] = [];
  readonly #regionSetOf = new Map<string, number>();
  readonly #currencies: string[] = [];
  readonly #currencyOf = new Map<string, number>();

  #partnerCapacity = INITIAL_PARTNERS;
  readonly #partnerOf = new Map<string, number>();
  readonly #partnerIds: string[] = [];
  #engaged = new Uint8Array(INITIAL_PARTNERS);
  #rulesUntil = new Float64Array(INITIAL_PARTNERS);
  #activatedAt = new Float64Array(INITIAL_PARTNERS).fill(Number.NaN);
  /** Signals that do not depend on the query, read from the port when a partner is first met. */
  #quality = new Float64Array(INITIAL_PARTNERS);
  #reliability = new Float64Array(INITIAL_PARTNERS);
  /** The asking customer's affinity per partner: zero but for the partners set for one query. */
  #affinity = new Float64Array(INITIAL_PARTNERS);

  readonly #programOf = new Map<string, number>();
  readonly #programs: Program[] = [];
  readonly #programKeys: string[] = [];
  /** Capability → required program keys, kept for tables created later. */
  readonly #requiredCertifications = new Map<string, readonly string[]>();

  readonly #settings = new Map<string, MatchingSettings>();
  readonly #exposure = new Map<string, ExposureWindow>();
  readonly #allocationIds = new Set<string>();
  /** Allocations in the exposure window of the query being answered. */
  #windowTotal = 0;
  /**
   * Partners whose facts changed, in order; `#changedBase` is the position of the first one
   * kept. Each table catches up from its own cursor before it answers.
   */
  readonly #changedPartners: number[] = [];
  #changedBase = 0;
  /** The exposure window when the cap applies to the query being answered, else null. */
  #qCapWindow: ExposureWindow | null = null;
  #qCapShare = 1;
  /** Partners whose affinity the query being answered set, to be zeroed after it. */
  readonly #affinityTouched: number[] = [];

  // Per-query scratch, per partner, for the partners of the candidates.
  #pCapped = new Uint8Array(INITIAL_PARTNERS);
  #pShare = new Float64Array(INITIAL_PARTNERS);
  #pCount = new Float64Array(INITIAL_PARTNERS);
  #pTopCount = new Int32Array(INITIAL_PARTNERS);
  #pTop = new Int32Array(INITIAL_PARTNERS * MAX_PER_PARTNER_MAX);
  #seenPartners = new Int32Array(INITIAL_PARTNERS);

  // Per-query scratch, per candidate.
  #candidateCapacity = 0;
  #cRow = new Int32Array(0);
  #cPartner = new Int32Array(0);
  #cPrice = new Float64Array(0);
  #cCurrency = new Uint16Array(0);
  #cLead = new Float64Array(0);
  #cScore = new Float64Array(0);
  #cFinal = new Float64Array(0);
  #cPrimary = new Uint8Array(0);
  #cList = new Int32Array(0);
  #cHeap = new Int32Array(0);

  constructor(options: OfferIndexOptions = {}) {
    this.#strategy = options.strategy ?? weightedSumStrategy;
    this.#signals = options.signals ?? NEUTRAL_SIGNALS;
  }

  /** Offers in the index, of any status. */
  get size(): number {
    return this.#slotOf.size;
  }

  // ---------------------------------------------------------------------------------------------
  // Feeding the index. Every change is idempotent: applying one twice leaves the index as once.

  /** Adds an offer, or replaces what the index knows of it. */
  upsertOffer(offer: IndexedOffer): void {
    const table = this.#table(offer.capability);
    let slot = this.#slotOf.get(offer.id);
    if (slot !== undefined && this.#slotTable[slot] !== table.number) {
      this.removeOffer(offer.id);
      slot = undefined;
    }
    let row: number;
    if (slot !== undefined) {
      row = this.#slotRow[slot]!;
      const regionSet = this.#regionSetNumber(offer.regions);
      if (regionSet !== table.regionSet[row]) {
        this.#unbucket(table, row);
        table.regionSet[row] = regionSet;
        this.#bucket(table, row);
      }
    } else {
      row = table.allocateRow();
      table.regionSet[row] = this.#regionSetNumber(offer.regions);
      this.#bucket(table, row);
      slot = this.#allocateSlot();
      this.#slotTable[slot] = table.number;
      this.#slotRow[slot] = row;
      const id = flatCopy(offer.id);
      this.#slotOf.set(id, slot);
      table.ids[row] = id;
    }
    const partnerNumber = this.#partnerNumber(offer.partnerId);
    if (partnerNumber !== table.partner[row]) this.#staleBuckets(table, row);
    table.partner[row] = partnerNumber;
    const status = STATUS_CODES[offer.status];
    if (status !== table.status[row]) this.#staleBuckets(table, row);
    table.status[row] = status;
    table.price[row] = Number(offer.unitPriceMinor);
    table.currency[row] = this.#currencyNumber(offer.currency);
    const minQuantity = Number(offer.minQuantity);
    const maxQuantity = Number(offer.maxQuantity);
    const leadHours = offer.leadTimeHours;
    if (
      minQuantity !== table.minQuantity[row] ||
      maxQuantity !== table.maxQuantity[row] ||
      leadHours !== table.leadHours[row]
    ) {
      this.#staleBuckets(table, row);
      if (
        Math.fround(minQuantity) !== minQuantity ||
        Math.fround(maxQuantity) !== maxQuantity ||
        Math.fround(leadHours) !== leadHours
      ) {
        table.packedExact = false;
      }
    }
    table.minQuantity[row] = minQuantity;
    table.maxQuantity[row] = maxQuantity;
    table.leadHours[row] = leadHours;
    table.capacityPerPeriod[row] = Number(offer.capacityPerPeriod);
    const period = PERIOD_CODES[offer.capacityPeriod];
    if (period !== table.period[row]) table.reserved.clear(row);
    table.period[row] = period;
    table.minFree[row] = table.capacityPerPeriod[row]! - table.reserved.max(row);
    for (const [name, column] of table.attributes) {
      if (!(name in offer.attributes)) {
        if (column.num) column.num[row] = Number.NaN;
        if (column.code) column.code[row] = NO_CODE;
      }
    }
    for (const [name, value] of Object.entries(offer.attributes)) {
      const column = table.column(name);
      if (typeof value === 'number') {
        if (!column.num) column.num = new Float64Array(table.capacity).fill(Number.NaN);
        column.num[row] = value;
        if (column.code) column.code[row] = NO_CODE;
      } else {
        if (!column.code) column.code = new Int32Array(table.capacity).fill(NO_CODE);
        column.code[row] = dictionaryCode(column.dictionary, canonicalJson(value), true);
        if (column.num) column.num[row] = Number.NaN;
      }
    }
  }

  /** Forgets an offer; unknown ids are ignored. */
  removeOffer(offerId: string): void {
    const slot = this.#slotOf.get(offerId);
    if (slot === undefined) return;
    const table = this.#tableList[this.#slotTable[slot]!]!;
    const row = this.#slotRow[slot]!;
    this.#unbucket(table, row);
    this.#clearReservations(table, row);
    table.status[row] = 0;
    table.ids[row] = '';
    table.freeRows.push(row);
    this.#slotOf.delete(offerId);
    this.#freeSlots.push(slot);
  }

  /** What the index holds of an offer, or null. */
  offer(offerId: string): OfferSummary | null {
    const located = this.#locate(offerId);
    if (!located) return null;
    const { table, row } = located;
    return {
      offerId,
      partnerId: this.#partnerIds[table.partner[row]!]!,
      capability: table.key,
      status: STATUS_NAMES[table.status[row]!] as OfferStatus,
      capacityPerPeriod: table.capacityPerPeriod[row]!,
      capacityPeriod: PERIOD_NAMES[table.period[row]!]!,
    };
  }

  /** Drops the slack of growth after a bulk load: see `CapabilityTable.compact`. */
  compact(): void {
    for (const table of this.#tables.values()) table.compact();
  }

  /**
   * Forgets reservations of periods that started more than `RESERVATION_HISTORY_DAYS` before
   * `nowMs`: queries only look forward, and the longest period (a month) is well inside that.
   */
  forgetReservationsBefore(nowMs: number): void {
    const day = Math.floor(nowMs / DAY_MS) - RESERVATION_HISTORY_DAYS;
    for (const table of this.#tables.values()) {
      table.reserved.forgetBefore(day, (row) => {
        table.minFree[row] = table.capacityPerPeriod[row]! - table.reserved.max(row);
      });
    }
  }

  /** Sets the units held or confirmed in one capacity period of an offer (0 frees them all). */
  setReserved(offerId: string, periodStart: number, reserved: number): void {
    const located = this.#locate(offerId);
    if (!located) return;
    const { table, row } = located;
    table.reserved.set(row, Math.floor(periodStart / DAY_MS), reserved);
    table.minFree[row] = table.capacityPerPeriod[row]! - table.reserved.max(row);
  }

  /**
   * Reads partners' quality and reliability from the signals port again: every partner's, or
   * those named. Call it when the facts behind the signals change.
   */
  refreshSignals(partnerIds?: readonly string[]): void {
    if (partnerIds === undefined) {
      for (let p = 0; p < this.#partnerIds.length; p++) this.#readSignals(p);
      return;
    }
    for (const id of partnerIds) {
      const p = this.#partnerOf.get(id);
      if (p !== undefined) this.#readSignals(p);
    }
  }

  #readSignals(p: number): void {
    const id = this.#partnerIds[p]!;
    this.#quality[p] = clampSignal(this.#signals.quality(id), 0.5);
    this.#reliability[p] = clampSignal(this.#signals.reliability(id), 0.5);
  }

  /** Sets a partner's standing; a partner the index never heard of cannot take work. */
  setPartner(standing: PartnerStanding): void {
    const p = this.#partnerNumber(standing.partnerId);
    this.#engaged[p] = standing.engaged ? 1 : 0;
    this.#rulesUntil[p] = standing.rulesValidUntilMs;
    this.#activatedAt[p] = standing.activatedAtMs ?? Number.NaN;
    this.#changed(p);
  }

  /** Records a granted certification; granting the same one again changes nothing. */
  grantCertification(grant: {
    id: string;
    partnerId: string;
    programKey: string;
    validFromMs: number;
    validUntilMs: number;
  }): void {
    const p = this.#partnerNumber(grant.partnerId);
    const program = this.#program(grant.programKey);
    const grants = program.grants.get(p) ?? [];
    const kept = grants.filter((existing) => existing.id !== grant.id);
    kept.push({ id: grant.id, fromMs: grant.validFromMs, untilMs: grant.validUntilMs });
    program.grants.set(p, kept);
    this.#mergeGrants(program, p);
    this.#changed(p);
  }

  /** Forgets a certification that was revoked or expired; unknown ids are ignored. */
  withdrawCertification(id: string, partnerId: string, programKey: string): void {
    const p = this.#partnerOf.get(partnerId);
    const number = this.#programOf.get(programKey);
    if (p === undefined || number === undefined) return;
    const program = this.#programs[number]!;
    const grants = (program.grants.get(p) ?? []).filter((grant) => grant.id !== id);
    if (grants.length > 0) program.grants.set(p, grants);
    else program.grants.delete(p);
    this.#mergeGrants(program, p);
    this.#changed(p);
  }

  /** Sets the certification programs a partner must hold valid to be matched for a capability. */
  setRequiredCertifications(capability: string, programKeys: readonly string[]): void {
    this.#requiredCertifications.set(capability, [...programKeys]);
    const table = this.#tables.get(capability);
    if (table) this.#requirePrograms(table, programKeys);
  }

  /** Sets a capability's ranking and fairness settings; null returns it to the defaults. */
  setSettings(capability: string, settings: MatchingSettings | null): void {
    if (settings) this.#settings.set(capability, settings);
    else this.#settings.delete(capability);
    // The new-entrant period may have changed: every partner's standing is worked out again.
    const table = this.#tables.get(capability);
    if (table) table.standingStale = true;
  }

  settings(capability: string): MatchingSettings {
    return this.#settings.get(capability) ?? DEFAULT_SETTINGS;
  }

  /** Counts an allocation towards the partner's exposure; counting the same id again changes nothing. */
  recordAllocation(allocation: {
    id: string;
    capability: string;
    region: string;
    partnerId: string;
    atMs: number;
  }): void {
    if (this.#allocationIds.has(allocation.id)) return;
    this.#allocationIds.add(allocation.id);
    const key = exposureKey(allocation.capability, allocation.region);
    let window = this.#exposure.get(key);
    if (!window) {
      window = new ExposureWindow();
      this.#exposure.set(key, window);
    }
    window.add(allocation.id, allocation.atMs, this.#partnerNumber(allocation.partnerId));
    for (const id of window.prune(allocation.atMs - EXPOSURE_WINDOW_DAYS_MAX * DAY_MS)) {
      this.#allocationIds.delete(id);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Asking the index.

  /**
   * The best `q.limit` offers for a piece of demand at `nowMs`, ranked, each with its score
   * breakdown. Filters: the offer is active; its partner is engaged, within its rules of
   * engagement and holds every certification the capability requires, valid now; the offer
   * serves the region; the quantity is within its minimum and maximum; its lead time lets the
   * work be done by `neededBy`; the constraints on attributes hold; and the capacity period in
   * which the work must start (`neededBy − lead time`) has the quantity free.
   */
  query(q: MatchQuery, nowMs: number): MatchAnswer {
    assert(
      Number.isInteger(q.limit) && q.limit >= 1 && q.limit <= QUERY_LIMIT_MAX,
      'query limit out of range',
    );
    assert(Number.isFinite(q.quantity) && q.quantity > 0, 'query quantity must be positive');
    const table = this.#tables.get(q.capability);
    const regionNumber = this.#regions.get(q.region);
    const bucket = table && regionNumber !== undefined ? table.buckets.get(regionNumber) : undefined;
    if (!table || !bucket || bucket.length === 0) return { candidates: 0, results: [] };

    const settings = this.settings(q.capability);
    const constraints = this.#compileConstraints(table, q.constraints);
    this.#ensureCandidates(bucket.length);
    this.#beginQuery(q, settings, nowMs);
    this.#refreshStanding(table, settings, nowMs);
    this.#liveRows(table, bucket);
    const count = this.#collect(table, bucket, constraints, q, nowMs);
    return { candidates: count, results: this.#rank(table, settings, count, q.limit, false, q.neededByMs) };
  }

  /**
   * The hot loop of `query`: the bucket's rows that pass every filter, written to the
   * candidate columns; returns how many. Everything it touches is a local typed array, and it
   * allocates nothing.
   */
  #collect(
    table: CapabilityTable,
    bucket: Bucket,
    constraints: readonly CompiledConstraint[],
    q: MatchQuery,
    nowMs: number,
  ): number {
    // The live rows: active offers of eligible partners. What is left to check depends on the query.
    const rows = bucket.live;
    const packed = bucket.livePacked;
    const exact = table.packedExact;
    const { partner, price, currency, minQuantity, maxQuantity, leadHours } = table;
    const { minFree, capacityPerPeriod, period } = table;
    const { heads, days, units, next } = table.reserved;
    const quantity = q.quantity;
    const neededByMs = q.neededByMs;
    const maxLeadHours = (neededByMs - nowMs) / HOUR_MS;
    const cRow = this.#cRow;
    const cPartner = this.#cPartner;
    const cPrice = this.#cPrice;
    const cCurrency = this.#cCurrency;
    const cLead = this.#cLead;
    const length = bucket.liveLength;
    const constrained = constraints.length > 0;
    let count = 0;
    for (let i = 0; i < length; i++) {
      const at = i * PACKED_FIELDS;
      if (quantity < packed[at]! || quantity > packed[at + 1]! || packed[at + 2]! > maxLeadHours) continue;
      const row = rows[i]!;
      const lead = leadHours[row]!;
      if (!exact && (quantity < minQuantity[row]! || quantity > maxQuantity[row]! || lead > maxLeadHours))
        continue;
      // Most offers have room for the quantity in every period; only the others look up the
      // period in which this work must start.
      if (minFree[row]! < quantity) {
        let entry = heads[row]!;
        if (entry === -1) continue;
        const day = periodStartDay(period[row]!, Math.floor((neededByMs - lead * HOUR_MS) / DAY_MS));
        let reserved = 0;
        for (; entry !== -1; entry = next[entry]!) {
          if (days[entry] === day) {
            reserved = units[entry]!;
            break;
          }
        }
        if (capacityPerPeriod[row]! - reserved < quantity) continue;
      }
      if (constrained && !matchesConstraints(constraints, row)) continue;
      cRow[count] = row;
      cPartner[count] = partner[row]!;
      cPrice[count] = price[row]!;
      cCurrency[count] = currency[row]!;
      cLead[count] = lead;
      count++;
    }
    return count;
  }

  /**
   * Every offer of the capability and region with its rank and breakdown, or with each filter
   * that excluded it, ranked exactly as `query` ranks. `only` narrows the rows reported (the
   * ranking still counts every offer): to one offer, even one of another capability or region,
   * which then reports why it does not belong; or to one partner's offers.
   */
  explain(
    q: Omit<MatchQuery, 'limit'>,
    nowMs: number,
    only: { offerId?: string | undefined; partnerId?: string | undefined } = {},
  ): ExplainAnswer {
    assert(Number.isFinite(q.quantity) && q.quantity > 0, 'query quantity must be positive');
    const table = this.#tables.get(q.capability);
    const regionNumber = this.#regions.get(q.region);
    const bucket = table && regionNumber !== undefined ? table.buckets.get(regionNumber) : undefined;
    const settings = this.settings(q.capability);
    const constraints = table ? this.#compileConstraints(table, q.constraints) : [];
    this.#ensureCandidates(bucket?.length ?? 0);
    this.#beginQuery(q, settings, nowMs);
    if (table) this.#refreshStanding(table, settings, nowMs);
    const exclusions = new Map<number, Exclusion[]>();
    let count = 0;
    if (table && bucket) {
      for (let i = 0; i < bucket.length; i++) {
        const row = bucket.rows[i]!;
        const excluded = this.#exclusions(table, row, constraints, q, nowMs);
        if (excluded.length > 0) {
          exclusions.set(row, excluded);
          continue;
        }
        this.#cRow[count] = row;
        this.#cPartner[count] = table.partner[row]!;
        this.#cPrice[count] = table.price[row]!;
        this.#cCurrency[count] = table.currency[row]!;
        this.#cLead[count] = table.leadHours[row]!;
        count++;
      }
    }
    const ranked = table ? this.#rank(table, settings, count, count, true, q.neededByMs) : [];

    const wanted = (offerId: string, partnerId: string) =>
      (only.offerId === undefined || only.offerId === offerId) &&
      (only.partnerId === undefined || only.partnerId === partnerId);
    const rows: ExplainRow[] = ranked
      .filter((result) => wanted(result.offerId, result.partnerId))
      .map((result) => ({
        offerId: result.offerId,
        partnerId: result.partnerId,
        rank: result.rank,
        result,
        excluded: [],
      }));
    if (table) {
      for (const [row, excluded] of exclusions) {
        const offerId = table.ids[row]!;
        const partnerId = this.#partnerIds[table.partner[row]!]!;
        if (wanted(offerId, partnerId)) rows.push({ offerId, partnerId, rank: null, result: null, excluded });
      }
    }
    // An offer outside the capability or region is not in the bucket; asked for by id, it says why.
    if (only.offerId !== undefined && !rows.some((row) => row.offerId === only.offerId)) {
      const outside = this.#outside(only.offerId, q, nowMs);
      if (outside && wanted(outside.offerId, outside.partnerId)) rows.push(outside);
    }
    return { candidates: count, rows };
  }

  /**
   * Prepares the per-query state: the customer's affinities (those of the last query zeroed
   * first), and the exposure window.
   */
  #beginQuery(
    q: Pick<MatchQuery, 'capability' | 'region' | 'customerId'>,
    settings: MatchingSettings,
    nowMs: number,
  ): void {
    for (const p of this.#affinityTouched) this.#affinity[p] = 0;
    this.#affinityTouched.length = 0;
    if (q.customerId) {
      for (const [partnerId, value] of this.#signals.affinities(q.customerId)) {
        const p = this.#partnerOf.get(partnerId);
        if (p === undefined) continue;
        this.#affinity[p] = clampSignal(value, 0);
        this.#affinityTouched.push(p);
      }
    }
    const window = this.#exposure.get(exposureKey(q.capability, q.region)) ?? null;
    const total = window ? window.total(nowMs - settings.exposureWindowDays * DAY_MS) : 0;
    this.#windowTotal = total;
    // The cap applies once the window holds enough allocations for a share to mean something.
    const capped = total > 0 && total >= settings.exposureMinAllocations && settings.exposureCapShare < 1;
    this.#qCapWindow = capped ? window : null;
    this.#qCapShare = settings.exposureCapShare;
  }

  // ---------------------------------------------------------------------------------------------
  // Ranking.

  /**
   * Scores the first `count` candidates and returns the best `limit` in order. The order is:
   * each partner's best `maxPerPartner` offers before any partner's further offers (diversity);
   * within each group, partners under the exposure cap before partners at or over it; then by
   * score, highest first; ties by offer id, so that the order never depends on the index's
   * layout. The selection keeps a heap of `limit` entries rather than sorting every candidate.
   */
  #rank(
    table: CapabilityTable,
    settings: MatchingSettings,
    count: number,
    limit: number,
    sortAll: boolean,
    neededByMs: number,
  ): MatchResult[] {
    if (count === 0) return [];
    const cRow = this.#cRow;
    const cPartner = this.#cPartner;
    const pCapped = this.#pCapped;
    const ids = table.ids;
    const candidates: CandidateSet = {
      count,
      partner: cPartner,
      priceMinor: this.#cPrice,
      currency: this.#cCurrency,
      currencyCount: this.#currencies.length,
      leadTimeHours: this.#cLead,
      quality: this.#quality,
      reliability: this.#reliability,
      affinity: this.#affinity,
    };
    const cScore = this.#cScore;
    const scoring = this.#strategy.score(candidates, settings.weights, cScore);
    let final = cScore;
    const boost = settings.newEntrantBoost;
    if (boost !== 0) {
      final = this.#cFinal;
      const standing = table.standing;
      for (let i = 0; i < count; i++) {
        final[i] = (standing[cPartner[i]!]! & BOOSTED) !== 0 ? cScore[i]! + boost : cScore[i]!;
      }
    }

    const better = (a: number, b: number): boolean => {
      const cappedA = pCapped[cPartner[a]!]!;
      const cappedB = pCapped[cPartner[b]!]!;
      if (cappedA !== cappedB) return cappedA < cappedB;
      const scoreA = final[a]!;
      const scoreB = final[b]!;
      if (scoreA !== scoreB) return scoreA > scoreB;
      return ids[cRow[a]!]! < ids[cRow[b]!]!;
    };

    // Diversity: each partner's best `maxPerPartner` candidates, kept in a small sorted list.
    const perPartner = Math.min(settings.maxPerPartner, MAX_PER_PARTNER_MAX);
    const pTopCount = this.#pTopCount;
    const pTop = this.#pTop;
    const seen = this.#seenPartners;
    let seenCount = 0;
    for (let i = 0; i < count; i++) {
      const p = cPartner[i]!;
      const base = p * MAX_PER_PARTNER_MAX;
      let n = pTopCount[p]!;
      if (n < 0) {
        n = 0;
        seen[seenCount++] = p;
        this.#capPartner(p);
      }
      if (perPartner === 1) {
        // The common case, kept tight: one best offer per partner, and a partner's offers
        // share its exposure standing, so only score and id decide.
        if (n === 0) {
          pTopCount[p] = 1;
          pTop[base] = i;
        } else {
          const best = pTop[base]!;
          const scoreI = final[i]!;
          const scoreBest = final[best]!;
          if (scoreI > scoreBest || (scoreI === scoreBest && ids[cRow[i]!]! < ids[cRow[best]!]!))
            pTop[base] = i;
        }
        continue;
      }
      let at: number;
      if (n < perPartner) {
        at = n;
        pTopCount[p] = n + 1;
      } else if (better(i, pTop[base + perPartner - 1]!)) {
        at = perPartner - 1;
      } else {
        continue;
      }
      while (at > 0 && better(i, pTop[base + at - 1]!)) {
        pTop[base + at] = pTop[base + at - 1]!;
        at--;
      }
      pTop[base + at] = i;
    }
    const cPrimary = this.#cPrimary;
    cPrimary.fill(0, 0, count);
    const list = this.#cList;
    let primaryCount = 0;
    for (let k = 0; k < seenCount; k++) {
      const p = seen[k]!;
      const n = pTopCount[p]!;
      for (let t = 0; t < n; t++) {
        const i = pTop[p * MAX_PER_PARTNER_MAX + t]!;
        cPrimary[i] = 1;
        list[primaryCount++] = i;
      }
      pTopCount[p] = -1;
    }

    let order: number[];
    if (!sortAll && primaryCount >= limit) {
      order = topK(list, primaryCount, limit, better, this.#cHeap);
    } else {
      order = sortBy(list.subarray(0, primaryCount), better);
      let rest = 0;
      for (let i = 0; i < count; i++) if (cPrimary[i] === 0) list[rest++] = i;
      const others = sortAll
        ? sortBy(list.subarray(0, rest), better)
        : topK(list, rest, limit - primaryCount, better, this.#cHeap);
      for (const i of others) order.push(i);
    }
    return order
      .slice(0, limit)
      .map((i, position) =>
        this.#result(
          table,
          settings,
          scoring.breakdown(i),
          i,
          final[i]!,
          position + 1,
          cPrimary[i] === 0,
          neededByMs,
        ),
      );
  }

  #result(
    table: CapabilityTable,
    settings: MatchingSettings,
    criteria: CriterionScore[],
    i: number,
    score: number,
    rank: number,
    demoted: boolean,
    neededByMs: number,
  ): MatchResult {
    const row = this.#cRow[i]!;
    const p = table.partner[row]!;
    const startMs = neededByMs - table.leadHours[row]! * HOUR_MS;
    const adjustments: Adjustment[] = [];
    if ((table.standing[p]! & BOOSTED) !== 0 && settings.newEntrantBoost > 0) {
      adjustments.push({
        kind: 'new_entrant_boost',
        scoreDelta: settings.newEntrantBoost,
        untilMs: this.#activatedAt[p]! + settings.newEntrantDays * DAY_MS,
      });
    }
    if (this.#pCapped[p] === 1) {
      adjustments.push({
        kind: 'exposure_cap',
        scoreDelta: 0,
        share: this.#pShare[p]!,
        cap: settings.exposureCapShare,
        partnerAllocations: this.#pCount[p]!,
        windowAllocations: this.#windowTotal,
        windowDays: settings.exposureWindowDays,
      });
    }
    if (demoted)
      adjustments.push({ kind: 'diversity', scoreDelta: 0, maxPerPartner: settings.maxPerPartner });
    return {
      rank,
      offerId: table.ids[row]!,
      partnerId: this.#partnerIds[p]!,
      unitPriceMinor: table.price[row]!,
      currency: this.#currencies[table.currency[row]!]!,
      leadTimeHours: table.leadHours[row]!,
      startMs,
      freeCapacity: table.capacityPerPeriod[row]! - this.#reserved(table, row, startMs),
      score,
      breakdown: { strategy: this.#strategy.name, criteria, adjustments },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Filters, one partner at a time (cached per query) and one offer at a time.

  /** Whether a partner of the candidates is at or over the exposure cap: once per partner and query. */
  #capPartner(p: number): void {
    this.#pCapped[p] = 0;
    const window = this.#qCapWindow;
    if (window === null) return;
    const partnerAllocations = window.count(p);
    const share = partnerAllocations / this.#windowTotal;
    if (share >= this.#qCapShare) {
      this.#pCapped[p] = 1;
      this.#pShare[p] = share;
      this.#pCount[p] = partnerAllocations;
    }
  }

  /**
   * Brings a table's standing bytes up to `nowMs`: every partner's when the table's settings or
   * required programs changed, when time passed the earliest moment a partner's standing
   * changes by itself, or when the table fell too far behind the log of changed partners;
   * otherwise only the partners changed since the table last answered.
   */
  #refreshStanding(table: CapabilityTable, settings: MatchingSettings, nowMs: number): void {
    const partners = this.#partnerIds.length;
    if (table.standing.length < this.#partnerCapacity) {
      table.standing = resize(table.standing, this.#partnerCapacity);
      table.standingStale = true;
    }
    const end = this.#changedBase + this.#changedPartners.length;
    if (
      table.standingStale ||
      nowMs >= table.standingUntilMs ||
      nowMs < table.standingAtMs ||
      table.changedCursor < this.#changedBase
    ) {
      let until = Number.POSITIVE_INFINITY;
      for (let p = 0; p < partners; p++)
        until = Math.min(until, this.#workOutStanding(table, settings, p, nowMs));
      table.standingStale = false;
      table.standingAtMs = nowMs;
      table.standingUntilMs = until;
    } else {
      for (let k = table.changedCursor - this.#changedBase; k < this.#changedPartners.length; k++) {
        const until = this.#workOutStanding(table, settings, this.#changedPartners[k]!, nowMs);
        if (until < table.standingUntilMs) table.standingUntilMs = until;
      }
    }
    table.changedCursor = end;
  }

  /**
   * Works out a partner's standing byte for a table at `nowMs`, and returns the earliest later
   * time at which it changes by itself (a grace period, a certification or a new-entrant period
   * ending, a renewal starting), or +∞.
   */
  #workOutStanding(table: CapabilityTable, settings: MatchingSettings, p: number, nowMs: number): number {
    let until = Number.POSITIVE_INFINITY;
    let bits = 0;
    const rulesUntil = this.#rulesUntil[p]!;
    if (this.#engaged[p] === 1 && rulesUntil > nowMs) {
      until = rulesUntil;
      let certified = true;
      for (const number of table.requiredPrograms) {
        const runs = this.#programs[number]!.runs.get(p);
        let holds = false;
        for (let k = 0; runs !== undefined && k < runs.length; k += 2) {
          const from = runs[k]!;
          const to = runs[k + 1]!;
          if (to <= nowMs) continue;
          if (from <= nowMs) {
            holds = true;
            until = Math.min(until, to);
          } else {
            until = Math.min(until, from);
          }
          break;
        }
        if (!holds) certified = false;
      }
      if (certified) bits |= ELIGIBLE;
    }
    const activatedAt = this.#activatedAt[p]!;
    const boostEnd = activatedAt + settings.newEntrantDays * DAY_MS;
    if (activatedAt <= nowMs && nowMs < boostEnd) {
      bits |= BOOSTED;
      until = Math.min(until, boostEnd);
    } else if (activatedAt > nowMs) {
      until = Math.min(until, activatedAt);
    }
    if ((bits & ELIGIBLE) !== (table.standing[p]! & ELIGIBLE)) table.liveEpoch++;
    table.standing[p] = bits;
    return until;
  }

  /** Whether the partner holds the program valid at `nowMs`. */
  #certifiedAt(program: Program, p: number, nowMs: number): boolean {
    const runs = program.runs.get(p);
    for (let k = 0; runs !== undefined && k < runs.length; k += 2) {
      if (runs[k]! <= nowMs && nowMs < runs[k + 1]!) return true;
    }
    return false;
  }

  /** Every filter an offer of the bucket fails; the slow, complete twin of the loop in `query`. */
  #exclusions(
    table: CapabilityTable,
    row: number,
    constraints: readonly CompiledConstraint[],
    q: Omit<MatchQuery, 'limit'>,
    nowMs: number,
  ): Exclusion[] {
    const excluded: Exclusion[] = [];
    const status = table.status[row]!;
    if (status !== ACTIVE) {
      excluded.push({ filter: 'offer_not_active', detail: `The offer is ${STATUS_NAMES[status]}.` });
    }
    const p = table.partner[row]!;
    if (this.#engaged[p] !== 1) {
      excluded.push({ filter: 'partner_not_active', detail: 'The partner is not active or on probation.' });
    } else if (!(this.#rulesUntil[p]! > nowMs)) {
      excluded.push({
        filter: 'rules_not_accepted',
        detail: 'The partner has not accepted the current rules of engagement.',
      });
    }
    const missing = table.requiredPrograms
      .filter((number) => !this.#certifiedAt(this.#programs[number]!, p, nowMs))
      .map((number) => this.#programKeys[number]!);
    if (missing.length > 0) {
      excluded.push({
        filter: 'certification_missing',
        detail: `The partner holds no valid certification of: ${missing.join(', ')}.`,
      });
    }
    const min = table.minQuantity[row]!;
    const max = table.maxQuantity[row]!;
    if (q.quantity < min || q.quantity > max) {
      excluded.push({ filter: 'quantity_out_of_range', detail: `The offer takes ${min} to ${max} units.` });
    }
    const lead = table.leadHours[row]!;
    const leadFits = lead <= (q.neededByMs - nowMs) / HOUR_MS;
    if (!leadFits) {
      excluded.push({
        filter: 'lead_time_too_long',
        detail: `The lead time of ${lead} hours does not meet the time needed.`,
      });
    }
    const startMs = q.neededByMs - lead * HOUR_MS;
    const free = table.capacityPerPeriod[row]! - this.#reserved(table, row, startMs);
    if (free < q.quantity) {
      excluded.push({
        filter: 'capacity_exhausted',
        detail: `${Math.max(free, 0)} units are free in the capacity period in which the work must start.`,
      });
    }
    const failed = constraints.filter((constraint) => !matchesConstraint(constraint, row));
    if (failed.length > 0) {
      excluded.push({
        filter: 'attribute_mismatch',
        detail: `The offer does not meet the constraints on: ${failed.map((c) => c.attribute).join(', ')}.`,
      });
    }
    return excluded;
  }

  /** Explains an offer asked for by id that the capability and region's bucket does not hold. */
  #outside(offerId: string, q: Omit<MatchQuery, 'limit'>, nowMs: number): ExplainRow | null {
    const located = this.#locate(offerId);
    if (!located) return null;
    const { table, row } = located;
    const partnerId = this.#partnerIds[table.partner[row]!]!;
    if (table.key !== q.capability) {
      return {
        offerId,
        partnerId,
        rank: null,
        result: null,
        excluded: [{ filter: 'capability_mismatch', detail: `The offer is for ${table.key}.` }],
      };
    }
    const constraints = this.#compileConstraints(table, q.constraints);
    const excluded = [
      { filter: 'region_not_served' as const, detail: `The offer does not serve ${q.region}.` },
      ...this.#exclusions(table, row, constraints, q, nowMs),
    ];
    return { offerId, partnerId, rank: null, result: null, excluded };
  }

  #reserved(table: CapabilityTable, row: number, startMs: number): number {
    if (table.reserved.heads[row] === -1) return 0;
    return table.reserved.get(row, periodStartDay(table.period[row]!, Math.floor(startMs / DAY_MS)));
  }

  /**
   * Compiles the constraints against the table's columns. An attribute no offer has compiles
   * to a constraint without columns, and a value no offer has to an empty list: both fail for
   * every offer, as they should.
   */
  #compileConstraints(
    table: CapabilityTable,
    constraints: Readonly<Record<string, AttributeConstraint>> | undefined,
  ): CompiledConstraint[] {
    const compiled: CompiledConstraint[] = [];
    for (const [attribute, constraint] of Object.entries(constraints ?? {})) {
      const column = table.attributes.get(attribute) ?? { num: null, code: null, dictionary: new Map() };
      const listed = [...(constraint.eq !== undefined ? [constraint.eq] : []), ...(constraint.in ?? [])];
      const hasList = constraint.eq !== undefined || constraint.in !== undefined;
      const numbers = listed.filter((value): value is number => typeof value === 'number');
      const codes = listed
        .filter((value) => typeof value !== 'number')
        .map((value) => dictionaryCode(column.dictionary, canonicalJson(value), false))
        .filter((code) => code !== NO_CODE);
      compiled.push({
        attribute,
        num: column.num,
        code: column.code,
        numbers: hasList ? Float64Array.from(numbers) : null,
        codes: hasList ? Int32Array.from(codes) : null,
        min: constraint.min ?? Number.NEGATIVE_INFINITY,
        max: constraint.max ?? Number.POSITIVE_INFINITY,
        listed: hasList,
      });
    }
    return compiled;
  }

  // ---------------------------------------------------------------------------------------------
  // Bookkeeping.

  #locate(offerId: string): { table: CapabilityTable; row: number } | null {
    const slot = this.#slotOf.get(offerId);
    if (slot === undefined) return null;
    return { table: this.#tableList[this.#slotTable[slot]!]!, row: this.#slotRow[slot]! };
  }

  #allocateSlot(): number {
    const reused = this.#freeSlots.pop();
    if (reused !== undefined) return reused;
    if (this.#slotCount === this.#slotTable.length) {
      this.#slotTable = resize(this.#slotTable, this.#slotCount * 2);
      this.#slotRow = resize(this.#slotRow, this.#slotCount * 2);
    }
    return this.#slotCount++;
  }

  #table(capability: string): CapabilityTable {
    let table = this.#tables.get(capability);
    if (!table) {
      table = new CapabilityTable(capability, this.#tableList.length);
      this.#requirePrograms(table, this.#requiredCertifications.get(capability) ?? []);
      this.#tables.set(capability, table);
      this.#tableList.push(table);
    }
    return table;
  }

  #requirePrograms(table: CapabilityTable, programKeys: readonly string[]): void {
    table.requiredPrograms = programKeys.map((key) => this.#programNumber(key));
    table.standingStale = true;
  }

  /** Notes that a partner's facts changed, so that every table works out its standing again. */
  #changed(p: number): void {
    this.#changedPartners.push(p);
    if (this.#changedPartners.length > CHANGED_PARTNERS_MAX) {
      // Tables that have not caught up by now recount every partner instead.
      this.#changedBase += this.#changedPartners.length;
      this.#changedPartners.length = 0;
    }
  }

  #bucket(table: CapabilityTable, row: number): void {
    for (const region of this.#regionSets[table.regionSet[row]!]!) {
      let bucket = table.buckets.get(region);
      if (!bucket) {
        bucket = {
          rows: new Int32Array(16),
          length: 0,
          live: new Int32Array(0),
          livePacked: new Float32Array(0),
          liveLength: 0,
          liveEpoch: -1,
        };
        table.buckets.set(region, bucket);
      }
      if (bucket.length === bucket.rows.length) bucket.rows = resize(bucket.rows, bucket.rows.length * 2);
      bucket.rows[bucket.length++] = row;
      bucket.liveEpoch = -1;
    }
  }

  /** Takes a row out of its buckets: a linear search, but only when an offer changes regions. */
  /** Marks the live rows of a row's buckets stale: its status changed. */
  #staleBuckets(table: CapabilityTable, row: number): void {
    for (const region of this.#regionSets[table.regionSet[row]!]!) {
      const bucket = table.buckets.get(region);
      if (bucket) bucket.liveEpoch = -1;
    }
  }

  /** Rebuilds a bucket's live rows when they went stale. */
  #liveRows(table: CapabilityTable, bucket: Bucket): void {
    if (bucket.liveEpoch === table.liveEpoch) return;
    const { rows } = bucket;
    const { status, partner, standing, minQuantity, maxQuantity, leadHours } = table;
    // Counted first, so that the copies take only the room the live rows need.
    let live = 0;
    for (let i = 0; i < bucket.length; i++) {
      const row = rows[i]!;
      if (status[row] === ACTIVE && (standing[partner[row]!]! & ELIGIBLE) !== 0) live++;
    }
    if (bucket.live.length < live) {
      const room = live + (live >> 3);
      bucket.live = new Int32Array(room);
      bucket.livePacked = new Float32Array(room * PACKED_FIELDS);
    }
    const { live: liveRows, livePacked } = bucket;
    let n = 0;
    for (let i = 0; i < bucket.length; i++) {
      const row = rows[i]!;
      if (status[row] !== ACTIVE || (standing[partner[row]!]! & ELIGIBLE) === 0) continue;
      const at = n * PACKED_FIELDS;
      livePacked[at] = float32Below(minQuantity[row]!);
      livePacked[at + 1] = float32Above(maxQuantity[row]!);
      livePacked[at + 2] = float32Below(leadHours[row]!);
      liveRows[n++] = row;
    }
    bucket.liveLength = n;
    bucket.liveEpoch = table.liveEpoch;
  }

  #unbucket(table: CapabilityTable, row: number): void {
    for (const region of this.#regionSets[table.regionSet[row]!]!) {
      const bucket = table.buckets.get(region);
      if (!bucket) continue;
      const at = bucket.rows.subarray(0, bucket.length).indexOf(row);
      if (at < 0) continue;
      bucket.rows[at] = bucket.rows[bucket.length - 1]!;
      bucket.length--;
      bucket.liveEpoch = -1;
    }
  }

  #clearReservations(table: CapabilityTable, row: number): void {
    table.reserved.clear(row);
    table.minFree[row] = table.capacityPerPeriod[row]!;
  }

  #regionSetNumber(regions: readonly string[]): number {
    const numbers = [...new Set(regions)].map((region) => {
      let number = this.#regions.get(region);
      if (number === undefined) {
        number = this.#regions.size;
        this.#regions.set(region, number);
      }
      return number;
    });
    numbers.sort((a, b) => a - b);
    const key = numbers.join(',');
    let set = this.#regionSetOf.get(key);
    if (set === undefined) {
      set = this.#regionSets.length;
      this.#regionSets.push(numbers);
      this.#regionSetOf.set(key, set);
    }
    return set;
  }

  #currencyNumber(currency: string): number {
    let number = this.#currencyOf.get(currency);
    if (number === undefined) {
      number = this.#currencies.length;
      this.#currencies.push(currency);
      this.#currencyOf.set(currency, number);
    }
    return number;
  }

  #partnerNumber(partnerId: string): number {
    let p = this.#partnerOf.get(partnerId);
    if (p === undefined) {
      p = this.#partnerIds.length;
      if (p === this.#partnerCapacity) this.#growPartners(this.#partnerCapacity * 2);
      this.#partnerIds.push(partnerId);
      this.#partnerOf.set(partnerId, p);
      this.#rulesUntil[p] = Number.NEGATIVE_INFINITY;
      this.#activatedAt[p] = Number.NaN;
      this.#pTopCount[p] = -1;
      this.#readSignals(p);
    }
    return p;
  }

  #growPartners(capacity: number): void {
    this.#engaged = resize(this.#engaged, capacity);
    this.#rulesUntil = resize(this.#rulesUntil, capacity);
    this.#activatedAt = resize(this.#activatedAt, capacity, Number.NaN);
    this.#quality = resize(this.#quality, capacity);
    this.#reliability = resize(this.#reliability, capacity);
    this.#affinity = resize(this.#affinity, capacity);
    this.#pCapped = resize(this.#pCapped, capacity);
    this.#pShare = resize(this.#pShare, capacity);
    this.#pCount = resize(this.#pCount, capacity);
    this.#pTopCount = resize(this.#pTopCount, capacity, -1);
    this.#pTop = resize(this.#pTop, capacity * MAX_PER_PARTNER_MAX);
    this.#seenPartners = resize(this.#seenPartners, capacity);
    this.#partnerCapacity = capacity;
  }

  #programNumber(key: string): number {
    let number = this.#programOf.get(key);
    if (number === undefined) {
      number = this.#programs.length;
      this.#programs.push({ grants: new Map(), runs: new Map() });
      this.#programKeys.push(key);
      this.#programOf.set(key, number);
    }
    return number;
  }

  #program(key: string): Program {
    return this.#programs[this.#programNumber(key)]!;
  }

  /**
   * Derives a partner's runs of validity for a program from its grants. A renewal starts where
   * the certification it renews ends, so the two merge into one run and the partner stays
   * matchable across the change; a revoked grant drops out and may leave a gap.
   */
  #mergeGrants(program: Program, p: number): void {
    const grants = [...(program.grants.get(p) ?? [])].sort((a, b) => a.fromMs - b.fromMs);
    const runs: number[] = [];
    for (const grant of grants) {
      if (grant.untilMs <= grant.fromMs) continue;
      const last = runs.length - 1;
      if (last > 0 && grant.fromMs <= runs[last]!) runs[last] = Math.max(runs[last]!, grant.untilMs);
      else runs.push(grant.fromMs, grant.untilMs);
    }
    if (runs.length > 0) program.runs.set(p, runs);
    else program.runs.delete(p);
  }

  #ensureCandidates(count: number): void {
    if (count <= this.#candidateCapacity) return;
    const capacity = Math.max(count, this.#candidateCapacity * 2, 64);
    this.#cRow = new Int32Array(capacity);
    this.#cPartner = new Int32Array(capacity);
    this.#cPrice = new Float64Array(capacity);
    this.#cCurrency = new Uint16Array(capacity);
    this.#cLead = new Float64Array(capacity);
    this.#cScore = new Float64Array(capacity);
    this.#cFinal = new Float64Array(capacity);
    this.#cPrimary = new Uint8Array(capacity);
    this.#cList = new Int32Array(capacity);
    this.#cHeap = new Int32Array(Math.max(capacity, QUERY_LIMIT_MAX));
    this.#candidateCapacity = capacity;
  }
}

const float32 = new Float32Array(1);
const float32Bits = new Int32Array(float32.buffer);

/** The largest 32-bit float not above `value`. */
function float32Below(value: number): number {
  float32[0] = value;
  const rounded = float32[0]!;
  if (rounded > value) {
    // One step down: the bits of a float's magnitude count up, so move them towards -∞.
    float32Bits[0] = rounded > 0 ? float32Bits[0]! - 1 : rounded === 0 ? -2147483647 : float32Bits[0]! + 1;
  }
  return float32[0]!;
}

/** The smallest 32-bit float not below `value`. */
function float32Above(value: number): number {
  return -float32Below(-value);
}

function matchesConstraints(constraints: readonly CompiledConstraint[], row: number): boolean {
  for (let k = 0; k < constraints.length; k++) {
    if (!matchesConstraint(constraints[k]!, row)) return false;
  }
  return true;
}

function matchesConstraint(constraint: CompiledConstraint, row: number): boolean {
  const value = constraint.num ? constraint.num[row]! : Number.NaN;
  // A range needs a number; NaN (absent, or not a number) fails every comparison.
  if (constraint.min !== Number.NEGATIVE_INFINITY && !(value >= constraint.min)) return false;
  if (constraint.max !== Number.POSITIVE_INFINITY && !(value <= constraint.max)) return false;
  if (!constraint.listed) return true;
  const numbers = constraint.numbers!;
  for (let k = 0; k < numbers.length; k++) if (numbers[k] === value) return true;
  const codes = constraint.codes!;
  if (codes.length > 0 && constraint.code) {
    const code = constraint.code[row]!;
    for (let k = 0; k < codes.length; k++) if (codes[k] === code) return true;
  }
  return false;
}

/** The `k` best of `list[0..length)`, best first, through a heap of `k` entries (worst at the root). */
function topK(
  list: Int32Array,
  length: number,
  k: number,
  better: (a: number, b: number) => boolean,
  heap: Int32Array,
): number[] {
  if (k <= 0) return [];
  let size = 0;
  for (let n = 0; n < length; n++) {
    const x = list[n]!;
    if (size < k) {
      let at = size++;
      heap[at] = x;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (!better(heap[parent]!, heap[at]!)) break;
        const swap = heap[parent]!;
        heap[parent] = heap[at]!;
        heap[at] = swap;
        at = parent;
      }
    } else if (better(x, heap[0]!)) {
      heap[0] = x;
      let at = 0;
      for (;;) {
        const left = 2 * at + 1;
        if (left >= size) break;
        const right = left + 1;
        const worse = right < size && better(heap[left]!, heap[right]!) ? right : left;
        if (!better(heap[at]!, heap[worse]!)) break;
        const swap = heap[worse]!;
        heap[worse] = heap[at]!;
        heap[at] = swap;
        at = worse;
      }
    }
  }
  return sortBy(heap.subarray(0, size), better);
}

function sortBy(list: Int32Array, better: (a: number, b: number) => boolean): number[] {
  return Array.from(list).sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
}

function exposureKey(capability: string, region: string): string {
  return `${capability}\u0000${region}`;
}

function dictionaryCode(dictionary: Map<string, number>, key: string, add: boolean): number {
  let code = dictionary.get(key);
  if (code === undefined) {
    if (!add) return NO_CODE;
    code = dictionary.size;
    dictionary.set(key, code);
  }
  return code;
}

/**
 * A flat copy of a string. A string built by concatenation is a rope in V8 (a tree of its
 * parts), which costs more than twice the memory of a flat one for as long as the index keeps
 * it; an id read from the database is flat already, one built in code often is not.
 */
function flatCopy(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}

/** JSON with object keys sorted, so that equal values always encode alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

type TypedArray = Int32Array | Uint8Array | Uint16Array | Uint32Array | Float64Array;

/** A copy of `array` with room for `length` entries; new entries hold `fill`. */
/** Room left for growth when columns are compacted: an eighth, so a few new rows do not copy them all. */
function slack(length: number): number {
  return length >> 3;
}

function resize<T extends TypedArray>(array: T, length: number, fill = 0): T {
  const Constructor = array.constructor as new (length: number) => T;
  const resized = new Constructor(length);
  resized.set(array.subarray(0, Math.min(array.length, length)) as never);
  if (fill !== 0 && length > array.length) resized.fill(fill as never, array.length);
  return resized;
}
