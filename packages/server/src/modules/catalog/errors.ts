import { conflict, type FieldError, notFound, unprocessable } from '../../kernel/errors.js';
import type { ReservationStatus } from './domain/capacity.js';
import type { OfferStatus } from './domain/offer.js';

/** The catalog module's expected failures, each named after the rule it enforces. */
export const catalogErrors = {
  offerNotFound: (id: string) => notFound('catalog.offer_not_found', `No offer ${id}.`),
  /** Asked for another partner's offers: as absent as a partner that does not exist. */
  partnerNotFound: (id: string) => notFound('catalog.partner_not_found', `No partner ${id}.`),
  reservationNotFound: (id: string) => notFound('catalog.reservation_not_found', `No reservation ${id}.`),
  /** The offer breaks its own rules or its capability's; `errors` names each field. */
  offerInvalid: (errors: readonly FieldError[]) =>
    unprocessable('catalog.offer_invalid', 'The offer is not valid; see errors for each field.', { errors }),
  /** One partner's external reference names one offer. */
  externalRefTaken: (externalRef: string) =>
    conflict('catalog.external_ref_taken', `Another of your offers has the external_ref ${externalRef}.`),
  /** Only active offers can be reserved. */
  offerNotAvailable: (id: string, status: OfferStatus) =>
    conflict(
      'catalog.offer_not_available',
      `The offer ${id} is ${status}; only active offers take reservations.`,
      // Not `status`: details sit beside the problem's own fields, and `status` is the HTTP one.
      { offer_status: status },
    ),
  /** Capacity is never overbooked: `free` is what is left in the period. */
  capacityExceeded: (requested: bigint, free: bigint, periodStart: Date) =>
    conflict(
      'catalog.capacity_exceeded',
      `Only ${free} of the ${requested} asked for are free in the period from ${periodStart.toISOString()}.`,
      { free: free.toString(), period_start: periodStart.toISOString() },
    ),
  /** A reservation's quantity lies within the offer's minimum and maximum. */
  quantityOutOfRange: (min: bigint, max: bigint) =>
    unprocessable('catalog.quantity_out_of_range', `The offer takes quantities from ${min} to ${max}.`, {
      errors: [{ path: '/quantity', rule: 'range', message: `must be from ${min} to ${max}` }],
    }),
  /** Capacity of a period that is over can no longer be reserved. */
  periodEnded: () =>
    unprocessable('catalog.period_ended', 'The capacity period of `at` is over.', {
      errors: [{ path: '/at', rule: 'minimum', message: 'must be in the current capacity period or later' }],
    }),
  /** A hold whose time ran out cannot be confirmed; reserve again. */
  reservationExpired: (id: string) =>
    conflict('catalog.reservation_expired', `The hold ${id} has expired; reserve again.`),
  /** Only a hold can be confirmed. */
  reservationNotHeld: (id: string, status: ReservationStatus) =>
    conflict('catalog.reservation_not_held', `The reservation ${id} is ${status}, not held.`, {
      reservation_status: status,
    }),
};
