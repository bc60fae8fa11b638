/** Finding and ranking the partners' offers that can serve a piece of demand. */
export {
  type Adjustment,
  type AttributeConstraint,
  type Exclusion,
  type ExclusionFilter,
  type ExplainAnswer,
  type ExplainRow,
  type IndexedOffer,
  type MatchAnswer,
  type MatchQuery,
  type MatchResult,
  OfferIndex,
  type OfferIndexOptions,
  type PartnerStanding,
  QUERY_LIMIT_MAX,
  type ScoreBreakdown,
} from './domain/offer-index.js';
export {
  type CandidateSet,
  type CriterionScore,
  NEUTRAL_SIGNALS,
  type PartnerSignals,
  type RankingStrategy,
  type Scoring,
  weightedSumStrategy,
} from './domain/ranking.js';
export { DEFAULT_SETTINGS, type MatchingSettings, type Weights } from './domain/settings.js';
export { MatchResultJson, matchResultJson } from './http/json.js';
export { matchingRoutes } from './http/routes.js';
export {
  ALLOCATION_CANDIDATES_MAX,
  type AllocationOutcome,
  type AllocationPick,
  type AllocationRequest,
  type AllocationsOutcome,
  createMatchingService,
  type ExplainRequest,
  type MatchingDeps,
  type MatchingService,
  type MatchRequest,
  type PlannedAllocation,
} from './service.js';
export type { Allocation } from './store/matching-store.js';
export { matchingMigrations } from './store/migrations.js';
