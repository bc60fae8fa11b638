import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const catalogMigrations: ModuleMigrations = {
  module: 'catalog',
  migrations: {},
};
