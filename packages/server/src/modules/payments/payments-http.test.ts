import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { signProviderEvent, verifyProviderEvent } from './http/provider-events.js';
import type { SimulatedProvider } from './index.js';

describe(`payments over HTTP (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;
  const payments = app.baton.services.payments;
  const body = {
    order_ref: 'http-order-1',
    payment_method: 'pm_card_ok',
    amount: { amount: '12.50', currency: 'EUR' },
  };

  it('needs an Idempotency-Key and refuses bad amounts without recording anything', async () => {
    const missing = await app.request('POST', '/v1/payments', { body });
    expect(missing).toMatchObject({ status: 400, body: { code: 'idempotency.key_required' } });
    const bad = await app.request('POST', '/v1/payments', {
      body: { ...body, amount: { amount: '12.505', currency: 'EUR' } },
      headers: { 'idempotency-key': 'http-bad-amount' },
    });
    expect(bad.status).toBe(422);
    const list = await app.request<{ data: unknown[] }>('GET', '/v1/payments?order_ref=http-order-1');
    expect(list.body.data).toHaveLength(0);
  });

  it('records a payment at once and charges it outside the request', async () => {
    const created = await app.request<{ id: string; status: string }>('POST', '/v1/payments', {
      body,
      headers: { 'idempotency-key': 'http-payment-1' },
    });
    expect(created).toMatchObject({ status: 202, body: { status: 'pending' } });
    await payments.resume(db, systemActor('test'), created.body.id);
    const read = await app.request<{ status: string; amount: { amount: string }; operations: unknown[] }>(
      'GET',
      `/v1/payments/${created.body.id}`,
    );
    expect(read.body).toMatchObject({ status: 'captured', amount: { amount: '12.50' } });
    expect(read.body.operations).toHaveLength(2);
    const finance = await app.operatorKey('support');
    const decision = await app.request('POST', '/v1/chargebacks/cbk_01h2xcejqtf2nbrexx3vqjhp41/decision', {
      key: finance,
      body: { liability: 'platform' },
      headers: { 'idempotency-key': 'x' },
    });
    expect(decision).toMatchObject({ status: 403, body: { code: 'auth.role_not_allowed' } });
  });

  it('refuses a chargeback decision that names no partner, and moves nothing', async () => {
    const created = await app.request<{ id: string; reference: string }>('POST', '/v1/payments', {
      body: { ...body, order_ref: 'http-order-2' },
      headers: { 'idempotency-key': 'http-payment-2' },
    });
    await payments.resume(db, systemActor('test'), created.body.id);
    const provider = payments.provider as SimulatedProvider;
    provider.chargeback(`${created.body.reference}:capture`, 250n, 'http-chargeback');
    await provider.flush();
    const open = await app.request<{ data: { id: string; order_ref: string }[] }>(
      'GET',
      '/v1/chargebacks?status=open',
    );
    const chargeback = open.body.data.find((c) => c.order_ref === 'http-order-2');
    expect(chargeback).toBeDefined();
    const refused = await app.request('POST', `/v1/chargebacks/${chargeback?.id}/decision`, {
      body: { liability: 'split', partner_share: { amount: '1.00', currency: 'EUR' } },
      headers: { 'idempotency-key': 'http-decision-1' },
    });
    expect(refused).toMatchObject({ status: 422, body: { code: 'payments.decision_invalid' } });
    const decided = await app.request('POST', `/v1/chargebacks/${chargeback?.id}/decision`, {
      body: { liability: 'platform' },
      headers: { 'idempotency-key': 'http-decision-2' },
    });
    expect(decided).toMatchObject({ status: 200, body: { status: 'decided', liability: 'platform' } });
  });

  it('refuses provider callbacks that are not signed', async () => {
    const response = await app.request('POST', '/v1/payments/provider-events', {
      key: null,
      body: { id: 'evt', operation: {} },
    });
    expect(response).toMatchObject({ status: 400, body: { code: 'payments.signature_invalid' } });
  });
});

describe('provider callback signatures', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const now = new Date('2026-06-01T09:00:00Z');
  const timestamp = Math.floor(now.getTime() / 1000);
  const body = '{"id":"evt_1"}';
  const headers = (signature: string, at = timestamp) => ({
    'webhook-id': 'msg_1',
    'webhook-timestamp': String(at),
    'webhook-signature': signature,
  });

  it('accepts a delivery signed with the secret, also among several signatures', () => {
    const signature = signProviderEvent(secret, { id: 'msg_1', timestamp, body });
    expect(() => verifyProviderEvent(secret, headers(signature), body, now)).not.toThrow();
    expect(() => verifyProviderEvent(secret, headers(`v1,AAAA ${signature}`), body, now)).not.toThrow();
  });

  it('refuses another body, another secret, a stale timestamp, or no secret configured', () => {
    const signature = signProviderEvent(secret, { id: 'msg_1', timestamp, body });
    const refuse = (fn: () => void) =>
      expect(fn).toThrow(expect.objectContaining({ code: 'payments.signature_invalid' }));
    refuse(() => verifyProviderEvent(secret, headers(signature), '{"id":"evt_2"}', now));
    refuse(() => verifyProviderEvent('whsec_b3RoZXI=', headers(signature), body, now));
    const old = timestamp - 6 * 60;
    refuse(() =>
      verifyProviderEvent(
        secret,
        headers(signProviderEvent(secret, { id: 'msg_1', timestamp: old, body }), old),
        body,
        now,
      ),
    );
    refuse(() => verifyProviderEvent(null, headers(signature), body, now));
  });
});
