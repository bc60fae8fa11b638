import type { Selectable } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { PartnerId, SubsidyApplicationId, SubsidyProgrammeId } from '../../../kernel/ids.js';
import type { Kind, ProgrammeStatus, Side, Targeting } from '../domain/programme.js';
import type { SubsidyApplicationsTable, SubsidyProgrammesTable } from './tables.js';

/** A subsidy programme with its running totals. */
export interface Programme {
  readonly id: SubsidyProgrammeId;
  readonly name: string;
  readonly side: Side;
  readonly kind: Kind;
  readonly shareBps: number;
  readonly currency: string;
  readonly budgetMinor: bigint;
  readonly capPerParticipantMinor: bigint;
  readonly targeting: Targeting;
  readonly startsAt: Date;
  readonly endsAt: Date;
  readonly status: ProgrammeStatus;
  readonly fundedMinor: bigint;
  readonly spentMinor: bigint;
  readonly returnedMinor: bigint;
  /** What is left in the budget account: funded, less spent, less returned. */
  readonly remainingMinor: bigint;
  readonly fundings: number;
  readonly applications: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly closedAt: Date | null;
}

/** One request to subsidise a fee and what it paid. */
export interface Application {
  readonly id: SubsidyApplicationId;
  readonly idempotencyKey: string;
  readonly fingerprint: string;
  readonly programmeId: SubsidyProgrammeId | null;
  /** The partner or customer the subsidy was for. */
  readonly participantId: string | null;
  readonly cause: { readonly kind: string; readonly id: string };
  readonly feeMinor: bigint;
  readonly currency: string;
  readonly amountMinor: bigint;
  readonly refundedMinor: bigint;
  readonly beneficiaryAccountId: string | null;
  readonly transactionId: string | null;
  readonly createdAt: Date;
}

/** What one participant received from one programme, net of refunds. */
export interface ParticipantSpend {
  readonly participantId: PartnerId | string;
  readonly spentMinor: bigint;
  readonly applications: number;
}

export const toProgramme = (row: Selectable<SubsidyProgrammesTable>): Programme => ({
  id: row.id as SubsidyProgrammeId,
  name: row.name,
  side: row.side,
  kind: row.kind,
  shareBps: row.share_bps,
  currency: row.currency,
  budgetMinor: row.budget_minor,
  capPerParticipantMinor: row.cap_per_participant_minor,
  targeting: {
    partnerTypes: row.partner_types,
    regions: row.regions,
    customerSegments: row.customer_segments,
    capabilities: row.capabilities,
  },
  startsAt: row.starts_at,
  endsAt: row.ends_at,
  status: row.status,
  fundedMinor: row.funded_minor,
  spentMinor: row.spent_minor,
  returnedMinor: row.returned_minor,
  remainingMinor: row.funded_minor - row.spent_minor - row.returned_minor,
  fundings: row.fundings,
  applications: row.applications,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  closedAt: row.closed_at,
});

export const toApplication = (row: Selectable<SubsidyApplicationsTable>): Application => ({
  id: row.id as SubsidyApplicationId,
  idempotencyKey: row.idempotency_key,
  fingerprint: row.fingerprint,
  programmeId: row.programme_id as SubsidyProgrammeId | null,
  participantId: row.participant_id,
  cause: { kind: row.cause_kind, id: row.cause_id },
  feeMinor: row.fee_minor,
  currency: row.currency,
  amountMinor: row.amount_minor,
  refundedMinor: row.refunded_minor,
  beneficiaryAccountId: row.beneficiary_account_id,
  transactionId: row.transaction_id,
  createdAt: row.created_at,
});

export async function findProgramme(
  db: Executor,
  id: string,
  lock: 'none' | 'update' = 'none',
): Promise<Programme | undefined> {
  let query = db.selectFrom('subsidy_programmes').selectAll().where('id', '=', id);
  if (lock === 'update') query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toProgramme(row) : undefined;
}

export async function findApplicationByKey(
  db: Executor,
  idempotencyKey: string,
  lock: 'none' | 'update' = 'none',
): Promise<Application | undefined> {
  let query = db.selectFrom('subsidy_applications').selectAll().where('idempotency_key', '=', idempotencyKey);
  if (lock === 'update') query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toApplication(row) : undefined;
}

export async function participantSpent(
  db: Executor,
  programmeId: string,
  participantId: string,
): Promise<bigint> {
  const row = await db
    .selectFrom('subsidy_participants')
    .select('spent_minor')
    .where('programme_id', '=', programmeId)
    .where('participant_id', '=', participantId)
    .executeTakeFirst();
  return row?.spent_minor ?? 0n;
}
