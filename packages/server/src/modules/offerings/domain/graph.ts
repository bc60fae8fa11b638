import { assert } from '../../../kernel/assert.js';
import type { FieldError } from '../../../kernel/errors.js';
import type { AttributeConstraint } from '../../matching/index.js';
import { KEY_PATTERN, STEPS_MAX, type StepDefinition } from './offering.js';

/** A capability's key, as the standards module writes it: `dyeing`, `last-mile-delivery`. */
export const CAPABILITY_KEY_PATTERN = /^[a-z][a-z0-9-]{1,59}$/;
/** Longest name of a step. */
export const STEP_NAME_LENGTH_MAX = 200;
/** Attributes one step may constrain. */
export const CONSTRAINTS_MAX = 20;
/** Values one `in` constraint may list. */
export const CONSTRAINT_VALUES_MAX = 100;
/** Longest attribute name a constraint may name. */
export const ATTRIBUTE_NAME_LENGTH_MAX = 100;
/** Longest string value a constraint may compare with. */
export const CONSTRAINT_STRING_LENGTH_MAX = 200;
/** Decimal places a step's quantity per unit may have. */
export const QUANTITY_PER_UNIT_DECIMALS_MAX = 6;
/**
 * Largest quantity per unit of the order. With `QUANTITY_MAX` units ordered, a leg stays within
 * the catalog's largest quantity (10^12), so every leg's quantity is an exact integer.
 */
export const QUANTITY_PER_UNIT_MAX = 1_000_000;

const QUANTITY_SCALE = 10n ** BigInt(QUANTITY_PER_UNIT_DECIMALS_MAX);
const DECIMAL = /^(0|[1-9]\d{0,15})(?:\.(\d{1,32}))?$/;

/**
 * A quantity per unit in millionths, or the rule it breaks: a decimal with at most six places,
 * above zero and at most `QUANTITY_PER_UNIT_MAX`. No floating point is involved, so `"1.2"` is
 * exactly 1 200 000 millionths.
 */
export function parseQuantityPerUnit(
  text: string,
): { readonly micros: bigint } | { readonly rule: string; readonly message: string } {
  const match = DECIMAL.exec(text);
  if (!match) {
    return { rule: 'format', message: 'must be a positive decimal such as "1.2" (digits and one point)' };
  }
  const [, whole = '', fraction = ''] = match;
  if (fraction.length > QUANTITY_PER_UNIT_DECIMALS_MAX) {
    return {
      rule: 'decimals',
      message: `must have at most ${QUANTITY_PER_UNIT_DECIMALS_MAX} decimal places`,
    };
  }
  const micros =
    BigInt(whole) * QUANTITY_SCALE + BigInt(fraction.padEnd(QUANTITY_PER_UNIT_DECIMALS_MAX, '0'));
  if (micros === 0n) return { rule: 'exclusiveMinimum', message: 'must be more than 0' };
  if (micros > BigInt(QUANTITY_PER_UNIT_MAX) * QUANTITY_SCALE) {
    return { rule: 'maximum', message: `must be at most ${QUANTITY_PER_UNIT_MAX}` };
  }
  return { micros };
}

/**
 * The quantity of a step's leg for an order of `orderQuantity` units: the quantity per unit times
 * the order's quantity, computed exactly in integers and rounded up, so a leg never buys less
 * than the order needs (1.2 kg × 10 garments is exactly 12; 0.3 × 1 is 1). Always at least 1.
 *
 * Both arguments must have passed validation: anything else is a bug and an assertion.
 */
export function stepQuantity(quantityPerUnit: string, orderQuantity: number): number {
  assert(
    Number.isSafeInteger(orderQuantity) && orderQuantity >= 1,
    'an order quantity is a positive whole number',
  );
  const parsed = parseQuantityPerUnit(quantityPerUnit);
  assert('micros' in parsed, `the quantity per unit ${quantityPerUnit} was not validated`);
  const product = parsed.micros * BigInt(orderQuantity);
  const quantity = (product + QUANTITY_SCALE - 1n) / QUANTITY_SCALE;
  assert(quantity <= BigInt(Number.MAX_SAFE_INTEGER), 'a leg quantity fits a JSON number exactly');
  return Number(quantity);
}

/** Escapes a key for a JSON Pointer (RFC 6901). */
export const pointerToken = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * The problems with an offering's steps, one per field, as JSON Pointers into the API's form
 * (`/steps/2/after/0`): no steps or too many, bad or repeated keys, names, capability keys,
 * constraints (shape, `min` above `max`), quantities per unit, and dependencies (unknown
 * steps, a step after itself, repeats, cycles). A cycle is reported once, at the dependency
 * that closes it, with its steps in order: `sewing → inspection → sewing`.
 *
 * Whether the capabilities exist and name the constrained attributes needs the standards, and
 * is checked by the service.
 */
export function validateSteps(steps: readonly StepDefinition[]): FieldError[] {
  const errors: FieldError[] = [];
  if (steps.length === 0) errors.push({ path: '/steps', rule: 'minItems', message: 'must have a step' });
  if (steps.length > STEPS_MAX) {
    errors.push({ path: '/steps', rule: 'maxItems', message: `must have at most ${STEPS_MAX} steps` });
  }
  const indexOf = new Map<string, number>();
  steps.forEach((step, index) => {
    const at = `/steps/${index}`;
    if (!KEY_PATTERN.test(step.key)) {
      errors.push({
        path: `${at}/key`,
        rule: 'pattern',
        message: 'must be lowercase letters, digits and dashes, starting with a letter',
      });
    } else if (indexOf.has(step.key)) {
      errors.push({ path: `${at}/key`, rule: 'uniqueItems', message: `repeats the step ${step.key}` });
    } else {
      indexOf.set(step.key, index);
    }
    const name = step.name.trim();
    if (name.length === 0 || name.length > STEP_NAME_LENGTH_MAX) {
      errors.push({
        path: `${at}/name`,
        rule: 'length',
        message: `must be 1 to ${STEP_NAME_LENGTH_MAX} characters`,
      });
    }
    if (!CAPABILITY_KEY_PATTERN.test(step.capability)) {
      errors.push({
        path: `${at}/capability`,
        rule: 'pattern',
        message: 'must be a capability key such as "dyeing" (lowercase, digits, dashes)',
      });
    }
    errors.push(...constraintErrors(`${at}/constraints`, step.constraints));
    const quantity = parseQuantityPerUnit(step.quantityPerUnit);
    if ('rule' in quantity) errors.push({ path: `${at}/quantity_per_unit`, ...quantity });
  });
  steps.forEach((step, index) => {
    if (step.after.length > STEPS_MAX) {
      errors.push({
        path: `/steps/${index}/after`,
        rule: 'maxItems',
        message: `must name at most ${STEPS_MAX} steps`,
      });
    }
    const seen = new Set<string>();
    step.after.forEach((predecessor, j) => {
      const path = `/steps/${index}/after/${j}`;
      if (predecessor === step.key) {
        errors.push({ path, rule: 'acyclic', message: `the step ${step.key} cannot come after itself` });
      } else if (!indexOf.has(predecessor)) {
        errors.push({ path, rule: 'exists', message: `no step ${predecessor}` });
      } else if (seen.has(predecessor)) {
        errors.push({ path, rule: 'uniqueItems', message: `repeats the step ${predecessor}` });
      }
      seen.add(predecessor);
    });
  });
  errors.push(...cycleErrors(steps, indexOf));
  return errors;
}

function constraintErrors(
  at: string,
  constraints: Readonly<Record<string, AttributeConstraint>>,
): FieldError[] {
  const errors: FieldError[] = [];
  const entries = Object.entries(constraints);
  if (entries.length > CONSTRAINTS_MAX) {
    errors.push({
      path: at,
      rule: 'maxProperties',
      message: `must constrain at most ${CONSTRAINTS_MAX} attributes`,
    });
  }
  for (const [attribute, constraint] of entries) {
    const path = `${at}/${pointerToken(attribute)}`;
    if (attribute.length === 0 || attribute.length > ATTRIBUTE_NAME_LENGTH_MAX) {
      errors.push({
        path,
        rule: 'propertyNames',
        message: `an attribute name has 1 to ${ATTRIBUTE_NAME_LENGTH_MAX} characters`,
      });
    }
    const { eq, in: values, min, max } = constraint;
    if (eq === undefined && values === undefined && min === undefined && max === undefined) {
      errors.push({ path, rule: 'minProperties', message: 'must have eq, in, min or max' });
    }
    if (eq !== undefined && !isScalar(eq)) {
      errors.push({ path: `${path}/eq`, rule: 'type', message: 'must be a string, a number or a boolean' });
    }
    if (values !== undefined) {
      if (values.length === 0 || values.length > CONSTRAINT_VALUES_MAX) {
        errors.push({
          path: `${path}/in`,
          rule: 'length',
          message: `must list 1 to ${CONSTRAINT_VALUES_MAX} values`,
        });
      }
      values.forEach((value, k) => {
        if (!isScalar(value)) {
          errors.push({
            path: `${path}/in/${k}`,
            rule: 'type',
            message: 'must be a string, a number or a boolean',
          });
        }
      });
    }
    for (const [bound, value] of [
      ['min', min],
      ['max', max],
    ] as const) {
      if (value !== undefined && !Number.isFinite(value)) {
        errors.push({ path: `${path}/${bound}`, rule: 'type', message: 'must be a finite number' });
      }
    }
    if (min !== undefined && max !== undefined && Number.isFinite(min) && Number.isFinite(max) && min > max) {
      errors.push({ path: `${path}/max`, rule: 'minimum', message: `must be at least min (${min})` });
    }
  }
  return errors;
}

function isScalar(value: unknown): boolean {
  return (
    (typeof value === 'string' && value.length <= CONSTRAINT_STRING_LENGTH_MAX) ||
    (typeof value === 'number' && Number.isFinite(value)) ||
    typeof value === 'boolean'
  );
}

/**
 * Finds the cycles among the dependencies between known, distinct steps, by a depth-first
 * search in definition order: a dependency that leads back to a step still on the search's path
 * closes a cycle. Every graph with a cycle has such a dependency, so none goes unreported.
 */
function cycleErrors(steps: readonly StepDefinition[], indexOf: ReadonlyMap<string, number>): FieldError[] {
  // Edges run from a predecessor to the step after it, with where the dependency is written.
  const edges = new Map<string, { to: string; path: string }[]>();
  steps.forEach((step, index) => {
    if (indexOf.get(step.key) !== index) return;
    const seen = new Set<string>();
    step.after.forEach((predecessor, j) => {
      if (predecessor === step.key || !indexOf.has(predecessor) || seen.has(predecessor)) return;
      seen.add(predecessor);
      const list = edges.get(predecessor) ?? [];
      list.push({ to: step.key, path: `/steps/${index}/after/${j}` });
      edges.set(predecessor, list);
    });
  });
  const errors: FieldError[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (key: string) => {
    state.set(key, 'open');
    path.push(key);
    for (const edge of edges.get(key) ?? []) {
      const next = state.get(edge.to);
      if (next === 'open') {
        const cycle = [...path.slice(path.indexOf(edge.to)), edge.to];
        errors.push({ path: edge.path, rule: 'acyclic', message: `forms a cycle: ${cycle.join(' → ')}` });
      } else if (next === undefined) {
        visit(edge.to);
      }
    }
    path.pop();
    state.set(key, 'done');
  };
  for (const key of indexOf.keys()) if (!state.has(key)) visit(key);
  return errors;
}

/**
 * The steps' keys in an order that puts every step after all of its predecessors. Among the
 * steps that are ready at once, the one defined first comes first, so the order is stable:
 * the same steps always give the same order, and steps without dependencies keep theirs.
 *
 * The steps must be valid (see `validateSteps`): a cycle here is a bug and an assertion.
 */
export function topologicalOrder(steps: readonly StepDefinition[]): string[] {
  const indexOf = new Map(steps.map((step, index) => [step.key, index]));
  assert(indexOf.size === steps.length, 'step keys are unique');
  const waiting = steps.map((step) => new Set(step.after).size);
  const followers: number[][] = steps.map(() => []);
  steps.forEach((step, index) => {
    for (const predecessor of new Set(step.after)) {
      const from = indexOf.get(predecessor);
      assert(from !== undefined, `the step ${step.key} comes after a known step`);
      followers[from]?.push(index);
    }
  });
  const done = steps.map(() => false);
  const order: string[] = [];
  while (order.length < steps.length) {
    // The first step in definition order whose predecessors are all done; steps are few.
    const next = waiting.findIndex((count, index) => count === 0 && !done[index]);
    assert(next !== -1, 'the steps have no cycle');
    done[next] = true;
    order.push((steps[next] as StepDefinition).key);
    for (const follower of followers[next] ?? []) waiting[follower] = (waiting[follower] ?? 0) - 1;
  }
  return order;
}

/** The keys of the steps that come directly after `key`, in definition order. */
export function successors(steps: readonly StepDefinition[], key: string): string[] {
  return steps.filter((step) => step.after.includes(key)).map((step) => step.key);
}

/** The keys of the steps that must be done before `key` starts. */
export function predecessors(steps: readonly StepDefinition[], key: string): string[] {
  const step = steps.find((candidate) => candidate.key === key);
  assert(step !== undefined, `no step ${key}`);
  return [...step.after];
}
