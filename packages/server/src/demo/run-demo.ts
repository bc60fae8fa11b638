import type { Config } from '../config.js';
import { systemActor } from '../kernel/actor.js';
import { type Clock, type ManualClock, systemClock } from '../kernel/clock.js';
import type { Context } from '../kernel/context.js';
import type { Baton } from '../main.js';
import { verifyLedger } from '../modules/ledger/index.js';
import { createOperatorKey } from '../operator-keys.js';
import { createDemoClient } from './demo-client.js';
import { type DemoSummary, summarise } from './demo-summary.js';
import { DEMO_CURRENCY, PARTNER_TYPES } from './ecosystem.js';
import { playOrders } from './order-stories.js';
import { seedEcosystem } from './seed-ecosystem.js';
import { SeededRandom } from './seeded-random.js';

/*
 * `baton demo`: a realistic ecosystem, seeded and run through Baton's own API in process, so a
 * new user has partners, offers, offerings, orders in every state, events and books to explore.
 * The demo runs on a manual clock that starts about two months before the present and follows
 * the orders, so that its whole history lies in the past when a server then runs on the system
 * clock; it never moves past the present.
 */

/** Orders placed in a demo unless asked otherwise: a couple of minutes on the embedded database. */
export const DEMO_ORDERS = 300;
export const DEMO_PARTNERS = 300;
export const DEMO_SEED = 1;
/** The fewest partners a demo runs with: one of each type. */
export const DEMO_PARTNERS_MIN = PARTNER_TYPES.length;
export const DEMO_PARTNERS_MAX = 5_000;
export const DEMO_ORDERS_MAX = 5_000;

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const WEEK_MS = 7 * DAY_MS;
/** How far back the demo's history begins (rounded back to a Monday). */
const HISTORY_DAYS = 60;

export type DemoPhase = 'ecosystem' | 'orders' | 'books';

export interface DemoProgress {
  readonly phase: DemoPhase;
  readonly done: number;
  readonly total: number;
}

export interface DemoOptions {
  /** The clock the Baton was created with; the demo sets it and moves it forward. */
  readonly clock: ManualClock;
  readonly orders?: number;
  readonly partners?: number;
  readonly seed?: number;
  /** The present, which the demo's history ends before; the system clock's now by default. */
  readonly present?: Clock;
  readonly onProgress?: (progress: DemoProgress) => void;
}

/** A participant's key, to explore the API as that participant. */
export interface DemoKey {
  readonly id: string;
  readonly name: string;
  readonly key: string;
}

export interface DemoResult {
  readonly summary: DemoSummary;
  /** An operator administrator's key (the demo's own operator), a busy partner's and a customer's. */
  readonly keys: {
    readonly operator: string;
    readonly partner: DemoKey | null;
    readonly customer: DemoKey | null;
  };
}

/** The demo refuses to run because the database is not empty; nothing was written. */
export class DemoRefusedError extends Error {
  constructor(reason: string) {
    super(
      `The demo runs only on an empty database, and this one already has ${reason}: run it on a new one.`,
    );
    this.name = 'DemoRefusedError';
  }
}

/** The demo went wrong: a bug, reported with what was found. */
export class DemoFailedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DemoFailedError';
  }
}

/**
 * The configuration a Baton that runs the demo needs: the demo makes thousands of calls a
 * minute with one operator key from one address, far above the limits meant for the public
 * API, and logs no more than warnings.
 */
export function demoConfig(config: Config): Config {
  const quiet = ['fatal', 'error', 'silent'].includes(config.logLevel) ? config.logLevel : 'warn';
  return { ...config, rateLimitPerMinute: 10_000_000, publicRateLimitPerHour: 10_000_000, logLevel: quiet };
}

/** What the database already holds that the demo would collide with, or null when it is empty. */
export async function existingData(baton: Baton): Promise<string | null> {
  const db = baton.database.db;
  const ctx: Context = { db, actor: systemActor('demo'), now: systemClock.now(), requestId: null, ip: null };
  const { participants, standards, offerings } = baton.services;
  if ((await participants.listPartners(ctx, { limit: 1 })).items.length > 0) return 'partners';
  if ((await participants.listCustomers(ctx, { limit: 1 })).items.length > 0) return 'customers';
  if ((await standards.listCapabilities(db)).length > 0) return 'capabilities';
  if ((await offerings.listOfferings(ctx, { limit: 1 })).items.length > 0) return 'offerings';
  return null;
}

/** The Monday (00:00 UTC) on or before `ms`: the same weekly rhythm whatever day the demo runs. */
function mondayBefore(ms: number): number {
  const monday = Date.UTC(1970, 0, 5);
  return ms - ((((ms - monday) % WEEK_MS) + WEEK_MS) % WEEK_MS);
}

/**
 * Seeds the demo ecosystem into an empty Baton through its HTTP API and plays a few hundred
 * orders through their whole lifecycle, then checks the books and summarises what happened.
 * Baton must have been created with `workJobs: false` (the demo works the jobs itself), on
 * `options.clock`, with `demoConfig`.
 *
 * @throws DemoRefusedError when the database already has partners, customers, capabilities or
 *   offerings; DemoFailedError when the books do not balance or an order was left open.
 */
export async function runDemo(baton: Baton, options: DemoOptions): Promise<DemoResult> {
  const orders = options.orders ?? DEMO_ORDERS;
  const partners = options.partners ?? DEMO_PARTNERS;
  const seed = options.seed ?? DEMO_SEED;
  if (!Number.isInteger(orders) || orders < 1 || orders > DEMO_ORDERS_MAX) {
    throw new RangeError(`The demo places 1 to ${DEMO_ORDERS_MAX} orders, not ${orders}.`);
  }
  if (!Number.isInteger(partners) || partners < DEMO_PARTNERS_MIN || partners > DEMO_PARTNERS_MAX) {
    throw new RangeError(
      `The demo has ${DEMO_PARTNERS_MIN} to ${DEMO_PARTNERS_MAX} partners, not ${partners}.`,
    );
  }
  const existing = await existingData(baton);
  if (existing) throw new DemoRefusedError(existing);

  const { clock } = options;
  const untilMs = (options.present ?? systemClock).now().getTime();
  const startMs = mondayBefore(untilMs - HISTORY_DAYS * DAY_MS) + 8 * HOUR_MS;
  clock.set(new Date(startMs));
  const random = new SeededRandom(seed);
  const report = (phase: DemoPhase, done: number, total: number) =>
    options.onProgress?.({ phase, done, total });

  const { secret: adminKey } = await createOperatorKey(
    baton.database,
    { role: 'admin', name: 'Demo operator', email: 'operator@demo.test' },
    clock,
  );
  const { secret: financeKey } = await createOperatorKey(
    baton.database,
    { role: 'finance', name: 'Demo finance', email: 'finance@demo.test' },
    clock,
  );
  const client = createDemoClient(baton.http, `demo-${seed}`);
  report('ecosystem', 0, partners);
  const ecosystem = await seedEcosystem({
    client,
    adminKey,
    clock,
    random,
    partners,
    onPartner: (done, total) => report('ecosystem', done, total),
  });

  // Customers start to order the day after the last partner joined.
  const fromMs = Math.ceil((clock.now().getTime() + HOUR_MS) / DAY_MS) * DAY_MS;
  report('orders', 0, orders);
  const played = await playOrders({
    baton,
    client,
    adminKey,
    financeKey,
    clock,
    random,
    ecosystem,
    orders,
    fromMs,
    untilMs,
    onRequestDone: (done, total) => report('orders', done, total),
  });

  report('books', 0, 1);
  const verified = await baton.database.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute((tx) => verifyLedger(tx));
  if (verified.problems.length > 0) {
    const listed = verified.problems
      .slice(0, 5)
      .map((problem) => `${problem.kind}: ${problem.message}`)
      .join('; ');
    throw new DemoFailedError(
      `The demo's books do not balance (${verified.problems.length} problems): ${listed}`,
    );
  }
  const summary = await summarise(baton, {
    currency: DEMO_CURRENCY,
    from: new Date(startMs),
    to: clock.now(),
    quotes: played.quotes,
    stories: played.stories,
  });
  if (summary.orders.open > 0 || summary.money.escrowMinor !== 0n) {
    throw new DemoFailedError(
      `The demo ended with ${summary.orders.open} orders open and ${summary.money.escrowMinor} minor units in escrow.`,
    );
  }
  report('books', 1, 1);

  const busy = played.samplePartnerId ? ecosystem.partnersById.get(played.samplePartnerId) : undefined;
  return {
    summary,
    keys: {
      operator: adminKey,
      partner: busy ? { id: busy.id, name: busy.name, key: busy.key } : null,
      customer: played.sampleCustomer,
    },
  };
}
