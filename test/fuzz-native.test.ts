// The native deflate walker (native/deflate-walk.h, shipped inside the libdeflate addon) under
// ASan and UBSan: a seeded sample of `npm run fuzz:native` (which .ci/run runs in full) agrees
// with zlib and libdeflate on every input and draws no sanitizer report - and the same build
// does fail on a sanitizer report or a planted mismatch, so a pass means something.
import { afterAll, expect, test } from 'vitest';
import { rmSync } from 'node:fs';
// @ts-expect-error plain JS module shared with the npm run fuzz:native script
import { buildDriver, runDriver } from './fuzz/native.mjs';
import { requires } from './helpers/require-tool.js';

const built: { exe?: string; dir?: string; missing?: string } = buildDriver();
afterAll(() => { if (built.dir) rmSync(built.dir, { recursive: true, force: true }); });

// CI installs gcc, libdeflate-dev and zlib1g-dev: there a missing one is a broken install step
const haveDriver = requires({ what: 'the native deflate walker fuzz driver', checks: [[built.missing ?? 'the driver build', !built.missing]], install: 'apt-get install gcc libc6-dev libdeflate-dev zlib1g-dev' });
const driver = (): string => built.exe!;

test.skipIf(!haveDriver)('the sanitizers are live in the driver build: a bad shift and a heap overflow each end the run', () => {
  const exe = driver();
  const ub = runDriver(exe, ['--selftest-ubsan']);
  expect(ub.status).not.toBe(0);
  expect(ub.stderr).toMatch(/runtime error: shift exponent 64/);
  const asan = runDriver(exe, ['--selftest-asan']);
  expect(asan.status).not.toBe(0);
  expect(asan.stderr).toMatch(/heap-buffer-overflow/);
});

test.skipIf(!haveDriver)('a walker result that differs from zlib fails the run', () => {
  const r = runDriver(driver(), ['--plant-mismatch', '--seed', '7']);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/MISMATCH \[libdeflate #1, .*walker ends at byte \d+ with \d+ bytes out, zlib at \d+ with \d+/);
}, 120_000);

test.skipIf(!haveDriver)('seeded sample: libdeflate levels 0-12, mutants, crafted and random streams - walker, zlib and libdeflate agree, no sanitizer report', () => {
  const seed = process.env.FUZZ_SEED ?? '20261122';
  const r = runDriver(driver(), ['--seed', seed, '--scale', '1']);
  console.log(r.stdout.trim());
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/ 0 mismatches/);
  // the inputs still reach the case that broke the old walker, from libdeflate and crafted
  const m = /\(HCLEN=15\): (\d+) from libdeflate, (\d+) crafted/.exec(r.stdout);
  expect(Number(m?.[1])).toBeGreaterThan(0);
  expect(Number(m?.[2])).toBeGreaterThan(0);
}, 180_000);
