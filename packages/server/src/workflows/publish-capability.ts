import type { Context } from '../kernel/context.js';
import { requireTransaction } from '../kernel/database/database.js';
import type { OfferId } from '../kernel/ids.js';
import type { CatalogService } from '../modules/catalog/index.js';
import type { Capability, CapabilityChanges, StandardsService } from '../modules/standards/index.js';

/** What the publication of a capability version did to the offers of the capability. */
export interface PublishedCapability {
  readonly capability: Capability;
  /** Offers that do not conform to the new version (newly or still), now `non_compliant`. */
  readonly nonCompliant: readonly OfferId[];
  /** Offers that were `non_compliant` and conform to the new version, now `paused`. */
  readonly restored: readonly OfferId[];
}

/**
 * Publishes the next version of a capability and re-checks every offer of it against that
 * version, in the caller's transaction: either the version is published and every offer
 * reflects it, or neither happens.
 *
 * @throws DomainError `standards.capability_not_found`, `standards.capability_invalid`,
 *   `json_schema.invalid`, `standards.unknown_program`
 */
export async function publishCapabilityVersion(
  ctx: Context,
  deps: { standards: StandardsService; catalog: CatalogService },
  key: string,
  changes: CapabilityChanges,
): Promise<PublishedCapability> {
  requireTransaction(ctx.db);
  const capability = await deps.standards.publishCapabilityVersion(ctx, key, changes);
  const { nonCompliant, restored } = await deps.catalog.revalidateOffers(ctx, key);
  return { capability, nonCompliant, restored };
}
