/**
 * A work order's lifecycle: the offer of one leg to one partner, and the work that follows.
 *
 *   offered → accepted | declined | expired
 *   accepted → in_progress
 *   in_progress → delivered
 *   delivered → confirmed | rejected
 *
 * and `offered` or `accepted` → `cancelled` when the order gives the leg up (it was re-planned
 * because the partner was suspended, or the order is compensated, or an operator withdrew it),
 * and `in_progress` → `cancelled` when an operator withdraws work not delivered by its due time.
 * Every other state is final.
 */
export const WORK_ORDER_STATUSES = [
  'offered',
  'accepted',
  'declined',
  'expired',
  'in_progress',
  'delivered',
  'confirmed',
  'rejected',
  'cancelled',
] as const;
export type WorkOrderStatus = (typeof WORK_ORDER_STATUSES)[number];

const TRANSITIONS: Readonly<Record<WorkOrderStatus, readonly WorkOrderStatus[]>> = {
  offered: ['accepted', 'declined', 'expired', 'cancelled'],
  accepted: ['in_progress', 'cancelled'],
  declined: [],
  expired: [],
  in_progress: ['delivered', 'cancelled'],
  delivered: ['confirmed', 'rejected'],
  confirmed: [],
  rejected: [],
  cancelled: [],
};

export function canTransition(from: WorkOrderStatus, to: WorkOrderStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The statuses a work order may move to `to` from. */
export function statusesBefore(to: WorkOrderStatus): WorkOrderStatus[] {
  return WORK_ORDER_STATUSES.filter((from) => canTransition(from, to));
}

/** A work order the partner has not started: it can still be taken away and given to another. */
export const NOT_STARTED: readonly WorkOrderStatus[] = ['offered', 'accepted'];
/** Work orders whose partner still owes the work: these are flagged when late. */
export const OWED: readonly WorkOrderStatus[] = ['offered', 'accepted', 'in_progress'];

/** The actions of the API and who takes them. */
export const PARTNER_ACTIONS = {
  accept: 'accepted',
  decline: 'declined',
  start: 'in_progress',
  deliver: 'delivered',
} as const satisfies Record<string, WorkOrderStatus>;
export type PartnerAction = keyof typeof PARTNER_ACTIONS;

export const CUSTOMER_ACTIONS = { confirm: 'confirmed', reject: 'rejected' } as const satisfies Record<
  string,
  WorkOrderStatus
>;
export type CustomerAction = keyof typeof CUSTOMER_ACTIONS;

/**
 * A leg of an order: `planned` (a partner and capacity chosen, waiting for its predecessors),
 * `dispatched` (a work order is out), then `done` (confirmed and paid), `refunded` (rejected,
 * and the customer refunded under the offering's policy) or `cancelled` (given up by the saga).
 */
export const LEG_STATUSES = ['planned', 'dispatched', 'done', 'refunded', 'cancelled'] as const;
export type LegStatus = (typeof LEG_STATUSES)[number];
/** Legs whose successors may start: the work exists, paid for or refunded. */
export const FINISHED_LEGS: readonly LegStatus[] = ['done', 'refunded'];
export const CLOSED_LEGS: readonly LegStatus[] = ['done', 'refunded', 'cancelled'];

/**
 * An order: `awaiting_payment` until the provider captures, `in_progress` while legs run,
 * `compensating` when a leg could not be repaired and the legs still running finish,
 * then `completed`, `failed` (compensated: what was not done was refunded) or `cancelled`
 * (the payment did not go through; nothing was charged).
 */
export const ORDER_STATUSES = [
  'awaiting_payment',
  'in_progress',
  'compensating',
  'completed',
  'failed',
  'cancelled',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
export const OPEN_ORDERS: readonly OrderStatus[] = ['awaiting_payment', 'in_progress', 'compensating'];
