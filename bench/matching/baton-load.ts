import type pg from 'pg';
import { DAY_MS, type Dataset, HOUR_MS } from './dataset.js';

/**
 * Loads the data set into Baton's own tables (participants, standards, catalog), as those
 * modules' migrations define them, so that a real Baton builds its matching index from the
 * database at start-up. Rows are written the way the modules would have written them through
 * their APIs: a partner type with rules of engagement, partners in their lifecycle states,
 * certification programs and granted (or expired) certifications, capabilities with their
 * first version, offers, and the capacity already booked as confirmed reservations with their
 * per-period counters.
 */

const BATCH_ROWS = 10_000;
const PARTNER_TYPE = 'supplier';
const RULES_GRACE_DAYS = 14;

/** A column: its name, the SQL type its values are sent as, and optionally how to convert them. */
type Column = readonly [name: string, sqlType: string, convert?: (value: string) => string];

/**
 * Inserts rows given as one array per column, `BATCH_ROWS` at a time, through `unnest`: one
 * statement per batch. Table and column names are this file's constants, never input.
 */
async function insertColumns(
  pool: pg.Pool,
  table: string,
  columns: readonly Column[],
  count: number,
  row: (i: number) => readonly unknown[],
): Promise<void> {
  const names = columns.map(([name]) => name).join(', ');
  const arrays = columns.map(([, type], c) => `$${c + 1}::${type}[]`).join(', ');
  const selected = columns.map(([, , convert], c) => (convert ? convert(`c${c}`) : `c${c}`)).join(', ');
  const aliases = columns.map((_, c) => `c${c}`).join(', ');
  const text = `insert into ${table} (${names}) select ${selected} from unnest(${arrays}) as t(${aliases})`;
  for (let from = 0; from < count; from += BATCH_ROWS) {
    const to = Math.min(count, from + BATCH_ROWS);
    const values: unknown[][] = columns.map(() => []);
    for (let i = from; i < to; i++) {
      const cells = row(i);
      for (let c = 0; c < columns.length; c++) values[c]!.push(cells[c]);
    }
    await pool.query(text, values);
  }
}

const iso = (date: Date) => date.toISOString();

/**
 * Writes the data set into the tables of a freshly migrated Baton database. Throws (a pg
 * error) when a migration changed a table in a way these inserts no longer fit.
 */
export async function loadBatonTables(
  pool: pg.Pool,
  dataset: Dataset,
  progress: (what: string) => void = () => {},
): Promise<void> {
  const nowMs = dataset.now.getTime();
  const longAgo = new Date(nowMs - 800 * DAY_MS);
  const rulesPublishedAt = new Date(nowMs - 365 * DAY_MS);

  await pool.query(
    `insert into partner_types (key, name, description, profile_schema, current_rules_version, created_at, updated_at)
     values ($1, 'Supplier', 'Benchmark partners', $2::jsonb, 1, $3, $3)`,
    [PARTNER_TYPE, JSON.stringify({ type: 'object' }), iso(longAgo)],
  );
  await pool.query(
    `insert into engagement_rules (partner_type, version, title, body, grace_period_days, published_at, published_by)
     values ($1, 1, 'Rules of engagement', 'Deliver what you offer.', $2, $3, null)`,
    [PARTNER_TYPE, RULES_GRACE_DAYS, iso(rulesPublishedAt)],
  );

  // A partner that has not accepted the rules, published a year ago with a 14-day grace, has lapsed.
  await pool.query(
    `insert into partners (id, partner_type, name, email, regions, profile, state, state_changed_at, activated_at,
       accepted_rules_version, accepted_rules_at, created_at, updated_at)
     select id, $1, name, email, string_to_array(regions, ','), '{}'::jsonb, state, activated_at, activated_at,
       case when accepted then 1 end, case when accepted then activated_at end, activated_at, activated_at
     from unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::boolean[])
       as t(id, name, email, regions, state, activated_at, accepted)`,
    [
      PARTNER_TYPE,
      dataset.partners.map((partner) => partner.id),
      dataset.partners.map((_, p) => `Partner ${p + 1}`),
      dataset.partners.map((_, p) => `partner-${p + 1}@bench.invalid`),
      dataset.partners.map((partner) => partner.regions.join(',')),
      dataset.partners.map((partner) => partner.state),
      dataset.partners.map((partner) => iso(partner.activatedAt)),
      dataset.partners.map((partner) => partner.rulesAccepted),
    ],
  );
  progress(`${dataset.partners.length} partners`);

  await insertColumns(
    pool,
    'certification_programs',
    [
      ['key', 'text'],
      ['name', 'text'],
      ['description', 'text'],
      ['requirements', 'text'],
      ['evidence', 'jsonb'],
      ['validity_days', 'int4'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
    ],
    dataset.programKeys.length,
    (k) => [
      dataset.programKeys[k],
      `Program ${k + 1}`,
      'A benchmark certification program.',
      'An audit report.',
      JSON.stringify([{ key: 'audit_report', description: 'The latest audit report' }]),
      365,
      iso(longAgo),
      iso(longAgo),
    ],
  );
  await insertColumns(
    pool,
    'capabilities',
    [
      ['key', 'text'],
      ['current_version', 'int4'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
    ],
    dataset.capabilities.length,
    (c) => [dataset.capabilities[c]!.key, 1, iso(longAgo), iso(longAgo)],
  );
  await pool.query(
    `insert into capability_versions (key, version, name, unit, attribute_schema, required_certifications,
       max_lead_time_hours, acceptance_window_hours, published_at, published_by)
     select key, 1, name, unit, attribute_schema::jsonb, string_to_array(required, ','), max_lead_time_hours, null,
       $7::timestamptz, null
     from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[])
       as t(key, name, unit, attribute_schema, required, max_lead_time_hours)`,
    [
      dataset.capabilities.map((capability) => capability.key),
      dataset.capabilities.map((capability) => capability.name),
      dataset.capabilities.map((capability) => capability.unit),
      dataset.capabilities.map((capability) => JSON.stringify(capability.attributeSchema)),
      dataset.capabilities.map((capability) => capability.requiredCertifications.join(',')),
      dataset.capabilities.map((capability) => capability.maxLeadTimeHours),
      iso(longAgo),
    ],
  );
  // Certifications past their end are recorded as the expiry job leaves them.
  await insertColumns(
    pool,
    'certifications',
    [
      ['id', 'text'],
      ['partner_id', 'text'],
      ['program_key', 'text'],
      ['status', 'text'],
      ['evidence', 'jsonb'],
      ['valid_from', 'timestamptz'],
      ['valid_until', 'timestamptz'],
      ['applied_at', 'timestamptz'],
      ['decided_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
    ],
    dataset.certifications.length,
    (k) => {
      const certification = dataset.certifications[k]!;
      const expired = certification.validUntil.getTime() <= nowMs;
      return [
        dataset.certificationId(k),
        dataset.partners[certification.partnerIndex]!.id,
        certification.programKey,
        expired ? 'expired' : 'granted',
        JSON.stringify({ audit_report: 'On file.' }),
        iso(certification.validFrom),
        iso(certification.validUntil),
        iso(new Date(certification.validFrom.getTime() - 7 * DAY_MS)),
        iso(certification.validFrom),
        iso(expired ? certification.validUntil : certification.validFrom),
      ];
    },
  );
  progress(`${dataset.capabilities.length} capabilities, ${dataset.certifications.length} certifications`);

  let loaded = 0;
  await insertColumns(
    pool,
    'offers',
    [
      ['id', 'text'],
      ['partner_id', 'text'],
      ['capability_key', 'text'],
      ['capability_version', 'int4'],
      ['external_ref', 'text'],
      ['attributes', 'jsonb'],
      ['unit_price_minor', 'int8'],
      ['currency', 'text'],
      ['min_quantity', 'int8'],
      ['max_quantity', 'int8'],
      ['lead_time_hours', 'int4'],
      ['regions', 'text', (regions) => `string_to_array(${regions}, ',')`],
      ['capacity_per_period', 'int8'],
      ['capacity_period', 'text'],
      ['status', 'text'],
      ['compliance_errors', 'jsonb'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
    ],
    dataset.offerCount,
    (i) => {
      const offer = dataset.offer(i);
      if (++loaded % 250_000 === 0) progress(`${loaded} offers`);
      return [
        offer.id,
        offer.partnerId,
        offer.capabilityKey,
        offer.capabilityVersion,
        offer.externalRef,
        JSON.stringify(offer.attributes),
        offer.unitPrice.amountMinor.toString(),
        offer.unitPrice.currency,
        offer.minQuantity.toString(),
        offer.maxQuantity.toString(),
        offer.leadTimeHours,
        // Arrays of arrays do not unnest row by row: regions travel as one comma-separated string.
        offer.regions.join(','),
        offer.capacityPerPeriod.toString(),
        offer.capacityPeriod,
        offer.status,
        JSON.stringify(offer.complianceErrors),
        iso(offer.createdAt),
        iso(offer.updatedAt),
      ];
    },
  );

  await insertColumns(
    pool,
    'capacity_counters',
    [
      ['offer_id', 'text'],
      ['period_start', 'timestamptz'],
      ['reserved', 'int8'],
    ],
    dataset.usageCount,
    (u) => {
      const usage = dataset.usage(u);
      return [dataset.offerId(usage.offerIndex), iso(usage.periodStart), usage.reserved.toString()];
    },
  );
  await insertColumns(
    pool,
    'reservations',
    [
      ['id', 'text'],
      ['offer_id', 'text'],
      ['partner_id', 'text'],
      ['period_start', 'timestamptz'],
      ['quantity', 'int8'],
      ['status', 'text'],
      ['reference', 'text'],
      ['created_at', 'timestamptz'],
      ['settled_at', 'timestamptz'],
    ],
    dataset.usageCount,
    (u) => {
      const usage = dataset.usage(u);
      const bookedAt = iso(new Date(nowMs - (1 + (u % 72)) * HOUR_MS));
      return [
        dataset.reservationId(u),
        dataset.offerId(usage.offerIndex),
        dataset.partnerId(dataset.partnerOf(usage.offerIndex)),
        iso(usage.periodStart),
        usage.reserved.toString(),
        'confirmed',
        `bench-${u}`,
        bookedAt,
        bookedAt,
      ];
    },
  );
  progress(`${dataset.offerCount} offers, ${dataset.usageCount} booked capacity periods`);
  await pool.query('analyze');
}
