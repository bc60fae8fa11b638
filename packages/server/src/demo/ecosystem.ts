/*
 * The demo ecosystem as data: the regions it runs in, the partner types and the capability each
 * of them offers, the certification programs, the fee schedule, the cold-start subsidy and the
 * three integrated offerings (a custom garment run, a meal delivery, a city trip). The seeding
 * turns these into API calls; nothing here touches Baton.
 */

export const DEMO_CURRENCY = 'EUR';
/** What an operator may give back of one order by hand alone; beyond it, a second operator approves. */
export const DEMO_REFUND_APPROVAL_ABOVE = '50.00';
/** What one operator may move through the ledger by hand alone in a day; beyond it, a second operator approves. */
export const DEMO_POSTING_APPROVAL_ABOVE = '1000.00';

/** Regions in the order they are opened: small demos use the first ones only. */
export const DEMO_REGIONS = ['eu-west', 'eu-central', 'eu-north', 'eu-south', 'uk'] as const;

/** Partners per region in use: a region opens for about every 60 partners. */
export const PARTNERS_PER_REGION = 60;

export interface CertificationSpec {
  readonly key: string;
  readonly name: string;
  /** The one piece of evidence a partner gives. */
  readonly evidenceKey: string;
  readonly evidence: string;
  readonly validityDays: number;
}

export const CERTIFICATIONS: readonly CertificationSpec[] = [
  {
    key: 'oeko-tex',
    name: 'OEKO-TEX Standard 100',
    evidenceKey: 'licence',
    evidence: 'The licence number',
    validityDays: 365,
  },
  {
    key: 'food-hygiene',
    name: 'Food hygiene rating 4+',
    evidenceKey: 'report',
    evidence: 'The inspection report number',
    validityDays: 365,
  },
];

export interface CapabilitySpec {
  readonly key: string;
  readonly name: string;
  readonly unit: string;
  /** The offers' attributes: each a list of values a partner picks from. */
  readonly attributes: Readonly<Record<string, readonly string[]>>;
  readonly requiredCertifications: readonly string[];
  /** A partner's price per unit, in minor units: the range partners are drawn from. */
  readonly unitPriceMinor: readonly [number, number];
  readonly leadTimeHours: readonly [number, number];
  readonly capacityPerWeek: readonly [number, number];
  readonly maxQuantity: number;
  /** Whether partners also sell a faster, dearer variant. */
  readonly express: boolean;
}

export interface PartnerTypeSpec {
  readonly key: string;
  readonly name: string;
  /** Its share of the partners. */
  readonly weight: number;
  /** Words partners of this type use in their names. */
  readonly suffixes: readonly string[];
  readonly capability: CapabilitySpec;
}

const capability = (spec: CapabilitySpec) => spec;

export const PARTNER_TYPES: readonly PartnerTypeSpec[] = [
  {
    key: 'mill',
    name: 'Textile mill',
    weight: 18,
    suffixes: ['Mills', 'Weaving', 'Textiles'],
    capability: capability({
      key: 'fabric',
      name: 'Fabric',
      unit: 'kg',
      attributes: {
        fibre: ['organic-cotton', 'linen', 'recycled-polyester', 'wool'],
        weight: ['light', 'medium', 'heavy'],
      },
      requiredCertifications: [],
      unitPriceMinor: [420, 600],
      leadTimeHours: [48, 96],
      capacityPerWeek: [8_000, 20_000],
      maxQuantity: 20_000,
      express: false,
    }),
  },
  {
    key: 'dye-house',
    name: 'Dye house',
    weight: 18,
    suffixes: ['Dyeworks', 'Colour', 'Dye House'],
    capability: capability({
      key: 'dyeing',
      name: 'Dyeing',
      unit: 'garment',
      attributes: { process: ['reactive', 'pigment', 'natural'] },
      requiredCertifications: ['oeko-tex'],
      unitPriceMinor: [220, 320],
      leadTimeHours: [24, 72],
      capacityPerWeek: [3_000, 8_000],
      maxQuantity: 10_000,
      express: true,
    }),
  },
  {
    key: 'workshop',
    name: 'Sewing workshop',
    weight: 30,
    suffixes: ['Atelier', 'Sewing Co.', 'Workshop'],
    capability: capability({
      key: 'sewing',
      name: 'Sewing',
      unit: 'garment',
      attributes: { specialty: ['shirts', 'dresses', 'outerwear', 'knitwear'] },
      requiredCertifications: [],
      unitPriceMinor: [900, 1_400],
      leadTimeHours: [72, 144],
      capacityPerWeek: [1_500, 4_000],
      maxQuantity: 5_000,
      express: true,
    }),
  },
  {
    key: 'inspector',
    name: 'Quality inspector',
    weight: 12,
    suffixes: ['Inspections', 'Quality Lab', 'QC'],
    capability: capability({
      key: 'inspection',
      name: 'Quality inspection',
      unit: 'garment',
      attributes: { standard: ['aql-1.5', 'aql-2.5', 'aql-4.0'] },
      requiredCertifications: [],
      unitPriceMinor: [50, 80],
      leadTimeHours: [8, 24],
      capacityPerWeek: [10_000, 30_000],
      maxQuantity: 20_000,
      express: false,
    }),
  },
  {
    key: 'carrier',
    name: 'Freight carrier',
    weight: 15,
    suffixes: ['Freight', 'Logistics', 'Cargo'],
    capability: capability({
      key: 'shipping',
      name: 'Shipping',
      unit: 'garment',
      attributes: { mode: ['road', 'rail', 'air'] },
      requiredCertifications: [],
      unitPriceMinor: [140, 220],
      leadTimeHours: [24, 96],
      capacityPerWeek: [10_000, 30_000],
      maxQuantity: 20_000,
      express: true,
    }),
  },
  {
    key: 'restaurant',
    name: 'Restaurant',
    weight: 60,
    suffixes: ['Kitchen', 'Trattoria', 'Bistro', 'Canteen'],
    capability: capability({
      key: 'cooking',
      name: 'Cooking',
      unit: 'meal',
      attributes: {
        cuisine: ['italian', 'thai', 'indian', 'vegan', 'japanese', 'levantine'],
        diet: ['any', 'vegetarian', 'gluten-free'],
      },
      requiredCertifications: ['food-hygiene'],
      unitPriceMinor: [800, 1_050],
      leadTimeHours: [1, 1],
      capacityPerWeek: [300, 800],
      maxQuantity: 50,
      express: false,
    }),
  },
  {
    key: 'packager',
    name: 'Packaging supplier',
    weight: 15,
    suffixes: ['Pack', 'Packaging', 'Boxes'],
    capability: capability({
      key: 'packaging',
      name: 'Packaging',
      unit: 'meal',
      attributes: { material: ['compostable', 'recyclable'], lining: ['insulated', 'plain'] },
      requiredCertifications: [],
      unitPriceMinor: [40, 60],
      leadTimeHours: [1, 1],
      capacityPerWeek: [2_000, 6_000],
      maxQuantity: 500,
      express: false,
    }),
  },
  {
    key: 'courier',
    name: 'Courier',
    weight: 55,
    suffixes: ['Couriers', 'Riders', 'Express'],
    capability: capability({
      key: 'courier',
      name: 'Last-mile delivery',
      unit: 'meal',
      attributes: { vehicle: ['bike', 'e-bike', 'scooter'], zone: ['centre', 'suburbs', 'airport'] },
      requiredCertifications: [],
      unitPriceMinor: [300, 400],
      leadTimeHours: [1, 1],
      capacityPerWeek: [300, 800],
      maxQuantity: 50,
      express: false,
    }),
  },
  {
    key: 'hotel',
    name: 'Hotel',
    weight: 35,
    suffixes: ['Hotel', 'Inn', 'Suites', 'Lodge'],
    capability: capability({
      key: 'stay',
      name: 'Hotel stay',
      unit: 'night',
      attributes: {
        category: ['budget', 'comfort', 'boutique', 'luxury'],
        room: ['single', 'double', 'family'],
      },
      requiredCertifications: [],
      unitPriceMinor: [8_500, 11_500],
      leadTimeHours: [24, 24],
      capacityPerWeek: [60, 200],
      maxQuantity: 20,
      express: false,
    }),
  },
  {
    key: 'driver',
    name: 'Transfer driver',
    weight: 24,
    suffixes: ['Transfers', 'Shuttle', 'Chauffeurs'],
    capability: capability({
      key: 'transfer',
      name: 'Airport transfer',
      unit: 'traveller',
      attributes: { vehicle: ['sedan', 'van', 'minibus'], service: ['shared', 'private'] },
      requiredCertifications: [],
      unitPriceMinor: [2_800, 3_600],
      leadTimeHours: [2, 4],
      capacityPerWeek: [80, 250],
      maxQuantity: 20,
      express: false,
    }),
  },
  {
    key: 'guide',
    name: 'Tour guide',
    weight: 18,
    suffixes: ['Tours', 'Walks', 'Guides'],
    capability: capability({
      key: 'guide',
      name: 'Guided tour',
      unit: 'traveller',
      attributes: { language: ['en', 'fr', 'de', 'es', 'it'], tour: ['walking', 'cycling', 'food'] },
      requiredCertifications: [],
      unitPriceMinor: [3_200, 4_200],
      leadTimeHours: [4, 8],
      capacityPerWeek: [60, 200],
      maxQuantity: 20,
      express: false,
    }),
  },
];

/** Words partners' names are made of, with their type's suffix. */
export const NAME_WORDS = [
  'Aurora',
  'Baltic',
  'Cedar',
  'Delta',
  'Ember',
  'Fjord',
  'Granite',
  'Harbour',
  'Iris',
  'Juniper',
  'Kestrel',
  'Linden',
  'Meridian',
  'Northwind',
  'Olive',
  'Pioneer',
  'Quarry',
  'Riviera',
  'Saffron',
  'Tamarind',
  'Umber',
  'Valley',
  'Willow',
  'Yarrow',
  'Zephyr',
  'Alder',
  'Birch',
  'Coral',
  'Dune',
  'Elm',
];

/** Customers' first and last names. */
export const FIRST_NAMES = [
  'Ana',
  'Bram',
  'Chloé',
  'Dario',
  'Elif',
  'Finn',
  'Greta',
  'Hugo',
  'Ines',
  'Jonas',
  'Kaja',
  'Luca',
  'Maja',
  'Noah',
  'Olga',
  'Pau',
  'Rosa',
  'Sven',
  'Tess',
  'Umar',
  'Vera',
  'Wim',
  'Yara',
  'Zoe',
];
export const LAST_NAMES = [
  'Almeida',
  'Berg',
  'Costa',
  'Dubois',
  'Eriksen',
  'Fischer',
  'García',
  'Horvat',
  'Jansen',
  'Kowalski',
  'Larsen',
  'Moreau',
  'Novak',
  'Olsen',
  'Petit',
  'Rossi',
  'Schmidt',
  'Tanaka',
  'Varga',
  'Weber',
];
export const COMPANY_WORDS = ['Studio', 'Label', 'Collective', 'Apparel', 'Outfitters', 'Wear'];

/** The fee schedule: 10 % by default, with rules per capability and a lower rate in a new region. */
export const FEE_RULES = [
  { commission_bps: 1000, floor: '0.50' },
  { capability: 'cooking', commission_bps: 1800 },
  { capability: 'courier', commission_bps: 1200, fixed: '0.20' },
  { capability: 'stay', commission_bps: 1500, cap: '60.00' },
  { capability: 'sewing', commission_bps: 800 },
  { region: 'eu-north', commission_bps: 700, floor: '0.30' },
] as const;

/**
 * The cold-start subsidy: last-mile couriers, drivers and guides keep their whole commission
 * while the ecosystem grows, up to a budget and a cap per partner.
 */
export const SUBSIDY = {
  name: 'Launch: last-mile partners keep their commission',
  side: 'partner',
  kind: 'waiver',
  share_bps: 10_000,
  budget: '2500.00',
  cap_per_participant: '150.00',
  capabilities: ['courier', 'transfer', 'guide'],
  /** How long it runs from the start of the demo. */
  days: 120,
} as const;

export type OfferingKey = 'garment-run' | 'meal-delivery' | 'city-trip';

export interface OfferingSpec {
  readonly key: OfferingKey;
  /** The body of `POST /v1/offerings`, less key, currency and regions. */
  readonly definition: Record<string, unknown>;
  /** How often customers ask for it. */
  readonly weight: number;
  readonly quantity: readonly [number, number];
  /** The deadline customers ask for, in hours after they ask. */
  readonly deadlineHours: readonly [number, number];
  /** A deadline no plan can meet, which some customers try first. */
  readonly tooTightHours: number;
  /** Business customers buy it (the others are consumers). */
  readonly business: boolean;
  /** When in the day customers ask, in hours (UTC). */
  readonly hours: readonly [number, number];
  /** How fast partners answer and customers judge, in minutes. */
  readonly answerMinutes: readonly [number, number];
  readonly startMinutes: readonly [number, number];
  readonly judgeMinutes: readonly [number, number];
  /** How much later than due a late leg is delivered, in minutes. */
  readonly lateMinutes: readonly [number, number];
  /** The step whose every candidate declines in a story that ends in compensation; none: never. */
  readonly fragileStep: string | null;
}

export const OFFERINGS: readonly OfferingSpec[] = [
  {
    key: 'garment-run',
    weight: 30,
    quantity: [20, 300],
    deadlineHours: [21 * 24, 28 * 24],
    tooTightHours: 5 * 24,
    business: true,
    hours: [8, 17],
    answerMinutes: [10, 180],
    startMinutes: [30, 240],
    judgeMinutes: [60, 12 * 60],
    lateMinutes: [2 * 60, 20 * 60],
    fragileStep: null,
    definition: {
      name: 'Custom garment run',
      description:
        'A production run of custom garments: fabric is milled, dyed, sewn, inspected and shipped by five partners.',
      unit: 'garment',
      pricing: { kind: 'cost_plus', margin_bps: 1500 },
      quantity_min: 10,
      quantity_max: 1000,
      quote_validity_minutes: 60,
      acceptance_window_minutes: 240,
      auto_confirm_hours: 72,
      rejection_policy: 'refund',
      steps: [
        {
          key: 'fabric',
          name: 'Fabric',
          capability: 'fabric',
          quantity_per_unit: '1.2',
          constraints: { fibre: { in: ['organic-cotton', 'linen', 'recycled-polyester'] } },
        },
        {
          key: 'dyeing',
          name: 'Dyeing',
          capability: 'dyeing',
          constraints: { process: { in: ['reactive', 'natural'] } },
          after: ['fabric'],
        },
        { key: 'sewing', name: 'Sewing', capability: 'sewing', after: ['dyeing'] },
        { key: 'inspection', name: 'Inspection', capability: 'inspection', after: ['sewing'] },
        { key: 'shipping', name: 'Shipping', capability: 'shipping', after: ['inspection'] },
      ],
    },
  },
  {
    key: 'meal-delivery',
    weight: 40,
    quantity: [1, 4],
    deadlineHours: [3, 5],
    tooTightHours: 1,
    business: false,
    hours: [11, 20],
    answerMinutes: [1, 6],
    startMinutes: [1, 5],
    judgeMinutes: [5, 20],
    lateMinutes: [10, 40],
    fragileStep: 'packaging',
    definition: {
      name: 'Meal delivery',
      description: 'A hot meal, cooked and packed at the same time, then delivered by a courier.',
      unit: 'meal',
      pricing: { kind: 'fixed', unit_price: { amount: '18.00', currency: DEMO_CURRENCY } },
      quantity_min: 1,
      quantity_max: 10,
      quote_validity_minutes: 15,
      acceptance_window_minutes: 10,
      auto_confirm_hours: 2,
      rejection_policy: 'redo',
      steps: [
        { key: 'cooking', name: 'Cooking', capability: 'cooking' },
        {
          key: 'packaging',
          name: 'Packaging',
          capability: 'packaging',
          constraints: { material: { eq: 'compostable' } },
        },
        { key: 'courier', name: 'Delivery', capability: 'courier', after: ['cooking', 'packaging'] },
      ],
    },
  },
  {
    key: 'city-trip',
    weight: 30,
    quantity: [1, 4],
    deadlineHours: [3 * 24, 7 * 24],
    tooTightHours: 20,
    business: false,
    hours: [8, 22],
    answerMinutes: [5, 90],
    startMinutes: [10, 120],
    judgeMinutes: [30, 6 * 60],
    lateMinutes: [60, 6 * 60],
    fragileStep: 'transfer',
    definition: {
      name: 'City trip',
      description: 'A night in a hotel and an airport transfer, then a guided tour of the city.',
      unit: 'traveller',
      pricing: { kind: 'cost_plus', margin_bps: 1000 },
      quantity_min: 1,
      quantity_max: 8,
      quote_validity_minutes: 30,
      acceptance_window_minutes: 120,
      auto_confirm_hours: 48,
      rejection_policy: 'refund',
      steps: [
        { key: 'stay', name: 'Hotel night', capability: 'stay' },
        { key: 'transfer', name: 'Airport transfer', capability: 'transfer' },
        { key: 'guide', name: 'Guided tour', capability: 'guide', after: ['stay', 'transfer'] },
      ],
    },
  },
];

/** What a step of an offering needs, by step key: its capability. */
export function stepCapabilities(offering: OfferingSpec): Map<string, string> {
  const steps = offering.definition.steps as readonly { key: string; capability: string }[];
  return new Map(steps.map((step) => [step.key, step.capability]));
}
