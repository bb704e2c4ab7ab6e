// Runs the built CLI (dist/) as a user would, capturing everything.
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin/otapack');

export interface CliResult { code: number; stdout: string; stderr: string }

/** Every run of this test file that exited 70 (internal error): checked after each file (test/setup.ts). */
const internalErrors: string[] = [];

/** The runs so far that exited 70, each as "otapack ARGS -> the error line"; empties the list. */
export function takeInternalErrors(): string[] {
  return internalErrors.splice(0);
}

export async function otapack(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; input?: string } = {}): Promise<CliResult> {
  const r = await execa(process.execPath, [BIN, ...args], {
    reject: false,
    env: { CI: 'true', NO_COLOR: '1', ...opts.env },
    extendEnv: true,
    cwd: opts.cwd,
    input: opts.input,
    timeout: 600_000,
  });
  const res = { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  // exit 70 is a bug whatever the input: no test may pass while one happened
  if (res.code === 70) internalErrors.push(`otapack ${args.join(' ')} -> ${res.stderr.trim().split('\n').pop()}`);
  return res;
}

const made: string[] = [];

/** Removes the folders tmp() made (test/setup.ts runs it after each file; OTAPACK_KEEP_TEST_TMP=1 keeps them). */
export function cleanupTmp(): void {
  if (process.env.OTAPACK_KEEP_TEST_TMP === '1') return;
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function tmp(prefix = 'otapack-test-'): string {
  const d = mkdtempSync(join(process.env.OTAPACK_TEST_TMP ?? tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Asserts the shape every failing command must have: one clear line, no stack trace. */
export function expectCleanFailure(r: CliResult, code: number, pattern: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  const msg = `exit ${r.code}, stderr:\n${r.stderr}`;
  if (r.code !== code) throw new Error(`expected exit ${code}; ${msg}`);
  if (!pattern.test(r.stderr)) throw new Error(`stderr does not match ${pattern}; ${msg}`);
  if (/\n\s+at .+\(.+:\d+:\d+\)/.test(r.stderr) || /node:internal/.test(r.stderr)) throw new Error(`stack trace printed; ${msg}`);
  if (lines.filter((l) => /error/i.test(l)).length !== 1) throw new Error(`expected exactly one error line; ${msg}`);
}
