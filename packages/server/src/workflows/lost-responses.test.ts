import { createHash } from 'node:crypto';
import { createServer, request as forward, type Server } from 'node:http';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import type { SimulatedProvider } from '../modules/payments/index.js';
import {
  createFulfilmentFixture,
  type OrderBody,
  type Partner,
  type QuoteBody,
  REGION,
  type WorkOrderBody,
} from '../testing/fulfilment-fixture.js';
import { TEST_DATABASE_KIND } from '../testing/test-database.js';

/*
 * Lost responses (F3): customers and partners carry orders through their whole lifecycle over
 * real HTTP (quotes, orders, a partner's decline and the re-plan, accepts, starts, deliveries,
 * confirmations, a rejected leg and its refund, then a payout run), through a proxy that, for
 * about half of the writes, throws the server's response away once it has arrived in full,
 * after the server's transaction committed, and closes the client's connection, as a network
 * failing on the way back does. The clients do what the API asks: every write carries an
 * Idempotency-Key, and a write that got no answer is sent again with the same key.
 *
 * Afterwards: every answer a key got, lost or delivered, is the first one byte for byte, and
 * only the first was not a replay; every key had one effect (one quote and order each, one
 * charge per order, one refund per rejected leg, no event twice, at most one payout per
 * partner); the books verify and no finished order leaves money in escrow.
 */

const ORDERS = Number(process.env.LOST_RESPONSE_ORDERS ?? 16);
const CLIENTS = 4;
const SEED = process.env.LOST_RESPONSE_SEED ?? '1';
/** A key's answer is lost at most this many times in a row, so that every write ends. */
const LOSSES_PER_KEY_MAX = 3;

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly replayed: boolean;
  readonly lost: boolean;
}

/** Whether the answer to a key's nth attempt is lost: the same in every run with the same seed. */
function loses(key: string, attempt: number): boolean {
  if (attempt >= LOSSES_PER_KEY_MAX) return false;
  return (createHash('sha256').update(`${SEED}:${key}:${attempt}`).digest()[0] as number) < 128;
}

/**
 * An HTTP proxy to `upstream` that reads each answer in full and then, for writes `loses`
 * picks, drops it and closes the client's connection. Every answer to a keyed request is
 * recorded under its key, in order.
 */
async function lossyProxy(upstream: string) {
  const answers = new Map<string, Answer[]>();
  const server: Server = createServer((request, response) => {
    const body: Buffer[] = [];
    request.on('data', (chunk: Buffer) => body.push(chunk));
    request.on('end', () => {
      const outgoing = forward(
        new URL(request.url ?? '/', upstream),
        { method: request.method, headers: request.headers },
        (incoming) => {
          const parts: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => parts.push(chunk));
          incoming.on('end', () => {
            const text = Buffer.concat(parts).toString();
            const key = request.headers['idempotency-key'];
            const replayed = incoming.headers['idempotency-replayed'] === 'true';
            let lost = false;
            if (typeof key === 'string') {
              const earlier = answers.get(key) ?? [];
              lost = request.method === 'POST' && loses(key, earlier.length);
              answers.set(key, [...earlier, { status: incoming.statusCode ?? 0, text, replayed, lost }]);
            }
            if (lost) {
              request.socket.destroy();
              return;
            }
            response.writeHead(incoming.statusCode ?? 502, {
              'content-type': incoming.headers['content-type'] ?? 'application/json',
              ...(replayed ? { 'idempotency-replayed': 'true' } : {}),
            });
            response.end(text);
          });
        },
      );
      outgoing.on('error', (error) => response.destroy(error));
      outgoing.end(Buffer.concat(body));
    });
  });
  // Idle connections stay open longer than the clients keep them, so that every connection
  // closed under a client is one the proxy closed on purpose.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    answers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe(`lost responses (F3, ${TEST_DATABASE_KIND})`, async () => {
  const f = await createFulfilmentFixture({ poolSize: CLIENTS + 4 });
  const { app, ok } = f;
  const provider = app.baton.services.payments.provider as SimulatedProvider;

  for (const key of ['make', 'pack', 'ship']) await f.capability(key);
  const partners = new Map<string, Partner>();
  for (const step of ['make', 'pack', 'ship']) {
    // Two partners per step, the first cheaper: a decline moves the leg to the second.
    for (const price of ['10.00', '11.00']) {
      const partner = await f.partnerOffering(step, { price, leadTimeHours: 2 });
      partners.set(partner.id, partner);
      ok(
        await app.request('PUT', `/v1/partners/${partner.id}/payout-settings`, {
          body: {
            schedule: 'manual',
            minimum: { amount: '1.00', currency: 'EUR' },
            destination: 'ba_ok',
            reserve_bps: 0,
            reserve_days: 0,
          },
        }),
      );
    }
  }
  await f.publishOffering('kit', {
    name: 'Kit',
    pricing: { kind: 'cost_plus', margin_bps: 1500 },
    rejection_policy: 'refund',
    steps: [
      { key: 'make', name: 'Make', capability: 'make' },
      { key: 'pack', name: 'Pack', capability: 'pack' },
      { key: 'ship', name: 'Ship', capability: 'ship', after: ['make', 'pack'] },
    ],
  });
  const customers = [await f.customer(), await f.customer(), await f.customer()];

  const upstream = await app.baton.http.listen({ host: '127.0.0.1', port: 0 });
  const proxy = await lossyProxy(upstream);
  afterAll(() => proxy.close());

  let resent = 0;
  /** A write through the proxy, sent again with the same key until it is answered. */
  async function write<T>(key: string, path: string, body: unknown, idempotencyKey: string): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await fetch(`${proxy.url}${path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${key}`,
            'content-type': 'application/json',
            'idempotency-key': idempotencyKey,
          },
          body: JSON.stringify(body),
        });
      } catch (error) {
        // No answer: the connection closed under the request.
        if (attempt > LOSSES_PER_KEY_MAX) throw error;
        resent++;
        continue;
      }
      const text = await response.text();
      expect(response.status, `${path}: ${text}`).toBeLessThan(300);
      return JSON.parse(text) as T;
    }
  }

  // Charges and provider refunds are the server's jobs; they run one at a time, as one worker would.
  let jobs: Promise<void> = Promise.resolve();
  const runJobs = () => {
    jobs = jobs.then(() => f.runJobs());
    return jobs;
  };

  async function workOrderOf(orderId: string, step: string): Promise<WorkOrderBody> {
    const order = await f.readOrder(app.adminKey, orderId);
    const leg = order.legs.find((candidate) => candidate.step === step);
    expect(leg?.work_order_id, `${orderId} ${step} has a work order`).toBeTruthy();
    return ok<WorkOrderBody>(await app.request('GET', `/v1/work-orders/${leg?.work_order_id}`));
  }

  /** The leg's partner (after a decline, the next one) does the work; the customer judges it. */
  async function carryOut(
    customerKey: string,
    orderId: string,
    step: string,
    plan: { decline?: boolean; reject?: boolean },
  ): Promise<void> {
    let workOrder = await workOrderOf(orderId, step);
    const act = (action: string, body: unknown = {}) =>
      write<WorkOrderBody>(
        (partners.get(workOrder.partner_id) as Partner).key,
        `/v1/work-orders/${workOrder.id}/${action}`,
        body,
        `${workOrder.id}:${action}`,
      );
    if (plan.decline) {
      await act('decline', { reason: 'No material this week' });
      await f.sync();
      const next = await workOrderOf(orderId, step);
      expect(next.id).not.toBe(workOrder.id);
      expect(next.partner_id).not.toBe(workOrder.partner_id);
      workOrder = next;
    }
    for (const action of ['accept', 'start', 'deliver']) await act(action);
    const judgement = plan.reject ? 'reject' : 'confirm';
    await write<OrderBody>(
      customerKey,
      `/v1/orders/${orderId}/legs/${step}/${judgement}`,
      plan.reject ? { reason: 'Arrived damaged' } : {},
      `${orderId}:${step}:${judgement}`,
    );
  }

  it(`gives every retry the first answer and has every key act once, through ${ORDERS} orders`, {
    timeout: 600_000 * Math.max(1, ORDERS / 500),
  }, async () => {
    const { rows: before } = await sql<{ seq: string }>`
      select coalesce(max(seq), 0)::text as seq from events`.execute(f.db);
    const placed: { id: string; rejected: boolean }[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let n = next++; n < ORDERS; n = next++) {
          const customer = customers[n % customers.length] as { key: string };
          await f.sync();
          const quote = await write<QuoteBody>(
            customer.key,
            '/v1/quotes',
            { offering: 'kit', quantity: 2, region: REGION, deadline: f.inHours(24 * 7) },
            `quote-${n}`,
          );
          const order = await write<OrderBody>(
            customer.key,
            '/v1/orders',
            { quote_id: quote.id, payment_method: 'pm_card_ok' },
            `order-${n}`,
          );
          await runJobs();
          expect((await f.readOrder(customer.key, order.id)).status).toBe('in_progress');
          const rejected = n % 4 === 2;
          await carryOut(customer.key, order.id, 'make', { decline: n % 4 === 1 });
          await carryOut(customer.key, order.id, 'pack', {});
          await f.sync();
          await carryOut(customer.key, order.id, 'ship', { reject: rejected });
          placed.push({ id: order.id, rejected });
        }
      }),
    );
    await runJobs();
    const run = await write<{ payouts: { partner_id: string }[] }>(
      app.adminKey,
      '/v1/payouts/runs',
      { partner_ids: [...partners.keys()] },
      'payout-run',
    );
    expect(run.payouts.length).toBeGreaterThan(0);

    // Answers were lost, and the clients sent those writes again.
    const answers = [...proxy.answers.values()];
    const lost = answers.flat().filter((answer) => answer.lost).length;
    expect(lost).toBeGreaterThan(ORDERS);
    expect(resent).toBe(lost);

    // Every answer to a key is the first, byte for byte; only the first was not a replay.
    for (const [key, seen] of proxy.answers) {
      const [first, ...later] = seen as [Answer, ...Answer[]];
      expect(first.replayed, key).toBe(false);
      for (const answer of later) {
        expect({ key, status: answer.status, text: answer.text, replayed: answer.replayed }).toEqual({
          key,
          status: first.status,
          text: first.text,
          replayed: true,
        });
      }
    }

    // One quote and one order per client's quote, one charge per order.
    const count = async (table: 'quotes' | 'orders') =>
      Number(
        (await sql<{ n: string }>`select count(*)::text as n from ${sql.table(table)}`.execute(f.db)).rows[0]
          ?.n,
      );
    expect(await count('quotes')).toBe(ORDERS);
    expect(await count('orders')).toBe(ORDERS);
    const operations = provider.operations();
    for (const { id, rejected } of placed) {
      const mine = (kind: string) =>
        operations.filter(
          (operation) => operation.kind === kind && operation.reference.startsWith(`order:${id}`),
        );
      expect(mine('capture'), id).toHaveLength(1);
      const order = await f.readOrder(app.adminKey, id);
      expect(order.status).toBe('completed');
      const ship = order.legs.find((leg) => leg.step === 'ship');
      expect(ship?.status).toBe(rejected ? 'refunded' : 'done');
      // A rejected leg is refunded once: the customer gets back what that leg cost.
      const legTotal = BigInt(ship?.price?.amount_minor ?? 0) + BigInt(ship?.margin?.amount_minor ?? 0);
      expect(BigInt(order.refunded.amount_minor)).toBe(rejected ? legTotal : 0n);
    }

    // No change was announced twice.
    const { rows: repeated } = await sql<{ type: string; subject_id: string; n: string }>`
      select type, subject_id, count(*)::text as n from events
       where seq > ${before[0]?.seq}::bigint
       group by type, subject_id, data having count(*) > 1`.execute(f.db);
    expect(repeated).toEqual([]);
    const { rows: announced } = await sql<{ n: string }>`
      select count(*)::text as n from events where seq > ${before[0]?.seq}::bigint`.execute(f.db);
    expect(Number(announced[0]?.n)).toBeGreaterThan(ORDERS * 10);

    // The payout run paid each partner with earnings once, and all it owed them.
    const { rows: payouts } = await sql<{ partner_id: string }>`
      select partner_id from payouts order by partner_id`.execute(f.db);
    expect(payouts.map((payout) => payout.partner_id)).toEqual(
      run.payouts.map((payout) => payout.partner_id).sort(),
    );
    for (const payout of run.payouts) expect(await f.balance('partner_payable', payout.partner_id)).toBe(0n);
    await f.expectBooksClean(placed.map((order) => order.id));
  });
});
