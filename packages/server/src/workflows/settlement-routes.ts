import { z } from 'zod';
import { recordAudit } from '../kernel/audit/audit-log.js';
import { conflict, unprocessable } from '../kernel/errors.js';
import { defineRoute, type Route } from '../kernel/http/route.js';
import { idSchema, MoneyInput, MoneyJson, moneyJson } from '../kernel/http/schemas.js';
import { IDEMPOTENCY_MONEY_OUT_TTL_MS } from '../kernel/idempotency/idempotency-store.js';
import { type Currency, parseAmount, parseCurrency } from '../kernel/money.js';
import { TransactionJson, transactionJson } from '../modules/ledger/index.js';
import { refundOrder, releaseLeg, type SettlementDeps } from './settlement.js';

const SETTLEMENTS = ['Settlements'];
/** Money moves by hand: the operator's finance staff and administrators. */
const MOVERS = { operator: ['admin', 'finance'] } as const;
const reference = z.string().min(1).max(100);

function amountOf(
  input: z.output<typeof MoneyInput>,
  currency?: Currency,
): { amountMinor: bigint; currency: Currency } {
  const parsed = parseCurrency(input.currency);
  if (currency !== undefined && parsed !== currency) {
    throw unprocessable(
      'settlement.currency_mismatch',
      `The margin is in ${parsed}; the leg is in ${currency}.`,
    );
  }
  return { amountMinor: parseAmount(input.amount, parsed), currency: parsed };
}

type RouteContext = Parameters<Route['handler']>[0];

/**
 * The order-money steps as operator endpoints: releasing a leg and refunding. Orders call the
 * same workflows; these endpoints serve integrations that keep their orders elsewhere. An order
 * Baton keeps is refused: moving its money here would leave the order (its legs, what it has
 * refunded, a subsidy's share) behind its books; its own endpoints move it.
 */
export function settlementRoutes(
  deps: SettlementDeps & {
    afterRefund?: (
      ctx: RouteContext,
      refund: { paymentId: string; refundRef: string; amountMinor: bigint },
    ) => Promise<void>;
    /** Whether `orderRef` names an order Baton keeps. */
    keepsOrder?: (ctx: RouteContext, orderRef: string) => Promise<boolean>;
    /** Whether `legRef` names a leg (a work order) of an order Baton keeps. */
    keepsLeg?: (ctx: RouteContext, legRef: string) => Promise<boolean>;
    /** The order a payment was taken for; throws when there is no such payment. */
    paymentOrder?: (ctx: RouteContext, paymentId: string) => Promise<string>;
  },
): Route[] {
  const refuseKeptOrder = async (
    ctx: RouteContext,
    refs: { orderRef: string; legRefs: readonly string[] },
    instead: string,
  ) => {
    if (deps.keepsOrder && (await deps.keepsOrder(ctx, refs.orderRef))) {
      throw conflict(
        'settlement.order_kept_by_baton',
        `Order ${refs.orderRef} is one of Baton's own: ${instead}, so that the order keeps up with its money.`,
      );
    }
    for (const legRef of refs.legRefs) {
      if (deps.keepsLeg && (await deps.keepsLeg(ctx, legRef))) {
        throw conflict(
          'settlement.order_kept_by_baton',
          `Leg ${legRef} is a work order of one of Baton's own orders, whose legs move their money through the order's endpoints.`,
          { leg_ref: legRef },
        );
      }
    }
  };
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/settlements/releases',
      summary: 'Release a leg to its partner',
      description:
        'Moves the leg’s price from the order’s escrow: less the commission of the fee schedule version to the ' +
        'partner’s payable, the commission and the margin to the platform; a subsidy programme covering the partner ' +
        'pays (part of) the commission from its budget. Releasing a leg again returns the first release. ' +
        'Errors: `ledger.insufficient_funds` (escrow short), `settlement.amount_invalid`, `fees.*` for an unknown version, ' +
        '`409 settlement.order_kept_by_baton` for an order Baton keeps, or a `leg_ref` that is one of its work orders ' +
        '(its legs are released when confirmed), `409 settlement.leg_of_another_order` for a leg already released for ' +
        'another order.',
      tags: SETTLEMENTS,
      access: MOVERS,
      audit: { action: 'settlement.leg.release' },
      idempotencyKey: 'required',
      body: z.strictObject({
        order_ref: reference,
        leg_ref: reference,
        partner_id: idSchema('ptn'),
        capability: z.string().min(1).max(60),
        region: z.string().min(1).max(64),
        customer_segment: z.string().min(1).max(64).optional(),
        gross: MoneyInput,
        margin: MoneyInput.optional(),
        fee_version_id: z.string().min(1).max(64).nullable().default(null),
      }),
      status: 201,
      response: z.object({
        transaction: TransactionJson,
        commission: MoneyJson,
        subsidy: MoneyJson,
        partner_net: MoneyJson,
      }),
      handler: async (ctx, { body }) => {
        await refuseKeptOrder(
          ctx,
          { orderRef: body.order_ref, legRefs: [body.leg_ref] },
          'its legs are released when they are confirmed',
        );
        const gross = amountOf(body.gross);
        const margin = body.margin ? amountOf(body.margin, gross.currency) : { amountMinor: 0n };
        const leg = await releaseLeg(ctx, deps, {
          orderRef: body.order_ref,
          legRef: body.leg_ref,
          partnerId: body.partner_id,
          capability: body.capability,
          region: body.region,
          ...(body.customer_segment !== undefined ? { customerSegment: body.customer_segment } : {}),
          grossMinor: gross.amountMinor,
          marginMinor: margin.amountMinor,
          currency: gross.currency,
          feeVersionId: body.fee_version_id,
        });
        await recordAudit(ctx, {
          action: 'settlement.leg.release',
          targetId: leg.transaction.id,
          outcome: 'succeeded',
        });
        return {
          transaction: transactionJson(leg.transaction),
          commission: moneyJson(leg.commissionMinor, leg.currency),
          subsidy: moneyJson(leg.subsidyMinor, leg.currency),
          partner_net: moneyJson(leg.grossMinor - leg.commissionMinor + leg.subsidyMinor, leg.currency),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/settlements/refunds',
      summary: 'Refund (part of) an order',
      description:
        'From the order’s escrow while the money is there, otherwise from its released legs in proportion: each ' +
        'leg’s partner share, commission and margin are reversed by largest remainder, the partner’s part from its ' +
        'payable or, when that is short, as a debt on its receivable. With `leg_ref`, only that partner’s part. ' +
        'The money waits in refunds in transit until the provider has paid the customer back (when `payment_id` is ' +
        'given, the provider refund is sent after this transaction commits). The same `refund_ref` again returns the ' +
        'same refund. A refund beyond what the order’s captured payments have left after chargebacks is refused ' +
        'before anything moves. Errors: `422 settlement.refund_exceeds_order`, `422 settlement.refund_exceeds_leg`, ' +
        '`409 settlement.refund_exceeds_after_chargebacks`, `422 settlement.amount_invalid`, ' +
        '`409 settlement.order_kept_by_baton` for an order Baton keeps, or a leg that is one of its work orders: refund ' +
        'it with `POST /v1/orders/{order_id}/refunds`; `409 settlement.leg_of_another_order` for a leg released for ' +
        'another order; `404 payments.payment_not_found`, and `422 settlement.payment_not_of_order` for a ' +
        '`payment_id` taken for another order.',
      tags: SETTLEMENTS,
      access: MOVERS,
      audit: { action: 'settlement.refund' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      body: z.strictObject({
        order_ref: reference,
        refund_ref: reference,
        amount: MoneyInput,
        released_leg_refs: z.array(reference).max(100).default([]),
        leg_ref: reference.optional(),
        payment_id: z.string().min(1).max(64).optional(),
      }),
      status: 201,
      response: z.object({
        amount: MoneyJson,
        from_escrow: MoneyJson,
        from_legs: z.array(z.object({ leg_ref: z.string(), amount: MoneyJson })),
        transactions: z.array(TransactionJson),
      }),
      handler: async (ctx, { body }) => {
        await refuseKeptOrder(
          ctx,
          {
            orderRef: body.order_ref,
            legRefs: [...body.released_leg_refs, ...(body.leg_ref !== undefined ? [body.leg_ref] : [])],
          },
          'refund it with POST /v1/orders/{order_id}/refunds',
        );
        if (body.payment_id !== undefined && deps.paymentOrder) {
          const paidFor = await deps.paymentOrder(ctx, body.payment_id);
          if (paidFor !== body.order_ref)
            throw unprocessable(
              'settlement.payment_not_of_order',
              `Payment ${body.payment_id} was taken for another order than ${body.order_ref}; the customer is paid back through the order's own payment.`,
            );
        }
        const amount = amountOf(body.amount);
        const refund = await refundOrder(ctx, deps, {
          orderRef: body.order_ref,
          refundRef: body.refund_ref,
          amountMinor: amount.amountMinor,
          currency: amount.currency,
          releasedLegRefs: body.released_leg_refs,
          ...(body.leg_ref !== undefined ? { legRef: body.leg_ref } : {}),
        });
        await recordAudit(ctx, {
          action: 'settlement.refund',
          targetId: body.order_ref,
          outcome: 'succeeded',
          details: { refund_ref: body.refund_ref, amount: amount.amountMinor.toString() },
        });
        if (body.payment_id !== undefined && deps.afterRefund) {
          await deps.afterRefund(ctx, {
            paymentId: body.payment_id,
            refundRef: body.refund_ref,
            amountMinor: refund.amountMinor,
          });
        }
        return {
          amount: moneyJson(refund.amountMinor, amount.currency),
          from_escrow: moneyJson(refund.fromEscrowMinor, amount.currency),
          from_legs: refund.fromLegs.map((leg) => ({
            leg_ref: leg.legRef,
            amount: moneyJson(leg.amountMinor, amount.currency),
          })),
          transactions: refund.transactions.map(transactionJson),
        };
      },
    }),
  ];
}

/** Sends a refund to the provider once the refund's ledger transaction has committed. */
export const PROVIDER_REFUND_JOB = 'settlement.send-provider-refund';

export interface ProviderRefundJob {
  readonly paymentId: string;
  readonly reference: string;
  readonly amountMinor: string;
}
