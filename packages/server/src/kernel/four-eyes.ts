import type { Context } from './context.js';
import type { UserId } from './ids.js';

/*
 * What every four-eyes flow shares: a request for a second operator's approval, filed by one
 * operator user and decided by another, waits a limited time for the decision.
 */

/** How long a request waits for a decision: what was right a week ago may no longer be. */
export const APPROVAL_REQUEST_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** The operator user acting, whom four eyes tell apart; to anyone else, `notFound` is thrown. */
export function operatorOf(ctx: Context, notFound: () => Error): UserId {
  if (ctx.actor.kind !== 'operator') throw notFound();
  return ctx.actor.userId;
}

/** A request's status as of `now`: one still pending at its expiry has expired. */
export const statusAt = <S extends string>(status: S, expiresAt: Date, now: Date): S | 'expired' =>
  status === 'pending' && now >= expiresAt ? 'expired' : status;
