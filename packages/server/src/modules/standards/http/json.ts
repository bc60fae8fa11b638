import { z } from 'zod';
import { iso, isoOrNull, timestamp } from '../../../kernel/http/schemas.js';
import type { Capability } from '../domain/capability.js';
import {
  CERTIFICATION_STATUSES,
  type Certification,
  type CertificationProgram,
} from '../domain/certification.js';

export const ServiceLevelsJson = z
  .object({
    max_lead_time_hours: z
      .number()
      .int()
      .nullable()
      .describe('The longest a partner may take from accepting work to delivering it; null for no limit.'),
    acceptance_window_hours: z
      .number()
      .int()
      .nullable()
      .describe('How long a partner has to accept or decline work offered to it; null for no limit.'),
  })
  .meta({ id: 'ServiceLevels' });

export const CapabilityJson = z
  .object({
    object: z.literal('capability'),
    key: z.string(),
    version: z.number().int(),
    name: z.string(),
    unit: z.string().describe('The unit offers are priced and reserved in: `kg`, `piece`, `night`.'),
    attribute_schema: z
      .record(z.string(), z.unknown())
      .describe("JSON Schema (2020-12) an offer's attributes must conform to."),
    required_certifications: z
      .array(z.string())
      .describe('Keys of the certification programs a partner must hold valid to offer it.'),
    service_levels: ServiceLevelsJson,
    published_at: timestamp,
  })
  .meta({ id: 'Capability' });

export const EvidenceItemJson = z.object({ key: z.string(), description: z.string() });

export const CertificationProgramJson = z
  .object({
    object: z.literal('certification_program'),
    key: z.string(),
    name: z.string(),
    description: z.string(),
    requirements: z.string().describe('What a partner must meet to be granted the program.'),
    evidence: z.array(EvidenceItemJson).describe('The evidence an application must carry, every item of it.'),
    validity_days: z.number().int().describe('How long a grant holds.'),
    required_by: z
      .array(z.string())
      .describe('The capabilities whose current version requires this program, by key.'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'CertificationProgram' });

export const CertificationJson = z
  .object({
    id: z.string(),
    object: z.literal('certification'),
    partner_id: z.string(),
    program: z.string(),
    status: z.enum(CERTIFICATION_STATUSES),
    evidence: z.record(z.string(), z.string()),
    valid_from: timestamp.nullable(),
    valid_until: timestamp.nullable(),
    renewal_of: z.string().nullable().describe('The certification this one continues.'),
    reason: z
      .string()
      .nullable()
      .describe('The note of the grant, or the reason of a rejection or revocation.'),
    applied_at: timestamp,
    decided_at: timestamp.nullable(),
  })
  .meta({ id: 'Certification' });

export const capabilityJson = (capability: Capability): z.input<typeof CapabilityJson> => ({
  object: 'capability',
  key: capability.key,
  version: capability.version,
  name: capability.name,
  unit: capability.unit,
  attribute_schema: capability.attributeSchema,
  required_certifications: [...capability.requiredCertifications],
  service_levels: {
    max_lead_time_hours: capability.serviceLevels.maxLeadTimeHours,
    acceptance_window_hours: capability.serviceLevels.acceptanceWindowHours,
  },
  published_at: iso(capability.publishedAt),
});

export const programJson = (program: CertificationProgram): z.input<typeof CertificationProgramJson> => ({
  object: 'certification_program',
  key: program.key,
  name: program.name,
  description: program.description,
  requirements: program.requirements,
  evidence: program.evidence.map((item) => ({ key: item.key, description: item.description })),
  validity_days: program.validityDays,
  required_by: [...program.requiredBy],
  created_at: iso(program.createdAt),
  updated_at: iso(program.updatedAt),
});

export const certificationJson = (certification: Certification): z.input<typeof CertificationJson> => ({
  id: certification.id,
  object: 'certification',
  partner_id: certification.partnerId,
  program: certification.programKey,
  status: certification.status,
  evidence: certification.evidence,
  valid_from: isoOrNull(certification.validFrom),
  valid_until: isoOrNull(certification.validUntil),
  renewal_of: certification.renewalOf,
  reason: certification.reason,
  applied_at: iso(certification.appliedAt),
  decided_at: isoOrNull(certification.decidedAt),
});
