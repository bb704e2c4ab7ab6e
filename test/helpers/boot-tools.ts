// Small helpers for the boot-layer tests: temp dirs and running the real tools (explicit argv).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ToolResult { status: number; stdout: string; stderr: string; out: string }

/** Runs a program to completion (never through a shell); returns status and output. */
export function tool(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string; timeoutMs?: number } = {}): ToolResult {
  const r = spawnSync(cmd, args, {
    env: { ...process.env, LC_ALL: 'C', ...opts.env },
    input: opts.input,
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 60_000,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

/** Like tool() but throws with the output when the exit status is not 0. */
export function must(cmd: string, args: string[], opts: Parameters<typeof tool>[2] = {}): ToolResult {
  const r = tool(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} → exit ${r.status}\n${r.out}`);
  return r;
}

export function makeTmp(prefix: string): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `otapack-${prefix}-`));
  return { dir, path: (n) => join(dir, n), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Saves a log under test-artifacts/ (kept for failed runs). */
export function saveArtifact(name: string, content: string | Buffer): string {
  const dir = join(process.cwd(), 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
