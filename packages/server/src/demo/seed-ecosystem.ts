import type { ManualClock } from '../kernel/clock.js';
import type { DemoClient } from './demo-client.js';
import {
  CERTIFICATIONS,
  DEMO_CURRENCY,
  DEMO_POSTING_APPROVAL_ABOVE,
  DEMO_REFUND_APPROVAL_ABOVE,
  DEMO_REGIONS,
  FEE_RULES,
  NAME_WORDS,
  OFFERINGS,
  PARTNER_TYPES,
  PARTNERS_PER_REGION,
  type PartnerTypeSpec,
  SUBSIDY,
} from './ecosystem.js';
import type { SeededRandom } from './seeded-random.js';

/*
 * Seeds the demo ecosystem through the API, as an operator and its partners would build it:
 * the operator defines partner types, certification programs, capabilities, the fee schedule,
 * a subsidy programme and the offerings; partners apply, are reviewed and approved (a few are
 * left pending, put on probation or suspended), get certified where their capability asks for
 * it, and import their offers in bulk.
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;

/** Where a partner ends up after its application. */
export type PartnerStanding = 'active' | 'probation' | 'suspended' | 'applied' | 'under_review';

export interface SeededPartner {
  readonly id: string;
  readonly key: string;
  readonly name: string;
  readonly type: PartnerTypeSpec;
  readonly regions: readonly string[];
  readonly standing: PartnerStanding;
}

export interface Ecosystem {
  readonly regions: readonly string[];
  readonly partners: readonly SeededPartner[];
  readonly partnersById: ReadonlyMap<string, SeededPartner>;
  /** Every offer's lead time, by offer id: partners plan their work with it. */
  readonly leadTimeHours: ReadonlyMap<string, number>;
  readonly offers: number;
  /** How many partners can take work for a capability in a region. */
  candidates(capability: string, region: string): number;
}

export interface SeedOptions {
  readonly client: DemoClient;
  readonly adminKey: string;
  readonly clock: ManualClock;
  readonly random: SeededRandom;
  readonly partners: number;
  /** Called after each partner is set up. */
  readonly onPartner?: (done: number, total: number) => void;
}

const money = (minor: number) => (minor / 100).toFixed(2);

/** Splits `total` partners over the types by weight (largest remainder), at least one of each. */
export function partnersPerType(total: number): Map<PartnerTypeSpec, number> {
  const weights = PARTNER_TYPES.reduce((sum, type) => sum + type.weight, 0);
  const rest = total - PARTNER_TYPES.length;
  const exact = PARTNER_TYPES.map((type) => (rest * type.weight) / weights);
  const counts = exact.map((value) => Math.floor(value));
  let left = rest - counts.reduce((sum, count) => sum + count, 0);
  const order = exact
    .map((value, index) => ({ index, remainder: value - Math.floor(value) }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of order) {
    if (left <= 0) break;
    counts[index] = (counts[index] ?? 0) + 1;
    left -= 1;
  }
  return new Map(PARTNER_TYPES.map((type, index) => [type, 1 + (counts[index] ?? 0)]));
}

/** Regions in use for an ecosystem of `partners`: one for about every 60 partners. */
export function regionsFor(partners: number): string[] {
  const count = Math.max(1, Math.min(DEMO_REGIONS.length, Math.round(partners / PARTNERS_PER_REGION)));
  return DEMO_REGIONS.slice(0, count);
}

export async function seedEcosystem(options: SeedOptions): Promise<Ecosystem> {
  const { client, adminKey, clock, random } = options;
  const admin = { key: adminKey };
  const regions = regionsFor(options.partners);

  // The operator's set-up, one step a few minutes after the other.
  const step = () => clock.advance(random.int(2, 9) * MINUTE_MS);
  for (const type of PARTNER_TYPES) {
    await client.post('/v1/partner-types', {
      ...admin,
      body: {
        key: type.key,
        name: type.name,
        profile_schema: {
          type: 'object',
          properties: {
            founded: { type: 'integer', minimum: 1900, maximum: 2100 },
            staff: { type: 'integer', minimum: 1 },
          },
          additionalProperties: false,
        },
      },
    });
  }
  step();
  for (const program of CERTIFICATIONS) {
    await client.post('/v1/certification-programs', {
      ...admin,
      body: {
        key: program.key,
        name: program.name,
        evidence: [{ key: program.evidenceKey, description: program.evidence }],
        validity_days: program.validityDays,
      },
    });
  }
  step();
  for (const type of PARTNER_TYPES) {
    const spec = type.capability;
    await client.post('/v1/capabilities', {
      ...admin,
      body: {
        key: spec.key,
        name: spec.name,
        unit: spec.unit,
        attribute_schema: {
          type: 'object',
          properties: Object.fromEntries(
            Object.entries(spec.attributes).map(([name, values]) => [name, { type: 'string', enum: values }]),
          ),
          required: Object.keys(spec.attributes),
          additionalProperties: false,
        },
        required_certifications: spec.requiredCertifications,
      },
    });
  }
  step();
  await client.post('/v1/fee-schedule-versions', {
    ...admin,
    body: { currency: DEMO_CURRENCY, note: 'Launch schedule', rules: FEE_RULES },
  });
  // Refunds by hand beyond this need a second operator.
  await client.put(`/v1/refund-thresholds/${DEMO_CURRENCY}`, {
    ...admin,
    body: { approval_above: DEMO_REFUND_APPROVAL_ABOVE },
  });
  // So do postings by hand beyond this, per operator and day.
  await client.put(`/v1/ledger/approval-thresholds/${DEMO_CURRENCY}`, {
    ...admin,
    body: { approval_above: DEMO_POSTING_APPROVAL_ABOVE },
  });
  step();
  const programme = await client.post<{ id: string }>('/v1/subsidies/programmes', {
    ...admin,
    body: {
      name: SUBSIDY.name,
      side: SUBSIDY.side,
      kind: SUBSIDY.kind,
      share_bps: SUBSIDY.share_bps,
      budget: { amount: SUBSIDY.budget, currency: DEMO_CURRENCY },
      cap_per_participant: { amount: SUBSIDY.cap_per_participant, currency: DEMO_CURRENCY },
      starts_at: clock.now().toISOString(),
      ends_at: new Date(clock.now().getTime() + SUBSIDY.days * 24 * HOUR_MS).toISOString(),
      targeting: { capabilities: SUBSIDY.capabilities },
    },
  });
  await client.post(`/v1/subsidies/programmes/${programme.id}/activate`, { ...admin, idempotent: true });
  step();
  for (const offering of OFFERINGS) {
    await client.post('/v1/offerings', {
      ...admin,
      body: { key: offering.key, currency: DEMO_CURRENCY, regions, ...offering.definition },
    });
  }

  // Partners join over the next day and a half.
  const counts = partnersPerType(options.partners);
  const plan = plannedPartners(counts, regions, random);
  const gapMs = Math.max(MINUTE_MS, Math.floor((36 * HOUR_MS) / Math.max(1, plan.length)));
  const partners: SeededPartner[] = [];
  const leadTimeHours = new Map<string, number>();
  let offers = 0;
  const names = new Map<string, number>();
  for (const [index, planned] of plan.entries()) {
    clock.advance(gapMs);
    const base = `${random.pick(NAME_WORDS)} ${random.pick(planned.type.suffixes)}`;
    const seen = (names.get(base) ?? 0) + 1;
    names.set(base, seen);
    const name = seen === 1 ? base : `${base} ${seen}`;
    const applied = await client.post<{ partner: { id: string }; api_key: { secret: string } }>(
      '/v1/partner-applications',
      {
        key: null,
        body: {
          partner_type: planned.type.key,
          name,
          email: `partner-${index + 1}@${planned.type.key}.demo.test`,
          regions: planned.regions,
          profile: { founded: random.int(1950, 2024), staff: random.int(2, 400) },
        },
      },
    );
    const partner: SeededPartner = {
      id: applied.partner.id,
      key: applied.api_key.secret,
      name,
      type: planned.type,
      regions: planned.regions,
      standing: planned.standing,
    };
    partners.push(partner);
    const transition = (to: string, reason: string) =>
      client.post(`/v1/partners/${partner.id}/transitions`, { ...admin, body: { to, reason } });
    if (planned.standing !== 'applied') await transition('under_review', 'Documents received.');
    if (planned.standing === 'applied' || planned.standing === 'under_review') {
      options.onPartner?.(index + 1, plan.length);
      continue;
    }
    await transition('active', 'Checks passed.');
    for (const program of planned.type.capability.requiredCertifications) {
      const spec = CERTIFICATIONS.find((candidate) => candidate.key === program);
      const certification = await client.post<{ id: string }>(`/v1/partners/${partner.id}/certifications`, {
        key: partner.key,
        body: {
          program,
          evidence: { [spec?.evidenceKey ?? 'evidence']: `${program.toUpperCase()}-${index + 1}` },
        },
      });
      await client.post(`/v1/certifications/${certification.id}/grant`, { ...admin, body: {} });
    }
    const items = offersOf(partner, random);
    const imported = await client.post<{ results: { index: number; status: string; offer_id?: string }[] }>(
      `/v1/partners/${partner.id}/offers/import`,
      { key: partner.key, body: { items } },
    );
    for (const result of imported.results) {
      if (result.status !== 'created' || !result.offer_id) {
        throw new Error(`The demo's offer ${items[result.index]?.external_ref} of ${name} was refused.`);
      }
      leadTimeHours.set(result.offer_id, items[result.index]?.lead_time_hours ?? 0);
      offers += 1;
    }
    if (planned.standing === 'probation') await transition('probation', 'Two complaints under review.');
    if (planned.standing === 'suspended') await transition('suspended', 'Insurance certificate expired.');
    options.onPartner?.(index + 1, plan.length);
  }

  const working = partners.filter(
    (partner) => partner.standing === 'active' || partner.standing === 'probation',
  );
  return {
    regions,
    partners,
    partnersById: new Map(partners.map((partner) => [partner.id, partner])),
    leadTimeHours,
    offers,
    candidates: (capability, region) =>
      working.filter(
        (partner) => partner.type.capability.key === capability && partner.regions.includes(region),
      ).length,
  };
}

interface PlannedPartner {
  readonly type: PartnerTypeSpec;
  readonly regions: string[];
  readonly standing: PartnerStanding;
}

/**
 * Who joins: each type's partners spread over the regions in turn (some serve a neighbouring
 * region too), so every capability can be bought in every region; a few applications are left
 * pending, and a few partners end on probation or suspended, always leaving each capability two
 * partners that can work in every region.
 */
function plannedPartners(
  counts: Map<PartnerTypeSpec, number>,
  regions: readonly string[],
  random: SeededRandom,
): PlannedPartner[] {
  const planned: PlannedPartner[] = [];
  for (const [type, count] of counts) {
    for (let n = 0; n < count; n++) {
      const home = regions[n % regions.length] as string;
      const served = new Set([home]);
      if (regions.length > 1 && random.chance(0.4)) served.add(regions[(n + 1) % regions.length] as string);
      if (regions.length > 2 && random.chance(0.2)) served.add(regions[(n + 2) % regions.length] as string);
      // Beyond two working partners per region, some are not working.
      const spare = n >= 2 * regions.length;
      const standing: PartnerStanding = !spare
        ? 'active'
        : random.weighted([
            ['active', 88],
            ['probation', 4],
            ['suspended', 3],
            ['under_review', 3],
            ['applied', 2],
          ]);
      planned.push({ type, regions: [...served], standing });
    }
  }
  return random.shuffle(planned);
}

/** A partner's offers: per region served, a standard offer per attribute set, and express or bulk ones. */
function offersOf(partner: SeededPartner, random: SeededRandom) {
  const spec = partner.type.capability;
  const [minPrice, maxPrice] = spec.unitPriceMinor;
  const basePrice = random.int(minPrice, maxPrice);
  const baseLead = random.int(spec.leadTimeHours[0], spec.leadTimeHours[1]);
  const capacity = random.int(spec.capacityPerWeek[0], spec.capacityPerWeek[1]);
  // Each partner has its own line: one to three values of each attribute.
  const lines = Object.entries(spec.attributes).map(([name, values]) => ({
    name,
    values: random.sample(values, random.int(1, Math.min(3, values.length))),
  }));
  const combinations = lines.reduce<Record<string, string>[]>(
    (sets, line) => sets.flatMap((set) => line.values.map((value) => ({ ...set, [line.name]: value }))),
    [{}],
  );
  const items: {
    external_ref: string;
    lead_time_hours: number;
    [field: string]: unknown;
  }[] = [];
  for (const region of partner.regions) {
    // Prices differ a little by region.
    const regional = basePrice * random.between(0.95, 1.08);
    for (const attributes of combinations) {
      const ref = `${spec.key}-${region}-${Object.values(attributes).join('-')}`;
      const offer = (variant: string, price: number, lead: number, minQuantity = 1) => ({
        external_ref: variant === 'standard' ? ref : `${ref}-${variant}`,
        capability: spec.key,
        attributes,
        unit_price: { amount: money(Math.max(1, Math.round(price))), currency: DEMO_CURRENCY },
        min_quantity: minQuantity,
        max_quantity: spec.maxQuantity,
        lead_time_hours: lead,
        regions: [region],
        capacity_per_period: capacity,
        capacity_period: 'week',
        status: 'active',
      });
      items.push(offer('standard', regional * random.between(0.97, 1.03), baseLead));
      if (spec.express) items.push(offer('express', regional * 1.25, Math.max(1, Math.ceil(baseLead * 0.6))));
      if (spec.maxQuantity >= 1000) items.push(offer('bulk', regional * 0.9, baseLead + 24, 200));
    }
  }
  return items;
}
