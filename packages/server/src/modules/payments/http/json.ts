import { z } from 'zod';
import type { Actor } from '../../../kernel/actor.js';
import { containsCardNumber } from '../../../kernel/card-numbers.js';
import { iso, isoOrNull, MoneyJson, moneyJson, timestamp } from '../../../kernel/http/schemas.js';
import {
  CHARGEBACK_LIABILITIES,
  CHARGEBACK_STATUSES,
  PAYMENT_STATUSES,
  REFUND_STATUSES,
} from '../domain/payment.js';
import { DISCREPANCY_TYPES } from '../domain/reconciliation.js';
import type { PaymentDetail } from '../service.js';
import type {
  Chargeback,
  Payment,
  PaymentOperation,
  ReconciliationReport,
  Refund,
} from '../store/payments-store.js';

/** A payment method as requests name it: the provider's token, never the card's number. */
export const PaymentMethodInput = z
  .string()
  .min(1)
  .max(200)
  // Requests are checked for card numbers everywhere (see `refusedText`); this says so here too.
  .refine((value) => !containsCardNumber(value), {
    message: 'is a card number: send the payment provider’s token for the card, never its number',
  })
  .describe('The provider’s token for the payment method. A card number is refused.');

export const PaymentJson = z
  .object({
    id: z.string(),
    reference: z.string().describe('Baton’s reference for the charge at the provider.'),
    order_ref: z.string(),
    customer_id: z.string().nullable(),
    amount: MoneyJson,
    status: z.enum(PAYMENT_STATUSES),
    failure_code: z.string().nullable().describe('The provider’s reason for a decline or failure.'),
    captured: MoneyJson,
    refunded: MoneyJson.describe('Refunded or being refunded.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Payment' });

export const paymentJson = (p: Payment): z.input<typeof PaymentJson> => ({
  id: p.id,
  reference: p.reference,
  order_ref: p.orderRef,
  customer_id: p.customerId,
  amount: moneyJson(p.amountMinor, p.currency),
  status: p.status,
  failure_code: p.failureCode,
  captured: moneyJson(p.capturedMinor, p.currency),
  refunded: moneyJson(p.refundedMinor, p.currency),
  created_at: iso(p.createdAt),
  updated_at: iso(p.updatedAt),
});

export const PaymentOperationJson = z
  .object({
    reference: z.string(),
    kind: z.enum(['authorization', 'capture', 'refund', 'payout', 'chargeback']),
    status: z.enum(['requested', 'unknown', 'pending', 'succeeded', 'failed']),
    amount: MoneyJson,
    provider_id: z.string().nullable(),
    parent_reference: z.string().nullable(),
    failure_code: z.string().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'PaymentOperation' });

export const operationJson = (o: PaymentOperation): z.input<typeof PaymentOperationJson> => ({
  reference: o.reference,
  kind: o.kind,
  status: o.status,
  amount: moneyJson(o.amountMinor, o.currency),
  provider_id: o.providerId,
  parent_reference: o.parentReference,
  failure_code: o.failureCode,
  created_at: iso(o.createdAt),
  updated_at: iso(o.updatedAt),
});

export const RefundJson = z
  .object({
    id: z.string(),
    payment_id: z.string(),
    reference: z.string(),
    amount: MoneyJson,
    status: z.enum(REFUND_STATUSES),
    failure_code: z.string().nullable(),
    retry_of: z.string().nullable().describe('The failed refund this one retries.'),
    retried_by: z
      .string()
      .nullable()
      .describe(
        'The refund that retries this failed one; a failed refund without one is owed to the customer.',
      ),
    created_at: timestamp,
  })
  .meta({ id: 'PaymentRefund' });

export const refundJson = (r: Refund): z.input<typeof RefundJson> => ({
  id: r.id,
  payment_id: r.paymentId,
  reference: r.reference,
  amount: moneyJson(r.amountMinor, r.currency),
  status: r.status,
  failure_code: r.failureCode,
  retry_of: r.retryOf,
  retried_by: r.retriedBy,
  created_at: iso(r.createdAt),
});

export const ChargebackJson = z
  .object({
    id: z.string(),
    payment_id: z.string(),
    reference: z.string(),
    order_ref: z.string(),
    amount: MoneyJson,
    status: z.enum(CHARGEBACK_STATUSES),
    liability: z
      .enum(CHARGEBACK_LIABILITIES)
      .nullable()
      .describe(
        'Who bears it, once decided; null before, and always for the customer, whose business it is not.',
      ),
    partner_id: z.string().nullable().describe('The partner that bears (part of) it; null for the customer.'),
    partner_share: MoneyJson.nullable().describe('What the partner bears; null for the customer.'),
    decided_at: timestamp.nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'Chargeback' });

export const chargebackJson = (c: Chargeback): z.input<typeof ChargebackJson> => ({
  id: c.id,
  payment_id: c.paymentId,
  reference: c.reference,
  order_ref: c.orderRef,
  amount: moneyJson(c.amountMinor, c.currency),
  status: c.status,
  liability: c.liability,
  partner_id: c.partnerId,
  partner_share: c.partnerShareMinor === null ? null : moneyJson(c.partnerShareMinor, c.currency),
  decided_at: isoOrNull(c.decidedAt),
  created_at: iso(c.createdAt),
});

export const PaymentDetailJson = PaymentJson.extend({
  operations: z.array(PaymentOperationJson),
  refunds: z.array(RefundJson),
  chargebacks: z.array(ChargebackJson),
  refunds_owed: MoneyJson.describe(
    'Refunds the provider failed that nobody has retried yet: money still owed to the customer.',
  ),
}).meta({ id: 'PaymentDetail' });

/** A payment as `viewer` may see it: a customer does not see who bears its chargebacks. */
export const paymentDetailJson = (d: PaymentDetail, viewer: Actor): z.input<typeof PaymentDetailJson> => ({
  ...paymentJson(d.payment),
  operations: d.operations.map(operationJson),
  refunds: d.refunds.map(refundJson),
  chargebacks: d.chargebacks.map((chargeback) =>
    viewer.kind === 'customer'
      ? { ...chargebackJson(chargeback), liability: null, partner_id: null, partner_share: null }
      : chargebackJson(chargeback),
  ),
  refunds_owed: moneyJson(d.refundsOwedMinor, d.payment.currency),
});

export const DiscrepancyJson = z.object({
  type: z.enum(DISCREPANCY_TYPES),
  reference: z.string(),
  kind: z.string(),
  provider_status: z.string().nullable(),
  baton_status: z.string().nullable(),
  provider_amount_minor: z.string().nullable(),
  baton_amount_minor: z.string().nullable(),
  ledger_amount_minor: z.string().nullable(),
  detail: z.string(),
});

export const ReconciliationReportJson = z
  .object({
    id: z.string(),
    since: timestamp,
    ran_at: timestamp,
    operations_checked: z.number().int(),
    discrepancy_count: z.number().int(),
    discrepancies: z.array(DiscrepancyJson),
  })
  .meta({ id: 'ReconciliationReport' });

export const reportJson = (r: ReconciliationReport): z.input<typeof ReconciliationReportJson> => ({
  id: r.id,
  since: iso(r.since),
  ran_at: iso(r.ranAt),
  operations_checked: r.operationsChecked,
  discrepancy_count: r.discrepancies.length,
  discrepancies: [...r.discrepancies],
});
