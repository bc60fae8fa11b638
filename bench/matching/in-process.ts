import {
  type IndexedOffer,
  indexedOffer,
  type MatchQuery,
  OfferIndex,
} from '../../packages/server/src/modules/matching/domain/offer-index.js';
import { liveBytes } from '../lib/memory.js';
import { Latencies, type LatencySummary } from '../lib/stats.js';
import { type BenchQuery, DAY_MS, type Dataset, QUERY_MIXES, type QueryMix } from './dataset.js';

/**
 * The matcher's in-memory index, in this process: built from the generated data set (timed,
 * and its memory measured), then asked the query mix one query at a time.
 */

export interface IndexMeasurement {
  /** Time spent feeding the index, not generating what it is fed. */
  readonly buildMs: number;
  /** Live heap and array buffers the index holds once built, before any query. */
  readonly bytes: number;
  /** The same after every query mix has run: the hot spot's bucket has its packed copy. */
  readonly bytesAfterQueries: number;
  /**
   * The same after one more query in every capability and region that has offers: every bucket
   * large enough keeps its packed copy, the most memory the index takes for these offers.
   */
  readonly bytesAllBuckets: number;
  /** Buckets (capability and region) queried for `bytesAllBuckets`. */
  readonly bucketsQueried: number;
  readonly perMix: Record<QueryMix, LatencySummary>;
  readonly answers: Record<QueryMix, string[][]>;
  readonly candidates: Record<QueryMix, number[]>;
}

/** Offers are generated (untimed) and fed (timed) in chunks, so that few exist at once. */
const CHUNK_OFFERS = 10_000;
const WARMUP_MS = 3_000;

/** A benchmark query as the index takes it. */
export function matchQuery(query: BenchQuery): MatchQuery {
  return {
    capability: query.capability,
    region: query.region,
    quantity: query.quantity,
    neededByMs: query.neededBy.getTime(),
    constraints: query.constraints,
    limit: query.limit,
  };
}

/**
 * Builds an index of the whole data set, as the matching service would from the database:
 * capabilities' required certifications, partners' standing, valid certifications, offers and
 * the capacity already booked. Returns it with the time spent inside the index's methods.
 */
export function buildIndex(dataset: Dataset): { index: OfferIndex; buildMs: number } {
  const nowMs = dataset.now.getTime();
  let buildMs = 0;
  let started = performance.now();
  const index = new OfferIndex();
  for (const capability of dataset.capabilities) {
    index.setRequiredCertifications(capability.key, capability.requiredCertifications);
  }
  // Ids are generated afresh, not taken from the data set, so that the index's copies count as its memory.
  for (const [p, partner] of dataset.partners.entries()) {
    index.setPartner({
      partnerId: dataset.partnerId(p),
      engaged: partner.state === 'active' || partner.state === 'probation',
      rulesValidUntilMs: partner.rulesAccepted ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY,
      activatedAtMs: partner.activatedAt.getTime(),
    });
  }
  for (const [k, certification] of dataset.certifications.entries()) {
    // The database hands over only certifications valid now, as the standards module does.
    if (certification.validUntil.getTime() <= nowMs) continue;
    index.grantCertification({
      id: dataset.certificationId(k),
      partnerId: dataset.partnerId(certification.partnerIndex),
      programKey: certification.programKey,
      validFromMs: certification.validFrom.getTime(),
      validUntilMs: certification.validUntil.getTime(),
    });
  }
  buildMs += performance.now() - started;

  for (let from = 0; from < dataset.offerCount; from += CHUNK_OFFERS) {
    const to = Math.min(dataset.offerCount, from + CHUNK_OFFERS);
    const chunk: IndexedOffer[] = [];
    for (let i = from; i < to; i++) chunk.push(indexedOffer(dataset.offer(i)));
    started = performance.now();
    for (const offer of chunk) index.upsertOffer(offer);
    buildMs += performance.now() - started;
  }

  for (let from = 0; from < dataset.usageCount; from += CHUNK_OFFERS) {
    const to = Math.min(dataset.usageCount, from + CHUNK_OFFERS);
    const chunk = [];
    for (let u = from; u < to; u++) {
      const usage = dataset.usage(u);
      chunk.push({
        offerId: dataset.offerId(usage.offerIndex),
        periodStartMs: usage.periodStart.getTime(),
        reserved: Number(usage.reserved),
      });
    }
    started = performance.now();
    for (const usage of chunk) index.setReserved(usage.offerId, usage.periodStartMs, usage.reserved);
    buildMs += performance.now() - started;
  }
  // As the service does once its start-up load is over.
  started = performance.now();
  index.compact();
  buildMs += performance.now() - started;
  return { index, buildMs };
}

/**
 * Builds the index from the data set (timed, memory measured), warms it up, then times every
 * query of each mix, keeping the answers of the first `keepAnswers` for comparison.
 */
export async function measureIndex(
  dataset: Dataset,
  queries: Record<QueryMix, BenchQuery[]>,
  options: { warmup: number; keepAnswers: number; timeLimitMs: number },
): Promise<IndexMeasurement> {
  const before = liveBytes();
  const { index, buildMs } = buildIndex(dataset);
  const bytes = liveBytes() - before;
  const nowMs = dataset.now.getTime();

  const matchQueries = Object.fromEntries(
    QUERY_MIXES.map((mix) => [mix, queries[mix].map(matchQuery)]),
  ) as Record<QueryMix, MatchQuery[]>;
  /*
   * Warm-up: every mix, at least `warmup` queries and `WARMUP_MS` each, so that the optimising
   * compiler (whose threads compete for the same two cores) has finished with every path
   * before anything is timed.
   */
  for (const mix of QUERY_MIXES) {
    const mixQueries = matchQueries[mix];
    const until = performance.now() + WARMUP_MS;
    for (let q = 0; q < options.warmup || performance.now() < until; q++) {
      index.query(mixQueries[q % mixQueries.length]!, nowMs);
    }
  }
  const perMix = {} as Record<QueryMix, LatencySummary>;
  const answers = {} as Record<QueryMix, string[][]>;
  const candidates = {} as Record<QueryMix, number[]>;
  for (const mix of QUERY_MIXES) {
    const latencies = new Latencies(matchQueries[mix].length);
    answers[mix] = [];
    candidates[mix] = [];
    const deadline = performance.now() + options.timeLimitMs;
    for (const [q, query] of matchQueries[mix].entries()) {
      if (q >= options.keepAnswers && performance.now() > deadline) break;
      const started = performance.now();
      const answer = index.query(query, nowMs);
      latencies.add(performance.now() - started);
      if (q < options.keepAnswers) {
        answers[mix].push(answer.results.map((result) => result.offerId));
        candidates[mix].push(answer.candidates);
      }
    }
    perMix[mix] = latencies.summary();
  }
  // Memory once the queries built the packed copies they need, then once every bucket has one.
  const bytesAfterQueries = liveBytes() - before;
  let bucketsQueried = 0;
  for (const capability of dataset.capabilities) {
    for (const region of dataset.regionCodes) {
      const answer = index.query(
        { capability: capability.key, region, quantity: 1, neededByMs: nowMs + 30 * DAY_MS, limit: 10 },
        nowMs,
      );
      if (answer.candidates > 0) bucketsQueried++;
    }
  }
  const bytesAllBuckets = liveBytes() - before;
  // Read after the measurement, so that the index is still live while it is measured.
  if (index.size !== dataset.offerCount) throw new Error('The index lost offers while it was queried');
  return {
    buildMs,
    bytes,
    bytesAfterQueries,
    bytesAllBuckets,
    bucketsQueried,
    perMix,
    answers,
    candidates,
  };
}
