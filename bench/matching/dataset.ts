import { Random, Zipf } from '../lib/random.js';

/**
 * A seeded, deterministic marketplace for the matching benchmark: partners with standing and
 * certifications, capabilities with typed attribute schemas, and offers skewed (Zipf) over
 * capabilities and regions so that one capability+region is a hot spot and most pairs are a
 * long tail. Offers are kept in columns (typed arrays) and built as objects only when asked,
 * one at a time: the generator must not hold a million objects (or their id strings) while
 * the index under test is measured, or the index would share them and look smaller.
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** The benchmark's "now": fixed, so that deadlines, expiries and capacity periods repeat. */
export const BENCH_NOW = new Date('2026-06-01T09:00:00Z');

export interface DatasetOptions {
  readonly offers: number;
  readonly partners: number;
  readonly capabilities: number;
  readonly regions: number;
  readonly seed: number;
}

export const DEFAULT_DATASET: DatasetOptions = {
  offers: 1_000_000,
  partners: 10_000,
  capabilities: 200,
  regions: 50,
  seed: 20_260_601,
};

/** The floor for the hot spot at a million offers, scaled for smaller runs. */
export const HOT_SPOT_OFFERS_PER_MILLION_MIN = 50_000;

/*
 * Skew. With exponent 1 over 200 capabilities the first holds 1/H(200) ≈ 17 % of offers; an
 * offer serves 1–3 regions drawn by a Zipf of exponent 1 over 50, so ≈ 38 % of offers serve
 * the first region. The hot spot is then ≈ 6.5 % of all offers (≈ 65,000 of a million).
 */
const CAPABILITY_EXPONENT = 1;
const REGION_EXPONENT = 1;
/** Partners are skewed too, more gently: the largest of 10,000 holds ≈ 0.5 % of offers. */
const PARTNER_EXPONENT = 0.5;
const REGIONS_PER_OFFER_MAX = 3;
const ATTRIBUTES_PER_CAPABILITY_MAX = 4;
const PROGRAMS = 20;
const CURRENCY = 'EUR';

export type CapacityPeriod = 'day' | 'week' | 'month';
export const CAPACITY_PERIODS: readonly CapacityPeriod[] = ['day', 'week', 'month'];
export type OfferStatus = 'draft' | 'active' | 'paused' | 'non_compliant';
export const OFFER_STATUSES: readonly OfferStatus[] = ['active', 'paused', 'draft', 'non_compliant'];
export type PartnerState = 'active' | 'probation' | 'suspended' | 'offboarded';
const PARTNER_STATES: readonly PartnerState[] = ['active', 'probation', 'suspended', 'offboarded'];

export type AttributeDefinition =
  | { readonly kind: 'integer'; readonly name: string; readonly min: number; readonly max: number }
  | { readonly kind: 'number'; readonly name: string; readonly min: number; readonly max: number }
  | { readonly kind: 'enum'; readonly name: string; readonly values: readonly string[] }
  | { readonly kind: 'boolean'; readonly name: string };

export interface CapabilityDefinition {
  readonly key: string;
  readonly name: string;
  readonly unit: string;
  readonly attributes: readonly AttributeDefinition[];
  readonly attributeSchema: Record<string, unknown>;
  readonly requiredCertifications: readonly string[];
  readonly maxLeadTimeHours: number | null;
}

/** A constraint on one attribute, as the matching API takes it. */
export interface AttributeConstraint {
  readonly eq?: string | number | boolean;
  readonly in?: readonly (string | number)[];
  readonly min?: number;
  readonly max?: number;
}

export type QueryMix = 'hot' | 'hot-open' | 'tail';
export const QUERY_MIXES: readonly QueryMix[] = ['hot', 'hot-open', 'tail'];

/** One top-10 query, in the terms of the matching API. */
export interface BenchQuery {
  readonly mix: QueryMix;
  readonly capability: string;
  readonly region: string;
  readonly quantity: number;
  readonly neededBy: Date;
  readonly constraints: Readonly<Record<string, AttributeConstraint>>;
  readonly limit: number;
}

/** An offer in the shape of the catalog's `Offer`. */
export interface GeneratedOffer {
  readonly id: string;
  readonly partnerId: string;
  readonly capabilityKey: string;
  readonly capabilityVersion: number;
  readonly externalRef: string;
  readonly attributes: Record<string, string | number | boolean>;
  readonly unitPrice: { readonly amountMinor: bigint; readonly currency: string };
  readonly minQuantity: bigint;
  readonly maxQuantity: bigint;
  readonly leadTimeHours: number;
  readonly regions: string[];
  readonly capacityPerPeriod: bigint;
  readonly capacityPeriod: CapacityPeriod;
  readonly status: OfferStatus;
  readonly complianceErrors: { path: string; rule: string; message: string }[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface GeneratedPartner {
  readonly id: string;
  readonly state: PartnerState;
  /** Whether it accepted the current rules of engagement; without it an engaged partner's grace has lapsed. */
  readonly rulesAccepted: boolean;
  readonly canTakeWork: boolean;
  readonly activatedAt: Date;
  readonly regions: string[];
}

export interface GeneratedCertification {
  readonly partnerIndex: number;
  readonly programKey: string;
  readonly validFrom: Date;
  readonly validUntil: Date;
}

/** Capacity already reserved in one period of one offer. */
export interface GeneratedUsage {
  readonly offerIndex: number;
  readonly periodStart: Date;
  readonly reserved: bigint;
}

// biome-ignore format: a list of codes reads better packed
const REGION_CODES = [
  'de', 'fr', 'gb', 'it', 'es', 'nl', 'be', 'pl', 'se', 'at', 'ch', 'dk', 'fi', 'no', 'ie', 'pt', 'cz',
  'hu', 'ro', 'gr', 'bg', 'hr', 'sk', 'si', 'lt', 'lv', 'ee', 'lu', 'mt', 'cy', 'is', 'us', 'ca', 'mx',
  'br', 'ar', 'cl', 'co', 'pe', 'jp', 'kr', 'cn', 'in', 'sg', 'my', 'th', 'vn', 'id', 'ph', 'au',
];

// biome-ignore format: a list of words reads better packed
const CAPABILITY_WORDS = [
  'dyeing', 'sewing', 'cutting', 'printing', 'embroidery', 'knitting', 'weaving', 'finishing',
  'inspection', 'packing', 'last-mile-delivery', 'freight', 'warehousing', 'hotel-night', 'transfer',
  'guided-tour', 'catering', 'cleaning', 'installation', 'repair', 'translation', 'photography',
  'assembly', 'welding', 'machining', 'moulding', 'coating', 'labelling', 'testing', 'design',
];

const UNITS = ['kg', 'piece', 'metre', 'delivery', 'night', 'hour', 'batch', 'pallet'];
// biome-ignore format: a list of words reads better packed
const ATTRIBUTE_WORDS = [
  'colour', 'fabric', 'weight-g', 'width-cm', 'organic', 'finish', 'grade', 'size', 'vehicle',
  'temperature', 'language', 'stars', 'seats', 'thickness-mm', 'material', 'express', 'tolerance-um',
  'certified-origin', 'volume-l', 'shade',
];
// biome-ignore format: a list of words reads better packed
const ENUM_WORDS = [
  'red', 'blue', 'green', 'black', 'white', 'cotton', 'wool', 'silk', 'linen', 'matte', 'gloss', 'a',
  'b', 'c', 'small', 'medium', 'large', 'van', 'bike', 'truck', 'english', 'german', 'french',
];

/** Start (UTC) of the capacity period containing `atMs`: day 00:00, week Monday 00:00, month the 1st. */
export function periodStartMs(period: CapacityPeriod, atMs: number): number {
  const at = new Date(atMs);
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  if (period === 'day') return day;
  if (period === 'week') return day - ((at.getUTCDay() + 6) % 7) * DAY_MS;
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
}

function nextPeriodStartMs(period: CapacityPeriod, startMs: number): number {
  if (period === 'day') return startMs + DAY_MS;
  if (period === 'week') return startMs + 7 * DAY_MS;
  const at = new Date(startMs);
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1);
}

const BASE32 = '0123456789abcdefghjkmnpqrstvwxyz';
const BASE32_CODES = Array.from(BASE32, (char) => char.charCodeAt(0));

/**
 * Deterministic, well-formed TypeIDs: a UUIDv7 whose time and randomness come from the seed,
 * encoded as TypeID's 26 characters of Crockford base32. The string is built from character
 * codes in one piece, like a string read from the database: a string glued from parts (as
 * `prefix + '_' + suffix` makes) costs more memory and would make the index look bigger.
 */
function typeId(prefix: string, seed: number, index: number, baseMs: number): string {
  const bytes = new Uint8Array(16);
  const ms = baseMs + index;
  const high = Math.floor(ms / 2 ** 16);
  bytes[0] = (high >>> 24) & 0xff;
  bytes[1] = (high >>> 16) & 0xff;
  bytes[2] = (high >>> 8) & 0xff;
  bytes[3] = high & 0xff;
  bytes[4] = (ms >>> 8) & 0xff;
  bytes[5] = ms & 0xff;
  const random = new Random((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  for (let i = 6; i < 16; i++) bytes[i] = random.int(0, 255);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f); // version 7
  bytes[8] = 0x80 | (bytes[8]! & 0x3f); // RFC 4122 variant
  const codes: number[] = [];
  for (const char of prefix) codes.push(char.charCodeAt(0));
  codes.push(0x5f); // '_'
  // 130 bits in 26 groups of five: two leading zero bits, then the 128 bits of the UUID.
  for (let group = 0; group < 26; group++) {
    let value = 0;
    for (let bit = group * 5 - 2; bit < group * 5 + 3; bit++) {
      const set = bit >= 0 && (bytes[bit >>> 3]! >>> (7 - (bit & 7))) & 1;
      value = (value << 1) | (set ? 1 : 0);
    }
    codes.push(BASE32_CODES[value]!);
  }
  return String.fromCharCode(...codes);
}

const ID_BASE_MS = Date.UTC(2025, 0, 1);

/** The generated marketplace. Columns are indexed by offer (or partner) number. */
export class Dataset {
  readonly options: DatasetOptions;
  readonly now: Date;
  readonly regionCodes: readonly string[];
  readonly programKeys: readonly string[];
  readonly capabilities: readonly CapabilityDefinition[];
  readonly partners: readonly GeneratedPartner[];
  readonly certifications: readonly GeneratedCertification[];

  // Offer columns.
  readonly #partner: Uint32Array;
  readonly #capability: Uint16Array;
  /** Up to three region numbers per offer; 255 marks an unused place. */
  readonly #regions: Uint8Array;
  readonly #status: Uint8Array;
  readonly #priceMinor: Uint32Array;
  readonly #minQuantity: Uint32Array;
  readonly #maxQuantity: Uint32Array;
  readonly #leadTimeHours: Uint16Array;
  readonly #capacity: Uint32Array;
  readonly #period: Uint8Array;
  /** Attribute values per offer, in the order of its capability's attributes (enum: value number). */
  readonly #attributes: Float64Array;

  // Capacity usage rows.
  readonly #usageOffer: Uint32Array;
  readonly #usagePeriodStartMs: Float64Array;
  readonly #usageReserved: Uint32Array;
  readonly usageCount: number;

  readonly #seed: number;

  constructor(options: DatasetOptions, now: Date = BENCH_NOW) {
    this.options = options;
    this.now = now;
    this.#seed = options.seed;
    const random = new Random(options.seed);
    if (options.regions > REGION_CODES.length) throw new Error(`At most ${REGION_CODES.length} regions`);
    this.regionCodes = REGION_CODES.slice(0, options.regions);
    this.programKeys = Array.from({ length: PROGRAMS }, (_, i) => `cert-${String(i + 1).padStart(2, '0')}`);
    this.capabilities = Array.from({ length: options.capabilities }, (_, c) =>
      this.#defineCapability(random, c),
    );
    const partners = this.#generatePartners(random);
    this.partners = partners.partners;
    this.certifications = partners.certifications;

    const n = options.offers;
    this.#partner = new Uint32Array(n);
    this.#capability = new Uint16Array(n);
    this.#regions = new Uint8Array(n * REGIONS_PER_OFFER_MAX).fill(255);
    this.#status = new Uint8Array(n);
    this.#priceMinor = new Uint32Array(n);
    this.#minQuantity = new Uint32Array(n);
    this.#maxQuantity = new Uint32Array(n);
    this.#leadTimeHours = new Uint16Array(n);
    this.#capacity = new Uint32Array(n);
    this.#period = new Uint8Array(n);
    this.#attributes = new Float64Array(n * ATTRIBUTES_PER_CAPABILITY_MAX);

    const partnerZipf = new Zipf(options.partners, PARTNER_EXPONENT);
    const capabilityZipf = new Zipf(options.capabilities, CAPABILITY_EXPONENT);
    const regionZipf = new Zipf(options.regions, REGION_EXPONENT);
    const basePrice = this.capabilities.map(() => Math.max(100, Math.round(random.logNormal(2_000, 1))));
    const baseLead = this.capabilities.map(() => random.int(24, 240));
    const drawn: number[] = [];
    const usage: { offer: number; startMs: number; reserved: number }[] = [];
    for (let i = 0; i < n; i++) {
      const c = capabilityZipf.sample(random);
      const capability = this.capabilities[c]!;
      this.#partner[i] = partnerZipf.sample(random);
      this.#capability[i] = c;
      regionZipf.sampleDistinct(random, random.int(1, REGIONS_PER_OFFER_MAX), drawn);
      for (let r = 0; r < drawn.length; r++) this.#regions[i * REGIONS_PER_OFFER_MAX + r] = drawn[r]!;
      const roll = random.next();
      this.#status[i] = roll < 0.85 ? 0 : roll < 0.9 ? 1 : roll < 0.95 ? 2 : 3;
      this.#priceMinor[i] = Math.max(1, Math.round(basePrice[c]! * random.logNormal(1, 0.3)));
      const minQuantity = random.pick([1, 1, 1, 5, 10, 20]);
      this.#minQuantity[i] = minQuantity;
      this.#maxQuantity[i] = minQuantity * random.pick([10, 50, 100, 500, 1_000]);
      const lead = Math.round(baseLead[c]! * random.logNormal(1, 0.5));
      this.#leadTimeHours[i] = Math.min(capability.maxLeadTimeHours ?? 1_440, Math.max(4, lead));
      const periodRoll = random.next();
      const period = periodRoll < 0.25 ? 0 : periodRoll < 0.85 ? 1 : 2;
      this.#period[i] = period;
      const scale = period === 0 ? 0.2 : period === 1 ? 1 : 4;
      const capacity = Math.max(1, Math.round(random.logNormal(200, 1) * scale));
      this.#capacity[i] = capacity;
      for (let a = 0; a < capability.attributes.length; a++) {
        this.#attributes[i * ATTRIBUTES_PER_CAPABILITY_MAX + a] = attributeValue(
          random,
          capability.attributes[a]!,
        );
      }
      // A third of the offers already have work booked in some of the coming periods.
      if (random.chance(0.3)) {
        const periodName = CAPACITY_PERIODS[period]!;
        let startMs = periodStartMs(periodName, now.getTime());
        const booked = new Set<number>();
        for (let k = random.int(1, 3); k > 0; k--) booked.add(random.int(0, 8));
        for (let step = 0; step <= 8; step++) {
          if (booked.has(step)) {
            const full = random.chance(0.15);
            const reserved = full
              ? capacity
              : Math.max(1, Math.floor(capacity * (0.2 + 0.75 * random.next())));
            usage.push({ offer: i, startMs, reserved });
          }
          startMs = nextPeriodStartMs(periodName, startMs);
        }
      }
    }
    this.usageCount = usage.length;
    this.#usageOffer = new Uint32Array(usage.length);
    this.#usagePeriodStartMs = new Float64Array(usage.length);
    this.#usageReserved = new Uint32Array(usage.length);
    usage.forEach((row, u) => {
      this.#usageOffer[u] = row.offer;
      this.#usagePeriodStartMs[u] = row.startMs;
      this.#usageReserved[u] = row.reserved;
    });
  }

  get offerCount(): number {
    return this.options.offers;
  }

  offerId(i: number): string {
    return typeId('off', this.#seed, i, ID_BASE_MS);
  }

  partnerId(p: number): string {
    return typeId('ptn', this.#seed + 1, p, ID_BASE_MS - 1_000_000);
  }

  certificationId(k: number): string {
    return typeId('crt', this.#seed + 2, k, ID_BASE_MS - 2_000_000);
  }

  reservationId(u: number): string {
    return typeId('rsv', this.#seed + 3, u, ID_BASE_MS + 2_000_000);
  }

  capabilityOf(i: number): number {
    return this.#capability[i]!;
  }

  partnerOf(i: number): number {
    return this.#partner[i]!;
  }

  /** The offer as the catalog would return it: a new object (with new strings) on every call. */
  offer(i: number): GeneratedOffer {
    const c = this.#capability[i]!;
    const capability = this.capabilities[c]!;
    const attributes: Record<string, string | number | boolean> = {};
    for (let a = 0; a < capability.attributes.length; a++) {
      const definition = capability.attributes[a]!;
      const value = this.#attributes[i * ATTRIBUTES_PER_CAPABILITY_MAX + a]!;
      attributes[definition.name] =
        definition.kind === 'enum'
          ? definition.values[value]!
          : definition.kind === 'boolean'
            ? value === 1
            : value;
    }
    const regions: string[] = [];
    for (let r = 0; r < REGIONS_PER_OFFER_MAX; r++) {
      const region = this.#regions[i * REGIONS_PER_OFFER_MAX + r]!;
      if (region !== 255) regions.push(this.regionCodes[region]!);
    }
    const status = OFFER_STATUSES[this.#status[i]!]!;
    const createdAt = new Date(ID_BASE_MS + i);
    return {
      id: this.offerId(i),
      partnerId: this.partnerId(this.#partner[i]!),
      capabilityKey: capability.key,
      capabilityVersion: 1,
      externalRef: `bench-${i}`,
      attributes,
      unitPrice: { amountMinor: BigInt(this.#priceMinor[i]!), currency: CURRENCY },
      minQuantity: BigInt(this.#minQuantity[i]!),
      maxQuantity: BigInt(this.#maxQuantity[i]!),
      leadTimeHours: this.#leadTimeHours[i]!,
      regions,
      capacityPerPeriod: BigInt(this.#capacity[i]!),
      capacityPeriod: CAPACITY_PERIODS[this.#period[i]!]!,
      status,
      complianceErrors:
        status === 'non_compliant'
          ? [{ path: `/${capability.attributes[0]!.name}`, rule: 'enum', message: 'is no longer allowed' }]
          : [],
      createdAt,
      updatedAt: createdAt,
    };
  }

  usage(u: number): GeneratedUsage {
    return {
      offerIndex: this.#usageOffer[u]!,
      periodStart: new Date(this.#usagePeriodStartMs[u]!),
      reserved: BigInt(this.#usageReserved[u]!),
    };
  }

  /** The hot spot's size, how many capability+region pairs have offers and their median, and booked periods. */
  describe(): {
    hotSpotOffers: number;
    pairsWithOffers: number;
    medianPairOffers: number;
    usageRows: number;
  } {
    const counts = new Uint32Array(this.options.capabilities * this.options.regions);
    for (let i = 0; i < this.options.offers; i++) {
      for (let k = 0; k < REGIONS_PER_OFFER_MAX; k++) {
        const region = this.#regions[i * REGIONS_PER_OFFER_MAX + k]!;
        if (region !== 255) counts[this.#capability[i]! * this.options.regions + region]!++;
      }
    }
    const nonEmpty = [...counts].filter((count) => count > 0).sort((a, b) => a - b);
    return {
      hotSpotOffers: counts[0]!,
      pairsWithOffers: nonEmpty.length,
      medianPairOffers: nonEmpty[Math.floor(nonEmpty.length / 2)] ?? 0,
      usageRows: this.usageCount,
    };
  }

  /**
   * A reproducible query mix: `hot` (the hot capability+region with 0–2 attribute
   * constraints), `hot-open` (the hot spot with no constraint: every offer there is a
   * candidate, the most work a query can be) and `tail` (capabilities and regions from the
   * long tail, where only a handful of offers serve).
   */
  queries(mix: QueryMix, count: number, seed: number): BenchQuery[] {
    const random = new Random(seed ^ ((QUERY_MIXES.indexOf(mix) + 1) * 0x51ed27));
    const tailCapabilityFrom = Math.floor(this.options.capabilities / 4);
    const tailRegionFrom = Math.floor(this.options.regions / 5);
    return Array.from({ length: count }, () => {
      const c = mix === 'tail' ? random.int(tailCapabilityFrom, this.options.capabilities - 1) : 0;
      const r = mix === 'tail' ? random.int(tailRegionFrom, this.options.regions - 1) : 0;
      const capability = this.capabilities[c]!;
      const constraintCount = mix === 'hot-open' ? 0 : random.pick([0, 1, 1, 2]);
      const constraints: Record<string, AttributeConstraint> = {};
      for (const a of pickDistinct(random, capability.attributes.length, constraintCount)) {
        const definition = capability.attributes[a]!;
        constraints[definition.name] = constraintOn(random, definition);
      }
      const neededByMs = this.now.getTime() + random.int(3 * 24, 45 * 24) * HOUR_MS;
      return {
        mix,
        capability: capability.key,
        region: this.regionCodes[r]!,
        quantity: random.pick([1, 5, 10, 25, 50, 100]),
        neededBy: new Date(neededByMs),
        constraints,
        limit: 10,
      };
    });
  }

  #defineCapability(random: Random, c: number): CapabilityDefinition {
    const word = CAPABILITY_WORDS[c % CAPABILITY_WORDS.length]!;
    const key = `${word}-${Math.floor(c / CAPABILITY_WORDS.length) + 1}`;
    const names = pickDistinct(
      random,
      ATTRIBUTE_WORDS.length,
      random.int(2, ATTRIBUTES_PER_CAPABILITY_MAX),
    ).map((w) => ATTRIBUTE_WORDS[w]!.replaceAll('-', '_'));
    const attributes = names.map((name, a): AttributeDefinition => {
      const kind = a === 0 ? 'enum' : random.pick(['integer', 'number', 'enum', 'boolean'] as const);
      if (kind === 'enum') {
        const values = pickDistinct(random, ENUM_WORDS.length, random.int(3, 8)).map((w) => ENUM_WORDS[w]!);
        return { kind, name, values };
      }
      if (kind === 'boolean') return { kind, name };
      const min = random.int(0, 100);
      return { kind, name, min, max: min + random.int(10, 5_000) };
    });
    const properties: Record<string, unknown> = {};
    for (const attribute of attributes) {
      properties[attribute.name] =
        attribute.kind === 'enum'
          ? { type: 'string', enum: [...attribute.values] }
          : attribute.kind === 'boolean'
            ? { type: 'boolean' }
            : { type: attribute.kind, minimum: attribute.min, maximum: attribute.max };
    }
    // The hot capability needs a certification, so that filter is exercised where it costs most.
    const requirementCount = c === 0 ? 1 : random.pick([0, 0, 0, 1, 1, 2]);
    const requiredCertifications = pickDistinct(random, PROGRAMS, requirementCount).map(
      (p) => `cert-${String(p + 1).padStart(2, '0')}`,
    );
    return {
      key,
      name: `${word.replaceAll('-', ' ')} ${Math.floor(c / CAPABILITY_WORDS.length) + 1}`,
      unit: random.pick(UNITS),
      attributes,
      attributeSchema: {
        type: 'object',
        properties,
        required: attributes.map((attribute) => attribute.name),
        additionalProperties: false,
      },
      requiredCertifications,
      maxLeadTimeHours: random.chance(0.3) ? 1_440 : null,
    };
  }

  #generatePartners(random: Random): {
    partners: GeneratedPartner[];
    certifications: GeneratedCertification[];
  } {
    const nowMs = this.now.getTime();
    const regionZipf = new Zipf(this.options.regions, REGION_EXPONENT);
    const drawn: number[] = [];
    const partners: GeneratedPartner[] = [];
    const certifications: GeneratedCertification[] = [];
    for (let p = 0; p < this.options.partners; p++) {
      const roll = random.next();
      const state = PARTNER_STATES[roll < 0.88 ? 0 : roll < 0.92 ? 1 : roll < 0.98 ? 2 : 3]!;
      const rulesAccepted = random.chance(0.95);
      // A few partners are new entrants, activated in the last two weeks.
      const activatedDaysAgo = random.chance(0.03) ? random.int(0, 13) : random.int(14, 730);
      regionZipf.sampleDistinct(random, random.int(1, 3), drawn);
      partners.push({
        id: this.partnerId(p),
        state,
        rulesAccepted,
        canTakeWork: (state === 'active' || state === 'probation') && rulesAccepted,
        activatedAt: new Date(nowMs - activatedDaysAgo * DAY_MS - random.int(0, 23) * HOUR_MS),
        regions: drawn.map((r) => this.regionCodes[r]!),
      });
      for (let program = 0; program < PROGRAMS; program++) {
        if (!random.chance(0.75)) continue;
        // About one in seven has expired: valid until somewhere from 60 days ago to a year ahead.
        const validUntilMs = nowMs + random.int(-60, 365) * DAY_MS;
        certifications.push({
          partnerIndex: p,
          programKey: this.programKeys[program]!,
          validFrom: new Date(validUntilMs - 365 * DAY_MS),
          validUntil: new Date(validUntilMs),
        });
      }
    }
    return { partners, certifications };
  }
}

function attributeValue(random: Random, definition: AttributeDefinition): number {
  switch (definition.kind) {
    case 'enum': {
      // Some values are more common than others.
      const zipf = Math.floor(definition.values.length * random.next() ** 1.6);
      return Math.min(definition.values.length - 1, zipf);
    }
    case 'boolean':
      return random.chance(0.5) ? 1 : 0;
    case 'integer':
      return random.int(definition.min, definition.max);
    case 'number':
      return Math.round((definition.min + random.next() * (definition.max - definition.min)) * 10) / 10;
  }
}

/** A constraint that keeps roughly a third to three quarters of the offers. */
function constraintOn(random: Random, definition: AttributeDefinition): AttributeConstraint {
  switch (definition.kind) {
    case 'enum': {
      const count = Math.min(definition.values.length - 1, random.int(1, 3));
      const values = pickDistinct(random, definition.values.length, count).map((v) => definition.values[v]!);
      return values.length === 1 ? { eq: values[0]! } : { in: values };
    }
    case 'boolean':
      return { eq: random.chance(0.5) };
    case 'integer':
    case 'number': {
      const span = definition.max - definition.min;
      const cut = definition.min + Math.round(span * (0.25 + 0.5 * random.next()));
      if (random.chance(0.4)) return { min: cut };
      if (random.chance(0.67)) return { max: cut };
      return { min: definition.min + Math.round(span * 0.1), max: definition.max - Math.round(span * 0.1) };
    }
  }
}

function pickDistinct(random: Random, n: number, count: number): number[] {
  const picked: number[] = [];
  while (picked.length < Math.min(n, count)) {
    const value = random.int(0, n - 1);
    if (!picked.includes(value)) picked.push(value);
  }
  return picked;
}
