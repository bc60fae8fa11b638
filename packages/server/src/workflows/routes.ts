import { z } from 'zod';
import { FieldErrorJson } from '../kernel/http/problem.js';
import { defineRoute, type Route } from '../kernel/http/route.js';
import { name } from '../kernel/http/schemas.js';
import type { CatalogService } from '../modules/catalog/index.js';
import type { OfferingsService } from '../modules/offerings/index.js';
import {
  CapabilityJson,
  capabilityJson,
  type ServiceLevels,
  type StandardsService,
} from '../modules/standards/index.js';
import { publishCapabilityVersion } from './publish-capability.js';

const capabilityKey = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,59}$/, 'must be a capability key such as "dyeing" (lowercase, digits, dashes)');
const hours = z.number().int().min(1);

/** Routes whose use cases span modules, each run as one transaction across them. */
export function workflowRoutes(deps: {
  standards: StandardsService;
  catalog: CatalogService;
  offerings: OfferingsService;
}): Route[] {
  return [
    defineRoute({
      method: 'POST',
      url: '/v1/capabilities/:key/versions',
      summary: 'Publish a new version of a capability',
      description:
        'The fields left out are carried over from the current version (each service level on its own). Every ' +
        'offer of the capability is re-checked against the new version in the same transaction: offers that ' +
        'no longer conform become `non_compliant` with the reason per field, `non_compliant` offers that ' +
        'conform again become `paused`, and each offer’s partner gets an `offer.status_changed` event. The ' +
        'offerings on sale are checked too: a step whose constraints the new version no longer allows is listed in ' +
        '`offerings_out_of_date` and announced with an `offering.out_of_date` event. A quote whose step no partner ' +
        'can then take answers `409 orders.offering_out_of_date` naming the step (not `422 orders.quote_infeasible`), ' +
        'until a new version of the offering is published.',
      tags: ['Standards'],
      access: { operator: ['admin'] },
      audit: { action: 'standards.capability.publish', targetParam: 'key' },
      params: z.strictObject({ key: capabilityKey }),
      body: z.strictObject({
        name: name.optional(),
        unit: z.string().optional(),
        attribute_schema: z
          .record(z.string(), z.unknown())
          .optional()
          .describe('A JSON Schema (2020-12) with "type": "object" that offer attributes must conform to.'),
        required_certifications: z.array(capabilityKey).optional(),
        service_levels: z
          .strictObject({
            max_lead_time_hours: hours.nullable().optional(),
            acceptance_window_hours: hours.nullable().optional(),
          })
          .optional(),
      }),
      status: 201,
      response: z.object({
        capability: CapabilityJson,
        revalidated: z.object({
          non_compliant: z.array(z.string()).describe('Offers that do not conform to the new version.'),
          restored: z.array(z.string()).describe('Offers that conform again, now `paused`.'),
        }),
        offerings_out_of_date: z.array(
          z.object({
            offering: z.string(),
            version: z.number().int(),
            step: z.string(),
            errors: z.array(FieldErrorJson),
          }),
        ),
      }),
      handler: async (ctx, { params, body }) => {
        let serviceLevels: ServiceLevels | undefined;
        if (body.service_levels) {
          const current = (await deps.standards.getCapability(ctx.db, params.key)).serviceLevels;
          const given = body.service_levels;
          serviceLevels = {
            maxLeadTimeHours:
              given.max_lead_time_hours === undefined ? current.maxLeadTimeHours : given.max_lead_time_hours,
            acceptanceWindowHours:
              given.acceptance_window_hours === undefined
                ? current.acceptanceWindowHours
                : given.acceptance_window_hours,
          };
        }
        const published = await publishCapabilityVersion(ctx, deps, params.key, {
          name: body.name,
          unit: body.unit,
          attributeSchema: body.attribute_schema,
          requiredCertifications: body.required_certifications,
          serviceLevels,
        });
        return {
          capability: capabilityJson(published.capability),
          revalidated: { non_compliant: [...published.nonCompliant], restored: [...published.restored] },
          offerings_out_of_date: published.stepsOutOfDate.map((step) => ({
            offering: step.offeringKey,
            version: step.version,
            step: step.stepKey,
            errors: [...step.errors],
          })),
        };
      },
    }),
  ];
}
