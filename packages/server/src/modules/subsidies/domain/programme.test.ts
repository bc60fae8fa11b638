import { describe, expect, it } from 'vitest';
import { byPreference, isEligible, type ProgrammeView, subsidyAmount } from './programme.js';

const programme = (overrides: Partial<ProgrammeView> = {}): ProgrammeView => ({
  id: 'sbp_1',
  side: 'partner',
  shareBps: 5000,
  currency: 'EUR',
  status: 'active',
  startsAt: new Date('2026-06-01T00:00:00Z'),
  endsAt: new Date('2026-07-01T00:00:00Z'),
  targeting: { partnerTypes: [], regions: [], customerSegments: [], capabilities: [] },
  ...overrides,
});
const occasion = { side: 'partner' as const, partnerType: 'courier', region: 'eu-east', currency: 'EUR' };
const now = new Date('2026-06-15T00:00:00Z');

describe('subsidy rules', () => {
  it('pays its share of the fee, rounded half up, within the cap and the budget', () => {
    expect(
      subsidyAmount({ feeMinor: 999n, shareBps: 5000, capRemainingMinor: 10_000n, budgetMinor: 10_000n }),
    ).toBe(500n);
    expect(
      subsidyAmount({ feeMinor: 1000n, shareBps: 10_000, capRemainingMinor: 300n, budgetMinor: 10_000n }),
    ).toBe(300n);
    expect(
      subsidyAmount({ feeMinor: 1000n, shareBps: 10_000, capRemainingMinor: 300n, budgetMinor: 120n }),
    ).toBe(120n);
    expect(
      subsidyAmount({ feeMinor: 1000n, shareBps: 10_000, capRemainingMinor: 0n, budgetMinor: 120n }),
    ).toBe(0n);
  });

  it('matches an occasion only inside its window and targeting', () => {
    expect(isEligible(programme(), occasion, now)).toBe(true);
    expect(isEligible(programme(), occasion, new Date('2026-07-01T00:00:00Z'))).toBe(false);
    expect(isEligible(programme(), occasion, new Date('2026-06-01T00:00:00Z'))).toBe(true);
    expect(isEligible(programme({ status: 'exhausted' }), occasion, now)).toBe(false);
    const targeted = programme({
      targeting: { partnerTypes: ['courier'], regions: ['eu-west'], customerSegments: [], capabilities: [] },
    });
    expect(isEligible(targeted, occasion, now)).toBe(false);
    expect(isEligible(targeted, { ...occasion, region: 'eu-west' }, now)).toBe(true);
    const byCapability = programme({
      targeting: { partnerTypes: [], regions: [], customerSegments: [], capabilities: ['dyeing'] },
    });
    expect(isEligible(byCapability, occasion, now)).toBe(false);
    expect(isEligible(byCapability, { ...occasion, capability: 'dyeing' }, now)).toBe(true);
  });

  it("pays a partner's fee on the orders of a targeted customer segment only", () => {
    const bySegment = programme({
      targeting: { partnerTypes: [], regions: [], customerSegments: ['smb'], capabilities: [] },
    });
    expect(isEligible(bySegment, occasion, now)).toBe(false);
    expect(isEligible(bySegment, { ...occasion, customerSegment: 'enterprise' }, now)).toBe(false);
    expect(isEligible(bySegment, { ...occasion, customerSegment: 'smb' }, now)).toBe(true);
  });

  it('prefers the programme ending soonest, then the oldest', () => {
    const a = programme({ id: 'sbp_b', endsAt: new Date('2026-06-20T00:00:00Z') });
    const b = programme({ id: 'sbp_a' });
    const c = programme({ id: 'sbp_c' });
    expect([c, b, a].sort(byPreference).map((p) => p.id)).toEqual(['sbp_b', 'sbp_a', 'sbp_c']);
  });
});
