import { describe, expect, it } from 'vitest';
import { comparePayout, expectedAtProvider, type PayoutRecord } from './reconciliation.js';

const sent: PayoutRecord = {
  reference: 'po_1',
  status: 'sent',
  amountMinor: 5_000n,
  attempts: 1,
  sentMinor: 5_000n,
  settledMinor: null,
  returnedMinor: null,
  bankReturnedMinor: null,
};
const paid: PayoutRecord = { ...sent, status: 'paid', settledMinor: 5_000n };
const failed: PayoutRecord = { ...sent, status: 'failed', returnedMinor: 5_000n };
const returned: PayoutRecord = { ...paid, status: 'returned', bankReturnedMinor: 5_000n };
const types = (found: ReturnType<typeof comparePayout>) => found.map((f) => f.type);

describe('comparing a payout with the provider', () => {
  it('finds nothing when the status and postings are what the provider’s state implies', () => {
    expect(comparePayout({ status: 'pending', amountMinor: 5_000n }, sent)).toEqual([]);
    expect(comparePayout({ status: 'pending', amountMinor: 5_000n }, { ...sent, status: 'pending' })).toEqual(
      [],
    );
    expect(comparePayout({ status: 'succeeded', amountMinor: 5_000n }, paid)).toEqual([]);
    expect(comparePayout({ status: 'failed', amountMinor: 5_000n }, failed)).toEqual([]);
    expect(comparePayout({ status: 'failed', amountMinor: 5_000n }, returned)).toEqual([]);
  });

  it('finds a paid payout the partner’s bank sent back that the ledger did not give back', () => {
    const found = comparePayout({ status: 'failed', amountMinor: 5_000n }, paid);
    expect(types(found)).toEqual(['payout_status_mismatch', 'payout_not_returned']);
    expect(found[1]?.ledgerMinor).toBe(5_000n);
    expect(found[1]?.detail).toContain('sent the paid payout back');
    // Marked returned without the posting that gives the money back.
    expect(
      types(
        comparePayout({ status: 'failed', amountMinor: 5_000n }, { ...returned, bankReturnedMinor: null }),
      ),
    ).toEqual(['payout_not_returned']);
  });

  it('finds a payout given back twice, or given back from the provider while the provider paid it', () => {
    // Returned out of transit and settled too: the money went back to the partner twice.
    expect(
      types(comparePayout({ status: 'failed', amountMinor: 5_000n }, { ...failed, settledMinor: 5_000n })),
    ).toEqual(['payout_posting_without_operation']);
    expect(
      types(
        comparePayout({ status: 'failed', amountMinor: 5_000n }, { ...failed, bankReturnedMinor: 5_000n }),
      ),
    ).toEqual(['payout_posting_without_operation']);
    expect(types(comparePayout({ status: 'succeeded', amountMinor: 5_000n }, returned))).toEqual([
      'payout_status_mismatch',
      'payout_posting_without_operation',
    ]);
    expect(
      comparePayout({ status: 'succeeded', amountMinor: 5_000n }, { ...paid, bankReturnedMinor: 4_000n }),
    ).toMatchObject([
      { type: 'payout_amount_mismatch', ledgerMinor: 4_000n },
      { type: 'payout_posting_without_operation', ledgerMinor: 4_000n },
    ]);
  });

  it('finds a paid payout the ledger never settled out of transit', () => {
    expect(types(comparePayout({ status: 'succeeded', amountMinor: 5_000n }, sent))).toEqual([
      'payout_status_mismatch',
      'payout_unsettled',
    ]);
    // Marked paid without its settlement: the status agrees, the ledger does not.
    expect(
      types(comparePayout({ status: 'succeeded', amountMinor: 5_000n }, { ...paid, settledMinor: null })),
    ).toEqual(['payout_unsettled']);
  });

  it('finds a failed payout whose money was not returned to the partner', () => {
    const found = comparePayout({ status: 'failed', amountMinor: 5_000n }, sent);
    expect(types(found)).toEqual(['payout_status_mismatch', 'payout_not_returned']);
    expect(found[1]?.ledgerMinor).toBe(5_000n);
  });

  it('finds another amount at the provider, in Baton’s record or in a posting', () => {
    expect(types(comparePayout({ status: 'succeeded', amountMinor: 4_900n }, paid))).toEqual([
      'payout_amount_mismatch',
      'payout_amount_mismatch',
    ]);
    const found = comparePayout(
      { status: 'succeeded', amountMinor: 5_000n },
      { ...paid, settledMinor: 4_000n },
    );
    expect(found).toMatchObject([{ type: 'payout_amount_mismatch', ledgerMinor: 4_000n }]);
  });

  it('finds money settled or returned for a payout the provider has not finished so', () => {
    expect(types(comparePayout({ status: 'pending', amountMinor: 5_000n }, paid))).toEqual([
      'payout_status_mismatch',
      'payout_posting_without_operation',
    ]);
    expect(
      types(
        comparePayout(
          { status: 'succeeded', amountMinor: 5_000n },
          { ...failed, status: 'paid', settledMinor: 5_000n },
        ),
      ),
    ).toEqual(['payout_posting_without_operation']);
    expect(
      types(comparePayout({ status: 'pending', amountMinor: 5_000n }, { ...sent, sentMinor: null })),
    ).toEqual(['payout_posting_without_operation']);
  });

  it('expects at the provider every payout Baton asked it to send, and none it never sent', () => {
    expect(expectedAtProvider(sent)).toBe(true);
    expect(expectedAtProvider(paid)).toBe(true);
    expect(expectedAtProvider(returned)).toBe(true);
    expect(expectedAtProvider({ ...sent, status: 'pending' })).toBe(true);
    expect(expectedAtProvider({ ...sent, status: 'pending', attempts: 0 })).toBe(false);
    // Refused by the provider at once: failed, and never held there.
    expect(expectedAtProvider(failed)).toBe(false);
  });
});
