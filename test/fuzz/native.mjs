#!/usr/bin/env node
// npm run fuzz:native [-- --seed N --scale N]: builds the deflate walker's fuzz driver
// (test/fuzz/deflate-walk.c, which includes native/deflate-walk.h, the walker the addon ships)
// under -fsanitize=address,undefined with -fno-sanitize-recover=all, and runs it. Any mismatch
// with zlib or libdeflate, or any sanitizer report, exits non-zero. Seeded: the same arguments
// give the same inputs. .ci/run runs it after the build; test/fuzz-native.test.ts runs a smaller
// sample and proves that a sanitizer report and a mismatch do fail the run.
// Needs gcc (or $CC), libc6-dev, libdeflate-dev and zlib1g-dev. Where one is missing it says so;
// that is a failure under CI=true or OTAPACK_NATIVE_REQUIRED=1, a skip (exit 0) elsewhere.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
export const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer'];
// .ci/run exports OTAPACK_NATIVE_REQUIRED=1: there a missing compiler or library fails the run
export const required = () => process.env.OTAPACK_NATIVE_REQUIRED === '1';

/** Compiles the driver into a new temp folder: { exe, dir } or { missing: one line saying why }. */
export function buildDriver() {
  const cc = process.env.CC || 'cc';
  if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) return { missing: `no C compiler (${cc}); apt-get install gcc libc6-dev` };
  const dir = mkdtempSync(join(tmpdir(), 'otapack-walk-fuzz-'));
  const exe = join(dir, 'deflate-walk-fuzz');
  const r = spawnSync(cc, ['-std=c11', '-O1', '-g', ...SANITIZE, '-Wall', '-Wextra', '-Werror', '-I', join(root, 'native'), join(here, 'deflate-walk.c'), '-o', exe, '-ldeflate', '-lz', '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    const first = (r.stderr || r.error?.message || '').split('\n').find((l) => /error/i.test(l)) ?? `exit ${r.status}`;
    return { missing: `the fuzz driver did not compile: ${first.trim()} (apt-get install gcc libc6-dev libdeflate-dev zlib1g-dev)` };
  }
  return { exe, dir };
}

/** Runs the built driver: { status, stdout, stderr }. */
export function runDriver(exe, args = [], opts = {}) {
  const env = {
    ...process.env,
    ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23',
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  };
  const r = spawnSync(exe, args, { encoding: 'utf8', env, maxBuffer: 64 << 20, stdio: opts.inherit ? 'inherit' : 'pipe' });
  return { status: r.status ?? (r.signal ? 128 : 1), signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (!args.includes('--scale')) args.push('--scale', '5'); // about 20 s of one core
  const built = buildDriver();
  if (built.missing) {
    process.stderr.write(`fuzz:native: ${built.missing}\n`);
    process.exit(required() ? 1 : 0);
  }
  try {
    const r = runDriver(built.exe, args, { inherit: true });
    if (r.status !== 0) process.stderr.write(`fuzz:native: FAILED (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})\n`);
    process.exitCode = r.status === 0 ? 0 : 1;
  } finally {
    rmSync(built.dir, { recursive: true, force: true });
  }
}
