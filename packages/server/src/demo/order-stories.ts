import type { ManualClock } from '../kernel/clock.js';
import { formatAmount, parseAmount, parseCurrency } from '../kernel/money.js';
import type { Baton } from '../main.js';
import { RESUME_PAYMENT_JOB } from '../modules/payments/index.js';
import { PROVIDER_REFUND_JOB } from '../workflows/settlement-routes.js';
import { Agenda } from './agenda.js';
import { type DemoClient, DemoRequestError, type ProblemBody } from './demo-client.js';
import {
  COMPANY_WORDS,
  DEMO_CURRENCY,
  DEMO_REFUND_APPROVAL_ABOVE,
  FIRST_NAMES,
  LAST_NAMES,
  OFFERINGS,
  type OfferingSpec,
  stepCapabilities,
} from './ecosystem.js';
import type { Ecosystem } from './seed-ecosystem.js';
import type { SeededRandom } from './seeded-random.js';

/*
 * The demo's orders, played out over simulated weeks. Customers ask for quotes and order them;
 * partners answer the work orders offered to them, do the work and deliver; customers confirm or
 * reject what was delivered. Each order follows a story drawn from the seed: most go
 * smoothly, some legs are declined or left to expire and are re-planned, some are late, some are
 * rejected (refunded or redone, as the offering says), some payments are declined, in a few
 * orders no partner will take a leg, so the order is compensated, and after a few completed
 * orders an operator gives the customer part of its money back by hand.
 *
 * The clock only moves forward, to the time of the next thing someone does. Between actions the
 * demo does what Baton's background jobs would: it charges payments, pays refunds back and runs
 * the timers (expired offers, late work, deliveries nobody judged) when they fall due.
 *
 * The demo learns what changed by reading the orders it touched (the answers of the API, or the
 * order itself after a decline, a payment or a run of the timers), not from the event feed: the
 * feed holds an event back while an older transaction is still open, and the demo must see new
 * work at the moment it is offered, since acceptance windows are minutes long.
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

export type Story =
  | 'smooth'
  | 'declined'
  | 'expired'
  | 'late'
  | 'rejected'
  | 'payment_declined'
  | 'compensated'
  | 'goodwill';

/** At least one of each of these in every demo of eight orders or more. */
const REQUIRED_STORIES: readonly { story: Story; offering?: OfferingSpec['key'] }[] = [
  { story: 'declined' },
  { story: 'expired' },
  { story: 'late' },
  { story: 'rejected', offering: 'garment-run' },
  { story: 'rejected', offering: 'meal-delivery' },
  { story: 'payment_declined' },
  { story: 'compensated', offering: 'city-trip' },
  { story: 'goodwill' },
];

const STORY_WEIGHTS: readonly (readonly [Story, number])[] = [
  ['smooth', 62],
  ['declined', 8],
  ['expired', 6],
  ['late', 8],
  ['rejected', 7],
  ['payment_declined', 3],
  ['compensated', 3],
  ['goodwill', 3],
];

/** Share of customers' deliveries left to confirm themselves. */
const AUTO_CONFIRM_SHARE = 0.08;
/** Share of requests asked first with a deadline no plan meets. */
const TOO_TIGHT_SHARE = 0.05;
/** Quotes not ordered, per order placed. */
const ABANDONED_SHARE = 0.06;
/** Customers per request: many customers order more than once. */
const CUSTOMERS_PER_REQUEST = 0.45;

interface Customer {
  readonly name: string;
  readonly email: string;
  readonly kind: 'consumer' | 'business';
  readonly region: string;
  account: { id: string; key: string } | null;
}

interface Request {
  readonly offering: OfferingSpec;
  readonly customer: Customer;
  readonly quantity: number;
  readonly arrivalMs: number;
  readonly deadlineHours: number;
  readonly story: Story;
  readonly storyStep: string | null;
  readonly tooTightFirst: boolean;
  readonly abandon: boolean;
}

interface LiveOrder {
  readonly id: string;
  readonly request: Request;
  readonly customerKey: string;
  rejectedOnce: boolean;
  closed: boolean;
}

/** An order as the API shows it, as far as the demo reads it. */
interface OrderBody {
  readonly status: string;
  readonly total: { readonly amount_minor: string; readonly currency: string };
  readonly legs: readonly {
    readonly step: string;
    readonly partner_id: string;
    readonly work_order_id: string | null;
    readonly work_order_status: string | null;
    readonly attempts: number;
  }[];
}

const CLOSED_ORDERS = ['completed', 'failed', 'cancelled'];
const DEMO_REFUND_APPROVAL_ABOVE_MINOR = parseAmount(
  DEMO_REFUND_APPROVAL_ABOVE,
  parseCurrency(DEMO_CURRENCY),
);

type WorkState = 'offered' | 'accepted' | 'in_progress' | 'delivered' | 'closed';

interface LiveWorkOrder {
  readonly id: string;
  readonly order: LiveOrder;
  readonly step: string;
  readonly partnerKey: string;
  readonly attempt: number;
  readonly offeredAtMs: number;
  state: WorkState;
}

export interface StoriesOptions {
  readonly baton: Baton;
  readonly client: DemoClient;
  readonly adminKey: string;
  /** A second operator's key (finance), who approves refunds by hand above the threshold. */
  readonly financeKey: string;
  readonly clock: ManualClock;
  readonly random: SeededRandom;
  readonly ecosystem: Ecosystem;
  readonly orders: number;
  /** The first moment customers may ask, and the last moment anything may happen. */
  readonly fromMs: number;
  readonly untilMs: number;
  readonly onRequestDone?: (done: number, total: number) => void;
}

/** What the demo saw of its quotes: figures the database does not keep (a refused quote holds nothing). */
export interface QuoteCounts {
  /** Every quote asked for, including the ones refused. */
  readonly requested: number;
  readonly refused: number;
  readonly issued: number;
  /** Quotes the customer did not order. */
  readonly abandoned: number;
  /** Customers' needs: each request ended in an order, or was given up. */
  readonly requests: number;
}

export interface StoriesResult {
  readonly quotes: QuoteCounts;
  readonly stories: Readonly<Record<Story, number>>;
  /** A customer with orders, and a partner with work, to explore the API as. */
  readonly sampleCustomer: { id: string; name: string; key: string } | null;
  readonly samplePartnerId: string | null;
}

/** Plays the orders out; every order placed is closed when it returns. */
export async function playOrders(options: StoriesOptions): Promise<StoriesResult> {
  const { baton, client, adminKey, financeKey, clock, random, ecosystem } = options;
  const agenda = new Agenda();
  const requests = planRequests(options);
  const orders = new Map<string, LiveOrder>();
  const workOrders = new Map<string, LiveWorkOrder>();
  const stories = Object.fromEntries(STORY_WEIGHTS.map(([story]) => [story, 0])) as Record<Story, number>;
  let paymentsDue = false;
  let refundsDue = false;
  /** Orders that changed in ways the demo must look at: new work offered, work cancelled, closed. */
  const changed = new Set<LiveOrder>();
  /** The orders each run of the timers is for. */
  const sweeps = new Map<number, Set<LiveOrder>>();
  let requested = 0;
  let refused = 0;
  let issued = 0;
  let abandoned = 0;
  let resolved = 0;
  const workByPartner = new Map<string, number>();

  const resolve = () => {
    resolved += 1;
    options.onRequestDone?.(resolved, requests.length);
  };
  const minutes = ([min, max]: readonly [number, number]) => random.int(min, max) * MINUTE_MS;
  const later = (delayMs: number, run: () => Promise<void>) =>
    agenda.at(clock.now().getTime() + delayMs, run);

  /** Does what the background jobs would have done by now, and looks at the orders that changed. */
  async function settle(): Promise<void> {
    if (paymentsDue) {
      paymentsDue = false;
      await baton.jobs.runQueued(RESUME_PAYMENT_JOB);
    }
    if (refundsDue) {
      refundsDue = false;
      await baton.jobs.runQueued(PROVIDER_REFUND_JOB);
    }
    for (const order of changed) {
      changed.delete(order);
      observe(order, await client.get<OrderBody>(`/v1/orders/${order.id}`, adminKey));
    }
  }

  /** What the order's participants see of it: new work to answer, work taken away, the order closed. */
  function observe(order: LiveOrder, view: OrderBody): void {
    for (const leg of view.legs) {
      if (!leg.work_order_id) continue;
      const known = workOrders.get(leg.work_order_id);
      if (known) {
        if (leg.work_order_status === 'cancelled' || leg.work_order_status === 'expired')
          known.state = 'closed';
        continue;
      }
      if (leg.work_order_status !== 'offered') continue;
      const partner = ecosystem.partnersById.get(leg.partner_id);
      if (!partner)
        throw new Error(`Work order ${leg.work_order_id} went to a partner the demo does not know.`);
      const workOrder: LiveWorkOrder = {
        id: leg.work_order_id,
        order,
        step: leg.step,
        partnerKey: partner.key,
        attempt: leg.attempts,
        offeredAtMs: clock.now().getTime(),
        state: 'offered',
      };
      workOrders.set(workOrder.id, workOrder);
      workByPartner.set(partner.id, (workByPartner.get(partner.id) ?? 0) + 1);
      answer(workOrder);
    }
    if (CLOSED_ORDERS.includes(view.status) && !order.closed) {
      order.closed = true;
      if (view.status === 'completed' && order.request.story === 'goodwill') {
        later(minutes([30, 240]), () => giveBack(order, view));
      }
      resolve();
    }
  }

  /**
   * The customer complains of a completed order; an operator gives a tenth of it back. Beyond
   * the demo's threshold, of the order or of what the operator gave back alone that day, that is
   * a refund request a second operator approves a little later.
   */
  async function giveBack(order: LiveOrder, view: OrderBody): Promise<void> {
    const currency = parseCurrency(view.total.currency);
    const amountMinor = BigInt(view.total.amount_minor) / 10n;
    const body = {
      amount: { amount: formatAmount(amountMinor, currency), currency },
      reason: random.pick([
        'Goodwill: the customer waited on the phone',
        'Goodwill: packaging arrived damaged',
        'Goodwill: a delivery window was missed',
      ]),
    };
    if (amountMinor <= DEMO_REFUND_APPROVAL_ABOVE_MINOR) {
      const url = `/v1/orders/${order.id}/refunds`;
      const answer = await client.send<ProblemBody>('POST', url, { key: adminKey, body, idempotent: true });
      if (answer.status === 201) {
        refundsDue = true;
        return;
      }
      if (answer.status !== 403 || answer.body.code !== 'orders.refund_needs_approval')
        throw new DemoRequestError('POST', url, answer.status, answer.body);
    }
    const request = await client.post<{ id: string }>(`/v1/orders/${order.id}/refund-requests`, {
      key: adminKey,
      body,
      idempotent: true,
    });
    later(minutes([20, 180]), async () => {
      await client.post(`/v1/refund-requests/${request.id}/approve`, {
        key: financeKey,
        body: {},
        idempotent: true,
      });
      refundsDue = true;
    });
  }

  /** A partner's answer to a work order, as the order's story has it. */
  function answer(workOrder: LiveWorkOrder): void {
    const { request } = workOrder.order;
    const spec = request.offering;
    const onStoryStep = workOrder.step === request.storyStep;
    const windowMs = (spec.definition.acceptance_window_minutes as number) * MINUTE_MS;
    const delay = Math.min(minutes(spec.answerMinutes), windowMs - MINUTE_MS);
    if (
      onStoryStep &&
      (request.story === 'compensated' || (request.story === 'declined' && workOrder.attempt === 1))
    ) {
      later(delay, () => decline(workOrder));
    } else if (onStoryStep && request.story === 'expired' && workOrder.attempt === 1) {
      // The partner never answers: the timers expire the offer and give the leg to another.
      sweepAt(workOrder.offeredAtMs + windowMs + MINUTE_MS, workOrder.order);
    } else {
      later(delay, () => accept(workOrder));
    }
  }

  async function partnerAction<T>(
    workOrder: LiveWorkOrder,
    action: string,
    body: Record<string, unknown> = {},
  ) {
    return client.post<T>(`/v1/work-orders/${workOrder.id}/${action}`, { key: workOrder.partnerKey, body });
  }

  async function decline(workOrder: LiveWorkOrder): Promise<void> {
    if (workOrder.state !== 'offered') return;
    await baton.services.matching.sync();
    await partnerAction(workOrder, 'decline', {
      reason: random.pick([
        'Fully booked that day',
        'Staff shortage',
        'Equipment out of order',
        'Closed for a holiday',
      ]),
    });
    workOrder.state = 'closed';
    changed.add(workOrder.order);
    refundsDue = true;
  }

  async function accept(workOrder: LiveWorkOrder): Promise<void> {
    if (workOrder.state !== 'offered') return;
    const accepted = await partnerAction<{ offer_id: string; due_by: string }>(workOrder, 'accept');
    workOrder.state = 'accepted';
    const leadMs = (ecosystem.leadTimeHours.get(accepted.offer_id) ?? 1) * HOUR_MS;
    later(minutes(workOrder.order.request.offering.startMinutes), () =>
      start(workOrder, leadMs, Date.parse(accepted.due_by)),
    );
  }

  async function start(workOrder: LiveWorkOrder, leadMs: number, dueMs: number): Promise<void> {
    if (workOrder.state !== 'accepted') return;
    await partnerAction(workOrder, 'start');
    workOrder.state = 'in_progress';
    const { request } = workOrder.order;
    const startMs = clock.now().getTime();
    let deliverMs = startMs + Math.round(leadMs * random.between(0.75, 1));
    if (request.story === 'late' && workOrder.step === request.storyStep && workOrder.attempt === 1) {
      deliverMs = Math.max(deliverMs, dueMs + minutes(request.offering.lateMinutes));
    } else if (deliverMs > dueMs) {
      // Behind schedule, the partner hurries; it is late only when even that is not enough.
      deliverMs = Math.max(startMs + Math.round(leadMs / 2), dueMs - 5 * MINUTE_MS);
    }
    // The timers run every minute in production: one runs while late work is still owed, and flags it.
    if (deliverMs > dueMs) sweepAt(Math.max(dueMs + MINUTE_MS, startMs), workOrder.order);
    agenda.at(deliverMs, () => deliver(workOrder));
  }

  async function deliver(workOrder: LiveWorkOrder): Promise<void> {
    if (workOrder.state !== 'in_progress') return;
    const delivered = await partnerAction<{ confirm_by: string }>(workOrder, 'deliver');
    workOrder.state = 'delivered';
    const { order } = workOrder;
    const { request } = order;
    if (request.story === 'rejected' && workOrder.step === request.storyStep && !order.rejectedOnce) {
      order.rejectedOnce = true;
      later(minutes(request.offering.judgeMinutes), () => judge(workOrder, 'reject'));
    } else if (random.chance(AUTO_CONFIRM_SHARE)) {
      // The customer does not answer: the delivery confirms itself when its time is up.
      sweepAt(Date.parse(delivered.confirm_by) + MINUTE_MS, order);
    } else {
      later(minutes(request.offering.judgeMinutes), () => judge(workOrder, 'confirm'));
    }
  }

  async function judge(workOrder: LiveWorkOrder, action: 'confirm' | 'reject'): Promise<void> {
    if (workOrder.state !== 'delivered') return;
    const { order } = workOrder;
    const view = await client.post<OrderBody>(`/v1/orders/${order.id}/legs/${workOrder.step}/${action}`, {
      key: order.customerKey,
      body: action === 'reject' ? { reason: random.pick(['Not as ordered', 'Damaged', 'Arrived cold']) } : {},
      idempotent: true,
    });
    workOrder.state = 'closed';
    observe(order, view);
    if (action === 'reject') refundsDue = true;
  }

  /** Runs the timers at `atMs` (once per minute at most), then looks at the order they were for. */
  function sweepAt(atMs: number, order: LiveOrder): void {
    const minute = Math.ceil(atMs / MINUTE_MS) * MINUTE_MS;
    const planned = sweeps.get(minute);
    if (planned) {
      planned.add(order);
      return;
    }
    sweeps.set(minute, new Set([order]));
    agenda.at(minute, async () => {
      const due = sweeps.get(minute) ?? new Set();
      sweeps.delete(minute);
      await baton.services.matching.sync();
      await baton.services.fulfilment.sweep(baton.database.db, clock.now());
      for (const swept of due) changed.add(swept);
      refundsDue = true;
    });
  }

  async function signUp(customer: Customer): Promise<{ id: string; key: string }> {
    if (customer.account) return customer.account;
    const signed = await client.post<{ customer: { id: string }; api_key: { secret: string } }>(
      '/v1/customer-signups',
      {
        key: null,
        body: { kind: customer.kind, name: customer.name, email: customer.email, region: customer.region },
      },
    );
    customer.account = { id: signed.customer.id, key: signed.api_key.secret };
    return customer.account;
  }

  async function askQuote(request: Request, key: string, deadlineHours: number) {
    requested += 1;
    await baton.services.matching.sync();
    const answer = await client.send<{ id: string } & ProblemBody>('POST', '/v1/quotes', {
      key,
      body: {
        offering: request.offering.key,
        quantity: request.quantity,
        region: request.customer.region,
        deadline: new Date(clock.now().getTime() + deadlineHours * HOUR_MS).toISOString(),
      },
    });
    if (answer.status === 201) {
      issued += 1;
      return answer.body.id;
    }
    if (answer.status === 422 && answer.body.code === 'orders.quote_infeasible') {
      refused += 1;
      return null;
    }
    throw new Error(`POST /v1/quotes answered ${answer.status} ${answer.body.code}: ${answer.body.detail}`);
  }

  async function arrive(request: Request): Promise<void> {
    const account = await signUp(request.customer);
    if (!request.tooTightFirst) return quoteAndOrder(request, account.key);
    const quoteId = await askQuote(request, account.key, request.offering.tooTightHours);
    if (quoteId) throw new Error(`A ${request.offering.key} quote met a deadline meant to be too tight.`);
    // The customer reads why, and asks again with a later deadline.
    later(random.int(2, 10) * MINUTE_MS, () => quoteAndOrder(request, account.key));
  }

  async function quoteAndOrder(request: Request, key: string): Promise<void> {
    let quoteId = await askQuote(request, key, request.deadlineHours);
    if (!quoteId) quoteId = await askQuote(request, key, request.deadlineHours * 1.5);
    if (!quoteId || request.abandon) {
      if (quoteId) abandoned += 1;
      resolve();
      return;
    }
    const validityMs = (request.offering.definition.quote_validity_minutes as number) * MINUTE_MS;
    later(Math.min(random.int(1, 10) * MINUTE_MS, validityMs - MINUTE_MS), async () => {
      const placed = await client.post<{ id: string }>('/v1/orders', {
        key,
        body: {
          quote_id: quoteId,
          payment_method: request.story === 'payment_declined' ? 'pm_card_declined' : 'pm_card_ok',
        },
        idempotent: true,
      });
      const order: LiveOrder = {
        id: placed.id,
        request,
        customerKey: key,
        rejectedOnce: false,
        closed: false,
      };
      orders.set(placed.id, order);
      stories[request.story] += 1;
      // The charge runs as a job; then the first legs go out.
      paymentsDue = true;
      changed.add(order);
    });
  }

  for (const request of requests) agenda.at(request.arrivalMs, () => arrive(request));
  for (;;) {
    const next = agenda.pop();
    if (!next) break;
    if (next.atMs > options.untilMs) {
      throw new Error(`The demo ran past the present (${new Date(options.untilMs).toISOString()}).`);
    }
    if (next.atMs > clock.now().getTime()) clock.set(new Date(next.atMs));
    await next.run();
    await settle();
  }

  const open = [...orders.values()].filter((order) => !order.closed);
  if (open.length > 0) {
    throw new Error(`The demo left ${open.length} orders open, such as ${open[0]?.id}.`);
  }
  const busiest = [...workByPartner.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  const loyal = [...orders.values()]
    .map((order) => order.request.customer)
    .find((customer) => customer.account);
  return {
    quotes: { requested, refused, issued, abandoned, requests: requests.length },
    stories,
    sampleCustomer: loyal?.account
      ? { id: loyal.account.id, name: loyal.name, key: loyal.account.key }
      : null,
    samplePartnerId: busiest?.[0] ?? null,
  };
}

/**
 * Who asks for what, when, and what happens to it: a list of requests in time order. Each
 * placed order has a story; a demo of eight orders or more has every story at least once.
 */
function planRequests(options: StoriesOptions): Request[] {
  const { random, ecosystem } = options;
  const abandonedCount = Math.round(options.orders * ABANDONED_SHARE);
  const total = options.orders + abandonedCount;
  const customers = planCustomers(Math.max(4, Math.round(total * CUSTOMERS_PER_REQUEST)), ecosystem, random);
  const forced = options.orders >= 8 ? random.shuffle(REQUIRED_STORIES) : [];
  const offeringByKey = new Map(OFFERINGS.map((offering) => [offering.key, offering]));
  const arrivalFrom = options.fromMs;
  const arrivalUntil = options.untilMs - 35 * DAY_MS;
  if (arrivalUntil <= arrivalFrom) throw new Error('The demo has no time for its orders.');
  const days = Math.max(1, Math.floor((arrivalUntil - arrivalFrom) / DAY_MS));

  const requests: Request[] = [];
  for (let index = 0; index < total; index++) {
    const abandon = index >= options.orders;
    const required = abandon ? undefined : forced[index];
    let story: Story = abandon ? 'smooth' : (required?.story ?? random.weighted(STORY_WEIGHTS));
    let offering = required?.offering
      ? (offeringByKey.get(required.offering) as OfferingSpec)
      : random.weighted(OFFERINGS.map((candidate) => [candidate, candidate.weight] as const));
    if (story === 'compensated' && offering.fragileStep === null) {
      offering = random.pick(OFFERINGS.filter((candidate) => candidate.fragileStep !== null));
    }
    const wanted = offering.business ? 'business' : 'consumer';
    const customer = random.pick(customers.filter((candidate) => candidate.kind === wanted));
    const steps = stepCapabilities(offering);
    let storyStep: string | null = null;
    if (story === 'compensated') {
      storyStep = offering.fragileStep;
    } else if (story === 'declined' || story === 'expired') {
      // A leg another partner can take over.
      const repairable = [...steps].filter(
        ([, capability]) => ecosystem.candidates(capability, customer.region) >= 2,
      );
      if (repairable.length === 0) story = 'smooth';
      else storyStep = random.pick(repairable)[0];
    } else if (story === 'late' || story === 'rejected') {
      storyStep = random.pick([...steps.keys()]);
    }
    const day = random.int(0, days - 1);
    const hour = random.between(offering.hours[0], offering.hours[1]);
    requests.push({
      offering,
      customer,
      quantity: random.int(offering.quantity[0], offering.quantity[1]),
      arrivalMs: Math.round(arrivalFrom + day * DAY_MS + hour * HOUR_MS),
      deadlineHours: random.int(offering.deadlineHours[0], offering.deadlineHours[1]),
      story,
      storyStep,
      tooTightFirst: index === 0 || random.chance(TOO_TIGHT_SHARE),
      abandon,
    });
  }
  return requests.sort((a, b) => a.arrivalMs - b.arrivalMs);
}

function planCustomers(count: number, ecosystem: Ecosystem, random: SeededRandom): Customer[] {
  const businesses = Math.max(1, Math.round(count * 0.25));
  const customers: Customer[] = [];
  for (let n = 0; n < count; n++) {
    const kind = n < businesses ? 'business' : 'consumer';
    const first = random.pick(FIRST_NAMES);
    const last = random.pick(LAST_NAMES);
    const name = kind === 'business' ? `${last} ${random.pick(COMPANY_WORDS)}` : `${first} ${last}`;
    customers.push({
      name,
      email: `customer-${n + 1}@${kind}.demo.test`,
      kind,
      region: ecosystem.regions[n % ecosystem.regions.length] as string,
      account: null,
    });
  }
  if (!customers.some((customer) => customer.kind === 'consumer')) {
    throw new Error('The demo needs consumers and businesses among its customers.');
  }
  return customers;
}
