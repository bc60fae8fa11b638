import { z } from 'zod';
import { unreachable } from '../assert.js';
import type { DomainError, ErrorKind } from '../errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** What is wrong with one field: where (a JSON pointer), which rule, and a message for people. */
export const FieldErrorJson = z.object({ path: z.string(), rule: z.string(), message: z.string() });

/** An RFC 9457 problem document, with Baton's stable `code` and the request id. */
export const Problem = z
  .object({
    type: z.string().describe('A URI naming the problem type: `urn:baton:problem:<code>`.'),
    title: z.string(),
    status: z.number().int(),
    code: z.string().describe('Stable, machine-readable code named after the broken rule.'),
    detail: z.string().optional(),
    request_id: z.string(),
    errors: z
      .array(FieldErrorJson)
      .optional()
      .describe('One entry per rejected field, for validation failures.'),
  })
  .catchall(z.unknown())
  .meta({ id: 'Problem' });
export type Problem = z.infer<typeof Problem>;

export function statusForKind(kind: ErrorKind): number {
  switch (kind) {
    case 'invalid':
      return 400;
    case 'unauthenticated':
      return 401;
    case 'forbidden':
      return 403;
    case 'not_found':
      return 404;
    case 'conflict':
      return 409;
    case 'unprocessable':
      return 422;
    case 'rate_limited':
      return 429;
    default:
      return unreachable(kind);
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(
  status: number,
  code: string,
  requestId: string,
  detail?: string,
  extra: Record<string, unknown> = {},
): Problem {
  // Details come first: a detail can never overwrite the problem's own fields.
  return {
    ...extra,
    type: `urn:baton:problem:${code}`,
    title: TITLES[status] ?? 'Error',
    status,
    code,
    ...(detail === undefined ? {} : { detail }),
    request_id: requestId,
  };
}

export function problemFromDomainError(error: DomainError, requestId: string): Problem {
  return problem(statusForKind(error.kind), error.code, requestId, error.message, error.details);
}
