import { describe, expect, it } from 'vitest';
import { systemActor } from '../../kernel/actor.js';
import type { Problem } from '../../kernel/http/problem.js';
import type { PartnerId } from '../../kernel/ids.js';
import { type ApiResponse, createTestApp } from '../../testing/test-app.js';
import { TEST_DATABASE_KIND } from '../../testing/test-database.js';

type Money = { amount: string; currency: string; amount_minor: string };
type Version = { id: string; currency: string; effective_from: string; rules: { id: string }[] };
type Quote = {
  version_id: string;
  rule_id: string | null;
  partner_type: string;
  tier: string;
  commission: Money;
  partner_net: Money;
  breakdown: {
    percentage_part: Money;
    fixed_part: Money;
    floored: boolean;
    capped: boolean;
    limited_to_amount: boolean;
  };
};

describe(`fee schedules and quotes (${TEST_DATABASE_KIND})`, async () => {
  const app = await createTestApp();
  const fees = app.baton.services.fees;
  const db = app.baton.database.db;
  const financeKey = await app.operatorKey('finance');
  const supportKey = await app.operatorKey('support');
  const opsKey = await app.operatorKey('ops');

  function ok<T>(response: ApiResponse<unknown>, status = 200): T {
    expect(response.status, response.text).toBe(status);
    return response.body as T;
  }

  function expectProblem(response: ApiResponse<unknown>, status: number, code: string): Problem {
    expect({ status: response.status, code: (response.body as Problem).code }, response.text).toEqual({
      status,
      code,
    });
    return response.body as Problem;
  }

  for (const key of ['mill', 'dyer']) {
    ok(
      await app.request('POST', '/v1/partner-types', {
        body: { key, name: key, profile_schema: { type: 'object' } },
      }),
      201,
    );
  }
  async function apply(type: string, name: string): Promise<{ id: PartnerId; key: string }> {
    const applied = ok<{ partner: { id: PartnerId }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: { partner_type: type, name, email: `${name}@partner.test`, regions: ['eu-west'] },
      }),
      201,
    );
    return { id: applied.partner.id, key: applied.api_key.secret };
  }
  const mill = await apply('mill', 'mill-one');
  const dyer = await apply('dyer', 'dyer-one');

  const at = (offsetMs: number) => new Date(app.clock.now().getTime() + offsetMs).toISOString();
  const DAY = 24 * 60 * 60 * 1000;

  const publish = (body: unknown, key = financeKey) =>
    app.request<Version>('POST', '/v1/fee-schedule-versions', { key, body });

  const quote = (body: Record<string, unknown>, key?: string) =>
    app.request<Quote>('POST', '/v1/fees/quotes', {
      ...(key ? { key } : {}),
      body: {
        capability: 'dyeing',
        partner_id: mill.id,
        region: 'eu-west',
        amount: { amount: '100.00', currency: 'EUR' },
        ...body,
      },
    });

  // Before any version exists, a quote has no schedule to go by (checked here, as setup runs first).
  const beforeAnyVersion = await quote({});

  it('answers a quote with no schedule in force with a problem', () => {
    expectProblem(beforeAnyVersion, 422, 'fees.no_schedule_in_force');
  });

  const first = ok<Version>(
    await publish({
      currency: 'EUR',
      note: 'Launch schedule',
      rules: [
        { commission_bps: 1000 },
        { capability: 'dyeing', commission_bps: 800, fixed: '0.30', floor: '1.00', cap: '50.00' },
        { capability: 'dyeing', partner_type: 'dyer', commission_bps: 500 },
        {
          capability: 'dyeing',
          region: 'eu-west',
          customer_segment: 'business',
          commission_bps: 600,
          rounding: 'down',
        },
        { tier: 'gold', region: 'eu-west', commission_bps: 300 },
      ],
    }),
    201,
  );
  const [catchAll, dyeing, dyeingByDyer, dyeingBusiness, gold] = first.rules.map((rule) => rule.id);

  it('publishes a version in force from now, with its rules in the order given', async () => {
    expect(first).toMatchObject({ currency: 'EUR', effective_from: app.clock.now().toISOString() });
    const read = ok<Version>(
      await app.request('GET', `/v1/fee-schedule-versions/${first.id}`, { key: supportKey }),
    );
    expect(read).toEqual(first);
    const listed = ok<{ data: Version[] }>(
      await app.request('GET', '/v1/fee-schedule-versions?currency=EUR', { key: opsKey }),
    );
    expect(listed.data.map((version) => version.id)).toEqual([first.id, later.id]);
  });

  it('quotes the most specific matching rule, with the breakdown', async () => {
    const dyeingQuote = ok<Quote>(await quote({}));
    expect(dyeingQuote).toMatchObject({
      version_id: first.id,
      rule_id: dyeing,
      partner_type: 'mill',
      tier: 'standard',
      commission: { amount: '8.30', currency: 'EUR', amount_minor: '830' },
      partner_net: { amount: '91.70' },
      breakdown: {
        percentage_part: { amount: '8.00' },
        fixed_part: { amount: '0.30' },
        floored: false,
        capped: false,
        limited_to_amount: false,
      },
    });
    expect(ok<Quote>(await quote({ partner_id: dyer.id })).rule_id).toBe(dyeingByDyer);
    // Three fields beat two: capability + region + segment over capability + partner type.
    expect(ok<Quote>(await quote({ partner_id: dyer.id, customer_segment: 'business' })).rule_id).toBe(
      dyeingBusiness,
    );
    // Rounded down: 6 % of 0.99 is 0.0594.
    expect(
      ok<Quote>(await quote({ customer_segment: 'business', amount: { amount: '0.99', currency: 'EUR' } }))
        .commission.amount,
    ).toBe('0.05');
    // Two fields of lower rank (tier, region) still beat one of higher rank (capability).
    expect(ok<Quote>(await quote({ tier: 'gold' })).rule_id).toBe(gold);
    expect(ok<Quote>(await quote({ capability: 'sewing', region: null })).rule_id).toBe(catchAll);
  });

  it('applies the floor and the cap, and never charges more than the amount', async () => {
    const small = ok<Quote>(await quote({ amount: { amount: '5.00', currency: 'EUR' } }));
    expect(small.commission.amount).toBe('1.00');
    expect(small.breakdown.floored).toBe(true);
    const large = ok<Quote>(await quote({ amount: { amount: '10000.00', currency: 'EUR' } }));
    expect(large.commission.amount).toBe('50.00');
    expect(large.breakdown.capped).toBe(true);
    const tiny = ok<Quote>(await quote({ amount: { amount: '0.50', currency: 'EUR' } }));
    expect(tiny.commission.amount).toBe('0.50');
    expect(tiny.breakdown).toMatchObject({ floored: true, limited_to_amount: true });
    expect(ok<Quote>(await quote({ amount: { amount: '0', currency: 'EUR' } })).commission.amount).toBe(
      '0.00',
    );
  });

  const later = ok<Version>(
    await publish({
      currency: 'EUR',
      effective_from: at(10 * DAY),
      rules: [{ commission_bps: 2000 }],
    }),
    201,
  );

  it('keeps for an order the version in force when it was placed', async () => {
    expect(ok<Quote>(await quote({ capability: 'sewing' })).commission.amount).toBe('10.00');
    const future = ok<Quote>(await quote({ capability: 'sewing', at: at(10 * DAY) }));
    expect(future).toMatchObject({ version_id: later.id, commission: { amount: '20.00' } });
    expect(ok<Quote>(await quote({ capability: 'sewing', at: at(10 * DAY - 1) })).version_id).toBe(first.id);
    expectProblem(await quote({ at: at(-DAY) }), 422, 'fees.no_schedule_in_force');

    const ctx = { db, actor: systemActor('orders'), now: app.clock.now(), requestId: null, ip: null };
    const placedNow = await fees.versionInForce(ctx, app.clock.now(), 'EUR');
    expect(placedNow?.id).toBe(first.id);
    expect((await fees.versionInForce(ctx, new Date(at(11 * DAY)), 'EUR'))?.id).toBe(later.id);
    expect(await fees.versionInForce(ctx, app.clock.now(), 'USD')).toBeNull();

    // Once the later version is in force, an order placed before still pays by the first.
    app.clock.advance(11 * DAY);
    const later11 = { ...ctx, now: app.clock.now() };
    const kept = await fees.commission(later11, {
      versionId: first.id,
      capability: 'dyeing',
      partnerId: mill.id,
      region: 'eu-west',
      amountMinor: 10_000n,
      currency: 'EUR',
    });
    expect(kept).toMatchObject({ commissionMinor: 830n, ruleId: dyeing });
    expect(
      await fees.commission(later11, {
        versionId: (await fees.versionInForce(later11, later11.now, 'EUR'))?.id as string,
        capability: 'dyeing',
        partnerId: mill.id,
        region: 'eu-west',
        customerSegment: 'business',
        amountMinor: 10_000n,
        currency: 'EUR',
      }),
    ).toMatchObject({ commissionMinor: 2000n, ruleId: later.rules[0]?.id });
    await expect(
      fees.commission(later11, {
        versionId: first.id,
        capability: 'dyeing',
        partnerId: mill.id,
        region: null,
        amountMinor: 100n,
        currency: 'USD',
      }),
    ).rejects.toMatchObject({ code: 'fees.currency_mismatch' });
  });

  it('refuses invalid versions with a problem per field, and stores nothing', async () => {
    const before = ok<{ data: Version[] }>(await app.request('GET', '/v1/fee-schedule-versions')).data.length;
    const invalid = expectProblem(
      await publish({
        currency: 'EUR',
        effective_from: at(30 * DAY),
        rules: [
          { region: 'eu-west', commission_bps: 100 },
          { region: 'eu-west', commission_bps: 200 },
          { commission_bps: 100, floor: '5.00', cap: '1.00' },
          { capability: 'sewing', commission_bps: 100, fixed: '0.001' },
        ],
      }),
      422,
      'fees.version_invalid',
    );
    expect(invalid.errors?.map((error) => [error.path, error.rule])).toEqual([
      ['/rules/3/fixed', 'money.too_many_decimals'],
      ['/rules/1', 'ambiguous'],
      ['/rules/2/cap', 'cap_below_floor'],
    ]);
    expectProblem(
      await publish({ currency: 'EUR', effective_from: at(-1000), rules: [{ commission_bps: 1 }] }),
      422,
      'fees.effective_from_in_past',
    );
    expectProblem(
      await publish({
        currency: 'EUR',
        effective_from: later.effective_from,
        rules: [{ commission_bps: 1 }],
      }),
      422,
      'fees.effective_from_in_past',
    );
    const taken = ok<Version>(
      await publish({ currency: 'EUR', effective_from: at(40 * DAY), rules: [{ commission_bps: 1 }] }),
      201,
    );
    expectProblem(
      await publish({
        currency: 'EUR',
        effective_from: taken.effective_from,
        rules: [{ commission_bps: 2 }],
      }),
      409,
      'fees.version_exists',
    );
    expectProblem(
      await publish({ currency: 'XYZ', rules: [{ commission_bps: 1 }] }),
      400,
      'money.unknown_currency',
    );
    expectProblem(
      await publish({ currency: 'EUR', rules: [{ commission_bps: 10_001 }] }),
      400,
      'request.invalid',
    );
    expectProblem(await publish({ currency: 'EUR', rules: [] }), 400, 'request.invalid');
    const after = ok<{ data: Version[] }>(await app.request('GET', '/v1/fee-schedule-versions')).data.length;
    expect(after).toBe(before + 1);
  });

  it('answers bad quotes with problems', async () => {
    expectProblem(
      await quote({ amount: { amount: '1.001', currency: 'EUR' } }),
      400,
      'money.too_many_decimals',
    );
    expectProblem(await quote({ amount: { amount: 'ten', currency: 'EUR' } }), 400, 'money.invalid_amount');
    expectProblem(await quote({ amount: { amount: '-1.00', currency: 'EUR' } }), 400, 'fees.amount_negative');
    expectProblem(
      await quote({ amount: { amount: '1.00', currency: 'EUR' }, extra: true }),
      400,
      'request.invalid',
    );
    expectProblem(await quote({ partner_id: 'ptn_nope' }), 400, 'request.invalid');
  });

  it('lets partners quote for themselves only, and keeps schedules to operators', async () => {
    expect(ok<Quote>(await quote({}, mill.key)).version_id).toBeDefined();
    const theirs = expectProblem(
      await quote({ partner_id: dyer.id }, mill.key),
      404,
      'fees.partner_not_found',
    );
    const missing = expectProblem(
      await quote({ partner_id: 'ptn_01jz0000000000000000000000' }, mill.key),
      404,
      'fees.partner_not_found',
    );
    expect(theirs.title).toBe(missing.title);
    expectProblem(
      await app.request('GET', '/v1/fee-schedule-versions', { key: mill.key }),
      403,
      'auth.role_not_allowed',
    );
    expectProblem(
      await publish({ currency: 'EUR', rules: [{ commission_bps: 1 }] }, opsKey),
      403,
      'auth.role_not_allowed',
    );
    expectProblem(
      await publish({ currency: 'EUR', rules: [{ commission_bps: 1 }] }, supportKey),
      403,
      'auth.role_not_allowed',
    );
  });
});
