import { z } from 'zod';
import { DomainError } from '../../../kernel/errors.js';
import { ALL_OPERATOR_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { idSchema, MoneyInput, page, pageQuery, timestamp, toPage } from '../../../kernel/http/schemas.js';
import { IDEMPOTENCY_MONEY_OUT_TTL_MS } from '../../../kernel/idempotency/idempotency-store.js';
import type { Jobs } from '../../../kernel/jobs/jobs.js';
import { parseAmount, parseCurrency } from '../../../kernel/money.js';
import { CHARGEBACK_LIABILITIES, CHARGEBACK_STATUSES, PAYMENT_STATUSES } from '../domain/payment.js';
import { paymentsErrors } from '../errors.js';
import {
  RECONCILE_WINDOW_MAX_MS,
  RECONCILE_WINDOW_MS,
  RESUME_PAYMENT_JOB,
  RESUME_REFUND_JOB,
} from '../jobs.js';
import { ORDER_REF_LENGTH_MAX, type PaymentsService, REFERENCE_LENGTH_MAX } from '../service.js';
import {
  ChargebackJson,
  chargebackJson,
  PaymentDetailJson,
  PaymentJson,
  PaymentMethodInput,
  paymentDetailJson,
  paymentJson,
  ReconciliationReportJson,
  RefundJson,
  refundJson,
  reportJson,
} from './json.js';

const PAYMENTS = ['Payments'];
/** Operators read payments; a customer reads its own. */
const PAYMENT_READERS = { operator: ALL_OPERATOR_ROLES, customer: true } as const;
/** Money moves and liability decisions: the operator's finance staff and administrators. */
const FINANCE = { operator: ['admin', 'finance'] } as const;
const OPERATORS = { operator: ALL_OPERATOR_ROLES } as const;

const NewPayment = z
  .strictObject({
    order_ref: z.string().min(1).max(ORDER_REF_LENGTH_MAX).describe('The order the money is for.'),
    customer_id: idSchema('cus').optional(),
    payment_method: PaymentMethodInput,
    amount: MoneyInput,
    reference: z
      .string()
      .min(1)
      .max(REFERENCE_LENGTH_MAX)
      .optional()
      .describe(
        'Baton’s reference at the provider; the same reference never charges twice. Defaults to the payment id.',
      ),
  })
  .meta({ id: 'NewPayment' });

const Decision = z
  .strictObject({
    liability: z.enum(CHARGEBACK_LIABILITIES),
    partner_id: idSchema('ptn').optional(),
    partner_share: MoneyInput.optional().describe(
      'For a split: the partner’s part, in the chargeback’s currency.',
    ),
  })
  .meta({ id: 'ChargebackDecision' });

const NewReconciliation = z
  .strictObject({
    since: timestamp
      .optional()
      .describe(
        'Compare what changed at the provider and in Baton from this time on. Defaults to two days ago; at most 31 days ago.',
      ),
  })
  .meta({ id: 'NewReconciliation' });

/** A money input in a known currency, with a field error on the amount when it is not one. */
function amountOf(input: z.output<typeof MoneyInput>, path: string, currency?: string): bigint {
  try {
    const parsed = parseCurrency(input.currency);
    if (currency !== undefined && parsed !== currency)
      throw paymentsErrors.decisionInvalid(`${path}/currency`, `The amount must be in ${currency}.`);
    return parseAmount(input.amount, parsed);
  } catch (error) {
    if (!(error instanceof DomainError) || error.code.startsWith('payments.')) throw error;
    throw new DomainError('unprocessable', error.code, error.message, {
      errors: [{ path, rule: error.code, message: error.message }],
    });
  }
}

export function paymentsRoutes(payments: PaymentsService, deps: { jobs: Jobs }): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/payments',
      summary: 'List payments',
      description: 'Newest first. Operators see every payment; a customer sees only its own.',
      tags: PAYMENTS,
      access: PAYMENT_READERS,
      query: z.strictObject({
        ...pageQuery,
        order_ref: z.string().max(ORDER_REF_LENGTH_MAX).optional(),
        status: z.enum(PAYMENT_STATUSES).optional(),
      }),
      response: page(PaymentJson),
      handler: async (ctx, { query }) =>
        toPage(
          await payments.listPayments(ctx, {
            orderRef: query.order_ref,
            status: query.status,
            after: query.after,
            limit: query.limit,
          }),
          paymentJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/payments/:payment_id',
      summary: 'Get a payment with its provider operations',
      description:
        'With every operation at the provider (authorization, capture, refunds, chargebacks) as Baton knows it. ' +
        'Another customer’s payment is `404 payments.payment_not_found`.',
      tags: PAYMENTS,
      access: PAYMENT_READERS,
      params: z.strictObject({ payment_id: idSchema('pay') }),
      response: PaymentDetailJson,
      handler: async (ctx, { params }) =>
        paymentDetailJson(await payments.getPayment(ctx, params.payment_id), ctx.actor),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/payments',
      summary: 'Take a payment for an order',
      description:
        'Records the payment (`pending`) and charges it in the background: the provider is never called inside ' +
        'the request’s transaction. Poll the payment for `captured`, `declined` or `failed`. Needs an ' +
        '`Idempotency-Key`. The same `reference` with other content is `409 payments.reference_reused`; a ' +
        'non-positive amount `422 payments.amount_invalid`; a bad amount or currency `422 money.*`.',
      tags: PAYMENTS,
      access: FINANCE,
      idempotencyKey: 'required',
      body: NewPayment,
      status: 202,
      response: PaymentJson,
      handler: async (ctx, { body }) => {
        const currency = parseCurrency(body.amount.currency);
        const payment = await payments.recordIntent(ctx, {
          orderRef: body.order_ref,
          customerId: body.customer_id ?? null,
          paymentMethod: body.payment_method,
          amountMinor: amountOf(body.amount, '/amount'),
          currency,
          ...(body.reference !== undefined ? { reference: body.reference } : {}),
        });
        await deps.jobs.enqueue(
          ctx,
          RESUME_PAYMENT_JOB,
          { paymentId: payment.id },
          { singletonKey: payment.id },
        );
        return paymentJson(payment);
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/payments/:payment_id/refunds/:refund_id/retry',
      summary: 'Retry a refund the provider failed',
      description:
        'A refund the provider failed leaves its money owed to the customer (the ledger’s `refunds_owed` account ' +
        'of the order, and the payment’s `refunds_owed`). This records a new refund with a new reference ' +
        '(`pending`), moves the money back into refunds in transit, and sends it to the provider after the ' +
        'request commits: poll the payment for `succeeded`, or `failed` again (retry that one in turn). Needs an ' +
        '`Idempotency-Key`; audited. Errors: `404 payments.refund_not_found`, ' +
        '`409 payments.refund_not_owed` (not failed, or already retried), `409 payments.refund_exceeds_capture` ' +
        '(a chargeback took the rest of the capture since).',
      tags: PAYMENTS,
      access: FINANCE,
      audit: { action: 'payments.refund.retry', targetParam: 'refund_id' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      params: z.strictObject({ payment_id: idSchema('pay'), refund_id: idSchema('rfd') }),
      status: 202,
      response: RefundJson,
      handler: async (ctx, { params }) => {
        const refund = await payments.retryRefund(ctx, {
          paymentId: params.payment_id,
          refundId: params.refund_id,
        });
        await deps.jobs.enqueue(ctx, RESUME_REFUND_JOB, { refundId: refund.id }, { singletonKey: refund.id });
        return refundJson(refund);
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/chargebacks',
      summary: 'List chargebacks',
      description: 'Newest first; `status=open` lists those awaiting a liability decision.',
      tags: PAYMENTS,
      access: OPERATORS,
      query: z.strictObject({ ...pageQuery, status: z.enum(CHARGEBACK_STATUSES).optional() }),
      response: page(ChargebackJson),
      handler: async (ctx, { query }) =>
        toPage(
          await payments.listChargebacks(ctx, {
            status: query.status,
            after: query.after,
            limit: query.limit,
          }),
          chargebackJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/chargebacks/:chargeback_id',
      summary: 'Get a chargeback',
      description: 'Unknown ids are `404 payments.chargeback_not_found`.',
      tags: PAYMENTS,
      access: OPERATORS,
      params: z.strictObject({ chargeback_id: idSchema('cbk') }),
      response: ChargebackJson,
      handler: async (ctx, { params }) =>
        chargebackJson(await payments.getChargeback(ctx, params.chargeback_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/chargebacks/:chargeback_id/decision',
      summary: 'Decide who bears a chargeback',
      description:
        'The platform bears every chargeback until this decision. `partner` moves all of it to the partner, ' +
        '`split` the `partner_share`: taken from the partner’s payable as far as it covers, the rest as a ' +
        'receivable. Audited. Errors: `404 payments.chargeback_not_found`, `409 ' +
        'payments.chargeback_already_decided`, `422 payments.decision_invalid` (no partner, or a share not ' +
        'strictly between zero and the chargeback, or in another currency).',
      tags: PAYMENTS,
      access: FINANCE,
      audit: { action: 'payments.chargeback.decide', targetParam: 'chargeback_id' },
      idempotencyKey: 'required',
      params: z.strictObject({ chargeback_id: idSchema('cbk') }),
      body: Decision,
      response: ChargebackJson,
      handler: async (ctx, { params, body }) => {
        const chargeback = await payments.getChargeback(ctx, params.chargeback_id);
        if (body.liability === 'split' && !body.partner_share)
          throw paymentsErrors.decisionInvalid('/partner_share', 'A split names the partner’s share.');
        return chargebackJson(
          await payments.decideChargeback(ctx, params.chargeback_id, {
            liability: body.liability,
            partnerId: body.partner_id,
            partnerShareMinor:
              body.liability === 'split' && body.partner_share
                ? amountOf(body.partner_share, '/partner_share', chargeback.currency)
                : undefined,
          }),
        );
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/reconciliation/reports',
      summary: 'List reconciliation reports',
      description:
        'Newest first. A report is written by the daily reconciliation of the provider against the ledger, and by ' +
        'each one started on demand.',
      tags: PAYMENTS,
      access: FINANCE,
      query: z.strictObject(pageQuery),
      response: page(ReconciliationReportJson),
      handler: async (ctx, { query }) =>
        toPage(await payments.listReports(ctx, { after: query.after, limit: query.limit }), reportJson),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/reconciliation/reports',
      summary: 'Reconcile with the provider now',
      description:
        'Runs a reconciliation of the provider against Baton’s records and the ledger at once, as the daily job ' +
        'does, and answers its stored report: payments, refunds, chargebacks and payouts changed since `since`, ' +
        'every discrepancy with its type. It only reads from the provider; nothing is corrected. Needs an ' +
        '`Idempotency-Key` (the same key answers the same report); audited. Errors: ' +
        '`422 payments.reconciliation_window_invalid` (`since` in the future or more than 31 days ago).',
      tags: PAYMENTS,
      access: FINANCE,
      audit: { action: 'payments.reconciliation.run' },
      idempotencyKey: 'required',
      body: NewReconciliation,
      status: 201,
      response: ReconciliationReportJson,
      handler: async (ctx, { body }) => {
        const now = ctx.now.getTime();
        const since = body.since === undefined ? new Date(now - RECONCILE_WINDOW_MS) : new Date(body.since);
        if (since.getTime() > now)
          throw paymentsErrors.reconciliationWindowInvalid('A reconciliation cannot start in the future.');
        if (now - since.getTime() > RECONCILE_WINDOW_MAX_MS)
          throw paymentsErrors.reconciliationWindowInvalid(
            'A reconciliation on demand looks back at most 31 days; the daily runs cover the rest.',
          );
        return reportJson(await payments.runReconciliation(ctx, { since }));
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/reconciliation/reports/:report_id',
      summary: 'Get a reconciliation report',
      description:
        'Every discrepancy found, with the provider’s, Baton’s and the ledger’s view. Unknown ids are `404 payments.report_not_found`.',
      tags: PAYMENTS,
      access: FINANCE,
      params: z.strictObject({ report_id: idSchema('rec') }),
      response: ReconciliationReportJson,
      handler: async (ctx, { params }) => reportJson(await payments.getReport(ctx, params.report_id)),
    }),
  ];
}
