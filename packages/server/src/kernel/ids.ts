import { TypeID, typeid } from 'typeid-js';

/**
 * Prefixes of Baton's ids. Ids are TypeIDs: a prefix naming the kind of object and a UUIDv7
 * in Crockford base32, so ids sort by creation time and say what they point at.
 */
export const ID_PREFIX = {
  account: 'acc',
  allocation: 'alc',
  apiKey: 'key',
  auditRecord: 'aud',
  certification: 'crt',
  chargeback: 'cbk',
  customer: 'cus',
  event: 'evt',
  feeRule: 'fru',
  feeScheduleVersion: 'fsv',
  invitation: 'inv',
  offer: 'off',
  offeringVersion: 'ofv',
  order: 'ord',
  partner: 'ptn',
  partnerTransition: 'ptr',
  payment: 'pay',
  quote: 'quo',
  paymentOperation: 'pop',
  postingRequest: 'lpr',
  payout: 'po',
  payoutBatch: 'pob',
  reconciliationReport: 'rec',
  refund: 'rfd',
  refundRequest: 'rrq',
  request: 'req',
  reserveHold: 'rsh',
  ledgerTransaction: 'txn',
  reservation: 'rsv',
  rulesAcceptance: 'rac',
  serviceCharge: 'svc',
  subscription: 'sub',
  subscriptionCharge: 'sbc',
  subscriptionPlan: 'spl',
  subsidyApplication: 'sba',
  subsidyProgramme: 'sbp',
  user: 'usr',
  workOrder: 'wko',
} as const;

export type IdPrefix = (typeof ID_PREFIX)[keyof typeof ID_PREFIX];
export type Id<P extends IdPrefix> = `${P}_${string}`;

export type AccountId = Id<'acc'>;
export type AllocationId = Id<'alc'>;
export type ApiKeyId = Id<'key'>;
export type AuditRecordId = Id<'aud'>;
export type CertificationId = Id<'crt'>;
export type CustomerId = Id<'cus'>;
export type EventId = Id<'evt'>;
export type FeeRuleId = Id<'fru'>;
export type FeeScheduleVersionId = Id<'fsv'>;
export type InvitationId = Id<'inv'>;
export type OfferId = Id<'off'>;
export type OfferingVersionId = Id<'ofv'>;
export type OrderId = Id<'ord'>;
export type PartnerId = Id<'ptn'>;
export type PayoutId = Id<'po'>;
export type QuoteId = Id<'quo'>;
export type PayoutBatchId = Id<'pob'>;
export type RefundRequestId = Id<'rrq'>;
export type ReserveHoldId = Id<'rsh'>;
export type ReservationId = Id<'rsv'>;
export type ServiceChargeId = Id<'svc'>;
export type SubscriptionId = Id<'sub'>;
export type SubscriptionChargeId = Id<'sbc'>;
export type SubscriptionPlanId = Id<'spl'>;
export type LedgerTransactionId = Id<'txn'>;
export type PostingRequestId = Id<'lpr'>;
export type SubsidyApplicationId = Id<'sba'>;
export type SubsidyProgrammeId = Id<'sbp'>;
export type UserId = Id<'usr'>;
export type WorkOrderId = Id<'wko'>;

/** Creates a new id of the given kind. */
export function newId<P extends IdPrefix>(prefix: P): Id<P> {
  return typeid(prefix).toString() as Id<P>;
}

/** The id if `value` is a well-formed id of the given kind, otherwise null. */
export function parseId<P extends IdPrefix>(prefix: P, value: string): Id<P> | null {
  try {
    return TypeID.fromString(value, prefix).toString() as Id<P>;
  } catch {
    return null;
  }
}

/** A regular expression matching ids of one kind, for request schemas. */
export function idPattern(prefix: IdPrefix): RegExp {
  return new RegExp(`^${prefix}_[0-7][0-9a-hjkmnp-tv-z]{25}$`);
}
