import { z } from 'zod';
import { ALL_OPERATOR_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { idSchema, MoneyInput, page, pageQuery, toPage } from '../../../kernel/http/schemas.js';
import { IDEMPOTENCY_MONEY_OUT_TTL_MS } from '../../../kernel/idempotency/idempotency-store.js';
import {
  BPS_MAX,
  DESTINATION_LENGTH_MAX,
  PAYOUT_SCHEDULES,
  PAYOUT_STATUSES,
  RESERVE_DAYS_MAX,
  RUN_PARTNERS_MAX,
  WEEKDAYS,
} from '../domain/payout.js';
import type { PayoutsService } from '../service.js';
import {
  PayoutBatchJson,
  PayoutJson,
  PayoutRunJson,
  PayoutSettingsJson,
  payoutBatchJson,
  payoutJson,
  payoutRunJson,
  payoutSettingsJson,
} from './json.js';

const PAYOUTS = ['Payouts'];
/** Who reads payouts: every operator, and a partner's staff for its own. */
const READERS = { operator: ALL_OPERATOR_ROLES, partner: ['owner', 'member'] } as const;
/** Who moves money out and decides how partners are paid. */
const MONEY_OPERATORS = { operator: ['admin', 'finance'] } as const;

const destination = z
  .string()
  .min(1)
  .max(DESTINATION_LENGTH_MAX)
  .describe("The provider's token for the partner's bank account (never the account number itself).");

const SettingsBody = z
  .strictObject({
    schedule: z.enum(PAYOUT_SCHEDULES),
    weekday: z
      .enum(WEEKDAYS)
      .nullable()
      .optional()
      .describe(
        'The weekday of a `weekly` schedule (UTC); a weekday the job missed is paid at its next run.',
      ),
    minimum: MoneyInput.describe('The smallest payout; the currency is the currency the partner is paid in.'),
    destination: destination.nullable().optional().describe('Leaving it out keeps the current destination.'),
    reserve_bps: z
      .number()
      .int()
      .min(0)
      .max(BPS_MAX)
      .describe('The share of new earnings held back, in basis points.'),
    reserve_days: z.number().int().min(0).max(RESERVE_DAYS_MAX).describe('How long each reserve hold lasts.'),
  })
  .meta({ id: 'NewPayoutSettings' });

const RunBody = z
  .strictObject({
    partner_ids: z
      .array(idSchema('ptn'))
      .min(1)
      .max(RUN_PARTNERS_MAX)
      .optional()
      .describe('Pay these partners whatever their schedule; without it, the partners due today.'),
    include_manual: z.boolean().default(false).describe('Also pay every partner on the `manual` schedule.'),
  })
  .meta({ id: 'NewPayoutRun' });

const partnerIdParams = z.strictObject({ partner_id: idSchema('ptn') });

export function payoutsRoutes(payouts: PayoutsService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/payouts/runs',
      summary: 'Run payouts',
      description:
        'Pays the partners due by their schedule (or the ones named, or every `manual` one with `include_manual`): per partner it releases matured reserve holds, nets what the partner owes, holds back the reserve share of its new earnings, and creates a payout of the rest when nothing is still owed and it reaches the minimum. The payouts are sent to the provider after the request commits; their status follows. Needs an `Idempotency-Key`. Errors: `idempotency.key_required`, `request.invalid`.',
      tags: PAYOUTS,
      access: MONEY_OPERATORS,
      audit: { action: 'payouts.run' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      body: RunBody,
      status: 202,
      response: PayoutRunJson,
      handler: async (ctx, { body }) =>
        payoutRunJson(
          await payouts.prepareRun(ctx, { partnerIds: body.partner_ids, includeManual: body.include_manual }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/payouts',
      summary: 'List payouts',
      description: 'Payouts, newest first; a partner sees only its own. Errors: `request.invalid`.',
      tags: PAYOUTS,
      access: READERS,
      query: z.strictObject({
        ...pageQuery,
        partner_id: idSchema('ptn').optional(),
        batch_id: idSchema('pob').optional(),
        status: z.enum(PAYOUT_STATUSES).optional(),
      }),
      response: page(PayoutJson),
      handler: async (ctx, { query }) =>
        toPage(
          await payouts.listPayouts(ctx, {
            limit: query.limit,
            after: query.after,
            partnerId: query.partner_id,
            batchId: query.batch_id,
            status: query.status,
          }),
          payoutJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/payouts/:payout_id',
      summary: 'Get a payout',
      description:
        "One payout; another partner's is as absent as a missing one. Errors: `payouts.payout_not_found`.",
      tags: PAYOUTS,
      access: READERS,
      params: z.strictObject({ payout_id: idSchema('po') }),
      response: PayoutJson,
      handler: async (ctx, { params }) => payoutJson(await payouts.getPayout(ctx, params.payout_id)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/payout-batches',
      summary: 'List payout batches',
      description:
        'Payout runs, newest first, with how many payouts each created. Errors: `request.invalid`.',
      tags: PAYOUTS,
      access: { operator: ALL_OPERATOR_ROLES },
      query: z.strictObject(pageQuery),
      response: page(PayoutBatchJson),
      handler: async (ctx, { query }) => toPage(await payouts.listBatches(ctx, query), payoutBatchJson),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/payout-batches/:payout_batch_id',
      summary: 'Get a payout batch',
      description:
        'One payout run; list its payouts with `GET /v1/payouts?batch_id=`. Errors: `payouts.batch_not_found`.',
      tags: PAYOUTS,
      access: { operator: ALL_OPERATOR_ROLES },
      params: z.strictObject({ payout_batch_id: idSchema('pob') }),
      response: PayoutBatchJson,
      handler: async (ctx, { params }) =>
        payoutBatchJson(await payouts.getBatch(ctx, params.payout_batch_id)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/payout-settings',
      summary: "Get a partner's payout settings",
      description:
        'How and when the partner is paid. Errors: `participants.partner_not_found`, `payouts.settings_not_found` (none set yet).',
      tags: PAYOUTS,
      access: READERS,
      params: partnerIdParams,
      response: PayoutSettingsJson,
      handler: async (ctx, { params }) =>
        payoutSettingsJson(await payouts.getSettings(ctx, params.partner_id)),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/partners/:partner_id/payout-settings',
      summary: "Set a partner's payout settings",
      description:
        'Sets the schedule, minimum (whose currency is the payout currency), destination, and rolling reserve. Audited. ' +
        'A change of an existing destination holds payouts for 72 hours, as `PUT /v1/partners/{partner_id}/payout-destination` does. ' +
        'Errors: `participants.partner_not_found`, `payouts.settings_invalid`, `request.invalid`.',
      tags: PAYOUTS,
      access: MONEY_OPERATORS,
      audit: { action: 'payouts.settings.update', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: SettingsBody,
      response: PayoutSettingsJson,
      handler: async (ctx, { params, body }) =>
        payoutSettingsJson(
          await payouts.setSettings(ctx, params.partner_id, {
            schedule: body.schedule,
            weekday: body.weekday,
            minimum: body.minimum,
            destination: body.destination,
            reserveBps: body.reserve_bps,
            reserveDays: body.reserve_days,
          }),
        ),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/partners/:partner_id/payout-destination',
      summary: "Change a partner's payout destination",
      description:
        "Where the partner's payouts go: its owner may change it, and operators on its behalf. Audited, and the partner is " +
        'told by a `payout_settings.updated` event. A change of an existing destination holds the partner’s payouts for ' +
        '72 hours (`destination_held_until`; runs skip it as `destination_held`), its time to object when the change was ' +
        'not its own. Errors: `participants.partner_not_found`, `payouts.settings_not_found`, `payouts.settings_invalid`, `request.invalid`.',
      tags: PAYOUTS,
      access: { operator: ['admin', 'finance'], partner: ['owner'] },
      audit: { action: 'payouts.destination.update', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: z.strictObject({ destination }),
      response: PayoutSettingsJson,
      handler: async (ctx, { params, body }) =>
        payoutSettingsJson(await payouts.setDestination(ctx, params.partner_id, body.destination)),
    }),
  ];
}
