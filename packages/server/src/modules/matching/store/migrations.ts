import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const matchingMigrations: ModuleMigrations = {
  module: 'matching',
  migrations: {},
};
