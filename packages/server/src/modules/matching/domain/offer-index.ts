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
  type Scoring,
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
 *   array indexed by row, as narrow as its values allow (a column of whole numbers below 2^32
 *   takes 4 bytes a row and widens to 8 only when a value does not fit), and freed rows are
 *   reused.
 * - Attributes are columns of their table: numbers in a Float64Array (NaN when absent), every
 *   other JSON value dictionary-encoded (its canonical JSON → an integer code, -1 when absent).
 * - Each table keeps one bucket per region: the rows of the offers serving it. A query reads one
 *   bucket. Region lists are interned, so a row stores one integer for all of its regions.
 * - Partners, certification programs, currencies and regions are small dictionaries; partner
 *   facts (standing, activation, signals) and certifications are typed arrays indexed by
 *   number.
 * - Whether a partner may be matched for a capability (active, within its rules, holding the
 *   required certifications) and whether it is a new entrant is kept per table and partner
 *   in one byte, worked out again only for partners that changed and when the earliest time
 *   at which any partner's answer changes by itself (a certification or grace period ending)
 *   has passed: a query reads one byte per offer instead of evaluating partners.
 * - A large bucket also keeps a packed copy of its live rows (active offers of eligible
 *   partners): row, partner, price, currency, and the quantity limits, lead time and the
 *   capacity left in the fullest period as 32-bit floats rounded outwards. A query over it reads
 *   memory in sequence and touches the table's columns only for rows the copy cannot decide.
 *   Every change to an offer or its reservations patches the copies of its buckets at once; a
 *   change in a partner's eligibility, which may touch thousands of rows, has them rebuilt on
 *   the next query. Small buckets keep no copy: they are read from the columns, fast anyway.
 * - Reserved capacity is sparse: most offers have none; a pool of linked entries holds the rest
 *   (reserved-units.ts). Reservations belong to the offer and the start of their period, as in
 *   the database: they stay with the offer when it changes terms, capability or period kind.
 * - A query filters in one pass (counting every candidate exactly and gathering the ranges of
 *   price and lead time that scores are normalised against), then ranks in a second: a
 *   candidate whose score bound cannot reach the results kept so far is skipped unscored.
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
  /**
   * Rows a bucket must hold to keep a packed copy of its live rows (`PACKED_ROWS_MIN` unless
   * given; tests set it low so that both ways of reading a bucket are exercised).
   */
  readonly packedRowsMin?: number;
}

const INITIAL_ROWS = 64;
const INITIAL_PARTNERS = 64;
const INITIAL_CERTIFICATIONS = 64;
const NO_CODE = -1;
/** Past capacity periods kept per offer, in days: queries only look at periods from now on. */
export const RESERVATION_HISTORY_DAYS = 62;
/**
 * Rows from which a bucket keeps a packed copy of its live rows. Below it a query reads the
 * table's columns, which for a few hundred rows costs microseconds; above it the copy's
 * sequential reads pay for its memory (38 bytes per live row, and 12 per booked period).
 */
export const PACKED_ROWS_MIN = 1024;
/** Fields per live row in a packed copy's `filter` array. */
const FILTER_FIELDS = 4;
/** Bits of a partner's standing byte in a table. */
const ELIGIBLE = 1;
const BOOSTED = 2;
/** Partners whose facts changed, kept before the oldest is dropped and every table recounts. */
const CHANGED_PARTNERS_MAX = 100_000;
/** Rows changed at once that are patched into the packed copies; beyond, the copies are rebuilt. */
const PATCHED_ROWS_MAX = 64;
/** Days ahead for which a query works out period starts once rather than per row. */
const PERIOD_STARTS_DAYS_MAX = 400;
/** Query stamps run up to this and start again, with the per-partner stamps cleared. */
const STAMP_MAX = 0x3fff_ffff;

/**
 * A numeric column as narrow as its values allow: whole numbers from 0 up to 2^16 − 1 or
 * 2^32 − 1 in a Uint16Array or Uint32Array, anything else in a Float64Array. A value that does
 * not fit widens the whole column once (`storeNumber`).
 */
type NumberColumn = Uint16Array | Uint32Array | Float64Array;

/** Stores `value` at `row`, first widening the column when the value does not fit; returns the column. */
function storeNumber(column: NumberColumn, row: number, value: number): NumberColumn {
  let target = column;
  if (!(column instanceof Float64Array)) {
    const max = column instanceof Uint16Array ? 0xffff : 0xffff_ffff;
    if (!(Number.isInteger(value) && value >= 0 && value <= max)) target = Float64Array.from(column);
  }
  target[row] = value;
  return target;
}

/**
 * A packed copy of a bucket's live rows, one entry per row in no particular order: what a
 * query reads, in sequence. `filter` holds four 32-bit floats per row: the minimum quantity
 * rounded down, the maximum quantity rounded up, the lead time rounded down, and the capacity
 * left in the row's fullest stored period rounded down; so a row the copy rejects is rejected,
 * and a row it accepts is exact unless the table says its values are not all exact as 32-bit
 * floats. A row whose last value does not decide (some of its periods are booked, or its
 * capacity is not exact as a 32-bit float) has a block in the booking pool, which answers
 * exactly: see `booked`.
 */
class PackedRows {
  row: Int32Array;
  partner: Int32Array;
  price: Float64Array;
  currency: Uint16Array;
  filter: Float32Array;
  /**
   * Each row's block in the booking pool, or -1. A block is a header, `bookDay` = the number of
   * booked periods × 4 + the period kind's code and `bookFree` = the capacity per period, then
   * per booked period its first day and the units left free in it.
   */
  booked: Int32Array;
  bookDay: Int32Array;
  bookFree: Float64Array;
  bookLength = 0;
  length = 0;

  constructor(
    capacity: number,
    /** Entries of the booking pool to make room for. */
    poolCapacity: number,
    /** The table's `liveEpoch` the copy holds for: a different one means rebuild. */
    readonly epoch: number,
  ) {
    this.row = new Int32Array(capacity);
    this.partner = new Int32Array(capacity);
    this.price = new Float64Array(capacity);
    this.currency = new Uint16Array(capacity);
    this.filter = new Float32Array(capacity * FILTER_FIELDS);
    this.booked = new Int32Array(capacity);
    this.bookDay = new Int32Array(poolCapacity);
    this.bookFree = new Float64Array(poolCapacity);
  }

  get capacity(): number {
    return this.row.length;
  }

  /** Where `row` is in the copy, or -1. A linear search, but only when an offer changes. */
  find(row: number): number {
    const at = this.row.indexOf(row);
    return at < this.length ? at : -1;
  }

  append(): number {
    if (this.length === this.capacity) {
      const capacity = Math.max(16, this.capacity + (this.capacity >> 1));
      this.row = resize(this.row, capacity);
      this.partner = resize(this.partner, capacity);
      this.price = resize(this.price, capacity);
      this.currency = resize(this.currency, capacity);
      this.filter = resize(this.filter, capacity * FILTER_FIELDS);
      this.booked = resize(this.booked, capacity);
    }
    this.booked[this.length] = -1;
    return this.length++;
  }

  /** Removes the entry at `at` by moving the last entry into its place. */
  removeAt(at: number): void {
    const last = --this.length;
    if (at === last) return;
    this.row[at] = this.row[last]!;
    this.partner[at] = this.partner[last]!;
    this.price[at] = this.price[last]!;
    this.currency[at] = this.currency[last]!;
    this.filter.copyWithin(at * FILTER_FIELDS, last * FILTER_FIELDS, (last + 1) * FILTER_FIELDS);
    this.booked[at] = this.booked[last]!;
  }

  /**
   * A block for `periods` booked periods for entry `at`: its own when big enough, else a new one
   * at the end of the pool (the old one is left behind, and the pool drops what was left
   * behind when it must grow).
   */
  block(at: number, periods: number): number {
    const own = this.booked[at]!;
    if (own >= 0 && this.bookDay[own]! >> 2 >= periods) return own;
    this.booked[at] = -1;
    const size = periods + 1;
    if (this.bookLength + size > this.bookDay.length) this.#compactPool(size);
    const block = this.bookLength;
    this.bookLength += size;
    this.booked[at] = block;
    return block;
  }

  /** Copies the blocks in use to a new pool with room for `more` entries and half as much again. */
  #compactPool(more: number): void {
    let used = 0;
    for (let at = 0; at < this.length; at++) {
      const block = this.booked[at]!;
      if (block >= 0) used += (this.bookDay[block]! >> 2) + 1;
    }
    const size = used + more + ((used + more) >> 1);
    const days = new Int32Array(size);
    const free = new Float64Array(size);
    let length = 0;
    for (let at = 0; at < this.length; at++) {
      const block = this.booked[at]!;
      if (block < 0) continue;
      const end = block + (this.bookDay[block]! >> 2) + 1;
      days.set(this.bookDay.subarray(block, end), length);
      free.set(this.bookFree.subarray(block, end), length);
      this.booked[at] = length;
      length += end - block;
    }
    this.bookDay = days;
    this.bookFree = free;
    this.bookLength = length;
  }
}

/** A region's offers within one capability: the rows of a table, in no particular order. */
interface Bucket {
  rows: Int32Array;
  length: number;
  /** The packed copy of the live rows, built on the first query once the bucket is large enough. */
  packed: PackedRows | null;
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
  price: NumberColumn = new Uint32Array(INITIAL_ROWS);
  currency = new Uint16Array(INITIAL_ROWS);
  minQuantity: NumberColumn = new Uint32Array(INITIAL_ROWS);
  maxQuantity: NumberColumn = new Uint32Array(INITIAL_ROWS);
  leadHours: NumberColumn = new Uint16Array(INITIAL_ROWS);
  capacityPerPeriod: NumberColumn = new Uint32Array(INITIAL_ROWS);
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
  /** Counts changes of partners' eligibility for the table: every packed copy goes stale. */
  liveEpoch = 0;
  /** Whether a bucket may hold a packed copy: until the first is built, changes patch nothing. */
  packing = false;
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
    if (this.ids.length > this.rowCount) this.ids.length = this.rowCount;
    // A copy of the array, so that its backing store has no room left from growth by pushing.
    this.ids = this.ids.slice();
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

  /** Units free in the row's fullest stored period: at least this much is free in any period. */
  leastFree(row: number): number {
    const capacity = this.capacityPerPeriod[row]!;
    return this.reserved.heads[row] === -1 ? capacity : capacity - this.reserved.max(row);
  }
}

/**
 * Certifications of one program: each partner's granted certifications, as a linked list
 * through the index's certification columns (`#certificationNext`), from the partner number
 * to its first certification's number.
 */
interface Program {
  readonly heads: Map<number, number>;
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
  /**
   * For a constraint that only lists values none of which is a number (the common `eq`/`in` on
   * an enumeration), 1 at each code listed: one lookup per row decides. Null otherwise.
   */
  readonly allowed: Uint8Array | null;
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
  readonly #packedRowsMin: number;

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
  /** No partner's quality or reliability is above these: the bounds a strategy may prune with. */
  #qualityMax = 0;
  #reliabilityMax = 0;
  /** The asking customer's affinity per partner: zero but for the partners set for one query. */
  #affinity = new Float64Array(INITIAL_PARTNERS);
  #affinityMax = 0;

  readonly #programOf = new Map<string, number>();
  readonly #programs: Program[] = [];
  readonly #programKeys: string[] = [];
  /** Capability → required program keys, kept for tables created later. */
  readonly #requiredCertifications = new Map<string, readonly string[]>();
  /**
   * Granted certifications, by number: columns rather than an object each, since a large
   * ecosystem holds hundreds of thousands of them. `#certificationNext` links the
   * certifications of one partner and program (see `Program`).
   */
  readonly #certificationOf = new Map<string, number>();
  readonly #certificationIds: string[] = [];
  #certificationPartner = new Int32Array(INITIAL_CERTIFICATIONS);
  #certificationProgram = new Int32Array(INITIAL_CERTIFICATIONS);
  #certificationFrom = new Float64Array(INITIAL_CERTIFICATIONS);
  #certificationUntil = new Float64Array(INITIAL_CERTIFICATIONS);
  #certificationNext = new Int32Array(INITIAL_CERTIFICATIONS);
  #certificationCount = 0;
  readonly #freeCertifications: number[] = [];
  /** What `#validity` found: whether the program is held, and when that answer changes next. */
  #validHolds = false;
  #validChangeMs = Number.POSITIVE_INFINITY;

  readonly #settings = new Map<string, MatchingSettings>();
  readonly #exposure = new Map<string, ExposureWindow>();
  readonly #allocationIds = new Set<string>();
  /** The allocation of each reservation whose capacity is held or used: it counts towards exposure. */
  readonly #allocationOfReservation = new Map<string, { id: string; key: string; atMs: number }>();
  readonly #reservationOfAllocation = new Map<string, string>();
  /**
   * Allocations withdrawn (their capacity given back), in the order they were (close to the
   * order they were made in), whose ids stay known so that hearing of them again does not count
   * them again, until they fall out of every window.
   */
  readonly #withdrawn: { id: string; atMs: number }[] = [];
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
  /** Numbers the queries one after another; a partner's exposure is worked out once per stamp. */
  #stamp = 0;

  // Per-query scratch, per partner, for the partners of the candidates.
  #pStamp = new Int32Array(INITIAL_PARTNERS);
  #pCapped = new Uint8Array(INITIAL_PARTNERS);
  #pShare = new Float64Array(INITIAL_PARTNERS);
  #pCount = new Float64Array(INITIAL_PARTNERS);
  #pTopCount = new Int32Array(INITIAL_PARTNERS).fill(-1);
  #pTop = new Int32Array(INITIAL_PARTNERS * MAX_PER_PARTNER_MAX);
  #pKept = new Int32Array(INITIAL_PARTNERS);
  #seenPartners = new Int32Array(INITIAL_PARTNERS);

  // Per-query scratch, per candidate.
  #candidateCapacity = 0;
  #cRow = new Int32Array(0);
  #cPartner = new Int32Array(0);
  #cPrice = new Float64Array(0);
  #cCurrency = new Uint16Array(0);
  #cLead = new Float64Array(0);
  #cFinal = new Float64Array(0);
  #cBound = new Float64Array(0);
  #cPrimary = new Uint8Array(0);
  #cList = new Int32Array(0);
  #cHeap = new Int32Array(0);
  /** The ranges of the candidates gathered while filtering: price per currency, and lead time. */
  #cMinPrice = new Float64Array(4);
  #cMaxPrice = new Float64Array(4);
  #cMinLead = Number.POSITIVE_INFINITY;
  #cMaxLead = Number.NEGATIVE_INFINITY;
  /** The results kept while ranking, best first. */
  readonly #kept = new Int32Array(QUERY_LIMIT_MAX);
  /** Period starts by kind and day for the query being answered: see `#periodStartsFor`. */
  #periodStarts = new Int32Array(3 * 64);

  constructor(options: OfferIndexOptions = {}) {
    this.#strategy = options.strategy ?? weightedSumStrategy;
    this.#signals = options.signals ?? NEUTRAL_SIGNALS;
    this.#packedRowsMin = options.packedRowsMin ?? PACKED_ROWS_MIN;
  }

  /** Offers in the index, of any status. */
  get size(): number {
    return this.#slotOf.size;
  }

  // ---------------------------------------------------------------------------------------------
  // Feeding the index. Every change is idempotent: applying one twice leaves the index as once.

  /**
   * Adds an offer, or replaces what the index knows of it. Its reservations stay: they belong to
   * the offer and their period's start, whatever its terms, capability or period kind.
   */
  upsertOffer(offer: IndexedOffer): void {
    const table = this.#table(offer.capability);
    let slot = this.#slotOf.get(offer.id);
    let carried: number[] | null = null;
    if (slot !== undefined && this.#slotTable[slot] !== table.number) {
      // The catalog never moves an offer to another capability, but the index does not rely on
      // it: the offer moves to the other table with its reservations.
      const from = this.#tableList[this.#slotTable[slot]!]!;
      carried = from.reserved.entries(this.#slotRow[slot]!);
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
    table.partner[row] = this.#partnerNumber(offer.partnerId);
    table.status[row] = STATUS_CODES[offer.status];
    table.price = storeNumber(table.price, row, Number(offer.unitPriceMinor));
    table.currency[row] = this.#currencyNumber(offer.currency);
    const minQuantity = Number(offer.minQuantity);
    const maxQuantity = Number(offer.maxQuantity);
    const leadHours = offer.leadTimeHours;
    if (
      Math.fround(minQuantity) !== minQuantity ||
      Math.fround(maxQuantity) !== maxQuantity ||
      Math.fround(leadHours) !== leadHours
    ) {
      table.packedExact = false;
    }
    table.minQuantity = storeNumber(table.minQuantity, row, minQuantity);
    table.maxQuantity = storeNumber(table.maxQuantity, row, maxQuantity);
    table.leadHours = storeNumber(table.leadHours, row, leadHours);
    table.capacityPerPeriod = storeNumber(table.capacityPerPeriod, row, Number(offer.capacityPerPeriod));
    table.period[row] = PERIOD_CODES[offer.capacityPeriod];
    if (carried) {
      for (let k = 0; k < carried.length; k += 2) table.reserved.set(row, carried[k]!, carried[k + 1]!);
    }
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
    this.#patch(table, row);
  }

  /** Forgets an offer, with its reservations; unknown ids are ignored. */
  removeOffer(offerId: string): void {
    const slot = this.#slotOf.get(offerId);
    if (slot === undefined) return;
    const table = this.#tableList[this.#slotTable[slot]!]!;
    const row = this.#slotRow[slot]!;
    this.#unbucket(table, row);
    table.reserved.clear(row);
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
    const certifications = Math.max(
      INITIAL_CERTIFICATIONS,
      this.#certificationCount + slack(this.#certificationCount),
    );
    if (certifications < this.#certificationPartner.length) {
      this.#certificationPartner = resize(this.#certificationPartner, certifications);
      this.#certificationProgram = resize(this.#certificationProgram, certifications);
      this.#certificationFrom = resize(this.#certificationFrom, certifications);
      this.#certificationUntil = resize(this.#certificationUntil, certifications);
      this.#certificationNext = resize(this.#certificationNext, certifications);
    }
  }

  /**
   * Forgets reservations of periods that started more than `RESERVATION_HISTORY_DAYS` before
   * `nowMs`: queries only look forward, and the longest period (a month) is well inside that.
   */
  forgetReservationsBefore(nowMs: number): void {
    const day = Math.floor(nowMs / DAY_MS) - RESERVATION_HISTORY_DAYS;
    for (const table of this.#tables.values()) {
      const touched: number[] = [];
      table.reserved.forgetBefore(day, (row) => touched.push(row));
      if (touched.length <= PATCHED_ROWS_MAX) {
        for (const row of touched) this.#patch(table, row);
      } else {
        // Patching row by row searches a copy per row: past a few, rebuilding is cheaper.
        for (const bucket of table.buckets.values()) bucket.packed = null;
      }
    }
  }

  /** Sets the units held or confirmed in one capacity period of an offer (0 frees them all). */
  setReserved(offerId: string, periodStart: number, reserved: number): void {
    const located = this.#locate(offerId);
    if (!located) return;
    const { table, row } = located;
    table.reserved.set(row, Math.floor(periodStart / DAY_MS), reserved);
    this.#patch(table, row);
  }

  /**
   * Reads partners' quality and reliability from the signals port again: every partner's, or
   * those named. Call it when the facts behind the signals change.
   */
  refreshSignals(partnerIds?: readonly string[]): void {
    if (partnerIds === undefined) {
      this.#qualityMax = 0;
      this.#reliabilityMax = 0;
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
    const quality = clampSignal(this.#signals.quality(id), 0.5);
    const reliability = clampSignal(this.#signals.reliability(id), 0.5);
    this.#quality[p] = quality;
    this.#reliability[p] = reliability;
    // The bounds only rise here (a lowered signal leaves them loose, never wrong); reading every
    // partner again sets them exactly.
    if (quality > this.#qualityMax) this.#qualityMax = quality;
    if (reliability > this.#reliabilityMax) this.#reliabilityMax = reliability;
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
    const program = this.#programNumber(grant.programKey);
    let k = this.#certificationOf.get(grant.id);
    if (k === undefined) {
      k = this.#allocateCertification();
      const id = flatCopy(grant.id);
      this.#certificationIds[k] = id;
      this.#certificationOf.set(id, k);
    } else {
      // Granted again, perhaps with other terms: the new ones replace the old.
      this.#changed(this.#certificationPartner[k]!);
      this.#unlinkCertification(k);
    }
    this.#certificationPartner[k] = p;
    this.#certificationProgram[k] = program;
    this.#certificationFrom[k] = grant.validFromMs;
    this.#certificationUntil[k] = grant.validUntilMs;
    const heads = this.#programs[program]!.heads;
    this.#certificationNext[k] = heads.get(p) ?? -1;
    heads.set(p, k);
    this.#changed(p);
  }

  /** Forgets a certification that was revoked or expired; unknown ids are ignored. */
  withdrawCertification(id: string, partnerId: string, programKey: string): void {
    const k = this.#certificationOf.get(id);
    if (k === undefined) return;
    const p = this.#certificationPartner[k]!;
    if (
      this.#partnerIds[p] !== partnerId ||
      this.#programKeys[this.#certificationProgram[k]!] !== programKey
    ) {
      // Another partner's or program's certification under this id: not the one meant.
      return;
    }
    this.#unlinkCertification(k);
    this.#certificationOf.delete(id);
    this.#certificationIds[k] = '';
    this.#freeCertifications.push(k);
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

  /**
   * Counts an allocation towards the partner's exposure; counting the same id again changes
   * nothing. With its reservation, it stops counting when `withdrawAllocation` is told that
   * reservation's capacity was given back.
   */
  recordAllocation(allocation: {
    id: string;
    capability: string;
    region: string;
    partnerId: string;
    atMs: number;
    reservationId?: string | null;
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
    if (allocation.reservationId) {
      this.#allocationOfReservation.set(allocation.reservationId, {
        id: allocation.id,
        key,
        atMs: allocation.atMs,
      });
      this.#reservationOfAllocation.set(allocation.id, allocation.reservationId);
    }
    const retainFromMs = allocation.atMs - EXPOSURE_WINDOW_DAYS_MAX * DAY_MS;
    for (const id of window.prune(retainFromMs)) {
      this.#allocationIds.delete(id);
      const reservationId = this.#reservationOfAllocation.get(id);
      if (reservationId !== undefined) {
        this.#reservationOfAllocation.delete(id);
        this.#allocationOfReservation.delete(reservationId);
      }
    }
    while (this.#withdrawn.length > 0 && (this.#withdrawn[0] as { atMs: number }).atMs < retainFromMs) {
      this.#allocationIds.delete((this.#withdrawn.shift() as { id: string }).id);
    }
  }

  /**
   * The capacity a reservation held was given back (its quote lapsed, its order was cancelled,
   * its partner declined the work): the allocation that made it no longer counts towards its
   * partner's exposure. A reservation of no allocation known here changes nothing.
   */
  withdrawAllocation(reservationId: string): void {
    const allocation = this.#allocationOfReservation.get(reservationId);
    if (!allocation) return;
    this.#allocationOfReservation.delete(reservationId);
    this.#reservationOfAllocation.delete(allocation.id);
    this.#exposure.get(allocation.key)?.remove(allocation.id, allocation.atMs);
    this.#withdrawn.push({ id: allocation.id, atMs: allocation.atMs });
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
    const packed = this.#packedRows(table, bucket);
    const count = packed
      ? this.#collectPacked(table, packed, constraints, q, nowMs)
      : this.#collectRows(table, bucket, constraints, q, nowMs);
    if (count === 0) return { candidates: 0, results: [] };
    const scoring = this.#strategy.prepare(this.#candidateSet(count), settings.weights);
    // Fewer candidates than the limit cannot fill the results with primaries alone.
    const top =
      count >= q.limit ? this.#rankTop(table, settings, scoring, count, q.limit, q.neededByMs) : null;
    const results = top ?? this.#rankAll(table, settings, scoring, count, q.limit, false, q.neededByMs);
    return { candidates: count, results };
  }

  /**
   * The first pass of `query` over a bucket's packed copy: the rows that pass every filter,
   * written to the candidate columns, with the ranges of price and lead time; returns how
   * many. Everything it touches is a local typed array, and it allocates nothing.
   */
  #collectPacked(
    table: CapabilityTable,
    packed: PackedRows,
    constraints: readonly CompiledConstraint[],
    q: MatchQuery,
    nowMs: number,
  ): number {
    const { row: rows, partner: partners, price: prices, currency: currencies, filter } = packed;
    const { booked, bookDay, bookFree } = packed;
    const exact = table.packedExact;
    const { minQuantity, maxQuantity, leadHours } = table;
    // Imported bindings are read once: some module loaders turn them into getters, which the
    // loop would otherwise call per row.
    const hourMs = HOUR_MS;
    const dayMs = DAY_MS;
    const startDay = periodStartDay;
    const quantity = q.quantity;
    const neededByMs = q.neededByMs;
    const maxLeadHours = (neededByMs - nowMs) / hourMs;
    // The work of a row that passes starts between today and the day it is needed: the start of
    // each kind of period for each of those days is worked out once (at the first row that
    // needs one), not per row.
    const firstDay = Math.floor(nowMs / dayMs);
    let days = -1;
    let starts = this.#periodStarts;
    const cRow = this.#cRow;
    const cPartner = this.#cPartner;
    const cPrice = this.#cPrice;
    const cCurrency = this.#cCurrency;
    const cLead = this.#cLead;
    const minPrice = this.#cMinPrice;
    const maxPrice = this.#cMaxPrice;
    let minLead = Number.POSITIVE_INFINITY;
    let maxLead = Number.NEGATIVE_INFINITY;
    const length = packed.length;
    // Nearly every bucket prices in one currency: its range is kept in locals, others' in arrays.
    const main = length > 0 ? currencies[0]! : 0;
    let minMain = Number.POSITIVE_INFINITY;
    let maxMain = Number.NEGATIVE_INFINITY;
    const constrained = constraints.length > 0;
    let count = 0;
    for (let i = 0; i < length; i++) {
      const at = i * FILTER_FIELDS;
      if (quantity < filter[at]! || quantity > filter[at + 1]! || filter[at + 2]! > maxLeadHours) continue;
      const row = rows[i]!;
      let lead = filter[at + 2]!;
      if (!exact) {
        lead = leadHours[row]!;
        if (quantity < minQuantity[row]! || quantity > maxQuantity[row]! || lead > maxLeadHours) continue;
      }
      if (constrained && !matchesConstraints(constraints, row)) continue;
      // Most offers have room for the quantity in every period; only the others look up the
      // period in which this work must start (after the constraints: a lookup costs more).
      if (filter[at + 3]! < quantity) {
        const block = booked[i]!;
        if (block < 0) continue;
        const header = bookDay[block]!;
        let free = bookFree[block]!;
        const end = block + (header >> 2);
        if (end > block) {
          const kind = header & 3;
          if (days < 0) {
            days = this.#periodStartsFor(firstDay, Math.floor(neededByMs / dayMs));
            starts = this.#periodStarts;
          }
          const day = Math.floor((neededByMs - lead * hourMs) / dayMs);
          const k = day - firstDay;
          const start = k >= 0 && k < days ? starts[kind * days + k]! : startDay(kind, day);
          for (let entry = block + 1; entry <= end; entry++) {
            if (bookDay[entry] === start) {
              free = bookFree[entry]!;
              break;
            }
          }
        }
        if (free < quantity) continue;
      }
      const price = prices[i]!;
      const currency = currencies[i]!;
      cRow[count] = row;
      cPartner[count] = partners[i]!;
      cPrice[count] = price;
      cCurrency[count] = currency;
      cLead[count] = lead;
      if (currency === main) {
        if (price < minMain) minMain = price;
        if (price > maxMain) maxMain = price;
      } else {
        if (price < minPrice[currency]!) minPrice[currency] = price;
        if (price > maxPrice[currency]!) maxPrice[currency] = price;
      }
      if (lead < minLead) minLead = lead;
      if (lead > maxLead) maxLead = lead;
      count++;
    }
    if (minMain < minPrice[main]!) minPrice[main] = minMain;
    if (maxMain > maxPrice[main]!) maxPrice[main] = maxMain;
    this.#cMinLead = minLead;
    this.#cMaxLead = maxLead;
    return count;
  }

  /** The first pass of `query` over a bucket without a packed copy, from the table's columns. */
  #collectRows(
    table: CapabilityTable,
    bucket: Bucket,
    constraints: readonly CompiledConstraint[],
    q: MatchQuery,
    nowMs: number,
  ): number {
    const rows = bucket.rows;
    const { status, partner, standing, price, currency, minQuantity, maxQuantity, leadHours } = table;
    const { capacityPerPeriod, period } = table;
    const reserved = table.reserved;
    const hourMs = HOUR_MS;
    const dayMs = DAY_MS;
    const startDay = periodStartDay;
    const quantity = q.quantity;
    const neededByMs = q.neededByMs;
    const maxLeadHours = (neededByMs - nowMs) / hourMs;
    const minPrice = this.#cMinPrice;
    const maxPrice = this.#cMaxPrice;
    let minLead = Number.POSITIVE_INFINITY;
    let maxLead = Number.NEGATIVE_INFINITY;
    const constrained = constraints.length > 0;
    let count = 0;
    for (let i = 0; i < bucket.length; i++) {
      const row = rows[i]!;
      if (status[row] !== ACTIVE) continue;
      const p = partner[row]!;
      if ((standing[p]! & ELIGIBLE) === 0) continue;
      const lead = leadHours[row]!;
      if (quantity < minQuantity[row]! || quantity > maxQuantity[row]! || lead > maxLeadHours) continue;
      if (reserved.heads[row] !== -1) {
        const day = startDay(period[row]!, Math.floor((neededByMs - lead * hourMs) / dayMs));
        if (capacityPerPeriod[row]! - reserved.get(row, day) < quantity) continue;
      } else if (capacityPerPeriod[row]! < quantity) {
        continue;
      }
      if (constrained && !matchesConstraints(constraints, row)) continue;
      const rowPrice = price[row]!;
      const rowCurrency = currency[row]!;
      this.#cRow[count] = row;
      this.#cPartner[count] = p;
      this.#cPrice[count] = rowPrice;
      this.#cCurrency[count] = rowCurrency;
      this.#cLead[count] = lead;
      if (rowPrice < minPrice[rowCurrency]!) minPrice[rowCurrency] = rowPrice;
      if (rowPrice > maxPrice[rowCurrency]!) maxPrice[rowCurrency] = rowPrice;
      if (lead < minLead) minLead = lead;
      if (lead > maxLead) maxLead = lead;
      count++;
    }
    this.#cMinLead = minLead;
    this.#cMaxLead = maxLead;
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
        const price = table.price[row]!;
        const currency = table.currency[row]!;
        const lead = table.leadHours[row]!;
        this.#cRow[count] = row;
        this.#cPartner[count] = table.partner[row]!;
        this.#cPrice[count] = price;
        this.#cCurrency[count] = currency;
        this.#cLead[count] = lead;
        if (price < this.#cMinPrice[currency]!) this.#cMinPrice[currency] = price;
        if (price > this.#cMaxPrice[currency]!) this.#cMaxPrice[currency] = price;
        if (lead < this.#cMinLead) this.#cMinLead = lead;
        if (lead > this.#cMaxLead) this.#cMaxLead = lead;
        count++;
      }
    }
    let ranked: MatchResult[] = [];
    if (table && count > 0) {
      const scoring = this.#strategy.prepare(this.#candidateSet(count), settings.weights);
      ranked = this.#rankAll(table, settings, scoring, count, count, true, q.neededByMs);
    }

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
   * Prepares the per-query state: a new stamp, the candidates' ranges emptied, the customer's
   * affinities (those of the last query zeroed first), and the exposure window.
   */
  #beginQuery(
    q: Pick<MatchQuery, 'capability' | 'region' | 'customerId'>,
    settings: MatchingSettings,
    nowMs: number,
  ): void {
    if (++this.#stamp > STAMP_MAX) {
      this.#stamp = 1;
      this.#pStamp.fill(0);
    }
    const currencies = this.#currencies.length;
    if (this.#cMinPrice.length < currencies) {
      this.#cMinPrice = new Float64Array(currencies * 2);
      this.#cMaxPrice = new Float64Array(currencies * 2);
    }
    this.#cMinPrice.fill(Number.POSITIVE_INFINITY, 0, currencies);
    this.#cMaxPrice.fill(Number.NEGATIVE_INFINITY, 0, currencies);
    this.#cMinLead = Number.POSITIVE_INFINITY;
    this.#cMaxLead = Number.NEGATIVE_INFINITY;
    for (const p of this.#affinityTouched) this.#affinity[p] = 0;
    this.#affinityTouched.length = 0;
    this.#affinityMax = 0;
    if (q.customerId) {
      for (const [partnerId, value] of this.#signals.affinities(q.customerId)) {
        const p = this.#partnerOf.get(partnerId);
        if (p === undefined) continue;
        const affinity = clampSignal(value, 0);
        this.#affinity[p] = affinity;
        this.#affinityTouched.push(p);
        if (affinity > this.#affinityMax) this.#affinityMax = affinity;
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

  /**
   * Fills `#periodStarts` with the start day of each kind of period (by code) for each day from
   * `fromDay` to `toDay`, kind after kind, and returns how many days that is per kind; 0 when the
   * span is too long to be worth it (the caller then works each start out itself).
   */
  #periodStartsFor(fromDay: number, toDay: number): number {
    const days = toDay - fromDay + 1;
    if (!(days > 0 && days <= PERIOD_STARTS_DAYS_MAX)) return 0;
    if (this.#periodStarts.length < 3 * days) this.#periodStarts = new Int32Array(3 * days);
    const starts = this.#periodStarts;
    for (let kind = 0; kind < 3; kind++) {
      for (let k = 0; k < days; k++) starts[kind * days + k] = periodStartDay(kind, fromDay + k);
    }
    return days;
  }

  /** The first `count` candidates as the strategy sees them. */
  #candidateSet(count: number): CandidateSet {
    return {
      count,
      partner: this.#cPartner,
      priceMinor: this.#cPrice,
      currency: this.#cCurrency,
      currencyCount: this.#currencies.length,
      minPriceMinor: this.#cMinPrice,
      maxPriceMinor: this.#cMaxPrice,
      leadTimeHours: this.#cLead,
      minLeadTimeHours: this.#cMinLead,
      maxLeadTimeHours: this.#cMaxLead,
      quality: this.#quality,
      reliability: this.#reliability,
      affinity: this.#affinity,
      qualityMax: this.#qualityMax,
      reliabilityMax: this.#reliabilityMax,
      affinityMax: this.#affinityMax,
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Ranking.
  //
  // The order is: each partner's best `maxPerPartner` offers (its primaries) before any
  // partner's further offers (diversity); within each group, partners under the exposure cap
  // before partners at or over it; then by score, highest first; ties by offer id, so that the
  // order never depends on the index's layout.

  /**
   * The second pass of `query`: the best `limit` primaries, or null when there are fewer
   * primaries than that (then further offers are needed, and `#rankAll` ranks them all).
   *
   * It keeps the best `limit` candidates seen so far, at most `maxPerPartner` of each partner.
   * Once it holds `limit`, a candidate worse than the last of them cannot be among the results:
   * each kept candidate is matched by a distinct primary at least as good (a partner's best
   * offers are at least as good as any others of it), so the final `limit` primaries are all at
   * least as good as the last kept. A candidate whose bound is below the last kept is therefore
   * skipped without its score, and so are its partner's worse offers, which it could only
   * displace from the primaries. Before the list is full nothing is skipped, so when it never
   * fills every candidate has been scored for `#rankAll`.
   */
  #rankTop(
    table: CapabilityTable,
    settings: MatchingSettings,
    scoring: Scoring,
    count: number,
    limit: number,
    neededByMs: number,
  ): MatchResult[] | null {
    const cPartner = this.#cPartner;
    const final = this.#cFinal;
    const kept = this.#kept;
    const pKept = this.#pKept;
    const standing = table.standing;
    const boost = settings.newEntrantBoost;
    const perPartner = Math.min(settings.maxPerPartner, MAX_PER_PARTNER_MAX);
    const capping = this.#qCapWindow !== null;
    const bounds = this.#cBound;
    scoring.bounds(bounds);
    // A boost lifts a bound by at most this much.
    const lift = boost > 0 ? boost : 0;
    let size = 0;
    // The last kept candidate's exposure standing and final score, once the list is full.
    let lastCapped = 0;
    let lastFinal = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) {
      if (size === limit && !capping && bounds[i]! + lift < lastFinal) continue;
      const p = cPartner[i]!;
      const boosted = boost !== 0 && (standing[p]! & BOOSTED) !== 0;
      if (size === limit) {
        const capped = capping ? this.#capped(p) : 0;
        if (capped > lastCapped) continue;
        if (capped === lastCapped && (boosted ? bounds[i]! + boost : bounds[i]!) < lastFinal) continue;
      }
      const score = scoring.score(i);
      final[i] = boosted ? score + boost : score;
      let at: number;
      if (pKept[p]! >= perPartner) {
        // The partner's worst kept candidate gives way to a better one of its own, or nothing changes.
        let own = size - 1;
        while (cPartner[kept[own]!] !== p) own--;
        if (!this.#better(table, i, kept[own]!)) continue;
        kept.copyWithin(own, own + 1, size);
        at = size - 1;
      } else if (size === limit) {
        if (!this.#better(table, i, kept[size - 1]!)) continue;
        pKept[cPartner[kept[size - 1]!]!]!--;
        pKept[p]!++;
        at = size - 1;
      } else {
        pKept[p]!++;
        at = size++;
      }
      while (at > 0 && this.#better(table, i, kept[at - 1]!)) {
        kept[at] = kept[at - 1]!;
        at--;
      }
      kept[at] = i;
      if (size === limit) {
        const last = kept[size - 1]!;
        lastCapped = capping ? this.#capped(cPartner[last]!) : 0;
        lastFinal = final[last]!;
      }
    }
    for (let k = 0; k < size; k++) pKept[cPartner[kept[k]!]!] = 0;
    if (size < limit) return null;
    const results: MatchResult[] = [];
    for (let k = 0; k < size; k++) {
      const i = kept[k]!;
      results.push(
        this.#result(table, settings, scoring.breakdown(i), i, final[i]!, k + 1, false, neededByMs),
      );
    }
    return results;
  }

  /** Whether candidate `a` ranks before candidate `b` among the primaries (or among the rest). */
  #better(table: CapabilityTable, a: number, b: number): boolean {
    const cPartner = this.#cPartner;
    if (this.#qCapWindow !== null) {
      const cappedA = this.#capped(cPartner[a]!);
      const cappedB = this.#capped(cPartner[b]!);
      if (cappedA !== cappedB) return cappedA < cappedB;
    }
    const scoreA = this.#cFinal[a]!;
    const scoreB = this.#cFinal[b]!;
    if (scoreA !== scoreB) return scoreA > scoreB;
    return table.ids[this.#cRow[a]!]! < table.ids[this.#cRow[b]!]!;
  }

  /**
   * Scores every one of the first `count` candidates and returns the best `limit` in order,
   * primaries first; `sortAll` orders every candidate (for `explain`). The selection keeps a
   * heap of `limit` entries rather than sorting every candidate.
   */
  #rankAll(
    table: CapabilityTable,
    settings: MatchingSettings,
    scoring: Scoring,
    count: number,
    limit: number,
    sortAll: boolean,
    neededByMs: number,
  ): MatchResult[] {
    const cPartner = this.#cPartner;
    const final = this.#cFinal;
    const standing = table.standing;
    const boost = settings.newEntrantBoost;
    for (let i = 0; i < count; i++) {
      const score = scoring.score(i);
      final[i] = boost !== 0 && (standing[cPartner[i]!]! & BOOSTED) !== 0 ? score + boost : score;
    }
    const better = (a: number, b: number): boolean => this.#better(table, a, b);

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
    if (this.#capped(p) === 1) {
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

  /** Whether a partner is at or over the exposure cap in the query being answered (1) or not (0). */
  #capped(p: number): number {
    if (this.#qCapWindow === null) return 0;
    if (this.#pStamp[p] !== this.#stamp) {
      this.#pStamp[p] = this.#stamp;
      this.#capPartner(p, this.#qCapWindow);
    }
    return this.#pCapped[p]!;
  }

  /** Works out a partner's exposure standing: once per partner and query, through `#capped`. */
  #capPartner(p: number, window: ExposureWindow): void {
    this.#pCapped[p] = 0;
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
   * ending, a renewal starting), or +∞. A change of eligibility makes the table's packed
   * copies stale.
   */
  #workOutStanding(table: CapabilityTable, settings: MatchingSettings, p: number, nowMs: number): number {
    let until = Number.POSITIVE_INFINITY;
    let bits = 0;
    const rulesUntil = this.#rulesUntil[p]!;
    if (this.#engaged[p] === 1 && rulesUntil > nowMs) {
      until = rulesUntil;
      let certified = true;
      for (const number of table.requiredPrograms) {
        this.#validity(number, p, nowMs);
        if (!this.#validHolds) certified = false;
        until = Math.min(until, this.#validChangeMs);
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

  /**
   * Whether partner `p` holds the program valid at `nowMs` (into `#validHolds`), and when that
   * changes next (into `#validChangeMs`): the end of the run of certifications that covers
   * `nowMs` (one and its back-to-back or overlapping renewals), or the start of the next one.
   */
  #validity(program: number, p: number, nowMs: number): void {
    const head = this.#programs[program]!.heads.get(p) ?? -1;
    const from = this.#certificationFrom;
    const until = this.#certificationUntil;
    const next = this.#certificationNext;
    let end = nowMs;
    let holds = false;
    let nextStart = Number.POSITIVE_INFINITY;
    for (let k = head; k !== -1; k = next[k]!) {
      if (until[k]! <= from[k]!) continue;
      if (from[k]! <= nowMs && until[k]! > nowMs) {
        holds = true;
        if (until[k]! > end) end = until[k]!;
      } else if (from[k]! > nowMs && from[k]! < nextStart) {
        nextStart = from[k]!;
      }
    }
    if (holds) {
      // Extend the run by every certification that starts before it ends and lasts longer.
      for (let extended = true; extended; ) {
        extended = false;
        for (let k = head; k !== -1; k = next[k]!) {
          if (until[k]! > from[k]! && from[k]! <= end && until[k]! > end) {
            end = until[k]!;
            extended = true;
          }
        }
      }
    }
    this.#validHolds = holds;
    this.#validChangeMs = holds ? end : nextStart;
  }

  /** Every filter an offer of the bucket fails; the slow, complete twin of the loops in `query`. */
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
      .filter((number) => {
        this.#validity(number, p, nowMs);
        return !this.#validHolds;
      })
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
      const min = constraint.min ?? Number.NEGATIVE_INFINITY;
      const max = constraint.max ?? Number.POSITIVE_INFINITY;
      let allowed: Uint8Array | null = null;
      if (hasList && numbers.length === 0 && column.code && min === -Infinity && max === Infinity) {
        allowed = new Uint8Array(column.dictionary.size);
        for (const code of codes) allowed[code] = 1;
      }
      compiled.push({
        attribute,
        num: column.num,
        code: column.code,
        numbers: hasList ? Float64Array.from(numbers) : null,
        codes: hasList ? Int32Array.from(codes) : null,
        min,
        max,
        listed: hasList,
        allowed,
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
        bucket = { rows: new Int32Array(16), length: 0, packed: null };
        table.buckets.set(region, bucket);
      }
      if (bucket.length === bucket.rows.length) bucket.rows = resize(bucket.rows, bucket.rows.length * 2);
      bucket.rows[bucket.length++] = row;
      // The row enters the packed copy, if it is live, when `#patch` runs after its fields are set.
    }
  }

  /** Takes a row out of its buckets and their packed copies: linear searches, but only when an offer moves. */
  #unbucket(table: CapabilityTable, row: number): void {
    for (const region of this.#regionSets[table.regionSet[row]!]!) {
      const bucket = table.buckets.get(region);
      if (!bucket) continue;
      const at = bucket.rows.subarray(0, bucket.length).indexOf(row);
      if (at < 0) continue;
      bucket.rows[at] = bucket.rows[bucket.length - 1]!;
      bucket.length--;
      const packed = bucket.packed;
      if (packed) {
        const position = packed.find(row);
        if (position >= 0) packed.removeAt(position);
      }
    }
  }

  /**
   * Brings the packed copies of a row's buckets up to date after a change to the row (its
   * fields, status, partner or reservations): the row is written in place, added, or removed,
   * as it is now live or not. A copy already stale is left to be rebuilt.
   */
  #patch(table: CapabilityTable, row: number): void {
    if (!table.packing) return;
    let live: boolean | null = null;
    for (const region of this.#regionSets[table.regionSet[row]!]!) {
      const packed = table.buckets.get(region)?.packed;
      if (!packed || packed.epoch !== table.liveEpoch) continue;
      // The standing bytes are those the copy was built from: a change to them bumps the epoch.
      live ??= table.status[row] === ACTIVE && ((table.standing[table.partner[row]!] ?? 0) & ELIGIBLE) !== 0;
      const at = packed.find(row);
      if (live) this.#pack(table, packed, at >= 0 ? at : packed.append(), row);
      else if (at >= 0) packed.removeAt(at);
    }
  }

  /**
   * The packed copy of a bucket's live rows, built or rebuilt when missing or stale; null for a
   * bucket too small to keep one (a copy it had is dropped).
   */
  #packedRows(table: CapabilityTable, bucket: Bucket): PackedRows | null {
    if (bucket.length < this.#packedRowsMin) {
      bucket.packed = null;
      return null;
    }
    if (bucket.packed && bucket.packed.epoch === table.liveEpoch) return bucket.packed;
    const { rows } = bucket;
    const { status, partner, standing } = table;
    const { heads, next } = table.reserved;
    // Counted first, so that the copy takes only the room the live rows and their bookings need
    // (a booking pool's block is one entry more than the row's booked periods).
    let live = 0;
    let pool = 0;
    for (let i = 0; i < bucket.length; i++) {
      const row = rows[i]!;
      if (status[row] !== ACTIVE || (standing[partner[row]!]! & ELIGIBLE) === 0) continue;
      live++;
      for (let entry = heads[row]!; entry !== -1; entry = next[entry]!) pool++;
      if (heads[row] !== -1) pool++;
    }
    const packed = new PackedRows(Math.max(16, live + slack(live)), pool + slack(pool), table.liveEpoch);
    for (let i = 0; i < bucket.length; i++) {
      const row = rows[i]!;
      if (status[row] === ACTIVE && (standing[partner[row]!]! & ELIGIBLE) !== 0) {
        this.#pack(table, packed, packed.append(), row);
      }
    }
    bucket.packed = packed;
    table.packing = true;
    return packed;
  }

  /** Writes a row's fields into entry `at` of a packed copy. */
  #pack(table: CapabilityTable, packed: PackedRows, at: number, row: number): void {
    packed.row[at] = row;
    packed.partner[at] = table.partner[row]!;
    packed.price[at] = table.price[row]!;
    packed.currency[at] = table.currency[row]!;
    const filter = packed.filter;
    const base = at * FILTER_FIELDS;
    filter[base] = float32Below(table.minQuantity[row]!);
    filter[base + 1] = float32Above(table.maxQuantity[row]!);
    filter[base + 2] = float32Below(table.leadHours[row]!);
    const capacity = table.capacityPerPeriod[row]!;
    const reserved = table.reserved;
    const free = float32Below(table.leastFree(row));
    filter[base + 3] = free;
    let periods = 0;
    for (let entry = reserved.heads[row]!; entry !== -1; entry = reserved.next[entry]!) periods++;
    if (periods === 0 && free === capacity) {
      // The filter decides: the row has its whole capacity in every period.
      packed.booked[at] = -1;
      return;
    }
    const block = packed.block(at, periods);
    packed.bookDay[block] = (periods << 2) | table.period[row]!;
    packed.bookFree[block] = capacity;
    let k = block + 1;
    for (let entry = reserved.heads[row]!; entry !== -1; entry = reserved.next[entry]!) {
      packed.bookDay[k] = reserved.days[entry]!;
      packed.bookFree[k] = capacity - reserved.units[entry]!;
      k++;
    }
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
    this.#pStamp = resize(this.#pStamp, capacity);
    this.#pCapped = resize(this.#pCapped, capacity);
    this.#pShare = resize(this.#pShare, capacity);
    this.#pCount = resize(this.#pCount, capacity);
    this.#pTopCount = resize(this.#pTopCount, capacity, -1);
    this.#pTop = resize(this.#pTop, capacity * MAX_PER_PARTNER_MAX);
    this.#pKept = resize(this.#pKept, capacity);
    this.#seenPartners = resize(this.#seenPartners, capacity);
    this.#partnerCapacity = capacity;
  }

  #programNumber(key: string): number {
    let number = this.#programOf.get(key);
    if (number === undefined) {
      number = this.#programs.length;
      this.#programs.push({ heads: new Map() });
      this.#programKeys.push(key);
      this.#programOf.set(key, number);
    }
    return number;
  }

  #allocateCertification(): number {
    const reused = this.#freeCertifications.pop();
    if (reused !== undefined) return reused;
    const k = this.#certificationCount++;
    if (k === this.#certificationPartner.length) {
      const capacity = Math.max(INITIAL_CERTIFICATIONS, k * 2);
      this.#certificationPartner = resize(this.#certificationPartner, capacity);
      this.#certificationProgram = resize(this.#certificationProgram, capacity);
      this.#certificationFrom = resize(this.#certificationFrom, capacity);
      this.#certificationUntil = resize(this.#certificationUntil, capacity);
      this.#certificationNext = resize(this.#certificationNext, capacity);
    }
    return k;
  }

  /** Takes a certification out of its partner's list for its program. */
  #unlinkCertification(k: number): void {
    const p = this.#certificationPartner[k]!;
    const heads = this.#programs[this.#certificationProgram[k]!]!.heads;
    const next = this.#certificationNext;
    const head = heads.get(p) ?? -1;
    if (head === k) {
      if (next[k] === -1) heads.delete(p);
      else heads.set(p, next[k]!);
      return;
    }
    for (let at = head; at !== -1; at = next[at]!) {
      if (next[at] === k) {
        next[at] = next[k]!;
        return;
      }
    }
  }

  #ensureCandidates(count: number): void {
    if (count <= this.#candidateCapacity) return;
    const capacity = Math.max(count, this.#candidateCapacity * 2, 64);
    this.#cRow = new Int32Array(capacity);
    this.#cPartner = new Int32Array(capacity);
    this.#cPrice = new Float64Array(capacity);
    this.#cCurrency = new Uint16Array(capacity);
    this.#cLead = new Float64Array(capacity);
    this.#cFinal = new Float64Array(capacity);
    this.#cBound = new Float64Array(capacity);
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
  const allowed = constraint.allowed;
  // A code absent (-1) or beyond the list reads as undefined: not allowed.
  if (allowed !== null) return allowed[constraint.code![row]!] === 1;
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

type TypedArray = Int32Array | Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array;

/** Room left for growth when columns are compacted: an eighth, so a few new rows do not copy them all. */
function slack(length: number): number {
  return length >> 3;
}

/** A copy of `array` with room for `length` entries; new entries hold `fill`. */
function resize<T extends TypedArray>(array: T, length: number, fill = 0): T {
  const Constructor = array.constructor as new (length: number) => T;
  const resized = new Constructor(length);
  resized.set(array.subarray(0, Math.min(array.length, length)) as never);
  if (fill !== 0 && length > array.length) resized.fill(fill as never, array.length);
  return resized;
}
