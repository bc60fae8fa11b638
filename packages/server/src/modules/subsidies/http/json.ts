import { z } from 'zod';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import { KINDS, PROGRAMME_STATUSES, SIDES } from '../domain/programme.js';
import type { ProgrammeReport } from '../service.js';
import type { Programme } from '../store/subsidies-store.js';

export const TargetingJson = z.object({
  partner_types: z.array(z.string()),
  regions: z.array(z.string()),
  customer_segments: z.array(z.string()),
  capabilities: z.array(z.string()),
});

export const ProgrammeJson = z
  .object({
    id: z.string(),
    object: z.literal('subsidy_programme'),
    name: z.string(),
    side: z.enum(SIDES).describe('Whose fees the programme pays: the partners’ or the customers’.'),
    kind: z
      .enum(KINDS)
      .describe(
        'How the subsidy is presented: `waiver` (the fee is not charged) or `rebate` (money given back after ' +
          'the fee). Both are posted alike: the budget pays the beneficiary when the fee is charged.',
      ),
    share_bps: z.number().int().describe('The share of each fee paid, in basis points; 10000 pays it all.'),
    budget: MoneyJson.describe('The budget funded on activation.'),
    cap_per_participant: MoneyJson.describe('The most one partner or customer receives, net of refunds.'),
    targeting: TargetingJson.describe('Who the programme is for; an empty list does not narrow it.'),
    starts_at: timestamp,
    ends_at: timestamp.describe('The programme pays until this time (excluded), then ends by itself.'),
    status: z.enum(PROGRAMME_STATUSES),
    funded: MoneyJson.describe('Everything moved into the budget: the activation and every top-up.'),
    spent: MoneyJson.describe('Paid to beneficiaries, net of refunds.'),
    returned: MoneyJson.describe('Moved back to the operator’s subsidy funding when the programme closed.'),
    remaining: MoneyJson.describe('Left in the budget: funded, less spent, less returned.'),
    applications_count: z.number().int(),
    created_at: timestamp,
    updated_at: timestamp,
    closed_at: timestamp.nullable(),
  })
  .meta({ id: 'SubsidyProgramme' });

/** A programme in the API's form; also the `programme` of the programme events. */
export const programmeJson = (programme: Programme): z.input<typeof ProgrammeJson> => ({
  id: programme.id,
  object: 'subsidy_programme',
  name: programme.name,
  side: programme.side,
  kind: programme.kind,
  share_bps: programme.shareBps,
  budget: moneyJson(programme.budgetMinor, programme.currency),
  cap_per_participant: moneyJson(programme.capPerParticipantMinor, programme.currency),
  targeting: {
    partner_types: [...programme.targeting.partnerTypes],
    regions: [...programme.targeting.regions],
    customer_segments: [...programme.targeting.customerSegments],
    capabilities: [...programme.targeting.capabilities],
  },
  starts_at: iso(programme.startsAt),
  ends_at: iso(programme.endsAt),
  status: programme.status,
  funded: moneyJson(programme.fundedMinor, programme.currency),
  spent: moneyJson(programme.spentMinor, programme.currency),
  returned: moneyJson(programme.returnedMinor, programme.currency),
  remaining: moneyJson(programme.remainingMinor, programme.currency),
  applications_count: programme.applications,
  created_at: iso(programme.createdAt),
  updated_at: iso(programme.updatedAt),
  closed_at: isoOrNull(programme.closedAt),
});

export const ParticipantSpendJson = z.object({
  participant_id: z.string().describe('The partner or customer the subsidies were for.'),
  spent: MoneyJson.describe('Received from the programme, net of refunds.'),
  applications_count: z.number().int(),
});

export const ReportJson = z
  .object({
    programme: ProgrammeJson,
    budget: MoneyJson,
    funded: MoneyJson,
    spent: MoneyJson,
    returned: MoneyJson,
    remaining: MoneyJson.describe('The balance of the programme’s budget account in the ledger.'),
    applications_count: z.number().int(),
    participants_count: z.number().int(),
    participants: z.object({
      data: z.array(ParticipantSpendJson),
      has_more: z.boolean(),
      next_after: z
        .string()
        .nullable()
        .describe('Pass as `after` to read the next page; null on the last page.'),
    }),
  })
  .meta({ id: 'SubsidyProgrammeReport' });

export const reportJson = (report: ProgrammeReport): z.input<typeof ReportJson> => {
  const { programme } = report;
  const money = (minor: bigint) => moneyJson(minor, programme.currency);
  return {
    programme: programmeJson(programme),
    budget: money(programme.budgetMinor),
    funded: money(programme.fundedMinor),
    spent: money(programme.spentMinor),
    returned: money(programme.returnedMinor),
    remaining: money(report.ledgerRemainingMinor),
    applications_count: programme.applications,
    participants_count: report.participantsCount,
    participants: {
      data: report.participants.items.map((item) => ({
        participant_id: item.participantId,
        spent: money(item.spentMinor),
        applications_count: item.applications,
      })),
      has_more: report.participants.hasMore,
      next_after: report.participants.hasMore ? (report.participants.items.at(-1)?.id ?? null) : null,
    },
  };
};
