import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Every core: Vitest's default leaves one free (one worker on a 2-core CI machine, where the
    // suites then ran one file at a time). Timeouts are per project, sized for a loaded machine.
    maxWorkers: availableParallelism(),
    projects: ['packages/*', 'apps/*', 'apps/cli/test-faults', 'scripts/gpu-check', 'bench'],
  },
});
