import { systemActor } from '../kernel/actor.js';
import type { Context } from '../kernel/context.js';
import type { Executor } from '../kernel/database/database.js';
import type { Page } from '../kernel/pagination.js';
import type { Baton } from '../main.js';
import { type AccountPurpose, PLATFORM_OWNER } from '../modules/ledger/index.js';
import type { QuoteCounts, Story } from './order-stories.js';

/*
 * The demo's summary, read from what Baton recorded rather than from what the demo meant to do:
 * orders and work orders through the fulfilment service, money from the ledger's accounts and
 * the payments, the subsidy from its programme's totals. Only the quotes that were refused come
 * from the demo's own count, since a refused quote leaves nothing behind.
 */

/** Rows read per page when the summary walks a list. */
const PAGE = 500;

export interface DemoSummary {
  readonly currency: string;
  /** The simulated period: from the operator's first step to the last thing that happened. */
  readonly from: Date;
  readonly to: Date;
  readonly partners: { readonly total: number; readonly byState: Readonly<Record<string, number>> };
  readonly customers: number;
  readonly offers: number;
  readonly offerings: number;
  readonly quotes: QuoteCounts;
  /** The story each placed order was given. */
  readonly stories: Readonly<Record<Story, number>>;
  readonly orders: {
    readonly placed: number;
    readonly completed: number;
    /** Compensated: a leg nobody could take over; what was not done was refunded. */
    readonly failed: number;
    /** The payment was declined; nothing was charged. */
    readonly cancelled: number;
    readonly open: number;
    /** Orders with at least one leg given to another partner. */
    readonly replanned: number;
  };
  readonly legs: {
    readonly delivered: number;
    /** Delivered by their due time. */
    readonly onTime: number;
    /** Flagged late: by the timers while still owed, or as they were delivered after their due time. */
    readonly late: number;
    readonly declined: number;
    readonly expired: number;
    readonly rejected: number;
    /** Rejected and done again by the same partner (the offering's `redo` policy). */
    readonly redone: number;
  };
  readonly money: {
    /** What the payment provider captured from customers. */
    readonly gmvMinor: bigint;
    readonly refundsMinor: bigint;
    readonly commissionMinor: bigint;
    readonly marginMinor: bigint;
    /** Commission plus margin: the platform's revenue accounts. */
    readonly revenueMinor: bigint;
    /** What the platform owes partners: the balances of their payables. */
    readonly partnerEarningsMinor: bigint;
    /** What partners owe the platform (clawbacks their payable could not cover). */
    readonly partnerDebtsMinor: bigint;
    /** What the subsidy programmes paid, less what came back with refunds. */
    readonly subsidySpendMinor: bigint;
    /** Money still in orders' escrow. */
    readonly escrowMinor: bigint;
  };
  /** Platform revenue ÷ (GMV − refunds). */
  readonly takeRate: number | null;
  /** Orders completed ÷ customer requests (every request, whether it was quoted, ordered or not). */
  readonly fillRate: number | null;
  /** Legs delivered by their due time ÷ legs delivered. */
  readonly onTimeRate: number | null;
}

async function all<T>(read: (after: string | undefined) => Promise<Page<T>>, idOf: (item: T) => string) {
  const items: T[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await read(after);
    items.push(...page.items);
    if (!page.hasMore || page.items.length === 0) return items;
    after = idOf(page.items.at(-1) as T);
  }
}

const ratio = (part: number | bigint, whole: number | bigint) =>
  Number(whole) > 0 ? Number(part) / Number(whole) : null;

/** Reads the summary in one repeatable-read transaction, so every figure comes from the same moment. */
export async function summarise(
  baton: Baton,
  input: { currency: string; from: Date; to: Date; quotes: QuoteCounts; stories: Record<Story, number> },
): Promise<DemoSummary> {
  return baton.database.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute((tx) => read(baton, tx, input));
}

async function read(
  baton: Baton,
  db: Executor,
  input: { currency: string; from: Date; to: Date; quotes: QuoteCounts; stories: Record<Story, number> },
): Promise<DemoSummary> {
  const { fulfilment, ledger, payments, participants, catalog, offerings, subsidies } = baton.services;
  const ctx: Context = { db, actor: systemActor('demo'), now: input.to, requestId: null, ip: null };
  const { currency } = input;

  const orders = await all(
    (after) => fulfilment.listOrders(ctx, { after, limit: PAGE }),
    (order) => order.id,
  );
  const workOrders = await all(
    (after) => fulfilment.listWorkOrders(ctx, { after, limit: PAGE }),
    (workOrder) => workOrder.id,
  );
  const countOrders = (status: string) => orders.filter((order) => order.status === status).length;
  const legPartners = new Map<string, Set<string>>();
  const legAttempts = new Map<string, number>();
  for (const workOrder of workOrders) {
    const leg = `${workOrder.orderId}/${workOrder.stepKey}`;
    legPartners.set(leg, (legPartners.get(leg) ?? new Set()).add(workOrder.partnerId));
    legAttempts.set(leg, Math.max(legAttempts.get(leg) ?? 0, workOrder.attempt));
  }
  const replannedOrders = new Set(
    [...legPartners].filter(([, partners]) => partners.size > 1).map(([leg]) => leg.split('/')[0]),
  );
  const delivered = workOrders.filter((workOrder) => workOrder.deliveredAt !== null);
  const count = (status: string) => workOrders.filter((workOrder) => workOrder.status === status).length;
  const redone = workOrders.filter(
    (workOrder) =>
      workOrder.status === 'rejected' &&
      (legAttempts.get(`${workOrder.orderId}/${workOrder.stepKey}`) ?? 0) > workOrder.attempt,
  ).length;

  const captured = await all(
    (after) => payments.listPayments(ctx, { after, limit: PAGE }),
    (payment) => payment.id,
  );
  // Payments are listed newest first: page on by the last one read, whatever the order.
  const paid = captured.filter((payment) => payment.currency === currency);
  const gmvMinor = paid.reduce((sum, payment) => sum + payment.capturedMinor, 0n);
  const refundsMinor = paid.reduce((sum, payment) => sum + payment.refundedMinor, 0n);

  async function balances(purpose: AccountPurpose, ownerId?: string): Promise<bigint> {
    const accounts = await all(
      (after) => ledger.listAccounts(ctx, { purpose, currency, ownerId, after, limit: PAGE }),
      (account) => account.id,
    );
    let total = 0n;
    for (const account of accounts) {
      const key = { purpose, ownerId: account.ownerId, currency: account.currency };
      total += (await ledger.balance(ctx, key)).balanceMinor;
    }
    return total;
  }
  const commissionMinor = await balances('platform_commission', PLATFORM_OWNER);
  const marginMinor = await balances('platform_margin', PLATFORM_OWNER);
  const programmes = await all(
    (after) => subsidies.listProgrammes(ctx, { after, limit: PAGE }),
    (programme) => programme.id,
  );

  const partners = await all(
    (after) => participants.listPartners(ctx, { after, limit: PAGE }),
    (p) => p.id,
  );
  const byState: Record<string, number> = {};
  for (const partner of partners) byState[partner.state] = (byState[partner.state] ?? 0) + 1;
  const customers = await all(
    (after) => participants.listCustomers(ctx, { after, limit: PAGE }),
    (c) => c.id,
  );
  const offers = await all(
    (after) => catalog.listOffers(ctx, { after, limit: PAGE }),
    (offer) => offer.id,
  );
  const offeringList = await all(
    (after) => offerings.listOfferings(ctx, { after, limit: PAGE }),
    (offering) => offering.offering.key,
  );

  const completed = countOrders('completed');
  const onTime = delivered.filter(
    (workOrder) => (workOrder.deliveredAt as Date).getTime() <= workOrder.dueBy.getTime(),
  ).length;
  const revenueMinor = commissionMinor + marginMinor;
  return {
    currency,
    from: input.from,
    to: input.to,
    partners: { total: partners.length, byState },
    customers: customers.length,
    offers: offers.length,
    offerings: offeringList.length,
    quotes: input.quotes,
    stories: input.stories,
    orders: {
      placed: orders.length,
      completed,
      failed: countOrders('failed'),
      cancelled: countOrders('cancelled'),
      open: orders.length - completed - countOrders('failed') - countOrders('cancelled'),
      replanned: replannedOrders.size,
    },
    legs: {
      delivered: delivered.length,
      onTime,
      late: workOrders.filter((workOrder) => workOrder.late).length,
      declined: count('declined'),
      expired: count('expired'),
      rejected: count('rejected'),
      redone,
    },
    money: {
      gmvMinor,
      refundsMinor,
      commissionMinor,
      marginMinor,
      revenueMinor,
      partnerEarningsMinor: await balances('partner_payable'),
      partnerDebtsMinor: await balances('partner_receivable'),
      subsidySpendMinor: programmes
        .filter((programme) => programme.currency === currency)
        .reduce((sum, programme) => sum + programme.spentMinor - programme.returnedMinor, 0n),
      escrowMinor: await balances('customer_escrow'),
    },
    takeRate: ratio(revenueMinor, gmvMinor - refundsMinor),
    fillRate: ratio(completed, input.quotes.requests),
    onTimeRate: ratio(onTime, delivered.length),
  };
}
