import type { ColumnType, Generated } from 'kysely';
import { actorRef, tenantOf } from '../actor.js';
import type { Context } from '../context.js';
import type { Executor } from '../database/database.js';
import { insertAtCommit } from '../database/pipelined-driver.js';
import { type AuditRecordId, newId } from '../ids.js';
import { type Page, pageOf } from '../pagination.js';

declare module '../database/tables.js' {
  interface Tables {
    audit_records: AuditRecordsTable;
  }
}

export interface AuditRecordsTable {
  id: string;
  seq: Generated<bigint>;
  occurred_at: Date;
  actor_kind: string;
  actor_id: string | null;
  actor_role: string | null;
  tenant_id: string | null;
  action: string;
  target_id: string | null;
  outcome: AuditOutcome;
  error_code: string | null;
  ip: string | null;
  request_id: string | null;
  details: ColumnType<Record<string, unknown>, string, never>;
}

export type AuditOutcome = 'succeeded' | 'denied' | 'failed';

export interface AuditEntry {
  /** The privileged action, `<module>.<object>.<verb>`: `participants.partner.transition`. */
  readonly action: string;
  readonly targetId: string | null;
  readonly outcome: AuditOutcome;
  /** The stable code of the error when the action was denied or failed. */
  readonly errorCode?: string;
  readonly details?: Record<string, unknown>;
}

/**
 * Records who did what, when, from where, and with what outcome. A successful action is
 * recorded in its own transaction, so the record exists if and only if the action happened.
 */
export async function recordAudit(ctx: Context, entry: AuditEntry): Promise<AuditRecordId> {
  const id = newId('aud');
  const actor = actorRef(ctx.actor);
  const row = {
    id,
    occurred_at: ctx.now,
    actor_kind: actor.kind,
    actor_id: actor.id,
    actor_role: actor.role,
    tenant_id: tenantOf(ctx.actor),
    action: entry.action,
    target_id: entry.targetId,
    outcome: entry.outcome,
    error_code: entry.errorCode ?? null,
    ip: ctx.ip,
    request_id: ctx.requestId,
    details: JSON.stringify(entry.details ?? {}),
  };
  // In a transaction the record is written at commit, with the transaction's other records.
  if (ctx.db.isTransaction) await insertAtCommit(ctx.db, 'audit_records', row);
  else await ctx.db.insertInto('audit_records').values(row).execute();
  return id;
}

export interface AuditRecord {
  readonly id: AuditRecordId;
  readonly occurredAt: Date;
  readonly actor: { kind: string; id: string | null; role: string | null };
  readonly tenantId: string | null;
  readonly action: string;
  readonly targetId: string | null;
  readonly outcome: AuditOutcome;
  readonly errorCode: string | null;
  readonly ip: string | null;
  readonly requestId: string | null;
  readonly details: Record<string, unknown>;
}

export interface AuditQuery {
  readonly after: AuditRecordId | null;
  readonly limit: number;
  readonly action?: string | undefined;
  readonly targetId?: string | undefined;
  readonly actorId?: string | undefined;
}

/** Lists audit records, oldest first, after a cursor. */
export async function listAudit(db: Executor, query: AuditQuery): Promise<Page<AuditRecord>> {
  let select = db
    .selectFrom('audit_records')
    .selectAll()
    .orderBy('id')
    .limit(query.limit + 1);
  if (query.after) select = select.where('id', '>', query.after);
  if (query.action) select = select.where('action', '=', query.action);
  if (query.targetId) select = select.where('target_id', '=', query.targetId);
  if (query.actorId) select = select.where('actor_id', '=', query.actorId);
  const rows = await select.execute();
  return pageOf(rows, query.limit, (row) => ({
    id: row.id as AuditRecordId,
    occurredAt: row.occurred_at,
    actor: { kind: row.actor_kind, id: row.actor_id, role: row.actor_role },
    tenantId: row.tenant_id,
    action: row.action,
    targetId: row.target_id,
    outcome: row.outcome,
    errorCode: row.error_code,
    ip: row.ip,
    requestId: row.request_id,
    details: row.details,
  }));
}
