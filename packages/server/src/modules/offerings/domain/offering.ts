import type { OfferingVersionId, UserId } from '../../../kernel/ids.js';
import type { AttributeConstraint } from '../../matching/index.js';

/** Steps one offering may have. */
export const STEPS_MAX = 20;
/** Regions one offering version may be published in. */
export const OFFERING_REGIONS_MAX = 100;
/** Keys of offerings and steps: lower-case words joined by dashes. */
export const KEY_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

export const OFFERING_STATUSES = ['active', 'retired'] as const;
export type OfferingStatus = (typeof OFFERING_STATUSES)[number];

/** What happens when the customer rejects a delivered leg. */
export const REJECTION_POLICIES = ['refund', 'redo'] as const;
export type RejectionPolicy = (typeof REJECTION_POLICIES)[number];

/** One step of an offering: a capability, bought from one partner, after its predecessors. */
export interface StepDefinition {
  readonly key: string;
  readonly name: string;
  /** The capability a partner must offer to do this step. */
  readonly capability: string;
  /** Constraints on the offer's attributes, as the matcher takes them. */
  readonly constraints: Readonly<Record<string, AttributeConstraint>>;
  /**
   * Units of the capability per unit of the order, a positive decimal string (`"1.2"` kg of
   * fabric per garment). A leg's quantity is the order's quantity times this, rounded up.
   */
  readonly quantityPerUnit: string;
  /** Keys of the steps that must be done before this one starts. */
  readonly after: readonly string[];
}

/**
 * How the customer's price is made. `cost_plus`: the chosen partners' prices plus a margin in
 * basis points of them. `fixed`: a retail price per unit of the order; the partners' prices are
 * the cost, and the difference is the platform's margin (a quote whose cost exceeds the price is
 * infeasible).
 */
export type Pricing =
  | { readonly kind: 'cost_plus'; readonly marginBps: number }
  | { readonly kind: 'fixed'; readonly unitPriceMinor: bigint };

/** What an operator states to publish a version of an offering. */
export interface OfferingDefinition {
  readonly name: string;
  readonly description: string;
  /** What the customer buys units of (`garment`, `meal`, `trip`). */
  readonly unit: string;
  readonly currency: string;
  readonly pricing: Pricing;
  /** Operator-defined region codes the offering is sold in. */
  readonly regions: readonly string[];
  readonly steps: readonly StepDefinition[];
  readonly quantityMin: number;
  readonly quantityMax: number;
  /** How long a quote holds its capacity. */
  readonly quoteValidityMinutes: number;
  /** How long a partner has to accept a work order before it expires and the leg is re-planned. */
  readonly acceptanceWindowMinutes: number;
  /** How long after delivery a leg the customer has not judged is confirmed by itself. */
  readonly autoConfirmHours: number;
  readonly rejectionPolicy: RejectionPolicy;
  /**
   * Under `redo`, how many times one leg is done again after a rejection; the rejection after
   * that is refunded as under `refund`, so a leg cannot be redone without end.
   */
  readonly maxRedos: number;
}

/** A published, immutable version of an offering. Orders keep the version they were placed on. */
export interface OfferingVersion extends OfferingDefinition {
  readonly id: OfferingVersionId;
  readonly offeringKey: string;
  readonly version: number;
  readonly publishedAt: Date;
  readonly publishedBy: UserId | string | null;
}

/** An offering: its key, its status and the version sold now. */
export interface Offering {
  readonly key: string;
  readonly name: string;
  readonly status: OfferingStatus;
  readonly currentVersion: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  /** When it stopped being sold; null while it is active. */
  readonly retiredAt: Date | null;
}
