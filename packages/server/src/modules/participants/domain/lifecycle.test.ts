import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../../kernel/errors.js';
import { checkTransition, isFinal, PARTNER_STATES, type PartnerState, TRANSITIONS } from './lifecycle.js';
import { canTakeWork, type RulesVersion, rulesStanding } from './rules.js';

const state = fc.constantFrom(...PARTNER_STATES);

describe('partner lifecycle', () => {
  it('accepts exactly the declared transitions, over random sequences of attempts', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(state, fc.boolean()), { maxLength: 40 }), (attempts) => {
        let current: PartnerState = 'applied';
        const visited: PartnerState[] = [current];
        for (const [to, acceptedCurrentRules] of attempts) {
          const allowed = TRANSITIONS[current].includes(to) && (to !== 'active' || acceptedCurrentRules);
          let moved = false;
          try {
            checkTransition(current, to, { acceptedCurrentRules });
            moved = true;
          } catch (error) {
            expect(error).toBeInstanceOf(DomainError);
            expect((error as DomainError).kind).toBe('conflict');
          }
          expect(moved).toBe(allowed);
          if (moved) {
            current = to;
            visited.push(current);
          }
        }
        // Nothing leaves a final state, and nothing returns to applied.
        const firstFinal = visited.findIndex(isFinal);
        if (firstFinal >= 0) expect(visited.length - 1).toBe(firstFinal);
        expect(visited.slice(1)).not.toContain('applied');
      }),
      { numRuns: 2000 },
    );
  });

  it('names the rule broken when a transition is refused', () => {
    expect(() => checkTransition('applied', 'active', { acceptedCurrentRules: true })).toThrow(
      expect.objectContaining({ code: 'participants.transition_not_allowed' }),
    );
    expect(() => checkTransition('under_review', 'active', { acceptedCurrentRules: false })).toThrow(
      expect.objectContaining({ code: 'participants.rules_not_accepted' }),
    );
  });

  it('tells approval from reinstatement', () => {
    expect(checkTransition('under_review', 'active', { acceptedCurrentRules: true })).toBe(
      'partner.approved',
    );
    expect(checkTransition('suspended', 'active', { acceptedCurrentRules: true })).toBe('partner.reinstated');
  });
});

describe('rules standing', () => {
  const v2: RulesVersion = {
    partnerType: 'courier',
    version: 2,
    title: 'v2',
    body: '',
    gracePeriodDays: 14,
    publishedAt: new Date('2026-03-01T00:00:00Z'),
  };

  it('gives engaged partners a grace period on a new version, then lapses them', () => {
    const during = rulesStanding('active', v2, 1, new Date('2026-03-10T00:00:00Z'));
    expect(during.status).toBe('grace');
    expect(during.graceUntil?.toISOString()).toBe('2026-03-15T00:00:00.000Z');
    expect(canTakeWork('active', during)).toBe(true);
    const after = rulesStanding('active', v2, 1, new Date('2026-03-15T00:00:00Z'));
    expect(after.status).toBe('lapsed');
    expect(canTakeWork('active', after)).toBe(false);
  });

  it('gives no grace to a partner that is not engaged yet', () => {
    const standing = rulesStanding('under_review', v2, null, new Date('2026-03-02T00:00:00Z'));
    expect(standing.status).toBe('pending');
  });

  it('never lets a suspended partner take work, whatever it accepted', () => {
    const standing = rulesStanding('suspended', v2, 2, new Date('2026-03-02T00:00:00Z'));
    expect(standing.status).toBe('accepted');
    expect(canTakeWork('suspended', standing)).toBe(false);
  });
});
