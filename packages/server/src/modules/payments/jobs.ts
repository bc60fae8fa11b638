import { systemActor } from '../../kernel/actor.js';
import type { Clock } from '../../kernel/clock.js';
import type { Executor } from '../../kernel/database/database.js';
import type { JobDefinition } from '../../kernel/jobs/jobs.js';
import type { PaymentsService } from './service.js';

export const RETRY_UNSETTLED_JOB = 'payments.retry-unsettled';
export const PAYMENTS_RECONCILE_JOB = 'payments.reconcile';
export const RESUME_PAYMENT_JOB = 'payments.resume';
export const RESUME_REFUND_JOB = 'payments.resume-refund';

/** How long a payment may sit unsettled before the retry job asks the provider about it. */
export const RETRY_AFTER_MS = 60_000;
/** How far back the daily reconciliation looks: two days, so a late settlement is seen twice. */
export const RECONCILE_WINDOW_MS = 48 * 60 * 60 * 1000;
/**
 * How far back a reconciliation started on demand may look: 31 days. It runs inside its request
 * and reads every provider operation of its window, so the window is bounded.
 */
export const RECONCILE_WINDOW_MAX_MS = 31 * 24 * 60 * 60 * 1000;

/**
 * The payments module's background work: driving on payments and refunds a crash, a timeout or a
 * lost callback left unsettled (every minute), reconciling with the provider (daily), and
 * charging payments and sending refund retries recorded by a request (enqueued with them, so
 * they run after it commits).
 */
export function paymentsJobs({
  payments,
  db,
  clock,
}: {
  payments: PaymentsService;
  db: Executor;
  clock: Clock;
}): JobDefinition<object>[] {
  return [
    {
      name: RETRY_UNSETTLED_JOB,
      cron: '* * * * *',
      handler: async () => {
        await payments.retryUnsettled(db, new Date(clock.now().getTime() - RETRY_AFTER_MS));
      },
    },
    {
      name: PAYMENTS_RECONCILE_JOB,
      cron: '40 3 * * *',
      handler: async () => {
        await payments.reconcile(db, { since: new Date(clock.now().getTime() - RECONCILE_WINDOW_MS) });
      },
    },
    {
      name: RESUME_PAYMENT_JOB,
      // A customer's order waits for its charge; charges wait on the provider, not on each other.
      pollingIntervalSeconds: 0.5,
      concurrency: 4,
      handler: async (data) => {
        await payments.resume(db, systemActor('payments'), (data as { paymentId: string }).paymentId);
      },
    } as JobDefinition<object>,
    {
      name: RESUME_REFUND_JOB,
      pollingIntervalSeconds: 0.5,
      handler: async (data) => {
        await payments.resumeRefund(db, (data as { refundId: string }).refundId);
      },
    } as JobDefinition<object>,
  ];
}
