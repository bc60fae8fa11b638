import type { Context } from '../kernel/context.js';
import { requireTransaction } from '../kernel/database/database.js';
import type { OfferId } from '../kernel/ids.js';
import type { CatalogService } from '../modules/catalog/index.js';
import type { OfferingsService, StepOutOfDate } from '../modules/offerings/index.js';
import type { Capability, CapabilityChanges, StandardsService } from '../modules/standards/index.js';

/** What the publication of a capability version did to the offers of the capability. */
export interface PublishedCapability {
  readonly capability: Capability;
  /** Offers that do not conform to the new version (newly or still), now `non_compliant`. */
  readonly nonCompliant: readonly OfferId[];
  /** Offers that were `non_compliant` and conform to the new version, now `paused`. */
  readonly restored: readonly OfferId[];
  /** Steps of offerings on sale whose constraints the new version does not allow. */
  readonly stepsOutOfDate: readonly StepOutOfDate[];
}

/**
 * Publishes the next version of a capability and re-checks every offer of it against that
 * version, in the caller's transaction: either the version is published and every offer
 * reflects it, or neither happens. The offerings on sale whose steps need the capability are
 * checked too: those whose constraints it no longer allows are named (and announced), since
 * they cannot be quoted until the operator publishes them anew.
 *
 * @throws DomainError `standards.capability_not_found`, `standards.capability_invalid`,
 *   `json_schema.invalid`, `standards.unknown_program`
 */
export async function publishCapabilityVersion(
  ctx: Context,
  deps: { standards: StandardsService; catalog: CatalogService; offerings: OfferingsService },
  key: string,
  changes: CapabilityChanges,
): Promise<PublishedCapability> {
  requireTransaction(ctx.db);
  const capability = await deps.standards.publishCapabilityVersion(ctx, key, changes);
  const { nonCompliant, restored } = await deps.catalog.revalidateOffers(ctx, key);
  const stepsOutOfDate = await deps.offerings.checkSteps(ctx, capability);
  return { capability, nonCompliant, restored, stepsOutOfDate };
}
