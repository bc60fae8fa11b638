import { expect } from 'vitest';
import { systemActor } from '../kernel/actor.js';
import type { Context } from '../kernel/context.js';
import { runInTransaction } from '../kernel/database/transaction.js';
import type { Problem } from '../kernel/http/problem.js';
import { verifyLedger } from '../modules/ledger/index.js';
import { RESUME_PAYMENT_JOB } from '../modules/payments/index.js';
import { PROVIDER_REFUND_JOB } from '../workflows/settlement-routes.js';
import { type ApiResponse, createTestApp, type TestApp } from './test-app.js';

/*
 * A small ecosystem for fulfilment tests, built through the HTTP API: partners with offers for
 * the steps of three example offerings (a custom garment run, a meal delivery, a trip), a fee
 * schedule, and customers.
 */

export const HOUR_MS = 60 * 60 * 1000;
export const DAY_MS = 24 * HOUR_MS;
export const REGION = 'eu-west';

export interface Money {
  amount: string;
  currency: string;
  amount_minor: string;
}

export interface QuoteBody {
  id: string;
  total: Money;
  cost: Money | null;
  margin: Money | null;
  commission: Money | null;
  platform_revenue: Money | null;
  expected_finish: string;
  valid_until: string;
  status: string;
  legs: {
    step: string;
    partner_id: string;
    offer_id: string;
    quantity: number;
    unit_price: Money | null;
    price: Money | null;
    margin: Money | null;
    lead_time_hours: number;
    earliest_start: string;
    earliest_finish: string;
    latest_start: string;
    due_by: string;
    why: { rank: number; score: number; criteria: unknown[] };
  }[];
}

export interface OrderBody {
  id: string;
  status: string;
  total: Money;
  refunded: Money;
  payment_id: string | null;
  failure_code: string | null;
  failure_detail: string | null;
  legs: {
    step: string;
    status: string;
    partner_id: string;
    price: Money | null;
    margin: Money | null;
    due_by: string;
    late: boolean;
    work_order_id: string | null;
    work_order_status: string | null;
    attempts: number;
    replans: number;
  }[];
}

export interface WorkOrderBody {
  id: string;
  order_id: string;
  step: string;
  attempt: number;
  partner_id: string;
  status: string;
  late: boolean;
  accept_by: string;
  due_by: string;
  confirm_by: string | null;
}

export interface Partner {
  readonly id: string;
  readonly key: string;
}

export interface OfferSpec {
  readonly price?: string;
  readonly leadTimeHours?: number;
  readonly capacity?: number;
  readonly attributes?: Record<string, unknown>;
}

export type Fixture = Awaited<ReturnType<typeof createFulfilmentFixture>>;

export async function createFulfilmentFixture(options: { poolSize?: number } = {}) {
  const app: TestApp = await createTestApp({
    config: { BATON_PUBLIC_RATE_LIMIT_PER_HOUR: '100000', BATON_LOG_LEVEL: 'error' },
    ...(options.poolSize ? { poolSize: options.poolSize } : {}),
  });
  const db = app.baton.database.db;
  const { fulfilment, matching, ledger } = app.baton.services;
  let sequence = 0;

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

  const inHours = (hours: number) => new Date(app.clock.now().getTime() + hours * HOUR_MS).toISOString();

  ok(
    await app.request('POST', '/v1/partner-types', {
      body: { key: 'maker', name: 'Maker', profile_schema: { type: 'object' } },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/certification-programs', {
      body: {
        key: 'oeko-tex',
        name: 'OEKO-TEX',
        evidence: [{ key: 'licence', description: 'The licence number' }],
        validity_days: 365,
      },
    }),
    201,
  );
  ok(
    await app.request('POST', '/v1/fee-schedule-versions', {
      body: { currency: 'EUR', note: 'Launch', rules: [{ commission_bps: 1000 }] },
    }),
    201,
  );

  const capabilities = new Set<string>();
  async function capability(key: string, required: string[] = []): Promise<void> {
    if (capabilities.has(key)) return;
    ok(
      await app.request('POST', '/v1/capabilities', {
        body: {
          key,
          name: `Capability ${key}`,
          unit: 'piece',
          attribute_schema: {
            type: 'object',
            properties: { color: { type: 'string', enum: ['red', 'blue'] } },
            additionalProperties: false,
          },
          required_certifications: required,
        },
      }),
      201,
    );
    capabilities.add(key);
  }

  /** A new active partner with one active offer for `capabilityKey`. */
  async function partnerOffering(
    capabilityKey: string,
    spec: OfferSpec = {},
  ): Promise<Partner & { offerId: string }> {
    const n = ++sequence;
    const applied = ok<{ partner: { id: string }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/partner-applications', {
        key: null,
        body: {
          partner_type: 'maker',
          name: `${capabilityKey} maker ${n}`,
          email: `maker-${n}@example.test`,
          regions: [REGION],
        },
      }),
      201,
    );
    const partner = { id: applied.partner.id, key: applied.api_key.secret };
    for (const to of ['under_review', 'active']) {
      ok(
        await app.request('POST', `/v1/partners/${partner.id}/transitions`, {
          body: { to, reason: `Moved to ${to} by a test.` },
        }),
      );
    }
    if (capabilityKey === 'dyeing') {
      const certification = ok<{ id: string }>(
        await app.request('POST', `/v1/partners/${partner.id}/certifications`, {
          key: partner.key,
          body: { program: 'oeko-tex', evidence: { licence: `L-${n}` } },
        }),
        201,
      );
      ok(await app.request('POST', `/v1/certifications/${certification.id}/grant`, { body: {} }));
    }
    const offer = ok<{ id: string }>(
      await app.request('POST', `/v1/partners/${partner.id}/offers`, {
        key: partner.key,
        body: {
          capability: capabilityKey,
          attributes: spec.attributes ?? { color: 'red' },
          unit_price: { amount: spec.price ?? '10.00', currency: 'EUR' },
          min_quantity: 1,
          max_quantity: 1000,
          lead_time_hours: spec.leadTimeHours ?? 24,
          regions: [REGION],
          capacity_per_period: spec.capacity ?? 10_000,
          capacity_period: 'week',
          status: 'active',
        },
      }),
      201,
    );
    return { ...partner, offerId: offer.id };
  }

  /** Publishes version 1 of a new offering, or with `nextVersion` the next version of one. */
  async function publishOffering(
    key: string,
    definition: Record<string, unknown>,
    { nextVersion = false } = {},
  ): Promise<void> {
    ok(
      await app.request('POST', nextVersion ? `/v1/offerings/${key}/versions` : '/v1/offerings', {
        body: {
          ...(nextVersion ? {} : { key }),
          unit: 'unit',
          description: '',
          currency: 'EUR',
          regions: [REGION],
          quantity_min: 1,
          quantity_max: 1000,
          quote_validity_minutes: 30,
          acceptance_window_minutes: 60,
          auto_confirm_hours: 72,
          ...definition,
        },
      }),
      201,
    );
  }

  async function customer(): Promise<{ id: string; key: string }> {
    const n = ++sequence;
    const signed = ok<{ customer: { id: string }; api_key: { secret: string } }>(
      await app.request('POST', '/v1/customer-signups', {
        key: null,
        body: {
          kind: 'consumer',
          name: `Customer ${n}`,
          email: `customer-${n}@example.test`,
          region: REGION,
        },
      }),
      201,
    );
    return { id: signed.customer.id, key: signed.api_key.secret };
  }

  const system = (): Context => ({
    db,
    actor: systemActor('test'),
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  return {
    app,
    db,
    ok,
    expectProblem,
    inHours,
    capability,
    partnerOffering,
    publishOffering,
    customer,

    /** Lets the matcher's index catch up with what was just written. */
    sync: () => matching.sync(),

    async quote(key: string, body: Record<string, unknown>) {
      await matching.sync();
      return app.request<QuoteBody>('POST', '/v1/quotes', { key, body: { region: REGION, ...body } });
    },

    async order(key: string, quoteId: string, paymentMethod = 'pm_card_ok') {
      return app.request<OrderBody>('POST', '/v1/orders', {
        key,
        body: { quote_id: quoteId, payment_method: paymentMethod },
        headers: { 'idempotency-key': `order-${quoteId}-${++sequence}` },
      });
    },

    async readOrder(key: string, id: string) {
      return ok<OrderBody>(await app.request('GET', `/v1/orders/${id}`, { key }));
    },

    /** Works the queued payment charges and provider refunds, as the job workers would. */
    async runJobs() {
      await app.baton.jobs.runQueued(RESUME_PAYMENT_JOB);
      await app.baton.jobs.runQueued(PROVIDER_REFUND_JOB);
      await matching.sync();
    },

    async act(partner: Partner, workOrderId: string, action: string, body: Record<string, unknown> = {}) {
      await matching.sync();
      return app.request<WorkOrderBody>('POST', `/v1/work-orders/${workOrderId}/${action}`, {
        key: partner.key,
        body,
      });
    },

    async judge(key: string, orderId: string, step: string, action: 'confirm' | 'reject', reason?: string) {
      return app.request<OrderBody>('POST', `/v1/orders/${orderId}/legs/${step}/${action}`, {
        key,
        body: reason ? { reason } : {},
        headers: { 'idempotency-key': `judge-${orderId}-${step}-${++sequence}` },
      });
    },

    /** Gives back the capacity of holds that ran out, as the catalog's minute job does. */
    async expireHolds() {
      await runInTransaction(db, (tx) => app.baton.services.catalog.expireHolds({ ...system(), db: tx }));
      await matching.sync();
    },

    async sweep() {
      await matching.sync();
      return fulfilment.sweep(db, app.clock.now());
    },

    advance(ms: number) {
      app.clock.advance(ms);
    },

    async balance(purpose: string, ownerId: string): Promise<bigint> {
      try {
        const found = await ledger.balance(system(), {
          purpose: purpose as never,
          ownerId,
          currency: 'EUR',
        });
        return found.balanceMinor;
      } catch {
        return 0n;
      }
    },

    /** The books balance, and nothing is left in the escrow of a finished order. */
    async expectBooksClean(orderIds: readonly string[]) {
      const report = await verifyLedger(db);
      expect(report.problems).toEqual([]);
      for (const id of orderIds) {
        const order = await fulfilment.getOrder(system(), id);
        expect(['completed', 'failed', 'cancelled']).toContain(order.order.status);
        expect(await this.balance('customer_escrow', id)).toBe(0n);
      }
    },
  };
}
