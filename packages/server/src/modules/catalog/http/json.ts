import { z } from 'zod';
import type { Actor } from '../../../kernel/actor.js';
import { FieldErrorJson } from '../../../kernel/http/problem.js';
import { iso, isoOrNull, timestamp } from '../../../kernel/http/schemas.js';
import { formatAmount } from '../../../kernel/money.js';
import { CAPACITY_PERIODS, RESERVATION_STATUSES } from '../domain/capacity.js';
import { OFFER_STATUSES } from '../domain/offer.js';
import type { Offer, Reservation } from '../store/catalog-store.js';

export const PriceJson = z.object({
  amount: z.string().describe('A decimal string with the currency\'s decimal places, such as "12.50".'),
  currency: z.string().describe('An ISO 4217 code.'),
});

export const OfferJson = z
  .object({
    id: z.string(),
    object: z.literal('offer'),
    partner_id: z.string(),
    capability: z.string(),
    capability_version: z
      .number()
      .int()
      .describe('The capability version the offer was last checked against.'),
    external_ref: z.string().nullable().describe("The partner's own reference; bulk imports update by it."),
    attributes: z.record(z.string(), z.unknown()),
    unit_price: PriceJson.nullable().describe(
      'Null for customers: a partner’s price is what the operator pays it, and customers see prices only in what ' +
        'they buy (quotes and orders).',
    ),
    min_quantity: z.number().int(),
    max_quantity: z.number().int(),
    lead_time_hours: z.number().int(),
    regions: z.array(z.string()),
    capacity_per_period: z.number().int(),
    capacity_period: z.enum(CAPACITY_PERIODS),
    status: z.enum(OFFER_STATUSES),
    compliance_errors: z
      .array(FieldErrorJson)
      .describe('Why a `non_compliant` offer does not conform to the current capability version.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Offer' });

export const ReservationJson = z
  .object({
    id: z.string(),
    object: z.literal('reservation'),
    offer_id: z.string(),
    partner_id: z.string(),
    period_start: timestamp,
    quantity: z.number().int(),
    status: z.enum(RESERVATION_STATUSES),
    expires_at: timestamp.nullable().describe('When a hold expires by itself; null once confirmed.'),
    reference: z.string().nullable(),
    created_at: timestamp,
  })
  .meta({ id: 'Reservation' });

/** Whether a reader sees partners' prices: everyone but customers (see `OfferJson.unit_price`). */
export const seesPartnerPrices = (reader: Actor): boolean => reader.kind !== 'customer';

/**
 * An offer in the API's form, as `reader` may see it (without the price for a customer); also
 * the `offer` of the offer events, which only its partner and operators read.
 */
export const offerJson = (offer: Offer, reader: Actor | null = null): z.input<typeof OfferJson> => ({
  id: offer.id,
  object: 'offer',
  partner_id: offer.partnerId,
  capability: offer.capabilityKey,
  capability_version: offer.capabilityVersion,
  external_ref: offer.externalRef,
  attributes: offer.attributes,
  unit_price:
    reader && !seesPartnerPrices(reader)
      ? null
      : {
          amount: formatAmount(offer.unitPrice.amountMinor, offer.unitPrice.currency),
          currency: offer.unitPrice.currency,
        },
  // Quantities are bounded by QUANTITY_MAX, so they are exact as JSON numbers.
  min_quantity: Number(offer.minQuantity),
  max_quantity: Number(offer.maxQuantity),
  lead_time_hours: offer.leadTimeHours,
  regions: [...offer.regions],
  capacity_per_period: Number(offer.capacityPerPeriod),
  capacity_period: offer.capacityPeriod,
  status: offer.status,
  compliance_errors: offer.complianceErrors.map((error) => ({ ...error })),
  created_at: iso(offer.createdAt),
  updated_at: iso(offer.updatedAt),
});

export const reservationJson = (reservation: Reservation): z.input<typeof ReservationJson> => ({
  id: reservation.id,
  object: 'reservation',
  offer_id: reservation.offerId,
  partner_id: reservation.partnerId,
  period_start: iso(reservation.periodStart),
  quantity: Number(reservation.quantity),
  status: reservation.status,
  expires_at: isoOrNull(reservation.expiresAt),
  reference: reservation.reference,
  created_at: iso(reservation.createdAt),
});
