import type pg from 'pg';
import { NEUTRAL_SIGNALS } from '../../packages/server/src/modules/matching/domain/ranking.js';
import {
  DEFAULT_SETTINGS,
  type MatchingSettings,
} from '../../packages/server/src/modules/matching/domain/settings.js';
import { type BenchQuery, type Dataset, HOUR_MS } from './dataset.js';

/**
 * The baseline: the same top-10 queries answered by the obvious SQL on PostgreSQL, over a
 * plain relational copy of the data set with good indexes. It filters exactly as the matcher
 * does and ranks by the same score (price and lead time normalised over the candidates, the
 * neutral quality and reliability, the new-entrant boost; each partner's best offer before
 * any partner's second one; ties by offer id), so the two can be checked against each other
 * as well as timed.
 */

const LOAD_BATCH_ROWS = 10_000;

/** How the matcher ranks by default, for the SQL to rank the same way. */
export interface BaselineRanking {
  readonly weights: {
    readonly price: number;
    readonly quality: number;
    readonly reliability: number;
    readonly leadTime: number;
    readonly affinity: number;
  };
  /** The score of quality and reliability when nothing is known of a partner. */
  readonly neutralQuality: number;
  readonly neutralReliability: number;
  /** Added to a new entrant's score for `newEntrantDays` after its activation. */
  readonly newEntrantBoost: number;
  readonly newEntrantDays: number;
  /** Offers of one partner among the results. */
  readonly maxPerPartner: number;
}

/** The matcher's default settings, as the SQL ranks by them. */
export function baselineRankingFromSettings(settings: MatchingSettings = DEFAULT_SETTINGS): BaselineRanking {
  return {
    weights: settings.weights,
    neutralQuality: NEUTRAL_SIGNALS.quality(''),
    neutralReliability: NEUTRAL_SIGNALS.reliability(''),
    newEntrantBoost: settings.newEntrantBoost,
    newEntrantDays: settings.newEntrantDays,
    maxPerPartner: settings.maxPerPartner,
  };
}

export const DEFAULT_BASELINE_RANKING: BaselineRanking = baselineRankingFromSettings();

const SCHEMA = `
  create extension if not exists btree_gin;
  create schema baseline;
  create table baseline.partners (
    id text primary key,
    can_take_work boolean not null,
    activated_at timestamptz not null
  );
  create table baseline.certifications (
    partner_id text not null,
    program text not null,
    valid_from timestamptz not null,
    valid_until timestamptz not null
  );
  create table baseline.capability_requirements (
    capability text not null,
    program text not null,
    primary key (capability, program)
  );
  create table baseline.offers (
    id text primary key,
    partner_id text not null,
    capability text not null,
    regions text[] not null,
    status text not null,
    attributes jsonb not null,
    unit_price_minor int8 not null,
    currency text not null,
    min_quantity int8 not null,
    max_quantity int8 not null,
    lead_time_hours int4 not null,
    capacity_per_period int8 not null,
    capacity_period text not null
  );
  create table baseline.capacity_usage (
    offer_id text not null,
    period_start timestamptz not null,
    reserved int8 not null
  );
`;

/*
 * The indexes a careful engineer would add for this query, built after the load (faster than
 * maintaining them row by row). Capability and region are found together by one GIN index
 * (btree_gin lets the scalar capability share it with the region array), limited to active
 * offers; equality constraints on attributes can use the jsonb containment index; partners,
 * certifications and capacity are looked up by key.
 */
const INDEXES = `
  create index offers_capability_region on baseline.offers using gin (capability, regions)
    where status = 'active';
  create index offers_attributes on baseline.offers using gin (attributes jsonb_path_ops)
    where status = 'active';
  create index offers_capability_price on baseline.offers (capability, unit_price_minor)
    where status = 'active';
  create index certifications_partner on baseline.certifications (partner_id, program, valid_until, valid_from);
  create unique index capacity_usage_offer_period on baseline.capacity_usage (offer_id, period_start)
    include (reserved);
  analyze baseline.partners;
  analyze baseline.certifications;
  analyze baseline.capability_requirements;
  analyze baseline.offers;
  analyze baseline.capacity_usage;
`;

export interface BaselineLoad {
  readonly loadMs: number;
  readonly indexMs: number;
  readonly tableBytes: number;
  readonly indexBytes: number;
}

/** Creates the baseline's tables and loads the data set in batches of rows sent as arrays. */
export async function loadBaseline(
  pool: pg.Pool,
  dataset: Dataset,
  progress: (done: number) => void = () => {},
): Promise<BaselineLoad> {
  const started = performance.now();
  await pool.query(SCHEMA);
  await pool.query(
    `insert into baseline.partners (id, can_take_work, activated_at)
     select * from unnest($1::text[], $2::boolean[], $3::timestamptz[])`,
    [
      dataset.partners.map((partner) => partner.id),
      dataset.partners.map((partner) => partner.canTakeWork),
      dataset.partners.map((partner) => partner.activatedAt.toISOString()),
    ],
  );
  await pool.query(
    `insert into baseline.certifications (partner_id, program, valid_from, valid_until)
     select * from unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])`,
    [
      dataset.certifications.map((certification) => dataset.partners[certification.partnerIndex]!.id),
      dataset.certifications.map((certification) => certification.programKey),
      dataset.certifications.map((certification) => certification.validFrom.toISOString()),
      dataset.certifications.map((certification) => certification.validUntil.toISOString()),
    ],
  );
  const requirements = dataset.capabilities.flatMap((capability) =>
    capability.requiredCertifications.map((program) => [capability.key, program] as const),
  );
  await pool.query(
    `insert into baseline.capability_requirements (capability, program)
     select * from unnest($1::text[], $2::text[])`,
    [requirements.map(([capability]) => capability), requirements.map(([, program]) => program)],
  );

  // Two connections load alternate batches: the server parses one while the other is sent.
  const batches: Promise<void>[] = [];
  const inFlight = new Set<Promise<void>>();
  let loaded = 0;
  for (let from = 0; from < dataset.offerCount; from += LOAD_BATCH_ROWS) {
    const to = Math.min(dataset.offerCount, from + LOAD_BATCH_ROWS);
    const batch = insertOffers(pool, dataset, from, to).then(() => {
      loaded += to - from;
      progress(loaded);
      inFlight.delete(batch);
    });
    inFlight.add(batch);
    batches.push(batch);
    if (inFlight.size >= 2) await Promise.race(inFlight);
  }
  await Promise.all(batches);
  for (let from = 0; from < dataset.usageCount; from += LOAD_BATCH_ROWS * 4) {
    const to = Math.min(dataset.usageCount, from + LOAD_BATCH_ROWS * 4);
    const rows = Array.from({ length: to - from }, (_, k) => dataset.usage(from + k));
    await pool.query(
      `insert into baseline.capacity_usage (offer_id, period_start, reserved)
       select * from unnest($1::text[], $2::timestamptz[], $3::int8[])`,
      [
        rows.map((row) => dataset.offerId(row.offerIndex)),
        rows.map((row) => row.periodStart.toISOString()),
        rows.map((row) => row.reserved.toString()),
      ],
    );
  }
  const loadedAt = performance.now();
  await pool.query(INDEXES);
  const indexedAt = performance.now();
  const sizes = await pool.query<{ table_bytes: bigint; index_bytes: bigint }>(
    `select sum(pg_table_size(c.oid))::int8 as table_bytes, sum(pg_indexes_size(c.oid))::int8 as index_bytes
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'baseline' and c.relkind = 'r'`,
  );
  return {
    loadMs: loadedAt - started,
    indexMs: indexedAt - loadedAt,
    tableBytes: Number(sizes.rows[0]!.table_bytes),
    indexBytes: Number(sizes.rows[0]!.index_bytes),
  };
}

async function insertOffers(pool: pg.Pool, dataset: Dataset, from: number, to: number): Promise<void> {
  const columns = {
    id: [] as string[],
    partnerId: [] as string[],
    capability: [] as string[],
    regions: [] as string[],
    status: [] as string[],
    attributes: [] as string[],
    price: [] as string[],
    minQuantity: [] as string[],
    maxQuantity: [] as string[],
    leadTime: [] as number[],
    capacity: [] as string[],
    period: [] as string[],
  };
  for (let i = from; i < to; i++) {
    const offer = dataset.offer(i);
    columns.id.push(offer.id);
    columns.partnerId.push(offer.partnerId);
    columns.capability.push(offer.capabilityKey);
    columns.regions.push(offer.regions.join(','));
    columns.status.push(offer.status);
    columns.attributes.push(JSON.stringify(offer.attributes));
    columns.price.push(offer.unitPrice.amountMinor.toString());
    columns.minQuantity.push(offer.minQuantity.toString());
    columns.maxQuantity.push(offer.maxQuantity.toString());
    columns.leadTime.push(offer.leadTimeHours);
    columns.capacity.push(offer.capacityPerPeriod.toString());
    columns.period.push(offer.capacityPeriod);
  }
  await pool.query(
    `insert into baseline.offers (id, partner_id, capability, regions, status, attributes, unit_price_minor,
       currency, min_quantity, max_quantity, lead_time_hours, capacity_per_period, capacity_period)
     select id, partner_id, capability, string_to_array(regions, ','), status, attributes::jsonb, price, 'EUR',
       min_quantity, max_quantity, lead_time_hours, capacity, period
     from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[],
       $9::int8[], $10::int4[], $11::int8[], $12::text[])
       as t(id, partner_id, capability, regions, status, attributes, price, min_quantity, max_quantity,
         lead_time_hours, capacity, period)`,
    Object.values(columns),
  );
}

/** A query as SQL text and its parameters; the text depends only on the constraints' shape. */
export interface BaselineStatement {
  readonly text: string;
  readonly values: unknown[];
}

/**
 * The top-10 query in SQL, which also counts the candidates that pass its filters. Attribute
 * names and values are parameters like everything else; only the number and kind of
 * constraints change the text.
 */
export function baselineStatement(
  query: BenchQuery,
  now: Date,
  ranking: BaselineRanking = DEFAULT_BASELINE_RANKING,
): BaselineStatement {
  const values: unknown[] = [];
  const parameter = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  const hoursAvailable = Math.floor((query.neededBy.getTime() - now.getTime()) / HOUR_MS);
  const neededBy = parameter(query.neededBy.toISOString());
  const nowParameter = parameter(now.toISOString());
  const quantity = parameter(query.quantity);
  const filters = [
    `o.capability = ${parameter(query.capability)}`,
    `o.regions @> array[${parameter(query.region)}::text]`,
    `o.status = 'active'`,
    `o.min_quantity <= ${quantity}`,
    `o.max_quantity >= ${quantity}`,
    `o.lead_time_hours <= ${parameter(hoursAvailable)}`,
    'p.can_take_work',
    `o.capacity_per_period - coalesce(u.reserved, 0) >= ${quantity}`,
    `not exists (
        select 1 from baseline.capability_requirements r
        where r.capability = o.capability
          and not exists (
            select 1 from baseline.certifications c
            where c.partner_id = o.partner_id and c.program = r.program
              and c.valid_from <= ${nowParameter} and c.valid_until > ${nowParameter}))`,
  ];
  for (const [attribute, constraint] of Object.entries(query.constraints)) {
    if (constraint.eq !== undefined) {
      filters.push(
        `o.attributes @> jsonb_build_object(${parameter(attribute)}::text, ${parameter(JSON.stringify(constraint.eq))}::jsonb)`,
      );
    }
    if (constraint.in !== undefined) {
      const accepted = parameter(constraint.in.map((value) => JSON.stringify(value)));
      filters.push(`o.attributes -> ${parameter(attribute)} = any(${accepted}::jsonb[])`);
    }
    if (constraint.min !== undefined) {
      filters.push(`(o.attributes ->> ${parameter(attribute)})::numeric >= ${parameter(constraint.min)}`);
    }
    if (constraint.max !== undefined) {
      filters.push(`(o.attributes ->> ${parameter(attribute)})::numeric <= ${parameter(constraint.max)}`);
    }
  }
  const from = `
      from baseline.offers o
      join baseline.partners p on p.id = o.partner_id
      left join baseline.capacity_usage u
        on u.offer_id = o.id
       and u.period_start = date_trunc(o.capacity_period,
             ${neededBy}::timestamptz - make_interval(hours => o.lead_time_hours))
      where ${filters.join('\n        and ')}`;
  const { weights } = ranking;
  const text = `
    with candidates as (
      select o.id, o.partner_id, o.unit_price_minor as price, o.lead_time_hours as lead,
        p.activated_at <= ${nowParameter}::timestamptz and p.activated_at > ${nowParameter}::timestamptz
          - make_interval(days => ${parameter(ranking.newEntrantDays)}) as new_entrant
      ${from}
    ),
    scored as (
      -- The terms are added in the order the matcher adds them, so that equal inputs give equal
      -- floating-point scores in both.
      select id, partner_id, price, lead, count(*) over () as candidates,
        ${parameter(weights.price)}::float8 * coalesce((max(price) over () - price)::float8
            / nullif(max(price) over () - min(price) over (), 0), 1)
        + ${parameter(weights.quality)}::float8 * ${parameter(ranking.neutralQuality)}::float8
        + ${parameter(weights.reliability)}::float8 * ${parameter(ranking.neutralReliability)}::float8
        + ${parameter(weights.leadTime)}::float8 * coalesce((max(lead) over () - lead)::float8
            / nullif(max(lead) over () - min(lead) over (), 0), 1)
        + ${parameter(weights.affinity)}::float8 * 0
        + case when new_entrant then ${parameter(ranking.newEntrantBoost)}::float8 else 0 end as score
      from candidates
    ),
    ranked as (
      select *, row_number() over (partition by partner_id order by score desc, id collate "C") as partner_rank
      from scored
    )
    select id, partner_id, price, lead, score, candidates
    from ranked
    order by partner_rank > ${parameter(ranking.maxPerPartner)}, score desc, id collate "C"
    limit ${parameter(query.limit)}`;
  return { text, values };
}

export interface BaselineResult {
  readonly ids: string[];
  readonly scores: number[];
  /** Offers that passed the filters. */
  readonly candidates: number;
}

/** Runs a baseline statement: the ranked offer ids, their scores and the candidate count. */
export async function runBaseline(
  client: pg.Pool | pg.PoolClient,
  statement: BaselineStatement,
): Promise<BaselineResult> {
  const result = await client.query<{ id: string; score: number; candidates: bigint }>(
    statement.text,
    statement.values,
  );
  return {
    ids: result.rows.map((row) => row.id),
    scores: result.rows.map((row) => row.score),
    candidates: Number(result.rows[0]?.candidates ?? 0n),
  };
}
