import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { baton, serve, stop } from './testing/baton-process.js';

/*
 * `baton payouts run` as an operator runs it: the built program in its own process, against a
 * database a running server prepared through the API.
 */

describe.runIf(process.env.BATON_TEST_DATABASE !== 'postgres')('baton payouts run', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pays the manual partners it is asked to, prints a table, and pays nothing twice', {
    timeout: 180_000,
  }, async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'baton-payouts-'));
    const dataDir = path.join(dir, 'data');
    const server = await serve(['--data-dir', dataDir]);
    let partnerId = '';
    try {
      const call = async (
        method: string,
        url: string,
        body: unknown,
        headers: Record<string, string> = {},
      ) => {
        const response = await fetch(`${server.url}${url}`, {
          method,
          headers: {
            authorization: `Bearer ${server.secret}`,
            'content-type': 'application/json',
            ...headers,
          },
          body: JSON.stringify(body),
        });
        const json = (await response.json()) as Record<string, unknown>;
        expect(response.status, JSON.stringify(json)).toBeLessThan(300);
        return json;
      };
      await call('POST', '/v1/partner-types', {
        key: 'supplier',
        name: 'Supplier',
        profile_schema: { type: 'object' },
      });
      const applied = (await call('POST', '/v1/partner-applications', {
        partner_type: 'supplier',
        name: 'Acme',
        email: 'acme@partner.test',
        regions: ['eu-west'],
      })) as { partner: { id: string } };
      partnerId = applied.partner.id;
      await call('PUT', `/v1/partners/${partnerId}/payout-settings`, {
        schedule: 'manual',
        minimum: { amount: '5.00', currency: 'EUR' },
        destination: 'ba_ok',
        reserve_bps: 0,
        reserve_days: 0,
      });
      await call('POST', '/v1/ledger/transactions', {
        idempotency_key: 'cli-earning',
        cause: { kind: 'adjustment', id: 'cli-earning' },
        entries: [
          {
            account: { purpose: 'operator_adjustments', owner_id: 'platform' },
            direction: 'debit',
            amount: { amount: '25.00', currency: 'EUR' },
          },
          {
            account: { purpose: 'partner_payable', owner_id: partnerId },
            direction: 'credit',
            amount: { amount: '25.00', currency: 'EUR' },
          },
        ],
      });
    } finally {
      await stop(server.child);
    }

    // Without --all-manual a manual partner is not due.
    expect((await baton('payouts', 'run', '--data-dir', dataDir)).stdout).toContain(': 0 payouts.');

    const paid = await baton('payouts', 'run', '--all-manual', '--data-dir', dataDir);
    expect(paid.stdout).toMatch(/PAYOUT\s+PARTNER\s+AMOUNT\s+CURRENCY\s+STATUS/);
    expect(paid.stdout).toMatch(new RegExp(`po_\\S+\\s+${partnerId}\\s+25\\.00\\s+EUR\\s+sent`));

    const again = await baton('payouts', 'run', '--partner', partnerId, '--data-dir', dataDir);
    expect(again.stdout).toContain(': 0 payouts.');
    expect(again.stdout).toContain(`${partnerId}  below_minimum`);
  });

  it('refuses a malformed partner id with a message that names it', async () => {
    await expect(baton('payouts', 'run', '--partner', 'acme')).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('Not a partner id'),
    });
  });
});
