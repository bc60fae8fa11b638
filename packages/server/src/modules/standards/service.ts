import { sql } from 'kysely';
import { type Actor, actorRef } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import type { FieldError } from '../../kernel/errors.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { type CertificationId, newId, type PartnerId } from '../../kernel/ids.js';
import type { Jobs } from '../../kernel/jobs/jobs.js';
import { compileJsonSchema, validateDocument } from '../../kernel/json-schema.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import type { ParticipantsService } from '../participants/index.js';
import {
  type Capability,
  type CapabilityChanges,
  type CapabilityDefinition,
  definitionErrors,
  nextDefinition,
} from './domain/capability.js';
import {
  type Certification,
  type CertificationProgram,
  type CertificationStatus,
  coveredUntil,
  DECISION_FROM,
  evidenceErrors,
  grantPeriod,
  type ProgramDefinition,
  programErrors,
  type ValidityPeriod,
} from './domain/certification.js';
import { standardsErrors } from './errors.js';
import {
  currentVersions,
  findCapabilityVersion,
  findCertification,
  findCurrentCapability,
  findProgram,
  requiredByPrograms,
  toCapability,
  toCertification,
  toProgram,
} from './store/standards-store.js';

/** What changes in a program; every field left out stays as it is. */
export interface ProgramChanges {
  readonly name?: string | undefined;
  readonly description?: string | undefined;
  readonly requirements?: string | undefined;
  readonly evidence?: ProgramDefinition['evidence'] | undefined;
  readonly validityDays?: number | undefined;
}

export interface CertificationFilter extends PageRequest {
  readonly partnerId?: PartnerId | undefined;
  readonly programKey?: string | undefined;
  readonly status?: CertificationStatus | undefined;
}

/** A program a partner holds valid at some instant, and until when it holds it without a gap. */
export interface ValidCertification {
  readonly partnerId: PartnerId;
  readonly programKey: string;
  readonly validUntil: Date;
}

/**
 * The problems with `attributes` against one version of a capability, one per field; an
 * empty list means they conform. Pure, so that a caller re-checking many offers against one
 * version reads the capability once.
 */
export function validateAttributes(capability: Capability, attributes: unknown): FieldError[] {
  return validateDocument(compileJsonSchema(capability.attributeSchema), attributes);
}

/** A program's fields as the API names them, for audit records. */
const PROGRAM_FIELDS: Readonly<Record<keyof ProgramChanges, string>> = {
  name: 'name',
  description: 'description',
  requirements: 'requirements',
  evidence: 'evidence',
  validityDays: 'validity_days',
};

export type StandardsService = ReturnType<typeof createStandardsService>;

/**
 * Capabilities and certification. Expiry runs as a daily job (see `jobs.ts`); every check of
 * validity reads the validity dates themselves, so a certification stops counting the moment
 * it ends, whether or not the job has marked it expired yet. The service itself enqueues no
 * job: `jobs` is in its dependencies only because `main.ts` wires it so.
 */
export function createStandardsService({ participants }: { jobs: Jobs; participants: ParticipantsService }) {
  /** A capability may only require programs that exist; reports each one that does not. */
  async function checkPrograms(db: Executor, programs: readonly string[]): Promise<void> {
    if (programs.length === 0) return;
    const rows = await db
      .selectFrom('certification_programs')
      .select('key')
      .where('key', 'in', [...programs])
      .execute();
    const known = new Set(rows.map((row) => row.key));
    const unknown = programs.filter((program) => !known.has(program));
    if (unknown.length > 0) {
      const errors = programs.flatMap((program, index) =>
        known.has(program)
          ? []
          : [{ path: `/required_certifications/${index}`, rule: 'exists', message: `no program ${program}` }],
      );
      throw standardsErrors.unknownProgram(unknown, errors);
    }
  }

  /** Checks a version's definition in full: its fields, its schema, the programs it requires. */
  async function checkDefinition(db: Executor, key: string, definition: CapabilityDefinition): Promise<void> {
    const errors = definitionErrors(key, definition);
    if (errors.length > 0) throw standardsErrors.capabilityInvalid(errors);
    compileJsonSchema(definition.attributeSchema);
    await checkPrograms(db, definition.requiredCertifications);
  }

  /** Writes a checked version of a capability, audits it and announces it. */
  async function publish(
    ctx: Context,
    key: string,
    version: number,
    definition: CapabilityDefinition,
    action: string,
  ): Promise<Capability> {
    const row = await ctx.db
      .insertInto('capability_versions')
      .values({
        key,
        version,
        name: definition.name.trim(),
        unit: definition.unit,
        attribute_schema: JSON.stringify(definition.attributeSchema),
        required_certifications: [...definition.requiredCertifications],
        max_lead_time_hours: definition.serviceLevels.maxLeadTimeHours,
        acceptance_window_hours: definition.serviceLevels.acceptanceWindowHours,
        published_at: ctx.now,
        published_by: actorRef(ctx.actor).id,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const capability = toCapability(row);
    await recordAudit(ctx, { action, targetId: key, outcome: 'succeeded', details: { version } });
    await appendEvent(ctx, {
      type: 'capability.published',
      subjectId: key,
      data: {
        key,
        version,
        name: capability.name,
        unit: capability.unit,
        required_certifications: [...capability.requiredCertifications],
        service_levels: {
          max_lead_time_hours: capability.serviceLevels.maxLeadTimeHours,
          acceptance_window_hours: capability.serviceLevels.acceptanceWindowHours,
        },
      },
      audience: [],
    });
    return capability;
  }

  async function requireProgram(db: Executor, key: string, forUpdate = false): Promise<CertificationProgram> {
    const program = await findProgram(db, key, forUpdate);
    if (!program) throw standardsErrors.programNotFound(key);
    return program;
  }

  function checkProgram(key: string, program: ProgramDefinition): void {
    const errors = programErrors(key, program);
    if (errors.length > 0) throw standardsErrors.programInvalid(errors);
  }

  /**
   * The partner whose certifications the actor may act on or read: operators and Baton reach
   * every partner, a partner's staff only their own. Another partner is as absent as a
   * missing one.
   */
  async function requirePartnerInScope(ctx: Context, partnerId: PartnerId): Promise<void> {
    const allowed =
      ctx.actor.kind === 'operator' ||
      ctx.actor.kind === 'system' ||
      (ctx.actor.kind === 'partner' && ctx.actor.partnerId === partnerId);
    if (!allowed) throw standardsErrors.partnerNotFound(partnerId);
    // The partner must exist: an operator cannot file or list for an id nobody holds.
    await participants.getPartner(ctx, partnerId);
  }

  function mayRead(actor: Actor, certification: Certification): boolean {
    return (
      actor.kind === 'operator' ||
      actor.kind === 'system' ||
      (actor.kind === 'partner' && actor.partnerId === certification.partnerId)
    );
  }

  async function visibleCertification(
    ctx: Context,
    id: CertificationId,
    forUpdate = false,
  ): Promise<Certification> {
    const certification = await findCertification(ctx.db, id, forUpdate);
    if (!certification || !mayRead(ctx.actor, certification)) throw standardsErrors.certificationNotFound(id);
    return certification;
  }

  async function announce(ctx: Context, certification: Certification): Promise<void> {
    await appendEvent(ctx, {
      type: `certification.${certification.status === 'pending' ? 'applied' : certification.status}`,
      subjectId: certification.id,
      data: {
        id: certification.id,
        partner_id: certification.partnerId,
        program: certification.programKey,
        status: certification.status,
        valid_from: certification.validFrom?.toISOString() ?? null,
        valid_until: certification.validUntil?.toISOString() ?? null,
      },
      audience: [certification.partnerId],
    });
  }

  /** Locks a certification an operator decides on, and checks it is in the state the decision needs. */
  async function decidable(
    ctx: Context,
    id: CertificationId,
    decision: keyof typeof DECISION_FROM,
    participle: string,
  ): Promise<Certification> {
    requireTransaction(ctx.db);
    const certification = await visibleCertification(ctx, id, true);
    if (certification.status !== DECISION_FROM[decision]) {
      throw standardsErrors.certificationNotDecidable(certification.status, participle);
    }
    return certification;
  }

  /** Records a decision on a locked certification, with its audit record and event. */
  async function decide(
    ctx: Context,
    certification: Certification,
    action: string,
    changes: {
      status: CertificationStatus;
      reason: string | null;
      validFrom?: Date;
      validUntil?: Date;
      renewalOf?: CertificationId | null;
    },
  ): Promise<Certification> {
    const row = await ctx.db
      .updateTable('certifications')
      .set({
        status: changes.status,
        reason: changes.reason,
        ...(changes.validFrom ? { valid_from: changes.validFrom } : {}),
        ...(changes.validUntil ? { valid_until: changes.validUntil } : {}),
        ...(changes.renewalOf !== undefined ? { renewal_of: changes.renewalOf } : {}),
        decided_by: actorRef(ctx.actor).id,
        decided_at: ctx.now,
        updated_at: ctx.now,
      })
      .where('id', '=', certification.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const decided = toCertification(row);
    await recordAudit(ctx, {
      action,
      targetId: decided.id,
      outcome: 'succeeded',
      details: {
        partner_id: decided.partnerId,
        program: decided.programKey,
        status: decided.status,
        reason: decided.reason,
        valid_from: decided.validFrom?.toISOString() ?? null,
        valid_until: decided.validUntil?.toISOString() ?? null,
      },
    });
    await announce(ctx, decided);
    return decided;
  }

  /** The granted certifications of one program a partner holds or will hold after `at`. */
  async function grantedAfter(db: Executor, partnerId: PartnerId, programKey: string, at: Date) {
    const rows = await db
      .selectFrom('certifications')
      .selectAll()
      .where('partner_id', '=', partnerId)
      .where('program_key', '=', programKey)
      .where('status', '=', 'granted')
      .where('valid_until', '>', at)
      .orderBy('valid_until', 'desc')
      .orderBy('id')
      .forUpdate()
      .execute();
    return rows.map(toCertification);
  }

  return {
    /**
     * Defines a capability: its version 1.
     *
     * @throws DomainError `standards.capability_invalid`, `json_schema.invalid`,
     *   `standards.unknown_program`, `standards.capability_exists`
     */
    async defineCapability(ctx: Context, input: { key: string } & CapabilityDefinition): Promise<Capability> {
      requireTransaction(ctx.db);
      const { key, ...definition } = input;
      await checkDefinition(ctx.db, key, definition);
      // The primary key decides between concurrent definitions of one key.
      const created = await ctx.db
        .insertInto('capabilities')
        .values({ key, current_version: 1, created_at: ctx.now, updated_at: ctx.now })
        .onConflict((oc) => oc.column('key').doNothing())
        .returning('key')
        .executeTakeFirst();
      if (!created) throw standardsErrors.capabilityExists(key);
      return publish(ctx, key, 1, definition, 'standards.capability.define');
    },

    /**
     * Publishes the next version of a capability; the fields `changes` leaves out are carried
     * over. Offers are not re-checked here: the workflow that calls this does it in the same
     * transaction.
     *
     * @throws DomainError `standards.capability_not_found`, `standards.capability_invalid`,
     *   `json_schema.invalid`, `standards.unknown_program`
     */
    async publishCapabilityVersion(
      ctx: Context,
      key: string,
      changes: CapabilityChanges,
    ): Promise<Capability> {
      requireTransaction(ctx.db);
      // The lock orders concurrent publications: each one builds on the version before it.
      const head = await ctx.db
        .selectFrom('capabilities')
        .selectAll()
        .where('key', '=', key)
        .forUpdate()
        .executeTakeFirst();
      if (!head) throw standardsErrors.capabilityNotFound(key);
      const current = await findCapabilityVersion(ctx.db, key, head.current_version);
      if (!current) throw standardsErrors.capabilityNotFound(key);
      const version = head.current_version + 1;
      const definition = nextDefinition(current, changes);
      await checkDefinition(ctx.db, key, definition);
      const capability = await publish(ctx, key, version, definition, 'standards.capability.publish');
      await ctx.db
        .updateTable('capabilities')
        .set({ current_version: version, updated_at: ctx.now })
        .where('key', '=', key)
        .execute();
      return capability;
    },

    /** The current version of a capability. @throws DomainError `standards.capability_not_found` */
    async getCapability(db: Executor, key: string): Promise<Capability> {
      const capability = await findCurrentCapability(db, key);
      if (!capability) throw standardsErrors.capabilityNotFound(key);
      return capability;
    },

    /**
     * One version of a capability, current or not.
     *
     * @throws DomainError `standards.capability_version_not_found`
     */
    async getCapabilityVersion(db: Executor, key: string, version: number): Promise<Capability> {
      const capability = await findCapabilityVersion(db, key, version);
      if (!capability) throw standardsErrors.capabilityVersionNotFound(key, version);
      return capability;
    },

    /** Every version of a capability, oldest first. @throws DomainError `standards.capability_not_found` */
    async listCapabilityVersions(db: Executor, key: string): Promise<Capability[]> {
      const rows = await db
        .selectFrom('capability_versions')
        .selectAll()
        .where('key', '=', key)
        .orderBy('version')
        .execute();
      if (rows.length === 0) throw standardsErrors.capabilityNotFound(key);
      return rows.map(toCapability);
    },

    /** The current version of every capability, by key. */
    async listCapabilities(db: Executor): Promise<Capability[]> {
      return (await currentVersions(db).execute()).map(toCapability);
    },

    /**
     * Checks attributes against the current version of a capability; no errors means they
     * conform.
     *
     * @throws DomainError `standards.capability_not_found`
     */
    async checkAttributes(
      db: Executor,
      key: string,
      attributes: unknown,
    ): Promise<{ capability: Capability; errors: FieldError[] }> {
      const capability = await findCurrentCapability(db, key);
      if (!capability) throw standardsErrors.capabilityNotFound(key);
      return { capability, errors: validateAttributes(capability, attributes) };
    },

    /**
     * Creates a certification program.
     *
     * @throws DomainError `standards.program_invalid`, `standards.program_exists`
     */
    async createProgram(
      ctx: Context,
      input: { key: string } & ProgramDefinition,
    ): Promise<CertificationProgram> {
      requireTransaction(ctx.db);
      const { key, ...definition } = input;
      checkProgram(key, definition);
      const row = await ctx.db
        .insertInto('certification_programs')
        .values({
          key,
          name: definition.name.trim(),
          description: definition.description,
          requirements: definition.requirements,
          evidence: JSON.stringify(definition.evidence),
          validity_days: definition.validityDays,
          created_at: ctx.now,
          updated_at: ctx.now,
        })
        .onConflict((oc) => oc.column('key').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!row) throw standardsErrors.programExists(key);
      await recordAudit(ctx, { action: 'standards.program.create', targetId: key, outcome: 'succeeded' });
      await appendEvent(ctx, {
        type: 'certification_program.created',
        subjectId: key,
        data: { key, name: row.name, validity_days: row.validity_days },
        audience: [],
      });
      return toProgram(row, []);
    },

    /**
     * Changes a program. New evidence items apply to applications from now on; a new validity
     * to grants from now on.
     *
     * @throws DomainError `standards.program_not_found`, `standards.program_invalid`
     */
    async updateProgram(ctx: Context, key: string, changes: ProgramChanges): Promise<CertificationProgram> {
      requireTransaction(ctx.db);
      const current = await requireProgram(ctx.db, key, true);
      const definition: ProgramDefinition = {
        name: changes.name ?? current.name,
        description: changes.description ?? current.description,
        requirements: changes.requirements ?? current.requirements,
        evidence: changes.evidence ?? current.evidence,
        validityDays: changes.validityDays ?? current.validityDays,
      };
      checkProgram(key, definition);
      const row = await ctx.db
        .updateTable('certification_programs')
        .set({
          name: definition.name.trim(),
          description: definition.description,
          requirements: definition.requirements,
          evidence: JSON.stringify(definition.evidence),
          validity_days: definition.validityDays,
          updated_at: ctx.now,
        })
        .where('key', '=', key)
        .returningAll()
        .executeTakeFirstOrThrow();
      const changed = (Object.keys(PROGRAM_FIELDS) as (keyof ProgramChanges)[])
        .filter((field) => changes[field] !== undefined)
        .map((field) => PROGRAM_FIELDS[field]);
      await recordAudit(ctx, {
        action: 'standards.program.update',
        targetId: key,
        outcome: 'succeeded',
        details: { changed },
      });
      await appendEvent(ctx, {
        type: 'certification_program.updated',
        subjectId: key,
        data: { key, name: row.name, validity_days: row.validity_days },
        audience: [],
      });
      return toProgram(row, current.requiredBy);
    },

    /** @throws DomainError `standards.program_not_found` */
    async getProgram(db: Executor, key: string): Promise<CertificationProgram> {
      return requireProgram(db, key);
    },

    /** Every certification program, by key. */
    async listPrograms(db: Executor): Promise<CertificationProgram[]> {
      const rows = await db.selectFrom('certification_programs').selectAll().orderBy('key').execute();
      const requiredBy = await requiredByPrograms(
        db,
        rows.map((row) => row.key),
      );
      return rows.map((row) => toProgram(row, requiredBy.get(row.key) ?? []));
    },

    /**
     * A partner applies for a program with the evidence it asks for; by its owner, or by an
     * operator on its behalf. An application while the partner holds the program is a renewal:
     * once granted, it starts when the one held ends.
     *
     * @throws DomainError `standards.partner_not_found`, `standards.program_not_found`,
     *   `standards.evidence_missing`, `standards.evidence_unexpected`,
     *   `standards.application_pending`
     */
    async applyForCertification(
      ctx: Context,
      partnerId: PartnerId,
      programKey: string,
      evidence: Record<string, string>,
    ): Promise<Certification> {
      requireTransaction(ctx.db);
      await requirePartnerInScope(ctx, partnerId);
      const program = await requireProgram(ctx.db, programKey);
      const { missing, unexpected } = evidenceErrors(program.evidence, evidence);
      if (missing.length > 0) throw standardsErrors.evidenceMissing(programKey, [...missing, ...unexpected]);
      if (unexpected.length > 0) throw standardsErrors.evidenceUnexpected(programKey, unexpected);
      const held = await ctx.db
        .selectFrom('certifications')
        .select('id')
        .where('partner_id', '=', partnerId)
        .where('program_key', '=', programKey)
        .where('status', '=', 'granted')
        .where('valid_until', '>', ctx.now)
        .orderBy('valid_until', 'desc')
        .executeTakeFirst();
      const id = newId('crt');
      // The unique index of pending applications decides between concurrent ones: a check
      // before the insert would let them all pass.
      const row = await ctx.db
        .insertInto('certifications')
        .values({
          id,
          partner_id: partnerId,
          program_key: programKey,
          status: 'pending',
          evidence: JSON.stringify(evidence),
          valid_from: null,
          valid_until: null,
          renewal_of: held?.id ?? null,
          reason: null,
          applied_by: actorRef(ctx.actor).id,
          applied_at: ctx.now,
          decided_by: null,
          decided_at: null,
          updated_at: ctx.now,
        })
        .onConflict((oc) =>
          oc.columns(['partner_id', 'program_key']).where(sql<boolean>`status = 'pending'`).doNothing(),
        )
        .returningAll()
        .executeTakeFirst();
      if (!row) throw standardsErrors.applicationPending(programKey);
      const certification = toCertification(row);
      await recordAudit(ctx, {
        action: 'standards.certification.apply',
        targetId: partnerId,
        outcome: 'succeeded',
        details: { certification_id: id, program: programKey, renewal_of: certification.renewalOf },
      });
      await announce(ctx, certification);
      return certification;
    },

    /**
     * Grants a pending application for the program's validity. A renewal of a certification
     * that is still valid starts when that one ends, so there is no gap; otherwise it starts
     * now.
     *
     * @throws DomainError `standards.certification_not_found`,
     *   `standards.certification_not_decidable`, `standards.self_approval`
     */
    async grantCertification(ctx: Context, id: CertificationId, note?: string): Promise<Certification> {
      const certification = await decidable(ctx, id, 'grant', 'granted');
      const { applied_by } = await ctx.db
        .selectFrom('certifications')
        .select('applied_by')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      if (ctx.actor.kind === 'operator' && applied_by === ctx.actor.userId)
        throw standardsErrors.selfApproval();
      const program = await requireProgram(ctx.db, certification.programKey);
      const held = await grantedAfter(ctx.db, certification.partnerId, certification.programKey, ctx.now);
      const heldUntil = coveredUntil(
        held.map((cert) => ({ validFrom: cert.validFrom as Date, validUntil: cert.validUntil as Date })),
        ctx.now,
      );
      const period = grantPeriod(ctx.now, program.validityDays, heldUntil);
      const continued =
        heldUntil === null
          ? undefined
          : held.find((cert) => cert.validUntil?.getTime() === heldUntil.getTime());
      return decide(ctx, certification, 'standards.certification.grant', {
        status: 'granted',
        reason: note ?? null,
        validFrom: period.validFrom,
        validUntil: period.validUntil,
        ...(continued ? { renewalOf: continued.id } : {}),
      });
    },

    /**
     * Rejects a pending application, with a reason the partner sees.
     *
     * @throws DomainError `standards.certification_not_found`, `standards.certification_not_decidable`
     */
    async rejectCertification(ctx: Context, id: CertificationId, reason: string): Promise<Certification> {
      const certification = await decidable(ctx, id, 'reject', 'rejected');
      return decide(ctx, certification, 'standards.certification.reject', { status: 'rejected', reason });
    },

    /**
     * Revokes a granted certification at once, with a reason the partner sees. A renewal
     * granted to follow it is not revoked with it.
     *
     * @throws DomainError `standards.certification_not_found`, `standards.certification_not_decidable`
     */
    async revokeCertification(ctx: Context, id: CertificationId, reason: string): Promise<Certification> {
      const certification = await decidable(ctx, id, 'revoke', 'revoked');
      return decide(ctx, certification, 'standards.certification.revoke', { status: 'revoked', reason });
    },

    /**
     * A certification; a partner sees only its own.
     *
     * @throws DomainError `standards.certification_not_found`
     */
    async getCertification(ctx: Context, id: CertificationId): Promise<Certification> {
      return visibleCertification(ctx, id);
    },

    /**
     * Certifications, oldest first. A partner's staff see only their own partner's; naming
     * another partner is answered as for a missing one.
     *
     * @throws DomainError `standards.partner_not_found`
     */
    async listCertifications(ctx: Context, filter: CertificationFilter): Promise<Page<Certification>> {
      let partnerId = filter.partnerId;
      if (partnerId !== undefined) await requirePartnerInScope(ctx, partnerId);
      else if (ctx.actor.kind === 'partner') partnerId = ctx.actor.partnerId;
      else if (ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system')
        return { items: [], hasMore: false };
      let query = ctx.db
        .selectFrom('certifications')
        .selectAll()
        .orderBy('id')
        .limit(filter.limit + 1);
      if (partnerId !== undefined) query = query.where('partner_id', '=', partnerId);
      if (filter.programKey !== undefined) query = query.where('program_key', '=', filter.programKey);
      if (filter.status !== undefined) query = query.where('status', '=', filter.status);
      if (filter.after !== undefined) query = query.where('id', '>', filter.after);
      return pageOf(await query.execute(), filter.limit, toCertification);
    },

    /**
     * The daily job's work: marks every granted certification whose validity ended by `ctx.now`
     * expired, and announces each. Returns their ids.
     */
    async expireCertifications(ctx: Context): Promise<CertificationId[]> {
      requireTransaction(ctx.db);
      // One statement finds and changes them: a second job running at the same time waits on
      // the row locks, then finds them no longer granted, so each expires once.
      const rows = await ctx.db
        .updateTable('certifications')
        .set({ status: 'expired', updated_at: ctx.now })
        .where('status', '=', 'granted')
        .where('valid_until', '<=', ctx.now)
        .returningAll()
        .execute();
      const expired = rows.map(toCertification).sort((a, b) => a.id.localeCompare(b.id));
      for (const certification of expired) await announce(ctx, certification);
      return expired.map((certification) => certification.id);
    },

    /**
     * Every program each partner holds valid at `at`, with the end of its cover: a renewal
     * that starts where the held certification ends extends it. For matching's index.
     */
    async listValidCertifications(db: Executor, at: Date): Promise<ValidCertification[]> {
      const rows = await db
        .selectFrom('certifications')
        .select(['partner_id', 'program_key', 'valid_from', 'valid_until'])
        .where('status', '=', 'granted')
        .where('valid_until', '>', at)
        .orderBy('partner_id')
        .orderBy('program_key')
        .execute();
      const periods = new Map<
        string,
        { partnerId: PartnerId; programKey: string; periods: ValidityPeriod[] }
      >();
      for (const row of rows) {
        const group = `${row.partner_id} ${row.program_key}`;
        const entry = periods.get(group) ?? {
          partnerId: row.partner_id as PartnerId,
          programKey: row.program_key,
          periods: [],
        };
        entry.periods.push({ validFrom: row.valid_from as Date, validUntil: row.valid_until as Date });
        periods.set(group, entry);
      }
      const valid: ValidCertification[] = [];
      for (const { partnerId, programKey, periods: granted } of periods.values()) {
        const until = coveredUntil(granted, at);
        if (until !== null) valid.push({ partnerId, programKey, validUntil: until });
      }
      return valid;
    },

    /** The programs of `programKeys` the partner does not hold valid at `at`, in the order given. */
    async missingCertifications(
      db: Executor,
      partnerId: PartnerId,
      programKeys: readonly string[],
      at: Date,
    ): Promise<string[]> {
      const wanted = [...new Set(programKeys)];
      if (wanted.length === 0) return [];
      const held = await db
        .selectFrom('certifications')
        .select('program_key')
        .where('partner_id', '=', partnerId)
        .where('program_key', 'in', wanted)
        .where('status', '=', 'granted')
        .where('valid_from', '<=', at)
        .where('valid_until', '>', at)
        .execute();
      const holds = new Set(held.map((row) => row.program_key));
      return wanted.filter((program) => !holds.has(program));
    },
  };
}
