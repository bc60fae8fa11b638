/** What a caller asks of a list: the id of the last item it read, and how many more. */
export interface PageRequest {
  readonly after?: string | undefined;
  readonly limit: number;
}

/** A page of a list: its items and whether more follow. */
export interface Page<T> {
  readonly items: T[];
  readonly hasMore: boolean;
}

/**
 * Turns rows fetched with `limit + 1` into a page: the extra row is not returned, it only
 * says that more follow.
 */
export function pageOf<R, T>(rows: readonly R[], limit: number, map: (row: R) => T): Page<T> {
  return { items: rows.slice(0, limit).map(map), hasMore: rows.length > limit };
}
