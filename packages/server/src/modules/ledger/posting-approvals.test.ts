import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { newId } from '../../kernel/ids.js';
import type { ApiResponse } from '../../testing/test-app.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';

/*
 * Four eyes on money moved by hand (RELIABILITY A5): per currency, what one operator may move
 * by hand alone in a day; beyond it, a posting request that another operator approves before
 * any money moves, and that its author cannot approve.
 */
describe(`four eyes on money moved by hand (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ poolSize: 12 });
  const db = app.baton.database.db;
  const alice = await app.operatorKey('finance');
  const bob = await app.operatorKey('finance');
  const carol = await app.operatorKey('finance');
  const ops = await app.operatorKey('ops');

  interface Money {
    amount: string;
    currency: string;
  }
  interface Txn {
    id: string;
    replayed?: boolean;
    entries: { account_id: string; direction: string; amount: Money }[];
  }
  interface RequestBody {
    id: string;
    action: string;
    moves: Money[];
    reason: string;
    status: string;
    requested_by: string;
    decided_by: string | null;
    decision_reason: string | null;
    transaction_ids: string[] | null;
    transaction?: { idempotency_key: string; entries: { amount: Money }[] };
    transaction_id?: string;
    transactions?: unknown[];
  }
  interface Approved {
    request: RequestBody;
    results: { index: number; status: string; transaction?: Txn; error?: { code: string } }[];
  }
  interface Problem {
    code: string;
    currency?: string;
    approval_above?: Money;
    moved_alone_today?: Money;
    amount?: Money;
  }

  const ok = <T>(response: ApiResponse<T>, status = 200): T => {
    expect(response.status, response.text).toBe(status);
    return response.body;
  };
  const expectProblem = (response: ApiResponse<unknown>, status: number, code: string): Problem => {
    expect(response.status, response.text).toBe(status);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect((response.body as Problem).code).toBe(code);
    return response.body as Problem;
  };

  let keys = 0;
  const key = (prefix: string) => `${prefix}-${++keys}`;
  /** A credit to a partner's payable from the operator's adjustments: what an insider would post. */
  const credit = (partnerId: string, amount: string, currency = 'EUR', idempotencyKey = key('credit')) => ({
    idempotency_key: idempotencyKey,
    description: 'Goodwill credit',
    cause: { kind: 'adjustment', id: idempotencyKey },
    entries: [
      {
        account: { purpose: 'operator_adjustments', owner_id: 'platform' },
        direction: 'debit',
        amount: { amount, currency },
      },
      {
        account: { purpose: 'partner_payable', owner_id: partnerId },
        direction: 'credit',
        amount: { amount, currency },
      },
    ],
  });
  /** The opposite: takes money from a partner's payable, which may not go below zero. */
  const debit = (partnerId: string, amount: string) => {
    const body = credit(partnerId, amount, 'EUR', key('debit'));
    return {
      ...body,
      entries: body.entries.map((entry) => ({
        ...entry,
        direction: entry.direction === 'debit' ? 'credit' : 'debit',
      })),
    };
  };
  const post = (by: string, body: unknown) =>
    app.request<Txn>('POST', '/v1/ledger/transactions', { key: by, body });
  const reverse = (by: string, id: string, idempotencyKey = key('reverse')) =>
    app.request<Txn>('POST', `/v1/ledger/transactions/${id}/reverse`, {
      key: by,
      body: { idempotency_key: idempotencyKey },
    });
  const batch = (by: string, atomic: boolean, transactions: unknown[]) =>
    app.request<{ results: { status: string }[] }>('POST', '/v1/ledger/batches', {
      key: by,
      body: { atomic, transactions },
    });
  const file = (by: string, body: Record<string, unknown>, idempotencyKey = key('file')) =>
    app.request<RequestBody>('POST', '/v1/ledger/posting-requests', {
      key: by,
      body: { reason: 'Correction agreed with the partner', ...body },
      headers: { 'idempotency-key': idempotencyKey },
    });
  const approve = (by: string, id: string, idempotencyKey = key('approve')) =>
    app.request<Approved>('POST', `/v1/ledger/posting-requests/${id}/approve`, {
      key: by,
      body: {},
      headers: { 'idempotency-key': idempotencyKey },
    });
  const reject = (by: string, id: string, reason: string) =>
    app.request<RequestBody>('POST', `/v1/ledger/posting-requests/${id}/reject`, {
      key: by,
      body: { reason },
    });
  const setThreshold = (amount: string, currency = 'EUR', by = app.adminKey) =>
    app.request<{ approval_above: Money }>('PUT', `/v1/ledger/approval-thresholds/${currency}`, {
      key: by,
      body: { approval_above: amount },
    });
  const userOf = async (by: string) => ok<{ id: string }>(await app.request('GET', '/v1/me', { key: by })).id;
  /** A partner's payable balance, '0.00' before it exists. */
  const payable = async (partnerId: string) => {
    const accounts = ok<{ data: { id: string }[] }>(
      await app.request(
        'GET',
        `/v1/ledger/accounts?owner_id=${partnerId}&purpose=partner_payable&currency=EUR`,
      ),
    ).data;
    if (!accounts[0]) return '0.00';
    return ok<{ balance: Money }>(await app.request('GET', `/v1/ledger/accounts/${accounts[0].id}`)).balance
      .amount;
  };
  const count = async (table: 'ledger_transactions' | 'ledger_posting_requests') =>
    Number(
      (await db.selectFrom(table).select(sql<string>`count(*)::text`.as('n')).executeTakeFirstOrThrow()).n,
    );
  const auditOf = async (action: string, targetId?: string) =>
    ok<{ data: { action: string; target_id: string | null; outcome: string; actor: { id: string } }[] }>(
      await app.request(
        'GET',
        `/v1/audit-records?${new URLSearchParams({ action, ...(targetId ? { target_id: targetId } : {}) })}`,
      ),
    ).data;
  /** A new day, so that each test starts with nothing moved alone. */
  const nextDay = () => app.clock.advance(24 * 60 * 60 * 1000);

  it('lets administrators set, read and remove the threshold of a currency, and refuses bad ones', async () => {
    expect(
      ok<{ data: unknown[] }>(await app.request('GET', '/v1/ledger/approval-thresholds', { key: ops })).data,
    ).toEqual([]);
    expectProblem(await setThreshold('100.00', 'EUR', alice), 403, 'auth.role_not_allowed');
    expectProblem(await setThreshold('100.001'), 400, 'money.too_many_decimals');
    expectProblem(await setThreshold('-1.00'), 400, 'ledger.approval_threshold_negative');
    expectProblem(await setThreshold('1.00', 'XXX'), 400, 'money.unknown_currency');
    expectProblem(await setThreshold('1.00', 'eur'), 400, 'request.invalid');
    expect(
      ok<{ data: unknown[] }>(await app.request('GET', '/v1/ledger/approval-thresholds', { key: ops })).data,
    ).toEqual([]);

    const set = ok(await setThreshold('100.00'));
    expect(set).toMatchObject({ approval_above: { amount: '100.00', currency: 'EUR' } });
    ok(await setThreshold('250.00'));
    expect(
      ok<{ data: { approval_above: Money; updated_by: string }[] }>(
        await app.request('GET', '/v1/ledger/approval-thresholds', { key: ops }),
      ).data,
    ).toEqual([
      expect.objectContaining({
        approval_above: expect.objectContaining({ amount: '250.00', currency: 'EUR' }),
        updated_by: await userOf(app.adminKey),
      }),
    ]);
    ok(await app.request('DELETE', '/v1/ledger/approval-thresholds/EUR'));
    expectProblem(
      await app.request('DELETE', '/v1/ledger/approval-thresholds/EUR'),
      404,
      'ledger.approval_threshold_not_found',
    );
    expect(
      (await auditOf('ledger.approval_threshold.set', 'EUR')).map((record) => record.outcome).sort(),
    ).toEqual(['denied', 'failed', 'failed', 'succeeded', 'succeeded']);
  });

  it('counts what each operator moves by hand alone in a day, and refuses what would pass the threshold', async () => {
    nextDay();
    ok(await setThreshold('100.00'));
    const partner = newId('ptn');
    const first = credit(partner, '60.00');
    ok(await post(alice, first), 201);
    ok(await post(alice, credit(partner, '40.00')), 201);
    expect(await payable(partner)).toBe('100.00');

    // One cent more is refused, and nothing moves.
    const transactions = await count('ledger_transactions');
    const refused = expectProblem(
      await post(alice, credit(partner, '0.01')),
      403,
      'ledger.posting_needs_approval',
    );
    expect(refused).toMatchObject({
      currency: 'EUR',
      approval_above: { amount: '100.00', currency: 'EUR' },
      moved_alone_today: { amount: '100.00', currency: 'EUR' },
      amount: { amount: '0.01', currency: 'EUR' },
    });
    expect(await count('ledger_transactions')).toBe(transactions);
    expect(await payable(partner)).toBe('100.00');

    // A replay moves nothing and counts nothing.
    expect(ok(await post(alice, first), 201).replayed).toBe(true);
    // Each currency has its own count and threshold, and a currency without one has no limit.
    ok(await post(alice, credit(partner, '5000.00', 'GBP')), 201);
    ok(await setThreshold('400.00', 'USD'));
    ok(await post(alice, credit(partner, '400.00', 'USD')), 201);
    expect(
      expectProblem(await post(alice, credit(partner, '0.01', 'USD')), 403, 'ledger.posting_needs_approval'),
    ).toMatchObject({ currency: 'USD', moved_alone_today: { amount: '400.00', currency: 'USD' } });
    expect(
      expectProblem(await post(alice, credit(partner, '0.01')), 403, 'ledger.posting_needs_approval'),
    ).toMatchObject({ currency: 'EUR', moved_alone_today: { amount: '100.00', currency: 'EUR' } });
    ok(await app.request('DELETE', '/v1/ledger/approval-thresholds/USD'));
    // Each operator has its own count.
    ok(await post(bob, credit(partner, '100.00')), 201);
    expectProblem(await post(bob, credit(partner, '0.01')), 403, 'ledger.posting_needs_approval');

    // A reversal moves what the original moved.
    nextDay();
    ok(await post(bob, credit(partner, '70.00')), 201);
    const original = ok(await post(alice, credit(partner, '50.00')), 201);
    expectProblem(await reverse(bob, original.id), 403, 'ledger.posting_needs_approval');
    ok(await reverse(alice, original.id), 201);

    // A batch is one movement: its items add up, and beyond the threshold none is written, atomic or not.
    nextDay();
    for (const atomic of [true, false]) {
      const before = await count('ledger_transactions');
      expectProblem(
        await batch(carol, atomic, [
          credit(partner, '40.00'),
          credit(partner, '40.00'),
          credit(partner, '40.00'),
        ]),
        403,
        'ledger.posting_needs_approval',
      );
      expect(await count('ledger_transactions')).toBe(before);
    }
    // A refused item of a batch standing alone moves nothing, and counts nothing.
    const items = ok(await batch(carol, false, [credit(partner, '90.00'), debit(newId('ptn'), '50.00')]));
    expect(items.results.map((result) => result.status)).toEqual(['posted', 'rejected']);
    ok(await post(carol, credit(partner, '10.00')), 201);
    expectProblem(await post(carol, credit(partner, '0.01')), 403, 'ledger.posting_needs_approval');

    // The next day starts afresh.
    nextDay();
    ok(await post(alice, credit(partner, '100.00')), 201);

    // Every refusal is audited as denied, naming the operator.
    const denied = (await auditOf('ledger.transaction.post')).filter((record) => record.outcome === 'denied');
    expect(denied).toHaveLength(5);
    expect([...new Set(denied.map((record) => record.actor.id))].sort()).toEqual(
      [await userOf(alice), await userOf(bob), await userOf(carol)].sort(),
    );
    ok(await app.request('DELETE', '/v1/ledger/approval-thresholds/EUR'));
  });

  it('moves money beyond the threshold only when another operator approves the request', async () => {
    nextDay();
    ok(await setThreshold('100.00'));
    const partner = newId('ptn');
    const body = credit(partner, '500.00');
    expectProblem(await post(alice, body), 403, 'ledger.posting_needs_approval');

    const transactions = await count('ledger_transactions');
    const filed = ok(await file(alice, { action: 'post', transaction: body }), 201);
    expect(filed).toMatchObject({
      action: 'post',
      moves: [expect.objectContaining({ amount: '500.00', currency: 'EUR' })],
      status: 'pending',
      requested_by: await userOf(alice),
      decided_by: null,
      transaction_ids: null,
      // Kept apart from the keys of Baton's own postings.
      transaction: { idempotency_key: `manual:${body.idempotency_key}` },
    });
    // Filed, nothing moved; operators see it waiting, and are told of it.
    expect(await count('ledger_transactions')).toBe(transactions);
    const pending = ok<{ data: { id: string }[] }>(
      await app.request('GET', '/v1/ledger/posting-requests?status=pending', { key: ops }),
    ).data;
    expect(pending.map((request) => request.id)).toContain(filed.id);
    expect(
      ok<RequestBody>(await app.request('GET', `/v1/ledger/posting-requests/${filed.id}`, { key: ops })),
    ).toEqual(filed);

    // Its author cannot approve it, nor can staff who move no money; nothing moves.
    expectProblem(await approve(alice, filed.id), 403, 'ledger.self_approval');
    expectProblem(await approve(ops, filed.id), 403, 'auth.role_not_allowed');
    expect(await count('ledger_transactions')).toBe(transactions);

    // Another operator approves it: the transaction is posted, and it counts against nobody.
    const approved = ok(await approve(bob, filed.id, 'approve-500'));
    expect(approved.request).toMatchObject({ status: 'approved', decided_by: await userOf(bob) });
    expect(approved.results).toEqual([expect.objectContaining({ index: 0, status: 'posted' })]);
    expect(approved.request.transaction_ids).toEqual([approved.results[0]?.transaction?.id]);
    expect(await payable(partner)).toBe('500.00');
    ok(await post(bob, credit(partner, '100.00')), 201);

    // A retry answers the same; a second approval is refused; nothing moves again.
    const replayed = await approve(bob, filed.id, 'approve-500');
    expect(replayed.status).toBe(200);
    expect(replayed.body).toEqual(approved);
    expectProblem(await approve(carol, filed.id), 409, 'ledger.posting_request_decided');
    expectProblem(await reject(carol, filed.id, 'Too late'), 409, 'ledger.posting_request_decided');
    expect(await payable(partner)).toBe('600.00');

    // One event per step, for operators; one audit record of the approval, naming the approver.
    const events = ok<{ data: { type: string; subject_id: string }[] }>(
      await app.request(
        'GET',
        '/v1/events?limit=500&types=posting_request.created,posting_request.approved',
        {
          key: ops,
        },
      ),
    ).data.filter((event) => event.subject_id === filed.id);
    expect(events.map((event) => event.type)).toEqual([
      'posting_request.created',
      'posting_request.approved',
    ]);
    expect(
      (await auditOf('ledger.posting_request.approve', filed.id)).map((record) => [
        record.outcome,
        record.actor.id,
      ]),
    ).toEqual([
      ['denied', await userOf(alice)],
      ['denied', await userOf(ops)],
      ['succeeded', await userOf(bob)],
      ['failed', await userOf(carol)],
    ]);
    expect(
      (await auditOf('ledger.posting_request.approve', filed.id)).find(
        (record) => record.outcome === 'succeeded',
      ),
    ).toMatchObject({ details: { transaction_ids: approved.request.transaction_ids } });

    // Nor does it count against its author, who refiling it gets the same request.
    ok(await post(alice, credit(partner, '100.00')), 201);
    const again = ok(await file(alice, { action: 'post', transaction: body }, 'file-500'), 201);
    expect(again).toMatchObject({ status: 'pending', requested_by: await userOf(alice) });
    expect(ok(await file(alice, { action: 'post', transaction: body }, 'file-500'), 201)).toEqual(again);
    const requests = await count('ledger_posting_requests');
    expectProblem(
      await file(alice, { action: 'post', transaction: credit(partner, '600.00') }, 'file-500'),
      422,
      'idempotency.key_reused',
    );
    expect(await count('ledger_posting_requests')).toBe(requests);
    ok(await app.request('DELETE', '/v1/ledger/approval-thresholds/EUR'));
  });

  it('keeps a request pending when its movement is refused, and lets its author withdraw it', async () => {
    nextDay();
    const partner = newId('ptn');
    ok(await post(alice, credit(partner, '20.00')), 201);
    const filed = ok(await file(alice, { action: 'post', transaction: debit(partner, '30.00') }), 201);
    const transactions = await count('ledger_transactions');
    expectProblem(await approve(bob, filed.id), 409, 'ledger.insufficient_funds');
    expect(await count('ledger_transactions')).toBe(transactions);
    expect(ok<RequestBody>(await app.request('GET', `/v1/ledger/posting-requests/${filed.id}`)).status).toBe(
      'pending',
    );

    const withdrawn = ok(await reject(alice, filed.id, 'Filed in error'));
    expect(withdrawn).toMatchObject({
      status: 'rejected',
      decided_by: await userOf(alice),
      decision_reason: 'Filed in error',
      transaction_ids: null,
    });
    expectProblem(await approve(bob, filed.id), 409, 'ledger.posting_request_decided');
    expect(await payable(partner)).toBe('20.00');
  });

  it('files reversals and batches, checked as far as they can be before any money moves', async () => {
    nextDay();
    const partner = newId('ptn');
    const original = ok(await post(alice, credit(partner, '80.00')), 201);

    // Reversals: of a missing transaction, of a reversal, of one already reversed.
    expectProblem(
      await file(alice, { action: 'reverse', transaction_id: newId('txn'), idempotency_key: key('rev') }),
      404,
      'ledger.transaction_not_found',
    );
    const other = ok(await post(alice, credit(partner, '1.00')), 201);
    const otherReversal = ok(await reverse(alice, other.id), 201);
    expectProblem(
      await file(alice, { action: 'reverse', transaction_id: otherReversal.id, idempotency_key: key('rev') }),
      422,
      'ledger.reversal_not_reversible',
    );
    expectProblem(
      await file(alice, { action: 'reverse', transaction_id: other.id, idempotency_key: key('rev') }),
      409,
      'ledger.already_reversed',
    );
    const reversal = ok(
      await file(alice, { action: 'reverse', transaction_id: original.id, idempotency_key: 'rev-original' }),
      201,
    );
    expect(reversal).toMatchObject({
      action: 'reverse',
      transaction_id: original.id,
      moves: [expect.objectContaining({ amount: '80.00' })],
    });
    // Reversed by hand meanwhile, the reversal filed is refused when approved, and stays pending.
    const twice = ok(
      await file(alice, { action: 'reverse', transaction_id: original.id, idempotency_key: 'rev-twice' }),
      201,
    );
    const reversed = ok(await approve(bob, reversal.id));
    expectProblem(await approve(bob, twice.id), 409, 'ledger.already_reversed');
    expect(ok<RequestBody>(await app.request('GET', `/v1/ledger/posting-requests/${twice.id}`)).status).toBe(
      'pending',
    );
    expect(reversed.results[0]?.transaction?.entries.map((entry) => entry.direction)).toEqual([
      'credit',
      'debit',
    ]);
    expect(await payable(partner)).toBe('0.00');

    // A batch of items standing alone is approved whatever its items' outcomes.
    const items = [credit(partner, '10.00'), debit(partner, '500.00'), credit(partner, '5.00', 'USD')];
    const filed = ok(await file(alice, { action: 'batch', atomic: false, transactions: items }), 201);
    expect(filed.moves).toEqual([
      expect.objectContaining({ amount: '510.00', currency: 'EUR' }),
      expect.objectContaining({ amount: '5.00', currency: 'USD' }),
    ]);
    const approved = ok(await approve(bob, filed.id));
    expect(approved.results.map((result) => [result.status, result.error?.code])).toEqual([
      ['posted', undefined],
      ['rejected', 'ledger.insufficient_funds'],
      ['posted', undefined],
    ]);
    expect(approved.request.transaction_ids).toEqual([
      approved.results[0]?.transaction?.id,
      approved.results[2]?.transaction?.id,
    ]);
    expect(await payable(partner)).toBe('10.00');

    // An atomic one that fails stays pending, nothing written.
    const atomic = ok(
      await file(alice, {
        action: 'batch',
        atomic: true,
        transactions: [credit(partner, '1.00'), debit(partner, '500.00')],
      }),
      201,
    );
    const before = await count('ledger_transactions');
    expectProblem(await approve(bob, atomic.id), 422, 'ledger.batch_rejected');
    expect(await count('ledger_transactions')).toBe(before);
    expect(ok<RequestBody>(await app.request('GET', `/v1/ledger/posting-requests/${atomic.id}`)).status).toBe(
      'pending',
    );
    // Once the funds are there, the same request is approved, all of it.
    ok(await post(alice, credit(partner, '489.00')), 201);
    const funded = ok(await approve(bob, atomic.id));
    expect(funded.results.map((result) => result.status)).toEqual(['posted', 'posted']);
    expect(await payable(partner)).toBe('0.00');
  });

  it('lets a request left undecided for seven days expire: it can no longer be approved or rejected', async () => {
    const partner = newId('ptn');
    const filed = ok(await file(alice, { action: 'post', transaction: credit(partner, '700.00') }), 201);
    const filedAt = app.clock.now();
    expect(filed).toMatchObject({
      status: 'pending',
      expires_at: new Date(filedAt.getTime() + 7 * 24 * 60 * 60 * 1000).toISOString(),
    });
    const listed = async (status: string) =>
      ok<{ data: { id: string }[] }>(
        await app.request('GET', `/v1/ledger/posting-requests?status=${status}&limit=100`),
      ).data.map((request) => request.id);

    app.clock.advance(7 * 24 * 60 * 60 * 1000 - 1);
    expect(await listed('pending')).toContain(filed.id);
    expect(await listed('expired')).not.toContain(filed.id);
    app.clock.advance(1);
    expect(ok<RequestBody>(await app.request('GET', `/v1/ledger/posting-requests/${filed.id}`)).status).toBe(
      'expired',
    );
    expect(await listed('pending')).not.toContain(filed.id);
    expect(await listed('expired')).toContain(filed.id);
    const transactions = await count('ledger_transactions');
    expectProblem(await approve(bob, filed.id), 409, 'ledger.posting_request_expired');
    expectProblem(await reject(alice, filed.id, 'Too late'), 409, 'ledger.posting_request_expired');
    expect(await count('ledger_transactions')).toBe(transactions);
    expect(await payable(partner)).toBe('0.00');
  });

  it('refuses bad requests with a problem, storing nothing', async () => {
    const partner = newId('ptn');
    const requests = await count('ledger_posting_requests');
    const unbalanced = credit(partner, '10.00');
    unbalanced.entries[1] = {
      ...unbalanced.entries[1],
      amount: { amount: '9.99', currency: 'EUR' },
    } as never;
    expectProblem(
      await file(alice, { action: 'post', transaction: unbalanced }),
      422,
      'ledger.entries_must_balance',
    );
    expectProblem(
      await file(alice, {
        action: 'batch',
        atomic: false,
        transactions: [credit(partner, '1.00'), unbalanced],
      }),
      422,
      'ledger.batch_rejected',
    );
    expectProblem(
      await file(alice, { action: 'post', transaction: credit(partner, '1.001') }),
      422,
      'ledger.entries_must_balance',
    );
    // Accounts are checked too, without opening any: one named by id must exist and be in the
    // entry's currency, one named by key must have an owner that fits its purpose.
    const payableId = ok(await post(alice, credit(partner, '1.00')), 201).entries[1]?.account_id as string;
    const accounts = async () =>
      Number(
        (
          await db
            .selectFrom('ledger_accounts')
            .select(sql<string>`count(*)::text`.as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const accountsBefore = await accounts();
    const named = (account: unknown, currency = 'EUR') => {
      const body = credit(partner, '1.00', currency);
      return {
        ...body,
        entries: [body.entries[0], { ...body.entries[1], account: undefined, account_id: account }],
      };
    };
    const ruleOf = async (transaction: unknown) =>
      (
        expectProblem(
          await file(alice, { action: 'post', transaction }),
          422,
          'ledger.entries_must_balance',
        ) as {
          errors?: { path: string; rule: string }[];
        }
      ).errors?.find((error) => error.path.startsWith('/entries/1/'));
    expect(await ruleOf(named(newId('acc')))).toMatchObject({ path: '/entries/1/account', rule: 'exists' });
    expect(await ruleOf(named(payableId, 'USD'))).toMatchObject({
      path: '/entries/1/currency',
      rule: 'currency',
    });
    const misowned = credit(partner, '1.00');
    misowned.entries[1] = {
      ...misowned.entries[1],
      account: { purpose: 'partner_payable', owner_id: 'platform' },
    } as never;
    expect(await ruleOf(misowned)).toMatchObject({
      path: '/entries/1/account',
      rule: 'ledger.owner_invalid',
    });
    expect(
      ok(await file(alice, { action: 'post', transaction: named(payableId) }), 201).transaction?.entries,
    ).toHaveLength(2);
    expect(await accounts()).toBe(accountsBefore);
    expectProblem(
      await file(alice, {
        action: 'batch',
        atomic: true,
        transactions: [credit(partner, '1.00'), named(newId('acc'))],
      }),
      422,
      'ledger.batch_rejected',
    );
    expectProblem(
      await file(alice, { action: 'transfer', transaction: credit(partner, '1.00') }),
      400,
      'request.invalid',
    );
    expectProblem(
      await file(alice, { action: 'post', transaction: credit(partner, '1.00'), reason: ' ' }),
      400,
      'request.invalid',
    );
    expectProblem(
      await file(ops, { action: 'post', transaction: credit(partner, '1.00') }),
      403,
      'auth.role_not_allowed',
    );
    expectProblem(
      await app.request('POST', '/v1/ledger/posting-requests', {
        key: alice,
        body: { action: 'post', reason: 'No key', transaction: credit(partner, '1.00') },
      }),
      400,
      'idempotency.key_required',
    );
    expect(await count('ledger_posting_requests')).toBe(requests + 1);
    expectProblem(
      await app.request('GET', `/v1/ledger/posting-requests/${newId('lpr')}`),
      404,
      'ledger.posting_request_not_found',
    );
  });

  it('keeps four eyes in the database too: an approval by the request’s author is refused', async () => {
    const filed = ok(await file(alice, { action: 'post', transaction: credit(newId('ptn'), '1.00') }), 201);
    await expect(
      sql`update ledger_posting_requests set status = 'approved', decided_by = requested_by, decided_at = now(),
        transaction_ids = '{}' where id = ${filed.id}`.execute(db),
    ).rejects.toThrow(/check constraint/);
    // The same row decided by another user passes every check: the author was what was refused.
    await sql`update ledger_posting_requests set status = 'approved', decided_by = ${await userOf(bob)},
      decided_at = now(), transaction_ids = '{}' where id = ${filed.id}`.execute(db);
  });

  it('never lets racing movements by hand of one operator pass the threshold together', async () => {
    nextDay();
    ok(await setThreshold('100.00'));
    const partner = newId('ptn');
    // 100.00 alone at most: of eight racing postings of 30.00, three pass.
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(alice, credit(partner, '30.00'))));
    expect(answers.map((answer) => answer.status).sort()).toEqual([201, 201, 201, 403, 403, 403, 403, 403]);
    expect(await payable(partner)).toBe('90.00');

    // Racing approvals of one request: one moves the money.
    const filed = ok(await file(alice, { action: 'post', transaction: credit(partner, '1000.00') }), 201);
    const decisions = await Promise.all([bob, carol, app.adminKey].map((by) => approve(by, filed.id)));
    expect(decisions.map((answer) => answer.status).sort()).toEqual([200, 409, 409]);
    expect(await payable(partner)).toBe('1090.00');
    ok(await app.request('DELETE', '/v1/ledger/approval-thresholds/EUR'));
  });
});
