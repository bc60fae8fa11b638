/**
 * The database's tables, as Kysely sees them. The interface starts empty: each module adds
 * its own tables through declaration merging in its `store/tables.ts`, so a module's table
 * definitions live with the module that owns them.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each module.
export interface Tables {}
