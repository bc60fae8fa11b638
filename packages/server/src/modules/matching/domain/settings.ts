/**
 * How one capability's offers are ranked and kept fair. Operators tune these per capability;
 * a capability without settings of its own uses `DEFAULT_SETTINGS`.
 */
export interface Weights {
  readonly price: number;
  readonly quality: number;
  readonly reliability: number;
  readonly leadTime: number;
  readonly affinity: number;
}

export interface MatchingSettings {
  readonly weights: Weights;
  /**
   * The largest share (0 to 1) of a capability and region's allocations one partner may hold
   * over the trailing window before it is ranked below every partner under the cap; 1 turns
   * the cap off.
   */
  readonly exposureCapShare: number;
  readonly exposureWindowDays: number;
  /**
   * Allocations the capability and region must have had in the window before the cap applies:
   * over a handful of allocations a share says nothing (the first allocation is a 100 % share).
   */
  readonly exposureMinAllocations: number;
  /** Added to the score of a partner's offers while it is new. */
  readonly newEntrantBoost: number;
  /** How long after its first activation a partner counts as new. */
  readonly newEntrantDays: number;
  /** Offers of one partner among the top results before its other offers give way to other partners. */
  readonly maxPerPartner: number;
}

export const DEFAULT_WEIGHTS: Weights = {
  price: 0.35,
  quality: 0.2,
  reliability: 0.2,
  leadTime: 0.15,
  affinity: 0.1,
};

export const DEFAULT_SETTINGS: MatchingSettings = {
  weights: DEFAULT_WEIGHTS,
  exposureCapShare: 0.5,
  exposureWindowDays: 30,
  exposureMinAllocations: 10,
  newEntrantBoost: 0.1,
  newEntrantDays: 30,
  maxPerPartner: 1,
};

/** Limits of the settings, which the API checks and the index relies on. */
export const WEIGHT_MAX = 10;
export const EXPOSURE_WINDOW_DAYS_MAX = 365;
export const EXPOSURE_MIN_ALLOCATIONS_MAX = 100_000;
export const NEW_ENTRANT_BOOST_MAX = 1;
export const NEW_ENTRANT_DAYS_MAX = 365;
export const MAX_PER_PARTNER_MAX = 10;
