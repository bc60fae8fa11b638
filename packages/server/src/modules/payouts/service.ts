import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { type Actor, actorRef, systemActor } from '../../kernel/actor.js';
import { assert } from '../../kernel/assert.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction, type Tx } from '../../kernel/database/database.js';
import type { Tables } from '../../kernel/database/tables.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { type FieldError, isDomainError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { newId, type PartnerId, type PayoutBatchId, type PayoutId, parseId } from '../../kernel/ids.js';
import type { Jobs } from '../../kernel/jobs/jobs.js';
import { parseAmount, parseCurrency } from '../../kernel/money.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import { type AccountKey, type LedgerService, PLATFORM_OWNER } from '../ledger/index.js';
import type { ParticipantsService } from '../participants/index.js';
import {
  DESTINATION_FAILURE_CODES,
  type PaymentProvider,
  type PayoutRecord,
  type PayoutRecords,
  type ProviderEvent,
  type ProviderOperation,
  ProviderRejectedError,
} from '../payments/index.js';
import {
  addDays,
  BPS_MAX,
  DESTINATION_LENGTH_MAX,
  destinationHeldUntil,
  FINAL_PAYOUT_STATUSES,
  isDue,
  type PayoutSchedule,
  planPayout,
  RESERVE_DAYS_MAX,
  RUN_PARTNERS_MAX,
  type SkipReason,
  utcDate,
  type Weekday,
} from './domain/payout.js';
import { payoutsErrors } from './errors.js';
import { payoutBatchJson, payoutJson, payoutSettingsJson } from './http/json.js';
import {
  findPayout,
  findSettings,
  listBatches,
  listPayouts,
  type Payout,
  type PayoutBatch,
  type PayoutFilter,
  type PayoutSettings,
  payoutsChangedSince,
  toBatch,
  toPayout,
  toSettings,
  unsettledPayoutIds,
} from './store/payouts-store.js';

/** The job that sends the payouts of a batch prepared by an API request. */
export const SEND_BATCH_JOB = 'payouts.send-batch';
/** The daily job that runs the payouts due by schedule and retries those not yet settled. */
export const RUN_DUE_JOB = 'payouts.run-due';
/** Unsettled payouts one retry pass asks the provider about. */
export const RETRY_BATCH_MAX = 500;
/** Statement lines read per page while counting a partner's new earnings. */
const STATEMENT_PAGE_LIMIT = 100;

/** Payout settings as an operator states them; the currency is the minimum's. */
export interface PayoutSettingsInput {
  readonly schedule: PayoutSchedule;
  readonly weekday?: Weekday | null | undefined;
  readonly minimum: { readonly amount: string; readonly currency: string };
  readonly destination?: string | null | undefined;
  readonly reserveBps: number;
  readonly reserveDays: number;
}

export interface RunOptions {
  /** Pay these partners whatever their schedule; without it, those due by their schedule. */
  readonly partnerIds?: readonly PartnerId[] | undefined;
  /** Also pay every partner on the `manual` schedule. */
  readonly includeManual?: boolean | undefined;
}

/** What a run did for one partner. */
export interface PartnerOutcome {
  readonly partnerId: PartnerId;
  readonly payout: Payout | null;
  readonly skipped: SkipReason | null;
  readonly releasedMinor: bigint;
  readonly nettedMinor: bigint;
  readonly reservedMinor: bigint;
}

export interface RunResult {
  readonly batch: PayoutBatch;
  readonly outcomes: readonly PartnerOutcome[];
  /** The payouts the run created, in their state after it asked the provider (if it did). */
  readonly payouts: readonly Payout[];
}

export type PayoutsService = ReturnType<typeof createPayoutsService>;

/**
 * Pays partners what the platform owes them. A run works per partner under the lock of its
 * payable: it releases matured reserve holds, nets what the partner owes, holds back the
 * reserve share of new earnings, and moves the rest to `payouts_in_transit` with a payout row,
 * all in one transaction. The provider is called only after that commits, outside any
 * transaction, with the payout's id as its reference, so a retry is the same payout, never a
 * second one. The outcome (now, or later through a callback) settles the transit money to the
 * provider, or returns it to the partner's payable.
 */
export function createPayoutsService(deps: {
  ledger: LedgerService;
  participants: ParticipantsService;
  jobs: Jobs;
  provider: PaymentProvider;
  logger?: Logger;
}) {
  const { ledger, participants, jobs, provider } = deps;

  const systemContext = (db: Executor, now: Date, actor: Actor = systemActor('payouts')): Context => ({
    db,
    actor,
    now,
    requestId: null,
    ip: null,
  });
  const payable = (partnerId: string, currency: string): AccountKey => ({
    purpose: 'partner_payable',
    ownerId: partnerId,
    currency,
  });
  const platform = (purpose: 'payouts_in_transit' | 'provider_clearing', currency: string): AccountKey => ({
    purpose,
    ownerId: PLATFORM_OWNER,
    currency,
  });

  function checkSettings(input: PayoutSettingsInput): { currency: string; minimumMinor: bigint } {
    const errors: FieldError[] = [];
    let currency = input.minimum.currency;
    let minimumMinor = 0n;
    try {
      currency = parseCurrency(input.minimum.currency);
      minimumMinor = parseAmount(input.minimum.amount, currency as ReturnType<typeof parseCurrency>);
      if (minimumMinor < 0n)
        errors.push({ path: '/minimum/amount', rule: 'minimum', message: 'must not be negative' });
    } catch (error) {
      if (!isDomainError(error)) throw error;
      const path = error.code === 'money.unknown_currency' ? '/minimum/currency' : '/minimum/amount';
      errors.push({ path, rule: error.code, message: error.message });
    }
    if (input.schedule === 'weekly' && !input.weekday)
      errors.push({ path: '/weekday', rule: 'required', message: 'a weekly schedule needs a weekday' });
    if (input.schedule !== 'weekly' && input.weekday)
      errors.push({ path: '/weekday', rule: 'forbidden', message: 'only a weekly schedule has a weekday' });
    if (!Number.isInteger(input.reserveBps) || input.reserveBps < 0 || input.reserveBps > BPS_MAX)
      errors.push({ path: '/reserve_bps', rule: 'range', message: `must be from 0 to ${BPS_MAX}` });
    if (!Number.isInteger(input.reserveDays) || input.reserveDays < 0 || input.reserveDays > RESERVE_DAYS_MAX)
      errors.push({ path: '/reserve_days', rule: 'range', message: `must be from 0 to ${RESERVE_DAYS_MAX}` });
    if (input.destination !== undefined && input.destination !== null)
      checkDestination(input.destination, errors);
    if (errors.length > 0) throw payoutsErrors.settingsInvalid(errors);
    return { currency, minimumMinor };
  }

  function checkDestination(destination: string, errors: FieldError[] = []): FieldError[] {
    if (destination.trim().length === 0 || destination.length > DESTINATION_LENGTH_MAX)
      errors.push({
        path: '/destination',
        rule: 'length',
        message: `must be the provider's token, 1 to ${DESTINATION_LENGTH_MAX} characters`,
      });
    return errors;
  }

  /** Only the operator (and Baton) see every partner's payouts; a partner sees its own. */
  function visible(ctx: Context, partnerId: string): boolean {
    if (ctx.actor.kind === 'operator' || ctx.actor.kind === 'system') return true;
    return ctx.actor.kind === 'partner' && ctx.actor.partnerId === partnerId;
  }

  /** The earnings credited to the payable after `cursor`, and the cursor past them. */
  async function newEarnings(
    ctx: Context,
    payableId: string,
    cursor: string | null,
  ): Promise<{ earningsMinor: bigint; cursor: string | null }> {
    let after = cursor ?? undefined;
    let earningsMinor = 0n;
    for (;;) {
      const { lines } = await ledger.statement(ctx, payableId, { after, limit: STATEMENT_PAGE_LIMIT });
      for (const line of lines.items) {
        // Credits raise a payable (they are stored negative). Money this module moves itself
        // (released holds, returned payouts, netting) is not new earnings.
        if (line.cause.kind !== 'payout' && line.amountMinor < 0n) earningsMinor += -line.amountMinor;
      }
      after = lines.items.at(-1)?.id ?? after;
      if (!lines.hasMore) return { earningsMinor, cursor: after ?? null };
    }
  }

  async function createBatch(ctx: Context, options: RunOptions): Promise<PayoutBatch> {
    const actor = actorRef(ctx.actor);
    const row = await ctx.db
      .insertInto('payout_batches')
      .values({
        id: newId('pob'),
        created_at: ctx.now,
        actor_kind: actor.kind,
        actor_id: actor.id,
        partner_ids: options.partnerIds ? [...options.partnerIds] : null,
        include_manual: options.includeManual ?? false,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const batch = toBatch(row);
    await appendEvent(ctx, {
      type: 'payout_batch.created',
      subjectId: batch.id,
      data: { payout_batch: payoutBatchJson(batch) },
      audience: [],
    });
    return batch;
  }

  /** The partners a run considers, in lock order, and whether each was asked for by name. */
  async function selectPartners(
    db: Executor,
    now: Date,
    options: RunOptions,
  ): Promise<{ partnerId: PartnerId; explicit: boolean }[]> {
    const chosen = new Map<PartnerId, boolean>();
    if (options.partnerIds) {
      for (const id of options.partnerIds) chosen.set(id, true);
    } else {
      const rows = await db
        .selectFrom('payout_settings')
        .selectAll()
        .where('schedule', '!=', 'manual')
        .execute();
      for (const row of rows) if (isDue(toSettings(row), now)) chosen.set(row.partner_id as PartnerId, false);
    }
    if (options.includeManual) {
      const manual = await db
        .selectFrom('payout_settings')
        .select('partner_id')
        .where('schedule', '=', 'manual')
        .execute();
      for (const row of manual) chosen.set(row.partner_id as PartnerId, true);
    }
    return [...chosen]
      .map(([partnerId, explicit]) => ({ partnerId, explicit }))
      .sort((a, b) => (a.partnerId < b.partnerId ? -1 : a.partnerId > b.partnerId ? 1 : 0));
  }

  /**
   * One partner's part of a run, in the caller's transaction. The settings row is locked first
   * and the payable next, so two runs at once take turns per partner and the second finds the
   * money already gone.
   */
  async function processPartner(
    ctx: Context,
    batchId: PayoutBatchId,
    partnerId: PartnerId,
    explicit: boolean,
  ): Promise<PartnerOutcome> {
    requireTransaction(ctx.db);
    const none = { partnerId, payout: null, releasedMinor: 0n, nettedMinor: 0n, reservedMinor: 0n };
    const settings = await findSettings(ctx.db, partnerId, true);
    if (!settings) return { ...none, skipped: 'no_settings' };
    if (!explicit && !isDue(settings, ctx.now)) return { ...none, skipped: 'not_due' };
    const { currency } = settings;

    const locked = await ledger.lockBalance(ctx, payable(partnerId, currency));
    let payableMinor = locked.balanceMinor;

    // Matured reserve holds go back to the payable first, so that they are netted or paid now.
    const matured = await ctx.db
      .selectFrom('reserve_holds')
      .selectAll()
      .where('partner_id', '=', partnerId)
      .where('currency', '=', currency)
      .where('released_at', 'is', null)
      .where('release_at', '<=', ctx.now)
      .orderBy('id')
      .forUpdate()
      .execute();
    let releasedMinor = 0n;
    for (const hold of matured) {
      await ledger.post(ctx, {
        idempotencyKey: `reserve-hold:${hold.id}:release`,
        description: `Release of reserve hold ${hold.id}`,
        cause: { kind: 'payout', id: hold.id },
        entries: [
          {
            account: { purpose: 'partner_reserve', ownerId: partnerId, currency },
            direction: 'debit',
            amountMinor: hold.amount_minor,
          },
          { account: payable(partnerId, currency), direction: 'credit', amountMinor: hold.amount_minor },
        ],
      });
      await ctx.db
        .updateTable('reserve_holds')
        .set({ released_at: ctx.now })
        .where('id', '=', hold.id)
        .execute();
      releasedMinor += hold.amount_minor;
    }
    payableMinor += releasedMinor;

    const receivableKey: AccountKey = { purpose: 'partner_receivable', ownerId: partnerId, currency };
    const receivable = await ledger.lockBalance(ctx, receivableKey);
    const earnings = await newEarnings(ctx, locked.account.id, settings.earningsCursor);
    const plan = planPayout({
      payableMinor,
      receivableMinor: receivable.balanceMinor,
      newEarningsMinor: earnings.earningsMinor,
      reserveBps: settings.reserveBps,
      reserveDays: settings.reserveDays,
      minimumMinor: settings.minimumMinor,
      hasDestination: settings.destination !== null,
      destinationFailed: settings.destinationFailure !== null,
      destinationHeld: settings.destinationHeldUntil !== null && settings.destinationHeldUntil > ctx.now,
    });

    if (plan.nettedMinor > 0n) {
      await ledger.post(ctx, {
        idempotencyKey: `payout-batch:${batchId}:net:${partnerId}`,
        description: `Netting of what partner ${partnerId} owes against its earnings`,
        cause: { kind: 'payout', id: batchId },
        entries: [
          { account: payable(partnerId, currency), direction: 'debit', amountMinor: plan.nettedMinor },
          { account: receivableKey, direction: 'credit', amountMinor: plan.nettedMinor },
        ],
      });
    }
    if (plan.reservedMinor > 0n) {
      const holdId = newId('rsh');
      await ctx.db
        .insertInto('reserve_holds')
        .values({
          id: holdId,
          partner_id: partnerId,
          batch_id: batchId,
          amount_minor: plan.reservedMinor,
          currency,
          held_at: ctx.now,
          release_at: addDays(ctx.now, settings.reserveDays),
        })
        .execute();
      await ledger.post(ctx, {
        idempotencyKey: `reserve-hold:${holdId}:hold`,
        description: `Rolling reserve of ${settings.reserveBps} bps for ${settings.reserveDays} days`,
        cause: { kind: 'payout', id: holdId },
        entries: [
          { account: payable(partnerId, currency), direction: 'debit', amountMinor: plan.reservedMinor },
          {
            account: { purpose: 'partner_reserve', ownerId: partnerId, currency },
            direction: 'credit',
            amountMinor: plan.reservedMinor,
          },
        ],
      });
    }
    await ctx.db
      .updateTable('payout_settings')
      .set({ last_run_on: utcDate(ctx.now), earnings_cursor: earnings.cursor })
      .where('partner_id', '=', partnerId)
      .execute();

    const outcome = {
      partnerId,
      releasedMinor,
      nettedMinor: plan.nettedMinor,
      reservedMinor: plan.reservedMinor,
    };
    if (plan.skipped !== null) return { ...outcome, payout: null, skipped: plan.skipped };

    const id = newId('po');
    const row = await ctx.db
      .insertInto('payouts')
      .values({
        id,
        batch_id: batchId,
        partner_id: partnerId,
        amount_minor: plan.payoutMinor,
        currency,
        destination: settings.destination as string,
        status: 'pending',
        netted_minor: plan.nettedMinor,
        reserved_minor: plan.reservedMinor,
        created_at: ctx.now,
        updated_at: ctx.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await ledger.post(ctx, {
      idempotencyKey: `payout:${id}:send`,
      description: `Payout ${id} to partner ${partnerId}`,
      cause: { kind: 'payout', id },
      entries: [
        { account: payable(partnerId, currency), direction: 'debit', amountMinor: plan.payoutMinor },
        {
          account: platform('payouts_in_transit', currency),
          direction: 'credit',
          amountMinor: plan.payoutMinor,
        },
      ],
    });
    await ctx.db
      .updateTable('payout_batches')
      .set({ payout_count: sql`payout_count + 1` })
      .where('id', '=', batchId)
      .execute();
    const payout = toPayout(row);
    await appendEvent(ctx, {
      type: 'payout.created',
      subjectId: id,
      data: { payout: payoutJson(payout) },
      audience: [partnerId],
    });
    return { ...outcome, payout, skipped: null };
  }

  /**
   * Applies the provider's final word on a payout once: settles the transit money to the
   * provider, or returns it to the partner's payable. Repeated, late or out-of-order reports
   * change nothing once the payout is final, but one: a payout the provider paid and now
   * reports failed was sent back by the partner's bank, and its money goes back to the payable.
   * (A payout fails only after it succeeded, never the other way, so no stale report says so.)
   */
  async function applyOperation(db: Kysely<Tables>, operation: ProviderOperation, now: Date): Promise<void> {
    await runInTransaction(db, async (tx) => {
      const ctx = systemContext(tx, now);
      const payout = await findPayout(tx, operation.reference, true);
      if (!payout) return;
      const returned = payout.status === 'paid' && operation.status === 'failed';
      if (FINAL_PAYOUT_STATUSES.includes(payout.status) && !returned) return;
      assert(
        operation.kind === 'payout' &&
          operation.amountMinor === payout.amountMinor &&
          operation.currency === payout.currency,
        `the provider's operation ${operation.providerId} does not match payout ${payout.id}`,
      );
      if (returned) {
        await bankReturn(ctx, tx, payout, operation.failureCode ?? 'returned');
        return;
      }
      if (operation.status === 'pending') {
        if (payout.status === 'pending') {
          await tx
            .updateTable('payouts')
            .set({ status: 'sent', provider_id: operation.providerId, updated_at: now })
            .where('id', '=', payout.id)
            .execute();
        }
        return;
      }
      await settle(
        ctx,
        tx,
        payout,
        operation.status === 'succeeded' ? null : (operation.failureCode ?? 'failed'),
        operation.providerId,
      );
    });
  }

  /**
   * A payout failed, or came back, for a reason that says its destination cannot be paid: while
   * that destination is still the partner's, runs skip the partner until a destination is set
   * again. Called before the payout's money moves, so that the settings row is locked before the
   * payable, in the order runs lock them.
   */
  async function markDestinationFailed(ctx: Context, payout: Payout, failureCode: string): Promise<void> {
    if (!DESTINATION_FAILURE_CODES.includes(failureCode)) return;
    const row = await ctx.db
      .updateTable('payout_settings')
      .set({ destination_failure_code: failureCode, destination_failed_at: ctx.now, updated_at: ctx.now })
      .where('partner_id', '=', payout.partnerId)
      .where('destination', '=', payout.destination)
      .returningAll()
      .executeTakeFirst();
    if (!row) return;
    await appendEvent(ctx, {
      type: 'payout_settings.updated',
      subjectId: payout.partnerId,
      data: { payout_settings: payoutSettingsJson(toSettings(row)) },
      audience: [payout.partnerId],
    });
  }

  /** Marks a payout paid (`failureCode` null) or failed, with its ledger movement and event. */
  async function settle(
    ctx: Context,
    tx: Tx,
    payout: Payout,
    failureCode: string | null,
    providerId: string | null,
  ): Promise<void> {
    const { id, currency, amountMinor, partnerId } = payout;
    if (failureCode !== null) await markDestinationFailed(ctx, payout, failureCode);
    await ledger.post(ctx, {
      idempotencyKey: failureCode === null ? `payout:${id}:settled` : `payout:${id}:returned`,
      description:
        failureCode === null
          ? `Payout ${id} settled by the provider`
          : `Payout ${id} failed (${failureCode}); returned to the partner`,
      cause: { kind: 'payout', id },
      entries: [
        { account: platform('payouts_in_transit', currency), direction: 'debit', amountMinor },
        failureCode === null
          ? { account: platform('provider_clearing', currency), direction: 'credit', amountMinor }
          : { account: payable(partnerId, currency), direction: 'credit', amountMinor },
      ],
    });
    const row = await tx
      .updateTable('payouts')
      .set({
        status: failureCode === null ? 'paid' : 'failed',
        failure_code: failureCode,
        provider_id: providerId ?? payout.providerId,
        updated_at: ctx.now,
        settled_at: ctx.now,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await appendEvent(ctx, {
      type: failureCode === null ? 'payout.paid' : 'payout.failed',
      subjectId: id,
      data: { payout: payoutJson(toPayout(row)) },
      audience: [partnerId],
    });
  }

  /**
   * A paid payout the partner's bank sent back: the provider holds the money again, and it goes
   * back to the partner's payable, to be paid at the next run (or netted, or held, as any).
   */
  async function bankReturn(ctx: Context, tx: Tx, payout: Payout, failureCode: string): Promise<void> {
    const { id, currency, amountMinor, partnerId } = payout;
    await markDestinationFailed(ctx, payout, failureCode);
    await ledger.post(ctx, {
      idempotencyKey: `payout:${id}:bank_returned`,
      description: `Payout ${id} returned by the partner's bank (${failureCode}); back to the partner`,
      cause: { kind: 'payout', id },
      entries: [
        { account: platform('provider_clearing', currency), direction: 'debit', amountMinor },
        { account: payable(partnerId, currency), direction: 'credit', amountMinor },
      ],
    });
    const row = await tx
      .updateTable('payouts')
      .set({ status: 'returned', failure_code: failureCode, updated_at: ctx.now, returned_at: ctx.now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await appendEvent(ctx, {
      type: 'payout.returned',
      subjectId: id,
      data: { payout: payoutJson(toPayout(row)) },
      audience: [partnerId],
    });
  }

  /**
   * Asks the provider to send one payout, outside any transaction. A payout already accepted is
   * looked up instead; a timeout is answered by a lookup, and left for the next retry when the
   * provider cannot say. A refusal returns the money only once a lookup finds no such payout.
   * The reference is always the payout's id, so the provider never pays a row twice.
   */
  async function sendOne(db: Kysely<Tables>, id: PayoutId, now: Date): Promise<void> {
    const payout = await findPayout(db, id);
    if (!payout || FINAL_PAYOUT_STATUSES.includes(payout.status)) return;
    await db
      .updateTable('payouts')
      .set({ attempts: sql`attempts + 1`, updated_at: now })
      .where('id', '=', id)
      .where('status', 'in', ['pending', 'sent'])
      .execute();
    let operation: ProviderOperation | null = null;
    try {
      if (payout.status === 'sent') operation = await provider.find(id);
      operation ??= await provider.payout({
        reference: id,
        destination: payout.destination,
        amountMinor: payout.amountMinor,
        currency: payout.currency,
      });
    } catch (error) {
      if (error instanceof ProviderRejectedError) {
        // A refusal of a request the provider already holds (a duplicate of an attempt whose
        // answer was lost) is no refusal of the payout: what it holds is the payout's state.
        const held = await provider.find(id).catch(() => undefined);
        if (held === undefined) return; // It cannot say now: left for the next retry.
        if (held !== null) return applyOperation(db, held, now);
        // The provider refused the request itself: it never will pay it, so the money goes back.
        await runInTransaction(db, async (tx) => {
          const locked = await findPayout(tx, id, true);
          if (locked && !FINAL_PAYOUT_STATUSES.includes(locked.status))
            await settle(systemContext(tx, now), tx, locked, error.code, null);
        });
        return;
      }
      // A timeout (or a lost connection) says nothing about whether the payout happened: ask.
      operation = await provider.find(id).catch(() => null);
      if (!operation) return;
    }
    await applyOperation(db, operation, now);
  }

  /**
   * Sends payouts one by one. One that fails (the books refuse what the provider answered, say)
   * is logged and stays as it was, for the next retry: the others are sent all the same.
   */
  async function send(db: Kysely<Tables>, ids: readonly PayoutId[], now: Date): Promise<Payout[]> {
    for (const id of ids) {
      try {
        await sendOne(db, id, now);
      } catch (error) {
        deps.logger?.error(
          { err: error, payout_id: id },
          'a payout could not be sent; it is left for the next retry',
        );
      }
    }
    if (ids.length === 0) return [];
    const rows = await db
      .selectFrom('payouts')
      .selectAll()
      .where('id', 'in', [...ids])
      .orderBy('id')
      .execute();
    return rows.map(toPayout);
  }

  /** A payout with what the ledger posted for it under each of its keys, for reconciliation. */
  async function recordOf(db: Executor, payout: Payout): Promise<PayoutRecord> {
    const postings = await ledger.transactionsFor(
      systemContext(db, new Date(), systemActor('reconciliation')),
      {
        kind: 'payout',
        id: payout.id,
      },
    );
    const posted = (key: string) => {
      const found = postings.find((t) => t.idempotencyKey === key);
      return found
        ? found.entries.filter((e) => e.direction === 'debit').reduce((sum, e) => sum + e.amountMinor, 0n)
        : null;
    };
    return {
      reference: payout.id,
      status: payout.status,
      amountMinor: payout.amountMinor,
      attempts: payout.attempts,
      sentMinor: posted(`payout:${payout.id}:send`),
      settledMinor: posted(`payout:${payout.id}:settled`),
      returnedMinor: posted(`payout:${payout.id}:returned`),
      bankReturnedMinor: posted(`payout:${payout.id}:bank_returned`),
    };
  }

  /** Baton's payouts and their postings, as reconciliation with the provider reads them. */
  const reconciliationRecords: PayoutRecords = {
    async find(db, reference) {
      const payout = parseId('po', reference) ? await findPayout(db, reference) : undefined;
      return payout ? recordOf(db, payout) : null;
    },
    async changedSince(db, since, after, limit) {
      const payouts = await payoutsChangedSince(db, since, after, limit);
      return Promise.all(payouts.map((payout) => recordOf(db, payout)));
    },
  };

  return {
    reconciliationRecords,
    /**
     * Runs payouts on its own: each partner in its own transaction, then the provider calls.
     * For jobs and the command line. A partner whose transaction fails is logged and reported
     * as `failed`, with nothing of it moved; the run goes on with the others.
     */
    async run(
      db: Kysely<Tables>,
      options: RunOptions & { readonly now: Date; readonly actor?: Actor },
    ): Promise<RunResult> {
      const { now } = options;
      const batch = await runInTransaction(db, (tx) =>
        createBatch(systemContext(tx, now, options.actor), options),
      );
      const outcomes: PartnerOutcome[] = [];
      for (const { partnerId, explicit } of await selectPartners(db, now, options)) {
        try {
          outcomes.push(
            await runInTransaction(db, (tx) =>
              processPartner(systemContext(tx, now, options.actor), batch.id, partnerId, explicit),
            ),
          );
        } catch (error) {
          deps.logger?.error(
            { err: error, partner_id: partnerId, batch_id: batch.id },
            'a payout run failed on a partner',
          );
          outcomes.push({
            partnerId,
            payout: null,
            skipped: 'failed',
            releasedMinor: 0n,
            nettedMinor: 0n,
            reservedMinor: 0n,
          });
        }
      }
      const created = outcomes.flatMap((outcome) => (outcome.payout ? [outcome.payout.id] : []));
      const payouts = await send(db, created, now);
      const fresh = await db
        .selectFrom('payout_batches')
        .selectAll()
        .where('id', '=', batch.id)
        .executeTakeFirstOrThrow();
      return { batch: toBatch(fresh), outcomes, payouts };
    },

    /**
     * Prepares a run in the caller's transaction (an API request) and leaves the provider calls
     * to a job enqueued in the same transaction, so they happen only if the run commits.
     */
    async prepareRun(ctx: Context, options: RunOptions): Promise<RunResult> {
      requireTransaction(ctx.db);
      assert((options.partnerIds?.length ?? 0) <= RUN_PARTNERS_MAX, 'too many partners for one run');
      const batch = await createBatch(ctx, options);
      const outcomes: PartnerOutcome[] = [];
      for (const { partnerId, explicit } of await selectPartners(ctx.db, ctx.now, options)) {
        outcomes.push(await processPartner(ctx, batch.id, partnerId, explicit));
      }
      const payouts = outcomes.flatMap((outcome) => (outcome.payout ? [outcome.payout] : []));
      if (payouts.length > 0) await jobs.enqueue(ctx, SEND_BATCH_JOB, { batch_id: batch.id });
      await recordAudit(ctx, {
        action: 'payouts.run',
        targetId: batch.id,
        outcome: 'succeeded',
        details: { payouts: payouts.length },
      });
      return { batch: { ...batch, payoutCount: payouts.length }, outcomes, payouts };
    },

    /** Sends the payouts a batch still has to send (the job behind `prepareRun`). */
    async sendBatch(db: Kysely<Tables>, batchId: string, now: Date): Promise<Payout[]> {
      const rows = await db
        .selectFrom('payouts')
        .select('id')
        .where('batch_id', '=', batchId)
        .where('status', 'in', ['pending', 'sent'])
        .orderBy('id')
        .execute();
      return send(
        db,
        rows.map((row) => row.id as PayoutId),
        now,
      );
    },

    /**
     * Asks the provider again about every payout not yet settled (created at or before `now`),
     * `pageSize` at a time: however many wait on the banks, a payout a crash left unsent is
     * among them.
     */
    async retryUnsettled(
      db: Kysely<Tables>,
      now: Date,
      options: { pageSize?: number } = {},
    ): Promise<Payout[]> {
      const pageSize = options.pageSize ?? RETRY_BATCH_MAX;
      const retried: Payout[] = [];
      let after: string | undefined;
      for (;;) {
        const ids = await unsettledPayoutIds(db, pageSize, now, after);
        retried.push(...(await send(db, ids, now)));
        if (ids.length < pageSize) return retried;
        after = ids.at(-1);
      }
    },

    /**
     * A provider callback. Only payout operations for Baton's payouts are applied; any other
     * event is someone else's and is ignored.
     */
    async handleProviderEvent(db: Kysely<Tables>, event: ProviderEvent, now: Date): Promise<void> {
      const { operation } = event;
      if (operation.kind !== 'payout' || !parseId('po', operation.reference)) return;
      await applyOperation(db, operation, now);
    },

    /** @throws DomainError `payouts.payout_not_found` */
    async getPayout(ctx: Context, id: string): Promise<Payout> {
      const found = parseId('po', id) ? await findPayout(ctx.db, id) : undefined;
      if (!found || !visible(ctx, found.partnerId)) throw payoutsErrors.payoutNotFound(id);
      return found;
    },

    /** Payouts newest first; a partner lists only its own. */
    async listPayouts(ctx: Context, filter: PayoutFilter): Promise<Page<Payout>> {
      const scoped = ctx.actor.kind === 'partner' ? { ...filter, partnerId: ctx.actor.partnerId } : filter;
      if (ctx.actor.kind !== 'partner' && ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system')
        return { items: [], hasMore: false };
      return pageOf(await listPayouts(ctx.db, scoped), filter.limit, (payout) => payout);
    },

    /** @throws DomainError `payouts.batch_not_found` */
    async getBatch(ctx: Context, id: string): Promise<PayoutBatch> {
      const row =
        parseId('pob', id) && (ctx.actor.kind === 'operator' || ctx.actor.kind === 'system')
          ? await ctx.db.selectFrom('payout_batches').selectAll().where('id', '=', id).executeTakeFirst()
          : undefined;
      if (!row) throw payoutsErrors.batchNotFound(id);
      return toBatch(row);
    },

    async listBatches(ctx: Context, page: PageRequest): Promise<Page<PayoutBatch>> {
      if (ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system') return { items: [], hasMore: false };
      return pageOf(await listBatches(ctx.db, page), page.limit, (batch) => batch);
    },

    /** @throws DomainError `participants.partner_not_found`, `payouts.settings_not_found` */
    async getSettings(ctx: Context, partnerId: PartnerId): Promise<PayoutSettings> {
      await participants.getPartner(ctx, partnerId);
      const settings = await findSettings(ctx.db, partnerId);
      if (!settings) throw payoutsErrors.settingsNotFound(partnerId);
      return settings;
    },

    /**
     * Sets how and when a partner is paid (operators). Changing the currency starts counting
     * earnings for the reserve afresh on the new currency's payable.
     *
     * @throws DomainError `participants.partner_not_found`, `payouts.settings_invalid`
     */
    async setSettings(
      ctx: Context,
      partnerId: PartnerId,
      input: PayoutSettingsInput,
    ): Promise<PayoutSettings> {
      requireTransaction(ctx.db);
      await participants.getPartner(ctx, partnerId);
      const { currency, minimumMinor } = checkSettings(input);
      const existing = await findSettings(ctx.db, partnerId, true);
      const destination =
        input.destination === undefined ? (existing?.destination ?? null) : input.destination;
      const values = {
        schedule: input.schedule,
        weekday: input.schedule === 'weekly' ? (input.weekday ?? null) : null,
        minimum_minor: minimumMinor,
        currency,
        destination,
        destination_held_until: existing ? destinationHeldUntil(existing, destination, ctx.now) : null,
        had_destination: (existing?.hadDestination ?? false) || destination !== null,
        // A destination given, even the same one, is one the partner vouches for again.
        ...(input.destination !== undefined
          ? { destination_failure_code: null, destination_failed_at: null }
          : {}),
        reserve_bps: input.reserveBps,
        reserve_days: input.reserveDays,
        earnings_cursor: existing && existing.currency === currency ? existing.earningsCursor : null,
        updated_at: ctx.now,
      };
      const row = existing
        ? await ctx.db
            .updateTable('payout_settings')
            .set(values)
            .where('partner_id', '=', partnerId)
            .returningAll()
            .executeTakeFirstOrThrow()
        : await ctx.db
            .insertInto('payout_settings')
            .values({ ...values, partner_id: partnerId, created_at: ctx.now })
            .returningAll()
            .executeTakeFirstOrThrow();
      const settings = toSettings(row);
      await appendEvent(ctx, {
        type: 'payout_settings.updated',
        subjectId: partnerId,
        data: { payout_settings: payoutSettingsJson(settings) },
        audience: [partnerId],
      });
      await recordAudit(ctx, {
        action: 'payouts.settings.update',
        targetId: partnerId,
        outcome: 'succeeded',
        details: { schedule: settings.schedule, currency, reserve_bps: settings.reserveBps },
      });
      return settings;
    },

    /**
     * Changes where a partner's payouts go: its owner may, and operators on its behalf.
     *
     * @throws DomainError `participants.partner_not_found`, `payouts.settings_not_found`,
     *   `payouts.settings_invalid`
     */
    async setDestination(ctx: Context, partnerId: PartnerId, destination: string): Promise<PayoutSettings> {
      requireTransaction(ctx.db);
      await participants.getPartner(ctx, partnerId);
      const errors = checkDestination(destination);
      if (errors.length > 0) throw payoutsErrors.settingsInvalid(errors);
      const existing = await findSettings(ctx.db, partnerId, true);
      if (!existing) throw payoutsErrors.settingsNotFound(partnerId);
      const row = await ctx.db
        .updateTable('payout_settings')
        .set({
          destination,
          destination_held_until: destinationHeldUntil(existing, destination, ctx.now),
          had_destination: true,
          // Set again, even the same one: the partner vouches for it, and it is paid again.
          destination_failure_code: null,
          destination_failed_at: null,
          updated_at: ctx.now,
        })
        .where('partner_id', '=', partnerId)
        .returningAll()
        .executeTakeFirstOrThrow();
      const settings = toSettings(row);
      await appendEvent(ctx, {
        type: 'payout_settings.updated',
        subjectId: partnerId,
        data: { payout_settings: payoutSettingsJson(settings) },
        audience: [partnerId],
      });
      // The token itself stays out of the audit log; its end is enough to tell changes apart.
      await recordAudit(ctx, {
        action: 'payouts.destination.update',
        targetId: partnerId,
        outcome: 'succeeded',
        details: {
          destination_ending: destination.slice(-4),
          previous_ending: existing.destination?.slice(-4) ?? null,
        },
      });
      return settings;
    },
  };
}
