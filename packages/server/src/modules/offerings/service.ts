import type { Selectable } from 'kysely';
import { type Actor, actorRef } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import { type FieldError, isDomainError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { newId, type OfferingVersionId } from '../../kernel/ids.js';
import type { Page, PageRequest } from '../../kernel/pagination.js';
import type { Capability, StandardsService } from '../standards/index.js';
import {
  type CapabilitySchema,
  checkDefinition,
  constraintSchemaErrors,
  keyErrors,
  type OfferingInput,
} from './domain/definition.js';
import { CAPABILITY_KEY_PATTERN } from './domain/graph.js';
import type { OfferingStatus, OfferingVersion, StepDefinition } from './domain/offering.js';
import { offeringsErrors } from './errors.js';
import { offeringJson } from './http/json.js';
import {
  findCurrent,
  findOffering,
  findVersion,
  findVersionById,
  listActiveNeeding,
  listCurrent,
  type OfferingWithVersion,
  toOffering,
  toVersion,
  versionRow,
} from './store/offerings-store.js';
import type { OfferingsTable } from './store/tables.js';

/**
 * Which publications `publish` may make: `create` only version 1 of a new offering, `next` only
 * the next version of an existing one, `any` whichever the key calls for.
 */
export type PublishMode = 'create' | 'next' | 'any';

export interface OfferingFilter extends PageRequest {
  readonly region?: string | undefined;
  readonly status?: OfferingStatus | undefined;
}

export type OfferingsService = ReturnType<typeof createOfferingsService>;

/** What `capability`'s attribute schema says of constraints on its attributes, per field. */
function constraintErrors(capability: Capability, constraints: StepDefinition['constraints']): FieldError[] {
  const schema: CapabilitySchema = { key: capability.key, attributeSchema: capability.attributeSchema };
  return constraintSchemaErrors('/constraints', schema, constraints);
}

/** A step of an offering on sale whose constraints its capability's current version does not allow. */
export interface StepOutOfDate {
  readonly offeringKey: string;
  readonly version: number;
  readonly stepKey: string;
  /** What the capability's attribute schema says of the step's constraints, per field. */
  readonly errors: readonly FieldError[];
}

/** The operator's staff and Baton itself see every offering; partners and customers the active ones. */
const seesEverything = (actor: Actor) => actor.kind === 'operator' || actor.kind === 'system';

/** Offering versions one process keeps; past it, the oldest are forgotten first. */
const VERSIONS_CACHED_MAX = 1_000;

/** Actions recorded in the audit log. */
const PUBLISH_ACTION = 'offerings.offering.publish';
const RETIRE_ACTION = 'offerings.offering.retire';

/**
 * Offerings: versioned blueprints of steps, each bought from a partner. A version is immutable
 * once published; publishing again makes the next version the one sold, and orders keep the
 * version they were placed on (`getVersion`).
 */
export function createOfferingsService({
  standards,
}: {
  standards: Pick<StandardsService, 'getCapability'>;
}) {
  /**
   * The problems the standards find in the steps: a capability that does not exist, or
   * constraints its attribute schema does not allow. Each capability is read once.
   */
  async function capabilityErrors(db: Executor, steps: readonly StepDefinition[]): Promise<FieldError[]> {
    const errors: FieldError[] = [];
    const capabilities = new Map<string, Capability | null>();
    for (const [index, step] of steps.entries()) {
      // A malformed key is reported by the definition's own rules.
      if (!CAPABILITY_KEY_PATTERN.test(step.capability)) continue;
      let capability = capabilities.get(step.capability);
      if (capability === undefined) {
        capability = await standards.getCapability(db, step.capability).catch((error: unknown) => {
          if (isDomainError(error) && error.code === 'standards.capability_not_found') return null;
          throw error;
        });
        capabilities.set(step.capability, capability);
      }
      if (capability === null) {
        errors.push({
          path: `/steps/${index}/capability`,
          rule: 'exists',
          message: `no capability ${step.capability}`,
        });
        continue;
      }
      const schema: CapabilitySchema = { key: capability.key, attributeSchema: capability.attributeSchema };
      errors.push(...constraintSchemaErrors(`/steps/${index}/constraints`, schema, step.constraints));
    }
    return errors;
  }

  /**
   * Versions already read, by id. A published version never changes and its id names no other,
   * so one read once (even by a transaction that then rolled back: nobody else knows its id)
   * is kept without being read again.
   */
  const versions = new Map<string, OfferingVersion>();

  function requireOperator(ctx: Context): void {
    if (!seesEverything(ctx.actor)) throw offeringsErrors.operatorsOnly();
  }

  /** The offering as the actor may see it: a retired one is absent to partners and customers. */
  async function visibleOffering(ctx: Context, key: string) {
    const offering = await findOffering(ctx.db, key);
    if (!offering || (offering.status !== 'active' && !seesEverything(ctx.actor))) {
      throw offeringsErrors.offeringNotFound(key);
    }
    return offering;
  }

  async function currentVersionOf(db: Executor, key: string, version: number): Promise<OfferingVersion> {
    const found = await findVersion(db, key, version);
    if (!found) throw offeringsErrors.versionNotFound(key, version);
    return found;
  }

  async function announce(ctx: Context, type: string, current: OfferingWithVersion) {
    // The event audience has no token for "every participant": an offering's events are the
    // operator's, and partners and customers read published offerings through the API.
    await appendEvent(ctx, {
      type,
      subjectId: current.offering.key,
      data: { offering: offeringJson(current) },
      audience: [],
    });
  }

  return {
    /**
     * Publishes a version of an offering: version 1 of a new key, or the next version of an
     * existing one, which becomes the version sold. The definition is checked in full (its
     * fields, the graph of its steps, and against the standards: every capability must exist and
     * every constraint name an attribute of its schema) and every problem is reported at once.
     * Concurrent publications of one key are ordered by a lock on the offering, so each gets its
     * own version number and none is lost.
     *
     * @throws DomainError `offerings.definition_invalid` (with an error per field),
     *   `offerings.already_exists` (`create`), `offerings.offering_not_found` (`next`),
     *   `offerings.offering_retired`, `offerings.operators_only`
     */
    async publish(
      ctx: Context,
      key: string,
      input: OfferingInput,
      mode: PublishMode = 'any',
    ): Promise<OfferingWithVersion> {
      requireTransaction(ctx.db);
      requireOperator(ctx);
      const checked = checkDefinition(input);
      const errors = [...keyErrors(key), ...checked.errors, ...(await capabilityErrors(ctx.db, input.steps))];
      if (errors.length > 0 || checked.definition === null) throw offeringsErrors.definitionInvalid(errors);
      const definition = checked.definition;

      let version = 1;
      // The primary key decides between concurrent creations of one key: the loser waits for the
      // winner's commit, then finds the offering and publishes the version after it.
      const created =
        mode === 'next'
          ? undefined
          : await ctx.db
              .insertInto('offerings')
              .values({
                key,
                name: definition.name,
                status: 'active',
                current_version: 1,
                created_at: ctx.now,
                updated_at: ctx.now,
                retired_at: null,
              })
              .onConflict((oc) => oc.column('key').doNothing())
              .returningAll()
              .executeTakeFirst();
      let offeringRow: Selectable<OfferingsTable>;
      if (created) {
        offeringRow = created;
      } else {
        if (mode === 'create') throw offeringsErrors.alreadyExists(key);
        // The lock orders concurrent publications: each one builds on the version before it.
        const head = await findOffering(ctx.db, key, 'update');
        if (!head) throw offeringsErrors.offeringNotFound(key);
        if (head.status === 'retired') throw offeringsErrors.offeringRetired(key);
        version = head.currentVersion + 1;
        offeringRow = await ctx.db
          .updateTable('offerings')
          .set({ current_version: version, name: definition.name, updated_at: ctx.now })
          .where('key', '=', key)
          .returningAll()
          .executeTakeFirstOrThrow();
      }
      const row = await ctx.db
        .insertInto('offering_versions')
        .values(versionRow(newId('ofv'), key, version, definition, ctx.now, actorRef(ctx.actor).id))
        .returningAll()
        .executeTakeFirstOrThrow();
      const published = { offering: toOffering(offeringRow), version: toVersion(row) };
      await recordAudit(ctx, {
        action: PUBLISH_ACTION,
        targetId: key,
        outcome: 'succeeded',
        details: { version, version_id: row.id },
      });
      await announce(ctx, 'offering.published', published);
      return published;
    },

    /**
     * An offering and the version sold now.
     *
     * @throws DomainError `offerings.offering_not_found` (also for a retired offering, to
     *   partners and customers)
     */
    async getOffering(ctx: Context, key: string): Promise<OfferingWithVersion> {
      // The offering with its current version in one query: quotes read it on every request.
      const found = await findCurrent(ctx.db, key);
      if (!found || (found.offering.status !== 'active' && !seesEverything(ctx.actor))) {
        throw offeringsErrors.offeringNotFound(key);
      }
      return found;
    },

    /**
     * One version by its id, whatever the offering's status: what an order placed on it reads.
     *
     * @throws DomainError `offerings.version_not_found`
     */
    async getVersion(db: Executor, id: OfferingVersionId): Promise<OfferingVersion> {
      const known = versions.get(id);
      if (known) return known;
      const version = await findVersionById(db, id);
      if (!version) throw offeringsErrors.versionIdNotFound(id);
      if (versions.size >= VERSIONS_CACHED_MAX) {
        const oldest = versions.keys().next();
        if (!oldest.done) versions.delete(oldest.value);
      }
      versions.set(id, version);
      return version;
    },

    /**
     * One version of an offering by its number.
     *
     * @throws DomainError `offerings.offering_not_found`, `offerings.version_not_found`
     */
    async getVersionByNumber(ctx: Context, key: string, version: number): Promise<OfferingVersion> {
      await visibleOffering(ctx, key);
      return currentVersionOf(ctx.db, key, version);
    },

    /**
     * What the capability's current version says of a step's constraints (of an offering
     * version, or of an order's leg, which keeps them): nothing while they still fit, else an
     * error per field; a capability that no longer exists is an error at `/capability`. For
     * telling why a step cannot be planned when no partner can do it.
     */
    async stepErrors(
      ctx: Context,
      step: Pick<StepDefinition, 'capability' | 'constraints'>,
    ): Promise<FieldError[]> {
      const capability = await standards.getCapability(ctx.db, step.capability).catch((error: unknown) => {
        if (isDomainError(error) && error.code === 'standards.capability_not_found') return null;
        throw error;
      });
      if (!capability)
        return [{ path: '/capability', rule: 'exists', message: `no capability ${step.capability}` }];
      return constraintErrors(capability, step.constraints);
    },

    /**
     * The steps of the offerings on sale (active, in their current version) that need
     * `capability` and whose constraints its attribute schema no longer allows: after a new
     * version of the capability, what the operator must publish anew before those offerings
     * can be quoted. Each such offering gets an `offering.out_of_date` event naming its steps.
     */
    async checkSteps(ctx: Context, capability: Capability): Promise<StepOutOfDate[]> {
      const outOfDate: StepOutOfDate[] = [];
      for (const current of await listActiveNeeding(ctx.db, capability.key)) {
        const steps: StepOutOfDate[] = [];
        for (const step of current.version.steps) {
          if (step.capability !== capability.key) continue;
          const errors = constraintErrors(capability, step.constraints);
          if (errors.length > 0)
            steps.push({
              offeringKey: current.offering.key,
              version: current.version.version,
              stepKey: step.key,
              errors,
            });
        }
        if (steps.length === 0) continue;
        outOfDate.push(...steps);
        await appendEvent(ctx, {
          type: 'offering.out_of_date',
          subjectId: current.offering.key,
          data: {
            offering: current.offering.key,
            version: current.version.version,
            capability: capability.key,
            steps: steps.map((step) => ({ step: step.stepKey, errors: step.errors })),
          },
          audience: [],
        });
      }
      return outOfDate;
    },

    /**
     * Offerings by key, each with its current version, filtered by a region its current version
     * is sold in and by status. Partners and customers see only active ones.
     */
    async listOfferings(ctx: Context, filter: OfferingFilter): Promise<Page<OfferingWithVersion>> {
      if (!seesEverything(ctx.actor)) {
        if (filter.status === 'retired') return { items: [], hasMore: false };
        return listCurrent(ctx.db, { ...filter, status: 'active' });
      }
      return listCurrent(ctx.db, filter);
    },

    /**
     * Retires an offering: it takes no new quotes and no new version. Orders placed on its
     * versions keep them.
     *
     * @throws DomainError `offerings.offering_not_found`, `offerings.offering_retired`,
     *   `offerings.operators_only`
     */
    async retire(ctx: Context, key: string): Promise<OfferingWithVersion> {
      requireTransaction(ctx.db);
      requireOperator(ctx);
      const head = await findOffering(ctx.db, key, 'update');
      if (!head) throw offeringsErrors.offeringNotFound(key);
      if (head.status === 'retired') throw offeringsErrors.offeringRetired(key);
      const row = await ctx.db
        .updateTable('offerings')
        .set({ status: 'retired', retired_at: ctx.now, updated_at: ctx.now })
        .where('key', '=', key)
        .returningAll()
        .executeTakeFirstOrThrow();
      const retired = {
        offering: toOffering(row),
        version: await currentVersionOf(ctx.db, key, row.current_version),
      };
      await recordAudit(ctx, {
        action: RETIRE_ACTION,
        targetId: key,
        outcome: 'succeeded',
        details: { version: row.current_version },
      });
      await announce(ctx, 'offering.retired', retired);
      return retired;
    },
  };
}
