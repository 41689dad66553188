import { defineProject } from 'vitest/config';

/**
 * The fault-injection suite: full disks (through the atomic writer's file-system seam and on a
 * small tmpfs), kill -9 and resume, concurrent runs, bad flags against a used run folder,
 * corrupted files, untrusted plug-ins and divergence. It drives the built CLI (apps/cli/dist).
 */
export default defineProject({
  test: {
    name: 'faults',
    include: ['*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
