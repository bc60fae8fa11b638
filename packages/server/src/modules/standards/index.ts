/** Capabilities (the standards partners conform to) and certification programs. */
export type {
  Capability,
  CapabilityChanges,
  CapabilityDefinition,
  ServiceLevels,
} from './domain/capability.js';
export {
  CERTIFICATION_STATUSES,
  type Certification,
  type CertificationProgram,
  type CertificationStatus,
  type EvidenceItem,
} from './domain/certification.js';
export {
  CapabilityJson,
  CertificationJson,
  CertificationProgramJson,
  capabilityJson,
  certificationJson,
  programJson,
} from './http/json.js';
export { standardsRoutes } from './http/routes.js';
export { CERTIFICATION_EXPIRY_JOB, standardsJobs } from './jobs.js';
export {
  type CertificationFilter,
  createStandardsService,
  type ProgramChanges,
  type StandardsService,
  type ValidCertification,
  validateAttributes,
} from './service.js';
export { standardsMigrations } from './store/migrations.js';
