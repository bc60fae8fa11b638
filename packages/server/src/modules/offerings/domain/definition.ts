import type { FieldError } from '../../../kernel/errors.js';
import { isDomainError } from '../../../kernel/errors.js';
import { AMOUNT_MINOR_MAX, isCurrency, parseAmount, parseCurrency } from '../../../kernel/money.js';
import { HOLD_MINUTES_MAX } from '../../catalog/index.js';
import type { AttributeConstraint } from '../../matching/index.js';
import { pointerToken, validateSteps } from './graph.js';
import {
  KEY_PATTERN,
  OFFERING_REGIONS_MAX,
  type OfferingDefinition,
  type Pricing,
  REJECTION_POLICIES,
} from './offering.js';

/**
 * Most units one order of an offering may buy. With `QUANTITY_PER_UNIT_MAX` per unit, a leg stays
 * within the catalog's largest quantity.
 */
export const QUANTITY_MAX = 1_000_000;
export const OFFERING_NAME_LENGTH_MAX = 200;
export const DESCRIPTION_LENGTH_MAX = 4000;
/** What the customer buys units of: a short lowercase word such as `garment`, `meal` or `trip`. */
export const UNIT_PATTERN = /^[a-z][a-z0-9-]{0,23}$/;
/** Region codes are the operator's: short, lowercase, like `eu-west` (as the catalog's offers name them). */
export const REGION_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** A margin of 10 000 basis points doubles the partners' prices. */
export const MARGIN_BPS_MAX = 10_000;
/** Longest a partner may be given to accept a work order: 30 days. */
export const ACCEPTANCE_WINDOW_MINUTES_MAX = 30 * 24 * 60;
/** Longest a delivered leg may wait for the customer before it confirms itself: 90 days. */
export const AUTO_CONFIRM_HOURS_MAX = 90 * 24;
/** Most times a leg may be redone after rejections, under the `redo` policy. */
export const MAX_REDOS_MAX = 10;
/** Quotes hold the partners' capacity, and a hold lasts at most as long as the catalog allows. */
export const QUOTE_VALIDITY_MINUTES_MAX = HOLD_MINUTES_MAX;

type Scalar = NonNullable<AttributeConstraint['eq']>;

/** A price as a request states it: a decimal string in major units and an ISO 4217 code. */
export interface PriceText {
  readonly amount: string;
  readonly currency: string;
}

/** Pricing as a caller states it: a fixed price in minor units, or as text to be parsed. */
export type PricingInput =
  | Pricing
  | { readonly kind: 'fixed'; readonly unitPrice: PriceText; readonly unitPriceMinor?: undefined };

/** A definition as a caller states it; `checkDefinition` turns it into an `OfferingDefinition`. */
export interface OfferingInput extends Omit<OfferingDefinition, 'pricing'> {
  readonly pricing: PricingInput;
}

/** The problems with an offering's key. */
export function keyErrors(key: string): FieldError[] {
  return KEY_PATTERN.test(key)
    ? []
    : [
        {
          path: '/key',
          rule: 'pattern',
          message: 'must be lowercase letters, digits and dashes, starting with a letter',
        },
      ];
}

/**
 * Checks a definition in full and parses its price. Every broken rule is reported against the
 * field that breaks it (JSON Pointers into the API's form), all at once, so an operator can fix
 * them together; `definition` is null when there is any.
 */
export function checkDefinition(input: OfferingInput): {
  definition: OfferingDefinition | null;
  errors: FieldError[];
} {
  const errors: FieldError[] = [];
  const name = input.name.trim();
  if (name.length === 0 || name.length > OFFERING_NAME_LENGTH_MAX) {
    errors.push({
      path: '/name',
      rule: 'length',
      message: `must be 1 to ${OFFERING_NAME_LENGTH_MAX} characters`,
    });
  }
  if (input.description.length > DESCRIPTION_LENGTH_MAX) {
    errors.push({
      path: '/description',
      rule: 'maxLength',
      message: `must be at most ${DESCRIPTION_LENGTH_MAX} characters`,
    });
  }
  if (!UNIT_PATTERN.test(input.unit)) {
    errors.push({
      path: '/unit',
      rule: 'pattern',
      message: 'must be a short lowercase word such as "garment" or "meal"',
    });
  }
  const currencyKnown = isCurrency(input.currency);
  if (!currencyKnown) {
    errors.push({
      path: '/currency',
      rule: 'currency',
      message: `${input.currency} is not an ISO 4217 code`,
    });
  }
  const pricing = checkPricing(input.pricing, currencyKnown ? input.currency : null, errors);
  errors.push(...regionErrors(input.regions));
  errors.push(...validateSteps(input.steps));
  const quantityMinValid = wholeInRange(errors, '/quantity_min', input.quantityMin, 1, QUANTITY_MAX);
  if (wholeInRange(errors, '/quantity_max', input.quantityMax, 1, QUANTITY_MAX) && quantityMinValid) {
    if (input.quantityMax < input.quantityMin) {
      errors.push({
        path: '/quantity_max',
        rule: 'minimum',
        message: `must be at least quantity_min (${input.quantityMin})`,
      });
    }
  }
  wholeInRange(
    errors,
    '/quote_validity_minutes',
    input.quoteValidityMinutes,
    1,
    QUOTE_VALIDITY_MINUTES_MAX,
    'the longest a capacity hold lasts',
  );
  wholeInRange(
    errors,
    '/acceptance_window_minutes',
    input.acceptanceWindowMinutes,
    1,
    ACCEPTANCE_WINDOW_MINUTES_MAX,
  );
  wholeInRange(errors, '/auto_confirm_hours', input.autoConfirmHours, 1, AUTO_CONFIRM_HOURS_MAX);
  if (!REJECTION_POLICIES.includes(input.rejectionPolicy)) {
    errors.push({
      path: '/rejection_policy',
      rule: 'enum',
      message: `must be one of ${REJECTION_POLICIES.join(', ')}`,
    });
  }
  wholeInRange(errors, '/max_redos', input.maxRedos, 0, MAX_REDOS_MAX);
  if (errors.length > 0 || pricing === null) return { definition: null, errors };
  return {
    definition: {
      name,
      description: input.description,
      unit: input.unit,
      currency: input.currency,
      pricing,
      regions: [...input.regions],
      steps: input.steps.map((step) => ({
        key: step.key,
        name: step.name.trim(),
        capability: step.capability,
        constraints: step.constraints,
        quantityPerUnit: step.quantityPerUnit,
        after: [...step.after],
      })),
      quantityMin: input.quantityMin,
      quantityMax: input.quantityMax,
      quoteValidityMinutes: input.quoteValidityMinutes,
      acceptanceWindowMinutes: input.acceptanceWindowMinutes,
      autoConfirmHours: input.autoConfirmHours,
      rejectionPolicy: input.rejectionPolicy,
      maxRedos: input.maxRedos,
    },
    errors,
  };
}

/** The problems with a definition already in its final form (a fixed price in minor units). */
export function validateDefinition(definition: OfferingDefinition): FieldError[] {
  return checkDefinition(definition).errors;
}

function checkPricing(pricing: PricingInput, currency: string | null, errors: FieldError[]): Pricing | null {
  if (pricing.kind === 'cost_plus') {
    if (!wholeInRange(errors, '/pricing/margin_bps', pricing.marginBps, 0, MARGIN_BPS_MAX)) return null;
    return { kind: 'cost_plus', marginBps: pricing.marginBps };
  }
  if (pricing.kind !== 'fixed') {
    errors.push({ path: '/pricing/kind', rule: 'enum', message: 'must be cost_plus or fixed' });
    return null;
  }
  let unitPriceMinor: bigint;
  if (pricing.unitPriceMinor !== undefined) {
    unitPriceMinor = pricing.unitPriceMinor;
  } else {
    const text = pricing.unitPrice;
    if (currency === null) return null; // reported at /currency: the price cannot be read without it.
    if (text.currency !== currency) {
      errors.push({
        path: '/pricing/unit_price/currency',
        rule: 'currency',
        message: `must be the offering's currency, ${currency}`,
      });
      return null;
    }
    try {
      unitPriceMinor = parseAmount(text.amount, parseCurrency(currency));
    } catch (error) {
      if (!isDomainError(error)) throw error;
      errors.push({ path: '/pricing/unit_price/amount', rule: error.code, message: error.message });
      return null;
    }
  }
  if (unitPriceMinor <= 0n || unitPriceMinor > AMOUNT_MINOR_MAX) {
    errors.push({
      path: '/pricing/unit_price',
      rule: unitPriceMinor <= 0n ? 'exclusiveMinimum' : 'maximum',
      message: unitPriceMinor <= 0n ? 'must be more than 0' : 'is beyond the largest amount Baton books',
    });
    return null;
  }
  return { kind: 'fixed', unitPriceMinor };
}

function regionErrors(regions: readonly string[]): FieldError[] {
  const errors: FieldError[] = [];
  if (regions.length === 0)
    errors.push({ path: '/regions', rule: 'minItems', message: 'must name a region' });
  if (regions.length > OFFERING_REGIONS_MAX) {
    errors.push({
      path: '/regions',
      rule: 'maxItems',
      message: `must name at most ${OFFERING_REGIONS_MAX} regions`,
    });
  }
  const seen = new Set<string>();
  regions.forEach((region, index) => {
    if (!REGION_PATTERN.test(region)) {
      errors.push({
        path: `/regions/${index}`,
        rule: 'pattern',
        message: 'must be a region code such as "eu-west" (lowercase letters, digits, dashes)',
      });
    } else if (seen.has(region)) {
      errors.push({
        path: `/regions/${index}`,
        rule: 'uniqueItems',
        message: `repeats the region ${region}`,
      });
    }
    seen.add(region);
  });
  return errors;
}

/** Reports `value` unless it is a whole number from `min` to `max`; returns whether it is. */
function wholeInRange(
  errors: FieldError[],
  path: string,
  value: number,
  min: number,
  max: number,
  maxMeaning?: string,
): boolean {
  if (Number.isInteger(value) && value >= min && value <= max) return true;
  errors.push({
    path,
    rule: !Number.isInteger(value) ? 'type' : value < min ? 'minimum' : 'maximum',
    message: `must be a whole number from ${min} to ${max}${maxMeaning ? ` (${maxMeaning})` : ''}`,
  });
  return false;
}

/** What the constraints of a step need to know of its capability. */
export interface CapabilitySchema {
  readonly key: string;
  /** The JSON Schema of the capability's offer attributes (`"type": "object"`). */
  readonly attributeSchema: Readonly<Record<string, unknown>>;
}

const SCALAR_TYPES = new Set(['string', 'number', 'integer', 'boolean']);

/**
 * The problems with a step's constraints against its capability's attribute schema: each must
 * name an attribute the schema declares, and compare it with values it can have (numbers for
 * `min` and `max`, values of its type, and of its `enum` when it has one). A constraint that no
 * conforming offer could meet would leave the step without partners, so it is refused here.
 */
export function constraintSchemaErrors(
  at: string,
  capability: CapabilitySchema,
  constraints: Readonly<Record<string, AttributeConstraint>>,
): FieldError[] {
  const errors: FieldError[] = [];
  const properties = capability.attributeSchema.properties;
  const declared =
    typeof properties === 'object' && properties !== null ? (properties as Record<string, unknown>) : {};
  for (const [attribute, constraint] of Object.entries(constraints)) {
    const path = `${at}/${pointerToken(attribute)}`;
    const property = Object.hasOwn(declared, attribute) ? declared[attribute] : undefined;
    if (property === undefined) {
      errors.push({
        path,
        rule: 'exists',
        message: `the capability ${capability.key} has no attribute ${attribute}`,
      });
      continue;
    }
    const schema =
      typeof property === 'object' && property !== null ? (property as Record<string, unknown>) : {};
    const types = declaredTypes(schema.type);
    if (types !== null && ![...types].some((type) => SCALAR_TYPES.has(type))) {
      errors.push({
        path,
        rule: 'type',
        message: `${attribute} is ${[...types].join(' or ')}; constraints compare single values`,
      });
      continue;
    }
    const enumValues = Array.isArray(schema.enum) ? schema.enum.map((value) => JSON.stringify(value)) : null;
    const checkValue = (valuePath: string, value: Scalar) => {
      if (types !== null && !fitsTypes(value, types)) {
        errors.push({
          path: valuePath,
          rule: 'type',
          message: `must be of the attribute's type, ${[...types].join(' or ')}`,
        });
      } else if (enumValues !== null && !enumValues.includes(JSON.stringify(value))) {
        errors.push({ path: valuePath, rule: 'enum', message: `is not a value ${attribute} can have` });
      }
    };
    if (constraint.eq !== undefined) checkValue(`${path}/eq`, constraint.eq);
    constraint.in?.forEach((value, k) => {
      checkValue(`${path}/in/${k}`, value);
    });
    if (types !== null && !types.has('number') && !types.has('integer')) {
      for (const bound of ['min', 'max'] as const) {
        if (constraint[bound] !== undefined) {
          errors.push({ path: `${path}/${bound}`, rule: 'type', message: `${attribute} is not a number` });
        }
      }
    }
  }
  return errors;
}

function declaredTypes(type: unknown): Set<string> | null {
  if (typeof type === 'string') return new Set([type]);
  if (Array.isArray(type) && type.every((item) => typeof item === 'string')) return new Set(type as string[]);
  return null;
}

function fitsTypes(value: Scalar, types: ReadonlySet<string>): boolean {
  if (typeof value === 'string') return types.has('string');
  if (typeof value === 'boolean') return types.has('boolean');
  return types.has('number') || (types.has('integer') && Number.isInteger(value));
}
