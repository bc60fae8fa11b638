/**
 * The kinds of expected failure. Only the HTTP layer turns a kind into a status code; the
 * domain speaks in kinds and stable codes named after the rule that was broken.
 */
export type ErrorKind =
  | 'invalid'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'unprocessable'
  | 'rate_limited';

/** One rejected field of a request or document: where, which rule, and why. */
export interface FieldError {
  /** JSON Pointer to the field, `""` for the document itself. */
  readonly path: string;
  /** The rule that was broken, such as `required`, `minimum` or `format`. */
  readonly rule: string;
  readonly message: string;
}

/**
 * An expected failure with a stable code (`participants.transition_not_allowed`). Callers
 * branch on `code`; `message` is for people and may change.
 */
export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    readonly details: { readonly errors?: readonly FieldError[]; readonly [key: string]: unknown } = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export const isDomainError = (error: unknown): error is DomainError => error instanceof DomainError;

export const invalid = (code: string, message: string, details?: DomainError['details']) =>
  new DomainError('invalid', code, message, details);
export const unauthenticated = (code: string, message: string) =>
  new DomainError('unauthenticated', code, message);
export const forbidden = (code: string, message: string) => new DomainError('forbidden', code, message);
export const notFound = (code: string, message: string) => new DomainError('not_found', code, message);
export const conflict = (code: string, message: string, details?: DomainError['details']) =>
  new DomainError('conflict', code, message, details);
export const unprocessable = (code: string, message: string, details?: DomainError['details']) =>
  new DomainError('unprocessable', code, message, details);
