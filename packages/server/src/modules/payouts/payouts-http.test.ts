import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { purgeExpiredIdempotencyKeys } from '../../kernel/idempotency/idempotency-store.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { createSimulatedProvider } from '../payments/index.js';
import { DESTINATION_HOLD_MS } from './index.js';

describe(`payouts over HTTP (${TEST_DATABASE_KIND})`, async () => {
  const provider = createSimulatedProvider();
  const app = await createTestApp({ provider });
  const db = app.baton.database.db;
  const finance = await app.operatorKey('finance');
  const ops = await app.operatorKey('ops');

  expect(
    (
      await app.request('POST', '/v1/partner-types', {
        body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
      })
    ).status,
  ).toBe(201);
  async function partner(name: string) {
    const applied = await app.request<{ partner: { id: string }; api_key: { secret: string } }>(
      'POST',
      '/v1/partner-applications',
      {
        key: null,
        body: { partner_type: 'supplier', name, email: `${name}@partner.test`, regions: ['eu-west'] },
      },
    );
    expect(applied.status, applied.text).toBe(201);
    const member = await app.request<{ id: string }>(
      'POST',
      `/v1/partners/${applied.body.partner.id}/users`,
      {
        key: applied.body.api_key.secret,
        body: { name: `${name} member`, email: `member@${name}.test`, role: 'member' },
      },
    );
    const memberKey = await app.request<{ secret: string }>('POST', '/v1/api-keys', {
      key: applied.body.api_key.secret,
      body: { name: 'member key', user_id: member.body.id },
    });
    return {
      id: applied.body.partner.id,
      ownerKey: applied.body.api_key.secret,
      memberKey: memberKey.body.secret,
    };
  }
  const alpha = await partner('alpha');
  const bravo = await partner('bravo');

  const earn = (partnerId: string, amount: string, key: string) =>
    app.request('POST', '/v1/ledger/transactions', {
      body: {
        idempotency_key: key,
        cause: { kind: 'adjustment', id: key },
        entries: [
          {
            account: { purpose: 'operator_adjustments', owner_id: 'platform' },
            direction: 'debit',
            amount: { amount, currency: 'EUR' },
          },
          {
            account: { purpose: 'partner_payable', owner_id: partnerId },
            direction: 'credit',
            amount: { amount, currency: 'EUR' },
          },
        ],
      },
    });
  const settings = {
    schedule: 'manual',
    minimum: { amount: '10.00', currency: 'EUR' },
    destination: 'ba_ok',
    reserve_bps: 0,
    reserve_days: 0,
  };
  const rows = async (table: 'payouts' | 'payout_settings') =>
    Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)}`.execute(db)).rows[0]?.n);

  it('lets finance set payout settings, and refuses invalid ones with a field report and no change', async () => {
    const set = await app.request('PUT', `/v1/partners/${alpha.id}/payout-settings`, {
      key: finance,
      body: settings,
    });
    expect(set.status, set.text).toBe(200);
    expect(set.body).toMatchObject({
      partner_id: alpha.id,
      schedule: 'manual',
      minimum: { amount: '10.00', currency: 'EUR', amount_minor: '1000' },
      destination: 'ba_ok',
    });
    const before = await rows('payout_settings');
    for (const body of [
      { ...settings, schedule: 'weekly' },
      { ...settings, minimum: { amount: '10.001', currency: 'EUR' } },
      { ...settings, minimum: { amount: '10.00', currency: 'XYZ' } },
    ]) {
      const refused = await app.request('PUT', `/v1/partners/${bravo.id}/payout-settings`, {
        key: finance,
        body,
      });
      expect(refused.status, refused.text).toBe(422);
      expect(refused.body.code).toBe('payouts.settings_invalid');
    }
    const badShape = await app.request('PUT', `/v1/partners/${bravo.id}/payout-settings`, {
      key: finance,
      body: { ...settings, reserve_bps: 10_001 },
    });
    expect(badShape.status).toBe(400);
    expect(await rows('payout_settings')).toBe(before);
    expect(
      (await app.request('PUT', `/v1/partners/${bravo.id}/payout-settings`, { key: ops, body: settings }))
        .status,
    ).toBe(403);
  });

  it("lets a partner's owner read its settings and change its destination, audited, and no one else's", async () => {
    const own = await app.request('GET', `/v1/partners/${alpha.id}/payout-settings`, {
      key: alpha.memberKey,
    });
    expect(own.status).toBe(200);
    const changed = await app.request('PUT', `/v1/partners/${alpha.id}/payout-destination`, {
      key: alpha.ownerKey,
      body: { destination: 'ba_new_account_1234' },
    });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body.destination).toBe('ba_new_account_1234');
    // The change holds the partner's payouts for a while, and the partner is told of it.
    const heldUntil = new Date(app.clock.now().getTime() + DESTINATION_HOLD_MS).toISOString();
    expect(changed.body.destination_held_until).toBe(heldUntil);
    const told = await app.request<{
      data: { data: { payout_settings: { destination_held_until: string } } }[];
    }>('GET', '/v1/events?types=payout_settings.updated&limit=100', { key: alpha.memberKey });
    expect(told.body.data.at(-1)?.data.payout_settings.destination_held_until).toBe(heldUntil);
    const audit = await db
      .selectFrom('audit_records')
      .selectAll()
      .where('action', '=', 'payouts.destination.update')
      .where('target_id', '=', alpha.id)
      .execute();
    expect(audit.map((record) => record.outcome)).toEqual(['succeeded']);
    expect(JSON.stringify(audit[0]?.details)).not.toContain('ba_new_account_1234');

    expect(
      (
        await app.request('PUT', `/v1/partners/${alpha.id}/payout-destination`, {
          key: alpha.memberKey,
          body: { destination: 'ba_x' },
        })
      ).status,
    ).toBe(403);
    const theirs = await app.request('GET', `/v1/partners/${alpha.id}/payout-settings`, {
      key: bravo.ownerKey,
    });
    expect(theirs.status).toBe(404);
    app.clock.advance(DESTINATION_HOLD_MS);
    const unset = await app.request('GET', `/v1/partners/${bravo.id}/payout-settings`, {
      key: bravo.ownerKey,
    });
    expect(unset.body.code).toBe('payouts.settings_not_found');
  });

  it('holds a destination set after the last one was removed, however long ago the removal was', async () => {
    const charlie = await partner('charlie');
    const url = `/v1/partners/${charlie.id}/payout-settings`;
    const heldUntil = () => new Date(app.clock.now().getTime() + DESTINATION_HOLD_MS).toISOString();
    const first = await app.request('PUT', url, {
      key: finance,
      body: { ...settings, destination: 'ba_first' },
    });
    expect(first.status, first.text).toBe(200);
    expect(first.body.destination_held_until).toBeNull();
    const removed = await app.request('PUT', url, { key: finance, body: { ...settings, destination: null } });
    expect(removed.status, removed.text).toBe(200);
    expect(removed.body.destination_held_until).toBe(heldUntil());
    // The removal's hold waited out, a new destination is a change all the same.
    app.clock.advance(2 * DESTINATION_HOLD_MS);
    const later = await app.request('PUT', `/v1/partners/${charlie.id}/payout-destination`, {
      key: charlie.ownerKey,
      body: { destination: 'ba_later' },
    });
    expect(later.status, later.text).toBe(200);
    expect(later.body.destination_held_until).toBe(heldUntil());
  });

  it('runs payouts once per Idempotency-Key, sends them after commit, and shows each partner only its own', async () => {
    expect((await earn(alpha.id, '120.00', 'http-earning-1')).status).toBe(201);
    const runBody = { partner_ids: [alpha.id, bravo.id] };
    const missingKey = await app.request('POST', '/v1/payouts/runs', { key: finance, body: runBody });
    expect(missingKey.status).toBe(400);
    expect(missingKey.body.code).toBe('idempotency.key_required');
    expect(await rows('payouts')).toBe(0);

    const headers = { 'idempotency-key': 'run-1' };
    const run = await app.request<{
      batch: { id: string };
      payouts: { id: string; amount: { amount: string }; status: string }[];
      outcomes: { partner_id: string; skipped: string | null }[];
    }>('POST', '/v1/payouts/runs', { key: finance, body: runBody, headers });
    expect(run.status, run.text).toBe(202);
    expect(run.body.payouts).toHaveLength(1);
    expect(run.body.payouts[0]).toMatchObject({ amount: { amount: '120.00' }, status: 'pending' });
    expect(run.body.outcomes.find((o) => o.partner_id === bravo.id)?.skipped).toBe('no_settings');
    const replay = await app.request('POST', '/v1/payouts/runs', { key: finance, body: runBody, headers });
    expect(replay.text).toBe(run.text);
    expect(await rows('payouts')).toBe(1);

    const payoutId = run.body.payouts[0]?.id as string;
    await app.baton.services.payouts.sendBatch(db, run.body.batch.id, app.clock.now());
    const sent = await app.request('GET', `/v1/payouts/${payoutId}`, { key: alpha.memberKey });
    expect(sent.body.status).toBe('sent');

    // The payout's posting is not reversed by hand, by any way in: its money moves as the
    // provider answers, and a reversal would have the next run pay the partner again.
    const posted = await app.request<{ data: { id: string }[] }>(
      'GET',
      `/v1/ledger/transactions?cause_kind=payout&cause_id=${payoutId}`,
      { key: finance },
    );
    const sendId = posted.body.data[0]?.id as string;
    expect(sendId).toMatch(/^txn_/);
    const tries = [
      await app.request('POST', `/v1/ledger/transactions/${sendId}/reverse`, {
        key: finance,
        body: { idempotency_key: `undo-${sendId}` },
      }),
      await app.request('POST', '/v1/ledger/posting-requests', {
        key: finance,
        body: {
          action: 'reverse',
          transaction_id: sendId,
          idempotency_key: `undo-${sendId}`,
          reason: 'Undo',
        },
        headers: { 'idempotency-key': `request-undo-${sendId}` },
      }),
    ];
    for (const tried of tries) {
      expect(tried.status, tried.text).toBe(422);
      expect(tried.body.code).toBe('ledger.payout_not_reversible');
    }
    const reversals = await app.request<{ data: unknown[] }>(
      'GET',
      `/v1/ledger/transactions?cause_kind=reversal&cause_id=${sendId}`,
      { key: finance },
    );
    expect(reversals.body.data).toEqual([]);

    expect((await app.request('GET', `/v1/payouts/${payoutId}`, { key: bravo.ownerKey })).status).toBe(404);
    const bravoList = await app.request<{ data: unknown[] }>('GET', `/v1/payouts?partner_id=${alpha.id}`, {
      key: bravo.ownerKey,
    });
    expect(bravoList.body.data).toEqual([]);
    const listed = await app.request<{ data: { id: string }[] }>('GET', '/v1/payouts', {
      key: alpha.ownerKey,
    });
    expect(listed.body.data.map((p) => p.id)).toEqual([payoutId]);
    const batch = await app.request('GET', `/v1/payout-batches/${run.body.batch.id}`, { key: ops });
    expect(batch.body).toMatchObject({ payout_count: 1, partner_ids: [alpha.id, bravo.id] });
    expect((await app.request('GET', '/v1/payout-batches', { key: alpha.ownerKey })).status).toBe(403);
    expect(
      (
        await app.request('POST', '/v1/payouts/runs', {
          key: ops,
          body: runBody,
          headers: { 'idempotency-key': 'run-2' },
        })
      ).status,
    ).toBe(403);
  });

  it('shows a paid payout the partner’s bank sent back as returned, with its money back on the payable', async () => {
    const delta = await partner('delta');
    const configured = await app.request('PUT', `/v1/partners/${delta.id}/payout-settings`, {
      key: finance,
      body: settings,
    });
    expect(configured.status, configured.text).toBe(200);
    expect((await earn(delta.id, '80.00', 'http-earning-returned')).status).toBe(201);
    const run = await app.request<{ batch: { id: string }; payouts: { id: string }[] }>(
      'POST',
      '/v1/payouts/runs',
      { key: finance, body: { partner_ids: [delta.id] }, headers: { 'idempotency-key': 'run-returned' } },
    );
    expect(run.status, run.text).toBe(202);
    const payoutId = run.body.payouts[0]?.id as string;
    await app.baton.services.payouts.sendBatch(db, run.body.batch.id, app.clock.now());
    provider.settle(payoutId);
    await provider.flush();
    expect(
      (await app.request('GET', `/v1/payouts/${payoutId}`, { key: delta.memberKey })).body,
    ).toMatchObject({
      status: 'paid',
      returned_at: null,
    });

    provider.returnPayout(payoutId, 'account_closed');
    await provider.flush();
    const returned = await app.request('GET', `/v1/payouts/${payoutId}`, { key: delta.memberKey });
    expect(returned.body).toMatchObject({
      status: 'returned',
      failure_code: 'account_closed',
      returned_at: app.clock.now().toISOString(),
    });
    // The account is closed: no payout goes there until the partner sets its destination again.
    const paused = await app.request('GET', `/v1/partners/${delta.id}/payout-settings`, {
      key: delta.ownerKey,
    });
    expect(paused.body.destination_failure).toEqual({
      code: 'account_closed',
      failed_at: app.clock.now().toISOString(),
    });
    const vouched = await app.request('PUT', `/v1/partners/${delta.id}/payout-destination`, {
      key: delta.ownerKey,
      body: { destination: 'ba_ok' },
    });
    expect(vouched.status, vouched.text).toBe(200);
    expect(vouched.body).toMatchObject({ destination_failure: null, destination_held_until: null });
    const listed = await app.request<{ data: { id: string }[] }>('GET', '/v1/payouts?status=returned', {
      key: finance,
    });
    expect(listed.body.data.map((p) => p.id)).toEqual([payoutId]);
    const accounts = await app.request<{ data: { id: string }[] }>(
      'GET',
      '/v1/ledger/accounts?purpose=partner_payable',
      { key: delta.memberKey },
    );
    const payable = await app.request('GET', `/v1/ledger/accounts/${accounts.body.data[0]?.id}`, {
      key: delta.memberKey,
    });
    expect(payable.body.balance).toMatchObject({ amount: '80.00', currency: 'EUR' });
    const events = await app.request<{ data: { type: string; subject_id: string }[] }>(
      'GET',
      '/v1/events?types=payout.returned',
      { key: delta.memberKey },
    );
    expect(events.body.data.map((e) => [e.type, e.subject_id])).toEqual([['payout.returned', payoutId]]);
    const others = await app.request<{ data: unknown[] }>('GET', '/v1/events?types=payout.returned', {
      key: alpha.ownerKey,
    });
    expect(others.body.data).toEqual([]);
  });

  it('keeps a payout run’s Idempotency-Key for 7 days and an ordinary key for 24 hours, purge included', async () => {
    const hourMs = 60 * 60 * 1000;
    const purge = () => runInTransaction(db, (tx) => purgeExpiredIdempotencyKeys(tx, app.clock.now()));
    const runBody = { partner_ids: [alpha.id] };
    const runHeaders = { 'idempotency-key': 'retention-run' };
    const run = await app.request('POST', '/v1/payouts/runs', {
      key: finance,
      body: runBody,
      headers: runHeaders,
    });
    expect(run.status, run.text).toBe(202);
    const paymentBody = {
      order_ref: 'retention-order',
      payment_method: 'pm_card_ok',
      amount: { amount: '1.00', currency: 'EUR' },
    };
    const paymentHeaders = { 'idempotency-key': 'retention-payment' };
    const payment = await app.request('POST', '/v1/payments', { body: paymentBody, headers: paymentHeaders });
    expect(payment.status, payment.text).toBe(202);

    // 25 hours on: the ordinary key is gone (purged), and the same request is a new one.
    app.clock.advance(25 * hourMs);
    await purge();
    const again = await app.request('POST', '/v1/payments', { body: paymentBody, headers: paymentHeaders });
    expect(again.status).toBe(202);
    expect(again.headers['idempotency-replayed']).toBeUndefined();
    expect(again.text).not.toBe(payment.text);

    // 3 days on: the payout run's key still answers with the first run.
    app.clock.advance(47 * hourMs);
    await purge();
    const replay = await app.request('POST', '/v1/payouts/runs', {
      key: finance,
      body: runBody,
      headers: runHeaders,
    });
    expect(replay.headers['idempotency-replayed']).toBe('true');
    expect(replay.text).toBe(run.text);

    // Past 7 days it is forgotten too.
    app.clock.advance(4 * 24 * hourMs + 1);
    expect(await purge()).toBeGreaterThanOrEqual(1n);
    const late = await app.request('POST', '/v1/payouts/runs', {
      key: finance,
      body: runBody,
      headers: runHeaders,
    });
    expect(late.headers['idempotency-replayed']).toBeUndefined();
  });
});
