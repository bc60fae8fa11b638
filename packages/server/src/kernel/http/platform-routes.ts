import { sql } from 'kysely';
import { z } from 'zod';
import type { Actor } from '../actor.js';
import { listAudit } from '../audit/audit-log.js';
import type { Executor } from '../database/database.js';
import { invalid } from '../errors.js';
import { EVENT_PAGE_MAX, readEvents } from '../events/event-log.js';
import type { AuditRecordId, EventId } from '../ids.js';
import { ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from './access.js';
import { defineRoute, type Route } from './route.js';
import { idSchema, iso, page, pageQuery, timestamp, toPage } from './schemas.js';

export const EventJson = z
  .object({
    id: z.string(),
    object: z.literal('event'),
    type: z.string().describe('What happened, such as `partner.approved`.'),
    subject_id: z.string().describe('The id of the object that changed.'),
    occurred_at: timestamp,
    actor: z.object({ kind: z.string(), id: z.string().nullable() }),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'Event' });

export const AuditRecordJson = z
  .object({
    id: z.string(),
    object: z.literal('audit_record'),
    occurred_at: timestamp,
    actor: z.object({ kind: z.string(), id: z.string().nullable(), role: z.string().nullable() }),
    tenant_id: z.string().nullable(),
    action: z.string(),
    target_id: z.string().nullable(),
    outcome: z.enum(['succeeded', 'denied', 'failed']),
    error_code: z.string().nullable(),
    ip: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'AuditRecord' });

const EVENT_TYPE = /^[a-z_]+\.[a-z_]+$/;

export function platformRoutes(deps: {
  /** The audience tokens of the events an actor may read, or `all`. */
  eventAudience: (db: Executor, actor: Actor) => Promise<'all' | string[]>;
  databaseKind: string;
}): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/healthz',
      summary: 'Health',
      description: 'Answers 200 when the process serves requests and reaches its database.',
      tags: ['Platform'],
      access: 'public',
      response: z.object({ status: z.literal('ok'), database: z.string() }),
      handler: async (ctx) => {
        await sql`select 1`.execute(ctx.db);
        return { status: 'ok' as const, database: deps.databaseKind };
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/events',
      summary: 'Read the event feed',
      description:
        'Every state change, in commit order, filtered to what the caller may see. Pass the id of the last ' +
        'event read as `after` to resume; a reader that does so never misses an event.',
      tags: ['Platform'],
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES, customer: true },
      query: z.strictObject({
        limit: z.coerce.number().int().min(1).max(EVENT_PAGE_MAX).default(100),
        after: idSchema('evt').optional(),
        types: z
          .string()
          .max(1000)
          .optional()
          .describe('Comma-separated event types to keep, such as `partner.approved,partner.suspended`.'),
      }),
      response: page(EventJson),
      handler: async (ctx, { query }) => {
        const types = query.types?.split(',').map((type) => type.trim());
        if (types?.some((type) => !EVENT_TYPE.test(type))) {
          throw invalid('events.invalid_type_filter', 'Event types look like `partner.approved`.');
        }
        const result = await readEvents(ctx.db, {
          viewer: await deps.eventAudience(ctx.db, ctx.actor),
          after: (query.after as EventId | undefined) ?? null,
          limit: query.limit,
          ...(types ? { types } : {}),
        });
        if (!result) throw invalid('events.unknown_cursor', 'The `after` event is not one you can read.');
        return toPage(result, (event) => ({
          id: event.id,
          object: 'event' as const,
          type: event.type,
          subject_id: event.subjectId,
          occurred_at: iso(event.occurredAt),
          actor: event.actor,
          data: event.data,
        }));
      },
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/audit-records',
      summary: 'Read the audit log',
      description: 'Every privileged action: who, what, when, from where, and the outcome. Oldest first.',
      tags: ['Platform'],
      access: { operator: ['admin', 'support'] },
      query: z.strictObject({
        ...pageQuery,
        action: z.string().max(100).optional(),
        target_id: z.string().max(100).optional(),
        actor_id: z.string().max(100).optional(),
      }),
      response: page(AuditRecordJson),
      handler: async (ctx, { query }) => {
        const records = await listAudit(ctx.db, {
          after: (query.after as AuditRecordId | undefined) ?? null,
          limit: query.limit,
          action: query.action,
          targetId: query.target_id,
          actorId: query.actor_id,
        });
        return toPage(records, (record) => ({
          id: record.id,
          object: 'audit_record' as const,
          occurred_at: iso(record.occurredAt),
          actor: record.actor,
          tenant_id: record.tenantId,
          action: record.action,
          target_id: record.targetId,
          outcome: record.outcome,
          error_code: record.errorCode,
          ip: record.ip,
          request_id: record.requestId,
          details: record.details,
        }));
      },
    }),
  ];
}
