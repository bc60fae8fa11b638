import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { type Actor, systemActor } from '../../kernel/actor.js';
import type { Context } from '../../kernel/context.js';
import type { Tx } from '../../kernel/database/database.js';
import { runInTransaction } from '../../kernel/database/transaction.js';
import { type DomainError, isDomainError } from '../../kernel/errors.js';
import { type ApiKeyId, type CustomerId, newId, type PartnerId, type UserId } from '../../kernel/ids.js';
import { createTestApp } from '../../testing/test-app.js';
import type { OfferingInput } from './index.js';

/** Simultaneous publications in the test of races. */
const CONCURRENT_PUBLICATIONS = 8;

const FABRIC_SCHEMA = {
  type: 'object',
  properties: {
    material: { type: 'string', enum: ['cotton', 'linen', 'wool'] },
    weight_gsm: { type: 'integer', minimum: 50 },
  },
};
const OPEN_SCHEMA = { type: 'object', properties: { express: { type: 'boolean' } } };

const garment = (fields: Partial<OfferingInput> = {}): OfferingInput => ({
  name: 'Custom garment run',
  description: 'Fabric, dyeing, sewing, inspection and shipping.',
  unit: 'garment',
  currency: 'EUR',
  pricing: { kind: 'cost_plus', marginBps: 1500 },
  regions: ['eu-west'],
  steps: [
    {
      key: 'fabric',
      name: 'Fabric',
      capability: 'fabric',
      constraints: { material: { eq: 'cotton' }, weight_gsm: { min: 120, max: 300 } },
      quantityPerUnit: '1.2',
      after: [],
    },
    {
      key: 'dyeing',
      name: 'Dyeing',
      capability: 'dyeing',
      constraints: {},
      quantityPerUnit: '1.2',
      after: ['fabric'],
    },
    {
      key: 'sewing',
      name: 'Sewing',
      capability: 'sewing',
      constraints: {},
      quantityPerUnit: '1',
      after: ['dyeing'],
    },
    {
      key: 'inspection',
      name: 'Inspection',
      capability: 'inspection',
      constraints: {},
      quantityPerUnit: '1',
      after: ['sewing'],
    },
    {
      key: 'shipping',
      name: 'Shipping',
      capability: 'shipping',
      constraints: { express: { eq: true } },
      quantityPerUnit: '0.05',
      after: ['inspection'],
    },
  ],
  quantityMin: 10,
  quantityMax: 5000,
  quoteValidityMinutes: 30,
  acceptanceWindowMinutes: 120,
  autoConfirmHours: 72,
  rejectionPolicy: 'redo',
  maxRedos: 2,
  ...fields,
});

describe('offerings', async () => {
  const app = await createTestApp();
  const db = app.baton.database.db;
  const { offerings, standards } = app.baton.services;

  const partner: Actor = {
    kind: 'partner',
    partnerId: newId('ptn') as PartnerId,
    userId: newId('usr') as UserId,
    role: 'owner',
    keyId: newId('key') as ApiKeyId,
  };
  const customer: Actor = {
    kind: 'customer',
    customerId: newId('cus') as CustomerId,
    userId: newId('usr') as UserId,
    keyId: newId('key') as ApiKeyId,
  };

  /** Runs a use case in a transaction, at the test clock's time, as Baton itself unless told. */
  function run<T>(work: (ctx: Context & { db: Tx }) => Promise<T>, actor: Actor = systemActor('test')) {
    return runInTransaction(db, (tx) =>
      work({ db: tx, actor, now: app.clock.now(), requestId: null, ip: null }),
    );
  }
  const read = (actor: Actor = systemActor('test')): Context => ({
    db,
    actor,
    now: app.clock.now(),
    requestId: null,
    ip: null,
  });

  async function failure(promise: Promise<unknown>): Promise<DomainError> {
    const error = await promise.then(
      () => null,
      (caught: unknown) => caught,
    );
    if (!isDomainError(error)) throw new Error(`expected a domain error, got ${String(error)}`);
    return error;
  }

  const counts = async () => {
    const { rows } = await sql<{ offerings: string; versions: string; events: string; audits: string }>`
      select (select count(*) from offerings) as offerings,
             (select count(*) from offering_versions) as versions,
             (select count(*) from events where type like 'offering.%') as events,
             (select count(*) from audit_records where action like 'offerings.%') as audits`.execute(db);
    return rows[0];
  };

  await run(async (ctx) => {
    for (const key of ['fabric', 'dyeing', 'sewing', 'inspection', 'shipping']) {
      await standards.defineCapability(ctx, {
        key,
        name: key,
        unit: key === 'fabric' ? 'kg' : 'piece',
        attributeSchema: key === 'fabric' ? FABRIC_SCHEMA : OPEN_SCHEMA,
        requiredCertifications: [],
        serviceLevels: { maxLeadTimeHours: null, acceptanceWindowHours: null },
      });
    }
  });

  it('publishes version 1 of a new offering, then version 2, which becomes the one sold', async () => {
    const first = await run((ctx) => offerings.publish(ctx, 'garment-v', garment()));
    expect(first.offering).toMatchObject({
      key: 'garment-v',
      status: 'active',
      currentVersion: 1,
      retiredAt: null,
    });
    expect(first.version).toMatchObject({ offeringKey: 'garment-v', version: 1, publishedBy: 'test' });
    expect(first.version.id).toMatch(/^ofv_/);
    expect(first.version.steps.map((step) => step.key)).toEqual([
      'fabric',
      'dyeing',
      'sewing',
      'inspection',
      'shipping',
    ]);
    expect(first.version.steps[0]?.constraints).toEqual({
      material: { eq: 'cotton' },
      weight_gsm: { min: 120, max: 300 },
    });

    app.clock.advance(60_000);
    const second = await run((ctx) =>
      offerings.publish(ctx, 'garment-v', garment({ name: 'Garment run', quantityMax: 9000 }), 'next'),
    );
    expect(second.offering).toMatchObject({ currentVersion: 2, name: 'Garment run' });
    expect(second.version.version).toBe(2);

    const current = await offerings.getOffering(read(), 'garment-v');
    expect(current.version.id).toBe(second.version.id);
    // Version 1 is kept as it was: orders placed on it read it by id or by number.
    expect(await offerings.getVersion(db, first.version.id)).toEqual(first.version);
    expect(await offerings.getVersionByNumber(read(), 'garment-v', 1)).toEqual(first.version);
    expect((await offerings.getVersionByNumber(read(), 'garment-v', 1)).quantityMax).toBe(5000);

    const audits = await db
      .selectFrom('audit_records')
      .select(['action', 'details'])
      .where('target_id', '=', 'garment-v')
      .orderBy('seq')
      .execute();
    expect(audits.map((audit) => audit.action)).toEqual([
      'offerings.offering.publish',
      'offerings.offering.publish',
    ]);
    const events = await db
      .selectFrom('events')
      .select(['type', 'data', 'audience'])
      .where('subject_id', '=', 'garment-v')
      .orderBy('seq')
      .execute();
    expect(events.map((event) => event.type)).toEqual(['offering.published', 'offering.published']);
    expect(events[1]?.data).toMatchObject({
      offering: { key: 'garment-v', current_version: { version: 2 } },
    });
    expect(events[1]?.audience).toEqual([]);
  });

  it('keeps a fixed price exact in minor units', async () => {
    const { version } = await run((ctx) =>
      offerings.publish(
        ctx,
        'garment-fixed',
        garment({ pricing: { kind: 'fixed', unitPrice: { amount: '9999999999999.99', currency: 'EUR' } } }),
      ),
    );
    expect(version.pricing).toEqual({ kind: 'fixed', unitPriceMinor: 999_999_999_999_999n });
    expect((await offerings.getVersion(db, version.id)).pricing).toEqual({
      kind: 'fixed',
      unitPriceMinor: 999_999_999_999_999n,
    });
  });

  it('refuses a second creation of a key, and a next version of a key that does not exist', async () => {
    await run((ctx) => offerings.publish(ctx, 'garment-once', garment(), 'create'));
    expect(
      (await failure(run((ctx) => offerings.publish(ctx, 'garment-once', garment(), 'create')))).code,
    ).toBe('offerings.already_exists');
    expect(
      (await failure(run((ctx) => offerings.publish(ctx, 'no-such-offering', garment(), 'next')))).code,
    ).toBe('offerings.offering_not_found');
    expect(await findOfferingRow('no-such-offering')).toBeUndefined();
  });

  it('reports a capability that does not exist and constraints its schema does not allow, and stores nothing', async () => {
    const before = await counts();
    const steps = garment().steps.map((step) =>
      step.key === 'dyeing'
        ? { ...step, capability: 'embroidery' }
        : step.key === 'fabric'
          ? {
              ...step,
              constraints: { colour: { eq: 'red' }, material: { eq: 'silk' }, weight_gsm: { min: 1 } },
            }
          : step,
    );
    const error = await failure(run((ctx) => offerings.publish(ctx, 'garment-bad', garment({ steps }))));
    expect(error.code).toBe('offerings.definition_invalid');
    expect(error.details.errors).toEqual([
      {
        path: '/steps/0/constraints/colour',
        rule: 'exists',
        message: 'the capability fabric has no attribute colour',
      },
      { path: '/steps/0/constraints/material/eq', rule: 'enum', message: 'is not a value material can have' },
      { path: '/steps/1/capability', rule: 'exists', message: 'no capability embroidery' },
    ]);
    expect(await counts()).toEqual(before);
  });

  it('refuses a cycle among the steps, naming it, and stores nothing', async () => {
    const before = await counts();
    const steps = garment().steps.map((step) =>
      step.key === 'sewing' ? { ...step, after: ['dyeing', 'inspection'] } : step,
    );
    const error = await failure(run((ctx) => offerings.publish(ctx, 'garment-cycle', garment({ steps }))));
    expect(error.code).toBe('offerings.definition_invalid');
    expect(error.details.errors).toEqual([
      { path: '/steps/2/after/1', rule: 'acyclic', message: 'forms a cycle: sewing → inspection → sewing' },
    ]);
    expect(await counts()).toEqual(before);
    expect(await findOfferingRow('garment-cycle')).toBeUndefined();
  });

  it('reports the definition’s own problems and the standards’ together', async () => {
    const steps = garment().steps.map((step) =>
      step.key === 'shipping' ? { ...step, capability: 'teleport' } : step,
    );
    const error = await failure(
      run((ctx) => offerings.publish(ctx, 'Bad Key', garment({ steps, currency: 'XXX', regions: [] }))),
    );
    expect(error.details.errors?.map((fieldError) => fieldError.path)).toEqual([
      '/key',
      '/currency',
      '/regions',
      '/steps/4/capability',
    ]);
  });

  it('retires an offering: it takes no new version, partners and customers no longer see it, its versions stay', async () => {
    const { version } = await run((ctx) => offerings.publish(ctx, 'garment-old', garment()));
    expect((await offerings.getOffering(read(partner), 'garment-old')).offering.status).toBe('active');
    app.clock.advance(60_000);
    const retired = await run((ctx) => offerings.retire(ctx, 'garment-old'));
    expect(retired.offering).toMatchObject({ status: 'retired', retiredAt: app.clock.now() });

    expect((await failure(run((ctx) => offerings.publish(ctx, 'garment-old', garment())))).code).toBe(
      'offerings.offering_retired',
    );
    expect((await failure(run((ctx) => offerings.retire(ctx, 'garment-old')))).code).toBe(
      'offerings.offering_retired',
    );
    for (const actor of [partner, customer]) {
      expect((await failure(offerings.getOffering(read(actor), 'garment-old'))).code).toBe(
        'offerings.offering_not_found',
      );
      expect((await failure(offerings.getVersionByNumber(read(actor), 'garment-old', 1))).code).toBe(
        'offerings.offering_not_found',
      );
    }
    expect((await offerings.getOffering(read(), 'garment-old')).offering.status).toBe('retired');
    expect(await offerings.getVersion(db, version.id)).toEqual(version);
    const events = await db
      .selectFrom('events')
      .select('type')
      .where('subject_id', '=', 'garment-old')
      .orderBy('seq')
      .execute();
    expect(events.map((event) => event.type)).toEqual(['offering.published', 'offering.retired']);
  });

  it('lets only the operator and Baton publish and retire', async () => {
    for (const actor of [partner, customer]) {
      expect(
        (await failure(run((ctx) => offerings.publish(ctx, 'garment-theirs', garment()), actor))).code,
      ).toBe('offerings.operators_only');
      expect((await failure(run((ctx) => offerings.retire(ctx, 'garment-v'), actor))).code).toBe(
        'offerings.operators_only',
      );
    }
  });

  it('lists offerings by key with their current version, by region and status, a page at a time', async () => {
    for (const [key, regions] of [
      ['list-a', ['us-east']],
      ['list-b', ['us-east', 'us-west']],
      ['list-c', ['us-west']],
      ['list-d', ['us-east']],
    ] as const) {
      await run((ctx) => offerings.publish(ctx, key, garment({ regions: [...regions] })));
    }
    await run((ctx) => offerings.publish(ctx, 'list-b', garment({ regions: ['us-east'] })));
    await run((ctx) => offerings.retire(ctx, 'list-d'));

    const keys = async (actor: Actor, filter: Parameters<typeof offerings.listOfferings>[1]) =>
      (await offerings.listOfferings(read(actor), filter)).items.map(({ offering }) => offering.key);
    expect(await keys(systemActor('test'), { region: 'us-east', limit: 10 })).toEqual([
      'list-a',
      'list-b',
      'list-d',
    ]);
    // The region of the current version counts: list-b's version 2 is no longer sold in us-west.
    expect(await keys(systemActor('test'), { region: 'us-west', limit: 10 })).toEqual(['list-c']);
    expect(await keys(systemActor('test'), { region: 'us-east', status: 'retired', limit: 10 })).toEqual([
      'list-d',
    ]);
    expect(await keys(partner, { region: 'us-east', limit: 10 })).toEqual(['list-a', 'list-b']);
    expect(await keys(customer, { region: 'us-east', status: 'retired', limit: 10 })).toEqual([]);

    const first = await offerings.listOfferings(read(), { region: 'us-east', limit: 2 });
    expect(first.items.map(({ offering }) => offering.key)).toEqual(['list-a', 'list-b']);
    expect(first.hasMore).toBe(true);
    expect(first.items[1]?.version.version).toBe(2);
    const second = await offerings.listOfferings(read(), { region: 'us-east', after: 'list-b', limit: 2 });
    expect(second).toMatchObject({ hasMore: false });
    expect(second.items.map(({ offering }) => offering.key)).toEqual(['list-d']);
  });

  it('never changes a published version, even by a direct update', async () => {
    const { version } = await run((ctx) => offerings.publish(ctx, 'garment-fixed-forever', garment()));
    await expect(
      db.updateTable('offering_versions').set({ quantity_max: 1 }).where('id', '=', version.id).execute(),
    ).rejects.toThrow();
    await expect(db.deleteFrom('offering_versions').where('id', '=', version.id).execute()).rejects.toThrow();
    expect(await offerings.getVersion(db, version.id)).toEqual(version);
  });

  it(`gives ${CONCURRENT_PUBLICATIONS} concurrent publications of a new key each their own version, losing none`, async () => {
    const results = await Promise.all(
      Array.from({ length: CONCURRENT_PUBLICATIONS }, (_, i) =>
        run((ctx) => offerings.publish(ctx, 'garment-race', garment({ quantityMax: 1000 + i }))),
      ),
    );
    expect(results.map((result) => result.version.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: CONCURRENT_PUBLICATIONS }, (_, i) => i + 1),
    );
    const rows = await db
      .selectFrom('offering_versions')
      .select(['version', 'quantity_max'])
      .where('offering_key', '=', 'garment-race')
      .orderBy('version')
      .execute();
    expect(rows.map((row) => row.version)).toEqual(
      Array.from({ length: CONCURRENT_PUBLICATIONS }, (_, i) => i + 1),
    );
    // Every publication's own definition was stored.
    expect(rows.map((row) => row.quantity_max).sort((a, b) => a - b)).toEqual(
      Array.from({ length: CONCURRENT_PUBLICATIONS }, (_, i) => 1000 + i),
    );
    const head = await offerings.getOffering(read(), 'garment-race');
    expect(head.offering.currentVersion).toBe(CONCURRENT_PUBLICATIONS);
    expect(head.version.version).toBe(CONCURRENT_PUBLICATIONS);

    const more = await Promise.all(
      Array.from({ length: CONCURRENT_PUBLICATIONS }, () =>
        run((ctx) => offerings.publish(ctx, 'garment-race', garment(), 'next')),
      ),
    );
    expect(more.map((result) => result.version.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: CONCURRENT_PUBLICATIONS }, (_, i) => CONCURRENT_PUBLICATIONS + i + 1),
    );
  });

  async function findOfferingRow(key: string) {
    return db.selectFrom('offerings').selectAll().where('key', '=', key).executeTakeFirst();
  }
});
