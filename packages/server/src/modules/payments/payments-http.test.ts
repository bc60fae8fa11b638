import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { signProviderEvent, verifyProviderEvent } from './http/provider-events.js';
import { createSimulatedProvider, type SimulatedProvider } from './index.js';
import type { ProviderEvent } from './provider/port.js';

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
    // A card number where the provider's token belongs is refused, and not repeated back.
    const card = await app.request<{ code: string; errors: { path: string }[] }>('POST', '/v1/payments', {
      body: { ...body, payment_method: '4242 4242 4242 4242' },
      headers: { 'idempotency-key': 'http-card-number' },
    });
    expect(card.status).toBe(400);
    expect(card.body).toMatchObject({ code: 'request.invalid', errors: [{ path: '/body/payment_method' }] });
    expect(card.text).not.toMatch(/4242/);
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

  it('runs a reconciliation on demand for finance and admins, once per key, audited', async () => {
    // A refund made at the provider outside Baton: its callback is recorded, but no money moved in the ledger.
    const provider = app.baton.services.payments.provider as SimulatedProvider;
    const created = await app.request<{ id: string }>('POST', '/v1/payments', {
      body: { ...body, order_ref: 'http-recon-order' },
      headers: { 'idempotency-key': 'http-recon-payment' },
    });
    const payment = await payments.resume(db, systemActor('test'), created.body.id);
    expect(payment.status).toBe('captured');
    const rogue = `rogue-${created.body.id}`;
    await provider.refund({
      reference: rogue,
      captureReference: `${payment.reference}:capture`,
      amountMinor: 100n,
    });

    const missing = await app.request('POST', '/v1/reconciliation/reports', { body: {} });
    expect(missing).toMatchObject({ status: 400, body: { code: 'idempotency.key_required' } });
    for (const role of ['ops', 'support'] as const) {
      const denied = await app.request('POST', '/v1/reconciliation/reports', {
        key: await app.operatorKey(role),
        body: {},
        headers: { 'idempotency-key': `http-recon-${role}` },
      });
      expect(denied).toMatchObject({ status: 403, body: { code: 'auth.role_not_allowed' } });
    }
    const future = await app.request('POST', '/v1/reconciliation/reports', {
      body: { since: new Date(app.clock.now().getTime() + 60_000).toISOString() },
      headers: { 'idempotency-key': 'http-recon-future' },
    });
    expect(future).toMatchObject({ status: 422, body: { code: 'payments.reconciliation_window_invalid' } });

    const finance = await app.operatorKey('finance');
    const run = () =>
      app.request<{ id: string; discrepancies: { type: string; reference: string }[] }>(
        'POST',
        '/v1/reconciliation/reports',
        { key: finance, body: {}, headers: { 'idempotency-key': 'http-recon-run' } },
      );
    const report = await run();
    expect(report.status, report.text).toBe(201);
    expect(report.body.discrepancies.filter((d) => d.reference === rogue)).toMatchObject([
      { type: 'missing_posting', kind: 'refund', reference: rogue, provider_amount_minor: '100' },
    ]);
    // The same key answers the same report; the report is stored and readable.
    expect((await run()).body.id).toBe(report.body.id);
    const stored = await app.request<{ id: string }>('GET', `/v1/reconciliation/reports/${report.body.id}`);
    expect(stored).toMatchObject({ status: 200, body: { id: report.body.id } });
    const audits = await db
      .selectFrom('audit_records')
      .select(['action', 'outcome'])
      .where('target_id', '=', report.body.id)
      .execute();
    expect(audits).toEqual([{ action: 'payments.reconciliation.run', outcome: 'succeeded' }]);
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

  it('shows the customer its chargebacks, and not who bears them', async () => {
    const signed = await app.request<{ customer: { id: string }; api_key: { secret: string } }>(
      'POST',
      '/v1/customer-signups',
      {
        key: null,
        body: { kind: 'consumer', name: 'Chargeback customer', email: 'cb@example.test', region: 'eu-west' },
      },
    );
    expect(signed.status, signed.text).toBe(201);
    const created = await app.request<{ id: string; reference: string }>('POST', '/v1/payments', {
      body: { ...body, order_ref: 'http-order-3', customer_id: signed.body.customer.id },
      headers: { 'idempotency-key': 'http-payment-3' },
    });
    await payments.resume(db, systemActor('test'), created.body.id);
    const provider = payments.provider as SimulatedProvider;
    provider.chargeback(`${created.body.reference}:capture`, 300n, 'http-chargeback-3');
    await provider.flush();
    const open = await app.request<{ data: { id: string; order_ref: string }[] }>(
      'GET',
      '/v1/chargebacks?status=open',
    );
    const chargeback = open.body.data.find((c) => c.order_ref === 'http-order-3');
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'bearer', name: 'Bearer', profile_schema: { type: 'object' } },
    });
    const partner = await app.request<{ partner: { id: string } }>('POST', '/v1/partner-applications', {
      key: null,
      body: { partner_type: 'bearer', name: 'Bearer', email: 'bearer@partner.test', regions: ['eu-west'] },
    });
    expect(partner.status, partner.text).toBe(201);
    const decided = await app.request('POST', `/v1/chargebacks/${chargeback?.id}/decision`, {
      body: { liability: 'partner', partner_id: partner.body.partner?.id },
      headers: { 'idempotency-key': 'http-decision-3' },
    });
    expect(decided.status, decided.text).toBe(200);
    const path = `/v1/payments/${created.body.id}`;
    const asOperator = await app.request<{ chargebacks: unknown[] }>('GET', path);
    expect(asOperator.body.chargebacks).toMatchObject([
      { liability: 'partner', partner_id: partner.body.partner?.id },
    ]);
    const asCustomer = await app.request<{ chargebacks: unknown[] }>('GET', path, {
      key: signed.body.api_key.secret,
    });
    expect(asCustomer.status, asCustomer.text).toBe(200);
    expect(asCustomer.body.chargebacks).toMatchObject([
      {
        status: 'decided',
        amount: { amount: '3.00' },
        liability: null,
        partner_id: null,
        partner_share: null,
      },
    ]);
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

describe('provider callback signature vectors', () => {
  interface Vector {
    readonly name: string;
    readonly secret: string;
    readonly id: string;
    readonly timestamp: string;
    readonly body: string;
    readonly signature: string;
    readonly now: number;
    readonly valid: boolean;
  }
  const file = JSON.parse(
    readFileSync(new URL('../../testing/standard-webhooks-vectors.json', import.meta.url), 'utf8'),
  ) as {
    defaults: Omit<Vector, 'name' | 'valid'>;
    vectors: (Partial<Vector> & Pick<Vector, 'name' | 'valid'>)[];
  };
  const vectors: Vector[] = file.vectors.map((vector) => ({ ...file.defaults, ...vector }));

  it.each(vectors)('$name: valid is $valid', (vector) => {
    const verify = () =>
      verifyProviderEvent(
        vector.secret,
        {
          'webhook-id': vector.id,
          'webhook-timestamp': vector.timestamp,
          'webhook-signature': vector.signature,
        },
        vector.body,
        new Date(vector.now * 1000),
      );
    if (vector.valid) expect(verify).not.toThrow();
    else expect(verify).toThrow(expect.objectContaining({ code: 'payments.signature_invalid' }));
  });

  it('signs the reference vector as the file says', () => {
    const [reference] = vectors;
    expect(
      signProviderEvent(file.defaults.secret, {
        id: file.defaults.id,
        timestamp: Number(file.defaults.timestamp),
        body: file.defaults.body,
      }),
    ).toBe(reference?.signature);
  });
});

describe(`provider callbacks over HTTP (${TEST_DATABASE_KIND})`, async () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const provider = createSimulatedProvider({ settlement: { capture: 'pending' }, autoDeliver: false });
  const app = await createTestApp({ provider, paymentWebhookSecret: secret });
  const db = app.baton.database.db;

  /** An event as the provider sends it: its JSON, signed for a delivery id at a time. */
  const deliver = (event: ProviderEvent, deliveryId: string) => {
    const { operation } = event;
    const body = JSON.stringify({
      id: event.eventId,
      operation: {
        reference: operation.reference,
        provider_id: operation.providerId,
        kind: operation.kind,
        status: operation.status,
        amount_minor: operation.amountMinor.toString(),
        currency: operation.currency,
        failure_code: operation.failureCode,
        parent_reference: operation.parentReference,
        created_at: operation.createdAt.toISOString(),
        updated_at: operation.updatedAt.toISOString(),
      },
    });
    const timestamp = Math.floor(app.clock.now().getTime() / 1000);
    return app.request('POST', '/v1/payments/provider-events', {
      key: null,
      body,
      headers: {
        'content-type': 'application/json',
        'webhook-id': deliveryId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signProviderEvent(secret, { id: deliveryId, timestamp, body }),
      },
    });
  };

  it('applies a signed event once, however often and under whatever delivery id it comes', async () => {
    const created = await app.request<{ id: string }>('POST', '/v1/payments', {
      body: {
        order_ref: 'callback-order-1',
        payment_method: 'pm_card_ok',
        amount: { amount: '40.00', currency: 'EUR' },
      },
      headers: { 'idempotency-key': 'callback-payment-1' },
    });
    expect(created.status).toBe(202);
    await app.baton.services.payments.resume(db, systemActor('test'), created.body.id);
    const read = () => app.request<{ status: string }>('GET', `/v1/payments/${created.body.id}`);
    expect((await read()).body.status).toBe('authorized');

    provider.settle();
    const event = provider
      .undelivered()
      .find((held) => held.operation.kind === 'capture' && held.operation.status === 'succeeded');
    if (!event) throw new Error('the provider settled the capture');
    // Delivered, delivered again (a retry after a lost answer), and again as a new delivery.
    for (const deliveryId of ['msg_1', 'msg_1', 'msg_2']) {
      const delivered = await deliver(event, deliveryId);
      expect(delivered.status, `${deliveryId}: ${delivered.text}`).toBe(204);
    }
    expect((await read()).body.status).toBe('captured');
    const postings = await app.baton.services.ledger.transactionsFor(
      { db, actor: systemActor('test'), now: app.clock.now(), requestId: null, ip: null },
      { kind: 'payment', id: created.body.id },
    );
    expect(postings).toHaveLength(1);
    const captured = await db
      .selectFrom('events')
      .select('id')
      .where('type', '=', 'payment.captured')
      .where('subject_id', '=', created.body.id)
      .execute();
    expect(captured).toHaveLength(1);

    // A signed event whose text cannot be stored is refused as not an event, changing nothing.
    const garbled = await deliver({ ...event, eventId: 'evt_\u0000' }, 'msg_3');
    expect(garbled).toMatchObject({ status: 400, body: { code: 'payments.event_invalid' } });
  });
});
