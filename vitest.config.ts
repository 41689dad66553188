import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'apps/cli/test-faults', 'scripts/gpu-check', 'bench'],
  },
});
