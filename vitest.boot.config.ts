import { defineConfig } from 'vitest/config';

// QEMU boot tests (npm run test:boot). Each guest runs under TCG on the machine's 2 cores, so
// test files run one at a time; the first run downloads the guest packages (~125 MB, cached in
// ~/.cache/otapack-guest), hence the long hook timeout.
export default defineConfig({
  test: {
    include: ['test/boot/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 900_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
