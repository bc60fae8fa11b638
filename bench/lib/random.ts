import { SeededRandom } from '../../packages/server/src/demo/seeded-random.js';

/**
 * Seeded randomness for benchmarks: the same seed gives the same data set and the same
 * queries on every machine, so two runs differ only in how fast they answer.
 */

/** The demo's generator (mulberry32, the same sequence for a seed), with what data sets need besides. */
export class Random extends SeededRandom {
  /** A log-normal value around `median`: prices and sizes are skewed, never negative. */
  logNormal(median: number, sigma: number): number {
    // Box–Muller; 1 - next() keeps the logarithm finite.
    const u = 1 - this.next();
    const v = this.next();
    const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    return median * Math.exp(sigma * normal);
  }
}

/**
 * Draws ranks 0..n-1 with probability proportional to 1 / (rank + 1)^exponent: a few items are
 * very popular and a long tail is rare, as offers are across capabilities and regions.
 */
export class Zipf {
  readonly #cumulative: Float64Array;

  constructor(
    readonly n: number,
    readonly exponent: number,
  ) {
    this.#cumulative = new Float64Array(n);
    let total = 0;
    for (let rank = 0; rank < n; rank++) {
      total += 1 / (rank + 1) ** exponent;
      this.#cumulative[rank] = total;
    }
    for (let rank = 0; rank < n; rank++) this.#cumulative[rank]! /= total;
  }

  sample(random: Random): number {
    const u = random.next();
    let low = 0;
    let high = this.n - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#cumulative[middle]! < u) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** `count` distinct ranks (count ≤ n), each drawn by popularity among those not yet drawn. */
  sampleDistinct(random: Random, count: number, into: number[]): number[] {
    into.length = 0;
    while (into.length < count) {
      const rank = this.sample(random);
      if (!into.includes(rank)) into.push(rank);
    }
    return into;
  }
}
