import type { Weights } from './settings.js';

/**
 * What the index knows of each candidate when it ranks them, column by column: entry `i` of
 * the candidate arrays describes candidate `i`, for `i < count`; the partner signals are
 * indexed by partner number (`partner[i]`), because a partner's facts are the same for all of
 * its offers. The arrays are the index's scratch space and may be longer than needed; a
 * strategy reads them and must not keep them.
 */
export interface CandidateSet {
  readonly count: number;
  /** The partner number of each candidate. */
  readonly partner: Int32Array;
  /** Unit price in minor units of the candidate's currency. */
  readonly priceMinor: Float64Array;
  /** The currency, as an index below `currencyCount`: prices of different currencies never meet. */
  readonly currency: Uint16Array;
  readonly currencyCount: number;
  readonly leadTimeHours: Float64Array;
  /** Each partner's signals, in [0, 1], by partner number. */
  readonly quality: Float64Array;
  readonly reliability: Float64Array;
  readonly affinity: Float64Array;
}

export type Criterion = 'price' | 'quality' | 'reliability' | 'lead_time' | 'affinity';

/** One criterion's part in a score: the value, its normalised form, its weight and what it added. */
export interface CriterionScore {
  readonly criterion: Criterion;
  /** The value as measured: minor units for price, hours for lead time, [0, 1] for the signals. */
  readonly raw: number;
  /** The value on [0, 1], where 1 is best. */
  readonly normalized: number;
  readonly weight: number;
  /** `normalized × weight`: what the criterion added to the score. */
  readonly contribution: number;
}

/** A strategy's account of the scores it gave, read only for the candidates shown. */
export interface Scoring {
  breakdown(candidate: number): CriterionScore[];
}

/**
 * A way of scoring candidates. The index filters, then hands the candidates to the strategy,
 * then applies the fairness controls to the scores it returns; so a strategy decides what is
 * good, never what is allowed or fair. It writes one score per candidate into `out` (higher
 * is better) and must not allocate per candidate: it runs on every query.
 */
export interface RankingStrategy {
  readonly name: string;
  score(candidates: CandidateSet, weights: Weights, out: Float64Array): Scoring;
}

/**
 * Facts about partners that other modules compute: quality and reliability from scorecards,
 * affinity from customers' order history. Every value is in [0, 1]. The index reads a
 * partner's quality and reliability when it first meets the partner and again when told to
 * refresh (`OfferIndex.refreshSignals`), not per query; it reads a customer's affinities once
 * per query, as the few partners the customer has any affinity with (any other partner: 0), so
 * that a query over thousands of partners does not make thousands of calls.
 */
export interface PartnerSignals {
  quality(partnerId: string): number;
  reliability(partnerId: string): number;
  affinities(customerId: string): ReadonlyMap<string, number>;
}

const NO_AFFINITIES: ReadonlyMap<string, number> = new Map();

/**
 * The signals until scorecards and order history exist: every partner is average (0.5) and no
 * customer prefers anyone (0), so they rank no partner above another.
 */
export const NEUTRAL_SIGNALS: PartnerSignals = {
  quality: () => 0.5,
  reliability: () => 0.5,
  affinities: () => NO_AFFINITIES,
};

/**
 * The default strategy: a weighted sum of five criteria, each normalised to [0, 1]. Price and
 * lead time are normalised against the other candidates (the cheapest is 1, the dearest 0;
 * the fastest 1, the slowest 0; all equal gives 1), prices only against prices of the same
 * currency, since Baton converts no currencies. The signals are used as they come.
 */
export const weightedSumStrategy: RankingStrategy = {
  name: 'weighted_sum',
  score(candidates, weights, out) {
    const { count, partner, priceMinor, currency, leadTimeHours, quality, reliability, affinity } =
      candidates;
    const minPrice = new Float64Array(candidates.currencyCount).fill(Number.POSITIVE_INFINITY);
    const maxPrice = new Float64Array(candidates.currencyCount).fill(Number.NEGATIVE_INFINITY);
    let minLead = Number.POSITIVE_INFINITY;
    let maxLead = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) {
      const c = currency[i]!;
      const price = priceMinor[i]!;
      if (price < minPrice[c]!) minPrice[c] = price;
      if (price > maxPrice[c]!) maxPrice[c] = price;
      const lead = leadTimeHours[i]!;
      if (lead < minLead) minLead = lead;
      if (lead > maxLead) maxLead = lead;
    }
    const { price: wPrice, quality: wQuality, reliability: wReliability } = weights;
    const { leadTime: wLeadTime, affinity: wAffinity } = weights;
    for (let i = 0; i < count; i++) {
      const c = currency[i]!;
      const p = partner[i]!;
      out[i] =
        wPrice * normalizeLower(priceMinor[i]!, minPrice[c]!, maxPrice[c]!) +
        wQuality * quality[p]! +
        wReliability * reliability[p]! +
        wLeadTime * normalizeLower(leadTimeHours[i]!, minLead, maxLead) +
        wAffinity * affinity[p]!;
    }
    return {
      breakdown(i) {
        const c = currency[i]!;
        const p = partner[i]!;
        const parts: [Criterion, number, number, number][] = [
          [
            'price',
            priceMinor[i]!,
            normalizeLower(priceMinor[i]!, minPrice[c]!, maxPrice[c]!),
            weights.price,
          ],
          ['quality', quality[p]!, quality[p]!, weights.quality],
          ['reliability', reliability[p]!, reliability[p]!, weights.reliability],
          [
            'lead_time',
            leadTimeHours[i]!,
            normalizeLower(leadTimeHours[i]!, minLead, maxLead),
            weights.leadTime,
          ],
          ['affinity', affinity[p]!, affinity[p]!, weights.affinity],
        ];
        return parts.map(([criterion, raw, normalized, weight]) => ({
          criterion,
          raw,
          normalized,
          weight,
          contribution: weight * normalized,
        }));
      },
    };
  },
};

/** Where `value` lies between the lowest (1) and the highest (0) of its kind; 1 when all are equal. */
export function normalizeLower(value: number, min: number, max: number): number {
  return max > min ? (max - value) / (max - min) : 1;
}

/** A signal as the index uses it: clamped to [0, 1], with the neutral value for anything not a number. */
export function clampSignal(value: number, neutral: number): number {
  if (!Number.isFinite(value)) return neutral;
  return value < 0 ? 0 : value > 1 ? 1 : value;
}
