// Every external program is run through here: an explicit argv (never a shell string), its
// stderr kept for the error message, and its failure turned into a one-line TOOL error.
// Built on node:child_process directly: it starts in a fraction of the time a process wrapper
// library takes to load, and streams child output without extra layers.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { OtapackError, errnoOf } from '../errors.js';
import { registerChild } from './cleanup.js';

/** Debian package that provides each tool, for "install it" hints. */
const PACKAGES: Record<string, string> = {
  zstd: 'zstd', pigz: 'pigz', xz: 'xz-utils',
  mke2fs: 'e2fsprogs', debugfs: 'e2fsprogs', resize2fs: 'e2fsprogs', e2fsck: 'e2fsprogs', tune2fs: 'e2fsprogs', dumpe2fs: 'e2fsprogs', filefrag: 'e2fsprogs',
  mcopy: 'mtools', mdir: 'mtools', mmd: 'mtools', mdel: 'mtools', mtype: 'mtools', mattrib: 'mtools', minfo: 'mtools',
  'mkfs.vfat': 'dosfstools', 'fsck.vfat': 'dosfstools',
  'pkcs11-tool': 'opensc',
  zck: 'zchunk', zck_read_header: 'zchunk', mkfifo: 'coreutils',
  'grub-mkimage': 'grub-common',
};

const cache = new Map<string, string | null>();

/** Absolute path of a program on PATH (plus the sbin directories), or null. */
export function which(name: string): string | null {
  if (cache.has(name)) return cache.get(name)!;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  let found: string | null = null;
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      found = p;
      break;
    } catch { /* next */ }
  }
  cache.set(name, found);
  return found;
}

export function requireTool(name: string): string {
  const p = which(name);
  if (!p) throw new OtapackError('TOOL', `${name} not found: install the Debian package "${PACKAGES[name] ?? name}"`, { tool: name, reason: 'tool-missing' });
  return p;
}

/** A program that could not be started (EACCES, ENOEXEC, EMFILE …): a TOOL error naming it. */
function startError(name: string, e: NodeJS.ErrnoException): OtapackError {
  return new OtapackError('TOOL', `${name} failed to start: ${e.code ?? e.message}`, { tool: name, reason: errnoOf(e) ?? 'tool-start-failed', cause: e });
}

/** The tail of a tool's output kept on its error (for the message and --debug; never parsed by callers for control flow). */
const tail = (text: string): string => text.trim().slice(-4000);

function lastLines(text: string | undefined, n = 2): string {
  return (text ?? '').trim().split('\n').filter((l) => l.trim()).slice(-n).join(' / ').slice(0, 400);
}

export interface RunResult { stdout: string; stderr: string; exitCode: number; signal?: string }
export interface RunBufferResult { stdout: Buffer; stderr: string; exitCode: number }
export interface BinaryRunResult { stdout: Buffer; stderr: string; exitCode: number; signal?: string; notFound?: boolean }

/**
 * Secrets otapack reads from the environment. Children never inherit them: a tool (or a user's
 * signing command) gets only what otapack hands it explicitly.
 */
export const SECRET_ENV = ['OTAPACK_SIGNING_KEY', 'OTAPACK_KEY_PASSPHRASE', 'OTAPACK_AES_KEY', 'OTAPACK_PKCS11_PIN'] as const;

/** The environment a child gets: ours without the secrets, LC_ALL=C, then what the caller adds. */
function childEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
  for (const k of SECRET_ENV) delete env[k];
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

interface RunOptions { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string }

interface Captured { stdout: Buffer; stderr: Buffer; exitCode: number; signal: NodeJS.Signals | null; notFound?: boolean }

/** Runs a program to completion with its output captured; never throws for an exit status. */
function capture(bin: string, args: string[], opts: RunOptions, onStartError?: (e: NodeJS.ErrnoException) => Captured | undefined): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: childEnv(opts.env),
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const unregister = registerChild(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {}); // the tool may exit without reading it all
      child.stdin!.end(opts.input);
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      unregister();
      const handled = onStartError?.(e);
      if (handled) resolve(handled);
      else reject(startError(bin, e));
    });
    child.on('close', (code, signal) => {
      unregister();
      resolve({ stdout: Buffer.concat(out), stderr: Buffer.concat(err), exitCode: code ?? -1, signal });
    });
  });
}

/** The words tools print for an I/O condition (strerror texts), with the errno name. */
const IO_WORDS: [RegExp, string][] = [[/No space left on device/i, 'ENOSPC'], [/File too large/i, 'EFBIG'], [/Read-only file system/i, 'EROFS'], [/Disk quota exceeded/i, 'EDQUOT']];

/**
 * Runs a tool to completion, capturing its output. Non-zero exit is a TOOL error naming the tool,
 * unless `okCodes` lists it (e2fsck uses exit codes as results).
 */
export async function run(name: string, args: string[], opts: RunOptions & { okCodes?: number[]; what?: string } = {}): Promise<RunResult> {
  const r = await capture(requireTool(name), args, opts);
  const stdout = r.stdout.toString('utf8');
  const stderr = r.stderr.toString('utf8');
  const okCodes = opts.okCodes ?? [0];
  if (!okCodes.includes(r.exitCode)) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    const text = lastLines(stderr) || lastLines(stdout) || 'no output';
    // the tool ran out of room writing our output: that is an I/O condition, not a tool fault
    const io = r.signal === 'SIGXFSZ' ? 'EFBIG' : IO_WORDS.find(([re]) => re.test(text))?.[1];
    throw new OtapackError(io ? 'IO' : 'TOOL', `${opts.what ?? name} failed (${why}): ${r.signal === 'SIGXFSZ' ? 'file too large for the file size limit (ulimit -f)' : text}`,
      { tool: name, status: r.signal ?? r.exitCode, reason: io ?? 'tool-failed', toolOutput: tail(stderr || stdout) });
  }
  return { stdout, stderr, exitCode: r.exitCode, signal: r.signal ?? undefined };
}

/** Runs a tool and returns its binary stdout, whatever its exit status (the caller judges). */
export async function runBuffer(name: string, args: string[], opts: RunOptions = {}): Promise<RunBufferResult> {
  const r = await capture(requireTool(name), args, opts);
  return { stdout: r.stdout, stderr: r.stderr.toString('utf8'), exitCode: r.exitCode };
}

/**
 * Runs a program (absolute path or name on PATH) with binary stdin/stdout and returns whatever
 * happened, exit status included: for callers that turn a tool's failures into their own
 * messages (PKCS#11 tokens, signing commands). Secrets in the environment are not inherited.
 */
export async function runBinary(bin: string, args: string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<BinaryRunResult> {
  const r = await capture(bin, args, { ...opts, input: opts.input ?? Buffer.alloc(0) }, (e) =>
    e.code === 'ENOENT' || e.code === 'EACCES' ? { stdout: Buffer.alloc(0), stderr: Buffer.from(e.message), exitCode: -1, signal: null, notFound: true } : undefined);
  return { stdout: r.stdout, stderr: r.stderr.toString('utf8'), exitCode: r.exitCode, signal: r.signal ?? undefined, notFound: r.notFound };
}

export interface StreamOptions { stdin?: 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv }

/** Starts a long-running tool whose stdout is streamed; the caller awaits `.done`. */
export function spawnStream(name: string, args: string[], opts: StreamOptions = {}): { child: ChildProcess; done: Promise<void> } {
  const bin = requireTool(name);
  const child = spawn(bin, args, { env: childEnv(opts.env), stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'] });
  const unregister = registerChild(child);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-65536); });
  const stderrEnd = new Promise<void>((r) => { child.stderr!.on('close', r); child.stderr!.on('error', () => r()); });
  // settle on the exit status (not on stdout's end: a consumer that stopped reading must not hang us)
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => { unregister(); reject(startError(name, e)); });
    child.on('exit', (code, signal) => {
      unregister();
      void stderrEnd.then(() => {
        if (code === 0) return resolve();
        const why = signal ? `killed by ${signal}` : `exit ${code}`;
        reject(new OtapackError('TOOL', `${name} failed (${why}): ${lastLines(err) || 'no output'}`, { tool: name, status: signal ?? code ?? -1, reason: 'tool-failed', toolOutput: tail(err) }));
      });
    });
  });
  done.catch(() => {}); // observed by the caller; avoid an unhandled rejection in between
  return { child, done };
}
