import { type Kysely, type Migration, Migrator } from 'kysely';

/** One module's migrations, by name; names sort in the order they apply. */
export interface ModuleMigrations {
  readonly module: string;
  readonly migrations: Readonly<Record<string, Migration>>;
}

/** A migration failed; the message names the module and the migration. */
export class MigrationError extends Error {
  constructor(module: string, migration: string | undefined, cause: unknown) {
    super(`Migration ${module}/${migration ?? '?'} failed: ${(cause as Error)?.message ?? String(cause)}`, {
      cause,
    });
    this.name = 'MigrationError';
  }
}

/**
 * Brings every module's tables to the latest version. Each module keeps its own migration
 * history table, so modules evolve independently; Kysely's migrator takes a lock, so several
 * processes starting at once apply each migration once.
 *
 * @returns the names of the migrations applied now, as `module/name`.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  modules: readonly ModuleMigrations[],
): Promise<string[]> {
  const applied: string[] = [];
  for (const { module, migrations } of modules) {
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => migrations },
      migrationTableName: `migrations_${module}`,
      migrationLockTableName: `migrations_${module}_lock`,
    });
    const { error, results = [] } = await migrator.migrateToLatest();
    const failed = results.find((result) => result.status === 'Error');
    if (error) throw new MigrationError(module, failed?.migrationName, error);
    for (const result of results) applied.push(`${module}/${result.migrationName}`);
  }
  return applied;
}
