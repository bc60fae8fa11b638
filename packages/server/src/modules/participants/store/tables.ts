import type { ColumnType } from 'kysely';
import type { PartnerState } from '../domain/lifecycle.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    partner_types: PartnerTypesTable;
    engagement_rules: EngagementRulesTable;
    partners: PartnersTable;
    partner_transitions: PartnerTransitionsTable;
    rules_acceptances: RulesAcceptancesTable;
    partner_invitations: PartnerInvitationsTable;
    customers: CustomersTable;
  }
}

type Json = ColumnType<Record<string, unknown>, string, string>;

export interface PartnerTypesTable {
  key: string;
  name: string;
  description: string;
  profile_schema: Json;
  current_rules_version: number | null;
  created_at: Date;
  updated_at: Date;
}

export interface EngagementRulesTable {
  partner_type: string;
  version: number;
  title: string;
  body: string;
  grace_period_days: number;
  published_at: Date;
  published_by: string | null;
}

export interface PartnersTable {
  id: string;
  partner_type: string;
  name: string;
  email: string;
  regions: string[];
  profile: Json;
  state: PartnerState;
  state_reason: string | null;
  state_changed_at: Date;
  /** When the partner first became active: new entrants are favoured for a while after it. */
  activated_at: Date | null;
  /** The tier fee rules match on; `standard` until an operator sets another. */
  tier: ColumnType<string, string | undefined, string>;
  accepted_rules_version: number | null;
  accepted_rules_at: Date | null;
  invitation_id: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface PartnerTransitionsTable {
  id: string;
  partner_id: string;
  from_state: PartnerState | null;
  to_state: PartnerState;
  reason: string;
  actor_kind: string;
  actor_id: string | null;
  occurred_at: Date;
}

export interface RulesAcceptancesTable {
  id: string;
  partner_id: string;
  partner_type: string;
  version: number;
  user_id: string | null;
  ip: string | null;
  accepted_at: Date;
}

export interface PartnerInvitationsTable {
  id: string;
  partner_type: string;
  email: string;
  name: string | null;
  token_hash: Buffer;
  pre_approved: boolean;
  invited_by: string | null;
  expires_at: Date;
  accepted_at: Date | null;
  partner_id: string | null;
  revoked_at: Date | null;
  created_at: Date;
}

export interface CustomersTable {
  id: string;
  kind: 'consumer' | 'business';
  name: string;
  email: string;
  region: string | null;
  /** The segment fee rules and subsidy programmes match on; null: none. Operators set it. */
  segment: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Date;
  updated_at: Date;
}
