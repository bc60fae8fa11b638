import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { newId } from '../../kernel/ids.js';
import type { ApiResponse } from '../../testing/test-app.js';
import { createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';
import { verifyLedger } from './index.js';

/*
 * The ledger as an operator and a partner use it over `/v1/ledger/...`: idempotent postings,
 * problem documents with stable codes for every bad input (and nothing written), batches,
 * balances in time, statements, reversals, and partners confined to their own accounts.
 */
describe(`ledger over HTTP (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp({ config: { BATON_LOG_LEVEL: 'error' } });
  const db = app.baton.database.db;

  interface Entry {
    account_id: string;
    direction: string;
    amount: { amount: string; currency: string; amount_minor: string };
  }
  interface Txn {
    id: string;
    replayed?: boolean;
    entries: Entry[];
    cause: { kind: string; id: string };
  }
  interface Problem {
    code: string;
    errors?: { path: string; rule: string }[];
    items?: { index: number; code: string }[];
  }

  const expectStatus = <T>(response: ApiResponse<T>, status: number): T => {
    expect(response.status, response.text).toBe(status);
    return response.body;
  };
  const problem = (response: ApiResponse<unknown>, status: number, code: string) => {
    expect(response.status, response.text).toBe(status);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect((response.body as unknown as Problem).code).toBe(code);
    return response.body as unknown as Problem;
  };
  const transactionCount = async () =>
    Number(
      (
        await db
          .selectFrom('ledger_transactions')
          .select(sql<string>`count(*)::text`.as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  const byKey = (purpose: string, ownerId: string) => ({ purpose, owner_id: ownerId });
  const credit = (partnerId: string, amount: string, key: string, currency = 'EUR') => ({
    idempotency_key: key,
    description: 'Goodwill credit',
    cause: { kind: 'adjustment', id: key },
    entries: [
      {
        account: byKey('operator_adjustments', 'platform'),
        direction: 'debit',
        amount: { amount, currency },
      },
      { account: byKey('partner_payable', partnerId), direction: 'credit', amount: { amount, currency } },
    ],
  });
  const post = (body: unknown, key?: string) =>
    app.request<Txn>('POST', '/v1/ledger/transactions', { body, ...(key ? { key } : {}) });
  const balanceOf = async (accountId: string, asOf?: string) =>
    expectStatus(
      await app.request<{ balance: { amount: string } }>(
        'GET',
        `/v1/ledger/accounts/${accountId}${asOf ? `?as_of=${encodeURIComponent(asOf)}` : ''}`,
      ),
      200,
    ).balance.amount;

  expectStatus(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'supplier', name: 'Supplier', profile_schema: { type: 'object' } },
    }),
    201,
  );

  async function newPartner(name: string) {
    const applied = expectStatus(
      await app.request<{ partner: { id: string }; api_key: { secret: string } }>(
        'POST',
        '/v1/partner-applications',
        {
          key: null,
          body: { partner_type: 'supplier', name, email: `${name}@ledger.test`, regions: ['eu-west'] },
        },
      ),
      201,
    );
    return { id: applied.partner.id, key: applied.api_key.secret };
  }

  it('answers 201 for a new transaction, 201 with replayed for the same key and content, 409 for other content', async () => {
    const partner = newId('ptn');
    const first = expectStatus(await post(credit(partner, '12.50', `http-idem:${partner}`)), 201);
    expect(first.replayed).toBe(false);
    expect(first.entries.map((e) => e.amount)).toEqual([
      { amount: '12.50', currency: 'EUR', amount_minor: '1250' },
      { amount: '12.50', currency: 'EUR', amount_minor: '1250' },
    ]);
    app.clock.advance(1000);
    const again = expectStatus(await post(credit(partner, '12.50', `http-idem:${partner}`)), 201);
    expect(again).toEqual({ ...first, replayed: true });
    const before = await transactionCount();
    const conflict = await post(credit(partner, '12.51', `http-idem:${partner}`));
    problem(conflict, 409, 'ledger.exists_with_different_content');
    expect(await transactionCount()).toBe(before);
    expect(await balanceOf(first.entries[1]?.account_id as string)).toBe('12.50');
  });

  it('refuses a batch that would take a balance beyond what the ledger holds, writing nothing', async () => {
    const [debtor, creditor] = [newId('ptn'), newId('ptn')];
    // Each amount is within bounds; 300 postings of 32 × 10^15 minor units each pass 2^63 − 1.
    const most = { amount: '10000000000000.00', currency: 'EUR' };
    const posting = (n: number) => ({
      idempotency_key: `http-range:${creditor}:${n}`,
      cause: { kind: 'adjustment', id: creditor },
      entries: Array.from({ length: 64 }, (_, entry) =>
        entry % 2 === 0
          ? { account: byKey('partner_receivable', debtor), direction: 'debit', amount: most }
          : { account: byKey('partner_payable', creditor), direction: 'credit', amount: most },
      ),
    });
    const before = await transactionCount();
    for (const atomic of [true, false]) {
      problem(
        await app.request('POST', '/v1/ledger/batches', {
          body: { atomic, transactions: Array.from({ length: 300 }, (_, n) => posting(n)) },
        }),
        422,
        'ledger.amount_out_of_range',
      );
    }
    expect(await transactionCount()).toBe(before);
    // Short of the bound, the same postings go through.
    const within = await app.request<{ results: { status: string }[] }>('POST', '/v1/ledger/batches', {
      body: { atomic: true, transactions: Array.from({ length: 200 }, (_, n) => posting(n)) },
    });
    expect(within.status, within.text.slice(0, 500)).toBe(200);
    expect(await transactionCount()).toBe(before + 200);
  });

  it('refuses every kind of bad posting with a stable code, writing nothing', async () => {
    const partner = newId('ptn');
    const funded = expectStatus(await post(credit(partner, '10.00', `http-fund:${partner}`)), 201);
    const payableId = funded.entries[1]?.account_id as string;
    const before = await transactionCount();
    const base = credit(partner, '1.00', `http-bad:${partner}`);
    const withEntries = (entries: unknown[]) => ({ ...base, entries });
    const [debit, creditEntry] = base.entries as unknown as [
      Record<string, unknown>,
      Record<string, unknown>,
    ];

    const unbalanced = problem(
      await post(withEntries([debit, { ...creditEntry, amount: { amount: '0.99', currency: 'EUR' } }])),
      422,
      'ledger.entries_must_balance',
    );
    expect(unbalanced.errors).toContainEqual(expect.objectContaining({ path: '/entries', rule: 'balanced' }));

    const zero = { amount: '0.00', currency: 'EUR' };
    const zeroes = problem(
      await post(
        withEntries([
          { ...debit, amount: zero },
          { ...creditEntry, amount: zero },
        ]),
      ),
      422,
      'ledger.entries_must_balance',
    );
    expect(zeroes.errors?.map((e) => e.path)).toEqual(['/entries/0/amount', '/entries/1/amount']);

    const minus = { amount: '-1.00', currency: 'EUR' };
    const negative = problem(
      await post(
        withEntries([
          { ...debit, amount: minus },
          { ...creditEntry, amount: minus },
        ]),
      ),
      422,
      'ledger.entries_must_balance',
    );
    expect(negative.errors?.map((e) => e.path)).toContain('/entries/0/amount');

    const cents = { amount: '1.001', currency: 'EUR' };
    const decimals = problem(
      await post(
        withEntries([
          { ...debit, amount: cents },
          { ...creditEntry, amount: cents },
        ]),
      ),
      422,
      'ledger.entries_must_balance',
    );
    expect(decimals.errors).toContainEqual({
      path: '/entries/0/amount',
      rule: 'money.too_many_decimals',
      message: expect.any(String),
    });

    const unknown = problem(
      await post(
        withEntries([
          { ...debit },
          { account_id: newId('acc'), direction: 'credit', amount: { amount: '1.00', currency: 'EUR' } },
        ]),
      ),
      422,
      'ledger.entries_must_balance',
    );
    expect(unknown.errors).toContainEqual(
      expect.objectContaining({ path: '/entries/1/account', rule: 'exists' }),
    );

    const usd = { amount: '1.00', currency: 'USD' };
    const mismatch = problem(
      await post(
        withEntries([
          { ...debit, amount: usd },
          { account_id: payableId, direction: 'credit', amount: usd },
        ]),
      ),
      422,
      'ledger.currency_mismatch',
    );
    expect(mismatch.errors).toContainEqual(expect.objectContaining({ path: '/entries/1/currency' }));

    problem(
      await post(withEntries([debit, { ...creditEntry, account: byKey('partner_payable', 'platform') }])),
      422,
      'ledger.owner_invalid',
    );
    problem(
      await post(withEntries([debit, { ...creditEntry, account: byKey('customer_escrow', 'platform') }])),
      422,
      'ledger.owner_invalid',
    );
    problem(await post(withEntries([debit])), 400, 'request.invalid');
    problem(
      await post(withEntries([debit, { ...creditEntry, account_id: payableId }])),
      422,
      'ledger.entries_must_balance',
    );
    problem(await post({ ...base, cause: { kind: 'gift', id: 'x' } }), 400, 'request.invalid');

    expect(await transactionCount()).toBe(before);
    expect(await balanceOf(payableId)).toBe('10.00');
  });

  it('applies a batch all or nothing when atomic and item by item otherwise', async () => {
    const partner = newId('ptn');
    const items = [
      credit(partner, '1.00', `http-batch:${partner}:0`),
      credit(partner, '1.001', `http-batch:${partner}:1`),
      {
        ...credit(partner, '1.00', `http-batch:${partner}:2`),
        entries: [
          credit(partner, '1.00', 'x').entries[0],
          {
            account: byKey('partner_payable', 'platform'),
            direction: 'credit',
            amount: { amount: '1.00', currency: 'EUR' },
          },
        ],
      },
      credit(partner, '2.00', `http-batch:${partner}:3`),
    ];
    const before = await transactionCount();
    const atomic = problem(
      await app.request('POST', '/v1/ledger/batches', { body: { atomic: true, transactions: items } }),
      422,
      'ledger.batch_rejected',
    );
    expect(atomic.items?.map((i) => [i.index, i.code])).toEqual([[1, 'ledger.entries_must_balance']]);
    const atomicLate = problem(
      await app.request('POST', '/v1/ledger/batches', {
        body: { atomic: true, transactions: [items[0], items[2], items[3]] },
      }),
      422,
      'ledger.batch_rejected',
    );
    expect(atomicLate.items?.map((i) => [i.index, i.code])).toEqual([[1, 'ledger.owner_invalid']]);
    expect(await transactionCount()).toBe(before);

    const perItem = expectStatus(
      await app.request<{ results: { index: number; status: string; error?: { code: string } }[] }>(
        'POST',
        '/v1/ledger/batches',
        { body: { atomic: false, transactions: items } },
      ),
      200,
    );
    expect(perItem.results.map((r) => [r.index, r.status, r.error?.code])).toEqual([
      [0, 'posted', undefined],
      [1, 'rejected', 'ledger.entries_must_balance'],
      [2, 'rejected', 'ledger.owner_invalid'],
      [3, 'posted', undefined],
    ]);
    expect(await transactionCount()).toBe(before + 2);

    const thousand = Array.from({ length: 1000 }, (_, n) =>
      credit(partner, '0.01', `http-1000:${partner}:${n}`),
    );
    const big = expectStatus(
      await app.request<{ results: { status: string }[] }>('POST', '/v1/ledger/batches', {
        body: { atomic: true, transactions: thousand },
      }),
      200,
    );
    expect(big.results.filter((r) => r.status === 'posted')).toHaveLength(1000);
    expect(await transactionCount()).toBe(before + 1002);
    problem(
      await app.request('POST', '/v1/ledger/batches', {
        body: { atomic: true, transactions: [...thousand, credit(partner, '0.01', 'one too many')] },
      }),
      400,
      'request.invalid',
    );
  });

  it('answers balances as of a past time, statements page by page, and reversals', async () => {
    const partner = newId('ptn');
    const times: string[] = [];
    const ids: string[] = [];
    for (let n = 1; n <= 3; n++) {
      app.clock.advance(3_600_000);
      times.push(app.clock.now().toISOString());
      ids.push(expectStatus(await post(credit(partner, `${n}.00`, `http-time:${partner}:${n}`)), 201).id);
    }
    const payable = (
      expectStatus(await app.request<Txn>('GET', `/v1/ledger/transactions/${ids[0]}`), 200)
        .entries[1] as Entry
    ).account_id;
    expect(await balanceOf(payable, new Date(Date.parse(times[0] as string) - 1).toISOString())).toBe('0.00');
    expect(await balanceOf(payable, times[1])).toBe('3.00');
    expect(await balanceOf(payable)).toBe('6.00');

    const page1 = expectStatus(
      await app.request<{
        data: { id: string; transaction_id: string; balance_after: { amount: string } }[];
        has_more: boolean;
      }>('GET', `/v1/ledger/accounts/${payable}/statement?limit=2`),
      200,
    );
    expect(page1.data.map((l) => l.balance_after.amount)).toEqual(['1.00', '3.00']);
    expect(page1.has_more).toBe(true);
    const page2 = expectStatus(
      await app.request<{
        data: { transaction_id: string; balance_after: { amount: string } }[];
        has_more: boolean;
      }>(
        'GET',
        `/v1/ledger/accounts/${payable}/statement?limit=2&after=${encodeURIComponent(page1.data[1]?.id as string)}`,
      ),
      200,
    );
    expect(page2.data.map((l) => [l.transaction_id, l.balance_after.amount])).toEqual([[ids[2], '6.00']]);
    expect(page2.has_more).toBe(false);
    // A cursor that is no line's id is refused as such, whatever its shape (found by the fuzz).
    for (const after of ['bsxZdGIY', `${ids[0]}.`, `${ids[0]}.99999`, `${ids[0]}.1.2`, `${ids[0]}.7`]) {
      const refused = await app.request<{ code: string }>(
        'GET',
        `/v1/ledger/accounts/${payable}/statement?after=${encodeURIComponent(after)}`,
      );
      expect({ after, status: refused.status, code: refused.body.code }).toEqual({
        after,
        status: 422,
        code: 'ledger.cursor_invalid',
      });
    }

    app.clock.advance(3_600_000);
    const reversal = expectStatus(
      await app.request<Txn>('POST', `/v1/ledger/transactions/${ids[2]}/reverse`, {
        body: { idempotency_key: `http-rev:${partner}` },
      }),
      201,
    );
    expect(reversal).toMatchObject({ replayed: false, cause: { kind: 'reversal', id: ids[2] } });
    expect(await balanceOf(payable)).toBe('3.00');
    const replay = expectStatus(
      await app.request<Txn>('POST', `/v1/ledger/transactions/${ids[2]}/reverse`, {
        body: { idempotency_key: `http-rev:${partner}` },
      }),
      201,
    );
    expect(replay).toMatchObject({ id: reversal.id, replayed: true });
    expect(await balanceOf(payable)).toBe('3.00');
    problem(
      await app.request('POST', `/v1/ledger/transactions/${newId('txn')}/reverse`, {
        body: { idempotency_key: `http-rev-missing:${partner}` },
      }),
      404,
      'ledger.transaction_not_found',
    );
  });

  it('shows a partner only its own entries of a leg release, and none of the platform’s metadata', async () => {
    const alpha = await newPartner('alpha-release');
    const bravo = await newPartner('bravo-release');
    const order = `ord-${newId('txn')}`;
    const eur = (amount: string) => ({ amount, currency: 'EUR' });
    expectStatus(
      await post({
        idempotency_key: `http-capture:${order}`,
        cause: { kind: 'adjustment', id: order },
        entries: [
          { account: byKey('provider_clearing', 'platform'), direction: 'debit', amount: eur('110.00') },
          { account: byKey('customer_escrow', order), direction: 'credit', amount: eur('110.00') },
        ],
      }),
      201,
    );
    // As a leg's release posts it: the escrow pays the partner (payable and reserve), the
    // platform's commission and its margin, with the platform's figures in the metadata.
    const metadata = {
      step: 'release',
      order_ref: order,
      gross: '10000',
      margin: '1000',
      commission: '1000',
      fee_version: 'fv_hidden',
      escrow_total: '11000',
    };
    const release = expectStatus(
      await post({
        idempotency_key: `http-release:${order}`,
        description: `Release of leg 1 of order ${order}`,
        cause: { kind: 'adjustment', id: `${order}-1` },
        metadata,
        entries: [
          { account: byKey('customer_escrow', order), direction: 'debit', amount: eur('110.00') },
          { account: byKey('partner_payable', alpha.id), direction: 'credit', amount: eur('80.00') },
          { account: byKey('partner_reserve', alpha.id), direction: 'credit', amount: eur('10.00') },
          { account: byKey('platform_commission', 'platform'), direction: 'credit', amount: eur('10.00') },
          { account: byKey('platform_margin', 'platform'), direction: 'credit', amount: eur('10.00') },
        ],
      }),
      201,
    );
    const [, payable, reserve] = release.entries as Entry[];

    const asOperator = expectStatus(
      await app.request<Txn & { metadata: Record<string, string> }>(
        'GET',
        `/v1/ledger/transactions/${release.id}`,
      ),
      200,
    );
    expect(asOperator.entries).toEqual(release.entries);
    expect(asOperator.metadata).toEqual(metadata);

    const asPartner = expectStatus(
      await app.request<Txn & { metadata: Record<string, string> }>(
        'GET',
        `/v1/ledger/transactions/${release.id}`,
        { key: alpha.key },
      ),
      200,
    );
    expect(asPartner.entries).toEqual([payable, reserve]);
    expect(asPartner.metadata).toEqual({});
    expect(asPartner).toMatchObject({ id: release.id, cause: release.cause });
    const listed = expectStatus(
      await app.request<{ data: (Txn & { metadata: Record<string, string> })[] }>(
        'GET',
        '/v1/ledger/transactions',
        { key: alpha.key },
      ),
      200,
    );
    expect(listed.data).toEqual([asPartner]);
    const byAccount = expectStatus(
      await app.request<{ data: Txn[] }>('GET', `/v1/ledger/transactions?account_id=${payable?.account_id}`, {
        key: alpha.key,
      }),
      200,
    );
    expect(byAccount.data).toEqual([asPartner]);

    problem(
      await app.request('GET', `/v1/ledger/transactions/${release.id}`, { key: bravo.key }),
      404,
      'ledger.transaction_not_found',
    );
    const bravoList = expectStatus(
      await app.request<{ data: Txn[] }>('GET', '/v1/ledger/transactions', { key: bravo.key }),
      200,
    );
    expect(bravoList.data).toEqual([]);
  });

  describe('reversals', () => {
    interface Refusal extends Problem {
      transaction_id: string;
      reversal_id: string;
    }
    const reverse = (transactionId: string, key: string) =>
      app.request<Txn>('POST', `/v1/ledger/transactions/${transactionId}/reverse`, {
        body: { idempotency_key: key },
      });
    const reversalsOf = async (transactionId: string) =>
      (
        await db
          .selectFrom('ledger_transactions')
          .select('id')
          .where('cause_kind', '=', 'reversal')
          .where('cause_id', '=', transactionId)
          .execute()
      ).map((row) => row.id);
    const clean = async () =>
      expect((await runInTransaction(db, (tx) => verifyLedger(tx))).problems).toEqual([]);

    it('reverses a transaction once: another key is 409 naming the reversal, the same key replays it', async () => {
      const partner = newId('ptn');
      const original = expectStatus(await post(credit(partner, '5.00', `http-once:${partner}`)), 201);
      const payable = original.entries[1]?.account_id as string;
      const first = expectStatus(await reverse(original.id, `http-once-rev:${partner}:1`), 201);
      expect(first.replayed).toBe(false);

      const again = problem(
        await reverse(original.id, `http-once-rev:${partner}:2`),
        409,
        'ledger.already_reversed',
      ) as Refusal;
      expect(again).toMatchObject({ transaction_id: original.id, reversal_id: first.id });
      expect(expectStatus(await reverse(original.id, `http-once-rev:${partner}:1`), 201)).toEqual({
        ...first,
        replayed: true,
      });
      // By hand, a reversal is made only by this route: no posting may pass for one.
      const byHand = await post({
        ...credit(partner, '5.00', `http-once-hand:${partner}`),
        cause: { kind: 'reversal', id: original.id },
      });
      expect(problem(byHand, 400, 'request.invalid').errors).toEqual([
        expect.objectContaining({ path: '/body/cause/kind' }),
      ]);

      expect(await reversalsOf(original.id)).toEqual([first.id]);
      expect(await balanceOf(payable)).toBe('0.00');
      await clean();
    });

    it('refuses to reverse a reversal', async () => {
      const partner = newId('ptn');
      const original = expectStatus(await post(credit(partner, '3.00', `http-final:${partner}`)), 201);
      const reversal = expectStatus(await reverse(original.id, `http-final-rev:${partner}`), 201);
      const before = await transactionCount();
      const refused = problem(
        await reverse(reversal.id, `http-final-rev-rev:${partner}`),
        422,
        'ledger.reversal_not_reversible',
      ) as Refusal;
      expect(refused.transaction_id).toBe(reversal.id);
      expect(await transactionCount()).toBe(before);
      expect(await balanceOf(original.entries[1]?.account_id as string)).toBe('0.00');
    });

    it('reverses a transaction exactly once when 10 reversals with distinct keys race', async () => {
      const partner = newId('ptn');
      const original = expectStatus(await post(credit(partner, '9.00', `http-race:${partner}`)), 201);
      // Enough on the payable for every racer, so that only the rule can refuse them.
      expectStatus(await post(credit(partner, '100.00', `http-race-more:${partner}`)), 201);
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, n) => reverse(original.id, `http-race-rev:${partner}:${n}`)),
      );
      const won = answers.filter((answer) => answer.status === 201);
      expect(won).toHaveLength(1);
      const winner = (won[0] as ApiResponse<Txn>).body.id;
      for (const answer of answers.filter((a) => a.status !== 201)) {
        expect(problem(answer, 409, 'ledger.already_reversed')).toMatchObject({ reversal_id: winner });
      }
      expect(await reversalsOf(original.id)).toEqual([winner]);
      expect(await balanceOf(original.entries[1]?.account_id as string)).toBe('100.00');
      await clean();
    });
  });

  it('shows a partner only its own accounts and transactions', async () => {
    const alpha = await newPartner('alpha');
    const bravo = await newPartner('bravo');
    const alphaTxn = expectStatus(await post(credit(alpha.id, '5.00', `http-tenant:${alpha.id}`)), 201);
    const bravoTxn = expectStatus(await post(credit(bravo.id, '7.00', `http-tenant:${bravo.id}`)), 201);
    const alphaPayable = alphaTxn.entries[1]?.account_id as string;
    const bravoPayable = bravoTxn.entries[1]?.account_id as string;

    const accounts = expectStatus(
      await app.request<{ data: { id: string; owner_id: string }[] }>('GET', '/v1/ledger/accounts', {
        key: alpha.key,
      }),
      200,
    );
    expect(accounts.data.map((a) => a.id)).toEqual([alphaPayable]);
    const own = expectStatus(
      await app.request<{ balance: { amount: string } }>('GET', `/v1/ledger/accounts/${alphaPayable}`, {
        key: alpha.key,
      }),
      200,
    );
    expect(own.balance.amount).toBe('5.00');
    const transactions = expectStatus(
      await app.request<{ data: { id: string }[] }>('GET', '/v1/ledger/transactions', { key: alpha.key }),
      200,
    );
    expect(transactions.data.map((t) => t.id)).toEqual([alphaTxn.id]);

    for (const url of [
      `/v1/ledger/accounts/${bravoPayable}`,
      `/v1/ledger/accounts/${bravoPayable}/statement`,
      `/v1/ledger/transactions/${bravoTxn.id}`,
      `/v1/ledger/transactions?account_id=${bravoPayable}`,
    ]) {
      const response = await app.request('GET', url, { key: alpha.key });
      expect(response.status, url).toBe(404);
    }
    // The platform's own accounts are the operator's business.
    const platformAccount = alphaTxn.entries[0]?.account_id as string;
    problem(
      await app.request('GET', `/v1/ledger/accounts/${platformAccount}`, { key: alpha.key }),
      404,
      'ledger.account_not_found',
    );
    // And a partner cannot post.
    const before = await transactionCount();
    problem(
      await post(credit(alpha.id, '1.00', `http-self:${alpha.id}`), alpha.key),
      403,
      'auth.role_not_allowed',
    );
    expect(await transactionCount()).toBe(before);
  });
});
