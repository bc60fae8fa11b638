import { z } from 'zod';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import { PAYOUT_SCHEDULES, PAYOUT_STATUSES, SKIP_REASONS, WEEKDAYS } from '../domain/payout.js';
import type { PartnerOutcome, RunResult } from '../service.js';
import type { Payout, PayoutBatch, PayoutSettings } from '../store/payouts-store.js';

export const PayoutJson = z
  .object({
    id: z.string(),
    object: z.literal('payout'),
    batch_id: z.string(),
    partner_id: z.string(),
    amount: MoneyJson,
    destination: z.string().describe("The provider's token for the partner's bank account."),
    status: z
      .enum(PAYOUT_STATUSES)
      .describe(
        "`pending`: the money left the payable, the provider has not confirmed it yet; `sent`: the provider accepted it; `paid`: the provider paid it; `failed`: it did not, and the money went back to the payable; `returned`: paid, then sent back by the partner's bank, and the money went back to the payable. Only a `paid` payout changes again, to `returned`.",
      ),
    failure_code: z
      .string()
      .nullable()
      .describe("Why the payout failed or was returned, in the provider's words."),
    provider_id: z.string().nullable(),
    netted: MoneyJson.describe("What the same run settled of the partner's receivable first."),
    reserved: MoneyJson.describe('What the same run held back in the rolling reserve.'),
    created_at: timestamp,
    updated_at: timestamp,
    settled_at: timestamp.nullable().describe('When it was paid or failed.'),
    returned_at: timestamp.nullable().describe("When the partner's bank sent it back (status `returned`)."),
  })
  .meta({ id: 'Payout' });

export const PayoutBatchJson = z
  .object({
    id: z.string(),
    object: z.literal('payout_batch'),
    created_at: timestamp,
    actor_kind: z.string(),
    actor_id: z.string().nullable(),
    partner_ids: z
      .array(z.string())
      .nullable()
      .describe('The partners the run was asked for; null: those due.'),
    include_manual: z.boolean(),
    payout_count: z.number().int(),
  })
  .meta({ id: 'PayoutBatch' });

export const PayoutSettingsJson = z
  .object({
    object: z.literal('payout_settings'),
    partner_id: z.string(),
    schedule: z.enum(PAYOUT_SCHEDULES),
    weekday: z.enum(WEEKDAYS).nullable(),
    minimum: MoneyJson,
    destination: z.string().nullable(),
    destination_held_until: timestamp
      .nullable()
      .describe(
        'After a change of destination, payouts wait until then (72 hours), skipped as `destination_held`: ' +
          'time for the partner, told of every change, to object.',
      ),
    destination_failure: z
      .object({ code: z.string(), failed_at: timestamp })
      .nullable()
      .describe(
        'A payout to this destination failed, or came back from the bank, for a reason that says the account ' +
          'cannot be paid (`account_closed`, `no_account`, …): runs skip the partner as `destination_failed` ' +
          'until a destination is set again, the same one once the account is fixed (which holds nothing).',
      ),
    reserve_bps: z.number().int(),
    reserve_days: z.number().int(),
    last_run_on: z.string().nullable().describe('The UTC date of the last run that considered the partner.'),
    updated_at: timestamp,
  })
  .meta({ id: 'PayoutSettings' });

export const PartnerOutcomeJson = z.object({
  partner_id: z.string(),
  payout_id: z.string().nullable(),
  skipped: z.enum(SKIP_REASONS).nullable().describe('Why the partner was paid nothing, or null.'),
  released_minor: z.string(),
  netted_minor: z.string(),
  reserved_minor: z.string(),
});

export const PayoutRunJson = z
  .object({
    object: z.literal('payout_run'),
    batch: PayoutBatchJson,
    payouts: z.array(PayoutJson),
    outcomes: z.array(PartnerOutcomeJson),
  })
  .meta({ id: 'PayoutRun' });

export const payoutJson = (payout: Payout): z.input<typeof PayoutJson> => ({
  id: payout.id,
  object: 'payout',
  batch_id: payout.batchId,
  partner_id: payout.partnerId,
  amount: moneyJson(payout.amountMinor, payout.currency),
  destination: payout.destination,
  status: payout.status,
  failure_code: payout.failureCode,
  provider_id: payout.providerId,
  netted: moneyJson(payout.nettedMinor, payout.currency),
  reserved: moneyJson(payout.reservedMinor, payout.currency),
  created_at: iso(payout.createdAt),
  updated_at: iso(payout.updatedAt),
  settled_at: isoOrNull(payout.settledAt),
  returned_at: isoOrNull(payout.returnedAt),
});

export const payoutBatchJson = (batch: PayoutBatch): z.input<typeof PayoutBatchJson> => ({
  id: batch.id,
  object: 'payout_batch',
  created_at: iso(batch.createdAt),
  actor_kind: batch.actor.kind,
  actor_id: batch.actor.id,
  partner_ids: batch.partnerIds ? [...batch.partnerIds] : null,
  include_manual: batch.includeManual,
  payout_count: batch.payoutCount,
});

export const payoutSettingsJson = (settings: PayoutSettings): z.input<typeof PayoutSettingsJson> => ({
  object: 'payout_settings',
  partner_id: settings.partnerId,
  schedule: settings.schedule,
  weekday: settings.weekday,
  minimum: moneyJson(settings.minimumMinor, settings.currency),
  destination: settings.destination,
  destination_held_until: isoOrNull(settings.destinationHeldUntil),
  destination_failure: settings.destinationFailure
    ? { code: settings.destinationFailure.code, failed_at: iso(settings.destinationFailure.at) }
    : null,
  reserve_bps: settings.reserveBps,
  reserve_days: settings.reserveDays,
  last_run_on: settings.lastRunOn,
  updated_at: iso(settings.updatedAt),
});

const outcomeJson = (outcome: PartnerOutcome): z.input<typeof PartnerOutcomeJson> => ({
  partner_id: outcome.partnerId,
  payout_id: outcome.payout?.id ?? null,
  skipped: outcome.skipped,
  released_minor: outcome.releasedMinor.toString(),
  netted_minor: outcome.nettedMinor.toString(),
  reserved_minor: outcome.reservedMinor.toString(),
});

export const payoutRunJson = (run: RunResult): z.input<typeof PayoutRunJson> => ({
  object: 'payout_run',
  batch: payoutBatchJson(run.batch),
  payouts: run.payouts.map(payoutJson),
  outcomes: run.outcomes.map(outcomeJson),
});
