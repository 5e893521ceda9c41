import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/faults/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Every test talks to real servers on loopback; two cores are shared by them all.
    maxWorkers: 2,
  },
});
