import type { FieldError } from '../../../kernel/errors.js';

/** A capability's or a certification program's key: `dyeing`, `last-mile-delivery`. */
export const STANDARD_KEY_PATTERN = /^[a-z][a-z0-9-]{1,59}$/;
/** The unit a capability is sold in: a short lowercase word such as `kg`, `piece` or `night`. */
export const UNIT_PATTERN = /^[a-z][a-z0-9-]{0,23}$/;
/** Longest name of a capability or program. */
export const STANDARD_NAME_LENGTH_MAX = 200;
/** Longest service-level duration: a year, in hours. */
export const SERVICE_LEVEL_HOURS_MAX = 24 * 366;
/** Most certification programs one capability may require. */
export const REQUIRED_CERTIFICATIONS_MAX = 20;

/** What a capability promises the customer about time; null where it promises nothing. */
export interface ServiceLevels {
  /** The longest a partner may take from accepting work to delivering it. */
  readonly maxLeadTimeHours: number | null;
  /** How long a partner has to accept or decline work offered to it. */
  readonly acceptanceWindowHours: number | null;
}

/** A capability as of one version (the current one unless asked otherwise). */
export interface Capability {
  readonly key: string;
  readonly name: string;
  readonly unit: string;
  readonly version: number;
  /** JSON Schema (2020-12, `"type": "object"`) every offer's attributes must conform to. */
  readonly attributeSchema: Record<string, unknown>;
  /** The keys of the certification programs a partner must hold valid to offer it. */
  readonly requiredCertifications: readonly string[];
  readonly serviceLevels: ServiceLevels;
  readonly publishedAt: Date;
}

/** The fields of one version of a capability, as the operator writes them. */
export interface CapabilityDefinition {
  readonly name: string;
  readonly unit: string;
  readonly attributeSchema: Record<string, unknown>;
  readonly requiredCertifications: readonly string[];
  readonly serviceLevels: ServiceLevels;
}

/** What a new version changes; every field left out is carried over from the current version. */
export interface CapabilityChanges {
  readonly name?: string | undefined;
  readonly unit?: string | undefined;
  readonly attributeSchema?: Record<string, unknown> | undefined;
  readonly requiredCertifications?: readonly string[] | undefined;
  readonly serviceLevels?: ServiceLevels | undefined;
}

/** The definition of the next version: the changes over the current one. */
export function nextDefinition(current: Capability, changes: CapabilityChanges): CapabilityDefinition {
  return {
    name: changes.name ?? current.name,
    unit: changes.unit ?? current.unit,
    attributeSchema: changes.attributeSchema ?? current.attributeSchema,
    requiredCertifications: changes.requiredCertifications ?? current.requiredCertifications,
    serviceLevels: changes.serviceLevels ?? current.serviceLevels,
  };
}

/**
 * The problems with a definition's plain fields, one per field (the attribute schema and the
 * programs are checked separately: one needs Ajv, the other the database). The HTTP layer
 * checks the same rules first; this guards callers that are not requests.
 */
export function definitionErrors(key: string, definition: CapabilityDefinition): FieldError[] {
  const errors: FieldError[] = [];
  if (!STANDARD_KEY_PATTERN.test(key)) {
    errors.push({ path: '/key', rule: 'pattern', message: 'must be lowercase letters, digits and dashes' });
  }
  const name = definition.name.trim();
  if (name.length === 0 || name.length > STANDARD_NAME_LENGTH_MAX) {
    errors.push({
      path: '/name',
      rule: 'length',
      message: `must be 1 to ${STANDARD_NAME_LENGTH_MAX} characters`,
    });
  }
  if (!UNIT_PATTERN.test(definition.unit)) {
    errors.push({ path: '/unit', rule: 'pattern', message: 'must be a short lowercase word such as "kg"' });
  }
  const programs = definition.requiredCertifications;
  if (programs.length > REQUIRED_CERTIFICATIONS_MAX) {
    errors.push({
      path: '/required_certifications',
      rule: 'maxItems',
      message: `must name at most ${REQUIRED_CERTIFICATIONS_MAX} programs`,
    });
  }
  if (new Set(programs).size !== programs.length) {
    errors.push({
      path: '/required_certifications',
      rule: 'uniqueItems',
      message: 'must not repeat a program',
    });
  }
  const levels: [string, number | null][] = [
    ['max_lead_time_hours', definition.serviceLevels.maxLeadTimeHours],
    ['acceptance_window_hours', definition.serviceLevels.acceptanceWindowHours],
  ];
  for (const [field, hours] of levels) {
    if (hours !== null && !(Number.isInteger(hours) && hours >= 1 && hours <= SERVICE_LEVEL_HOURS_MAX)) {
      errors.push({
        path: `/service_levels/${field}`,
        rule: 'range',
        message: `must be a whole number of hours from 1 to ${SERVICE_LEVEL_HOURS_MAX}, or null`,
      });
    }
  }
  return errors;
}
