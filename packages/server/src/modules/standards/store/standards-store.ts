import { type Selectable, sql } from 'kysely';
import type { Executor } from '../../../kernel/database/database.js';
import type { CertificationId, PartnerId } from '../../../kernel/ids.js';
import type { Capability } from '../domain/capability.js';
import type { Certification, CertificationProgram } from '../domain/certification.js';
import type { CapabilityVersionsTable, CertificationProgramsTable, CertificationsTable } from './tables.js';

export const toCapability = (row: Selectable<CapabilityVersionsTable>): Capability => ({
  key: row.key,
  name: row.name,
  unit: row.unit,
  version: row.version,
  attributeSchema: row.attribute_schema,
  requiredCertifications: row.required_certifications,
  serviceLevels: {
    maxLeadTimeHours: row.max_lead_time_hours,
    acceptanceWindowHours: row.acceptance_window_hours,
  },
  publishedAt: row.published_at,
});

export const toProgram = (
  row: Selectable<CertificationProgramsTable>,
  requiredBy: readonly string[],
): CertificationProgram => ({
  key: row.key,
  name: row.name,
  description: row.description,
  requirements: row.requirements,
  evidence: row.evidence,
  validityDays: row.validity_days,
  requiredBy,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export const toCertification = (row: Selectable<CertificationsTable>): Certification => ({
  id: row.id as CertificationId,
  partnerId: row.partner_id as PartnerId,
  programKey: row.program_key,
  status: row.status,
  evidence: row.evidence,
  validFrom: row.valid_from,
  validUntil: row.valid_until,
  renewalOf: row.renewal_of as CertificationId | null,
  reason: row.reason,
  appliedAt: row.applied_at,
  decidedAt: row.decided_at,
});

/** The current version of every capability, or of those named, by key. */
export function currentVersions(db: Executor) {
  return db
    .selectFrom('capability_versions as v')
    .innerJoin('capabilities as c', (join) =>
      join.onRef('c.key', '=', 'v.key').onRef('c.current_version', '=', 'v.version'),
    )
    .selectAll('v')
    .orderBy('v.key');
}

export async function findCurrentCapability(db: Executor, key: string): Promise<Capability | undefined> {
  const row = await currentVersions(db).where('v.key', '=', key).executeTakeFirst();
  return row ? toCapability(row) : undefined;
}

export async function findCapabilityVersion(
  db: Executor,
  key: string,
  version: number,
): Promise<Capability | undefined> {
  const row = await db
    .selectFrom('capability_versions')
    .selectAll()
    .where('key', '=', key)
    .where('version', '=', version)
    .executeTakeFirst();
  return row ? toCapability(row) : undefined;
}

/** The capabilities whose current version requires each program, by program key. */
export async function requiredByPrograms(
  db: Executor,
  programKeys: readonly string[],
): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>(programKeys.map((key) => [key, []]));
  if (programKeys.length === 0) return result;
  const rows = await currentVersions(db)
    .where(sql<boolean>`v.required_certifications && ${[...programKeys]}::text[]`)
    .execute();
  for (const row of rows) {
    for (const program of row.required_certifications) result.get(program)?.push(row.key);
  }
  return result;
}

export async function findProgram(
  db: Executor,
  key: string,
  forUpdate = false,
): Promise<CertificationProgram | undefined> {
  let query = db.selectFrom('certification_programs').selectAll().where('key', '=', key);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  if (!row) return undefined;
  return toProgram(row, (await requiredByPrograms(db, [key])).get(key) ?? []);
}

export async function findCertification(
  db: Executor,
  id: CertificationId,
  forUpdate = false,
): Promise<Certification | undefined> {
  let query = db.selectFrom('certifications').selectAll().where('id', '=', id);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toCertification(row) : undefined;
}
