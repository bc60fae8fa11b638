import type { Jobs } from '../../kernel/jobs/jobs.js';

export type StandardsService = ReturnType<typeof createStandardsService>;

export function createStandardsService(_deps: { jobs: Jobs }) {
  return {};
}
