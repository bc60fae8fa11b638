import { z } from 'zod';
import { type Id, type IdPrefix, idPattern } from '../ids.js';
import { type Currency, formatAmount } from '../money.js';
import type { Page } from '../pagination.js';

/** Most items one page of a list returns. */
export const PAGE_LIMIT_MAX = 100;
export const PAGE_LIMIT_DEFAULT = 20;

/** An id of one kind, as a path parameter or a field. */
export const idSchema = <P extends IdPrefix>(prefix: P) =>
  z.string().regex(idPattern(prefix), `must be an id starting with ${prefix}_`) as unknown as z.ZodType<
    Id<P>
  >;

/** `limit` and `after` for cursor pagination: `after` is the id of the last item already read. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(PAGE_LIMIT_MAX).default(PAGE_LIMIT_DEFAULT),
  after: z.string().max(64).optional(),
};

/** A page of a list: its items, whether more follow, and the cursor to read them. */
export const page = <T extends z.ZodType>(item: T) =>
  z.object({
    data: z.array(item),
    has_more: z.boolean(),
    next_after: z
      .string()
      .nullable()
      .describe('Pass as `after` to read the next page; null on the last page.'),
  });

export function toPage<T extends { id: string }, J>({ items, hasMore }: Page<T>, toJson: (item: T) => J) {
  return {
    data: items.map(toJson),
    has_more: hasMore,
    next_after: hasMore ? (items.at(-1)?.id ?? null) : null,
  };
}

/** A timestamp in RFC 3339 form, in UTC. */
export const timestamp = z.iso.datetime();
export const iso = (date: Date) => date.toISOString();
export const isoOrNull = (date: Date | null) => (date ? date.toISOString() : null);

/** A short name of a thing, one line. */
export const name = z.string().trim().min(1).max(200);
export const email = z.email().max(320);

/** An amount of money as a request gives it: a decimal string in major units and its currency. */
export const MoneyInput = z
  .strictObject({
    amount: z
      .string()
      .max(40)
      .describe('A decimal string with at most the currency’s decimal places: "12.50".'),
    currency: z.string().max(8).describe('An ISO 4217 code: "EUR".'),
  })
  .meta({ id: 'Amount' });

/** An amount of money as Baton answers it: a decimal string in major units, its currency, and the minor units. */
export const MoneyJson = z
  .object({
    amount: z.string().describe('Major units as a decimal string: "12.50".'),
    currency: z.string(),
    amount_minor: z.string().describe('Integer minor units as a string: "1250".'),
  })
  .meta({ id: 'Money' });

export const moneyJson = (amountMinor: bigint, currency: string): z.input<typeof MoneyJson> => ({
  amount: formatAmount(amountMinor, currency as Currency),
  currency,
  amount_minor: amountMinor.toString(),
});

/** A currency as a path parameter: an ISO 4217 code. */
export const currencyParams = z.strictObject({
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as "EUR"'),
});
