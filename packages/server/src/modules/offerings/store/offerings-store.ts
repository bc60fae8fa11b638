import { type Insertable, type Selectable, sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { OfferingVersionId } from '../../../kernel/ids.js';
import { type Page, pageOf } from '../../../kernel/pagination.js';
import type { AttributeConstraint } from '../../matching/index.js';
import type {
  Offering,
  OfferingDefinition,
  OfferingStatus,
  OfferingVersion,
  Pricing,
  StepDefinition,
} from '../domain/offering.js';
import type { OfferingsTable, OfferingVersionsTable, StoredConstraint, StoredStep } from './tables.js';

/** An offering with the version it is sold on now. */
export interface OfferingWithVersion {
  readonly offering: Offering;
  readonly version: OfferingVersion;
}

export const toOffering = (row: Selectable<OfferingsTable>): Offering => ({
  key: row.key,
  name: row.name,
  status: row.status,
  currentVersion: row.current_version,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  retiredAt: row.retired_at,
});

const toConstraint = (stored: StoredConstraint): AttributeConstraint => ({
  ...(stored.eq !== undefined ? { eq: stored.eq } : {}),
  ...(stored.in !== undefined ? { in: stored.in } : {}),
  ...(stored.min !== undefined ? { min: stored.min } : {}),
  ...(stored.max !== undefined ? { max: stored.max } : {}),
});

const toStep = (stored: StoredStep): StepDefinition => ({
  key: stored.key,
  name: stored.name,
  capability: stored.capability,
  constraints: Object.fromEntries(
    Object.entries(stored.constraints).map(([attribute, constraint]) => [
      attribute,
      toConstraint(constraint),
    ]),
  ),
  quantityPerUnit: stored.quantity_per_unit,
  after: stored.after,
});

/** A step in its stored form; only the conditions given are kept, so the document reads back alike. */
export const storedStep = (step: StepDefinition): StoredStep => ({
  key: step.key,
  name: step.name,
  capability: step.capability,
  constraints: Object.fromEntries(
    Object.entries(step.constraints).map(([attribute, constraint]) => [
      attribute,
      {
        ...(constraint.eq !== undefined ? { eq: constraint.eq } : {}),
        ...(constraint.in !== undefined ? { in: [...constraint.in] } : {}),
        ...(constraint.min !== undefined ? { min: constraint.min } : {}),
        ...(constraint.max !== undefined ? { max: constraint.max } : {}),
      },
    ]),
  ),
  quantity_per_unit: step.quantityPerUnit,
  after: [...step.after],
});

export const toVersion = (row: Selectable<OfferingVersionsTable>): OfferingVersion => {
  const pricing: Pricing =
    row.pricing_kind === 'fixed'
      ? { kind: 'fixed', unitPriceMinor: row.unit_price_minor as bigint }
      : { kind: 'cost_plus', marginBps: row.margin_bps as number };
  return {
    id: row.id as OfferingVersionId,
    offeringKey: row.offering_key,
    version: row.version,
    name: row.name,
    description: row.description,
    unit: row.unit,
    currency: row.currency,
    pricing,
    regions: row.regions,
    steps: row.steps.map(toStep),
    quantityMin: row.quantity_min,
    quantityMax: row.quantity_max,
    quoteValidityMinutes: row.quote_validity_minutes,
    acceptanceWindowMinutes: row.acceptance_window_minutes,
    autoConfirmHours: row.auto_confirm_hours,
    rejectionPolicy: row.rejection_policy,
    maxRedos: row.max_redos,
    publishedAt: row.published_at,
    publishedBy: row.published_by,
  };
};

/** The row of a new version; money stays a bigint all the way to its int8 column. */
export function versionRow(
  id: OfferingVersionId,
  key: string,
  version: number,
  definition: OfferingDefinition,
  publishedAt: Date,
  publishedBy: string | null,
): Insertable<OfferingVersionsTable> {
  return {
    id,
    offering_key: key,
    version,
    name: definition.name,
    description: definition.description,
    unit: definition.unit,
    currency: definition.currency,
    pricing_kind: definition.pricing.kind,
    margin_bps: definition.pricing.kind === 'cost_plus' ? definition.pricing.marginBps : null,
    unit_price_minor: definition.pricing.kind === 'fixed' ? definition.pricing.unitPriceMinor : null,
    regions: [...definition.regions],
    steps: JSON.stringify(definition.steps.map(storedStep)),
    quantity_min: definition.quantityMin,
    quantity_max: definition.quantityMax,
    quote_validity_minutes: definition.quoteValidityMinutes,
    acceptance_window_minutes: definition.acceptanceWindowMinutes,
    auto_confirm_hours: definition.autoConfirmHours,
    rejection_policy: definition.rejectionPolicy,
    max_redos: definition.maxRedos,
    published_at: publishedAt,
    published_by: publishedBy,
  };
}

export async function findOffering(
  db: Executor,
  key: string,
  lock: 'none' | 'update' = 'none',
): Promise<Offering | undefined> {
  let query = db.selectFrom('offerings').selectAll().where('key', '=', key);
  if (lock === 'update') query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toOffering(row) : undefined;
}

export async function findVersion(
  db: Executor,
  key: string,
  version: number,
): Promise<OfferingVersion | undefined> {
  const row = await db
    .selectFrom('offering_versions')
    .selectAll()
    .where('offering_key', '=', key)
    .where('version', '=', version)
    .executeTakeFirst();
  return row ? toVersion(row) : undefined;
}

export async function findVersionById(db: Executor, id: string): Promise<OfferingVersion | undefined> {
  const row = await db.selectFrom('offering_versions').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toVersion(row) : undefined;
}

/** An offering with the version it is sold on now, in one query. */
export async function findCurrent(db: Executor, key: string): Promise<OfferingWithVersion | undefined> {
  const row = await currentQuery(db).where('o.key', '=', key).executeTakeFirst();
  return row ? withVersion(row) : undefined;
}

export interface CurrentFilter {
  readonly region?: string | undefined;
  readonly status?: OfferingStatus | undefined;
  /** The key of the last offering already read. */
  readonly after?: string | undefined;
  readonly limit: number;
}

/** Offerings by key, each with its current version, in one query. */
export async function listCurrent(db: Executor, filter: CurrentFilter): Promise<Page<OfferingWithVersion>> {
  let query = currentQuery(db)
    .orderBy('o.key')
    .limit(filter.limit + 1);
  if (filter.status) query = query.where('o.status', '=', filter.status);
  if (filter.after !== undefined) query = query.where('o.key', '>', filter.after);
  if (filter.region) query = query.where(sql<boolean>`${filter.region} = any(v.regions)`);
  const rows = await query.execute();
  return pageOf(rows, filter.limit, withVersion);
}

/** The active offerings whose current version has a step needing `capability`, by key. */
export async function listActiveNeeding(db: Executor, capability: string): Promise<OfferingWithVersion[]> {
  const rows = await currentQuery(db)
    .where('o.status', '=', 'active')
    .where(sql<boolean>`v.steps @> ${JSON.stringify([{ capability }])}::jsonb`)
    .orderBy('o.key')
    .execute();
  return rows.map(withVersion);
}

/** Offerings joined with their current versions; the offering's columns carry an `o_` prefix. */
function currentQuery(db: Executor) {
  return db
    .selectFrom('offerings as o')
    .innerJoin('offering_versions as v', (join) =>
      join.onRef('v.offering_key', '=', 'o.key').onRef('v.version', '=', 'o.current_version'),
    )
    .selectAll('v')
    .select([
      'o.key as o_key',
      'o.name as o_name',
      'o.status as o_status',
      'o.current_version as o_current_version',
      'o.created_at as o_created_at',
      'o.updated_at as o_updated_at',
      'o.retired_at as o_retired_at',
    ]);
}

type CurrentRow = Awaited<ReturnType<ReturnType<typeof currentQuery>['executeTakeFirstOrThrow']>>;

function withVersion(row: CurrentRow): OfferingWithVersion {
  return {
    offering: toOffering({
      key: row.o_key,
      name: row.o_name,
      status: row.o_status,
      current_version: row.o_current_version,
      created_at: row.o_created_at,
      updated_at: row.o_updated_at,
      retired_at: row.o_retired_at,
    }),
    version: toVersion(row),
  };
}
