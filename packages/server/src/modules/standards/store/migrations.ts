import type { ModuleMigrations } from '../../../kernel/database/migrations.js';

export const standardsMigrations: ModuleMigrations = {
  module: 'standards',
  migrations: {},
};
