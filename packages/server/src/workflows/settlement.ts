import { sql } from 'kysely';
import type { Context } from '../kernel/context.js';
import { type Executor, requireTransaction } from '../kernel/database/database.js';
import { executeUnawaited } from '../kernel/database/pipelined-driver.js';
import { conflict, isDomainError, notFound, unprocessable } from '../kernel/errors.js';
import type { PartnerId } from '../kernel/ids.js';
import { allocate } from '../kernel/money.js';
import type { AccountKey, EntryInput, LedgerService, LedgerTransaction } from '../modules/ledger/index.js';

/*
 * An order's money after capture: releasing each leg to its partner, and refunds. The customer's
 * payment sits in the order's escrow; a confirmed leg releases its gross price to the partner
 * less the commission of the fee schedule the order keeps (a subsidy may pay some of that
 * commission for the partner), and the offering's margin to the platform. A refund comes from
 * escrow while the money is still there, and otherwise reverses a released leg in proportion —
 * partner share, commission and margin, by largest remainder so the parts always sum to the
 * refund — clawing the partner's part back from its payable, or as a debt when the payable is
 * short.
 *
 * Every step is one ledger transaction with a key derived from its cause, so running a step
 * again is a replay. What a leg was released with is written in the release's metadata (part of
 * its hashed content), so later refunds are computed from the books themselves.
 */

/** The fee schedule, as settlement needs it. */
export interface CommissionPort {
  commission(
    ctx: Context,
    input: {
      versionId: string;
      capability: string;
      partnerId: PartnerId;
      region: string;
      customerSegment?: string | undefined;
      tier?: string | undefined;
      amountMinor: bigint;
      currency: string;
    },
  ): Promise<{ commissionMinor: bigint; ruleId: string | null }>;
}

/** Subsidy programmes, as settlement needs them. */
export interface SubsidyPort {
  apply(
    ctx: Context,
    input: {
      side: 'partner' | 'customer';
      partnerId?: string;
      partnerType?: string;
      customerSegment?: string;
      region: string;
      capability?: string;
      feeMinor: bigint;
      currency: string;
      customerId?: string;
      cause: { kind: 'leg' | 'order'; id: string };
      beneficiary: AccountKey;
      idempotencyKey: string;
      maxAmountMinor?: bigint;
    },
  ): Promise<{ programmeId: string; amountMinor: bigint } | null>;
  /** What `apply` would pay now, posting nothing: what a quote shows. */
  preview(
    ctx: Context,
    input: {
      side: 'partner' | 'customer';
      customerId?: string;
      customerSegment?: string;
      region: string;
      feeMinor: bigint;
      currency: string;
    },
  ): Promise<{ programmeId: string; amountMinor: bigint; kind: 'waiver' | 'rebate' } | null>;
  refund(
    ctx: Context,
    input: { idempotencyKey: string; originalKey: string; amountMinor: bigint },
  ): Promise<{ amountMinor: bigint }>;
}

/** Partners' types, which subsidy programmes may target. */
export interface PartnerTypePort {
  typeOf(ctx: Context, partnerId: PartnerId): Promise<string>;
}

/** What an order's customer paid through the provider and what chargebacks took back of it. */
export interface ChargebackPort {
  capturedAndChargedBack(
    ctx: Context,
    input: { orderRef: string; currency: string },
  ): Promise<{ capturedMinor: bigint; chargedBackMinor: bigint }>;
}

export interface SettlementDeps {
  readonly ledger: LedgerService;
  readonly fees: CommissionPort;
  readonly subsidies: SubsidyPort;
  readonly partners: PartnerTypePort;
  /** Chargebacks, which a refund must not give back a second time; without it, none are known. */
  readonly chargebacks?: ChargebackPort;
}

/**
 * The partner-type port over the participants module. A partner's type never changes, so the
 * participants module remembers it once read: a leg's release costs no statement for it.
 *
 * @throws DomainError `participants.partner_not_found` (as reading the partner would)
 */
export function partnerTypes(participants: {
  partnerTypeOf(db: Executor, id: PartnerId): Promise<string | undefined>;
}): PartnerTypePort {
  return {
    async typeOf(ctx, partnerId) {
      const type = await participants.partnerTypeOf(ctx.db, partnerId);
      if (type === undefined) throw notFound('participants.partner_not_found', `No partner ${partnerId}.`);
      return type;
    },
  };
}

export interface LegRelease {
  readonly orderRef: string;
  readonly legRef: string;
  readonly partnerId: PartnerId;
  readonly capability: string;
  readonly region: string;
  readonly customerSegment?: string;
  /** The partner's tier the order was placed with; the partner's tier now when left out. */
  readonly tier?: string;
  /** The partner's price for the leg. */
  readonly grossMinor: bigint;
  /** The offering's margin on this leg, kept by the platform. */
  readonly marginMinor: bigint;
  readonly currency: string;
  /** The fee schedule version in force when the order was placed; null: no commission. */
  readonly feeVersionId: string | null;
}

/** What a leg's release moved, as recorded in its metadata. */
export interface ReleasedLeg {
  readonly transaction: LedgerTransaction;
  readonly orderRef: string;
  readonly partnerId: PartnerId;
  readonly currency: string;
  readonly grossMinor: bigint;
  readonly marginMinor: bigint;
  readonly commissionMinor: bigint;
  readonly subsidyMinor: bigint;
  /** Refunded so far: the refund total, and its commission, margin and subsidy parts. */
  readonly refundedMinor: bigint;
  readonly refundedCommissionMinor: bigint;
  readonly refundedMarginMinor: bigint;
  readonly returnedSubsidyMinor: bigint;
}

export const settlementErrors = {
  refundExceedsLeg: (legRef: string, refundableMinor: bigint) =>
    unprocessable(
      'settlement.refund_exceeds_leg',
      `At most ${refundableMinor} minor units of leg ${legRef} can still be refunded.`,
      { refundable: refundableMinor.toString() },
    ),
  refundExceedsOrder: (orderRef: string, refundableMinor: bigint) =>
    unprocessable(
      'settlement.refund_exceeds_order',
      `At most ${refundableMinor} minor units of order ${orderRef} can still be refunded.`,
      { refundable: refundableMinor.toString() },
    ),
  /** A chargeback already gave the customer part of the order's money back: not refundable again. */
  refundExceedsAfterChargebacks: (orderRef: string, refundableMinor: bigint, chargedBackMinor: bigint) =>
    conflict(
      'settlement.refund_exceeds_after_chargebacks',
      `Chargebacks took ${chargedBackMinor} minor units of order ${orderRef} back; at most ${refundableMinor} can still be refunded.`,
      { refundable: refundableMinor.toString(), charged_back: chargedBackMinor.toString() },
    ),
  amountInvalid: () => unprocessable('settlement.amount_invalid', 'The amount must be positive.'),
  /** A leg is released for one order; no other order's release or refund may touch it. */
  legOfAnotherOrder: (legRef: string, releasedFor: string, named: string) =>
    conflict(
      'settlement.leg_of_another_order',
      `Leg ${legRef} was released for order ${releasedFor}, not for order ${named}.`,
      { leg_ref: legRef, order_ref: releasedFor },
    ),
};

/** An order's escrow: the customer's money the order holds until its legs are released. */
export const escrowOf = (orderRef: string, currency: string): AccountKey => ({
  purpose: 'customer_escrow',
  ownerId: orderRef,
  currency,
});
const platform = (purpose: AccountKey['purpose'], currency: string): AccountKey => ({
  purpose,
  ownerId: 'platform',
  currency,
});
const partnerAccount = (purpose: AccountKey['purpose'], partnerId: string, currency: string): AccountKey => ({
  purpose,
  ownerId: partnerId,
  currency,
});

/** Leaves out the zero lines a computed split may contain. */
const lines = (entries: readonly EntryInput[]): EntryInput[] =>
  entries.filter((entry) => entry.amountMinor > 0n);

/**
 * Releases a confirmed leg from the order's escrow: the partner's price less commission to its
 * payable, the commission and the margin to the platform, and a subsidy (if a programme covers
 * the partner) from its budget to the partner. Running it again returns the first release.
 *
 * A leg is released once, when it is confirmed, so the books are not read first: the release is
 * posted, and only when its key turns out to be taken already (a replay) is the first release
 * read back, with the refunds made since. The fee and the subsidy of a replay are those of the
 * first release (the fee schedule version and the partner's type never change, and the
 * subsidy's application is replayed by its own key), so its posting is the same; should it
 * differ all the same, the first release is still what is returned.
 *
 * @throws DomainError `ledger.insufficient_funds` (escrow short), `settlement.amount_invalid`,
 *   `participants.partner_not_found`
 */
export async function releaseLeg(
  ctx: Context,
  deps: SettlementDeps,
  input: LegRelease,
): Promise<ReleasedLeg> {
  requireTransaction(ctx.db);
  /** A release found under the leg's key: this one's, unless it was made for another order. */
  const ofThisOrder = (existing: ReleasedLeg | null): ReleasedLeg | null => {
    if (existing && existing.orderRef !== input.orderRef)
      throw settlementErrors.legOfAnotherOrder(input.legRef, existing.orderRef, input.orderRef);
    return existing;
  };
  if (input.grossMinor <= 0n || input.marginMinor < 0n) {
    const existing = ofThisOrder(await releasedLeg(ctx, deps, input.legRef));
    if (existing) return existing;
    throw settlementErrors.amountInvalid();
  }
  let posted: Awaited<ReturnType<typeof postRelease>>;
  try {
    posted = await postRelease(ctx, deps, input);
  } catch (error) {
    // A replay whose fee or subsidy came out differently: the first release stands.
    const replayed =
      isDomainError(error) &&
      (error.code === 'ledger.exists_with_different_content' || error.code === 'subsidies.key_reused');
    const existing = replayed ? ofThisOrder(await releasedLeg(ctx, deps, input.legRef)) : null;
    if (existing) return existing;
    throw error;
  }
  if (posted.replayed) {
    const released = ofThisOrder(await releasedLeg(ctx, deps, input.legRef));
    if (!released || released.transaction.id !== posted.transaction.id)
      throw new Error(`leg ${input.legRef} was released by another transaction`);
    return released;
  }
  // Just posted: nothing of it can have been refunded yet.
  return {
    transaction: posted.transaction,
    orderRef: input.orderRef,
    partnerId: input.partnerId,
    currency: posted.transaction.entries[0]?.currency ?? input.currency,
    grossMinor: input.grossMinor,
    marginMinor: input.marginMinor,
    commissionMinor: posted.commissionMinor,
    subsidyMinor: posted.subsidyMinor,
    refundedMinor: 0n,
    refundedCommissionMinor: 0n,
    refundedMarginMinor: 0n,
    returnedSubsidyMinor: 0n,
  };
}

const releaseKey = (legRef: string) => `leg:${legRef}:release`;

/** A leg's release as posting it answered: the transaction (or the one its key already named). */
interface PostedRelease {
  readonly transaction: LedgerTransaction;
  readonly replayed: boolean;
  readonly commissionMinor: bigint;
  readonly subsidyMinor: bigint;
}

/** Computes a leg's commission and subsidy and posts its release (or finds it posted). */
async function postRelease(ctx: Context, deps: SettlementDeps, input: LegRelease): Promise<PostedRelease> {
  const fee = input.feeVersionId
    ? await deps.fees.commission(ctx, {
        versionId: input.feeVersionId,
        capability: input.capability,
        partnerId: input.partnerId,
        region: input.region,
        customerSegment: input.customerSegment,
        tier: input.tier,
        amountMinor: input.grossMinor,
        currency: input.currency,
      })
    : { commissionMinor: 0n, ruleId: null };
  const commissionMinor = fee.commissionMinor > input.grossMinor ? input.grossMinor : fee.commissionMinor;
  const payable = partnerAccount('partner_payable', input.partnerId, input.currency);
  // The subsidy is applied before the release is posted, which records it. Should the release's
  // key turn out taken by a first release that differs (a replay stating other amounts, whose
  // first release charged no commission, say), the subsidy applied for this one is undone with
  // it: the first release, and its subsidy, stand.
  // (The savepoint's statements travel with the next ones: they cost no round trip of their own.)
  if (commissionMinor === 0n) return postReleaseWith(ctx, deps, input, fee, commissionMinor, payable);
  await executeUnawaited(ctx.db, sql`savepoint settlement_release`.compile(ctx.db));
  try {
    const posted = await postReleaseWith(ctx, deps, input, fee, commissionMinor, payable);
    await executeUnawaited(ctx.db, sql`release savepoint settlement_release`.compile(ctx.db));
    return posted;
  } catch (error) {
    await sql`rollback to savepoint settlement_release`.execute(ctx.db);
    await sql`release savepoint settlement_release`.execute(ctx.db);
    throw error;
  }
}

async function postReleaseWith(
  ctx: Context,
  deps: SettlementDeps,
  input: LegRelease,
  fee: { readonly ruleId: string | null },
  commissionMinor: bigint,
  payable: AccountKey,
): Promise<PostedRelease> {
  const subsidy =
    commissionMinor > 0n
      ? await deps.subsidies.apply(ctx, {
          side: 'partner',
          partnerId: input.partnerId,
          partnerType: await deps.partners.typeOf(ctx, input.partnerId),
          ...(input.customerSegment !== undefined ? { customerSegment: input.customerSegment } : {}),
          region: input.region,
          capability: input.capability,
          feeMinor: commissionMinor,
          currency: input.currency,
          cause: { kind: 'leg', id: input.legRef },
          beneficiary: payable,
          idempotencyKey: `leg:${input.legRef}:subsidy`,
        })
      : null;
  const subsidyMinor = subsidy?.amountMinor ?? 0n;
  const { transaction, replayed } = await deps.ledger.post(ctx, {
    idempotencyKey: releaseKey(input.legRef),
    description: `Release of leg ${input.legRef} of order ${input.orderRef}`,
    cause: { kind: 'leg', id: input.legRef },
    metadata: {
      step: 'release',
      order_ref: input.orderRef,
      partner_id: input.partnerId,
      gross: input.grossMinor.toString(),
      margin: input.marginMinor.toString(),
      commission: commissionMinor.toString(),
      subsidy: subsidyMinor.toString(),
      fee_rule: fee.ruleId ?? '',
      fee_version: input.feeVersionId ?? '',
      subsidy_programme: subsidy?.programmeId ?? '',
    },
    entries: lines([
      {
        account: escrowOf(input.orderRef, input.currency),
        direction: 'debit',
        amountMinor: input.grossMinor + input.marginMinor,
      },
      { account: payable, direction: 'credit', amountMinor: input.grossMinor - commissionMinor },
      {
        account: platform('platform_commission', input.currency),
        direction: 'credit',
        amountMinor: commissionMinor,
      },
      {
        account: platform('platform_margin', input.currency),
        direction: 'credit',
        amountMinor: input.marginMinor,
      },
    ]),
  });
  return { transaction, replayed, commissionMinor, subsidyMinor };
}

/** What a leg's release and refunds moved so far, read from the books; null before its release. */
export async function releasedLeg(
  ctx: Context,
  deps: SettlementDeps,
  legRef: string,
): Promise<ReleasedLeg | null> {
  const transactions = await deps.ledger.transactionsFor(ctx, { kind: 'leg', id: legRef });
  const release = transactions.find((t) => t.metadata.step === 'release');
  if (!release) return null;
  const big = (value: string | undefined) => BigInt(value ?? '0');
  let refundedMinor = 0n;
  let refundedCommissionMinor = 0n;
  let refundedMarginMinor = 0n;
  let returnedSubsidyMinor = 0n;
  // A reclaim gives a leg's money back as a refund does, only into the order's escrow.
  for (const refund of transactions.filter((t) => REFUND_STEPS.includes(t.metadata.step ?? ''))) {
    refundedMinor += big(refund.metadata.amount);
    refundedCommissionMinor += big(refund.metadata.commission);
    refundedMarginMinor += big(refund.metadata.margin);
    returnedSubsidyMinor += big(refund.metadata.subsidy);
  }
  return {
    transaction: release,
    orderRef: release.metadata.order_ref ?? '',
    partnerId: (release.metadata.partner_id ?? '') as PartnerId,
    currency: release.entries[0]?.currency ?? '',
    grossMinor: big(release.metadata.gross),
    marginMinor: big(release.metadata.margin),
    commissionMinor: big(release.metadata.commission),
    subsidyMinor: big(release.metadata.subsidy),
    refundedMinor,
    refundedCommissionMinor,
    refundedMarginMinor,
    returnedSubsidyMinor,
  };
}

/** What a refund of an order's money names: the order, the refund, how much, and which legs. */
export interface OrderRefundInput {
  readonly orderRef: string;
  readonly refundRef: string;
  readonly amountMinor: bigint;
  /** The order's legs released so far (the order knows them). */
  readonly releasedLegRefs: readonly string[];
  /** Narrows the refund to one leg: that partner's part. */
  readonly legRef?: string;
}

export interface RefundResult {
  /** The ledger transactions of this refund (empty on a replay that found them all). */
  readonly transactions: readonly LedgerTransaction[];
  readonly amountMinor: bigint;
  /** What came from escrow, and from each released leg. */
  readonly fromEscrowMinor: bigint;
  readonly fromLegs: readonly { legRef: string; amountMinor: bigint }[];
}

/** The steps that give a released leg's money back: to the customer, or into the order's escrow. */
const REFUND_STEPS: readonly string[] = ['refund', 'reclaim'];

/**
 * Where a released leg's refunded money goes: to refunds in transit, for the provider to pay the
 * customer (`customer`), or back into the order's escrow (`escrow`), for the order to divide
 * between the customer and a programme that paid part of it.
 */
export type RefundDestination = 'customer' | 'escrow';

/**
 * Refunds part of a released leg: the amount is split over the partner's share, the commission
 * and the margin in proportion to what is left of each (largest remainder); the partner's part,
 * and the share of its subsidy that paid the reversed commission, come back from its payable
 * (as much as it holds) or become a debt on its receivable. The money goes to refunds in
 * transit until the provider pays the customer, or with `to: 'escrow'` back into the order's
 * escrow (a reclaim).
 *
 * @throws DomainError `settlement.refund_exceeds_leg`, `settlement.amount_invalid`
 */
export async function refundReleasedLeg(
  ctx: Context,
  deps: SettlementDeps,
  input: { legRef: string; refundRef: string; amountMinor: bigint; to?: RefundDestination },
): Promise<LedgerTransaction> {
  requireTransaction(ctx.db);
  const reclaim = input.to === 'escrow';
  const key = `${reclaim ? 'reclaim' : 'refund'}:${input.refundRef}:leg:${input.legRef}`;
  const done = (await deps.ledger.transactionsFor(ctx, { kind: 'leg', id: input.legRef })).find(
    (t) => t.idempotencyKey === key,
  );
  if (done) return done;
  if (input.amountMinor <= 0n) throw settlementErrors.amountInvalid();
  const leg = await releasedLeg(ctx, deps, input.legRef);
  if (!leg) throw settlementErrors.refundExceedsLeg(input.legRef, 0n);
  const total = leg.grossMinor + leg.marginMinor;
  const refundable = total - leg.refundedMinor;
  if (input.amountMinor > refundable) throw settlementErrors.refundExceedsLeg(input.legRef, refundable);

  // Split over what is left of each part, not as a difference of splits of the running total:
  // largest remainder is not monotonic (a larger total can give a part less), and a difference
  // could then be negative. Each part stays within what is left of it, and the last refund
  // gives back exactly what is left of each.
  const commissionLeft = leg.commissionMinor - leg.refundedCommissionMinor;
  const marginLeft = leg.marginMinor - leg.refundedMarginMinor;
  const [partnerPart = 0n, commissionPart = 0n, marginPart = 0n] = allocate(input.amountMinor, [
    refundable - commissionLeft - marginLeft,
    commissionLeft,
    marginLeft,
  ]);
  // The subsidy paid part of the commission; reversing that commission hands it back.
  const subsidyAfter =
    leg.commissionMinor > 0n
      ? (leg.subsidyMinor * (leg.refundedCommissionMinor + commissionPart)) / leg.commissionMinor
      : 0n;
  const subsidyPart = subsidyAfter - leg.returnedSubsidyMinor;

  const payable = partnerAccount('partner_payable', leg.partnerId, leg.currency);
  let available = (await deps.ledger.lockBalance(ctx, payable)).balanceMinor;
  // The subsidy goes back to its programme from the partner's payable, as far as the payable
  // holds it: a partner is never left owing a subsidy, the programme bears what the payable lacks.
  let subsidyReturned = 0n;
  if (subsidyPart > 0n && available > 0n) {
    const returned = await deps.subsidies.refund(ctx, {
      idempotencyKey: `${key}:subsidy`,
      originalKey: `leg:${input.legRef}:subsidy`,
      amountMinor: subsidyPart < available ? subsidyPart : available,
    });
    subsidyReturned = returned.amountMinor;
    available -= subsidyReturned;
  }
  const fromPayable = partnerPart < available ? partnerPart : available;
  const { transaction } = await deps.ledger.post(ctx, {
    idempotencyKey: key,
    description: `${reclaim ? 'Reclaim' : 'Refund'} ${input.refundRef} of leg ${input.legRef}`,
    cause: { kind: 'leg', id: input.legRef },
    metadata: {
      step: reclaim ? 'reclaim' : 'refund',
      refund_ref: input.refundRef,
      order_ref: leg.orderRef,
      amount: input.amountMinor.toString(),
      partner: partnerPart.toString(),
      commission: commissionPart.toString(),
      margin: marginPart.toString(),
      // What the subsidy's share of the reversed commission was, and what actually went back.
      subsidy: subsidyPart.toString(),
      subsidy_returned: subsidyReturned.toString(),
      clawed_back_as_debt: (partnerPart - fromPayable).toString(),
    },
    entries: lines([
      { account: payable, direction: 'debit', amountMinor: fromPayable },
      {
        account: partnerAccount('partner_receivable', leg.partnerId, leg.currency),
        direction: 'debit',
        amountMinor: partnerPart - fromPayable,
      },
      {
        account: platform('platform_commission', leg.currency),
        direction: 'debit',
        amountMinor: commissionPart,
      },
      { account: platform('platform_margin', leg.currency), direction: 'debit', amountMinor: marginPart },
      {
        account: reclaim
          ? escrowOf(leg.orderRef, leg.currency)
          : platform('refunds_in_transit', leg.currency),
        direction: 'credit',
        amountMinor: input.amountMinor,
      },
    ]),
  });
  return transaction;
}

/**
 * Released legs of an order with what each can still give back, in the order given; legs not
 * released are left out.
 *
 * @throws DomainError `settlement.leg_of_another_order` for a leg released for another order
 */
async function refundableLegs(
  ctx: Context,
  deps: SettlementDeps,
  orderRef: string,
  legRefs: readonly string[],
): Promise<{ legRef: string; refundable: bigint }[]> {
  return (
    await Promise.all(legRefs.map(async (legRef) => ({ legRef, leg: await releasedLeg(ctx, deps, legRef) })))
  ).flatMap(({ legRef, leg }) => {
    if (!leg) return [];
    if (leg.orderRef !== orderRef) throw settlementErrors.legOfAnotherOrder(legRef, leg.orderRef, orderRef);
    return [{ legRef, refundable: leg.grossMinor + leg.marginMinor - leg.refundedMinor }];
  });
}

/** Gives `amountMinor` back from released legs, in proportion to what each can still refund. */
async function refundFromLegs(
  ctx: Context,
  deps: SettlementDeps,
  released: readonly { legRef: string; refundable: bigint }[],
  input: { refundRef: string; amountMinor: bigint; to: RefundDestination },
): Promise<{ transactions: LedgerTransaction[]; fromLegs: { legRef: string; amountMinor: bigint }[] }> {
  const transactions: LedgerTransaction[] = [];
  const fromLegs: { legRef: string; amountMinor: bigint }[] = [];
  if (input.amountMinor === 0n || released.length === 0) return { transactions, fromLegs };
  const parts = allocate(
    input.amountMinor,
    released.map((leg) => leg.refundable),
  );
  for (const [index, leg] of released.entries()) {
    const amountMinor = parts[index] ?? 0n;
    if (amountMinor === 0n) continue;
    transactions.push(
      await refundReleasedLeg(ctx, deps, {
        legRef: leg.legRef,
        refundRef: input.refundRef,
        amountMinor,
        to: input.to,
      }),
    );
    fromLegs.push({ legRef: leg.legRef, amountMinor });
  }
  return { transactions, fromLegs };
}

/**
 * Takes `amountMinor` of released legs' money back into the order's escrow, in proportion to
 * what each leg can still refund (partner share, commission and margin of each as a refund
 * reverses them), or of the one leg `legRef` names: for an order's own refund after its money was released, which then divides
 * it between the customer and a programme that paid part of the order. Nothing is given to
 * anyone here; a reclaim counts against what each leg can still refund. The same `refundRef`
 * again returns the reclaim made with it.
 *
 * @throws DomainError `settlement.refund_exceeds_leg` (one leg named), `settlement.refund_exceeds_order`,
 *   `settlement.amount_invalid`
 */
export async function reclaimReleasedLegs(
  ctx: Context,
  deps: SettlementDeps,
  input: OrderRefundInput,
): Promise<LedgerTransaction[]> {
  requireTransaction(ctx.db);
  const legs = input.legRef !== undefined ? [input.legRef] : input.releasedLegRefs;
  // A reclaim's parts are posted in one database transaction: finding any means a replay.
  const posted = (await Promise.all(legs.map((id) => deps.ledger.transactionsFor(ctx, { kind: 'leg', id }))))
    .flat()
    .filter((t) => t.metadata.step === 'reclaim' && t.metadata.refund_ref === input.refundRef);
  if (posted.length > 0) return posted;
  if (input.amountMinor <= 0n) throw settlementErrors.amountInvalid();
  const released = await refundableLegs(ctx, deps, input.orderRef, legs);
  const refundable = released.reduce((sum, leg) => sum + leg.refundable, 0n);
  if (input.amountMinor > refundable) {
    throw input.legRef !== undefined
      ? settlementErrors.refundExceedsLeg(input.legRef, refundable)
      : settlementErrors.refundExceedsOrder(input.orderRef, refundable);
  }
  const { transactions } = await refundFromLegs(ctx, deps, released, {
    refundRef: input.refundRef,
    amountMinor: input.amountMinor,
    to: 'escrow',
  });
  return transactions;
}

/**
 * Refunds part of an order: from its escrow first (money not yet released), the rest from its
 * released legs in proportion to what each can still refund. `legRef` narrows the refund to one
 * partner's part: escrow first only if that leg is not released yet.
 *
 * The customer never gets back more than it has left paid: what chargebacks took back is not
 * refunded again (the provider would refuse it, with the money already moved here).
 *
 * @throws DomainError `settlement.refund_exceeds_order`, `settlement.refund_exceeds_leg`,
 *   `settlement.refund_exceeds_after_chargebacks`, `settlement.amount_invalid`
 */
export async function refundOrder(
  ctx: Context,
  deps: SettlementDeps,
  input: OrderRefundInput & { readonly currency: string },
): Promise<RefundResult> {
  requireTransaction(ctx.db);
  if (input.amountMinor <= 0n) throw settlementErrors.amountInvalid();
  const escrowKey = `refund:${input.refundRef}:escrow`;
  const legs = input.legRef !== undefined ? [input.legRef] : input.releasedLegRefs;
  const released = await refundableLegs(ctx, deps, input.orderRef, legs);

  // A refund's parts are posted in one database transaction, so finding any of them means the
  // whole refund happened: this is a replay, answered with what was posted.
  const posted = (
    await Promise.all(
      [
        { kind: 'order' as const, id: input.orderRef },
        ...legs.map((id) => ({ kind: 'leg' as const, id })),
      ].map((cause) => deps.ledger.transactionsFor(ctx, cause)),
    )
  )
    .flat()
    .filter((t) => t.metadata.step === 'refund' && t.metadata.refund_ref === input.refundRef);
  if (posted.length > 0) {
    const escrowPart = posted.find((t) => t.idempotencyKey === escrowKey);
    return {
      transactions: posted,
      amountMinor: posted.reduce((sum, t) => sum + BigInt(t.metadata.amount ?? '0'), 0n),
      fromEscrowMinor: BigInt(escrowPart?.metadata.amount ?? '0'),
      fromLegs: posted
        .filter((t) => t !== escrowPart)
        .map((t) => ({ legRef: t.cause.id, amountMinor: BigInt(t.metadata.amount ?? '0') })),
    };
  }
  await refuseBeyondChargebacks(ctx, deps, input);
  const escrowAvailable =
    input.legRef !== undefined && released.length > 0
      ? 0n
      : (await deps.ledger.lockBalance(ctx, escrowOf(input.orderRef, input.currency))).balanceMinor;
  const fromEscrow = input.amountMinor < escrowAvailable ? input.amountMinor : escrowAvailable;
  const rest = input.amountMinor - fromEscrow;
  const refundable = released.reduce((sum, leg) => sum + leg.refundable, 0n);
  if (rest > refundable)
    throw settlementErrors.refundExceedsOrder(input.orderRef, escrowAvailable + refundable);

  const transactions: LedgerTransaction[] = [];
  if (fromEscrow > 0n) {
    const { transaction } = await deps.ledger.post(ctx, {
      idempotencyKey: escrowKey,
      description: `Refund ${input.refundRef} of order ${input.orderRef} from escrow`,
      cause: { kind: 'order', id: input.orderRef },
      metadata: { step: 'refund', refund_ref: input.refundRef, amount: fromEscrow.toString() },
      entries: [
        { account: escrowOf(input.orderRef, input.currency), direction: 'debit', amountMinor: fromEscrow },
        {
          account: platform('refunds_in_transit', input.currency),
          direction: 'credit',
          amountMinor: fromEscrow,
        },
      ],
    });
    transactions.push(transaction);
  }
  const fromLegs = await refundFromLegs(ctx, deps, released, {
    refundRef: input.refundRef,
    amountMinor: rest,
    to: 'customer',
  });
  transactions.push(...fromLegs.transactions);
  return {
    transactions,
    amountMinor: input.amountMinor,
    fromEscrowMinor: fromEscrow,
    fromLegs: fromLegs.fromLegs,
  };
}

/**
 * What the order can still give its customer back once chargebacks took theirs: its captured
 * payments less what chargebacks took and what was refunded so far (never below zero), with what
 * chargebacks took; null when none took anything.
 */
export async function refundableAfterChargebacks(
  ctx: Context,
  deps: SettlementDeps,
  input: { orderRef: string; currency: string; releasedLegRefs: readonly string[]; legRef?: string },
): Promise<{ refundableMinor: bigint; chargedBackMinor: bigint } | null> {
  if (!deps.chargebacks) return null;
  const { capturedMinor, chargedBackMinor } = await deps.chargebacks.capturedAndChargedBack(ctx, {
    orderRef: input.orderRef,
    currency: input.currency,
  });
  if (chargedBackMinor === 0n) return null;
  const legs = new Set([...input.releasedLegRefs, ...(input.legRef !== undefined ? [input.legRef] : [])]);
  const causes = [
    { kind: 'order' as const, id: input.orderRef },
    ...[...legs].map((id) => ({ kind: 'leg' as const, id })),
  ];
  let refundedMinor = 0n;
  for (const cause of causes)
    for (const t of await deps.ledger.transactionsFor(ctx, cause))
      if (t.metadata.step === 'refund') refundedMinor += BigInt(t.metadata.amount ?? '0');
  const left = capturedMinor - chargedBackMinor - refundedMinor;
  return { refundableMinor: left > 0n ? left : 0n, chargedBackMinor };
}

/**
 * Refuses a refund that, with the order's refunds so far, would give back more than its captured
 * payments less what chargebacks took: checked before anything is posted.
 */
async function refuseBeyondChargebacks(
  ctx: Context,
  deps: SettlementDeps,
  input: {
    orderRef: string;
    currency: string;
    amountMinor: bigint;
    releasedLegRefs: readonly string[];
    legRef?: string;
  },
): Promise<void> {
  const after = await refundableAfterChargebacks(ctx, deps, input);
  if (after && input.amountMinor > after.refundableMinor)
    throw settlementErrors.refundExceedsAfterChargebacks(
      input.orderRef,
      after.refundableMinor,
      after.chargedBackMinor,
    );
}

/**
 * Keeps in the platform's money what an order gives back of its escrow beyond what its customer
 * can still be refunded: the customer's bank already gave the customer that much back by a
 * chargeback, whose loss the platform bore (`chargeback_losses`) and this recovers. The same
 * refund again finds its posting.
 */
export async function recoverChargedBack(
  ctx: Context,
  deps: SettlementDeps,
  input: { orderRef: string; refundRef: string; currency: string; amountMinor: bigint },
): Promise<LedgerTransaction> {
  requireTransaction(ctx.db);
  if (input.amountMinor <= 0n) throw settlementErrors.amountInvalid();
  const { transaction } = await deps.ledger.post(ctx, {
    idempotencyKey: `refund:${input.refundRef}:charged_back`,
    description: `Refund ${input.refundRef} of order ${input.orderRef}: already given back by a chargeback`,
    cause: { kind: 'order', id: input.orderRef },
    metadata: { step: 'charged_back', refund_ref: input.refundRef, amount: input.amountMinor.toString() },
    entries: [
      {
        account: escrowOf(input.orderRef, input.currency),
        direction: 'debit',
        amountMinor: input.amountMinor,
      },
      {
        account: platform('chargeback_losses', input.currency),
        direction: 'credit',
        amountMinor: input.amountMinor,
      },
    ],
  });
  return transaction;
}
