import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  parseQuantityPerUnit,
  predecessors,
  QUANTITY_PER_UNIT_MAX,
  stepQuantity,
  successors,
  topologicalOrder,
  validateSteps,
} from './graph.js';
import { STEPS_MAX, type StepDefinition } from './offering.js';

const step = (key: string, after: string[] = [], fields: Partial<StepDefinition> = {}): StepDefinition => ({
  key,
  name: `Step ${key}`,
  capability: 'sewing',
  constraints: {},
  quantityPerUnit: '1',
  after,
  ...fields,
});

/** fabric → dyeing → sewing → inspection → shipping, as a custom garment is made. */
const GARMENT = [
  step('fabric'),
  step('dyeing', ['fabric']),
  step('sewing', ['dyeing']),
  step('inspection', ['sewing']),
  step('shipping', ['inspection']),
];

describe('validateSteps', () => {
  it('accepts a chain, a fork and a join', () => {
    expect(validateSteps(GARMENT)).toEqual([]);
    expect(
      validateSteps([step('restaurant'), step('packaging'), step('courier', ['restaurant', 'packaging'])]),
    ).toEqual([]);
  });

  it('refuses an offering without steps, and one with too many', () => {
    expect(validateSteps([])).toEqual([{ path: '/steps', rule: 'minItems', message: 'must have a step' }]);
    const many = Array.from({ length: STEPS_MAX + 1 }, (_, i) => step(`s${i}`));
    expect(validateSteps(many).map((error) => `${error.path} ${error.rule}`)).toEqual(['/steps maxItems']);
  });

  it('reports bad and repeated keys, empty names and malformed capability keys at their fields', () => {
    const errors = validateSteps([
      step('Fabric'),
      step('sewing', [], { name: '  ' }),
      step('sewing', [], { capability: 'Not A Key' }),
    ]);
    expect(errors.map((error) => `${error.path} ${error.rule}`)).toEqual([
      '/steps/0/key pattern',
      '/steps/1/name length',
      '/steps/2/key uniqueItems',
      '/steps/2/capability pattern',
    ]);
  });

  it('reports an unknown predecessor, a repeated one and a step after itself at the dependency', () => {
    const errors = validateSteps([step('a'), step('b', ['a', 'nowhere', 'a', 'b'])]);
    expect(errors).toEqual([
      { path: '/steps/1/after/1', rule: 'exists', message: 'no step nowhere' },
      { path: '/steps/1/after/2', rule: 'uniqueItems', message: 'repeats the step a' },
      { path: '/steps/1/after/3', rule: 'acyclic', message: 'the step b cannot come after itself' },
    ]);
  });

  it('names a cycle with its steps in order, at the dependency that closes it', () => {
    const steps = [
      step('fabric'),
      step('dyeing', ['fabric']),
      step('sewing', ['dyeing', 'inspection']),
      step('inspection', ['sewing']),
      step('shipping', ['inspection']),
    ];
    expect(validateSteps(steps)).toEqual([
      { path: '/steps/2/after/1', rule: 'acyclic', message: 'forms a cycle: sewing → inspection → sewing' },
    ]);
  });

  it('reports every separate cycle', () => {
    const steps = [step('a', ['b']), step('b', ['a']), step('c', ['e']), step('d', ['c']), step('e', ['d'])];
    const messages = validateSteps(steps).map((error) => error.message);
    expect(messages).toEqual(['forms a cycle: a → b → a', 'forms a cycle: c → d → e → c']);
  });

  it('checks quantities per unit as exact decimals', () => {
    const rules = (text: string) =>
      validateSteps([step('a', [], { quantityPerUnit: text })]).map((error) => error.rule);
    for (const good of ['1', '1.2', '0.000001', '12.500000', String(QUANTITY_PER_UNIT_MAX)]) {
      expect(rules(good), good).toEqual([]);
    }
    expect(rules('0')).toEqual(['exclusiveMinimum']);
    expect(rules('0.0')).toEqual(['exclusiveMinimum']);
    expect(rules('1.0000001')).toEqual(['decimals']);
    expect(rules(`${QUANTITY_PER_UNIT_MAX}.000001`)).toEqual(['maximum']);
    for (const bad of ['', '-1', '1e3', '1,2', '.5', '1.', '01', ' 1', 'NaN']) {
      expect(rules(bad), bad).toEqual(['format']);
    }
  });

  it('checks the shape of constraints: a condition each, min at most max, scalar values', () => {
    const errors = validateSteps([
      step('a', [], {
        constraints: {
          weight: { min: 200, max: 100 },
          colour: {},
          'a/b': { in: [] },
          size: { eq: { nested: true } as never },
        },
      }),
    ]);
    expect(errors.map((error) => `${error.path} ${error.rule}`)).toEqual([
      '/steps/0/constraints/weight/max minimum',
      '/steps/0/constraints/colour minProperties',
      '/steps/0/constraints/a~1b/in length',
      '/steps/0/constraints/size/eq type',
    ]);
  });
});

describe('topologicalOrder', () => {
  it('puts every step after its predecessors, ties in definition order', () => {
    expect(topologicalOrder(GARMENT)).toEqual(['fabric', 'dyeing', 'sewing', 'inspection', 'shipping']);
    const meal = [step('courier', ['restaurant', 'packaging']), step('restaurant'), step('packaging')];
    expect(topologicalOrder(meal)).toEqual(['restaurant', 'packaging', 'courier']);
    const trip = [step('stay'), step('transfer'), step('guide', ['stay', 'transfer'])];
    expect(topologicalOrder(trip)).toEqual(['stay', 'transfer', 'guide']);
  });

  it('is stable: a step that becomes ready comes after the earlier-defined ready ones', () => {
    const steps = [step('d', ['a']), step('c'), step('b'), step('a')];
    expect(topologicalOrder(steps)).toEqual(['c', 'b', 'a', 'd']);
  });

  it('refuses a cycle as a bug: steps reach it only after validation', () => {
    expect(() => topologicalOrder([step('a', ['b']), step('b', ['a'])])).toThrow(/no cycle/);
  });
});

describe('successors and predecessors', () => {
  const meal = [step('restaurant'), step('packaging'), step('courier', ['restaurant', 'packaging'])];
  it('names the steps directly after and before a step', () => {
    expect(successors(meal, 'restaurant')).toEqual(['courier']);
    expect(successors(meal, 'courier')).toEqual([]);
    expect(predecessors(meal, 'courier')).toEqual(['restaurant', 'packaging']);
    expect(predecessors(meal, 'packaging')).toEqual([]);
  });
});

describe('stepQuantity', () => {
  it('multiplies exactly, with no floating point error', () => {
    expect(stepQuantity('1.2', 10)).toBe(12);
    expect(stepQuantity('0.1', 3)).toBe(1); // 0.30000000000000004 in floating point, rounded up to 1
    expect(stepQuantity('0.1', 30)).toBe(3);
    expect(stepQuantity('1.1', 100)).toBe(110);
    expect(stepQuantity('2.675', 1000)).toBe(2675);
  });

  it('rounds up to a whole number, and never below 1', () => {
    expect(stepQuantity('1.2', 1)).toBe(2);
    expect(stepQuantity('1.25', 3)).toBe(4);
    expect(stepQuantity('0.000001', 1)).toBe(1);
    expect(stepQuantity('3', 4)).toBe(12);
  });

  it('equals the exact product rounded up, for any decimal and quantity', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: BigInt(QUANTITY_PER_UNIT_MAX) * 1_000_000n }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (micros, quantity) => {
          const text = `${micros / 1_000_000n}.${(micros % 1_000_000n).toString().padStart(6, '0')}`;
          expect(parseQuantityPerUnit(text)).toEqual({ micros });
          const result = BigInt(stepQuantity(text, quantity));
          const exact = micros * BigInt(quantity);
          // result is the smallest whole number whose millionths reach the exact product.
          expect(result * 1_000_000n >= exact).toBe(true);
          expect((result - 1n) * 1_000_000n < exact).toBe(true);
          expect(result >= 1n).toBe(true);
        },
      ),
    );
  });
});
