/**
 * The fault-injection and soak suite (`npm run test:faults`): rolling deployments, registry
 * outages, hostile DNS, churn, slow instances, and the security checks. Durations scale with
 * SIGNPOST_FAULTS_SCALE (1, the default, keeps the suite within a few minutes on two cores;
 * larger values make a longer local soak). Files run one at a time so the load of one scenario
 * does not distort another's figures.
 */
import { defineConfig } from 'vitest/config';

const scale = Math.max(1, Number(process.env.SIGNPOST_FAULTS_SCALE ?? '1') || 1);

export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    pool: 'forks',
    // Heap figures are read after a full GC.
    execArgv: ['--expose-gc'],
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 120_000 * scale,
    hookTimeout: 60_000,
    // Figures are printed with console.log / console.table.
    silent: false,
    globalSetup: ['test/faults/global-setup.ts'],
    env: {
      AWS_EC2_METADATA_DISABLED: 'true',
    },
  },
});
