import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../../../kernel/clock.js';
import type { Executor } from '../../../kernel/database/database.js';
import { unstorableText } from '../../../kernel/http/text.js';
import { paymentsErrors } from '../errors.js';
import type { ProviderEvent } from '../provider/port.js';
import type { PaymentsService } from '../service.js';

/*
 * Callbacks from a real provider. They are signed like Standard Webhooks: an HMAC SHA-256, keyed
 * with the shared secret, over `<webhook-id>.<webhook-timestamp>.<raw body>`, sent as
 * `webhook-signature: v1,<base64>` (several may be listed, space-separated, while a secret is
 * rolled). The signature covers the exact bytes sent, so this route reads the body raw, which the
 * API's declared routes cannot; it is registered on the HTTP app directly, as a public route.
 */

export const PROVIDER_EVENTS_URL = '/v1/payments/provider-events';
/** How far a callback's timestamp may be from Baton's clock: replays older than this are refused. */
export const SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000;
const PROVIDER_EVENT_BODY_LIMIT_BYTES = 64 * 1024;

const ProviderEventBody = z.strictObject({
  id: z.string().min(1).max(200),
  operation: z.strictObject({
    reference: z.string().min(1).max(200),
    provider_id: z.string().max(200),
    kind: z.enum(['authorization', 'capture', 'refund', 'payout', 'chargeback']),
    status: z.enum(['pending', 'succeeded', 'failed']),
    amount_minor: z.string().regex(/^[1-9][0-9]{0,15}$/),
    currency: z.string().regex(/^[A-Z]{3}$/),
    failure_code: z.string().max(100).nullable(),
    parent_reference: z.string().max(200).nullable(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  }),
});

/** The key a secret names: `whsec_<base64>` as Standard Webhooks writes it, or the secret's own bytes. */
const keyOf = (secret: string): Buffer =>
  secret.startsWith('whsec_')
    ? Buffer.from(secret.slice('whsec_'.length), 'base64')
    : Buffer.from(secret, 'utf8');

/** The `webhook-signature` value for a delivery, as the provider computes it. */
export function signProviderEvent(
  secret: string,
  input: { id: string; timestamp: number; body: string },
): string {
  const mac = createHmac('sha256', keyOf(secret))
    .update(`${input.id}.${input.timestamp}.${input.body}`)
    .digest('base64');
  return `v1,${mac}`;
}

/**
 * Checks a delivery's signature and timestamp.
 *
 * @throws DomainError `payments.signature_invalid`
 */
export function verifyProviderEvent(
  secret: string | null,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  now: Date,
): void {
  if (!secret)
    throw paymentsErrors.signatureInvalid('Provider callbacks are not configured on this installation.');
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string')
    throw paymentsErrors.signatureInvalid('Send webhook-id, webhook-timestamp and webhook-signature.');
  const seconds = Number(timestamp);
  if (!/^[0-9]{1,12}$/.test(timestamp) || Math.abs(now.getTime() - seconds * 1000) > SIGNATURE_TOLERANCE_MS)
    throw paymentsErrors.signatureInvalid('The webhook-timestamp is missing or too far from now.');
  const expected = Buffer.from(signProviderEvent(secret, { id, timestamp: seconds, body }));
  const matches = signatures.split(' ').some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) throw paymentsErrors.signatureInvalid('The webhook-signature does not match.');
}

/** Turns a verified body into the port's event. */
export function parseProviderEvent(body: string): ProviderEvent {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw paymentsErrors.eventInvalid('The body is not valid JSON.');
  }
  const parsed = ProviderEventBody.safeParse(json);
  if (!parsed.success || unstorableText(json, '').length > 0)
    throw paymentsErrors.eventInvalid('The body is not a provider event.');
  const { id, operation } = parsed.data;
  return {
    eventId: id,
    operation: {
      reference: operation.reference,
      providerId: operation.provider_id,
      kind: operation.kind,
      status: operation.status,
      amountMinor: BigInt(operation.amount_minor),
      currency: operation.currency,
      failureCode: operation.failure_code,
      parentReference: operation.parent_reference,
      createdAt: new Date(operation.created_at),
      updatedAt: new Date(operation.updated_at),
    },
  };
}

/** Registers the callback route on the app, before it is ready. */
export async function registerProviderEventsRoute(
  app: FastifyInstance,
  deps: { payments: PaymentsService; db: Executor; clock: Clock; secret: string | null },
): Promise<void> {
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) =>
      done(null, body),
    );
    scope.post(
      PROVIDER_EVENTS_URL,
      {
        bodyLimit: PROVIDER_EVENT_BODY_LIMIT_BYTES,
        config: { access: 'public' },
        schema: {
          summary: 'Receive a payment provider callback',
          description:
            'For the payment provider, not for API clients: one operation reached a state. Signed like Standard ' +
            'Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the shared secret; a bad or ' +
            'stale signature is `400 payments.signature_invalid`, a body that is not an event `400 ' +
            'payments.event_invalid`. Each event id has one effect however often it is delivered, and a stale ' +
            'state after a final one changes nothing. Answers 204.',
          tags: ['Payments'],
          security: [],
        },
      },
      async (request, reply) => {
        const body = typeof request.body === 'string' ? request.body : '';
        verifyProviderEvent(deps.secret, request.headers, body, deps.clock.now());
        await deps.payments.handleEvent(deps.db, parseProviderEvent(body));
        return reply.code(204).send();
      },
    );
  });
}
