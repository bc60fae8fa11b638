import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AttributeConstraint,
  type IndexedOffer,
  type MatchQuery,
  OfferIndex,
  PACKED_ROWS_MIN,
  type PartnerStanding,
  RESERVATION_HISTORY_DAYS,
  type Scalar,
} from './offer-index.js';
import { type CapacityPeriod, DAY_MS, HOUR_MS } from './periods.js';
import type { PartnerSignals } from './ranking.js';
import { DEFAULT_SETTINGS, type MatchingSettings } from './settings.js';

/*
 * The index against a naive matcher over plain objects: for random offers, partners,
 * certifications, reservations, allocations, settings and queries, both must return the same
 * offers in the same order with the same scores. The naive matcher is written from the rules
 * (filter everything, score everything, sort everything) and shares no code with the index
 * but the shape of the data, so a shortcut of the index (buckets, typed arrays, dictionary
 * codes, per-partner caches, partial selection, reused rows) that changes an answer shows up.
 */

const NOW = Date.UTC(2026, 5, 3, 9);
const CAPABILITIES = ['dyeing', 'sewing'];
const REGIONS = ['eu-west', 'eu-east', 'us-east'];
const PARTNERS = ['ptn_a', 'ptn_b', 'ptn_c', 'ptn_d', 'ptn_e'];
const PROGRAMS = ['oeko-tex', 'iso-9001'];
const COLORS = ['red', 'blue', 'green'];
const CUSTOMERS = ['cus_1', 'cus_2'];

interface Grant {
  readonly id: string;
  readonly partnerId: string;
  readonly programKey: string;
  readonly validFromMs: number;
  readonly validUntilMs: number;
}

interface Allocation {
  readonly id: string;
  readonly capability: string;
  readonly region: string;
  readonly partnerId: string;
  readonly atMs: number;
  readonly reservationId?: string;
}

interface World {
  /** Offers as first written, then as finally written (some moved, some removed). */
  readonly first: IndexedOffer[];
  readonly final: IndexedOffer[];
  readonly removed: Set<string>;
  readonly partners: PartnerStanding[];
  readonly required: Record<string, string[]>;
  readonly grants: Grant[];
  readonly revoked: Set<string>;
  readonly reserved: { offerId: string; periodStart: number; reserved: number }[];
  readonly allocations: Allocation[];
  readonly settings: Record<string, MatchingSettings>;
  readonly quality: Record<string, number>;
  readonly affinity: Record<string, Record<string, number>>;
  /** The index's threshold for packed copies: low values make every bucket keep one. */
  readonly packedRowsMin: number;
}

const scalar = fc.oneof(fc.constantFrom(...COLORS), fc.integer({ min: 0, max: 5 }), fc.boolean());

const offerArb = (n: number) =>
  fc.record({
    id: fc.constant(`off_${String(n).padStart(3, '0')}`),
    partnerId: fc.constantFrom(...PARTNERS, 'ptn_unknown'),
    capability: fc.constantFrom(...CAPABILITIES),
    status: fc.constantFrom('active', 'active', 'active', 'draft', 'paused', 'non_compliant' as const),
    unitPriceMinor: fc.integer({ min: 100, max: 110 }),
    currency: fc.constantFrom('EUR', 'EUR', 'JPY'),
    minQuantity: fc.integer({ min: 1, max: 5 }),
    maxQuantity: fc.integer({ min: 5, max: 30 }),
    leadTimeHours: fc.integer({ min: 0, max: 8 }).map((n) => n * 12),
    regions: fc.uniqueArray(fc.constantFrom(...REGIONS), { minLength: 1, maxLength: 3 }),
    capacityPerPeriod: fc.integer({ min: 1, max: 40 }),
    capacityPeriod: fc.constantFrom<CapacityPeriod>('day', 'week', 'month'),
    attributes: fc.record(
      {
        color: fc.constantFrom(...COLORS),
        weight: fc.integer({ min: 0, max: 5 }),
        organic: fc.boolean(),
        mixed: scalar,
      },
      { requiredKeys: [] },
    ),
  }) as fc.Arbitrary<IndexedOffer>;

const settingsArb: fc.Arbitrary<MatchingSettings> = fc.record({
  weights: fc.record({
    price: fc.constantFrom(0, 0.35, 1),
    quality: fc.constantFrom(0, 0.2),
    reliability: fc.constantFrom(0, 0.2),
    leadTime: fc.constantFrom(0, 0.15, 1),
    affinity: fc.constantFrom(0, 0.1, 0.5),
  }),
  exposureCapShare: fc.constantFrom(0.2, 0.34, 0.5, 1),
  exposureWindowDays: fc.integer({ min: 1, max: 20 }),
  exposureMinAllocations: fc.integer({ min: 0, max: 4 }),
  newEntrantBoost: fc.constantFrom(0, 0.05, 0.3),
  newEntrantDays: fc.integer({ min: 1, max: 30 }),
  maxPerPartner: fc.integer({ min: 1, max: 3 }),
});

/** Every bucket packed, small ones not, or none (the default threshold is far above these worlds). */
const packedRowsMinArb = fc.constantFrom(0, 3, PACKED_ROWS_MIN);

const worldArb: fc.Arbitrary<World> = fc
  .integer({ min: 0, max: 40 })
  .chain((count) =>
    fc.record({
      first: fc.tuple(...Array.from({ length: count }, (_, n) => offerArb(n))),
      final: fc.tuple(...Array.from({ length: count }, (_, n) => offerArb(n))),
      removed: fc.subarray(Array.from({ length: count }, (_, n) => `off_${String(n).padStart(3, '0')}`)),
      partners: fc.tuple(
        ...PARTNERS.map((partnerId) =>
          fc.record({
            partnerId: fc.constant(partnerId),
            engaged: fc.constantFrom(true, true, true, false),
            rulesValidUntilMs: fc.constantFrom(
              Number.POSITIVE_INFINITY,
              Number.POSITIVE_INFINITY,
              Number.NEGATIVE_INFINITY,
              NOW + DAY_MS,
              NOW - DAY_MS,
            ),
            activatedAtMs: fc.option(
              fc.integer({ min: -40, max: 1 }).map((days) => NOW + days * DAY_MS),
              {
                nil: null,
              },
            ),
          }),
        ),
      ),
      required: fc.record({
        dyeing: fc.subarray(PROGRAMS),
        sewing: fc.subarray(PROGRAMS),
      }),
      grants: fc.array(
        fc.record({
          partnerId: fc.constantFrom(...PARTNERS),
          programKey: fc.constantFrom(...PROGRAMS),
          chain: fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 3 }),
          startDays: fc.integer({ min: -30, max: 2 }),
        }),
        { maxLength: 8 },
      ),
      revokedPicks: fc.array(fc.nat(), { maxLength: 3 }),
      reserved: fc.array(
        fc.record({
          offer: fc.nat({ max: Math.max(count - 1, 0) }),
          dayOffset: fc.integer({ min: -2, max: 10 }),
          reserved: fc.integer({ min: 0, max: 40 }),
        }),
        { maxLength: 15 },
      ),
      allocations: fc.array(
        fc.record({
          capability: fc.constantFrom(...CAPABILITIES),
          region: fc.constantFrom(...REGIONS),
          partnerId: fc.constantFrom(...PARTNERS),
          daysAgo: fc.integer({ min: 0, max: 25 }),
        }),
        { maxLength: 20 },
      ),
      settings: fc.record({ dyeing: settingsArb, sewing: settingsArb }),
      packedRowsMin: packedRowsMinArb,
      quality: fc.record(Object.fromEntries(PARTNERS.map((id) => [id, fc.constantFrom(0, 0.5, 0.8, 1)]))),
      affinity: fc.record(
        Object.fromEntries(
          CUSTOMERS.map((customer) => [
            customer,
            fc.record(Object.fromEntries(PARTNERS.map((id) => [id, fc.constantFrom(0, 0, 0.7, 1)]))),
          ]),
        ),
      ),
    }),
  )
  .map((raw) => {
    // Certifications come as chains of back-to-back grants (a certification and its renewals).
    const grants: Grant[] = [];
    raw.grants.forEach((chain, c) => {
      let from = NOW + chain.startDays * DAY_MS;
      chain.chain.forEach((days, k) => {
        grants.push({
          id: `crt_${c}_${k}`,
          partnerId: chain.partnerId,
          programKey: chain.programKey,
          validFromMs: from,
          validUntilMs: from + days * DAY_MS,
        });
        from += days * DAY_MS;
      });
    });
    const revoked = new Set(
      raw.revokedPicks.filter(() => grants.length > 0).map((pick) => grants[pick % grants.length]!.id),
    );
    const finalById = new Map(raw.final.map((offer) => [offer.id, offer]));
    return {
      first: raw.first,
      final: raw.final,
      removed: new Set(raw.removed),
      partners: raw.partners,
      required: raw.required,
      grants,
      revoked,
      reserved: raw.reserved
        .filter(() => raw.final.length > 0)
        .map((entry) => {
          const offer = finalById.get(raw.final[entry.offer]!.id)!;
          return {
            offerId: offer.id,
            periodStart: naivePeriodStart(offer.capacityPeriod, NOW + entry.dayOffset * DAY_MS),
            reserved: entry.reserved,
          };
        }),
      allocations: raw.allocations.map((allocation, n) => ({
        id: `alc_${n}`,
        capability: allocation.capability,
        region: allocation.region,
        partnerId: allocation.partnerId,
        atMs: NOW - allocation.daysAgo * DAY_MS - HOUR_MS,
      })),
      settings: raw.settings,
      quality: raw.quality,
      affinity: raw.affinity,
      packedRowsMin: raw.packedRowsMin,
    };
  });

const constraintArb: fc.Arbitrary<AttributeConstraint> = fc.oneof(
  fc.record({ eq: scalar }),
  fc.record({ in: fc.array(scalar, { minLength: 1, maxLength: 3 }) }),
  fc.record({ min: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ max: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ min: fc.integer({ min: 0, max: 3 }), max: fc.integer({ min: 2, max: 5 }) }),
);

const queryArb: fc.Arbitrary<MatchQuery> = fc.record({
  capability: fc.constantFrom(...CAPABILITIES),
  region: fc.constantFrom(...REGIONS),
  quantity: fc.integer({ min: 1, max: 30 }),
  neededByMs: fc.integer({ min: -1, max: 14 }).map((halfDays) => NOW + halfDays * 12 * HOUR_MS),
  customerId: fc.option(fc.constantFrom(...CUSTOMERS), { nil: null }),
  constraints: fc.option(
    fc.dictionary(fc.constantFrom('color', 'weight', 'organic', 'mixed', 'missing'), constraintArb, {
      maxKeys: 2,
    }),
    { nil: undefined },
  ),
  limit: fc.integer({ min: 1, max: 12 }),
});

function signalsOf(world: World): PartnerSignals {
  return {
    quality: (partnerId) => world.quality[partnerId] ?? 0.5,
    reliability: () => 0.5,
    affinities: (customerId) => new Map(Object.entries(world.affinity[customerId] ?? {})),
  };
}

/** Feeds the world to an index, with the history a real one sees: first versions, then changes. */
function buildIndex(world: World): OfferIndex {
  const index = new OfferIndex({ signals: signalsOf(world), packedRowsMin: world.packedRowsMin });
  for (const [capability, programs] of Object.entries(world.required)) {
    index.setRequiredCertifications(capability, programs);
  }
  for (const offer of world.first) index.upsertOffer(offer);
  for (const partner of world.partners) index.setPartner(partner);
  for (const grant of world.grants) index.grantCertification(grant);
  for (const grant of world.grants) {
    if (world.revoked.has(grant.id)) index.withdrawCertification(grant.id, grant.partnerId, grant.programKey);
  }
  for (const offer of world.final) index.upsertOffer(offer);
  for (const id of world.removed) index.removeOffer(id);
  for (const entry of world.reserved) index.setReserved(entry.offerId, entry.periodStart, entry.reserved);
  for (const allocation of world.allocations) index.recordAllocation(allocation);
  for (const [capability, settings] of Object.entries(world.settings))
    index.setSettings(capability, settings);
  return index;
}

function naivePeriodStart(period: CapacityPeriod, atMs: number): number {
  const at = new Date(atMs);
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  if (period === 'day') return day;
  if (period === 'week') return day - ((at.getUTCDay() + 6) % 7) * DAY_MS;
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
}

function satisfies(value: unknown, constraint: AttributeConstraint): boolean {
  const isIn = (list: readonly Scalar[]) => list.some((item) => item === value);
  if (constraint.eq !== undefined && !isIn([constraint.eq])) return false;
  if (constraint.in !== undefined && !isIn(constraint.in)) return false;
  if (constraint.min !== undefined && !(typeof value === 'number' && value >= constraint.min)) return false;
  if (constraint.max !== undefined && !(typeof value === 'number' && value <= constraint.max)) return false;
  return true;
}

interface NaiveResult {
  offerId: string;
  partnerId: string;
  score: number;
  capped: boolean;
  demoted: boolean;
}

/** What the naive matcher reads: the state of the market, as plain objects. */
interface Market {
  readonly offers: readonly IndexedOffer[];
  readonly partners: ReadonlyMap<string, PartnerStanding>;
  readonly required: Readonly<Record<string, readonly string[]>>;
  /** Certifications granted and not withdrawn. */
  readonly grants: readonly Grant[];
  /** Units reserved, by `${offerId}/${periodStartMs}`. */
  readonly reserved: ReadonlyMap<string, number>;
  readonly allocations: readonly Allocation[];
  readonly settings: Readonly<Record<string, MatchingSettings | undefined>>;
  readonly quality: Readonly<Record<string, number>>;
  readonly affinity: Readonly<Record<string, Record<string, number>>>;
}

/** The market a world ends in. */
function marketOf(world: World): Market {
  const reserved = new Map<string, number>();
  for (const entry of world.reserved) reserved.set(`${entry.offerId}/${entry.periodStart}`, entry.reserved);
  return {
    offers: world.final.filter((offer) => !world.removed.has(offer.id)),
    partners: new Map(world.partners.map((partner) => [partner.partnerId, partner])),
    required: world.required,
    grants: world.grants.filter((grant) => !world.revoked.has(grant.id)),
    reserved,
    allocations: world.allocations,
    settings: world.settings,
    quality: world.quality,
    affinity: world.affinity,
  };
}

/** The rules, spelled out over plain objects: filter all, score all, sort all. */
function naiveRanking(market: Market, q: Omit<MatchQuery, 'limit'>, now: number): NaiveResult[] {
  const settings = market.settings[q.capability] ?? DEFAULT_SETTINGS;
  const { partners, grants, reserved, offers } = market;

  const candidates = offers.filter((offer) => {
    const partner = partners.get(offer.partnerId);
    const startMs = q.neededByMs - offer.leadTimeHours * HOUR_MS;
    const used = reserved.get(`${offer.id}/${naivePeriodStart(offer.capacityPeriod, startMs)}`) ?? 0;
    return (
      offer.capability === q.capability &&
      offer.regions.includes(q.region) &&
      offer.status === 'active' &&
      partner?.engaged === true &&
      partner.rulesValidUntilMs > now &&
      (market.required[q.capability] ?? []).every((program) =>
        grants.some(
          (grant) =>
            grant.partnerId === offer.partnerId &&
            grant.programKey === program &&
            grant.validFromMs <= now &&
            now < grant.validUntilMs,
        ),
      ) &&
      Number(offer.minQuantity) <= q.quantity &&
      q.quantity <= Number(offer.maxQuantity) &&
      startMs >= now &&
      Number(offer.capacityPerPeriod) - used >= q.quantity &&
      Object.entries(q.constraints ?? {}).every(([name, constraint]) =>
        satisfies(offer.attributes[name], constraint),
      )
    );
  });

  const window = market.allocations.filter(
    (allocation) =>
      allocation.capability === q.capability &&
      allocation.region === q.region &&
      allocation.atMs >= now - settings.exposureWindowDays * DAY_MS,
  );
  const capped = (partnerId: string) => {
    if (window.length === 0 || window.length < settings.exposureMinAllocations) return false;
    const share = window.filter((allocation) => allocation.partnerId === partnerId).length / window.length;
    return settings.exposureCapShare < 1 && share >= settings.exposureCapShare;
  };
  const prices = (currency: string) =>
    candidates.filter((offer) => offer.currency === currency).map((offer) => Number(offer.unitPriceMinor));
  const leads = candidates.map((offer) => offer.leadTimeHours);
  const lower = (value: number, values: number[]) => {
    const min = Math.min(...values);
    const max = Math.max(...values);
    return max > min ? (max - value) / (max - min) : 1;
  };
  const w = settings.weights;
  const scored = candidates.map((offer) => {
    const partner = partners.get(offer.partnerId)!;
    const affinity = q.customerId ? (market.affinity[q.customerId]?.[offer.partnerId] ?? 0) : 0;
    const activated = partner.activatedAtMs;
    const boost =
      activated !== null && activated <= now && now < activated + settings.newEntrantDays * DAY_MS
        ? settings.newEntrantBoost
        : 0;
    const score =
      w.price * lower(Number(offer.unitPriceMinor), prices(offer.currency)) +
      w.quality * (market.quality[offer.partnerId] ?? 0.5) +
      w.reliability * 0.5 +
      w.leadTime * lower(offer.leadTimeHours, leads) +
      w.affinity * affinity;
    return {
      offerId: offer.id,
      partnerId: offer.partnerId,
      score: score + boost,
      capped: capped(offer.partnerId),
    };
  });
  const byMerit = (a: (typeof scored)[number], b: (typeof scored)[number]) =>
    Number(a.capped) - Number(b.capped) || b.score - a.score || (a.offerId < b.offerId ? -1 : 1);
  scored.sort(byMerit);
  const perPartner = new Map<string, number>();
  const withDiversity = scored.map((result) => {
    const seen = perPartner.get(result.partnerId) ?? 0;
    perPartner.set(result.partnerId, seen + 1);
    return { ...result, demoted: seen >= settings.maxPerPartner };
  });
  return [...withDiversity.filter((r) => !r.demoted), ...withDiversity.filter((r) => r.demoted)];
}

describe('the offer index against a naive matcher', () => {
  it('returns the same offers, in the same order, with the same scores', () => {
    fc.assert(
      fc.property(worldArb, fc.array(queryArb, { minLength: 1, maxLength: 5 }), (world, queries) => {
        const index = buildIndex(world);
        for (const q of queries) {
          const expected = naiveRanking(marketOf(world), q, NOW);
          const answer = index.query(q, NOW);
          expect(answer.candidates).toBe(expected.length);
          expect(
            answer.results.map((result) => ({
              offerId: result.offerId,
              partnerId: result.partnerId,
              score: result.score,
              capped: result.breakdown.adjustments.some((a) => a.kind === 'exposure_cap'),
              demoted: result.breakdown.adjustments.some((a) => a.kind === 'diversity'),
            })),
          ).toEqual(expected.slice(0, q.limit));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('stays right as time passes and partners change between queries', () => {
    const change = fc.record({
      afterHalfDays: fc.integer({ min: 0, max: 30 }),
      partner: fc.constantFrom(...PARTNERS),
      engaged: fc.boolean(),
      rulesValidUntilMs: fc.constantFrom(
        Number.POSITIVE_INFINITY,
        NOW + 3 * DAY_MS,
        Number.NEGATIVE_INFINITY,
      ),
      grant: fc.option(
        fc.record({
          programKey: fc.constantFrom(...PROGRAMS),
          fromDays: fc.integer({ min: -5, max: 10 }),
          days: fc.integer({ min: 1, max: 10 }),
        }),
        { nil: null },
      ),
    });
    fc.assert(
      fc.property(
        worldArb,
        queryArb,
        fc.array(change, { minLength: 1, maxLength: 6 }),
        (start, q, changes) => {
          let world = start;
          const index = buildIndex(world);
          const steps = [...changes].sort((a, b) => a.afterHalfDays - b.afterHalfDays);
          steps.forEach((step, n) => {
            const now = NOW + step.afterHalfDays * 12 * HOUR_MS;
            const shifted = { ...q, neededByMs: q.neededByMs + (now - NOW) };
            const expected = naiveRanking(marketOf(world), shifted, now).slice(0, q.limit);
            const answer = index.query(shifted, now);
            expect(answer.results.map((result) => [result.offerId, result.score])).toEqual(
              expected.map((result) => [result.offerId, result.score]),
            );
            // Then a partner changes: its standing, and maybe a new certification.
            const standing = {
              partnerId: step.partner,
              engaged: step.engaged,
              rulesValidUntilMs: step.rulesValidUntilMs,
            };
            const previous = world.partners.find((partner) => partner.partnerId === step.partner)!;
            const partner: PartnerStanding = { ...standing, activatedAtMs: previous.activatedAtMs };
            const grants = step.grant
              ? [
                  {
                    id: `crt_change_${n}`,
                    partnerId: step.partner,
                    programKey: step.grant.programKey,
                    validFromMs: NOW + step.grant.fromDays * DAY_MS,
                    validUntilMs: NOW + (step.grant.fromDays + step.grant.days) * DAY_MS,
                  },
                ]
              : [];
            world = {
              ...world,
              partners: world.partners.map((existing) =>
                existing.partnerId === step.partner ? partner : existing,
              ),
              grants: [...world.grants, ...grants],
            };
            index.setPartner(partner);
            for (const grant of grants) index.grantCertification(grant);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('explains every offer of the capability and region: the candidates ranked alike, the rest excluded', () => {
    fc.assert(
      fc.property(worldArb, queryArb, (world, q) => {
        const index = buildIndex(world);
        const expected = naiveRanking(marketOf(world), q, NOW);
        const { rows, candidates } = index.explain(q, NOW);
        expect(candidates).toBe(expected.length);
        const ranked = rows.filter((row) => row.rank !== null);
        expect(ranked.map((row) => [row.offerId, row.rank, row.result?.score])).toEqual(
          expected.map((result, n) => [result.offerId, n + 1, result.score]),
        );
        const inBucket = world.final.filter(
          (offer) =>
            !world.removed.has(offer.id) &&
            offer.capability === q.capability &&
            offer.regions.includes(q.region),
        );
        expect(rows.map((row) => row.offerId).sort()).toEqual(inBucket.map((offer) => offer.id).sort());
        for (const row of rows) expect(row.rank === null).toBe(row.excluded.length > 0);
      }),
      { numRuns: 200 },
    );
  });
});

/*
 * The index against the naive model across random interleavings of every kind of change and
 * queries: offers created, changed and moved between capabilities, regions and period kinds,
 * removed; reservations set and freed; partners' standing, certifications granted, renewed,
 * withdrawn and expiring as time passes; allocations, settings, required certifications,
 * signals; pruning and compaction. After each query the candidate count, the results in order
 * and their scores must be the model's. The index's packed copies are patched on every change,
 * which is where a forgotten case hides, so the threshold is drawn low as often as not.
 *
 * The model keeps reservations by offer and period start, as the database does: an offer keeps
 * them through any change of its terms, capability or period kind, and loses them only when
 * it is removed (an offer that no longer exists has none).
 */

const OFFER_SLOTS = 24;
const offerIdOf = (slot: number) => `off_${String(slot).padStart(3, '0')}`;

const offerFieldsArb = fc.record({
  slot: fc.nat({ max: OFFER_SLOTS - 1 }),
  partnerId: fc.constantFrom(...PARTNERS, ...PARTNERS, 'ptn_unknown'),
  capability: fc.constantFrom(...CAPABILITIES),
  status: fc.constantFrom('active', 'active', 'active', 'active', 'paused', 'draft' as const),
  // Now and then a value too wide for the index's narrow columns, or for a 32-bit float.
  unitPriceMinor: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 100, max: 110 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 2 ** 33 + 1) },
  ),
  currency: fc.constantFrom('EUR', 'EUR', 'EUR', 'JPY'),
  minQuantity: fc.oneof(
    { weight: 4, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) },
  ),
  maxQuantity: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 5, max: 30 }) },
    { weight: 1, arbitrary: fc.constant(2 ** 40) },
  ),
  leadTimeHours: fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: 0, max: 8 }).map((n) => n * 12) },
    { weight: 1, arbitrary: fc.constant(70_000) },
  ),
  regions: fc.oneof(
    fc.constant(REGIONS),
    fc.uniqueArray(fc.constantFrom(...REGIONS), { minLength: 1, maxLength: 3 }),
  ),
  capacityPerPeriod: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 30 }) },
    { weight: 1, arbitrary: fc.constant(2 ** 35) },
  ),
  capacityPeriod: fc.constantFrom<CapacityPeriod>('day', 'week', 'month'),
  attributes: fc.record(
    { color: fc.constantFrom(...COLORS), weight: fc.integer({ min: 0, max: 5 }) },
    {
      requiredKeys: [],
    },
  ),
});

/** Queries that usually find several candidates, so that ranking has something to prune. */
const busyQueryArb: fc.Arbitrary<MatchQuery> = fc.record({
  capability: fc.constantFrom(...CAPABILITIES),
  region: fc.constantFrom(...REGIONS),
  quantity: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) },
  ),
  neededByMs: fc
    .oneof(
      { weight: 3, arbitrary: fc.integer({ min: 8, max: 14 }) },
      { weight: 1, arbitrary: fc.integer({ min: -1, max: 14 }) },
    )
    .map((halfDays) => NOW + halfDays * 12 * HOUR_MS),
  customerId: fc.option(fc.constantFrom(...CUSTOMERS), { nil: null }),
  constraints: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.dictionary(fc.constantFrom('color', 'weight'), constraintArb, { maxKeys: 1 }),
    },
  ),
  limit: fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 4 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 12 }) },
  ),
});

const stepArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('upsert' as const), offer: offerFieldsArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('remove' as const), slot: fc.nat({ max: OFFER_SLOTS - 1 }) }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      // Mostly a few offers, so that some gather several booked periods.
      slot: fc.oneof(fc.nat({ max: 3 }), fc.nat({ max: OFFER_SLOTS - 1 })),
      dayOffset: fc.integer({ min: -3, max: 40 }),
      units: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.constant(0)),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('partner' as const),
      partnerId: fc.constantFrom(...PARTNERS),
      engaged: fc.constantFrom(true, true, false),
      rules: fc.constantFrom('accepted', 'accepted', 'grace', 'lapsed'),
      activatedDaysAgo: fc.option(fc.integer({ min: -2, max: 40 }), { nil: null }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('grant' as const),
      partnerId: fc.constantFrom(...PARTNERS),
      programKey: fc.constantFrom(...PROGRAMS),
      fromDays: fc.integer({ min: -10, max: 5 }),
      days: fc.integer({ min: 0, max: 15 }),
      // Sometimes the same certification again, renewed or with other terms.
      again: fc.option(fc.nat(), { nil: null }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdraw' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      hours: fc.integer({ min: 1, max: 24 * 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('allocate' as const),
      capability: fc.constantFrom(...CAPABILITIES),
      region: fc.constantFrom(...REGIONS),
      partnerId: fc.constantFrom(...PARTNERS),
      hoursAgo: fc.integer({ min: 0, max: 24 * 20 }),
    }),
  },
  // The capacity of an allocation's reservation given back: it no longer counts.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unallocate' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('settings' as const),
      capability: fc.constantFrom(...CAPABILITIES),
      settings: fc.option(settingsArb, { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('required' as const),
      capability: fc.constantFrom(...CAPABILITIES),
      programs: fc.subarray(PROGRAMS),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('quality' as const),
      partnerId: fc.constantFrom(...PARTNERS),
      value: fc.constantFrom(0, 0.3, 0.5, 0.9, 1),
      everyone: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('forget' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const) }) },
  { weight: 7, arbitrary: fc.record({ kind: fc.constant('query' as const), query: busyQueryArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('explain' as const), query: busyQueryArb }) },
);

type Step = typeof stepArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * Steps for one busy bucket: bookings of many offers come and go (each offer gathering and
 * losing booked periods), offers change terms or period kind, and queries ask for quantities
 * near the capacity left.
 */
const bookingStepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      slot: fc.nat({ max: OFFER_SLOTS - 1 }),
      dayOffset: fc.integer({ min: 0, max: 12 }),
      units: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constant(0)),
    }),
  },
  {
    weight: 2,
    arbitrary: offerFieldsArb.map((offer) => ({
      kind: 'upsert' as const,
      offer: {
        ...offer,
        capability: 'dyeing',
        regions: ['eu-west'],
        status: 'active' as const,
        partnerId: 'ptn_a',
      },
    })),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('query' as const),
      query: fc.record({
        capability: fc.constant('dyeing'),
        region: fc.constant('eu-west'),
        quantity: fc.integer({ min: 1, max: 12 }),
        neededByMs: fc.integer({ min: 1, max: 24 }).map((halfDays) => NOW + halfDays * 12 * HOUR_MS),
        customerId: fc.constant(null),
        constraints: fc.constant(undefined),
        limit: fc.integer({ min: 1, max: 5 }),
      }),
    }),
  },
);

/** The model: the market as plain objects, changed the way each step says. */
class ModelMarket implements Market {
  readonly offersById = new Map<string, IndexedOffer>();
  readonly partners = new Map<string, PartnerStanding>();
  readonly required: Record<string, readonly string[]> = {};
  readonly grantsById = new Map<string, Grant>();
  readonly reserved = new Map<string, number>();
  readonly allocationsById = new Map<string, Allocation>();
  readonly settings: Record<string, MatchingSettings | undefined> = {};
  readonly quality: Record<string, number> = {};
  readonly affinity: Record<string, Record<string, number>>;

  constructor(affinity: Record<string, Record<string, number>>) {
    this.affinity = affinity;
  }

  get offers(): IndexedOffer[] {
    return [...this.offersById.values()];
  }

  get grants(): Grant[] {
    return [...this.grantsById.values()];
  }

  get allocations(): Allocation[] {
    return [...this.allocationsById.values()];
  }

  removeOffer(offerId: string): void {
    this.offersById.delete(offerId);
    for (const key of [...this.reserved.keys()]) if (key.startsWith(`${offerId}/`)) this.reserved.delete(key);
  }

  setReserved(offerId: string, periodStart: number, units: number): void {
    // Reservations of an offer the index does not hold are ignored, as the index ignores them.
    if (!this.offersById.has(offerId)) return;
    if (units > 0) this.reserved.set(`${offerId}/${periodStart}`, units);
    else this.reserved.delete(`${offerId}/${periodStart}`);
  }

  forgetReservationsBefore(now: number): void {
    const day = Math.floor(now / DAY_MS) - RESERVATION_HISTORY_DAYS;
    for (const key of [...this.reserved.keys()]) {
      const periodStart = Number(key.slice(key.indexOf('/') + 1));
      if (Math.floor(periodStart / DAY_MS) < day) this.reserved.delete(key);
    }
  }
}

function applyStep(
  index: OfferIndex,
  model: ModelMarket,
  step: Step,
  clock: { now: number },
  n: number,
): void {
  const now = clock.now;
  switch (step.kind) {
    case 'upsert': {
      const { slot, ...fields } = step.offer;
      const offer: IndexedOffer = { id: offerIdOf(slot), ...fields };
      model.offersById.set(offer.id, offer);
      index.upsertOffer(offer);
      return;
    }
    case 'remove':
      model.removeOffer(offerIdOf(step.slot));
      index.removeOffer(offerIdOf(step.slot));
      return;
    case 'reserve': {
      const offerId = offerIdOf(step.slot);
      // A period of the offer's kind as it is now; after a change of kind, older ones stay.
      const period = model.offersById.get(offerId)?.capacityPeriod ?? 'day';
      const periodStart = naivePeriodStart(period, now + step.dayOffset * DAY_MS);
      model.setReserved(offerId, periodStart, step.units);
      index.setReserved(offerId, periodStart, step.units);
      return;
    }
    case 'partner': {
      const standing: PartnerStanding = {
        partnerId: step.partnerId,
        engaged: step.engaged,
        rulesValidUntilMs:
          step.rules === 'accepted'
            ? Number.POSITIVE_INFINITY
            : step.rules === 'grace'
              ? now + 2 * DAY_MS
              : Number.NEGATIVE_INFINITY,
        activatedAtMs: step.activatedDaysAgo === null ? null : now - step.activatedDaysAgo * DAY_MS,
      };
      model.partners.set(step.partnerId, standing);
      index.setPartner(standing);
      return;
    }
    case 'grant': {
      const existing = [...model.grantsById.keys()];
      const id =
        step.again !== null && existing.length > 0 ? existing[step.again % existing.length]! : `crt_${n}`;
      const grant: Grant = {
        id,
        partnerId: step.partnerId,
        programKey: step.programKey,
        validFromMs: now + step.fromDays * DAY_MS,
        validUntilMs: now + (step.fromDays + step.days) * DAY_MS,
      };
      model.grantsById.set(id, grant);
      index.grantCertification(grant);
      return;
    }
    case 'withdraw': {
      const grants = model.grants;
      if (grants.length === 0) return;
      const grant = grants[step.pick % grants.length]!;
      model.grantsById.delete(grant.id);
      index.withdrawCertification(grant.id, grant.partnerId, grant.programKey);
      return;
    }
    case 'advance':
      clock.now += step.hours * HOUR_MS;
      return;
    case 'allocate': {
      const allocation: Allocation = {
        id: `alc_${n}`,
        capability: step.capability,
        region: step.region,
        partnerId: step.partnerId,
        atMs: now - step.hoursAgo * HOUR_MS,
        reservationId: `res_${n}`,
      };
      model.allocationsById.set(allocation.id, allocation);
      index.recordAllocation(allocation);
      return;
    }
    case 'unallocate': {
      const allocations = model.allocations;
      if (allocations.length === 0) return;
      const allocation = allocations[step.pick % allocations.length]!;
      model.allocationsById.delete(allocation.id);
      index.withdrawAllocation(allocation.reservationId as string);
      // Hearing of it again (events are delivered at least once) does not count it again.
      index.recordAllocation(allocation);
      return;
    }
    case 'settings':
      model.settings[step.capability] = step.settings ?? undefined;
      index.setSettings(step.capability, step.settings);
      return;
    case 'required':
      model.required[step.capability] = step.programs;
      index.setRequiredCertifications(step.capability, step.programs);
      return;
    case 'quality':
      model.quality[step.partnerId] = step.value;
      index.refreshSignals(step.everyone ? undefined : [step.partnerId]);
      return;
    case 'forget':
      model.forgetReservationsBefore(now);
      index.forgetReservationsBefore(now);
      return;
    case 'compact':
      index.compact();
      return;
    case 'query': {
      const q = { ...step.query, neededByMs: step.query.neededByMs - NOW + now };
      const expected = naiveRanking(model, q, now);
      const answer = index.query(q, now);
      expect(answer.candidates).toBe(expected.length);
      expect(
        answer.results.map((result) => ({
          offerId: result.offerId,
          partnerId: result.partnerId,
          score: result.score,
          capped: result.breakdown.adjustments.some((a) => a.kind === 'exposure_cap'),
          demoted: result.breakdown.adjustments.some((a) => a.kind === 'diversity'),
        })),
      ).toEqual(expected.slice(0, q.limit));
      return;
    }
    case 'explain': {
      const q = { ...step.query, neededByMs: step.query.neededByMs - NOW + now };
      const expected = naiveRanking(model, q, now);
      const { rows, candidates } = index.explain(q, now);
      expect(candidates).toBe(expected.length);
      expect(
        rows.filter((row) => row.rank !== null).map((row) => [row.offerId, row.rank, row.result?.score]),
      ).toEqual(expected.map((result, k) => [result.offerId, k + 1, result.score]));
      return;
    }
  }
}

/** Runs of the interleaving property; `MATCHING_MODEL_RUNS` raises it for a longer search. */
const MODEL_RUNS = Number(process.env.MATCHING_MODEL_RUNS ?? 400);

describe('the offer index against a naive model, with changes between queries', () => {
  it('agrees on candidates, order and scores after any interleaving of changes', () => {
    fc.assert(
      fc.property(
        packedRowsMinArb,
        fc.record(
          Object.fromEntries(
            CUSTOMERS.map((customer) => [
              customer,
              fc.record(Object.fromEntries(PARTNERS.map((id) => [id, fc.constantFrom(0, 0, 0.7, 1)]))),
            ]),
          ),
        ),
        fc.array(offerFieldsArb, { minLength: OFFER_SLOTS / 2, maxLength: OFFER_SLOTS, size: 'max' }),
        fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'max' }),
        (packedRowsMin, affinity, initial, steps) => {
          const model = new ModelMarket(affinity);
          const signals: PartnerSignals = {
            quality: (partnerId) => model.quality[partnerId] ?? 0.5,
            reliability: () => 0.5,
            affinities: (customerId) => new Map(Object.entries(model.affinity[customerId] ?? {})),
          };
          const index = new OfferIndex({ signals, packedRowsMin });
          // Every partner starts active, so that most queries have candidates to rank.
          for (const partnerId of PARTNERS) {
            const standing: PartnerStanding = {
              partnerId,
              engaged: true,
              rulesValidUntilMs: Number.POSITIVE_INFINITY,
              activatedAtMs: NOW - 100 * DAY_MS,
            };
            model.partners.set(partnerId, standing);
            index.setPartner(standing);
          }
          const clock = { now: NOW };
          for (const offer of initial) applyStep(index, model, { kind: 'upsert', offer }, clock, 0);
          for (const [n, step] of steps.entries()) applyStep(index, model, step, clock, n + 1);
        },
      ),
      { numRuns: MODEL_RUNS },
    );
  });

  it('counts free capacity exactly while the bookings of a busy bucket come and go', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 8),
        fc.array(
          offerFieldsArb.map((offer) => ({
            ...offer,
            capability: 'dyeing',
            regions: ['eu-west'],
            status: 'active' as const,
            partnerId: 'ptn_a',
          })),
          { minLength: OFFER_SLOTS / 2, maxLength: OFFER_SLOTS, size: 'max' },
        ),
        fc.array(bookingStepArb, { minLength: 1, maxLength: 120, size: 'max' }),
        (packedRowsMin, initial, steps) => {
          const model = new ModelMarket({});
          const index = new OfferIndex({ packedRowsMin });
          const standing: PartnerStanding = {
            partnerId: 'ptn_a',
            engaged: true,
            rulesValidUntilMs: Number.POSITIVE_INFINITY,
            activatedAtMs: NOW - 100 * DAY_MS,
          };
          model.partners.set('ptn_a', standing);
          index.setPartner(standing);
          const clock = { now: NOW };
          for (const offer of initial) applyStep(index, model, { kind: 'upsert', offer }, clock, 0);
          for (const [n, step] of steps.entries()) applyStep(index, model, step, clock, n + 1);
        },
      ),
      { numRuns: Math.ceil(MODEL_RUNS / 2) },
    );
  });
});
