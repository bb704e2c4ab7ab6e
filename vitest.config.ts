import { defineConfig } from 'vitest/config';

// Tests drive real tools (swupdate, e2fsprogs, openssl); they are I/O- and process-bound, so
// run files in parallel processes but keep per-test timeouts generous.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/boot/**'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    setupFiles: ['test/setup.ts'],
    reporters: ['default'],
  },
});
