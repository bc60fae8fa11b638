import { z } from 'zod';
import { type Access, ALL_OPERATOR_ROLES, ALL_PARTNER_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { idSchema, name, page, pageQuery, toPage } from '../../../kernel/http/schemas.js';
import {
  REQUIRED_CERTIFICATIONS_MAX,
  SERVICE_LEVEL_HOURS_MAX,
  STANDARD_KEY_PATTERN,
  UNIT_PATTERN,
} from '../domain/capability.js';
import {
  CERTIFICATION_STATUSES,
  EVIDENCE_ITEMS_MAX,
  EVIDENCE_KEY_PATTERN,
  EVIDENCE_LENGTH_MAX,
  PROGRAM_TEXT_LENGTH_MAX,
  VALIDITY_DAYS_MAX,
} from '../domain/certification.js';
import type { StandardsService } from '../service.js';
import {
  CapabilityJson,
  CertificationJson,
  CertificationProgramJson,
  capabilityJson,
  certificationJson,
  programJson,
} from './json.js';

/** The largest value of a Postgres `integer`: versions beyond it name nothing. */
const INTEGER_MAX = 2_147_483_647;

const standardKey = z
  .string()
  .regex(STANDARD_KEY_PATTERN, 'must be a key such as "last-mile-delivery" (lowercase, digits, dashes)');
const unit = z.string().regex(UNIT_PATTERN, 'must be a short lowercase word such as "kg" or "night"');
const hours = z.number().int().min(1).max(SERVICE_LEVEL_HOURS_MAX);
const serviceLevels = z.strictObject({
  max_lead_time_hours: hours.nullable().default(null),
  acceptance_window_hours: hours.nullable().default(null),
});
const requiredCertifications = z
  .array(standardKey)
  .max(REQUIRED_CERTIFICATIONS_MAX)
  .refine((list) => new Set(list).size === list.length, 'must not repeat a program')
  .describe('Keys of the certification programs a partner must hold valid to offer the capability.');
const attributeSchema = z
  .record(z.string(), z.unknown())
  .describe('A JSON Schema (2020-12) with "type": "object" that offer attributes must conform to.');
const programText = z.string().max(PROGRAM_TEXT_LENGTH_MAX);
const evidenceItems = z
  .array(
    z.strictObject({
      key: z.string().regex(EVIDENCE_KEY_PATTERN, 'must be lowercase letters, digits, _ and -'),
      description: z.string().trim().min(1).max(PROGRAM_TEXT_LENGTH_MAX),
    }),
  )
  .max(EVIDENCE_ITEMS_MAX)
  .refine((items) => new Set(items.map((item) => item.key)).size === items.length, 'must not repeat an item')
  .describe('The evidence every application must carry.');
const validityDays = z.number().int().min(1).max(VALIDITY_DAYS_MAX);
const evidence = z
  .record(z.string().regex(EVIDENCE_KEY_PATTERN), z.string().max(EVIDENCE_LENGTH_MAX))
  .refine(
    (items) => Object.keys(items).length <= EVIDENCE_ITEMS_MAX,
    `must hold at most ${EVIDENCE_ITEMS_MAX} items`,
  )
  .describe("The evidence, by the program's item keys: a statement, or a link to a document.");
const reason = z.string().trim().min(1).max(2000);

const keyParams = z.strictObject({ key: standardKey });
const partnerIdParams = z.strictObject({ partner_id: idSchema('ptn') });
const certificationIdParams = z.strictObject({ certification_id: idSchema('crt') });

const STANDARDS = ['Standards'];
const CERTIFICATION = ['Certification'];

/** Anyone with a key: partners publish offers against capabilities, customers browse them. */
const ANY_PRINCIPAL: Access = { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES, customer: true };
const DECIDERS: Access = { operator: ['admin', 'ops'] };

export function standardsRoutes(standards: StandardsService): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/capabilities',
      summary: 'Define a capability',
      description:
        'Version 1 of a capability: its unit, the JSON Schema of offer attributes, the certification programs a ' +
        'partner must hold and the service levels. A schema that is not valid JSON Schema is ' +
        '`400 json_schema.invalid`; a program that does not exist is `422 standards.unknown_program`.',
      tags: STANDARDS,
      access: { operator: ['admin'] },
      audit: { action: 'standards.capability.define' },
      body: z.strictObject({
        key: standardKey,
        name,
        unit,
        attribute_schema: attributeSchema,
        required_certifications: requiredCertifications.default([]),
        service_levels: serviceLevels.default({ max_lead_time_hours: null, acceptance_window_hours: null }),
      }),
      status: 201,
      response: CapabilityJson,
      handler: async (ctx, { body }) =>
        capabilityJson(
          await standards.defineCapability(ctx, {
            key: body.key,
            name: body.name,
            unit: body.unit,
            attributeSchema: body.attribute_schema,
            requiredCertifications: body.required_certifications,
            serviceLevels: {
              maxLeadTimeHours: body.service_levels.max_lead_time_hours,
              acceptanceWindowHours: body.service_levels.acceptance_window_hours,
            },
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/capabilities',
      summary: 'List capabilities',
      description: 'The current version of every capability, by key.',
      tags: STANDARDS,
      access: ANY_PRINCIPAL,
      response: z.object({ data: z.array(CapabilityJson) }),
      handler: async (ctx) => ({ data: (await standards.listCapabilities(ctx.db)).map(capabilityJson) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/capabilities/:key',
      summary: 'Get a capability',
      description: 'Its current version.',
      tags: STANDARDS,
      access: ANY_PRINCIPAL,
      params: keyParams,
      response: CapabilityJson,
      handler: async (ctx, { params }) => capabilityJson(await standards.getCapability(ctx.db, params.key)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/capabilities/:key/versions',
      summary: 'List the versions of a capability',
      description: 'Oldest first. Versions never change once published.',
      tags: STANDARDS,
      access: ANY_PRINCIPAL,
      params: keyParams,
      response: z.object({ data: z.array(CapabilityJson) }),
      handler: async (ctx, { params }) => ({
        data: (await standards.listCapabilityVersions(ctx.db, params.key)).map(capabilityJson),
      }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/capabilities/:key/versions/:version',
      summary: 'Get one version of a capability',
      tags: STANDARDS,
      access: ANY_PRINCIPAL,
      params: z.strictObject({ key: standardKey, version: z.coerce.number().int().min(1).max(INTEGER_MAX) }),
      response: CapabilityJson,
      handler: async (ctx, { params }) =>
        capabilityJson(await standards.getCapabilityVersion(ctx.db, params.key, params.version)),
    }),

    defineRoute({
      method: 'POST',
      url: '/v1/certification-programs',
      summary: 'Create a certification program',
      tags: STANDARDS,
      access: { operator: ['admin'] },
      audit: { action: 'standards.program.create' },
      body: z.strictObject({
        key: standardKey,
        name,
        description: programText.default(''),
        requirements: programText.default(''),
        evidence: evidenceItems,
        validity_days: validityDays,
      }),
      status: 201,
      response: CertificationProgramJson,
      handler: async (ctx, { body }) =>
        programJson(
          await standards.createProgram(ctx, {
            key: body.key,
            name: body.name,
            description: body.description,
            requirements: body.requirements,
            evidence: body.evidence,
            validityDays: body.validity_days,
          }),
        ),
    }),
    defineRoute({
      method: 'PATCH',
      url: '/v1/certification-programs/:key',
      summary: 'Change a certification program',
      description:
        'New evidence items apply to applications from now on, a new validity to grants from now on.',
      tags: STANDARDS,
      access: { operator: ['admin'] },
      audit: { action: 'standards.program.update', targetParam: 'key' },
      params: keyParams,
      body: z.strictObject({
        name: name.optional(),
        description: programText.optional(),
        requirements: programText.optional(),
        evidence: evidenceItems.optional(),
        validity_days: validityDays.optional(),
      }),
      response: CertificationProgramJson,
      handler: async (ctx, { params, body }) =>
        programJson(
          await standards.updateProgram(ctx, params.key, {
            name: body.name,
            description: body.description,
            requirements: body.requirements,
            evidence: body.evidence,
            validityDays: body.validity_days,
          }),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/certification-programs',
      summary: 'List certification programs',
      tags: STANDARDS,
      access: ANY_PRINCIPAL,
      response: z.object({ data: z.array(CertificationProgramJson) }),
      handler: async (ctx) => ({ data: (await standards.listPrograms(ctx.db)).map(programJson) }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/certification-programs/:key',
      summary: 'Get a certification program',
      tags: STANDARDS,
      access: ANY_PRINCIPAL,
      params: keyParams,
      response: CertificationProgramJson,
      handler: async (ctx, { params }) => programJson(await standards.getProgram(ctx.db, params.key)),
    }),

    defineRoute({
      method: 'POST',
      url: '/v1/partners/:partner_id/certifications',
      summary: 'Apply for a certification',
      description:
        "By the partner's owner, or an operator on its behalf, with every evidence item the program asks for " +
        '(`422 standards.evidence_missing` names each one missing). An application while the partner holds the ' +
        'program is a renewal: once granted, it starts when the held certification ends.',
      tags: CERTIFICATION,
      access: { operator: ['admin', 'ops'], partner: ['owner'] },
      audit: { action: 'standards.certification.apply', targetParam: 'partner_id' },
      params: partnerIdParams,
      body: z.strictObject({ program: standardKey, evidence }),
      status: 201,
      response: CertificationJson,
      handler: async (ctx, { params, body }) =>
        certificationJson(
          await standards.applyForCertification(ctx, params.partner_id, body.program, body.evidence),
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/partners/:partner_id/certifications',
      summary: "A partner's certifications",
      description: 'Oldest first.',
      tags: CERTIFICATION,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      params: partnerIdParams,
      query: z.strictObject({
        ...pageQuery,
        status: z.enum(CERTIFICATION_STATUSES).optional(),
        program: standardKey.optional(),
      }),
      response: page(CertificationJson),
      handler: async (ctx, { params, query }) =>
        toPage(
          await standards.listCertifications(ctx, {
            partnerId: params.partner_id,
            programKey: query.program,
            status: query.status,
            after: query.after,
            limit: query.limit,
          }),
          certificationJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/certifications',
      summary: 'Search certifications',
      description: 'By status, program and partner, oldest first: the queue of applications to review.',
      tags: CERTIFICATION,
      access: { operator: ALL_OPERATOR_ROLES },
      query: z.strictObject({
        ...pageQuery,
        status: z.enum(CERTIFICATION_STATUSES).optional(),
        program: standardKey.optional(),
        partner_id: idSchema('ptn').optional(),
      }),
      response: page(CertificationJson),
      handler: async (ctx, { query }) =>
        toPage(
          await standards.listCertifications(ctx, {
            partnerId: query.partner_id,
            programKey: query.program,
            status: query.status,
            after: query.after,
            limit: query.limit,
          }),
          certificationJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/certifications/:certification_id',
      summary: 'Get a certification',
      tags: CERTIFICATION,
      access: { operator: ALL_OPERATOR_ROLES, partner: ALL_PARTNER_ROLES },
      params: certificationIdParams,
      response: CertificationJson,
      handler: async (ctx, { params }) =>
        certificationJson(await standards.getCertification(ctx, params.certification_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/certifications/:certification_id/grant',
      summary: 'Grant a certification',
      description:
        "Valid for the program's `validity_days` from now; a renewal from the end of the certification it " +
        'continues. An operator does not grant an application it filed itself (`403 standards.self_approval`).',
      tags: CERTIFICATION,
      access: DECIDERS,
      audit: { action: 'standards.certification.grant', targetParam: 'certification_id' },
      params: certificationIdParams,
      // The body is optional: a grant needs no note. Without one, Fastify hands the schema null.
      body: z.strictObject({ note: z.string().trim().min(1).max(2000).optional() }).nullish(),
      response: CertificationJson,
      handler: async (ctx, { params, body }) =>
        certificationJson(await standards.grantCertification(ctx, params.certification_id, body?.note)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/certifications/:certification_id/reject',
      summary: 'Reject an application for a certification',
      tags: CERTIFICATION,
      access: DECIDERS,
      audit: { action: 'standards.certification.reject', targetParam: 'certification_id' },
      params: certificationIdParams,
      body: z.strictObject({ reason }),
      response: CertificationJson,
      handler: async (ctx, { params, body }) =>
        certificationJson(await standards.rejectCertification(ctx, params.certification_id, body.reason)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/certifications/:certification_id/revoke',
      summary: 'Revoke a certification',
      description: 'At once. A renewal granted to follow it stands.',
      tags: CERTIFICATION,
      access: DECIDERS,
      audit: { action: 'standards.certification.revoke', targetParam: 'certification_id' },
      params: certificationIdParams,
      body: z.strictObject({ reason }),
      response: CertificationJson,
      handler: async (ctx, { params, body }) =>
        certificationJson(await standards.revokeCertification(ctx, params.certification_id, body.reason)),
    }),
  ];
}
