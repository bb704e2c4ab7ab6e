// Every external program is run through here: an explicit argv (never a shell string), its
// stderr kept for the error message, and its failure turned into a one-line TOOL error.
import { execa, type Options, type ResultPromise } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { OtapackError } from '../errors.js';
import { registerChild } from './cleanup.js';

/** Debian package that provides each tool, for "install it" hints. */
const PACKAGES: Record<string, string> = {
  zstd: 'zstd', pigz: 'pigz', xz: 'xz-utils',
  mke2fs: 'e2fsprogs', debugfs: 'e2fsprogs', resize2fs: 'e2fsprogs', e2fsck: 'e2fsprogs', tune2fs: 'e2fsprogs', dumpe2fs: 'e2fsprogs',
  mcopy: 'mtools', mdir: 'mtools', mmd: 'mtools', mdel: 'mtools', mtype: 'mtools', mattrib: 'mtools', minfo: 'mtools',
  'mkfs.vfat': 'dosfstools', 'fsck.vfat': 'dosfstools',
  'pkcs11-tool': 'opensc',
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
  if (!p) throw new OtapackError('TOOL', `${name} not found: install the Debian package "${PACKAGES[name] ?? name}"`);
  return p;
}

function lastLines(text: string | undefined, n = 2): string {
  return (text ?? '').trim().split('\n').filter((l) => l.trim()).slice(-n).join(' / ').slice(0, 400);
}

export interface RunResult { stdout: string; stderr: string; exitCode: number; signal?: string }

/**
 * Secrets otapack reads from the environment. Children never inherit them: a tool (or a user's
 * signing command) gets only what otapack hands it explicitly.
 */
export const SECRET_ENV = ['OTAPACK_SIGNING_KEY', 'OTAPACK_KEY_PASSPHRASE', 'OTAPACK_AES_KEY', 'OTAPACK_PKCS11_PIN'] as const;
const scrubbed = (): Record<string, undefined> => Object.fromEntries(SECRET_ENV.map((k) => [k, undefined]));

/**
 * Runs a tool to completion, capturing its output. Non-zero exit is a TOOL error naming the tool,
 * unless `okCodes` lists it (e2fsck uses exit codes as results).
 */
export async function run(name: string, args: string[], opts: { input?: string | Buffer; okCodes?: number[]; env?: NodeJS.ProcessEnv; cwd?: string; what?: string } = {}): Promise<RunResult> {
  const r = await runCapture(requireTool(name), args, opts);
  const okCodes = opts.okCodes ?? [0];
  if (!okCodes.includes(r.exitCode)) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    const text = lastLines(r.stderr) || lastLines(r.stdout) || 'no output';
    // the tool ran out of room writing our output: that is an I/O condition, not a tool fault
    const io = r.signal === 'SIGXFSZ' || /No space left on device|File too large|Read-only file system|Disk quota exceeded/i.test(text);
    throw new OtapackError(io ? 'IO' : 'TOOL', `${opts.what ?? name} failed (${why}): ${r.signal === 'SIGXFSZ' ? 'file too large for the file size limit (ulimit -f)' : text}`);
  }
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
}

export interface BinaryRunResult { stdout: Buffer; stderr: string; exitCode: number; signal?: string; notFound?: boolean }

/**
 * Runs a program (absolute path or name on PATH) with binary stdin/stdout and returns whatever
 * happened, exit status included: for callers that turn a tool's failures into their own
 * messages (PKCS#11 tokens, signing commands). Secrets in the environment are not inherited.
 */
export async function runBinary(bin: string, args: string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<BinaryRunResult> {
  const child = execa(bin, args, {
    input: opts.input ?? Buffer.alloc(0),
    env: { ...scrubbed(), LC_ALL: 'C', ...opts.env },
    cwd: opts.cwd,
    reject: false,
    stripFinalNewline: false,
    encoding: 'buffer',
  });
  const unregister = registerChild(child);
  const r = await child;
  unregister();
  const notFound = (r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String((r as { originalMessage?: string }).originalMessage ?? ''));
  return {
    stdout: Buffer.from(r.stdout as Uint8Array ?? []),
    stderr: Buffer.from(r.stderr as Uint8Array ?? []).toString('utf8'),
    exitCode: r.exitCode ?? -1,
    signal: r.signal ?? undefined,
    notFound,
  };
}

async function runCapture(bin: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<RunResult> {
  const child = execa(bin, args, {
    input: opts.input,
    env: { ...scrubbed(), LC_ALL: 'C', ...opts.env },
    cwd: opts.cwd,
    reject: false,
    stripFinalNewline: false,
    encoding: 'utf8',
  });
  const unregister = registerChild(child);
  const r = await child;
  unregister();
  return { stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode ?? -1, signal: r.signal ?? undefined };
}

/** Starts a long-running tool whose stdout is streamed; the caller awaits `.done`. */
export function spawnStream(name: string, args: string[], opts: Options = {}): { child: ResultPromise; done: Promise<void> } {
  const bin = requireTool(name);
  const child = execa(bin, args, { buffer: { stdout: false, stderr: true }, reject: false, encoding: 'buffer', ...opts, env: { ...scrubbed(), ...opts.env } } as Options);
  const unregister = registerChild(child);
  const done = (async () => {
    const r = await child;
    unregister();
    if (r.exitCode !== 0) {
      const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
      const err = r.stderr instanceof Uint8Array ? Buffer.from(r.stderr).toString() : String(r.stderr ?? '');
      throw new OtapackError('TOOL', `${name} failed (${why}): ${lastLines(err) || 'no output'}`);
    }
  })();
  done.catch(() => {}); // observed by the caller; avoid an unhandled rejection in between
  return { child, done };
}
