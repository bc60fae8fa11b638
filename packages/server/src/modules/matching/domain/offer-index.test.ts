import { describe, expect, it } from 'vitest';
import {
  type IndexedOffer,
  type MatchQuery,
  OfferIndex,
  type OfferIndexOptions,
  type PartnerStanding,
} from './offer-index.js';
import { DAY_MS, HOUR_MS, PERIOD_CODES, periodStartMs } from './periods.js';
import { NEUTRAL_SIGNALS, type RankingStrategy } from './ranking.js';
import { DEFAULT_SETTINGS, type MatchingSettings } from './settings.js';

const NOW = Date.UTC(2026, 5, 3, 9); // a Wednesday
const IN_TWO_DAYS = NOW + 2 * DAY_MS;

let offers = 0;
function offer(fields: Partial<IndexedOffer> = {}): IndexedOffer {
  offers++;
  return {
    id: `off_${String(offers).padStart(4, '0')}`,
    partnerId: 'ptn_a',
    capability: 'dyeing',
    status: 'active',
    unitPriceMinor: 1000n,
    currency: 'EUR',
    minQuantity: 1n,
    maxQuantity: 100n,
    leadTimeHours: 24,
    regions: ['eu-west'],
    capacityPerPeriod: 500n,
    capacityPeriod: 'week',
    attributes: {},
    ...fields,
  };
}

function active(partnerId: string, fields: Partial<PartnerStanding> = {}): PartnerStanding {
  return {
    partnerId,
    engaged: true,
    rulesValidUntilMs: Number.POSITIVE_INFINITY,
    activatedAtMs: NOW - 365 * DAY_MS,
    ...fields,
  };
}

function query(fields: Partial<MatchQuery> = {}): MatchQuery {
  return {
    capability: 'dyeing',
    region: 'eu-west',
    quantity: 10,
    neededByMs: IN_TWO_DAYS,
    limit: 10,
    ...fields,
  };
}

/** An index with partners a, b and c active, and the offers given. */
function indexWith(
  list: readonly IndexedOffer[],
  options: OfferIndexOptions & { settings?: Partial<MatchingSettings> } = {},
): OfferIndex {
  const index = new OfferIndex(options);
  for (const id of ['ptn_a', 'ptn_b', 'ptn_c']) index.setPartner(active(id));
  if (options.settings) index.setSettings('dyeing', { ...DEFAULT_SETTINGS, ...options.settings });
  for (const item of list) index.upsertOffer(item);
  return index;
}

const ids = (index: OfferIndex, q: MatchQuery = query(), now = NOW) =>
  index.query(q, now).results.map((result) => result.offerId);

const exclusionsOf = (index: OfferIndex, offerId: string, q: Partial<MatchQuery> = {}, now = NOW) =>
  index.explain(query(q), now, { offerId }).rows.flatMap((row) => row.excluded.map((e) => e.filter));

describe('the offer index filters', () => {
  it('matches only active offers, and says why the others are left out', () => {
    const shown = offer();
    const hidden = (['draft', 'paused', 'non_compliant'] as const).map((status) => offer({ status }));
    const index = indexWith([shown, ...hidden]);
    expect(ids(index)).toEqual([shown.id]);
    for (const item of hidden) expect(exclusionsOf(index, item.id)).toEqual(['offer_not_active']);
  });

  it('leaves out partners that are not active or on probation, and partners it never heard of', () => {
    const index = indexWith([]);
    index.setPartner(active('ptn_suspended', { engaged: false }));
    const suspended = offer({ partnerId: 'ptn_suspended' });
    const unknown = offer({ partnerId: 'ptn_unknown' });
    const fine = offer({ partnerId: 'ptn_b' });
    for (const item of [suspended, unknown, fine]) index.upsertOffer(item);
    expect(ids(index)).toEqual([fine.id]);
    expect(exclusionsOf(index, suspended.id)).toEqual(['partner_not_active']);
    expect(exclusionsOf(index, unknown.id)).toEqual(['partner_not_active']);

    index.setPartner(active('ptn_suspended'));
    expect(ids(index)).toContain(suspended.id);
  });

  it('keeps a partner through the grace period of new rules, and leaves it out once the grace ends', () => {
    const graceEnd = NOW + 3 * DAY_MS;
    const index = indexWith([]);
    index.setPartner(active('ptn_late', { rulesValidUntilMs: graceEnd }));
    index.setPartner(active('ptn_lapsed', { rulesValidUntilMs: Number.NEGATIVE_INFINITY }));
    const late = offer({ partnerId: 'ptn_late' });
    const lapsed = offer({ partnerId: 'ptn_lapsed' });
    index.upsertOffer(late);
    index.upsertOffer(lapsed);
    const q = query({ neededByMs: NOW + 30 * DAY_MS });
    expect(ids(index, q)).toEqual([late.id]);
    expect(exclusionsOf(index, lapsed.id)).toEqual(['rules_not_accepted']);
    expect(ids(index, q, graceEnd)).toEqual([]);
    expect(exclusionsOf(index, late.id, q, graceEnd)).toEqual(['rules_not_accepted']);
  });

  it('requires every certification the capability requires, valid at the time of the query', () => {
    const index = indexWith([]);
    index.setRequiredCertifications('dyeing', ['oeko-tex', 'iso-9001']);
    const both = offer({ partnerId: 'ptn_a' });
    const one = offer({ partnerId: 'ptn_b' });
    index.upsertOffer(both);
    index.upsertOffer(one);
    const grant = (id: string, partnerId: string, programKey: string, fromMs: number, untilMs: number) =>
      index.grantCertification({ id, partnerId, programKey, validFromMs: fromMs, validUntilMs: untilMs });
    grant('crt_1', 'ptn_a', 'oeko-tex', NOW - DAY_MS, NOW + 10 * DAY_MS);
    grant('crt_2', 'ptn_a', 'iso-9001', NOW - DAY_MS, NOW + 10 * DAY_MS);
    grant('crt_3', 'ptn_b', 'oeko-tex', NOW - DAY_MS, NOW + 10 * DAY_MS);
    expect(ids(index)).toEqual([both.id]);
    expect(index.explain(query(), NOW, { offerId: one.id }).rows[0]?.excluded).toEqual([
      { filter: 'certification_missing', detail: 'The partner holds no valid certification of: iso-9001.' },
    ]);

    // After expiry the partner is out, unless a renewal continues the certification.
    const later = NOW + 11 * DAY_MS;
    const q = query({ neededByMs: later + 2 * DAY_MS });
    expect(ids(index, q, later)).toEqual([]);
    grant('crt_4', 'ptn_a', 'oeko-tex', NOW + 10 * DAY_MS, NOW + 40 * DAY_MS);
    grant('crt_5', 'ptn_a', 'iso-9001', NOW + 10 * DAY_MS, NOW + 40 * DAY_MS);
    expect(ids(index, q, later)).toEqual([both.id]);
    expect(ids(index)).toEqual([both.id]);

    // Revoking the certification that runs now leaves a gap until the renewal starts.
    index.withdrawCertification('crt_1', 'ptn_a', 'oeko-tex');
    expect(ids(index)).toEqual([]);
    expect(ids(index, q, later)).toEqual([both.id]);
  });

  it('matches only offers serving the region, and says so of an offer asked for by id', () => {
    const west = offer({ regions: ['eu-west', 'eu-north'] });
    const east = offer({ regions: ['eu-east'] });
    const other = offer({ capability: 'sewing' });
    const index = indexWith([west, east, other]);
    expect(ids(index)).toEqual([west.id]);
    expect(ids(index, query({ region: 'eu-north' }))).toEqual([west.id]);
    expect(exclusionsOf(index, east.id)).toEqual(['region_not_served']);
    expect(exclusionsOf(index, other.id)).toEqual(['capability_mismatch']);
  });

  it('matches only offers whose minimum and maximum quantity allow the quantity asked', () => {
    const small = offer({ minQuantity: 1n, maxQuantity: 10n });
    const large = offer({ minQuantity: 50n, maxQuantity: 1000n });
    const index = indexWith([small, large]);
    expect(ids(index, query({ quantity: 10 }))).toEqual([small.id]);
    expect(ids(index, query({ quantity: 50 }))).toEqual([large.id]);
    expect(ids(index, query({ quantity: 20 }))).toEqual([]);
    expect(exclusionsOf(index, small.id, { quantity: 11 })).toEqual(['quantity_out_of_range']);
  });

  it('compares quantities exactly, even beyond what a 32-bit float holds', () => {
    const huge = offer({ minQuantity: 16_777_217n, maxQuantity: 2n ** 40n, capacityPerPeriod: 2n ** 41n });
    const index = indexWith([huge]);
    // 16,777,216 is the nearest 32-bit float to the minimum, one unit short of it.
    expect(ids(index, query({ quantity: 16_777_216 }))).toEqual([]);
    expect(ids(index, query({ quantity: 16_777_217 }))).toEqual([huge.id]);
    expect(ids(index, query({ quantity: 2 ** 40 }))).toEqual([huge.id]);
    expect(ids(index, query({ quantity: 2 ** 40 + 1 }))).toEqual([]);
  });

  it('matches only offers whose lead time gets the work done by the time needed', () => {
    const fast = offer({ leadTimeHours: 24 });
    const slow = offer({ leadTimeHours: 72 });
    const index = indexWith([fast, slow]);
    expect(ids(index, query({ neededByMs: NOW + 48 * HOUR_MS }))).toEqual([fast.id]);
    expect(ids(index, query({ neededByMs: NOW + 72 * HOUR_MS }))).toEqual([fast.id, slow.id]);
    expect(exclusionsOf(index, slow.id, { neededByMs: NOW + 71 * HOUR_MS })).toEqual(['lead_time_too_long']);
    expect(ids(index, query({ neededByMs: NOW - HOUR_MS }))).toEqual([]);
  });

  it('counts free capacity in the period in which the work must start', () => {
    const weekly = offer({ capacityPerPeriod: 100n, capacityPeriod: 'week', leadTimeHours: 0 });
    const index = indexWith([weekly]);
    const thisWeek = periodStartMs(PERIOD_CODES.week, NOW);
    const nextWeek = thisWeek + 7 * DAY_MS;
    index.setReserved(weekly.id, thisWeek, 95);
    // Needed on Friday: starts this week, where 5 units are free.
    expect(ids(index, query({ quantity: 5, neededByMs: NOW + 2 * DAY_MS }))).toEqual([weekly.id]);
    expect(ids(index, query({ quantity: 6, neededByMs: NOW + 2 * DAY_MS }))).toEqual([]);
    expect(exclusionsOf(index, weekly.id, { quantity: 6 })).toEqual(['capacity_exhausted']);
    // Needed next week: that week is empty.
    expect(ids(index, query({ quantity: 100, neededByMs: nextWeek + DAY_MS }))).toEqual([weekly.id]);
    // The lead time moves the start into this week again.
    const slow = offer({ capacityPerPeriod: 100n, leadTimeHours: 48 });
    index.upsertOffer(slow);
    index.setReserved(slow.id, thisWeek, 100);
    expect(ids(index, query({ quantity: 1, neededByMs: nextWeek + HOUR_MS }))).toEqual([weekly.id]);
    // A quantity above the capacity of a whole period never fits.
    expect(ids(index, query({ quantity: 101, neededByMs: nextWeek + DAY_MS }))).toEqual([]);
    // Freed units count again.
    index.setReserved(weekly.id, thisWeek, 0);
    expect(ids(index, query({ quantity: 100, neededByMs: NOW + 2 * DAY_MS }))).toEqual([weekly.id]);
  });

  it('answers the same after compaction, and keeps growing after it', () => {
    const partners = ['ptn_a', 'ptn_b', 'ptn_c'];
    const offers = Array.from({ length: 300 }, (_, i) =>
      offer({
        partnerId: partners[i % 3],
        unitPriceMinor: BigInt(1000 + ((i * 37) % 500)),
        capacityPerPeriod: 10n,
      }),
    );
    const index = indexWith(offers);
    const week = periodStartMs(PERIOD_CODES.week, NOW);
    for (const [i, item] of offers.entries()) if (i % 4 === 0) index.setReserved(item.id, week, 10);
    const wide = query({ quantity: 1, neededByMs: NOW + DAY_MS, limit: 50 });
    const before = ids(index, wide);
    index.compact();
    expect(ids(index, wide)).toEqual(before);
    const cheapest = offer({ partnerId: 'ptn_a', unitPriceMinor: 1n, capacityPerPeriod: 10n });
    index.upsertOffer(cheapest);
    expect(ids(index, wide)[0]).toBe(cheapest.id);
    index.setReserved(cheapest.id, week, 10);
    expect(ids(index, wide)).toEqual(before);
  });

  it('keeps a full period full when a booking far ahead is recorded, and forgets only periods long past', () => {
    const monthly = offer({ capacityPerPeriod: 10n, capacityPeriod: 'month', leadTimeHours: 0 });
    const index = indexWith([monthly]);
    const thisMonth = periodStartMs(PERIOD_CODES.month, NOW);
    index.setReserved(monthly.id, thisMonth, 10);
    // A booking three months ahead must not erase this month's.
    index.setReserved(monthly.id, periodStartMs(PERIOD_CODES.month, NOW + 95 * DAY_MS), 1);
    expect(ids(index, query({ quantity: 1, neededByMs: NOW + HOUR_MS }))).toEqual([]);
    // Pruning by the clock keeps the current month, and forgets it once it is long past.
    index.forgetReservationsBefore(NOW);
    expect(ids(index, query({ quantity: 1, neededByMs: NOW + HOUR_MS }))).toEqual([]);
    index.forgetReservationsBefore(NOW + 120 * DAY_MS);
    expect(ids(index, query({ quantity: 1, neededByMs: NOW + HOUR_MS }))).toEqual([monthly.id]);
  });

  it('forgets the past periods of many offers at once and still counts the current ones', () => {
    const daily = Array.from({ length: 100 }, (_, n) =>
      offer({
        partnerId: `ptn_${n % 3 === 0 ? 'a' : n % 3 === 1 ? 'b' : 'c'}`,
        capacityPerPeriod: 5n,
        capacityPeriod: 'day',
        leadTimeHours: 0,
      }),
    );
    const index = indexWith(daily, { packedRowsMin: 0 });
    const today = periodStartMs(PERIOD_CODES.day, NOW);
    for (const [n, item] of daily.entries()) {
      index.setReserved(item.id, today - 90 * DAY_MS, 5);
      if (n % 2 === 0) index.setReserved(item.id, today, 5);
    }
    const now = query({ quantity: 1, neededByMs: NOW + HOUR_MS, limit: 100 });
    expect(index.query(now, NOW).candidates).toBe(50);
    // Every offer loses a period at once: the packed copy is rebuilt rather than patched.
    index.forgetReservationsBefore(NOW);
    expect(index.query(now, NOW).candidates).toBe(50);
    index.setReserved(daily[1]!.id, today, 5);
    expect(index.query(now, NOW).candidates).toBe(49);
  });

  it('applies constraints on attributes: equality, sets and ranges, on numbers, strings and booleans', () => {
    const red = offer({ attributes: { color: 'red', weight_gsm: 180, organic: true } });
    const blue = offer({ attributes: { color: 'blue', weight_gsm: 220, organic: false } });
    const bare = offer({ attributes: {} });
    const index = indexWith([red, blue, bare]);
    const matching = (constraints: MatchQuery['constraints']) => ids(index, query({ constraints })).sort();
    expect(matching({ color: { eq: 'red' } })).toEqual([red.id]);
    expect(matching({ color: { in: ['red', 'blue'] } })).toEqual([red.id, blue.id].sort());
    expect(matching({ color: { eq: 'green' } })).toEqual([]);
    expect(matching({ weight_gsm: { min: 200 } })).toEqual([blue.id]);
    expect(matching({ weight_gsm: { min: 150, max: 200 } })).toEqual([red.id]);
    expect(matching({ weight_gsm: { in: [180, 220] } })).toEqual([red.id, blue.id].sort());
    expect(matching({ organic: { eq: true } })).toEqual([red.id]);
    expect(matching({ organic: { eq: true }, weight_gsm: { min: 200 } })).toEqual([]);
    expect(matching({ unknown: { eq: 'x' } })).toEqual([]);
    // A string is not the number it spells.
    expect(matching({ weight_gsm: { eq: '180' } })).toEqual([]);
    expect(exclusionsOf(index, bare.id, { constraints: { color: { eq: 'red' } } })).toEqual([
      'attribute_mismatch',
    ]);
  });

  it('reports every filter an offer fails, not only the first', () => {
    const index = indexWith([]);
    index.setPartner(active('ptn_x', { engaged: false }));
    const bad = offer({ partnerId: 'ptn_x', status: 'paused', maxQuantity: 5n, leadTimeHours: 500 });
    index.upsertOffer(bad);
    expect(exclusionsOf(index, bad.id)).toEqual([
      'offer_not_active',
      'partner_not_active',
      'quantity_out_of_range',
      'lead_time_too_long',
    ]);
  });
});

describe('the offer index ranks', () => {
  it('ranks cheaper and faster offers higher, and every score is the sum of its breakdown', () => {
    const cheap = offer({ unitPriceMinor: 800n, leadTimeHours: 24, partnerId: 'ptn_a' });
    const middle = offer({ unitPriceMinor: 1000n, leadTimeHours: 12, partnerId: 'ptn_b' });
    const dear = offer({ unitPriceMinor: 1200n, leadTimeHours: 36, partnerId: 'ptn_c' });
    const index = indexWith([dear, middle, cheap]);
    const { results, candidates } = index.query(query(), NOW);
    expect(candidates).toBe(3);
    expect(results.map((result) => result.offerId)).toEqual([cheap.id, middle.id, dear.id]);
    for (const result of results) {
      const sum = result.breakdown.criteria.reduce((total, part) => total + part.contribution, 0);
      expect(result.score).toBeCloseTo(sum, 12);
      expect(result.breakdown.adjustments).toEqual([]);
    }
    const first = results[0]!.breakdown.criteria;
    expect(first.find((part) => part.criterion === 'price')).toEqual({
      criterion: 'price',
      raw: 800,
      normalized: 1,
      weight: DEFAULT_SETTINGS.weights.price,
      contribution: DEFAULT_SETTINGS.weights.price,
    });
    expect(first.find((part) => part.criterion === 'lead_time')?.normalized).toBeCloseTo(0.5, 12);
    expect(results[2]!.breakdown.criteria.find((part) => part.criterion === 'price')?.normalized).toBe(0);
    expect(results[0]).toMatchObject({ rank: 1, partnerId: 'ptn_a', freeCapacity: 500, unitPriceMinor: 800 });
    expect(results[0]?.startMs).toBe(IN_TWO_DAYS - 24 * HOUR_MS);
  });

  it('follows the weights configured for the capability', () => {
    const cheapSlow = offer({ unitPriceMinor: 800n, leadTimeHours: 40, partnerId: 'ptn_a' });
    const dearFast = offer({ unitPriceMinor: 1200n, leadTimeHours: 4, partnerId: 'ptn_b' });
    const index = indexWith([cheapSlow, dearFast]);
    expect(ids(index)).toEqual([cheapSlow.id, dearFast.id]);
    index.setSettings('dyeing', {
      ...DEFAULT_SETTINGS,
      weights: { price: 0.1, quality: 0, reliability: 0, leadTime: 0.9, affinity: 0 },
    });
    expect(ids(index)).toEqual([dearFast.id, cheapSlow.id]);
  });

  it('compares prices only with prices of the same currency', () => {
    const euros = offer({ unitPriceMinor: 1000n, currency: 'EUR', partnerId: 'ptn_a' });
    const yen = offer({ unitPriceMinor: 150000n, currency: 'JPY', partnerId: 'ptn_b' });
    const index = indexWith([euros, yen]);
    const prices = index
      .query(query(), NOW)
      .results.map(
        (result) => result.breakdown.criteria.find((part) => part.criterion === 'price')?.normalized,
      );
    expect(prices).toEqual([1, 1]);
  });

  it("uses partners' quality and reliability and the customer's affinity from the signals port", () => {
    const a = offer({ partnerId: 'ptn_a' });
    const b = offer({ partnerId: 'ptn_b' });
    let qualityOfB = 0.9;
    const index = indexWith([a, b], {
      signals: {
        quality: (partnerId) => (partnerId === 'ptn_b' ? qualityOfB : 0.5),
        reliability: () => 0.5,
        affinities: (customerId) => new Map(customerId === 'cus_loyal' ? [['ptn_a', 1]] : []),
      },
    });
    expect(ids(index)).toEqual([b.id, a.id]);
    expect(ids(index, query({ customerId: 'cus_loyal' }))).toEqual([a.id, b.id]);
    const affinity = index
      .query(query({ customerId: 'cus_loyal' }), NOW)
      .results[0]?.breakdown.criteria.find((part) => part.criterion === 'affinity');
    expect(affinity).toMatchObject({ raw: 1, contribution: DEFAULT_SETTINGS.weights.affinity });
    // The affinity of one customer does not leak into the next query.
    expect(ids(index)).toEqual([b.id, a.id]);
    qualityOfB = 0.1;
    index.refreshSignals(['ptn_b']);
    expect(ids(index)).toEqual([a.id, b.id]);
  });

  it('ranks with the strategy it is given', () => {
    const byLeadTime: RankingStrategy = {
      name: 'fastest_first',
      prepare(candidates) {
        const score = (i: number) => -candidates.leadTimeHours[i]!;
        const bounds = (out: Float64Array) => {
          for (let i = 0; i < candidates.count; i++) out[i] = score(i);
        };
        return { score, bounds, breakdown: () => [] };
      },
    };
    const cheapSlow = offer({ unitPriceMinor: 1n, leadTimeHours: 40, partnerId: 'ptn_a' });
    const dearFast = offer({ unitPriceMinor: 9999n, leadTimeHours: 4, partnerId: 'ptn_b' });
    const index = indexWith([cheapSlow, dearFast], { strategy: byLeadTime, signals: NEUTRAL_SIGNALS });
    const { results } = index.query(query(), NOW);
    expect(results.map((result) => result.offerId)).toEqual([dearFast.id, cheapSlow.id]);
    expect(results[0]?.breakdown.strategy).toBe('fastest_first');
  });

  it('returns at most the limit asked, the best first', () => {
    const list = Array.from({ length: 30 }, (_, n) =>
      offer({ partnerId: `ptn_${n}`, unitPriceMinor: BigInt(1000 + n) }),
    );
    const index = indexWith(list);
    for (const item of list) index.setPartner(active(item.partnerId));
    expect(ids(index, query({ limit: 5 }))).toEqual(list.slice(0, 5).map((item) => item.id));
  });
});

describe('the fairness controls', () => {
  const allocate = (index: OfferIndex, partnerId: string, atMs: number, n = 1) => {
    for (let k = 0; k < n; k++) {
      index.recordAllocation({
        id: `alc_${partnerId}_${atMs}_${k}`,
        capability: 'dyeing',
        region: 'eu-west',
        partnerId,
        atMs,
        reservationId: `res_${partnerId}_${atMs}_${k}`,
      });
    }
  };

  it('ranks a partner at or over its exposure cap below every partner under it, and says why', () => {
    const dominant = offer({ partnerId: 'ptn_a', unitPriceMinor: 500n });
    const rival = offer({ partnerId: 'ptn_b', unitPriceMinor: 1500n });
    const index = indexWith([dominant, rival], {
      settings: { exposureCapShare: 0.5, exposureMinAllocations: 4, exposureWindowDays: 30 },
    });
    expect(ids(index)).toEqual([dominant.id, rival.id]);
    allocate(index, 'ptn_a', NOW - DAY_MS, 3);
    // Three allocations are too few for a share to mean anything.
    expect(ids(index)).toEqual([dominant.id, rival.id]);
    allocate(index, 'ptn_b', NOW - DAY_MS, 1);
    const { results } = index.query(query(), NOW);
    expect(results.map((result) => result.offerId)).toEqual([rival.id, dominant.id]);
    expect(results[1]?.breakdown.adjustments).toEqual([
      {
        kind: 'exposure_cap',
        scoreDelta: 0,
        share: 0.75,
        cap: 0.5,
        partnerAllocations: 3,
        windowAllocations: 4,
        windowDays: 30,
      },
    ]);
    // The capped partner keeps its score: it is moved, not penalised.
    expect(results[1]!.score).toBeGreaterThan(results[0]!.score);
    // At exactly the cap (3 of 6) it is still capped; under it (3 of 7), it is not.
    allocate(index, 'ptn_c', NOW - DAY_MS, 2);
    expect(ids(index)).toEqual([rival.id, dominant.id]);
    allocate(index, 'ptn_c', NOW - 2 * DAY_MS, 1);
    expect(ids(index)).toEqual([dominant.id, rival.id]);
  });

  it('counts only allocations in the trailing window, and each allocation once', () => {
    const dominant = offer({ partnerId: 'ptn_a', unitPriceMinor: 500n });
    const rival = offer({ partnerId: 'ptn_b', unitPriceMinor: 1500n });
    const index = indexWith([dominant, rival], {
      settings: { exposureCapShare: 0.5, exposureMinAllocations: 2, exposureWindowDays: 7 },
    });
    allocate(index, 'ptn_a', NOW - 10 * DAY_MS, 5);
    expect(ids(index)).toEqual([dominant.id, rival.id]);
    allocate(index, 'ptn_a', NOW - DAY_MS, 2);
    // The same two allocations again (an event delivered twice) count once: 2 of 2 in the window.
    allocate(index, 'ptn_a', NOW - DAY_MS, 2);
    expect(ids(index)).toEqual([rival.id, dominant.id]);
    expect(index.query(query(), NOW).results[1]?.breakdown.adjustments[0]).toMatchObject({
      partnerAllocations: 2,
      windowAllocations: 2,
    });
    // Eight days later those allocations have left the window.
    expect(ids(index, query({ neededByMs: NOW + 10 * DAY_MS }), NOW + 8 * DAY_MS)).toEqual([
      dominant.id,
      rival.id,
    ]);
    // A longer window counts the older allocations again.
    index.setSettings('dyeing', {
      ...DEFAULT_SETTINGS,
      exposureCapShare: 0.5,
      exposureMinAllocations: 2,
      exposureWindowDays: 30,
    });
    expect(ids(index, query({ neededByMs: NOW + 10 * DAY_MS }), NOW + 8 * DAY_MS)).toEqual([
      rival.id,
      dominant.id,
    ]);
  });

  it('stops counting an allocation whose capacity was given back, in or before the window', () => {
    const dominant = offer({ partnerId: 'ptn_a', unitPriceMinor: 500n });
    const rival = offer({ partnerId: 'ptn_b', unitPriceMinor: 1500n });
    const index = indexWith([dominant, rival], {
      settings: { exposureCapShare: 0.5, exposureMinAllocations: 2, exposureWindowDays: 7 },
    });
    allocate(index, 'ptn_a', NOW - 10 * DAY_MS, 1);
    allocate(index, 'ptn_a', NOW - DAY_MS, 3);
    allocate(index, 'ptn_b', NOW - 2 * DAY_MS, 1);
    // 3 of 4 in the window: capped.
    expect(ids(index)).toEqual([rival.id, dominant.id]);
    // Two of its quotes lapsed: 1 of 2, at the cap still.
    index.withdrawAllocation(`res_ptn_a_${NOW - DAY_MS}_0`);
    index.withdrawAllocation(`res_ptn_a_${NOW - DAY_MS}_1`);
    expect(index.query(query(), NOW).results[1]?.breakdown.adjustments[0]).toMatchObject({
      partnerAllocations: 1,
      windowAllocations: 2,
    });
    // Another partner's allocation, and an older one given back outside the window (and a
    // reservation of no allocation), change the counts only where they belong.
    allocate(index, 'ptn_c', NOW - DAY_MS, 1);
    index.withdrawAllocation(`res_ptn_a_${NOW - 10 * DAY_MS}_0`);
    index.withdrawAllocation('res_unknown');
    expect(ids(index)).toEqual([dominant.id, rival.id]);
    index.setSettings('dyeing', {
      ...DEFAULT_SETTINGS,
      exposureCapShare: 0.3,
      exposureMinAllocations: 2,
      exposureWindowDays: 7,
    });
    const capped = index.query(query(), NOW).results.find((result) => result.offerId === dominant.id);
    expect(capped?.breakdown.adjustments[0]).toMatchObject({ partnerAllocations: 1, windowAllocations: 3 });
    // A longer window does not count the one given back either: 1 of 3.
    index.setSettings('dyeing', {
      ...DEFAULT_SETTINGS,
      exposureCapShare: 0.4,
      exposureMinAllocations: 2,
      exposureWindowDays: 30,
    });
    expect(ids(index)).toEqual([dominant.id, rival.id]);
    // Hearing of a withdrawn allocation again does not count it again.
    allocate(index, 'ptn_a', NOW - DAY_MS, 2);
    expect(ids(index)).toEqual([dominant.id, rival.id]);
  });

  it('boosts a new entrant for the configured number of days after it became active', () => {
    const incumbent = offer({ partnerId: 'ptn_a', unitPriceMinor: 1000n });
    const newcomer = offer({ partnerId: 'ptn_new', unitPriceMinor: 1100n });
    const index = indexWith([incumbent, newcomer], {
      settings: { newEntrantBoost: 0.5, newEntrantDays: 14 },
    });
    index.setPartner(active('ptn_new', { activatedAtMs: NOW - DAY_MS }));
    const { results } = index.query(query(), NOW);
    expect(results.map((result) => result.offerId)).toEqual([newcomer.id, incumbent.id]);
    expect(results[0]?.breakdown.adjustments).toEqual([
      { kind: 'new_entrant_boost', scoreDelta: 0.5, untilMs: NOW + 13 * DAY_MS },
    ]);
    const sum = results[0]!.breakdown.criteria.reduce((total, part) => total + part.contribution, 0);
    expect(results[0]!.score).toBeCloseTo(sum + 0.5, 12);
    const later = NOW + 13 * DAY_MS;
    expect(ids(index, query({ neededByMs: later + 2 * DAY_MS }), later)).toEqual([incumbent.id, newcomer.id]);
  });

  it('lets no partner crowd the top results with several offers', () => {
    const mine = [800n, 810n, 820n].map((price) => offer({ partnerId: 'ptn_a', unitPriceMinor: price }));
    const theirs = offer({ partnerId: 'ptn_b', unitPriceMinor: 1200n });
    const third = offer({ partnerId: 'ptn_c', unitPriceMinor: 1300n });
    const index = indexWith([...mine, theirs, third]);
    const { results } = index.query(query({ limit: 3 }), NOW);
    expect(results.map((result) => result.offerId)).toEqual([mine[0]!.id, theirs.id, third.id]);
    // With room left, a partner's further offers follow, marked as such.
    const all = index.query(query({ limit: 10 }), NOW).results;
    expect(all.map((result) => result.offerId)).toEqual([
      mine[0]!.id,
      theirs.id,
      third.id,
      mine[1]!.id,
      mine[2]!.id,
    ]);
    expect(all[3]?.breakdown.adjustments).toEqual([{ kind: 'diversity', scoreDelta: 0, maxPerPartner: 1 }]);
    index.setSettings('dyeing', { ...DEFAULT_SETTINGS, maxPerPartner: 2 });
    expect(ids(index, query({ limit: 3 }))).toEqual([mine[0]!.id, mine[1]!.id, theirs.id]);
  });
});

describe('the offer index keeps up with changes', () => {
  it('moves an offer that changes regions or capability, and forgets one removed', () => {
    const moving = offer({ regions: ['eu-west'], attributes: { color: 'red' } });
    const index = indexWith([moving]);
    index.upsertOffer({ ...moving, regions: ['eu-east'] });
    expect(ids(index)).toEqual([]);
    expect(ids(index, query({ region: 'eu-east' }))).toEqual([moving.id]);
    index.upsertOffer({ ...moving, capability: 'sewing', regions: ['eu-east'] });
    expect(ids(index, query({ region: 'eu-east' }))).toEqual([]);
    expect(ids(index, query({ capability: 'sewing', region: 'eu-east' }))).toEqual([moving.id]);
    expect(index.size).toBe(1);
    index.removeOffer(moving.id);
    expect(ids(index, query({ capability: 'sewing', region: 'eu-east' }))).toEqual([]);
    expect(index.size).toBe(0);
    expect(index.offer(moving.id)).toBeNull();
  });

  it("keeps an offer's reservations when it moves to another capability or period kind", () => {
    // The reproduction that settled it: reservations belong to the offer and the start of their
    // period (as the database's capacity counters do), not to its capability or period kind.
    const other = offer({ capability: 'sewing' });
    const moving = offer({ capacityPerPeriod: 3n, capacityPeriod: 'month', leadTimeHours: 0 });
    const index = indexWith([other, moving]);
    const thisMonth = periodStartMs(PERIOD_CODES.month, NOW);
    index.setReserved(moving.id, thisMonth, 3);
    index.upsertOffer({ ...moving, capability: 'sewing' });
    index.removeOffer(other.id);
    const sewing = query({ capability: 'sewing', quantity: 3, neededByMs: NOW + HOUR_MS });
    expect(index.query(sewing, NOW).candidates).toBe(0);
    expect(
      exclusionsOf(index, moving.id, { capability: 'sewing', quantity: 3, neededByMs: NOW + HOUR_MS }),
    ).toEqual(['capacity_exhausted']);
    // 1 June 2026 starts a month and a week: the booking counts for the week that starts then.
    index.upsertOffer({ ...moving, capability: 'sewing', capacityPeriod: 'week' });
    expect(index.query(sewing, NOW).candidates).toBe(0);
    expect(index.query({ ...sewing, neededByMs: NOW + 7 * DAY_MS }, NOW).candidates).toBe(1);
  });

  it('gives a reused row none of the attributes or reservations of the offer that had it', () => {
    const first = offer({ attributes: { color: 'red' }, capacityPerPeriod: 10n });
    const index = indexWith([first]);
    index.setReserved(first.id, periodStartMs(PERIOD_CODES.week, IN_TWO_DAYS - DAY_MS), 10);
    index.removeOffer(first.id);
    const second = offer({ attributes: {}, capacityPerPeriod: 10n });
    index.upsertOffer(second);
    expect(ids(index, query({ constraints: { color: { eq: 'red' } } }))).toEqual([]);
    expect(ids(index, query({ quantity: 10 }))).toEqual([second.id]);
  });

  it('applies the same change twice as once', () => {
    const item = offer();
    const index = indexWith([item, item]);
    index.upsertOffer(item);
    expect(ids(index)).toEqual([item.id]);
    expect(index.size).toBe(1);
    const allocation = {
      id: 'alc_1',
      capability: 'dyeing',
      region: 'eu-west',
      partnerId: 'ptn_a',
      atMs: NOW,
    };
    index.setSettings('dyeing', { ...DEFAULT_SETTINGS, exposureMinAllocations: 2 });
    index.recordAllocation(allocation);
    index.recordAllocation(allocation);
    index.upsertOffer(offer({ partnerId: 'ptn_b' }));
    // One allocation is below the minimum of two, so nobody is capped.
    expect(
      index.query(query(), NOW).results.every((result) => result.breakdown.adjustments.length === 0),
    ).toBe(true);
  });
});

describe('capacity periods', () => {
  it('start at midnight UTC, on Mondays and on the first of the month', () => {
    const at = Date.UTC(2026, 5, 3, 15, 30); // Wednesday 3 June 2026
    expect(new Date(periodStartMs(PERIOD_CODES.day, at)).toISOString()).toBe('2026-06-03T00:00:00.000Z');
    expect(new Date(periodStartMs(PERIOD_CODES.week, at)).toISOString()).toBe('2026-06-01T00:00:00.000Z');
    expect(new Date(periodStartMs(PERIOD_CODES.month, at)).toISOString()).toBe('2026-06-01T00:00:00.000Z');
    const sunday = Date.UTC(2026, 5, 7, 23, 59);
    expect(new Date(periodStartMs(PERIOD_CODES.week, sunday)).toISOString()).toBe('2026-06-01T00:00:00.000Z');
    const monday = Date.UTC(2026, 5, 8);
    expect(periodStartMs(PERIOD_CODES.week, monday)).toBe(monday);
    expect(new Date(periodStartMs(PERIOD_CODES.month, Date.UTC(2024, 1, 29, 12))).toISOString()).toBe(
      '2024-02-01T00:00:00.000Z',
    );
  });
});
