import type { Weights } from './settings.js';

/**
 * What the index knows of each candidate when it ranks them, column by column: entry `i` of
 * the candidate arrays describes candidate `i`, for `i < count`; the partner signals are
 * indexed by partner number (`partner[i]`), because a partner's facts are the same for all of
 * its offers. The arrays are the index's scratch space and may be longer than needed; a
 * strategy reads them and must not keep them beyond the query.
 *
 * The index gathers the ranges of price and lead time while it filters, so that a strategy
 * that normalises over the candidates need not read them all once more, and it gives upper
 * bounds of the partner signals, so that a strategy can bound a score without reading them.
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
  /** The lowest and highest price among the candidates, per currency (+∞ and −∞ for a currency none has). */
  readonly minPriceMinor: Float64Array;
  readonly maxPriceMinor: Float64Array;
  readonly leadTimeHours: Float64Array;
  /** The shortest and longest lead time among the candidates. */
  readonly minLeadTimeHours: number;
  readonly maxLeadTimeHours: number;
  /** Each partner's signals, in [0, 1], by partner number. */
  readonly quality: Float64Array;
  readonly reliability: Float64Array;
  readonly affinity: Float64Array;
  /** Values no candidate's partner exceeds (not necessarily reached): bounds, not maxima. */
  readonly qualityMax: number;
  readonly reliabilityMax: number;
  readonly affinityMax: number;
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

/**
 * A strategy's scores for one query's candidates. The index asks for every candidate's bound
 * at once, and for the `score` only of those whose bound could still reach the results, so a
 * bound should be cheaper than a score (it may ignore what it cannot know cheaply, such as a
 * partner's signals, by assuming their best). `score` and `bounds` run per candidate and must
 * not allocate.
 */
export interface Scoring {
  /** The candidate's score: higher is better. */
  score(candidate: number): number;
  /**
   * Writes into `out[i]`, for every candidate `i`, a number never below `score(i)`, computed
   * in floating point so that it stays above it (the index drops a candidate whose bound is
   * below the results it already has). A strategy with nothing cheaper writes the scores.
   */
  bounds(out: Float64Array): void;
  /** How the score came about; read only for the candidates shown. */
  breakdown(candidate: number): CriterionScore[];
}

/**
 * A way of scoring candidates. The index filters, then hands the candidates to the strategy,
 * then applies the fairness controls to the scores it returns; so a strategy decides what is
 * good, never what is allowed or fair. `prepare` runs once per query.
 */
export interface RankingStrategy {
  readonly name: string;
  prepare(candidates: CandidateSet, weights: Weights): Scoring;
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
  prepare(candidates, weights) {
    return new WeightedSumScoring(candidates, weights);
  },
};

/**
 * The weighted sum over one query's candidates. Its bound is the same sum with each signal at
 * its upper bound: the terms are added in the same order as in the score, and rounding is
 * monotonic, so the bound is never below the score, even in floating point.
 */
class WeightedSumScoring implements Scoring {
  readonly #c: CandidateSet;
  readonly #weights: Weights;
  /** The signal terms of the bound: each weight times the highest value its signal may have. */
  readonly #qualityBound: number;
  readonly #reliabilityBound: number;
  readonly #affinityBound: number;

  constructor(candidates: CandidateSet, weights: Weights) {
    this.#c = candidates;
    this.#weights = weights;
    // A signal lies in [0, 1]: a negative weight's term is at most 0.
    this.#qualityBound = weights.quality >= 0 ? weights.quality * candidates.qualityMax : 0;
    this.#reliabilityBound = weights.reliability >= 0 ? weights.reliability * candidates.reliabilityMax : 0;
    this.#affinityBound = weights.affinity >= 0 ? weights.affinity * candidates.affinityMax : 0;
  }

  score(i: number): number {
    const c = this.#c;
    const w = this.#weights;
    const p = c.partner[i]!;
    return (
      w.price * this.#price(i) +
      w.quality * c.quality[p]! +
      w.reliability * c.reliability[p]! +
      w.leadTime * this.#leadTime(i) +
      w.affinity * c.affinity[p]!
    );
  }

  bounds(out: Float64Array): void {
    const { count, priceMinor, currency, minPriceMinor, maxPriceMinor, leadTimeHours } = this.#c;
    const { minLeadTimeHours: minLead, maxLeadTimeHours: maxLead } = this.#c;
    const { price: wPrice, leadTime: wLeadTime } = this.#weights;
    const qualityBound = this.#qualityBound;
    const reliabilityBound = this.#reliabilityBound;
    const affinityBound = this.#affinityBound;
    for (let i = 0; i < count; i++) {
      const c = currency[i]!;
      out[i] =
        wPrice * normalizeLower(priceMinor[i]!, minPriceMinor[c]!, maxPriceMinor[c]!) +
        qualityBound +
        reliabilityBound +
        wLeadTime * normalizeLower(leadTimeHours[i]!, minLead, maxLead) +
        affinityBound;
    }
  }

  breakdown(i: number): CriterionScore[] {
    const c = this.#c;
    const w = this.#weights;
    const p = c.partner[i]!;
    const parts: [Criterion, number, number, number][] = [
      ['price', c.priceMinor[i]!, this.#price(i), w.price],
      ['quality', c.quality[p]!, c.quality[p]!, w.quality],
      ['reliability', c.reliability[p]!, c.reliability[p]!, w.reliability],
      ['lead_time', c.leadTimeHours[i]!, this.#leadTime(i), w.leadTime],
      ['affinity', c.affinity[p]!, c.affinity[p]!, w.affinity],
    ];
    return parts.map(([criterion, raw, normalized, weight]) => ({
      criterion,
      raw,
      normalized,
      weight,
      contribution: weight * normalized,
    }));
  }

  #price(i: number): number {
    const c = this.#c;
    const currency = c.currency[i]!;
    return normalizeLower(c.priceMinor[i]!, c.minPriceMinor[currency]!, c.maxPriceMinor[currency]!);
  }

  #leadTime(i: number): number {
    const c = this.#c;
    return normalizeLower(c.leadTimeHours[i]!, c.minLeadTimeHours, c.maxLeadTimeHours);
  }
}

/** Where `value` lies between the lowest (1) and the highest (0) of its kind; 1 when all are equal. */
export function normalizeLower(value: number, min: number, max: number): number {
  return max > min ? (max - value) / (max - min) : 1;
}

/** A signal as the index uses it: clamped to [0, 1], with the neutral value for anything not a number. */
export function clampSignal(value: number, neutral: number): number {
  if (!Number.isFinite(value)) return neutral;
  return value < 0 ? 0 : value > 1 ? 1 : value;
}
