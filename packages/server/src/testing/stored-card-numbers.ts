import { sql } from 'kysely';
import { containsCardNumber, maskCardNumbers } from '../kernel/card-numbers.js';
import type { Executor } from '../kernel/database/database.js';

/**
 * Every value in the database that holds a payment card number: each column of text (`text`,
 * `varchar`, `json`, `jsonb` and arrays of text) of every table, Baton's and the job queue's,
 * read whole. Returned as `schema.table.column: value`, the number masked.
 */
export async function storedCardNumbers(db: Executor): Promise<string[]> {
  const { rows: columns } = await sql<{ schema: string; table: string; column: string }>`
    select c.table_schema as schema, c.table_name as table, c.column_name as column
      from information_schema.columns c
      join information_schema.tables t
        on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
     where c.table_schema not in ('pg_catalog', 'information_schema')
       and (c.data_type in ('text', 'character varying', 'json', 'jsonb') or c.udt_name in ('_text', '_varchar'))
     order by 1, 2, 3`.execute(db);
  const found: string[] = [];
  for (const { schema, table, column } of columns) {
    const { rows } = await sql<{ value: string | null }>`
      select ${sql.ref(`${schema}.${table}.${column}`)}::text as value
        from ${sql.table(`${schema}.${table}`)}`.execute(db);
    for (const { value } of rows)
      if (value !== null && containsCardNumber(value))
        found.push(`${schema}.${table}.${column}: ${maskCardNumbers(value).slice(0, 200)}`);
  }
  return found;
}
