import type { FieldError } from '../../../kernel/errors.js';
import type { CertificationId, PartnerId } from '../../../kernel/ids.js';
import { STANDARD_KEY_PATTERN, STANDARD_NAME_LENGTH_MAX } from './capability.js';

export const DAY_MS = 24 * 60 * 60 * 1000;
/** Longest validity of a certification: ten years. */
export const VALIDITY_DAYS_MAX = 3660;
/** Most evidence items a program may ask for. */
export const EVIDENCE_ITEMS_MAX = 50;
/** Longest piece of evidence: a statement, or a link to a document held elsewhere. */
export const EVIDENCE_LENGTH_MAX = 5000;
/** An evidence item's key: `licence_number`, `insurance-certificate`. */
export const EVIDENCE_KEY_PATTERN = /^[a-z][a-z0-9_-]{0,39}$/;
/** Longest description of a program, of its requirements, or of an evidence item. */
export const PROGRAM_TEXT_LENGTH_MAX = 10_000;

export const CERTIFICATION_STATUSES = ['pending', 'granted', 'rejected', 'revoked', 'expired'] as const;
/**
 * Where a certification stands: `pending` until an operator decides; `granted` (valid between
 * `validFrom` and `validUntil`); `rejected`; `revoked` by an operator; `expired` once its
 * validity ended.
 */
export type CertificationStatus = (typeof CERTIFICATION_STATUSES)[number];

/** One piece of evidence a program asks for. */
export interface EvidenceItem {
  readonly key: string;
  readonly description: string;
}

/** A certification program: what a partner must show, and for how long a grant holds. */
export interface CertificationProgram {
  readonly key: string;
  readonly name: string;
  readonly description: string;
  readonly requirements: string;
  /** Every item is required in an application. */
  readonly evidence: readonly EvidenceItem[];
  readonly validityDays: number;
  /** The capabilities whose current version requires this program, by key. */
  readonly requiredBy: readonly string[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** The fields of a program, as the operator writes them. */
export interface ProgramDefinition {
  readonly name: string;
  readonly description: string;
  readonly requirements: string;
  readonly evidence: readonly EvidenceItem[];
  readonly validityDays: number;
}

/**
 * The problems with a program's fields, one per field. The HTTP layer checks the same rules
 * first; this guards callers that are not requests.
 */
export function programErrors(key: string, program: ProgramDefinition): FieldError[] {
  const errors: FieldError[] = [];
  if (!STANDARD_KEY_PATTERN.test(key)) {
    errors.push({ path: '/key', rule: 'pattern', message: 'must be lowercase letters, digits and dashes' });
  }
  const name = program.name.trim();
  if (name.length === 0 || name.length > STANDARD_NAME_LENGTH_MAX) {
    errors.push({
      path: '/name',
      rule: 'length',
      message: `must be 1 to ${STANDARD_NAME_LENGTH_MAX} characters`,
    });
  }
  for (const field of ['description', 'requirements'] as const) {
    if (program[field].length > PROGRAM_TEXT_LENGTH_MAX) {
      errors.push({
        path: `/${field}`,
        rule: 'maxLength',
        message: `must be at most ${PROGRAM_TEXT_LENGTH_MAX} characters`,
      });
    }
  }
  if (program.evidence.length > EVIDENCE_ITEMS_MAX) {
    errors.push({
      path: '/evidence',
      rule: 'maxItems',
      message: `must list at most ${EVIDENCE_ITEMS_MAX} items`,
    });
  }
  const seen = new Set<string>();
  program.evidence.forEach((item, index) => {
    if (!EVIDENCE_KEY_PATTERN.test(item.key)) {
      errors.push({
        path: `/evidence/${index}/key`,
        rule: 'pattern',
        message: 'must be lowercase letters, digits, _ and -',
      });
    } else if (seen.has(item.key)) {
      errors.push({
        path: `/evidence/${index}/key`,
        rule: 'uniqueItems',
        message: 'must not repeat an item',
      });
    }
    seen.add(item.key);
    const description = item.description.trim();
    if (description.length === 0 || description.length > PROGRAM_TEXT_LENGTH_MAX) {
      errors.push({ path: `/evidence/${index}/description`, rule: 'length', message: 'must not be blank' });
    }
  });
  if (
    !(
      Number.isInteger(program.validityDays) &&
      program.validityDays >= 1 &&
      program.validityDays <= VALIDITY_DAYS_MAX
    )
  ) {
    errors.push({
      path: '/validity_days',
      rule: 'range',
      message: `must be a whole number from 1 to ${VALIDITY_DAYS_MAX}`,
    });
  }
  return errors;
}

/** A partner's application for a program, and what became of it. */
export interface Certification {
  readonly id: CertificationId;
  readonly partnerId: PartnerId;
  readonly programKey: string;
  readonly status: CertificationStatus;
  /** The applicant's evidence, by item key. */
  readonly evidence: Record<string, string>;
  readonly validFrom: Date | null;
  readonly validUntil: Date | null;
  /** The certification this one continues, when the partner applied while holding one. */
  readonly renewalOf: CertificationId | null;
  /** Why the last decision was taken (the note of a grant, the reason of a rejection or revocation). */
  readonly reason: string | null;
  readonly appliedAt: Date;
  readonly decidedAt: Date | null;
}

/** A granted period of one program for one partner. */
export interface ValidityPeriod {
  readonly validFrom: Date;
  readonly validUntil: Date;
}

/**
 * The evidence an application lacks, and the items it carries that the program does not ask
 * for, each as a field error under `/evidence/<item>`. Blank evidence counts as missing.
 */
export function evidenceErrors(
  items: readonly EvidenceItem[],
  evidence: Readonly<Record<string, string>>,
): { missing: FieldError[]; unexpected: FieldError[] } {
  const asked = new Set(items.map((item) => item.key));
  const missing = items
    .filter((item) => (evidence[item.key] ?? '').trim().length === 0)
    .map((item) => ({
      path: `/evidence/${item.key}`,
      rule: 'required',
      message: `is required: ${item.description}`,
    }));
  const unexpected = Object.keys(evidence)
    .filter((key) => !asked.has(key))
    .map((key) => ({ path: `/evidence/${key}`, rule: 'additionalProperties', message: 'is not asked for' }));
  return { missing, unexpected };
}

/**
 * The period a grant made at `now` covers. A renewal of a certification that is still valid
 * (`coveredUntil` after `now`) starts when that one ends, so the partner is never without
 * it; otherwise the grant starts at once.
 */
export function grantPeriod(now: Date, validityDays: number, coveredUntil: Date | null): ValidityPeriod {
  const validFrom = coveredUntil !== null && coveredUntil > now ? coveredUntil : now;
  return { validFrom, validUntil: new Date(validFrom.getTime() + validityDays * DAY_MS) };
}

/** Whether a period covers the instant `at` (its start included, its end excluded). */
export function covers(period: ValidityPeriod, at: Date): boolean {
  return period.validFrom <= at && at < period.validUntil;
}

/**
 * Until when granted periods of one program cover a partner without a gap from `at` on, or
 * null when none covers `at`. A renewal that starts exactly when the previous period ends
 * continues it.
 */
export function coveredUntil(periods: readonly ValidityPeriod[], at: Date): Date | null {
  let end: Date | null = null;
  for (const period of periods) {
    if (covers(period, at) && (end === null || period.validUntil > end)) end = period.validUntil;
  }
  if (end === null) return null;
  for (let extended = true; extended; ) {
    extended = false;
    for (const period of periods) {
      if (period.validFrom <= end && period.validUntil > end) {
        end = period.validUntil;
        extended = true;
      }
    }
  }
  return end;
}

/** The status a decision needs the certification to be in. */
export const DECISION_FROM: Readonly<Record<'grant' | 'reject' | 'revoke', CertificationStatus>> = {
  grant: 'pending',
  reject: 'pending',
  revoke: 'granted',
};
