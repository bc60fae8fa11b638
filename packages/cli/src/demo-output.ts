import { type DemoProgress, type DemoResult, formatAmount } from '@baton/server';
import { progress as progressBar } from '@clack/prompts';

/*
 * How the command line shows the demo: a progress bar while it runs (plain lines when the output
 * is not a terminal), then a summary table whose every rate says how it is computed, and the
 * keys to explore the ecosystem with.
 */

const PHASES: Record<DemoProgress['phase'], { label: string; from: number; to: number }> = {
  ecosystem: { label: 'Partners join', from: 0, to: 15 },
  orders: { label: 'Orders play out', from: 15, to: 97 },
  books: { label: 'Checking the books', from: 97, to: 100 },
};

export interface DemoProgressView {
  update(progress: DemoProgress): void;
  /** Ends the bar, as loaded or as failed. */
  stop(failed?: boolean): void;
}

/** A progress view that starts on the first update: nothing shows when no demo runs. */
export function demoProgress(intro: string): DemoProgressView {
  const terminal = process.stdout.isTTY === true;
  let bar: ReturnType<typeof progressBar> | null = null;
  let percent = 0;
  let phase: DemoProgress['phase'] | null = null;
  return {
    update(progress) {
      const { label, from, to } = PHASES[progress.phase];
      const now = Math.floor(from + ((to - from) * progress.done) / Math.max(1, progress.total));
      const message = progress.phase === 'books' ? label : `${label}: ${progress.done} of ${progress.total}`;
      if (!terminal) {
        if (phase === null) process.stdout.write(`${intro}\n`);
        if (progress.phase !== phase) process.stdout.write(`  ${label}...\n`);
        phase = progress.phase;
        return;
      }
      if (!bar) {
        bar = progressBar({ max: 100, style: 'heavy' });
        bar.start(intro);
      }
      bar.advance(Math.max(0, now - percent), message);
      percent = Math.max(percent, now);
    },
    stop(failed = false) {
      if (failed) bar?.error('The demo failed.');
      else bar?.stop('Demo ecosystem loaded.');
      bar = null;
    },
  };
}

const grouped = (digits: string) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
const number = (value: number) => grouped(String(value));
const percent = (value: number | null) => (value === null ? 'n/a' : `${(value * 100).toFixed(1)} %`);

function euros(amountMinor: bigint, currency: string): string {
  const [whole = '0', fraction] = formatAmount(
    amountMinor,
    currency as Parameters<typeof formatAmount>[1],
  ).split('.');
  const sign = whole.startsWith('-') ? '-' : '';
  return `${currency} ${sign}${grouped(whole.replace('-', ''))}${fraction ? `.${fraction}` : ''}`;
}

const day = (date: Date) => date.toISOString().slice(0, 10);

/** The summary and the keys, as lines; `serve`, when given, says how to serve the demo's database. */
export function demoLines(result: DemoResult, serve?: string): string[] {
  const { summary, keys } = result;
  const { money, orders, legs, quotes, partners } = summary;
  const cash = (amountMinor: bigint) => euros(amountMinor, summary.currency);
  const states = Object.entries(partners.byState)
    .sort((a, b) => b[1] - a[1])
    .map(([state, n]) => `${n} ${state.replace('_', ' ')}`)
    .join(', ');
  const rows: [string, string, string][] = [
    ['Partners', number(partners.total), states],
    ['Offers', number(summary.offers), `for ${summary.offerings} offerings`],
    ['Customers', number(summary.customers), ''],
    [
      'Customer requests',
      number(quotes.requests),
      `${number(quotes.requested)} quotes asked, ${number(quotes.refused)} refused, ${number(quotes.abandoned)} not ordered`,
    ],
    ['Orders placed', number(orders.placed), ''],
    ['  completed', number(orders.completed), ''],
    ['  failed', number(orders.failed), 'no partner could take a leg over: compensated, the rest refunded'],
    ['  cancelled', number(orders.cancelled), 'payment declined, nothing charged'],
    ['  re-planned', number(orders.replanned), 'a leg given to another partner (declined, expired)'],
    [
      'Legs delivered',
      number(legs.delivered),
      `${number(legs.late)} late, ${number(legs.rejected)} rejected (${number(legs.redone)} redone)`,
    ],
    ['GMV', cash(money.gmvMinor), 'captured from customers'],
    ['Refunds', cash(money.refundsMinor), ''],
    [
      'Platform revenue',
      cash(money.revenueMinor),
      `commission ${cash(money.commissionMinor)} + margin ${cash(money.marginMinor)}`,
    ],
    ['Take rate', percent(summary.takeRate), 'platform revenue ÷ (GMV − refunds)'],
    ['Fill rate', percent(summary.fillRate), 'orders completed ÷ customer requests'],
    ['On-time rate', percent(summary.onTimeRate), 'legs delivered by their due time ÷ legs delivered'],
    ['Partner earnings', cash(money.partnerEarningsMinor), "partners' payables, before payouts"],
    ...(money.partnerDebtsMinor > 0n
      ? [
          ['Partner debts', cash(money.partnerDebtsMinor), 'clawbacks their payables could not cover'] as [
            string,
            string,
            string,
          ],
        ]
      : []),
    ['Subsidy spend', cash(money.subsidySpendMinor), 'commission the launch programme paid for partners'],
  ];
  const widths = [0, 1].map((column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)));
  const lines = [
    `The demo ecosystem: ${day(summary.from)} to ${day(summary.to)}, simulated.`,
    '',
    ...rows.map(([name, value, note]) =>
      `  ${name.padEnd(widths[0] ?? 0)}  ${value.padStart(widths[1] ?? 0)}  ${note}`.trimEnd(),
    ),
    '',
    'Keys to explore it with, shown only now:',
    `  operator (admin)   ${keys.operator}`,
  ];
  if (keys.partner)
    lines.push(`  partner            ${keys.partner.key}  ${keys.partner.name} (${keys.partner.id})`);
  if (keys.customer)
    lines.push(`  customer           ${keys.customer.key}  ${keys.customer.name} (${keys.customer.id})`);
  if (serve) lines.push('', `Serve it: ${serve}`);
  return lines;
}
