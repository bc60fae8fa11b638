import { z } from 'zod';
import type { Actor } from '../../../kernel/actor.js';
import { iso, isoOrNull, timestamp } from '../../../kernel/http/schemas.js';
import { type Currency, formatAmount } from '../../../kernel/money.js';
import { ReservationJson, reservationJson, seesPartnerPrices } from '../../catalog/index.js';
import type { Adjustment, ExplainRow, MatchResult } from '../domain/offer-index.js';
import { type AllocationOutcome, type DefaultSettings, settingsJson } from '../service.js';
import type { StoredSettings } from '../store/matching-store.js';

const MoneyJson = z.object({
  amount: z.string().describe('A decimal string with the currency\'s decimal places, such as "12.50".'),
  currency: z.string(),
});

const CriterionJson = z.object({
  criterion: z.string().describe('`price`, `quality`, `reliability`, `lead_time` or `affinity`.'),
  value: z
    .union([z.string(), z.number()])
    .describe(
      'The value measured: the unit price as a decimal string (in the currency of `unit_price`), the lead ' +
        'time in hours, or the signal on [0, 1].',
    ),
  normalized: z.number().describe('The value on [0, 1], where 1 is the best among the candidates.'),
  weight: z.number(),
  contribution: z.number().describe('`normalized × weight`: what this criterion added to the score.'),
});

const AdjustmentJson = z
  .discriminatedUnion('kind', [
    z.object({
      kind: z.literal('new_entrant_boost'),
      score_delta: z.number().describe('Added to the score.'),
      until: timestamp.describe('When the partner stops counting as new.'),
    }),
    z.object({
      kind: z.literal('exposure_cap'),
      score_delta: z.literal(0),
      share: z.number().describe("The partner's share of the capability and region's recent allocations."),
      cap: z.number(),
      partner_allocations: z.number().int(),
      window_allocations: z.number().int(),
      window_days: z.number().int(),
    }),
    z.object({
      kind: z.literal('diversity'),
      score_delta: z.literal(0),
      max_per_partner: z.number().int(),
    }),
  ])
  .describe(
    'Why the offer moved besides its criteria: a new-entrant boost adds to the score; a partner at its ' +
      'exposure cap ranks below every partner under it; an offer beyond its partner’s `max_per_partner` ' +
      'ranks after the other partners’ best offers.',
  );

export const MatchResultJson = z
  .object({
    rank: z.number().int().describe('1 for the best.'),
    offer_id: z.string(),
    partner_id: z.string(),
    unit_price: MoneyJson.nullable().describe(
      'Null for customers, who see partners’ prices only in what they buy (quotes and orders).',
    ),
    lead_time_hours: z.number(),
    start_by: timestamp.describe(
      'When the work must start to be done by `needed_by`: capacity is counted in the period containing it.',
    ),
    free_capacity: z.number().int().describe('Units free in that capacity period.'),
    score: z
      .number()
      .nullable()
      .describe(
        'The sum of the contributions and of the score deltas; null for customers, to whom the price criterion ' +
          'is not shown (the score would tell its contribution).',
      ),
    breakdown: z.object({
      strategy: z.string().describe('The ranking strategy that scored the criteria.'),
      criteria: z.array(CriterionJson),
      adjustments: z.array(AdjustmentJson),
    }),
  })
  .meta({ id: 'MatchResult' });

export const MatchJson = z
  .object({
    object: z.literal('match'),
    capability: z.string(),
    region: z.string(),
    quantity: z.number().int(),
    needed_by: timestamp,
    candidates: z.number().int().describe('Offers that passed every filter.'),
    data: z.array(MatchResultJson),
  })
  .meta({ id: 'Match' });

export const ExclusionJson = z.object({
  filter: z
    .enum([
      'capability_mismatch',
      'region_not_served',
      'offer_not_active',
      'partner_not_active',
      'rules_not_accepted',
      'certification_missing',
      'quantity_out_of_range',
      'lead_time_too_long',
      'capacity_exhausted',
      'attribute_mismatch',
    ])
    .describe('The filter the offer failed.'),
  detail: z.string(),
});

export const ExplanationJson = z
  .object({
    object: z.literal('match_explanation'),
    capability: z.string(),
    region: z.string(),
    quantity: z.number().int(),
    needed_by: timestamp,
    candidates: z.number().int().describe('Offers that passed every filter, whoever they belong to.'),
    total_rows: z.number().int().describe('Rows the explanation has; `data` holds the first `limit`.'),
    data: z.array(
      z.object({
        offer_id: z.string(),
        partner_id: z.string(),
        rank: z.number().int().nullable().describe('Its place among all candidates; null when excluded.'),
        result: MatchResultJson.nullable(),
        excluded: z.array(ExclusionJson).describe('Every filter the offer failed; empty when ranked.'),
      }),
    ),
  })
  .meta({ id: 'MatchExplanation' });

export const AllocationJson = z
  .object({
    id: z.string(),
    object: z.literal('allocation'),
    capability: z.string(),
    region: z.string(),
    partner_id: z.string(),
    offer_id: z.string(),
    customer_id: z.string().nullable(),
    quantity: z.number().int(),
    reference: z.string().nullable(),
    rank: z.number().int().describe('The rank of the offer that took the demand.'),
    score: z.number(),
    allocated_at: timestamp,
    reservation: ReservationJson,
    skipped: z
      .array(z.object({ offer_id: z.string(), code: z.string() }))
      .describe('Better-ranked offers the catalog refused (their capacity was taken meanwhile), in order.'),
    result: MatchResultJson,
  })
  .meta({ id: 'Allocation' });

const WeightsJson = z.object({
  price: z.number(),
  quality: z.number(),
  reliability: z.number(),
  lead_time: z.number(),
  affinity: z.number(),
});

export const SettingsJson = z
  .object({
    object: z.literal('matching_settings'),
    capability: z.string(),
    weights: WeightsJson,
    exposure_cap: z.object({
      share: z
        .number()
        .describe(
          'The largest share of allocations one partner may hold; 1 turns the cap off. Allocations count while their capacity is held or used.',
        ),
      window_days: z.number().int(),
      min_allocations: z
        .number()
        .int()
        .describe('Allocations the capability and region must have in the window before the cap applies.'),
    }),
    new_entrant: z.object({
      boost: z.number().describe("Added to a new partner's score."),
      days: z.number().int().describe('How long after first becoming active a partner counts as new.'),
    }),
    max_per_partner: z.number().int().describe('Offers of one partner among the top results.'),
    is_default: z
      .boolean()
      .describe('Whether these are the defaults (the capability has no settings of its own).'),
    updated_at: timestamp.nullable(),
  })
  .meta({ id: 'MatchingSettings' });

/**
 * A ranked offer, as `reader` may see it: a customer sees neither its price nor the price
 * criterion and score, from which the price's contribution would follow (see `OfferJson`).
 */
export function matchResultJson(
  result: MatchResult,
  reader: Actor | null = null,
): z.input<typeof MatchResultJson> {
  const currency = result.currency as Currency;
  const prices = reader === null || seesPartnerPrices(reader);
  return {
    rank: result.rank,
    offer_id: result.offerId,
    partner_id: result.partnerId,
    unit_price: prices ? { amount: formatAmount(BigInt(result.unitPriceMinor), currency), currency } : null,
    lead_time_hours: result.leadTimeHours,
    start_by: iso(new Date(result.startMs)),
    free_capacity: result.freeCapacity,
    score: prices ? result.score : null,
    breakdown: {
      strategy: result.breakdown.strategy,
      criteria: result.breakdown.criteria
        .filter((part) => prices || part.criterion !== 'price')
        .map((part) => ({
          criterion: part.criterion,
          value: part.criterion === 'price' ? formatAmount(BigInt(part.raw), currency) : part.raw,
          normalized: part.normalized,
          weight: part.weight,
          contribution: part.contribution,
        })),
      adjustments: result.breakdown.adjustments.map(adjustmentJson),
    },
  };
}

function adjustmentJson(adjustment: Adjustment): z.input<typeof AdjustmentJson> {
  switch (adjustment.kind) {
    case 'new_entrant_boost':
      return {
        kind: adjustment.kind,
        score_delta: adjustment.scoreDelta,
        until: iso(new Date(adjustment.untilMs)),
      };
    case 'exposure_cap':
      return {
        kind: adjustment.kind,
        score_delta: 0,
        share: adjustment.share,
        cap: adjustment.cap,
        partner_allocations: adjustment.partnerAllocations,
        window_allocations: adjustment.windowAllocations,
        window_days: adjustment.windowDays,
      };
    case 'diversity':
      return { kind: adjustment.kind, score_delta: 0, max_per_partner: adjustment.maxPerPartner };
  }
}

export function explainRowJson(row: ExplainRow) {
  return {
    offer_id: row.offerId,
    partner_id: row.partnerId,
    rank: row.rank,
    result: row.result ? matchResultJson(row.result) : null,
    excluded: row.excluded.map((exclusion) => ({ filter: exclusion.filter, detail: exclusion.detail })),
  };
}

export function allocationJson({
  allocation,
  reservation,
  result,
}: AllocationOutcome): z.input<typeof AllocationJson> {
  return {
    id: allocation.id,
    object: 'allocation',
    capability: allocation.capability,
    region: allocation.region,
    partner_id: allocation.partnerId,
    offer_id: allocation.offerId,
    customer_id: allocation.customerId,
    quantity: Number(allocation.quantity),
    reference: allocation.reference,
    rank: allocation.rank,
    score: allocation.score,
    allocated_at: iso(allocation.allocatedAt),
    reservation: reservationJson(reservation),
    skipped: allocation.skipped.map((entry) => ({ offer_id: entry.offerId, code: entry.code })),
    result: matchResultJson(result),
  };
}

export function storedSettingsJson(stored: StoredSettings | DefaultSettings): z.input<typeof SettingsJson> {
  return {
    object: 'matching_settings',
    capability: stored.capability,
    ...settingsJson(stored.settings),
    is_default: stored.updatedAt === null,
    updated_at: isoOrNull(stored.updatedAt),
  };
}
