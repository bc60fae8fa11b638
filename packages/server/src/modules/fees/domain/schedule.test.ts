import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyBasisPoints,
  type FeeQuery,
  type FeeRule,
  feeFor,
  MATCH_FIELDS,
  ROUNDINGS,
  type RuleInput,
  ruleErrors,
} from './schedule.js';

const ANY: Pick<FeeRule, 'capability' | 'partnerType' | 'tier' | 'region' | 'segment'> = {
  capability: null,
  partnerType: null,
  tier: null,
  region: null,
  segment: null,
};

function rule(id: string, fields: Partial<FeeRule> = {}): FeeRule {
  return {
    id,
    ...ANY,
    commissionBps: 1000,
    fixedMinor: 0n,
    floorMinor: null,
    capMinor: null,
    rounding: 'half_up',
    ...fields,
  };
}

const ORDER: FeeQuery = {
  capability: 'dyeing',
  partnerType: 'mill',
  tier: 'standard',
  region: 'eu-west',
  segment: 'business',
  amountMinor: 10_000n,
  currency: 'EUR',
};

const value = fc.constantFrom('a', 'b');
const ruleArb = fc.record({
  capability: fc.option(value),
  partnerType: fc.option(value),
  tier: fc.option(value),
  region: fc.option(value),
  segment: fc.option(value),
  commissionBps: fc.integer({ min: 0, max: 10_000 }),
  fixedMinor: fc.bigInt({ min: 0n, max: 10_000n }),
  floorMinor: fc.option(fc.bigInt({ min: 0n, max: 5_000n })),
  capMinor: fc.option(fc.bigInt({ min: 0n, max: 100_000n })),
  rounding: fc.constantFrom(...ROUNDINGS),
});
const validRule = ruleArb.filter(
  (r) => r.floorMinor === null || r.capMinor === null || r.capMinor >= r.floorMinor,
);
const queryArb = fc.record({
  capability: value,
  partnerType: value,
  tier: value,
  region: fc.option(value),
  segment: fc.option(value),
  amountMinor: fc.bigInt({ min: 0n, max: 10n ** 12n }),
  currency: fc.constant('EUR'),
});

describe('basis points with a named rounding', () => {
  it('rounds halves up, to even, or down', () => {
    // Half of an odd number of cents lies exactly between two whole cents.
    expect(applyBasisPoints(1n, 5_000, 'half_up')).toBe(1n);
    expect(applyBasisPoints(1n, 5_000, 'half_even')).toBe(0n);
    expect(applyBasisPoints(3n, 5_000, 'half_even')).toBe(2n);
    expect(applyBasisPoints(1n, 5_000, 'down')).toBe(0n);
    expect(applyBasisPoints(1999n, 250, 'half_up')).toBe(50n); // 49.975
    expect(applyBasisPoints(1999n, 250, 'down')).toBe(49n);
  });

  it('never differs from the exact value by a unit or more', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 15n }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.constantFrom(...ROUNDINGS),
        (amount, bps, rounding) => {
          const scaled = applyBasisPoints(amount, bps, rounding) * 10_000n;
          const exact = amount * BigInt(bps);
          const difference = scaled > exact ? scaled - exact : exact - scaled;
          expect(difference).toBeLessThan(10_000n);
          if (rounding === 'down') expect(scaled).toBeLessThanOrEqual(exact);
        },
      ),
    );
  });
});

describe('the fee of an order', () => {
  it('is percentage plus fixed, raised to the floor and lowered to the cap', () => {
    const version = {
      rules: [rule('r', { commissionBps: 250, fixedMinor: 30n, floorMinor: 100n, capMinor: 500n })],
    };
    expect(feeFor(version, { ...ORDER, amountMinor: 10_000n })).toEqual({
      ruleId: 'r',
      commissionMinor: 280n,
      breakdown: {
        percentageMinor: 250n,
        fixedMinor: 30n,
        floored: false,
        capped: false,
        limitedToAmount: false,
      },
    });
    expect(feeFor(version, { ...ORDER, amountMinor: 1_000n }).commissionMinor).toBe(100n);
    expect(feeFor(version, { ...ORDER, amountMinor: 1_000n }).breakdown.floored).toBe(true);
    expect(feeFor(version, { ...ORDER, amountMinor: 100_000n }).commissionMinor).toBe(500n);
    expect(feeFor(version, { ...ORDER, amountMinor: 100_000n }).breakdown.capped).toBe(true);
  });

  it('never takes more than the amount, even when a floor or fixed part asks for more', () => {
    const version = { rules: [rule('r', { commissionBps: 0, fixedMinor: 50n, floorMinor: 100n })] };
    const result = feeFor(version, { ...ORDER, amountMinor: 70n });
    expect(result.commissionMinor).toBe(70n);
    expect(result.breakdown).toMatchObject({ floored: true, limitedToAmount: true });
  });

  it('is no fee when no rule matches', () => {
    const version = { rules: [rule('r', { capability: 'sewing' })] };
    expect(feeFor(version, ORDER)).toMatchObject({ ruleId: null, commissionMinor: 0n });
  });

  it('comes from the rule with the most match fields set', () => {
    const version = {
      rules: [
        rule('catch-all'),
        rule('region', { region: 'eu-west' }),
        rule('capability+region', { capability: 'dyeing', region: 'eu-west' }),
        rule('type+tier+segment', { partnerType: 'mill', tier: 'standard', segment: 'business' }),
        rule('other capability, more fields', {
          capability: 'sewing',
          partnerType: 'mill',
          tier: 'standard',
          region: 'eu-west',
        }),
      ],
    };
    expect(feeFor(version, ORDER).ruleId).toBe('type+tier+segment');
    expect(feeFor(version, { ...ORDER, segment: 'consumer' }).ruleId).toBe('capability+region');
    expect(feeFor(version, { ...ORDER, segment: null, capability: 'knitting' }).ruleId).toBe('region');
    expect(feeFor(version, { ...ORDER, segment: null, capability: 'knitting', region: null }).ruleId).toBe(
      'catch-all',
    );
  });

  it('breaks ties of as many fields by capability, partner type, tier, region, then segment', () => {
    const singles = MATCH_FIELDS.map((field) => rule(field, { [field]: ORDER[field] }));
    // Whatever order the rules were published in, the higher-ranked field wins.
    for (const rules of [singles, [...singles].reverse()]) {
      expect(feeFor({ rules }, ORDER).ruleId).toBe('capability');
      expect(feeFor({ rules: rules.filter((r) => r.id !== 'capability') }, ORDER).ruleId).toBe('partnerType');
      expect(
        feeFor({ rules: rules.filter((r) => r.id === 'region' || r.id === 'segment') }, ORDER).ruleId,
      ).toBe('region');
    }
  });

  it('is never negative, never above the amount, within floor and cap, from a matching rule', () => {
    fc.assert(
      fc.property(fc.array(validRule, { maxLength: 12 }), queryArb, (inputs, query) => {
        const rules = inputs.map((input, index) => ({ ...input, id: `r${index}` }));
        const result = feeFor({ rules }, query);
        expect(result.commissionMinor).toBeGreaterThanOrEqual(0n);
        expect(result.commissionMinor).toBeLessThanOrEqual(query.amountMinor);
        if (result.ruleId === null) {
          expect(result.commissionMinor).toBe(0n);
          return;
        }
        const applied = rules.find((r) => r.id === result.ruleId) as FeeRule;
        if (applied.capMinor !== null) expect(result.commissionMinor).toBeLessThanOrEqual(applied.capMinor);
        if (applied.floorMinor !== null && !result.breakdown.limitedToAmount) {
          expect(result.commissionMinor).toBeGreaterThanOrEqual(applied.floorMinor);
        }
        // No matching rule sets more match fields than the one applied.
        const count = (r: FeeRule) => MATCH_FIELDS.filter((field) => r[field] !== null).length;
        for (const other of rules) {
          const matches = MATCH_FIELDS.every(
            (field) => other[field] === null || other[field] === query[field],
          );
          if (matches) expect(count(other)).toBeLessThanOrEqual(count(applied));
        }
      }),
    );
  });

  it('does not depend on the order the rules were published in, once ambiguous rules are refused', () => {
    const published = fc
      .array(validRule, { maxLength: 10 })
      .filter((inputs) => ruleErrors(inputs).length === 0)
      .map((inputs) => inputs.map((input, index): FeeRule => ({ ...input, id: `r${index}` })))
      .chain((rules) =>
        fc.tuple(
          fc.constant(rules),
          fc.shuffledSubarray(rules, { minLength: rules.length, maxLength: rules.length }),
        ),
      );
    fc.assert(
      fc.property(published, queryArb, ([rules, shuffled], query) => {
        expect(feeFor({ rules: shuffled }, query)).toEqual(feeFor({ rules }, query));
      }),
    );
  });
});

describe('the rules of a version', () => {
  const base: RuleInput = {
    ...ANY,
    commissionBps: 100,
    fixedMinor: 0n,
    floorMinor: null,
    capMinor: null,
    rounding: 'half_up',
  };

  it('refuses two rules that match exactly alike, a cap below the floor, and out-of-range amounts', () => {
    expect(
      ruleErrors([
        { ...base, region: 'eu-west' },
        { ...base, region: 'eu-west', commissionBps: 200 },
        { ...base, floorMinor: 500n, capMinor: 100n },
        { ...base, capability: 'dyeing', commissionBps: 10_001 },
        { ...base, capability: 'sewing', fixedMinor: -1n },
      ]).map((error) => [error.path, error.rule]),
    ).toEqual([
      ['/rules/1', 'ambiguous'],
      ['/rules/2/cap', 'cap_below_floor'],
      ['/rules/3/commission_bps', 'range'],
      ['/rules/4/fixed', 'minimum'],
    ]);
  });

  it('accepts rules that set the same fields to different values', () => {
    expect(ruleErrors([base, { ...base, region: 'eu-west' }, { ...base, region: 'us-east' }])).toEqual([]);
  });
});
