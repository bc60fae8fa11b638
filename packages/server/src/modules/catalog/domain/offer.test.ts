import { describe, expect, it } from 'vitest';
import { checkServiceLevels, checkTerms, type OfferTerms, statusAfterChange } from './offer.js';

const TERMS: OfferTerms = {
  unitPrice: { amount: '12.50', currency: 'EUR' },
  minQuantity: 1n,
  maxQuantity: 10n,
  leadTimeHours: 24,
  regions: ['eu-west'],
  capacityPerPeriod: 100n,
  capacityPeriod: 'week',
};

describe('offer terms', () => {
  it('parse the price into minor units of its currency', () => {
    expect(checkTerms(TERMS)).toEqual({ price: { amountMinor: 1250n, currency: 'EUR' }, errors: [] });
    expect(checkTerms({ ...TERMS, unitPrice: { amount: '0', currency: 'JPY' } }).price).toEqual({
      amountMinor: 0n,
      currency: 'JPY',
    });
  });

  it('report each broken rule on its own field', () => {
    const { price, errors } = checkTerms({
      ...TERMS,
      unitPrice: { amount: '1.234', currency: 'USD' },
      minQuantity: 0n,
      capacityPerPeriod: 0n,
      leadTimeHours: -1,
      regions: [],
    });
    expect(price).toBeNull();
    expect(errors.map((error) => `${error.path} ${error.rule}`)).toEqual([
      '/unit_price/amount precision',
      '/min_quantity minimum',
      '/capacity_per_period minimum',
      '/lead_time_hours minimum',
      '/regions minItems',
    ]);
  });

  it('need a maximum quantity no smaller than the minimum', () => {
    expect(checkTerms({ ...TERMS, minQuantity: 11n }).errors).toEqual([
      { path: '/max_quantity', rule: 'minimum', message: 'must be at least min_quantity (11)' },
    ]);
  });

  it("stay within the capability's longest lead time, when it sets one", () => {
    expect(checkServiceLevels(48, { maxLeadTimeHours: 48 })).toEqual([]);
    expect(checkServiceLevels(49, { maxLeadTimeHours: 48 })).toEqual([
      { path: '/lead_time_hours', rule: 'maximum', message: expect.stringContaining('48') },
    ]);
    expect(checkServiceLevels(10_000, { maxLeadTimeHours: null })).toEqual([]);
  });
});

describe('the status after a change', () => {
  it('is the one asked for, else the one the offer had, but a conforming non_compliant offer waits paused', () => {
    expect(statusAfterChange('draft', 'active')).toBe('active');
    expect(statusAfterChange('active', undefined)).toBe('active');
    expect(statusAfterChange('non_compliant', undefined)).toBe('paused');
    expect(statusAfterChange('non_compliant', 'active')).toBe('active');
  });
});
