/**
 * A broken invariant: a bug, never an expected outcome. It surfaces as an opaque 500 with a
 * request id, and its message goes to the log only.
 */
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

/** Stops the current operation when `condition` is false, because the code is wrong. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a branch the type system proves unreachable. */
export function unreachable(value: never): never {
  throw new AssertionError(`unreachable: ${JSON.stringify(value)}`);
}
