import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'gpu-check',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
