import { z } from 'zod';
import { ALL_OPERATOR_ROLES } from '../../../kernel/http/access.js';
import { defineRoute, type Route } from '../../../kernel/http/route.js';
import { currencyParams, idSchema, page, pageQuery, toPage } from '../../../kernel/http/schemas.js';
import { IDEMPOTENCY_MONEY_OUT_TTL_MS } from '../../../kernel/idempotency/idempotency-store.js';
import { parseAmount, parseCurrency } from '../../../kernel/money.js';
import type { HandMovement, LedgerApprovals } from '../approvals.js';
import { BATCH_MAX } from '../domain/posting.js';
import {
  ApprovalThresholdJson,
  approvalThresholdJson,
  BatchResultJson,
  batchResultJson,
  POSTING_REQUEST_STATUSES,
  PostingRequestJson,
  postingRequestJson,
} from './json.js';
import {
  batchRejected,
  byHandKey,
  LEDGER,
  POSTERS,
  PostingBody,
  ReversalBody,
  toPosting,
  toPostings,
  transactionIdParams,
} from './routes.js';

const OPERATORS = { operator: ALL_OPERATOR_ROLES } as const;

const requestParams = z.strictObject({ posting_request_id: idSchema('lpr') });
const reason = z.string().trim().min(1).max(500).describe('Why, for the record and for the approver.');

const PostingRequestBody = z
  .discriminatedUnion('action', [
    z.strictObject({
      action: z.literal('post'),
      reason,
      transaction: PostingBody.describe('As `POST /v1/ledger/transactions` takes it.'),
    }),
    z.strictObject({
      action: z.literal('reverse'),
      reason,
      ...transactionIdParams.shape,
      ...ReversalBody.shape,
    }),
    z.strictObject({
      action: z.literal('batch'),
      reason,
      atomic: z.boolean(),
      transactions: z.array(PostingBody).min(1).max(BATCH_MAX),
    }),
  ])
  .meta({ id: 'NewLedgerPostingRequest' });

/** A filed request's movement in the ledger's terms; an unreadable transaction refuses the whole request. */
function movementOf(body: z.output<typeof PostingRequestBody>): HandMovement {
  switch (body.action) {
    case 'post':
      return { action: 'post', posting: toPosting(body.transaction) };
    case 'reverse':
      return {
        action: 'reverse',
        transactionId: body.transaction_id,
        idempotencyKey: byHandKey(body.idempotency_key),
        ...(body.description !== undefined ? { description: body.description } : {}),
      };
    case 'batch': {
      const { inputs, early } = toPostings(body.transactions);
      if (early.size > 0) throw batchRejected(early);
      return { action: 'batch', atomic: body.atomic, postings: inputs };
    }
  }
}

/** Routes of four eyes on money moved by hand: thresholds, and the requests another operator decides. */
export function ledgerApprovalRoutes(approvals: LedgerApprovals): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/approval-thresholds',
      summary: 'List the thresholds of money moved by hand',
      description:
        'Per currency, what one operator may move by hand alone in a day (UTC), counting every posting, reversal ' +
        'and batch it made through the API that day. A currency without a threshold needs no second operator.',
      tags: LEDGER,
      access: OPERATORS,
      response: z.object({ data: z.array(ApprovalThresholdJson) }),
      handler: async (ctx) => ({ data: (await approvals.thresholds(ctx)).map(approvalThresholdJson) }),
    }),
    defineRoute({
      method: 'PUT',
      url: '/v1/ledger/approval-thresholds/:currency',
      summary: 'Set the threshold of money moved by hand in a currency',
      description:
        'From now on, a posting, reversal or batch by hand that would take what its operator moved alone today (UTC, ' +
        'counting from the start of the day, also before the threshold was set) above `approval_above` is refused with ' +
        '`403 ledger.posting_needs_approval`; it is filed as a posting request instead, which another operator ' +
        'approves. What a transaction moves is the sum of its debits. `0.00` puts every movement by hand in the ' +
        'currency before a second operator. Administrators may change thresholds and create operator users, so four ' +
        'eyes binds the finance staff; against administrators, the audit log of every change and movement is the ' +
        'control. Errors: `400 ledger.approval_threshold_negative`, ' +
        '`400 money.unknown_currency`, `400 money.too_many_decimals`.',
      tags: LEDGER,
      access: { operator: ['admin'] },
      audit: { action: 'ledger.approval_threshold.set', targetParam: 'currency' },
      params: currencyParams,
      body: z.strictObject({
        approval_above: z.string().max(40).describe('A decimal string in the currency: "1000.00".'),
      }),
      response: ApprovalThresholdJson,
      handler: async (ctx, { params, body }) => {
        const currency = parseCurrency(params.currency);
        return approvalThresholdJson(
          await approvals.setThreshold(ctx, currency, parseAmount(body.approval_above, currency)),
        );
      },
    }),
    defineRoute({
      method: 'DELETE',
      url: '/v1/ledger/approval-thresholds/:currency',
      summary: 'Remove the threshold of money moved by hand in a currency',
      description:
        'Money in the currency moves by hand without a second operator again. `404 ledger.approval_threshold_not_found` when none is set.',
      tags: LEDGER,
      access: { operator: ['admin'] },
      audit: { action: 'ledger.approval_threshold.remove', targetParam: 'currency' },
      params: currencyParams,
      response: z.object({ currency: z.string() }),
      handler: async (ctx, { params }) => {
        await approvals.removeThreshold(ctx, params.currency);
        return { currency: params.currency };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/ledger/posting-requests',
      summary: 'Ask another operator to approve money moved by hand',
      description:
        'A posting (`action: post`, as `POST /v1/ledger/transactions` takes it), a reversal (`reverse`, as ' +
        '`POST /v1/ledger/transactions/{transaction_id}/reverse`) or a batch (`batch`, as `POST /v1/ledger/batches`), ' +
        'filed for a second operator to approve: needed beyond the currency’s threshold, allowed below it. What can ' +
        'be checked without moving money is checked now: `422 ledger.entries_must_balance` (also naming an account id that ' +
        'does not exist or is in another currency, and an owner that does not fit its account’s purpose), `422 ledger.batch_rejected`, ' +
        '`404 ledger.transaction_not_found`, `422 ledger.reversal_not_reversible`, `422 ledger.payout_not_reversible`, `422 ledger.provider_posting_not_reversible`, `409 ledger.already_reversed`; ' +
        'funds are checked when it is approved. Nothing moves until then. Announced to operators by a ' +
        '`posting_request.created` event.',
      tags: LEDGER,
      access: POSTERS,
      audit: { action: 'ledger.posting_request.create' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      bodyLimitBytes: 4 * 1024 * 1024,
      body: PostingRequestBody,
      status: 201,
      response: PostingRequestJson,
      handler: async (ctx, { body }) =>
        postingRequestJson(await approvals.request(ctx, movementOf(body), body.reason)),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/posting-requests',
      summary: 'List posting requests',
      description:
        'Oldest first; `status=pending` lists what waits for a decision, `status=expired` what was left undecided ' +
        'for seven days and can no longer be decided.',
      tags: LEDGER,
      access: OPERATORS,
      query: z.strictObject({ ...pageQuery, status: z.enum(POSTING_REQUEST_STATUSES).optional() }),
      response: page(PostingRequestJson),
      handler: async (ctx, { query }) =>
        toPage(
          await approvals.list(ctx, { status: query.status, after: query.after, limit: query.limit }),
          postingRequestJson,
        ),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/ledger/posting-requests/:posting_request_id',
      summary: 'Get a posting request',
      tags: LEDGER,
      access: OPERATORS,
      params: requestParams,
      response: PostingRequestJson,
      handler: async (ctx, { params }) =>
        postingRequestJson(await approvals.get(ctx, params.posting_request_id)),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/ledger/posting-requests/:posting_request_id/approve',
      summary: 'Approve a posting request: the money moves',
      description:
        'Makes the posting, reversal or batch as its own call would, as the approving operator; it does not count ' +
        'against anyone’s threshold. The operator who filed the request cannot approve it (`403 ledger.self_approval`). ' +
        'When the movement is refused (`409 ledger.insufficient_funds`, `409 ledger.exists_with_different_content`, ' +
        '`422 ledger.batch_rejected`, …), nothing changes and the request stays pending. A batch of items standing ' +
        'alone is approved whatever its items’ outcomes, which `results` gives. `409 ledger.posting_request_decided` ' +
        'once approved or rejected, `409 ledger.posting_request_expired` seven days after it was filed.',
      tags: LEDGER,
      access: POSTERS,
      audit: { action: 'ledger.posting_request.approve', targetParam: 'posting_request_id' },
      idempotencyKey: 'required',
      idempotencyRetentionMs: IDEMPOTENCY_MONEY_OUT_TTL_MS,
      params: requestParams,
      body: z.strictObject({}),
      response: z.object({ request: PostingRequestJson, results: z.array(BatchResultJson) }),
      handler: async (ctx, { params }) => {
        const { request, results } = await approvals.approve(ctx, params.posting_request_id);
        return {
          request: postingRequestJson(request),
          results: results.map((result, index) => batchResultJson(index, result)),
        };
      },
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/ledger/posting-requests/:posting_request_id/reject',
      summary: 'Reject a posting request',
      description:
        'Turns the request down with a reason; nothing moves. The operator who filed it may withdraw it this way. ' +
        '`409 ledger.posting_request_decided` once approved or rejected, `409 ledger.posting_request_expired` once expired.',
      tags: LEDGER,
      access: POSTERS,
      audit: { action: 'ledger.posting_request.reject', targetParam: 'posting_request_id' },
      params: requestParams,
      body: z.strictObject({ reason }),
      response: PostingRequestJson,
      handler: async (ctx, { params, body }) =>
        postingRequestJson(await approvals.reject(ctx, params.posting_request_id, body.reason)),
    }),
  ];
}
