import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../kernel/clock.js';
import { type ProviderEvent, ProviderRejectedError, ProviderTimeoutError } from './port.js';
import { SimulatedProvider, TEST_CARDS, TEST_DESTINATIONS } from './simulated.js';

function provider(options: ConstructorParameters<typeof SimulatedProvider>[0] = {}) {
  const sim = new SimulatedProvider({ clock: new ManualClock(), ...options });
  const received: ProviderEvent[] = [];
  sim.onEvent(async (event) => {
    received.push(event);
  });
  return { sim, received };
}

const authorize = (
  sim: SimulatedProvider,
  reference = 'pay_1',
  amountMinor = 1000n,
  paymentMethod: string = TEST_CARDS.ok,
) => sim.authorize({ reference, paymentMethod, amountMinor, currency: 'EUR' });

describe('simulated provider', () => {
  it('treats a repeated reference as the same operation and refuses it for another request', async () => {
    const { sim } = provider();
    const first = await authorize(sim);
    const again = await authorize(sim);
    expect(again).toEqual(first);
    expect(sim.operations()).toHaveLength(1);
    await expect(authorize(sim, 'pay_1', 999n)).rejects.toMatchObject({
      name: 'ProviderRejectedError',
      code: 'reference_reused',
    });
  });

  it('declines test cards and injected failures', async () => {
    const { sim } = provider();
    expect(await authorize(sim, 'a', 100n, TEST_CARDS.declined)).toMatchObject({
      status: 'failed',
      failureCode: 'card_declined',
    });
    expect(await authorize(sim, 'b', 100n, TEST_CARDS.insufficientFunds)).toMatchObject({
      failureCode: 'insufficient_funds',
    });
    sim.failNext('authorization', 'do_not_honor');
    expect(await authorize(sim, 'c')).toMatchObject({ status: 'failed', failureCode: 'do_not_honor' });
    expect(await authorize(sim, 'd')).toMatchObject({ status: 'succeeded' });
  });

  it('applies a call that times out after applying, and answers the retry with the same operation', async () => {
    const { sim } = provider();
    await authorize(sim);
    sim.timeoutNext('capture', { afterApplying: true });
    await expect(
      sim.capture({ reference: 'cap_1', authorizationReference: 'pay_1', amountMinor: 1000n }),
    ).rejects.toBeInstanceOf(ProviderTimeoutError);
    expect(await sim.find('cap_1')).toMatchObject({ status: 'succeeded', amountMinor: 1000n });
    const retried = await sim.capture({
      reference: 'cap_1',
      authorizationReference: 'pay_1',
      amountMinor: 1000n,
    });
    expect(retried.status).toBe('succeeded');
    expect(sim.operations().filter((o) => o.kind === 'capture')).toHaveLength(1);
  });

  it('applies nothing when a call times out before arriving', async () => {
    const { sim } = provider();
    sim.timeoutNext('authorization', { afterApplying: false });
    await expect(authorize(sim)).rejects.toBeInstanceOf(ProviderTimeoutError);
    expect(await sim.find('pay_1')).toBeNull();
  });

  it('never captures more than authorized nor refunds more than captured', async () => {
    const { sim } = provider();
    await authorize(sim);
    await expect(
      sim.capture({ reference: 'x', authorizationReference: 'nope', amountMinor: 1n }),
    ).rejects.toMatchObject({
      code: 'authorization_not_found',
    });
    await expect(
      sim.capture({ reference: 'c1', authorizationReference: 'pay_1', amountMinor: 1001n }),
    ).rejects.toMatchObject({
      code: 'amount_exceeds_authorization',
    });
    await sim.capture({ reference: 'c1', authorizationReference: 'pay_1', amountMinor: 1000n });
    await sim.refund({ reference: 'r1', captureReference: 'c1', amountMinor: 600n });
    await expect(
      sim.refund({ reference: 'r2', captureReference: 'c1', amountMinor: 401n }),
    ).rejects.toBeInstanceOf(ProviderRejectedError);
    expect(await sim.refund({ reference: 'r2', captureReference: 'c1', amountMinor: 400n })).toMatchObject({
      status: 'succeeded',
    });
  });

  it('keeps pending operations until settled, and fails a payout to a closed account after accepting it', async () => {
    const { sim, received } = provider({ settlement: { capture: 'pending' } });
    await authorize(sim);
    expect(
      await sim.capture({ reference: 'c1', authorizationReference: 'pay_1', amountMinor: 1000n }),
    ).toMatchObject({
      status: 'pending',
    });
    const payout = await sim.payout({
      reference: 'po_1',
      destination: TEST_DESTINATIONS.accountClosed,
      amountMinor: 500n,
      currency: 'EUR',
    });
    expect(payout.status).toBe('pending');
    const settled = sim.settle();
    expect(settled.map((o) => [o.reference, o.status, o.failureCode])).toEqual([
      ['c1', 'succeeded', null],
      ['po_1', 'failed', 'account_closed'],
    ]);
    await sim.flush();
    expect(received.map((e) => `${e.operation.reference}:${e.operation.status}`)).toEqual([
      'pay_1:succeeded',
      'c1:pending',
      'po_1:pending',
      'c1:succeeded',
      'po_1:failed',
    ]);
  });

  it('sends a paid payout back from the partner’s bank, and only a paid one', async () => {
    const { sim, received } = provider();
    await sim.payout({
      reference: 'po_1',
      destination: TEST_DESTINATIONS.ok,
      amountMinor: 500n,
      currency: 'EUR',
    });
    expect(() => sim.returnPayout('po_1')).toThrow('No paid payout po_1');
    sim.settle('po_1');
    expect(sim.returnPayout('po_1', 'no_account')).toMatchObject({
      reference: 'po_1',
      status: 'failed',
      failureCode: 'no_account',
    });
    expect(() => sim.returnPayout('po_1')).toThrow('No paid payout po_1');
    await authorize(sim);
    expect(() => sim.returnPayout('pay_1')).toThrow('No paid payout pay_1');
    await sim.flush();
    expect(received.map((e) => `${e.operation.reference}:${e.operation.status}`)).toEqual([
      'po_1:pending',
      'po_1:succeeded',
      'po_1:failed',
      'pay_1:succeeded',
    ]);
    expect((await sim.find('po_1'))?.status).toBe('failed');
  });

  it('holds callbacks for tests, and delivers them reversed, twice, or stale', async () => {
    const { sim, received } = provider({ autoDeliver: false, settlement: { capture: 'pending' } });
    await authorize(sim);
    await sim.capture({ reference: 'c1', authorizationReference: 'pay_1', amountMinor: 1000n });
    sim.settle('c1');
    expect(received).toHaveLength(0);
    await sim.deliverPending({ order: 'reversed', duplicate: true });
    expect(received.map((e) => `${e.operation.reference}:${e.operation.status}`)).toEqual([
      'c1:succeeded',
      'c1:succeeded',
      'c1:pending',
      'c1:pending',
      'pay_1:succeeded',
      'pay_1:succeeded',
    ]);
    expect(received[0]?.eventId).toBe(received[1]?.eventId);
    await sim.deliverStale('c1');
    expect(received.at(-1)?.operation.status).toBe('pending');
    await sim.redeliver(received[0]?.eventId as string);
    expect(received.at(-1)?.eventId).toBe(received[0]?.eventId);
  });

  it('reports a chargeback as an operation on the capture', async () => {
    const { sim, received } = provider();
    await authorize(sim);
    await sim.capture({ reference: 'c1', authorizationReference: 'pay_1', amountMinor: 1000n });
    const chargeback = sim.chargeback('c1', 400n, 'cb_1');
    expect(chargeback).toMatchObject({
      kind: 'chargeback',
      status: 'succeeded',
      parentReference: 'c1',
      amountMinor: 400n,
    });
    await sim.flush();
    expect(received.at(-1)?.operation.reference).toBe('cb_1');
  });

  it('retries a delivery whose handler failed', async () => {
    const sim = new SimulatedProvider({ autoDeliver: false });
    let failures = 1;
    const received: string[] = [];
    sim.onEvent(async (event) => {
      if (failures-- > 0) throw new Error('down');
      received.push(event.eventId);
    });
    await authorize(sim);
    await sim.deliverPending();
    expect(sim.deliveryErrors).toHaveLength(1);
    expect(sim.undelivered()).toHaveLength(1);
    await sim.deliverPending();
    expect(received).toHaveLength(1);
  });

  it('lists operations updated since a time, oldest first, with a cursor', async () => {
    const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    const { sim } = provider({ clock });
    await authorize(sim, 'a');
    clock.advance(1000);
    await authorize(sim, 'b');
    await authorize(sim, 'c');
    const since = new Date('2026-01-01T00:00:01Z');
    expect((await sim.list({ since, limit: 10 })).map((o) => o.reference)).toEqual(['b', 'c']);
    expect((await sim.list({ since, after: 'b', limit: 10 })).map((o) => o.reference)).toEqual(['c']);
  });

  it('gives the same provider ids for the same seed', async () => {
    const ids = async (seed: number) => {
      const { sim } = provider({ seed });
      await authorize(sim, 'a');
      await authorize(sim, 'b');
      return sim.operations().map((o) => o.providerId);
    };
    expect(await ids(7)).toEqual(await ids(7));
    expect(await ids(7)).not.toEqual(await ids(8));
  });
});
