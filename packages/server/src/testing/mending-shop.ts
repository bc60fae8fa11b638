import { expect } from 'vitest';
import type {
  createFulfilmentFixture,
  Money,
  OrderBody,
  Partner,
  WorkOrderBody,
} from './fulfilment-fixture.js';

type Fixture = Awaited<ReturnType<typeof createFulfilmentFixture>>;

/** What a refund by hand answers. */
export interface RefundBody {
  amount: Money;
  refunded: Money;
  subsidy_returned: Money;
  order: OrderBody & { subsidy_returned: Money };
}

export const eur = (amount: string) => ({ amount, currency: 'EUR' });

/**
 * A mending shop for tests of refunds by hand: darning (40.00) then steaming (20.00), cost plus
 * 10 %, so an order is 66.00. The fee schedule takes 10 % commission, so the steaming leg's 22.00
 * is 18.00 for its partner, 2.00 of commission and 2.00 of margin.
 */
export async function openMendingShop(f: Fixture) {
  const { app, ok } = f;
  await f.capability('darning');
  await f.capability('steaming');
  const darner = await f.partnerOffering('darning', { price: '40.00', leadTimeHours: 2, capacity: 50 });
  const steamer = await f.partnerOffering('steaming', { price: '20.00', leadTimeHours: 2, capacity: 50 });
  const partners = new Map<string, Partner>([
    [darner.id, darner],
    [steamer.id, steamer],
  ]);
  await f.publishOffering('mending', {
    name: 'Mending',
    pricing: { kind: 'cost_plus', margin_bps: 1000 },
    rejection_policy: 'refund',
    steps: [
      { key: 'darning', name: 'Darning', capability: 'darning' },
      { key: 'steaming', name: 'Steaming', capability: 'steaming', after: ['darning'] },
    ],
  });

  let keys = 0;
  /** `POST /v1/orders/{orderId}/refunds` as `key`, with a fresh idempotency key unless given one (or null: none). */
  const refundBy = (
    key: string,
    orderId: string,
    body: Record<string, unknown>,
    idempotencyKey: string | null = `refund-${++keys}`,
  ) =>
    app.request<RefundBody>('POST', `/v1/orders/${orderId}/refunds`, {
      key,
      body,
      headers: idempotencyKey === null ? {} : { 'idempotency-key': idempotencyKey },
    });

  async function placed(buyer: { key: string }): Promise<OrderBody> {
    const quoted = ok<{ id: string }>(
      await f.quote(buyer.key, { offering: 'mending', quantity: 1, deadline: f.inHours(48) }),
      201,
    );
    const order = ok<OrderBody>(await f.order(buyer.key, quoted.id), 201);
    await f.runJobs();
    return order;
  }

  /** Works the order's legs in order, each delivered and confirmed, up to (not including) `until`. */
  async function workThrough(buyer: { key: string }, orderId: string, until?: string) {
    for (;;) {
      const order = await f.readOrder(app.adminKey, orderId);
      const leg = order.legs.find((candidate) => candidate.status === 'dispatched');
      if (!leg || leg.step === until) return order;
      const workOrder = ok<WorkOrderBody>(await app.request('GET', `/v1/work-orders/${leg.work_order_id}`));
      const partner = partners.get(workOrder.partner_id) as Partner;
      for (const action of ['accept', 'start', 'deliver']) ok(await f.act(partner, workOrder.id, action));
      ok(await f.judge(buyer.key, orderId, leg.step, 'confirm'));
    }
  }

  /** A new customer's order, every leg delivered and confirmed: completed. */
  async function completedOrder() {
    const buyer = await f.customer();
    const order = await placed(buyer);
    expect((await workThrough(buyer, order.id)).status).toBe('completed');
    return { buyer, order };
  }

  /** The balances a refund by hand changes. */
  async function books() {
    return {
      darner: await f.balance('partner_payable', darner.id),
      steamer: await f.balance('partner_payable', steamer.id),
      commission: await f.balance('platform_commission', 'platform'),
      margin: await f.balance('platform_margin', 'platform'),
    };
  }

  const refundedAtProvider = async (paymentId: string) =>
    ok<{ refunded: Money }>(await app.request('GET', `/v1/payments/${paymentId}`)).refunded.amount;

  return { darner, steamer, refundBy, placed, workThrough, completedOrder, books, refundedAtProvider };
}
