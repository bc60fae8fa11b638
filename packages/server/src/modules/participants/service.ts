import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { type Actor, actorRef } from '../../kernel/actor.js';
import { recordAudit } from '../../kernel/audit/audit-log.js';
import type { Context } from '../../kernel/context.js';
import { type Executor, requireTransaction } from '../../kernel/database/database.js';
import { appendEvent } from '../../kernel/events/event-log.js';
import { type CustomerId, type InvitationId, newId, type PartnerId } from '../../kernel/ids.js';
import type { Jobs } from '../../kernel/jobs/jobs.js';
import { compileJsonSchema, validateDocument } from '../../kernel/json-schema.js';
import { type Page, type PageRequest, pageOf } from '../../kernel/pagination.js';
import type { AccessService, ApiKey, User } from '../access/index.js';
import { checkTransition, ENGAGED_STATES, type PartnerState } from './domain/lifecycle.js';
import {
  canTakeWork,
  graceEnd,
  type RulesStanding,
  type RulesVersion,
  rulesStanding,
} from './domain/rules.js';
import { participantsErrors } from './errors.js';
import {
  type Customer,
  currentRules,
  findCustomer,
  findPartner,
  findPartnerType,
  findPartnerWithRules,
  findRules,
  type Invitation,
  type Partner,
  type PartnerTransition,
  type PartnerType,
  toCustomer,
  toInvitation,
  toPartner,
  toPartnerType,
  toRules,
  toTransition,
  typeOfPartner,
} from './store/participants-store.js';

/** The job that announces, when a grace period ends, which partners let their rules lapse. */
export const RULES_GRACE_ENDED_JOB = 'participants.rules-grace-ended';
const INVITATION_TOKEN_PREFIX = 'baton_inv_';
export const INVITATION_VALIDITY_DAYS_MAX = 90;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Partners whose type one process remembers; past it, the oldest are forgotten first. */
const PARTNER_TYPES_CACHED_MAX = 100_000;

/** A partner with where it stands: what the API shows. */
export interface PartnerView extends Partner {
  readonly rules: RulesStanding;
  readonly canTakeWork: boolean;
}

export interface PartnerTypeView extends PartnerType {
  readonly currentRules: RulesVersion | null;
}

export interface Application {
  readonly partnerType: string;
  readonly name: string;
  readonly email: string;
  readonly regions: readonly string[];
  readonly profile: Record<string, unknown>;
  readonly acceptRulesVersion?: number | undefined;
  readonly invitationToken?: string | undefined;
  readonly owner?: { readonly name: string; readonly email: string } | undefined;
}

export interface PartnerFilter {
  readonly state?: PartnerState | undefined;
  readonly partnerType?: string | undefined;
  readonly region?: string | undefined;
  readonly tier?: string | undefined;
  readonly query?: string | undefined;
  readonly after?: string | undefined;
  readonly limit: number;
}

export type ParticipantsService = ReturnType<typeof createParticipantsService>;

export function createParticipantsService({ access, jobs }: { access: AccessService; jobs: Jobs }) {
  /** Loads a partner the actor may see; another tenant's partner is as absent as a missing one. */
  async function visiblePartner(ctx: Context, id: PartnerId, forUpdate = false): Promise<Partner> {
    const allowed =
      ctx.actor.kind === 'operator' ||
      ctx.actor.kind === 'system' ||
      (ctx.actor.kind === 'partner' && ctx.actor.partnerId === id);
    const partner = allowed ? await findPartner(ctx.db, id, forUpdate) : undefined;
    if (!partner) throw participantsErrors.partnerNotFound(id);
    return partner;
  }

  /**
   * Each partner's type, by id. A partner's type is set when it applies and never changes, and
   * an id is never given to another partner, so what was read once stays true in every process.
   */
  const partnerTypes = new Map<PartnerId, string>();

  async function requirePartnerType(db: Executor, key: string, forUpdate = false): Promise<PartnerType> {
    const type = await findPartnerType(db, key, forUpdate);
    if (!type) throw participantsErrors.partnerTypeNotFound(key);
    return type;
  }

  async function view(db: Executor, partners: readonly Partner[], now: Date): Promise<PartnerView[]> {
    const rulesByType = new Map<string, RulesVersion | null>();
    for (const key of new Set(partners.map((partner) => partner.type))) {
      const type = await findPartnerType(db, key);
      rulesByType.set(key, type ? await currentRules(db, type) : null);
    }
    return partners.map((partner) => withStanding(partner, rulesByType.get(partner.type) ?? null, now));
  }

  function withStanding(partner: Partner, current: RulesVersion | null, now: Date): PartnerView {
    const rules = rulesStanding(partner.state, current, partner.acceptedRulesVersion, now);
    return { ...partner, rules, canTakeWork: canTakeWork(partner.state, rules) };
  }

  async function viewOne(db: Executor, partner: Partner, now: Date): Promise<PartnerView> {
    const [result] = await view(db, [partner], now);
    return result as PartnerView;
  }

  function checkProfile(type: PartnerType, profile: Record<string, unknown>): void {
    const errors = validateDocument(compileJsonSchema(type.profileSchema), profile);
    if (errors.length > 0) {
      throw participantsErrors.profileInvalid(type.key, errors);
    }
  }

  /** Moves a locked partner to a new state, with its history row, event and audit record. */
  async function applyTransition(
    ctx: Context,
    partner: Partner,
    to: PartnerState,
    reason: string,
  ): Promise<Partner> {
    const type = await requirePartnerType(ctx.db, partner.type);
    const acceptedCurrentRules =
      type.currentRulesVersion === null ||
      (partner.acceptedRulesVersion !== null && partner.acceptedRulesVersion >= type.currentRulesVersion);
    const eventType = checkTransition(partner.state, to, { acceptedCurrentRules });
    const row = await ctx.db
      .updateTable('partners')
      .set({
        state: to,
        state_reason: reason,
        state_changed_at: ctx.now,
        updated_at: ctx.now,
        ...(to === 'active' && partner.activatedAt === null ? { activated_at: ctx.now } : {}),
      })
      .where('id', '=', partner.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await insertTransition(ctx, partner.id, partner.state, to, reason);
    await recordAudit(ctx, {
      action: 'participants.partner.transition',
      targetId: partner.id,
      outcome: 'succeeded',
      details: { from: partner.state, to, reason },
    });
    await appendEvent(ctx, {
      type: eventType,
      subjectId: partner.id,
      data: { id: partner.id, partner_type: partner.type, state: to, previous_state: partner.state, reason },
      audience: [partner.id],
    });
    return toPartner(row);
  }

  async function insertTransition(
    ctx: Context,
    partnerId: PartnerId,
    from: PartnerState | null,
    to: PartnerState,
    reason: string,
  ) {
    const actor = actorRef(ctx.actor);
    await ctx.db
      .insertInto('partner_transitions')
      .values({
        id: newId('ptr'),
        partner_id: partnerId,
        from_state: from,
        to_state: to,
        reason,
        actor_kind: actor.kind,
        actor_id: actor.id,
        occurred_at: ctx.now,
      })
      .execute();
  }

  async function recordAcceptance(ctx: Context, partner: Partner, version: number): Promise<Partner> {
    const inserted = await ctx.db
      .insertInto('rules_acceptances')
      .values({
        id: newId('rac'),
        partner_id: partner.id,
        partner_type: partner.type,
        version,
        user_id: actorRef(ctx.actor).id,
        ip: ctx.ip,
        accepted_at: ctx.now,
      })
      .onConflict((oc) => oc.columns(['partner_id', 'version']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return partner;
    const row = await ctx.db
      .updateTable('partners')
      .set({ accepted_rules_version: version, accepted_rules_at: ctx.now, updated_at: ctx.now })
      .where('id', '=', partner.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await appendEvent(ctx, {
      type: 'partner.rules_accepted',
      subjectId: partner.id,
      data: { id: partner.id, partner_type: partner.type, version },
      audience: [partner.id],
    });
    return toPartner(row);
  }

  async function claimInvitation(ctx: Context, token: string, application: Application): Promise<Invitation> {
    const row = await ctx.db
      .selectFrom('partner_invitations')
      .selectAll()
      .where('token_hash', '=', hashToken(token))
      .forUpdate()
      .executeTakeFirst();
    const invitation = row ? toInvitation(row) : undefined;
    if (!invitation || invitation.revokedAt || invitation.acceptedAt || invitation.expiresAt <= ctx.now) {
      throw participantsErrors.invitationInvalid('The invitation is unknown, used, revoked or expired.');
    }
    if (invitation.partnerType !== application.partnerType) {
      throw participantsErrors.invitationInvalid(`The invitation is for a ${invitation.partnerType}.`);
    }
    return invitation;
  }

  return {
    /**
     * Defines a partner type with the profile every partner of it must provide.
     *
     * @throws DomainError `participants.partner_type_exists`, `json_schema.invalid`
     */
    async createPartnerType(
      ctx: Context,
      input: { key: string; name: string; description: string; profileSchema: Record<string, unknown> },
    ): Promise<PartnerTypeView> {
      requireTransaction(ctx.db);
      compileJsonSchema(input.profileSchema);
      const inserted = await ctx.db
        .insertInto('partner_types')
        .values({
          key: input.key,
          name: input.name,
          description: input.description,
          profile_schema: JSON.stringify(input.profileSchema),
          current_rules_version: null,
          created_at: ctx.now,
          updated_at: ctx.now,
        })
        .onConflict((oc) => oc.column('key').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!inserted) throw participantsErrors.partnerTypeExists(input.key);
      await recordAudit(ctx, {
        action: 'participants.partner_type.create',
        targetId: input.key,
        outcome: 'succeeded',
      });
      await appendEvent(ctx, {
        type: 'partner_type.created',
        subjectId: input.key,
        data: { key: input.key, name: input.name },
        audience: [],
      });
      return { ...toPartnerType(inserted), currentRules: null };
    },

    /**
     * Changes a partner type's name, description or profile schema. A new schema applies to
     * applications and profile changes from now on; existing profiles are not re-checked.
     *
     * @throws DomainError `participants.partner_type_not_found`, `json_schema.invalid`
     */
    async updatePartnerType(
      ctx: Context,
      key: string,
      changes: {
        name?: string | undefined;
        description?: string | undefined;
        profileSchema?: Record<string, unknown> | undefined;
      },
    ): Promise<PartnerTypeView> {
      requireTransaction(ctx.db);
      const type = await requirePartnerType(ctx.db, key, true);
      if (changes.profileSchema) compileJsonSchema(changes.profileSchema);
      const row = await ctx.db
        .updateTable('partner_types')
        .set({
          ...(changes.name !== undefined ? { name: changes.name } : {}),
          ...(changes.description !== undefined ? { description: changes.description } : {}),
          ...(changes.profileSchema ? { profile_schema: JSON.stringify(changes.profileSchema) } : {}),
          updated_at: ctx.now,
        })
        .where('key', '=', key)
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordAudit(ctx, {
        action: 'participants.partner_type.update',
        targetId: key,
        outcome: 'succeeded',
        details: {
          changed: Object.entries({
            name: changes.name,
            description: changes.description,
            profile_schema: changes.profileSchema,
          })
            .filter(([, value]) => value !== undefined)
            .map(([field]) => field),
        },
      });
      await appendEvent(ctx, { type: 'partner_type.updated', subjectId: key, data: { key }, audience: [] });
      const updated = toPartnerType(row);
      return { ...updated, currentRules: await currentRules(ctx.db, type) };
    },

    async listPartnerTypes(db: Executor): Promise<PartnerTypeView[]> {
      const rows = await db.selectFrom('partner_types').selectAll().orderBy('key').execute();
      const types = rows.map(toPartnerType);
      return Promise.all(
        types.map(async (type) => ({ ...type, currentRules: await currentRules(db, type) })),
      );
    },

    /** @throws DomainError `participants.partner_type_not_found` */
    async getPartnerType(db: Executor, key: string): Promise<PartnerTypeView> {
      const type = await requirePartnerType(db, key);
      return { ...type, currentRules: await currentRules(db, type) };
    },

    /**
     * Publishes a new version of a partner type's rules of engagement. Engaged partners keep
     * taking work for the grace period; a job announces, when it ends, whose acceptance lapsed.
     *
     * @throws DomainError `participants.partner_type_not_found`
     */
    async publishRules(
      ctx: Context,
      key: string,
      input: { title: string; body: string; gracePeriodDays: number },
    ): Promise<RulesVersion> {
      requireTransaction(ctx.db);
      const type = await requirePartnerType(ctx.db, key, true);
      const version = (type.currentRulesVersion ?? 0) + 1;
      const row = await ctx.db
        .insertInto('engagement_rules')
        .values({
          partner_type: key,
          version,
          title: input.title,
          body: input.body,
          grace_period_days: input.gracePeriodDays,
          published_at: ctx.now,
          published_by: actorRef(ctx.actor).id,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await ctx.db
        .updateTable('partner_types')
        .set({ current_rules_version: version, updated_at: ctx.now })
        .where('key', '=', key)
        .execute();
      const rules = toRules(row);
      await recordAudit(ctx, {
        action: 'participants.rules.publish',
        targetId: key,
        outcome: 'succeeded',
        details: { version, grace_period_days: input.gracePeriodDays },
      });
      await appendEvent(ctx, {
        type: 'partner_type.rules_published',
        subjectId: key,
        data: { partner_type: key, version, grace_until: graceEnd(rules).toISOString() },
        audience: [partnerTypeAudience(key)],
      });
      await jobs.enqueue(
        ctx,
        RULES_GRACE_ENDED_JOB,
        { partnerType: key, version },
        { startAfter: graceEnd(rules) },
      );
      return rules;
    },

    async listRules(db: Executor, key: string): Promise<RulesVersion[]> {
      await requirePartnerType(db, key);
      const rows = await db
        .selectFrom('engagement_rules')
        .selectAll()
        .where('partner_type', '=', key)
        .orderBy('version')
        .execute();
      return rows.map(toRules);
    },

    /** @throws DomainError `participants.rules_not_found` */
    async getRules(db: Executor, key: string, version: number): Promise<RulesVersion> {
      const rules = await findRules(db, key, version);
      if (!rules) throw participantsErrors.rulesNotFound(key, version);
      return rules;
    },

    /**
     * When a grace period ends: announces every engaged partner that has not accepted that
     * version (if it is still the current one), so that matching stops giving it work.
     */
    async announceLapsedRules(ctx: Context, key: string, version: number): Promise<PartnerId[]> {
      requireTransaction(ctx.db);
      const type = await findPartnerType(ctx.db, key);
      if (!type || type.currentRulesVersion !== version) return [];
      const lapsed = await ctx.db
        .selectFrom('partners')
        .select(['id'])
        .where('partner_type', '=', key)
        .where('state', 'in', ENGAGED_STATES)
        .where((eb) =>
          eb.or([eb('accepted_rules_version', 'is', null), eb('accepted_rules_version', '<', version)]),
        )
        .orderBy('id')
        .execute();
      for (const { id } of lapsed) {
        await appendEvent(ctx, {
          type: 'partner.rules_lapsed',
          subjectId: id,
          data: { id, partner_type: key, version },
          audience: [id],
        });
      }
      return lapsed.map(({ id }) => id as PartnerId);
    },

    /**
     * A prospective partner applies. It gets an owner user and its first API key at once, so it
     * can follow its application and accept the rules. With a pre-approved invitation, it
     * becomes active straight away when it has accepted the rules.
     *
     * @throws DomainError `participants.partner_type_not_found`, `participants.profile_invalid`,
     *   `participants.rules_version_not_current`, `participants.invitation_invalid`,
     *   `participants.already_applied`
     */
    async apply(
      ctx: Context,
      application: Application,
    ): Promise<{ partner: PartnerView; owner: User; apiKey: ApiKey; secret: string }> {
      requireTransaction(ctx.db);
      const type = await requirePartnerType(ctx.db, application.partnerType);
      checkProfile(type, application.profile);
      if (
        application.acceptRulesVersion !== undefined &&
        application.acceptRulesVersion !== type.currentRulesVersion
      ) {
        throw participantsErrors.rulesVersionNotCurrent(type.currentRulesVersion);
      }
      const invitation = application.invitationToken
        ? await claimInvitation(ctx, application.invitationToken, application)
        : null;
      const id = newId('ptn');
      const row = await ctx.db
        .insertInto('partners')
        .values({
          id,
          partner_type: type.key,
          name: application.name,
          email: application.email,
          regions: [...application.regions],
          profile: JSON.stringify(application.profile),
          state: 'applied',
          state_reason: null,
          state_changed_at: ctx.now,
          activated_at: null,
          accepted_rules_version: null,
          accepted_rules_at: null,
          invitation_id: invitation?.id ?? null,
          created_at: ctx.now,
          updated_at: ctx.now,
        })
        // The unique index of live partners decides between concurrent applications: a check
        // before the insert would let them all pass.
        .onConflict((oc) =>
          oc
            .expression(sql`partner_type, lower(email)`)
            .where(sql<boolean>`state not in ('rejected', 'offboarded')`)
            .doNothing(),
        )
        .returningAll()
        .executeTakeFirst();
      if (!row) {
        throw participantsErrors.alreadyApplied(type.key, application.email);
      }
      let partner = toPartner(row);
      await insertTransition(
        ctx,
        id,
        null,
        'applied',
        invitation ? `Applied by invitation ${invitation.id}.` : 'Applied.',
      );
      await appendEvent(ctx, {
        type: 'partner.applied',
        subjectId: id,
        data: { id, partner_type: type.key, state: 'applied' },
        audience: [id],
      });

      const owner = await access.createUser(ctx, {
        tenant: { kind: 'partner', partnerId: id },
        role: 'owner',
        name: application.owner?.name ?? application.name,
        email: application.owner?.email ?? application.email,
      });
      const { apiKey, secret } = await access.issueInitialKey(ctx, owner, 'Created on application');
      const ownerCtx: Context = {
        ...ctx,
        actor: { kind: 'partner', partnerId: id, userId: owner.id, role: 'owner', keyId: apiKey.id },
      };
      if (application.acceptRulesVersion !== undefined) {
        partner = await recordAcceptance(ownerCtx, partner, application.acceptRulesVersion);
      }

      if (invitation) {
        await ctx.db
          .updateTable('partner_invitations')
          .set({ accepted_at: ctx.now, partner_id: id })
          .where('id', '=', invitation.id)
          .execute();
        if (invitation.preApproved) {
          const invitationCtx: Context = { ...ctx, actor: { kind: 'system', name: 'invitation' } };
          const reason = `Pre-approved by invitation ${invitation.id}.`;
          partner = await applyTransition(invitationCtx, partner, 'under_review', reason);
          // Without the current rules accepted, the review waits for the acceptance.
          const rulesSatisfied =
            type.currentRulesVersion === null || partner.acceptedRulesVersion === type.currentRulesVersion;
          if (rulesSatisfied) partner = await applyTransition(invitationCtx, partner, 'active', reason);
        }
      }
      return { partner: await viewOne(ctx.db, partner, ctx.now), owner, apiKey, secret };
    },

    /**
     * Invites a prospective partner. The token, returned once, lets it apply; a pre-approved
     * invitation skips the review.
     *
     * @throws DomainError `participants.partner_type_not_found`
     */
    async invite(
      ctx: Context,
      input: {
        partnerType: string;
        email: string;
        name?: string | undefined;
        preApproved: boolean;
        validDays: number;
      },
    ): Promise<{ invitation: Invitation; token: string }> {
      requireTransaction(ctx.db);
      await requirePartnerType(ctx.db, input.partnerType);
      const token = `${INVITATION_TOKEN_PREFIX}${randomBytes(24).toString('base64url')}`;
      const row = await ctx.db
        .insertInto('partner_invitations')
        .values({
          id: newId('inv'),
          partner_type: input.partnerType,
          email: input.email,
          name: input.name ?? null,
          token_hash: hashToken(token),
          pre_approved: input.preApproved,
          invited_by: actorRef(ctx.actor).id,
          expires_at: new Date(ctx.now.getTime() + input.validDays * DAY_MS),
          accepted_at: null,
          partner_id: null,
          revoked_at: null,
          created_at: ctx.now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const invitation = toInvitation(row);
      await recordAudit(ctx, {
        action: 'participants.invitation.create',
        targetId: invitation.id,
        outcome: 'succeeded',
        details: { partner_type: input.partnerType, pre_approved: input.preApproved },
      });
      return { invitation, token };
    },

    async listInvitations(ctx: Context, page: PageRequest): Promise<Page<Invitation>> {
      let query = ctx.db
        .selectFrom('partner_invitations')
        .selectAll()
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      const rows = await query.execute();
      return pageOf(rows, page.limit, toInvitation);
    },

    /** @throws DomainError `participants.invitation_not_found`, `participants.invitation_used` */
    async revokeInvitation(ctx: Context, id: InvitationId): Promise<Invitation> {
      requireTransaction(ctx.db);
      const row = await ctx.db
        .selectFrom('partner_invitations')
        .selectAll()
        .where('id', '=', id)
        .forUpdate()
        .executeTakeFirst();
      if (!row) throw participantsErrors.invitationNotFound(id);
      if (row.accepted_at) throw participantsErrors.invitationUsed();
      if (row.revoked_at) return toInvitation(row);
      const updated = await ctx.db
        .updateTable('partner_invitations')
        .set({ revoked_at: ctx.now })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordAudit(ctx, {
        action: 'participants.invitation.revoke',
        targetId: id,
        outcome: 'succeeded',
      });
      return toInvitation(updated);
    },

    /** @throws DomainError `participants.partner_not_found` */
    async getPartner(ctx: Context, id: PartnerId): Promise<PartnerView> {
      const allowed =
        ctx.actor.kind === 'operator' ||
        ctx.actor.kind === 'system' ||
        (ctx.actor.kind === 'partner' && ctx.actor.partnerId === id);
      // The partner and its type's rules in one query: callers read partners on hot paths.
      const found = allowed ? await findPartnerWithRules(ctx.db, id) : undefined;
      if (!found) throw participantsErrors.partnerNotFound(id);
      return withStanding(found.partner, found.rules, ctx.now);
    },

    /**
     * A partner's type, whoever asks (it is no secret, and fees and subsidies need it for any
     * partner); undefined when there is no such partner. Remembered once read: it never changes.
     */
    async partnerTypeOf(db: Executor, id: PartnerId): Promise<string | undefined> {
      const known = partnerTypes.get(id);
      if (known !== undefined) return known;
      const type = await typeOfPartner(db, id);
      if (type === undefined) return undefined;
      if (partnerTypes.size >= PARTNER_TYPES_CACHED_MAX) {
        const oldest = partnerTypes.keys().next();
        if (!oldest.done) partnerTypes.delete(oldest.value);
      }
      partnerTypes.set(id, type);
      return type;
    },

    /**
     * The tiers of partners, by id, as they stand now: an order keeps those it was placed with.
     * A partner that does not exist is left out.
     */
    async partnerTiers(db: Executor, ids: readonly PartnerId[]): Promise<Map<PartnerId, string>> {
      if (ids.length === 0) return new Map();
      const rows = await db
        .selectFrom('partners')
        .select(['id', 'tier'])
        .where('id', 'in', [...new Set(ids)])
        .execute();
      return new Map(rows.map((row) => [row.id as PartnerId, row.tier]));
    },

    /**
     * What fee rules and subsidies match on for an order, as it stands now, in one read: its
     * customer's segment and its partners' tiers (a partner that does not exist is left out).
     */
    async feeMatchOf(
      db: Executor,
      customerId: CustomerId,
      partnerIds: readonly PartnerId[],
    ): Promise<{ customerSegment: string | null; partnerTiers: Map<PartnerId, string> }> {
      const segment = db
        .selectFrom('customers')
        .select([sql<string>`'customer'`.as('kind'), 'id', 'segment as value'])
        .where('id', '=', customerId);
      const rows = await (partnerIds.length === 0
        ? segment
        : segment.unionAll(
            db
              .selectFrom('partners')
              .select([sql<string>`'partner'`.as('kind'), 'id', 'tier as value'])
              .where('id', 'in', [...new Set(partnerIds)]),
          )
      ).execute();
      const partnerTiers = new Map<PartnerId, string>();
      let customerSegment: string | null = null;
      for (const row of rows) {
        if (row.kind === 'customer') customerSegment = row.value;
        else if (row.value !== null) partnerTiers.set(row.id as PartnerId, row.value);
      }
      return { customerSegment, partnerTiers };
    },

    /**
     * Sets a partner's tier, which fee rules match on. Orders already placed keep the tier they
     * were placed with. Setting the tier it has changes nothing and is not announced.
     *
     * @throws DomainError `participants.partner_not_found`, `participants.operator_only`,
     *   `participants.partner_closed`
     */
    async setTier(ctx: Context, id: PartnerId, tier: string, reason: string): Promise<PartnerView> {
      requireTransaction(ctx.db);
      const partner = await visiblePartner(ctx, id, true);
      if (ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system')
        throw participantsErrors.operatorOnly('tier');
      if (partner.state === 'offboarded' || partner.state === 'rejected') {
        throw participantsErrors.partnerClosed(partner.state);
      }
      if (partner.tier === tier) return viewOne(ctx.db, partner, ctx.now);
      const row = await ctx.db
        .updateTable('partners')
        .set({ tier, updated_at: ctx.now })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordAudit(ctx, {
        action: 'participants.partner.tier',
        targetId: id,
        outcome: 'succeeded',
        details: { from: partner.tier, to: tier, reason },
      });
      await appendEvent(ctx, {
        type: 'partner.tier_changed',
        subjectId: id,
        data: { id, tier, previous_tier: partner.tier, reason },
        audience: [id],
      });
      return viewOne(ctx.db, toPartner(row), ctx.now);
    },

    /** Operators' search of partners by state, type, region and name. */
    async listPartners(ctx: Context, filter: PartnerFilter): Promise<Page<PartnerView>> {
      let query = ctx.db
        .selectFrom('partners')
        .selectAll()
        .orderBy('id')
        .limit(filter.limit + 1);
      if (filter.state) query = query.where('state', '=', filter.state);
      if (filter.partnerType) query = query.where('partner_type', '=', filter.partnerType);
      if (filter.tier) query = query.where('tier', '=', filter.tier);
      if (filter.region) query = query.where('regions', '@>', sql<string[]>`array[${filter.region}]::text[]`);
      if (filter.query) query = query.where('name', 'ilike', `%${escapeLike(filter.query)}%`);
      if (filter.after) query = query.where('id', '>', filter.after);
      const rows = await query.execute();
      const found = pageOf(rows, filter.limit, toPartner);
      return { items: await view(ctx.db, found.items, ctx.now), hasMore: found.hasMore };
    },

    /**
     * Changes a partner's name, regions or profile; the profile is checked against its type.
     *
     * @throws DomainError `participants.partner_not_found`, `participants.profile_invalid`,
     *   `participants.partner_closed`
     */
    async updatePartner(
      ctx: Context,
      id: PartnerId,
      changes: {
        name?: string | undefined;
        regions?: readonly string[] | undefined;
        profile?: Record<string, unknown> | undefined;
      },
    ): Promise<PartnerView> {
      requireTransaction(ctx.db);
      const partner = await visiblePartner(ctx, id, true);
      if (partner.state === 'offboarded' || partner.state === 'rejected') {
        throw participantsErrors.partnerClosed(partner.state);
      }
      if (changes.profile) checkProfile(await requirePartnerType(ctx.db, partner.type), changes.profile);
      const row = await ctx.db
        .updateTable('partners')
        .set({
          ...(changes.name !== undefined ? { name: changes.name } : {}),
          ...(changes.regions !== undefined ? { regions: [...changes.regions] } : {}),
          ...(changes.profile !== undefined ? { profile: JSON.stringify(changes.profile) } : {}),
          updated_at: ctx.now,
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await appendEvent(ctx, {
        type: 'partner.updated',
        subjectId: id,
        data: {
          id,
          changed: Object.keys(changes).filter((k) => changes[k as keyof typeof changes] !== undefined),
        },
        audience: [id],
      });
      return viewOne(ctx.db, toPartner(row), ctx.now);
    },

    /**
     * Moves a partner through its lifecycle, with a reason.
     *
     * @throws DomainError `participants.partner_not_found`, `participants.transition_not_allowed`,
     *   `participants.rules_not_accepted`
     */
    async transition(ctx: Context, id: PartnerId, to: PartnerState, reason: string): Promise<PartnerView> {
      requireTransaction(ctx.db);
      const partner = await visiblePartner(ctx, id, true);
      return viewOne(ctx.db, await applyTransition(ctx, partner, to, reason), ctx.now);
    },

    /** @throws DomainError `participants.partner_not_found` */
    async listTransitions(ctx: Context, id: PartnerId, page: PageRequest): Promise<Page<PartnerTransition>> {
      await visiblePartner(ctx, id);
      let query = ctx.db
        .selectFrom('partner_transitions')
        .selectAll()
        .where('partner_id', '=', id)
        .orderBy('id')
        .limit(page.limit + 1);
      if (page.after) query = query.where('id', '>', page.after);
      const rows = await query.execute();
      return pageOf(rows, page.limit, toTransition);
    },

    /**
     * Records that the partner accepts the current version of its rules of engagement.
     * Accepting a version already accepted changes nothing.
     *
     * @throws DomainError `participants.partner_not_found`, `participants.rules_version_not_current`
     */
    async acceptRules(ctx: Context, id: PartnerId, version: number): Promise<PartnerView> {
      requireTransaction(ctx.db);
      const partner = await visiblePartner(ctx, id, true);
      const type = await requirePartnerType(ctx.db, partner.type);
      if (type.currentRulesVersion === null || version !== type.currentRulesVersion) {
        throw participantsErrors.rulesVersionNotCurrent(type.currentRulesVersion);
      }
      const accepted = await recordAcceptance(ctx, partner, version);
      // The route audits refused acceptances; a successful one is audited here, like every action.
      await recordAudit(ctx, {
        action: 'participants.rules.accept',
        targetId: id,
        outcome: 'succeeded',
        details: { version },
      });
      return viewOne(ctx.db, accepted, ctx.now);
    },

    /**
     * Adds a staff user to a partner: by the partner's owner, or an operator admin.
     *
     * @throws DomainError `participants.partner_not_found`, `access.email_taken`
     */
    async addStaff(
      ctx: Context,
      id: PartnerId,
      input: { name: string; email: string; role: 'owner' | 'member' },
    ): Promise<User> {
      requireTransaction(ctx.db);
      const partner = await visiblePartner(ctx, id);
      return access.createUser(ctx, { tenant: { kind: 'partner', partnerId: partner.id }, ...input });
    },

    /** @throws DomainError `participants.partner_not_found` */
    async listStaff(ctx: Context, id: PartnerId, page: PageRequest): Promise<Page<User>> {
      const partner = await visiblePartner(ctx, id);
      return access.listUsers(ctx, { kind: 'partner', partnerId: partner.id }, page);
    },

    /**
     * A customer opens an account, with its first user and API key; or an operator opens one
     * for it (no key then: the operator hands over access separately).
     *
     * @throws DomainError `participants.customer_email_taken`
     */
    async createCustomer(
      ctx: Context,
      input: { kind: 'consumer' | 'business'; name: string; email: string; region?: string | undefined },
      options: { issueKey: boolean },
    ): Promise<{ customer: Customer; user: User; apiKey: ApiKey | null; secret: string | null }> {
      requireTransaction(ctx.db);
      // The unique index on the e-mail decides between concurrent sign-ups: a check before the
      // insert would let them all pass, and all but one fail on the index.
      const row = await ctx.db
        .insertInto('customers')
        .values({
          id: newId('cus'),
          kind: input.kind,
          name: input.name,
          email: input.email,
          region: input.region ?? null,
          created_at: ctx.now,
          updated_at: ctx.now,
        })
        .onConflict((oc) => oc.expression(sql`lower(email)`).doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!row) {
        throw participantsErrors.customerEmailTaken(input.email);
      }
      const customer = toCustomer(row);
      const user = await access.createUser(ctx, {
        tenant: { kind: 'customer', customerId: customer.id },
        role: 'customer',
        name: input.name,
        email: input.email,
      });
      await appendEvent(ctx, {
        type: 'customer.created',
        subjectId: customer.id,
        data: { id: customer.id, kind: customer.kind },
        audience: [customer.id],
      });
      if (!options.issueKey) return { customer, user, apiKey: null, secret: null };
      const { apiKey, secret } = await access.issueInitialKey(ctx, user, 'Created on sign-up');
      return { customer, user, apiKey, secret };
    },

    /** @throws DomainError `participants.customer_not_found` */
    async getCustomer(ctx: Context, id: CustomerId): Promise<Customer> {
      return visibleCustomer(ctx, id);
    },

    async listCustomers(
      ctx: Context,
      filter: PageRequest & {
        query?: string | undefined;
        region?: string | undefined;
        segment?: string | undefined;
      },
    ): Promise<Page<Customer>> {
      let query = ctx.db
        .selectFrom('customers')
        .selectAll()
        .orderBy('id')
        .limit(filter.limit + 1);
      if (filter.region) query = query.where('region', '=', filter.region);
      if (filter.segment) query = query.where('segment', '=', filter.segment);
      if (filter.query) query = query.where('name', 'ilike', `%${escapeLike(filter.query)}%`);
      if (filter.after) query = query.where('id', '>', filter.after);
      const rows = await query.execute();
      return pageOf(rows, filter.limit, toCustomer);
    },

    /** @throws DomainError `participants.customer_not_found` */
    async updateCustomer(
      ctx: Context,
      id: CustomerId,
      changes: { name?: string | undefined; region?: string | null | undefined },
    ): Promise<Customer> {
      requireTransaction(ctx.db);
      await visibleCustomer(ctx, id, true);
      const row = await ctx.db
        .updateTable('customers')
        .set({
          ...(changes.name !== undefined ? { name: changes.name } : {}),
          ...(changes.region !== undefined ? { region: changes.region } : {}),
          updated_at: ctx.now,
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await appendEvent(ctx, { type: 'customer.updated', subjectId: id, data: { id }, audience: [id] });
      return toCustomer(row);
    },

    /**
     * Sets a customer's segment (null: none), which fee rules and subsidy programmes match on.
     * Orders already placed keep the segment they were placed with.
     *
     * @throws DomainError `participants.customer_not_found`, `participants.operator_only`
     */
    async setSegment(
      ctx: Context,
      id: CustomerId,
      segment: string | null,
      reason: string,
    ): Promise<Customer> {
      requireTransaction(ctx.db);
      const customer = await visibleCustomer(ctx, id, true);
      if (ctx.actor.kind !== 'operator' && ctx.actor.kind !== 'system') {
        throw participantsErrors.operatorOnly('segment');
      }
      if (customer.segment === segment) return customer;
      const row = await ctx.db
        .updateTable('customers')
        .set({ segment, updated_at: ctx.now })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordAudit(ctx, {
        action: 'participants.customer.segment',
        targetId: id,
        outcome: 'succeeded',
        details: { from: customer.segment, to: segment, reason },
      });
      await appendEvent(ctx, {
        type: 'customer.segment_changed',
        subjectId: id,
        data: { id, segment, previous_segment: customer.segment, reason },
        audience: [id],
      });
      return toCustomer(row);
    },

    /** The audience tokens of the event feed a principal reads: itself and the groups it belongs to. */
    async eventAudience(db: Executor, actor: Actor): Promise<'all' | string[]> {
      if (actor.kind === 'operator' || actor.kind === 'system') return 'all';
      if (actor.kind === 'customer') return [actor.customerId];
      if (actor.kind === 'partner') {
        const partner = await findPartner(db, actor.partnerId);
        return partner ? [partner.id, partnerTypeAudience(partner.type)] : [actor.partnerId];
      }
      return [];
    },
  };

  async function visibleCustomer(ctx: Context, id: CustomerId, forUpdate = false): Promise<Customer> {
    const allowed =
      ctx.actor.kind === 'operator' ||
      ctx.actor.kind === 'system' ||
      (ctx.actor.kind === 'customer' && ctx.actor.customerId === id);
    const customer = allowed ? await findCustomer(ctx.db, id, forUpdate) : undefined;
    if (!customer) throw participantsErrors.customerNotFound(id);
    return customer;
  }
}

/** Events meant for every partner of a type (new rules) carry this audience token. */
export const partnerTypeAudience = (key: string) => `partner_type:${key}`;

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`);
}
