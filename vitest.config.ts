import { defineConfig } from 'vitest/config';

/**
 * Two projects so that unit tests never wait for PostgreSQL: vitest runs a
 * project's globalSetup only when that project has files to run, so
 * `vitest run test/unit` starts no server, while `npm test` starts one for
 * everything else (integration, CLI) and stops it at the end, pass or fail.
 */
export default defineConfig({
  test: {
    // forks, not threads: tests spawn subprocesses, and pg-native/embedded
    // postgres state is per process.
    pool: 'forks',
    // The reference machine has 2 cores; more workers only contend.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'db',
          include: ['test/**/*.test.ts'],
          exclude: ['test/unit/**', '**/node_modules/**'],
          globalSetup: ['test/helpers/globalSetup.ts'],
        },
      },
    ],
  },
});
