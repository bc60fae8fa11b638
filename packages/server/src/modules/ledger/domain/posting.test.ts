import { createHash } from 'node:crypto';
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { CAUSE_KINDS, fingerprintOf, type ResolvedPosting } from './posting.js';

/*
 * A transaction's fingerprint is stored with it and recomputed by verify and by every replay of
 * its key, so its bytes must never change: the same content gives the same fingerprint today as
 * when it was written.
 */
describe('fingerprintOf', () => {
  const posting: ResolvedPosting = {
    idempotencyKey: 'release:ord_1:"quoted"',
    description: 'Release of leg 2 — café',
    cause: { kind: 'leg', id: 'wko_01' },
    metadata: { z: '1', a: 'two', ü: '\n' },
    entries: [
      { accountId: 'acc_a', currency: 'EUR', direction: 'debit', amountMinor: 1000n },
      { accountId: 'acc_b', currency: 'EUR', direction: 'credit', amountMinor: 1000n },
    ],
  };

  it('gives the fingerprint transactions were written with', () => {
    expect(fingerprintOf(posting).toString('hex')).toBe(
      'f160e2bd8fc02dbe7a8e9e31ed320317f20b61150cc7a26cc791fdd47dacd672',
    );
  });

  it('does not depend on the order of metadata keys', () => {
    const reordered = { ...posting, metadata: { ü: '\n', a: 'two', z: '1' } };
    expect(fingerprintOf(reordered).equals(fingerprintOf(posting))).toBe(true);
  });

  /** The canonical JSON as first defined: object keys sorted at every level. */
  const canonical = (value: unknown): string => {
    if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, item]) => item !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`;
    }
    return JSON.stringify(value);
  };
  const text = fc.string({ unit: 'binary', maxLength: 12 });
  const arbitraryPosting: fc.Arbitrary<ResolvedPosting> = fc.record({
    idempotencyKey: text,
    description: text,
    cause: fc.record({ kind: fc.constantFrom(...CAUSE_KINDS), id: text }),
    metadata: fc.dictionary(text, text, { maxKeys: 4 }),
    entries: fc.array(
      fc.record({
        accountId: text,
        currency: fc.constantFrom('EUR', 'USD'),
        direction: fc.constantFrom('debit' as const, 'credit' as const),
        amountMinor: fc.bigInt({ min: 1n, max: 10n ** 15n }),
      }),
      { maxLength: 5 },
    ),
  });

  test.prop([arbitraryPosting])('is the hash of the canonical JSON of the content', (p) => {
    const expected = createHash('sha256')
      .update(
        canonical({
          key: p.idempotencyKey,
          description: p.description,
          cause: p.cause,
          metadata: p.metadata,
          entries: p.entries.map((e) => [e.accountId, e.currency, e.direction, e.amountMinor.toString()]),
        }),
      )
      .digest();
    expect(fingerprintOf(p).equals(expected)).toBe(true);
  });
});
