import type { ColumnType } from 'kysely';
import type { CertificationStatus, EvidenceItem } from '../domain/certification.js';

declare module '../../../kernel/database/tables.js' {
  interface Tables {
    certification_programs: CertificationProgramsTable;
    capabilities: CapabilitiesTable;
    capability_versions: CapabilityVersionsTable;
    certifications: CertificationsTable;
  }
}

type Json<T> = ColumnType<T, string, string>;

export interface CertificationProgramsTable {
  key: string;
  name: string;
  description: string;
  requirements: string;
  evidence: Json<EvidenceItem[]>;
  validity_days: number;
  created_at: Date;
  updated_at: Date;
}

/** One row per capability: which of its versions is current. */
export interface CapabilitiesTable {
  key: string;
  current_version: number;
  created_at: Date;
  updated_at: Date;
}

/** Every published version of a capability; append-only. */
export interface CapabilityVersionsTable {
  key: string;
  version: number;
  name: string;
  unit: string;
  attribute_schema: Json<Record<string, unknown>>;
  required_certifications: string[];
  max_lead_time_hours: number | null;
  acceptance_window_hours: number | null;
  published_at: Date;
  published_by: string | null;
}

export interface CertificationsTable {
  id: string;
  partner_id: string;
  program_key: string;
  status: CertificationStatus;
  evidence: Json<Record<string, string>>;
  valid_from: Date | null;
  valid_until: Date | null;
  renewal_of: string | null;
  reason: string | null;
  /** The user who filed the application: the partner's owner, or an operator on its behalf. */
  applied_by: string | null;
  applied_at: Date;
  decided_by: string | null;
  decided_at: Date | null;
  updated_at: Date;
}
