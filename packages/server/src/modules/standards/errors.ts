import {
  conflict,
  type FieldError,
  forbidden,
  invalid,
  notFound,
  unprocessable,
} from '../../kernel/errors.js';
import type { CertificationStatus } from './domain/certification.js';

/** The standards module's expected failures, each named after the rule it enforces. */
export const standardsErrors = {
  capabilityNotFound: (key: string) => notFound('standards.capability_not_found', `No capability ${key}.`),
  capabilityVersionNotFound: (key: string, version: number) =>
    notFound('standards.capability_version_not_found', `No version ${version} of the capability ${key}.`),
  capabilityExists: (key: string) =>
    conflict('standards.capability_exists', `The capability ${key} already exists.`),
  /** A definition's plain fields break their rules; `errors` names each field. */
  capabilityInvalid: (errors: readonly FieldError[]) =>
    invalid('standards.capability_invalid', 'The capability is not valid.', { errors }),
  /** A capability may only require programs that exist. */
  unknownProgram: (programs: readonly string[], errors: readonly FieldError[]) =>
    unprocessable('standards.unknown_program', `No certification program ${programs.join(', ')}.`, {
      programs,
      errors,
    }),
  programNotFound: (key: string) =>
    notFound('standards.program_not_found', `No certification program ${key}.`),
  programExists: (key: string) =>
    conflict('standards.program_exists', `The certification program ${key} already exists.`),
  /** A program's plain fields break their rules; `errors` names each field. */
  programInvalid: (errors: readonly FieldError[]) =>
    invalid('standards.program_invalid', 'The certification program is not valid.', { errors }),
  /** Another tenant's partner is as absent as a missing one. */
  partnerNotFound: (id: string) => notFound('standards.partner_not_found', `No partner ${id}.`),
  certificationNotFound: (id: string) =>
    notFound('standards.certification_not_found', `No certification ${id}.`),
  /** Every evidence item the program asks for must be given; `errors` names each one missing. */
  evidenceMissing: (program: string, errors: readonly FieldError[]) =>
    unprocessable('standards.evidence_missing', `The application lacks evidence ${program} asks for.`, {
      errors,
    }),
  /** Evidence the program does not ask for is refused rather than kept unread. */
  evidenceUnexpected: (program: string, errors: readonly FieldError[]) =>
    unprocessable(
      'standards.evidence_unexpected',
      `The application carries evidence ${program} does not ask for.`,
      {
        errors,
      },
    ),
  /** One application per partner and program waits for a decision at a time. */
  applicationPending: (program: string) =>
    conflict(
      'standards.application_pending',
      `The partner already has an application for ${program} waiting for a decision.`,
    ),
  /** Grants and rejections decide pending applications; only granted certifications are revoked. */
  certificationNotDecidable: (status: CertificationStatus, action: string) =>
    // Named `current_status`: a detail named `status` would replace the problem's HTTP status.
    conflict('standards.certification_not_decidable', `A ${status} certification cannot be ${action}.`, {
      current_status: status,
    }),
  /** Four eyes: whoever filed an application on a partner's behalf does not grant it. */
  selfApproval: () =>
    forbidden('standards.self_approval', 'An application you filed must be granted by another operator.'),
};
