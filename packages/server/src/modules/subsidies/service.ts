import { createHash } from 'node:crypto';
import { type Selectable, sql, type UpdateObject } from 'kysely';
import { assert } from '../../kernel/assert.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { requireTransaction } from '../../kernel/database/database.js';
import type { Tables } from '../../kernel/database/tables.js';
import { type FieldError, isDomainError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { newId } from '../../kernel/ids.js';
import { AMOUNT_MINOR_MAX, isCurrency, parseAmount, parseCurrency } from '../../kernel/money.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import {
  type AccountKey,
  type AccountRef,
  CAUSE_KINDS,
  type Cause,
  type LedgerService,
} from '../ledger/index.js';
import {
  APPLY_KEY_LENGTH_MAX,
  byPreference,
  CLOSED_STATUSES,
  isEligible,
  type Kind,
  type Occasion,
  type ProgrammeStatus,
  SIDES,
  type Side,
  subsidyAmount,
  type Targeting,
  termsErrors,
} from './domain/programme.js';
import { subsidiesErrors } from './errors.js';
import { programmeJson } from './http/json.js';
import {
  type Application,
  findApplicationByKey,
  findProgramme,
  type ParticipantSpend,
  type Programme,
  participantSpent,
  toProgramme,
} from './store/subsidies-store.js';
import type { SubsidyProgrammesTable } from './store/tables.js';

/** The job that ends the programmes whose window is over and returns their leftover budget. */
export const END_PROGRAMMES_JOB = 'subsidies.end-programmes';
/** Programmes one run of the job ends, each in its own transaction. */
export const END_BATCH_MAX = 100;

/** An amount as a request states it: a decimal string in major units and a currency. */
export interface MoneyText {
  readonly amount: string;
  readonly currency: string;
}

/** A programme as the operator states it. */
export interface ProgrammeInput {
  readonly name: string;
  readonly side: Side;
  readonly kind: Kind;
  /** The share of each fee the programme pays, in basis points: 10 000 pays it all. */
  readonly shareBps: number;
  readonly budget: MoneyText;
  readonly capPerParticipant: MoneyText;
  readonly startsAt: Date;
  readonly endsAt: Date;
  readonly targeting?: Partial<Targeting> | undefined;
}

export interface ProgrammeFilter extends PageRequest {
  readonly status?: ProgrammeStatus | undefined;
  readonly side?: Side | undefined;
}

/** A fee to subsidise, as an order-money workflow asks. */
export interface ApplyInput {
  readonly side: Side;
  /** Required for partner-side subsidies: the partner whose fee it is. */
  readonly partnerId?: string | undefined;
  readonly partnerType?: string | undefined;
  /** Required for customer-side subsidies: the customer whose fee it is. */
  readonly customerId?: string | undefined;
  readonly customerSegment?: string | undefined;
  readonly region: string;
  readonly capability?: string | undefined;
  readonly feeMinor: bigint;
  readonly currency: string;
  /** The ledger cause of the subsidy's transaction: the order or leg whose fee it pays. */
  readonly cause: Cause;
  /** The account paid: the partner's payable, or the order's customer escrow. */
  readonly beneficiary: AccountRef;
  /** Chosen by the caller and deterministic from the cause: a replay spends nothing more. */
  readonly idempotencyKey: string;
  /** Pays no more than this (what a quote promised); left out, only the programme's terms limit it. */
  readonly maxAmountMinor?: bigint | undefined;
}

/** A fee a subsidy would pay for, as a quote asks before anything is posted. */
export type PreviewInput = Omit<ApplyInput, 'cause' | 'beneficiary' | 'idempotencyKey' | 'maxAmountMinor'>;

/** What programmes' targets are matched against, of an application or a preview. */
function occasionOf(input: PreviewInput): Occasion {
  return {
    side: input.side,
    partnerType: input.partnerType,
    customerSegment: input.customerSegment,
    region: input.region,
    capability: input.capability,
    currency: input.currency,
  };
}

/** The programmes that may pay for an occasion, in the order an application tries them. */
function preferred<P extends Programme>(programmes: readonly P[], occasion: Occasion, now: Date): P[] {
  return programmes.filter((programme) => isEligible(programme, occasion, now)).sort(byPreference);
}

export interface PreviewedSubsidy extends AppliedSubsidy {
  readonly kind: Kind;
}

export interface AppliedSubsidy {
  readonly programmeId: string;
  readonly amountMinor: bigint;
}

export interface RefundInput {
  /** The refund's own key: a replay returns the original refund. */
  readonly idempotencyKey: string;
  /** The `idempotencyKey` of the application to give (part of) back. */
  readonly originalKey: string;
  readonly amountMinor: bigint;
}

export interface RefundedSubsidy {
  readonly programmeId: string;
  readonly amountMinor: bigint;
  readonly transactionId: string;
  readonly replayed: boolean;
}

export interface ProgrammeReport {
  readonly programme: Programme;
  /** The balance of the programme's budget account in the ledger, read with the report. */
  readonly ledgerRemainingMinor: bigint;
  readonly participantsCount: number;
  readonly participants: Page<ParticipantSpend & { readonly id: string }>;
}

export type SubsidiesService = ReturnType<typeof createSubsidiesService>;

const budgetAccount = (programme: { id: string; currency: string }): AccountKey => ({
  purpose: 'subsidy_budget',
  ownerId: programme.id,
  currency: programme.currency,
});
const fundingAccount = (currency: string): AccountKey => ({
  purpose: 'subsidy_funding',
  ownerId: 'platform',
  currency,
});

const isOperatorOrSystem = (ctx: Context) => ctx.actor.kind === 'operator' || ctx.actor.kind === 'system';

/** Parses a request's amount, reporting a problem as a field error at `path`. */
function parseMoney(
  text: MoneyText,
  path: string,
  errors: FieldError[],
): { minor: bigint; currency: string } {
  try {
    const currency = parseCurrency(text.currency);
    return { minor: parseAmount(text.amount, currency), currency };
  } catch (error) {
    if (!isDomainError(error)) throw error;
    errors.push({ path, rule: error.code, message: error.message });
    return { minor: 0n, currency: text.currency };
  }
}

function fingerprintOf(input: ApplyInput): string {
  const beneficiary =
    typeof input.beneficiary === 'string'
      ? input.beneficiary
      : `${input.beneficiary.purpose}/${input.beneficiary.ownerId}/${input.beneficiary.currency}`;
  return createHash('sha256')
    .update(
      JSON.stringify([
        input.side,
        input.partnerId ?? null,
        input.partnerType ?? null,
        input.customerId ?? null,
        input.customerSegment ?? null,
        input.region,
        input.capability ?? null,
        input.feeMinor.toString(),
        input.currency,
        input.cause.kind,
        input.cause.id,
        beneficiary,
        // Only when given, so that the applications made before it existed replay as they were.
        ...(input.maxAmountMinor !== undefined ? [input.maxAmountMinor.toString()] : []),
      ]),
    )
    .digest('hex');
}

function applyErrors(input: ApplyInput): FieldError[] {
  const errors: FieldError[] = [];
  if (!SIDES.includes(input.side))
    errors.push({ path: '/side', rule: 'enum', message: 'partner or customer' });
  if (input.side === 'partner' && !input.partnerId) {
    errors.push({
      path: '/partner_id',
      rule: 'required',
      message: 'a partner-side subsidy needs the partner',
    });
  }
  if (input.side === 'customer' && !input.customerId) {
    errors.push({
      path: '/customer_id',
      rule: 'required',
      message: 'a customer-side subsidy needs the customer',
    });
  }
  if (input.feeMinor < 0n || input.feeMinor > AMOUNT_MINOR_MAX) {
    errors.push({ path: '/fee_minor', rule: 'range', message: 'must be zero or more' });
  }
  if (input.maxAmountMinor !== undefined && input.maxAmountMinor < 0n) {
    errors.push({ path: '/max_amount_minor', rule: 'range', message: 'must be zero or more' });
  }
  if (!isCurrency(input.currency))
    errors.push({ path: '/currency', rule: 'currency', message: 'not ISO 4217' });
  if (!CAUSE_KINDS.includes(input.cause.kind) || input.cause.id.length === 0) {
    errors.push({ path: '/cause', rule: 'cause', message: 'needs a ledger cause kind and an id' });
  }
  if (input.idempotencyKey.length === 0 || input.idempotencyKey.length > APPLY_KEY_LENGTH_MAX) {
    errors.push({
      path: '/idempotency_key',
      rule: 'length',
      message: `1 to ${APPLY_KEY_LENGTH_MAX} characters`,
    });
  }
  return errors;
}

export function createSubsidiesService({ ledger }: { ledger: LedgerService }) {
  /** Programmes are the operator's: to anyone else they are as absent as missing ones. */
  async function visibleProgramme(ctx: Context, id: string) {
    if (!isOperatorOrSystem(ctx)) throw subsidiesErrors.programmeNotFound(id);
    const programme = await findProgramme(ctx.db, id);
    if (!programme) throw subsidiesErrors.programmeNotFound(id);
    return programme;
  }

  async function programmeEvent(ctx: Context, type: string, programme: Programme, extra = {}) {
    await appendEvent(ctx, {
      type,
      subjectId: programme.id,
      data: { programme: programmeJson(programme), ...extra },
      audience: [],
    });
  }

  /**
   * Locks the programme's budget account, then the programme: the one order every writer of a
   * programme takes them in, so that applications, fundings and closings never deadlock. The
   * budget returned is the ledger's balance, which decides what can be spent; the programme's own
   * totals move with it in the same transactions (and the tests check that they agree).
   */
  async function lockProgramme(
    ctx: Context,
    id: string,
  ): Promise<{ programme: Programme; budgetMinor: bigint }> {
    const found = await findProgramme(ctx.db, id);
    if (!found) throw subsidiesErrors.programmeNotFound(id);
    const budget = await ledger.lockBalance(ctx, budgetAccount(found));
    const programme = await findProgramme(ctx.db, id, 'update');
    assert(programme !== undefined, 'a programme is never deleted');
    return { programme, budgetMinor: budget.balanceMinor };
  }

  async function updateProgramme(
    ctx: Context,
    id: string,
    changes: UpdateObject<Tables, 'subsidy_programmes', 'subsidy_programmes'>,
  ): Promise<Programme> {
    const row = await ctx.db
      .updateTable('subsidy_programmes')
      .set({ ...changes, updated_at: ctx.now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toProgramme(row);
  }

  /** Moves `amountMinor` from the operator's subsidy funding into the programme's budget. */
  async function fund(ctx: Context, programme: Programme, amountMinor: bigint, activate: boolean) {
    const n = programme.fundings + 1;
    const { transaction } = await ledger.post(ctx, {
      idempotencyKey: `subsidy:${programme.id}:funding:${n}`,
      description: `${activate ? 'Budget' : 'Top-up'} of the subsidy programme ${programme.name}`,
      cause: { kind: 'subsidy', id: programme.id },
      entries: [
        { account: fundingAccount(programme.currency), direction: 'debit', amountMinor },
        { account: budgetAccount(programme), direction: 'credit', amountMinor },
      ],
      metadata: { programme_id: programme.id },
    });
    const inWindow = ctx.now.getTime() < programme.endsAt.getTime();
    const status: ProgrammeStatus =
      activate || (programme.status === 'exhausted' && inWindow) ? 'active' : programme.status;
    const updated = await updateProgramme(ctx, programme.id, {
      funded_minor: sql`funded_minor + ${amountMinor}::int8`,
      fundings: n,
      status,
    });
    return { updated, transactionId: transaction.id };
  }

  /** Ends or cancels a locked programme, returning what is left in its budget to the operator. */
  async function close(
    ctx: Context,
    programme: Programme,
    budgetMinor: bigint,
    status: 'ended' | 'cancelled',
  ): Promise<Programme> {
    if (budgetMinor > 0n) {
      await ledger.post(ctx, {
        idempotencyKey: `subsidy:${programme.id}:close`,
        description: `Unspent budget of the subsidy programme ${programme.name}, returned`,
        cause: { kind: 'subsidy', id: programme.id },
        entries: [
          { account: budgetAccount(programme), direction: 'debit', amountMinor: budgetMinor },
          { account: fundingAccount(programme.currency), direction: 'credit', amountMinor: budgetMinor },
        ],
        metadata: { programme_id: programme.id },
      });
    }
    const closed = await updateProgramme(ctx, programme.id, {
      returned_minor: sql`returned_minor + ${budgetMinor}::int8`,
      status,
      closed_at: ctx.now,
    });
    await programmeEvent(ctx, `subsidy_programme.${status}`, closed, {
      previous_status: programme.status,
      returned_minor: budgetMinor.toString(),
    });
    return closed;
  }

  async function audit(ctx: Context, action: string, programmeId: string, details?: Record<string, unknown>) {
    if (ctx.actor.kind !== 'operator') return;
    await recordAudit(ctx, {
      action: `subsidies.programme.${action}`,
      targetId: programmeId,
      outcome: 'succeeded',
      ...(details ? { details } : {}),
    });
  }

  /** The applications already made with a key: a replay, or another request's key. */
  function replayOf(existing: Application, fingerprint: string): AppliedSubsidy | null {
    if (existing.fingerprint !== fingerprint) throw subsidiesErrors.keyReused(existing.idempotencyKey);
    return existing.programmeId && existing.amountMinor > 0n
      ? { programmeId: existing.programmeId, amountMinor: existing.amountMinor }
      : null;
  }

  return {
    /**
     * Creates a programme as a `draft`; nothing moves until it is activated.
     *
     * @throws DomainError `subsidies.programme_invalid` (with an error per field)
     */
    async createProgramme(ctx: Context, input: ProgrammeInput): Promise<Programme> {
      requireTransaction(ctx.db);
      const errors: FieldError[] = [];
      const budget = parseMoney(input.budget, '/budget', errors);
      const cap = parseMoney(input.capPerParticipant, '/cap_per_participant', errors);
      if (errors.length === 0 && budget.currency !== cap.currency) {
        errors.push({
          path: '/cap_per_participant/currency',
          rule: 'currency',
          message: `must be the budget's currency, ${budget.currency}`,
        });
      }
      const targeting: Targeting = {
        partnerTypes: input.targeting?.partnerTypes ?? [],
        regions: input.targeting?.regions ?? [],
        customerSegments: input.targeting?.customerSegments ?? [],
        capabilities: input.targeting?.capabilities ?? [],
      };
      errors.push(
        ...termsErrors(
          {
            name: input.name,
            side: input.side,
            kind: input.kind,
            shareBps: input.shareBps,
            currency: budget.currency,
            budgetMinor: errors.some((e) => e.path.startsWith('/budget')) ? 1n : budget.minor,
            capPerParticipantMinor: errors.some((e) => e.path.startsWith('/cap')) ? 1n : cap.minor,
            startsAt: input.startsAt,
            endsAt: input.endsAt,
            targeting,
          },
          ctx.now,
        ),
      );
      if (errors.length > 0) throw subsidiesErrors.programmeInvalid(errors);
      const row = await ctx.db
        .insertInto('subsidy_programmes')
        .values({
          id: newId('sbp'),
          name: input.name,
          side: input.side,
          kind: input.kind,
          share_bps: input.shareBps,
          currency: budget.currency,
          budget_minor: budget.minor,
          cap_per_participant_minor: cap.minor,
          partner_types: [...targeting.partnerTypes],
          regions: [...targeting.regions],
          customer_segments: [...targeting.customerSegments],
          capabilities: [...targeting.capabilities],
          starts_at: input.startsAt,
          ends_at: input.endsAt,
          status: 'draft',
          funded_minor: 0n,
          spent_minor: 0n,
          returned_minor: 0n,
          fundings: 0,
          applications: 0,
          created_at: ctx.now,
          updated_at: ctx.now,
          closed_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const programme = toProgramme(row);
      await programmeEvent(ctx, 'subsidy_programme.created', programme);
      await audit(ctx, 'create', programme.id);
      return programme;
    },

    /** @throws DomainError `subsidies.programme_not_found` */
    async getProgramme(ctx: Context, id: string): Promise<Programme> {
      return visibleProgramme(ctx, id);
    },

    /** Programmes, oldest first, with their totals; operators only (others see none). */
    async listProgrammes(ctx: Context, filter: ProgrammeFilter): Promise<Page<Programme>> {
      if (!isOperatorOrSystem(ctx)) return { items: [], hasMore: false };
      let query = ctx.db
        .selectFrom('subsidy_programmes')
        .selectAll()
        .orderBy('id')
        .limit(filter.limit + 1);
      if (filter.status) query = query.where('status', '=', filter.status);
      if (filter.side) query = query.where('side', '=', filter.side);
      if (filter.after) query = query.where('id', '>', filter.after);
      return pageOf(await query.execute(), filter.limit, toProgramme);
    },

    /**
     * Funds a draft programme with its budget (debit `subsidy_funding`, credit the programme's
     * `subsidy_budget`) and makes it `active`; it pays from `starts_at` on.
     *
     * @throws DomainError `subsidies.programme_not_found`, `subsidies.status_not_allowed`,
     *   `subsidies.window_over`
     */
    async activate(ctx: Context, id: string): Promise<Programme> {
      requireTransaction(ctx.db);
      await visibleProgramme(ctx, id);
      const { programme } = await lockProgramme(ctx, id);
      if (programme.status !== 'draft')
        throw subsidiesErrors.statusNotAllowed(id, programme.status, 'activated');
      if (programme.endsAt.getTime() <= ctx.now.getTime())
        throw subsidiesErrors.windowOver(id, programme.endsAt);
      const { updated, transactionId } = await fund(ctx, programme, programme.budgetMinor, true);
      await programmeEvent(ctx, 'subsidy_programme.activated', updated, { transaction_id: transactionId });
      await audit(ctx, 'activate', id, { transaction_id: transactionId });
      return updated;
    },

    /**
     * Adds to an active or exhausted programme's budget; an exhausted one whose window lasts
     * becomes `active` again.
     *
     * @throws DomainError `subsidies.programme_not_found`, `subsidies.status_not_allowed`,
     *   `subsidies.window_over`, `subsidies.amount_invalid`
     */
    async topUp(ctx: Context, id: string, amount: MoneyText): Promise<Programme> {
      requireTransaction(ctx.db);
      await visibleProgramme(ctx, id);
      const { programme } = await lockProgramme(ctx, id);
      if (programme.status !== 'active' && programme.status !== 'exhausted') {
        throw subsidiesErrors.statusNotAllowed(id, programme.status, 'topped up');
      }
      if (programme.endsAt.getTime() <= ctx.now.getTime())
        throw subsidiesErrors.windowOver(id, programme.endsAt);
      const errors: FieldError[] = [];
      const parsed = parseMoney(amount, '/amount', errors);
      if (errors.length === 0 && parsed.currency !== programme.currency) {
        errors.push({ path: '/amount/currency', rule: 'currency', message: `must be ${programme.currency}` });
      } else if (errors.length === 0 && parsed.minor <= 0n) {
        errors.push({ path: '/amount/amount', rule: 'positive', message: 'must be more than zero' });
      }
      if (errors.length > 0) throw subsidiesErrors.amountInvalid(errors);
      const { updated, transactionId } = await fund(ctx, programme, parsed.minor, false);
      await programmeEvent(ctx, 'subsidy_programme.funded', updated, {
        previous_status: programme.status,
        amount_minor: parsed.minor.toString(),
        transaction_id: transactionId,
      });
      await audit(ctx, 'top_up', id, {
        amount_minor: parsed.minor.toString(),
        transaction_id: transactionId,
      });
      return updated;
    },

    /**
     * Stops a programme for good; what is left of its budget goes back to `subsidy_funding`.
     *
     * @throws DomainError `subsidies.programme_not_found`, `subsidies.status_not_allowed`
     */
    async cancel(ctx: Context, id: string): Promise<Programme> {
      requireTransaction(ctx.db);
      await visibleProgramme(ctx, id);
      const { programme, budgetMinor } = await lockProgramme(ctx, id);
      if (CLOSED_STATUSES.includes(programme.status)) {
        throw subsidiesErrors.statusNotAllowed(id, programme.status, 'cancelled');
      }
      const cancelled = await close(ctx, programme, budgetMinor, 'cancelled');
      await audit(ctx, 'cancel', id, { returned_minor: budgetMinor.toString() });
      return cancelled;
    },

    /**
     * Ends up to `END_BATCH_MAX` programmes whose window is over (active or exhausted) and
     * returns their leftover budget. Drafts whose window passed are left as they are: they
     * never held money, and activating them is refused.
     */
    async endDueProgrammes(ctx: Context): Promise<Programme[]> {
      requireTransaction(ctx.db);
      const due = await ctx.db
        .selectFrom('subsidy_programmes')
        .select('id')
        .where('status', 'in', ['active', 'exhausted'])
        .where('ends_at', '<=', ctx.now)
        .orderBy('ends_at')
        .orderBy('id')
        .limit(END_BATCH_MAX)
        .execute();
      const ended: Programme[] = [];
      for (const { id } of due) {
        const { programme, budgetMinor } = await lockProgramme(ctx, id);
        // Another run may have ended it since the query above.
        if (CLOSED_STATUSES.includes(programme.status)) continue;
        ended.push(await close(ctx, programme, budgetMinor, 'ended'));
      }
      return ended;
    },

    /**
     * Subsidises a fee from the eligible programme that ends soonest (then the oldest) and
     * still has something to give this participant: min(fee × share, the participant's
     * remaining cap, the budget left), decided under a lock on the budget so that concurrent
     * applications never overspend. Posts debit `subsidy_budget`, credit `beneficiary`, in the
     * caller's transaction. A programme whose budget reaches zero becomes `exhausted`.
     *
     * Idempotent on `idempotencyKey`: a replay returns the first answer (null included) and
     * spends nothing more.
     *
     * @returns what was applied, or null when no programme pays for this fee.
     * @throws DomainError `subsidies.application_invalid`, `subsidies.key_reused`, and the
     *   ledger's errors about `beneficiary` (`ledger.currency_mismatch`, `ledger.account_not_found`)
     */
    async apply(ctx: Context, input: ApplyInput): Promise<AppliedSubsidy | null> {
      requireTransaction(ctx.db);
      const errors = applyErrors(input);
      if (errors.length > 0) throw subsidiesErrors.applicationInvalid(errors);
      const fingerprint = fingerprintOf(input);
      const participantId = (input.side === 'partner' ? input.partnerId : input.customerId) as string;

      // Claim the key first: a concurrent request with the same key waits here for this one,
      // then reads its answer. The programmes that could pay are read in the same statement
      // (each is locked and judged again before it pays).
      const rows = await ctx.db
        .with('claimed', (creator) =>
          creator
            .insertInto('subsidy_applications')
            .values({
              id: newId('sba'),
              idempotency_key: input.idempotencyKey,
              fingerprint,
              programme_id: null,
              participant_id: null,
              cause_kind: input.cause.kind,
              cause_id: input.cause.id,
              fee_minor: input.feeMinor,
              currency: input.currency,
              amount_minor: 0n,
              refunded_minor: 0n,
              beneficiary_account_id: null,
              transaction_id: null,
              created_at: ctx.now,
            })
            .onConflict((oc) => oc.column('idempotency_key').doNothing())
            .returning('id'),
        )
        .selectFrom(sql<{ one: number }>`(select 1)`.as('one'))
        .leftJoin('subsidy_programmes as p', (join) =>
          join
            .on(sql<boolean>`${input.feeMinor > 0n}`)
            .on('p.status', '=', 'active')
            .on('p.side', '=', input.side)
            .on('p.currency', '=', input.currency)
            .on('p.starts_at', '<=', ctx.now)
            .on('p.ends_at', '>', ctx.now),
        )
        .selectAll('p')
        .select((eb) => eb.selectFrom('claimed').select('claimed.id').as('claimed_id'))
        .execute();
      const claimedId = rows[0]?.claimed_id;
      if (!claimedId) {
        const existing = await findApplicationByKey(ctx.db, input.idempotencyKey);
        assert(existing !== undefined, 'a claimed key has its application');
        return replayOf(existing, fingerprint);
      }
      if (input.feeMinor === 0n) return null;

      const occasion = occasionOf(input);
      const candidates = preferred(
        rows
          .filter((row) => row.id !== null)
          .map((row) => toProgramme(row as unknown as Selectable<SubsidyProgrammesTable>)),
        occasion,
        ctx.now,
      );

      for (const candidate of candidates) {
        const { programme, budgetMinor } = await lockProgramme(ctx, candidate.id);
        // Read again under the lock: a concurrent application may have exhausted it, or the job ended it.
        if (!isEligible(programme, occasion, ctx.now)) continue;
        const spent = await participantSpent(ctx.db, programme.id, participantId);
        const amountMinor = subsidyAmount({
          feeMinor: input.feeMinor,
          shareBps: programme.shareBps,
          capRemainingMinor: programme.capPerParticipantMinor - spent,
          budgetMinor,
          maxMinor: input.maxAmountMinor,
        });
        if (amountMinor === 0n) continue;

        const { transaction } = await ledger.post(ctx, {
          idempotencyKey: `subsidy:apply:${input.idempotencyKey}`,
          description: `Subsidy (${programme.kind}) from the programme ${programme.name}`,
          cause: input.cause,
          entries: [
            { account: budgetAccount(programme), direction: 'debit', amountMinor },
            { account: input.beneficiary, direction: 'credit', amountMinor },
          ],
          metadata: {
            programme_id: programme.id,
            subsidy_kind: programme.kind,
            participant_id: participantId,
            fee_minor: input.feeMinor.toString(),
          },
        });
        const beneficiaryAccountId = transaction.entries.find((entry) => entry.direction === 'credit')
          ?.accountId as string;
        await ctx.db
          .insertInto('subsidy_participants')
          .values({
            programme_id: programme.id,
            participant_id: participantId,
            spent_minor: amountMinor,
            applications: 1,
            updated_at: ctx.now,
          })
          .onConflict((oc) =>
            oc.columns(['programme_id', 'participant_id']).doUpdateSet({
              spent_minor: sql`subsidy_participants.spent_minor + ${amountMinor}::int8`,
              applications: sql`subsidy_participants.applications + 1`,
              updated_at: ctx.now,
            }),
          )
          .execute();
        const exhausted = budgetMinor - amountMinor === 0n;
        const updated = await updateProgramme(ctx, programme.id, {
          spent_minor: sql`spent_minor + ${amountMinor}::int8`,
          applications: sql`applications + 1`,
          ...(exhausted ? { status: 'exhausted' } : {}),
        });
        await ctx.db
          .updateTable('subsidy_applications')
          .set({
            programme_id: programme.id,
            participant_id: participantId,
            amount_minor: amountMinor,
            beneficiary_account_id: beneficiaryAccountId,
            transaction_id: transaction.id,
          })
          .where('id', '=', claimedId)
          .execute();
        await appendEvent(ctx, {
          type: 'subsidy.applied',
          subjectId: claimedId,
          data: {
            application_id: claimedId,
            programme_id: programme.id,
            subsidy_kind: programme.kind,
            participant_id: participantId,
            cause: { kind: input.cause.kind, id: input.cause.id },
            fee_minor: input.feeMinor.toString(),
            amount_minor: amountMinor.toString(),
            currency: programme.currency,
            transaction_id: transaction.id,
          },
          audience: [participantId],
        });
        if (exhausted) await programmeEvent(ctx, 'subsidy_programme.exhausted', updated);
        return { programmeId: programme.id, amountMinor };
      }
      return null;
    },

    /**
     * Gives back (part of) an earlier application: debit the beneficiary it paid, credit the
     * programme's budget, and lower the participant's spend, so the cap frees up again. An
     * exhausted programme whose window lasts becomes `active` again; for a programme already
     * ended or cancelled the money goes straight back to `subsidy_funding`.
     *
     * @throws DomainError `subsidies.application_invalid`, `subsidies.application_not_found`,
     *   `subsidies.refund_exceeds_application`, `subsidies.key_reused`,
     *   `ledger.insufficient_funds` (the beneficiary no longer holds the amount)
     */
    async refund(ctx: Context, input: RefundInput): Promise<RefundedSubsidy> {
      requireTransaction(ctx.db);
      const errors: FieldError[] = [];
      if (input.amountMinor <= 0n || input.amountMinor > AMOUNT_MINOR_MAX) {
        errors.push({ path: '/amount_minor', rule: 'positive', message: 'must be more than zero' });
      }
      if (input.idempotencyKey.length === 0 || input.idempotencyKey.length > APPLY_KEY_LENGTH_MAX) {
        errors.push({
          path: '/idempotency_key',
          rule: 'length',
          message: `1 to ${APPLY_KEY_LENGTH_MAX} characters`,
        });
      }
      if (errors.length > 0) throw subsidiesErrors.applicationInvalid(errors);

      const replay = async () => {
        const prior = await ctx.db
          .selectFrom('subsidy_refunds')
          .innerJoin('subsidy_applications', 'subsidy_applications.id', 'subsidy_refunds.application_id')
          .select([
            'subsidy_refunds.amount_minor',
            'subsidy_refunds.transaction_id',
            'subsidy_applications.idempotency_key as original_key',
            'subsidy_applications.programme_id',
          ])
          .where('subsidy_refunds.idempotency_key', '=', input.idempotencyKey)
          .executeTakeFirst();
        if (!prior) return null;
        if (prior.original_key !== input.originalKey || prior.amount_minor !== input.amountMinor) {
          throw subsidiesErrors.keyReused(input.idempotencyKey);
        }
        return {
          programmeId: prior.programme_id as string,
          amountMinor: prior.amount_minor,
          transactionId: prior.transaction_id,
          replayed: true,
        };
      };
      const early = await replay();
      if (early) return early;

      const original = await findApplicationByKey(ctx.db, input.originalKey);
      if (!original?.programmeId || original.amountMinor === 0n) {
        throw subsidiesErrors.applicationNotFound(input.originalKey);
      }
      const { programme } = await lockProgramme(ctx, original.programmeId);
      // A concurrent refund with the same key held the lock before this one.
      const late = await replay();
      if (late) return late;
      const application = await findApplicationByKey(ctx.db, input.originalKey, 'update');
      assert(
        application?.beneficiaryAccountId && application.participantId,
        'an applied subsidy names whom it paid',
      );
      const refundable = application.amountMinor - application.refundedMinor;
      if (input.amountMinor > refundable) {
        throw subsidiesErrors.refundExceedsApplication(input.originalKey, refundable);
      }

      const closed = CLOSED_STATUSES.includes(programme.status);
      const { transaction } = await ledger.post(ctx, {
        idempotencyKey: `subsidy:refund:${input.idempotencyKey}`,
        description: `Subsidy from the programme ${programme.name}, given back`,
        cause: { kind: 'refund', id: application.cause.id },
        entries: [
          {
            account: application.beneficiaryAccountId as AccountRef,
            direction: 'debit',
            amountMinor: input.amountMinor,
          },
          {
            account: closed ? fundingAccount(programme.currency) : budgetAccount(programme),
            direction: 'credit',
            amountMinor: input.amountMinor,
          },
        ],
        metadata: {
          programme_id: programme.id,
          application_id: application.id,
          participant_id: application.participantId,
        },
      });
      await ctx.db
        .updateTable('subsidy_participants')
        .set({ spent_minor: sql`spent_minor - ${input.amountMinor}::int8`, updated_at: ctx.now })
        .where('programme_id', '=', programme.id)
        .where('participant_id', '=', application.participantId)
        .execute();
      await ctx.db
        .updateTable('subsidy_applications')
        .set({ refunded_minor: sql`refunded_minor + ${input.amountMinor}::int8` })
        .where('id', '=', application.id)
        .execute();
      await ctx.db
        .insertInto('subsidy_refunds')
        .values({
          idempotency_key: input.idempotencyKey,
          application_id: application.id,
          amount_minor: input.amountMinor,
          transaction_id: transaction.id,
          created_at: ctx.now,
        })
        .execute();
      const reopens = programme.status === 'exhausted' && ctx.now.getTime() < programme.endsAt.getTime();
      const updated = await updateProgramme(ctx, programme.id, {
        spent_minor: sql`spent_minor - ${input.amountMinor}::int8`,
        ...(closed ? { returned_minor: sql`returned_minor + ${input.amountMinor}::int8` } : {}),
        ...(reopens ? { status: 'active' } : {}),
      });
      await appendEvent(ctx, {
        type: 'subsidy.refunded',
        subjectId: application.id,
        data: {
          application_id: application.id,
          programme_id: programme.id,
          participant_id: application.participantId,
          amount_minor: input.amountMinor.toString(),
          currency: programme.currency,
          transaction_id: transaction.id,
        },
        audience: [application.participantId],
      });
      if (reopens) {
        await programmeEvent(ctx, 'subsidy_programme.reactivated', updated, { previous_status: 'exhausted' });
      }
      return {
        programmeId: programme.id,
        amountMinor: input.amountMinor,
        transactionId: transaction.id,
        replayed: false,
      };
    },

    /**
     * What `apply` would pay for this fee now, without posting or locking anything: the same
     * programme choice (eligible, ending soonest, then the oldest, with something left for this
     * participant) and the same amount, from the programmes' own totals, which move with their
     * budgets. A quote shows it; the order applies it later, when it may no longer be there.
     *
     * @returns what would be paid and by which programme, or null when none would pay.
     */
    async preview(ctx: Context, input: PreviewInput): Promise<PreviewedSubsidy | null> {
      const participantId = input.side === 'partner' ? input.partnerId : input.customerId;
      if (input.feeMinor <= 0n || !participantId) return null;
      const occasion = occasionOf(input);
      const rows = await ctx.db
        .selectFrom('subsidy_programmes')
        .selectAll()
        .where('status', '=', 'active')
        .where('side', '=', input.side)
        .where('currency', '=', input.currency)
        .where('starts_at', '<=', ctx.now)
        .where('ends_at', '>', ctx.now)
        .execute();
      for (const programme of preferred(rows.map(toProgramme), occasion, ctx.now)) {
        const spent = await participantSpent(ctx.db, programme.id, participantId);
        const amountMinor = subsidyAmount({
          feeMinor: input.feeMinor,
          shareBps: programme.shareBps,
          capRemainingMinor: programme.capPerParticipantMinor - spent,
          budgetMinor: programme.remainingMinor,
        });
        if (amountMinor > 0n) return { programmeId: programme.id, kind: programme.kind, amountMinor };
      }
      return null;
    },

    /** The application made with a key, for workflows that size a refund; null when there is none. */
    async application(ctx: Context, idempotencyKey: string): Promise<Application | null> {
      return (await findApplicationByKey(ctx.db, idempotencyKey)) ?? null;
    },

    /**
     * A programme's budget, spend and remaining money (the ledger's balance beside the
     * programme's own totals, which always agree), and its spend per participant, by
     * participant id.
     *
     * @throws DomainError `subsidies.programme_not_found`
     */
    async report(ctx: Context, id: string, page: PageRequest): Promise<ProgrammeReport> {
      const programme = await visibleProgramme(ctx, id);
      // A draft has no budget account yet, and a read does not open one.
      const ledgerRemainingMinor =
        programme.fundings === 0 ? 0n : (await ledger.balance(ctx, budgetAccount(programme))).balanceMinor;
      let query = ctx.db
        .selectFrom('subsidy_participants')
        .select(['participant_id', 'spent_minor', 'applications'])
        .where('programme_id', '=', programme.id)
        .orderBy('participant_id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('participant_id', '>', page.after);
      const rows = await query.execute();
      const count = await ctx.db
        .selectFrom('subsidy_participants')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('programme_id', '=', programme.id)
        .executeTakeFirstOrThrow();
      return {
        programme,
        ledgerRemainingMinor,
        participantsCount: Number(count.n),
        participants: pageOf(rows, page.limit, (row) => ({
          id: row.participant_id,
          participantId: row.participant_id,
          spentMinor: row.spent_minor,
          applications: row.applications,
        })),
      };
    },
  };
}
