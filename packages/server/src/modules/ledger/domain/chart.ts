/*
 * The chart of accounts. Every account has a purpose, an owner and a currency; the purpose
 * decides which side its balance grows on, whether it may go below zero, and what kind of owner
 * it has. Balances are reported on the account's normal side: a partner payable of 12.00 means
 * Baton owes the partner 12.00.
 *
 * Where the money is:
 *   provider_clearing     money held for the platform at the payment provider (asset)
 *   customer_escrow       what a customer paid for one order, not yet released or refunded
 *   partner_payable       what the platform owes a partner, available for payout
 *   partner_reserve       a partner's earnings held back by the rolling reserve
 *   partner_receivable    what a partner owes the platform (clawbacks, unpaid fees), netted from earnings
 *   payouts_in_transit    payouts sent to the provider, not yet settled
 *   refunds_in_transit    refunds sent to the provider, not yet settled
 *   refunds_owed          refunds the provider failed to pay: still owed to one order's customer
 *   platform_commission   revenue: commission on orders
 *   platform_margin       revenue: the offering margin over partners' prices
 *   platform_access_fees  revenue: partner subscriptions
 *   platform_services     revenue: value-added services
 *   subsidy_budget        one subsidy programme's remaining budget
 *   subsidy_funding       what the operator has put into subsidy programmes (the contra of budgets)
 *   chargeback_losses     chargebacks the platform bore
 *   operator_adjustments  the other side of manual corrections by the operator
 */

export type NormalSide = 'debit' | 'credit';
export type OwnerKind = 'platform' | 'partner' | 'order' | 'programme';

export interface PurposeRules {
  readonly owner: OwnerKind;
  readonly normalSide: NormalSide;
  /** The balance (on the normal side) may never go below zero; the database enforces it. */
  readonly nonNegative: boolean;
  /** Many postings raise it at once (for a non-negative account: see `slotsOf`). */
  readonly busy?: true;
  readonly description: string;
}

export const CHART = {
  provider_clearing: {
    owner: 'platform',
    normalSide: 'debit',
    nonNegative: false,
    description: 'Money held for the platform at the payment provider.',
  },
  customer_escrow: {
    owner: 'order',
    normalSide: 'credit',
    nonNegative: true,
    description: 'What a customer paid for one order, not yet released to partners or refunded.',
  },
  partner_payable: {
    owner: 'partner',
    normalSide: 'credit',
    nonNegative: true,
    busy: true,
    description: 'What the platform owes a partner, available for payout.',
  },
  partner_reserve: {
    owner: 'partner',
    normalSide: 'credit',
    nonNegative: true,
    description: 'Earnings held back by the rolling reserve until their release date.',
  },
  partner_receivable: {
    owner: 'partner',
    normalSide: 'debit',
    nonNegative: true,
    description: 'What a partner owes the platform (clawbacks, unpaid fees), netted from its earnings.',
  },
  payouts_in_transit: {
    owner: 'platform',
    normalSide: 'credit',
    nonNegative: true,
    busy: true,
    description: 'Payouts sent to the provider and not yet settled.',
  },
  refunds_in_transit: {
    owner: 'platform',
    normalSide: 'credit',
    nonNegative: true,
    busy: true,
    description: 'Refunds sent to the provider and not yet settled.',
  },
  refunds_owed: {
    owner: 'order',
    normalSide: 'credit',
    nonNegative: true,
    description: "Refunds the provider failed to pay: owed to the order's customer until a retry is paid.",
  },
  platform_commission: {
    owner: 'platform',
    normalSide: 'credit',
    nonNegative: false,
    description: 'Revenue: commission on orders.',
  },
  platform_margin: {
    owner: 'platform',
    normalSide: 'credit',
    nonNegative: false,
    description: "Revenue: the offering margin over the partners' prices.",
  },
  platform_access_fees: {
    owner: 'platform',
    normalSide: 'credit',
    nonNegative: false,
    description: 'Revenue: partner subscriptions.',
  },
  platform_services: {
    owner: 'platform',
    normalSide: 'credit',
    nonNegative: false,
    description: 'Revenue: value-added services.',
  },
  subsidy_budget: {
    owner: 'programme',
    normalSide: 'credit',
    nonNegative: true,
    description: "One subsidy programme's remaining budget.",
  },
  subsidy_funding: {
    owner: 'platform',
    normalSide: 'debit',
    nonNegative: false,
    description: 'What the operator has put into subsidy programmes.',
  },
  chargeback_losses: {
    owner: 'platform',
    normalSide: 'debit',
    nonNegative: false,
    description: 'Chargebacks the platform bore.',
  },
  operator_adjustments: {
    owner: 'platform',
    normalSide: 'debit',
    nonNegative: false,
    description: 'The other side of manual corrections by the operator.',
  },
} as const satisfies Record<string, PurposeRules>;

export type AccountPurpose = keyof typeof CHART;
export const ACCOUNT_PURPOSES = Object.keys(CHART) as AccountPurpose[];

export const isAccountPurpose = (value: string): value is AccountPurpose => Object.hasOwn(CHART, value);

/** The owner id of platform accounts (the platform is one owner). */
export const PLATFORM_OWNER = 'platform';

/**
 * Balance slots of an account that may go either way. A posting (or a batch of them) adds to one
 * slot of such an account chosen at random, so concurrent postings to a busy account (the
 * provider clearing, the platform's revenue) rarely wait for each other; its balance is the sum
 * of its slots. 32 rather than 8: with eight concurrent posters, eight slots made more than half
 * of the postings wait for another's commit on the platform's commission or margin.
 */
export const BALANCE_SLOTS = 32;

/**
 * Balance slots of a busy account that must not go below zero (a partner's payable, payouts and
 * refunds in transit). A posting that raises it adds to one slot at random, as above; one that
 * lowers it locks every slot and gathers them into the first before the check (ledger migration
 * 0006), so each slot, and the whole, stays at or above zero. Fewer than two-way accounts have,
 * since every lowering locks and gathers them all. Other non-negative accounts (an order's
 * escrow, a programme's budget) are lowered about as often as raised: one slot.
 */
export const NON_NEGATIVE_SLOTS = 16;

export const slotsOf = (rules: PurposeRules): number =>
  !rules.nonNegative ? BALANCE_SLOTS : rules.busy ? NON_NEGATIVE_SLOTS : 1;

/** +1 when debits raise the account's balance, -1 when credits do. */
export const normalSign = (side: NormalSide): 1n | -1n => (side === 'debit' ? 1n : -1n);
