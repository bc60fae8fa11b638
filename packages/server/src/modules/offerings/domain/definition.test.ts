import { describe, expect, it } from 'vitest';
import { HOLD_MINUTES_MAX } from '../../catalog/index.js';
import {
  checkDefinition,
  constraintSchemaErrors,
  keyErrors,
  type OfferingInput,
  QUANTITY_MAX,
} from './definition.js';

const GARMENT: OfferingInput = {
  name: 'Custom garment run',
  description: 'Fabric, dyeing, sewing, inspection and shipping.',
  unit: 'garment',
  currency: 'EUR',
  pricing: { kind: 'cost_plus', marginBps: 1500 },
  regions: ['eu-west', 'eu-east'],
  steps: [
    {
      key: 'fabric',
      name: 'Fabric',
      capability: 'fabric',
      constraints: {},
      quantityPerUnit: '1.2',
      after: [],
    },
    {
      key: 'sewing',
      name: 'Sewing',
      capability: 'sewing',
      constraints: {},
      quantityPerUnit: '1',
      after: ['fabric'],
    },
  ],
  quantityMin: 10,
  quantityMax: 5000,
  quoteValidityMinutes: 30,
  acceptanceWindowMinutes: 120,
  autoConfirmHours: 72,
  rejectionPolicy: 'redo',
  maxRedos: 2,
};

const rulesOf = (input: OfferingInput) =>
  checkDefinition(input).errors.map((error) => `${error.path} ${error.rule}`);

describe('checkDefinition', () => {
  it('accepts a valid definition and gives it back with names trimmed', () => {
    const { definition, errors } = checkDefinition({ ...GARMENT, name: '  Custom garment run ' });
    expect(errors).toEqual([]);
    expect(definition).toEqual({ ...GARMENT, name: 'Custom garment run' });
  });

  it('parses a fixed price in the offering’s currency to exact minor units', () => {
    const { definition, errors } = checkDefinition({
      ...GARMENT,
      currency: 'JPY',
      pricing: { kind: 'fixed', unitPrice: { amount: '1500', currency: 'JPY' } },
    });
    expect(errors).toEqual([]);
    expect(definition?.pricing).toEqual({ kind: 'fixed', unitPriceMinor: 1500n });
    const eur = checkDefinition({
      ...GARMENT,
      pricing: { kind: 'fixed', unitPrice: { amount: '9999999999999.99', currency: 'EUR' } },
    });
    expect(eur.definition?.pricing).toEqual({ kind: 'fixed', unitPriceMinor: 999_999_999_999_999n });
  });

  it('reports every broken rule at once, one per field', () => {
    expect(
      rulesOf({
        ...GARMENT,
        name: '',
        unit: 'Garments!',
        currency: 'EURO',
        regions: ['eu-west', 'EU', 'eu-west'],
        quantityMin: 0,
        quantityMax: QUANTITY_MAX + 1,
        quoteValidityMinutes: HOLD_MINUTES_MAX + 1,
        acceptanceWindowMinutes: 0,
        autoConfirmHours: 1.5,
        rejectionPolicy: 'ignore' as never,
        maxRedos: -1,
      }),
    ).toEqual([
      '/name length',
      '/unit pattern',
      '/currency currency',
      '/regions/1 pattern',
      '/regions/2 uniqueItems',
      '/quantity_min minimum',
      '/quantity_max maximum',
      '/quote_validity_minutes maximum',
      '/acceptance_window_minutes minimum',
      '/auto_confirm_hours type',
      '/rejection_policy enum',
      '/max_redos minimum',
    ]);
  });

  it('refuses no regions, quantity_max below quantity_min, and margins out of range', () => {
    expect(rulesOf({ ...GARMENT, regions: [] })).toEqual(['/regions minItems']);
    expect(rulesOf({ ...GARMENT, quantityMin: 20, quantityMax: 10 })).toEqual(['/quantity_max minimum']);
    expect(rulesOf({ ...GARMENT, pricing: { kind: 'cost_plus', marginBps: 10_001 } })).toEqual([
      '/pricing/margin_bps maximum',
    ]);
    expect(rulesOf({ ...GARMENT, pricing: { kind: 'cost_plus', marginBps: -1 } })).toEqual([
      '/pricing/margin_bps minimum',
    ]);
    expect(rulesOf({ ...GARMENT, pricing: { kind: 'cost_plus', marginBps: 0 } })).toEqual([]);
  });

  it('refuses a fixed price that is zero, malformed, too precise or in another currency', () => {
    const fixed = (amount: string, currency = 'EUR'): OfferingInput => ({
      ...GARMENT,
      pricing: { kind: 'fixed', unitPrice: { amount, currency } },
    });
    expect(rulesOf(fixed('0.00'))).toEqual(['/pricing/unit_price exclusiveMinimum']);
    expect(rulesOf(fixed('-5.00'))).toEqual(['/pricing/unit_price exclusiveMinimum']);
    expect(rulesOf(fixed('12,50'))).toEqual(['/pricing/unit_price/amount money.invalid_amount']);
    expect(rulesOf(fixed('12.505'))).toEqual(['/pricing/unit_price/amount money.too_many_decimals']);
    expect(rulesOf(fixed('12.50', 'USD'))).toEqual(['/pricing/unit_price/currency currency']);
    expect(rulesOf({ ...GARMENT, pricing: { kind: 'fixed', unitPriceMinor: 0n } })).toEqual([
      '/pricing/unit_price exclusiveMinimum',
    ]);
  });

  it('includes the problems of the steps', () => {
    const steps = [
      { ...GARMENT.steps[0], after: ['sewing'] },
      { ...GARMENT.steps[1], quantityPerUnit: '1.2345678' },
    ] as OfferingInput['steps'];
    expect(rulesOf({ ...GARMENT, steps })).toEqual([
      '/steps/1/quantity_per_unit decimals',
      '/steps/0/after/0 acyclic',
    ]);
  });

  it('checks keys of offerings', () => {
    expect(keyErrors('custom-garment')).toEqual([]);
    expect(keyErrors('Custom Garment').map((error) => error.path)).toEqual(['/key']);
  });
});

describe('constraintSchemaErrors', () => {
  const fabric = {
    key: 'fabric',
    attributeSchema: {
      type: 'object',
      properties: {
        weight_gsm: { type: 'integer', minimum: 50 },
        material: { type: 'string', enum: ['cotton', 'linen', 'wool'] },
        organic: { type: 'boolean' },
        colours: { type: 'array', items: { type: 'string' } },
        note: {},
      },
    },
  };

  it('accepts constraints on declared attributes with values of their type', () => {
    expect(
      constraintSchemaErrors('/c', fabric, {
        weight_gsm: { min: 120, max: 300 },
        material: { in: ['cotton', 'linen'] },
        organic: { eq: true },
        note: { eq: 'anything' },
      }),
    ).toEqual([]);
  });

  it('refuses attributes the schema lacks, values it does not allow, and bounds on what is not a number', () => {
    const errors = constraintSchemaErrors('/c', fabric, {
      colour: { eq: 'red' },
      material: { in: ['cotton', 'silk'], min: 1 },
      weight_gsm: { eq: 'heavy' },
      organic: { eq: 1 },
      colours: { eq: 'red' },
    });
    expect(errors.map((error) => `${error.path} ${error.rule}`)).toEqual([
      '/c/colour exists',
      '/c/material/in/1 enum',
      '/c/material/min type',
      '/c/weight_gsm/eq type',
      '/c/organic/eq type',
      '/c/colours type',
    ]);
    expect(errors[0]?.message).toBe('the capability fabric has no attribute colour');
  });

  it('does not mistake inherited names for declared attributes', () => {
    const errors = constraintSchemaErrors('/c', fabric, { toString: { eq: 'x' }, constructor: { eq: 'y' } });
    expect(errors.map((error) => error.rule)).toEqual(['exists', 'exists']);
  });
});
