// ext2/3/4 inside a disk image, changed only through e2fsprogs (explicit argv, `image?offset=N`
// so the filesystem is edited in place inside the disk, no loop device). The superblock is read
// directly because it is a fixed 1 KiB structure and that avoids a process per probe.
import { open, stat } from 'node:fs/promises';
import { makeTempDir, unregisterTempDir } from '../util/cleanup.js';
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { OtapackError } from '../errors.js';
import { run, runBuffer, requireTool } from '../util/tools.js';

export interface Ext4Info {
  blockSize: number;
  blocks: number;
  freeBlocks: number;
  size: number; // bytes the filesystem spans
  uuid: string;
  label: string;
  features: string[];
  revision: number;
  clean: boolean;
}

const COMPAT: [number, string][] = [[0x4, 'has_journal'], [0x10, 'resize_inode'], [0x20, 'dir_index']];
const INCOMPAT: [number, string][] = [[0x2, 'filetype'], [0x4, 'needs_recovery'], [0x40, 'extent'], [0x80, '64bit'], [0x200, 'flex_bg'], [0x10000, 'inline_data'], [0x8000, 'large_dir']];
const RO_COMPAT: [number, string][] = [[0x1, 'sparse_super'], [0x2, 'large_file'], [0x8, 'huge_file'], [0x10, 'uninit_bg'], [0x20, 'dir_nlink'], [0x40, 'extra_isize'], [0x400, 'metadata_csum'], [0x1000, 'quota']];

export const spec = (image: string, offset: number): string => `${image}?offset=${offset}`;

/** Reads the superblock at `offset` in `image`; undefined when there is no ext2/3/4 there. */
export async function probeExt4(image: string, offset: number): Promise<Ext4Info | undefined> {
  const fh = await open(image, 'r');
  try {
    const sb = Buffer.alloc(1024);
    const { bytesRead } = await fh.read(sb, 0, 1024, offset + 1024);
    if (bytesRead < 1024 || sb.readUInt16LE(56) !== 0xef53) return undefined;
    const logBlock = sb.readUInt32LE(24);
    if (logBlock > 6) return undefined;
    const blockSize = 1024 << logBlock;
    const incompat = sb.readUInt32LE(96);
    const is64 = (incompat & 0x80) !== 0;
    const blocks = sb.readUInt32LE(4) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
    const freeBlocks = sb.readUInt32LE(12) + (is64 ? sb.readUInt32LE(0x158) * 2 ** 32 : 0);
    const flags = (v: number, t: [number, string][]): string[] => t.filter(([b]) => v & b).map(([, n]) => n);
    const u = sb.subarray(104, 120).toString('hex');
    return {
      blockSize,
      blocks,
      freeBlocks,
      size: blocks * blockSize,
      uuid: `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`,
      label: sb.subarray(120, 136).toString('latin1').replace(/\0.*$/s, ''),
      features: [...flags(sb.readUInt32LE(92), COMPAT), ...flags(incompat, INCOMPAT), ...flags(sb.readUInt32LE(100), RO_COMPAT)],
      revision: sb.readUInt32LE(76),
      clean: (sb.readUInt16LE(58) & 1) === 1,
    };
  } finally {
    await fh.close();
  }
}

/**
 * Every time e2fsprogs stamps (superblock write times, new inodes: E2FSPROGS_FAKE_TIME; e2fsck's
 * last-check time: E2FSCK_TIME), pinned so a reproducible convert is byte-identical.
 */
const fakeTime = (timestamp?: number): NodeJS.ProcessEnv => (timestamp !== undefined ? { E2FSPROGS_FAKE_TIME: String(timestamp), E2FSCK_TIME: String(timestamp) } : {});

/**
 * e2fsck: `fix` repairs (-fy) our own copy, otherwise read-only (-fn). Exit 0/1 are success
 * (1 = errors corrected); anything else is a corrupt filesystem.
 */
export async function fsck(image: string, offset: number, what: string, fix: boolean, timestamp?: number): Promise<void> {
  const r = await run('e2fsck', [fix ? '-fy' : '-fn', spec(image, offset)], { okCodes: [0, 1, 2, 4, 8, 12, 16, 32, 128], what: `e2fsck of ${what}`, env: fakeTime(timestamp) });
  if (r.exitCode > (fix ? 1 : 0)) {
    const line = (r.stdout + r.stderr).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('e2fsck ') && !/^Pass \d/.test(l))[0] ?? '';
    throw new OtapackError('INPUT', `${what}: the ext4 filesystem ${fix ? 'has errors e2fsck cannot repair' : 'has errors'} (e2fsck exit ${r.exitCode}${line ? `: ${line}` : ''})`);
  }
}

/**
 * Grows (or shrinks) the filesystem at `offset` in `image` to exactly `bytes`.
 *
 * A plain file given to resize2fs (1.47) is afterwards truncated or extended to the new
 * filesystem size, offset ignored: inside a disk image that cuts off everything past that point.
 * resize2fs only does this through the descriptor it opens first and only when that descriptor
 * is above 0 (`fd > 0` in resize/main.c), so with stdin closed it gets descriptor 0 and leaves
 * the file's size alone while resizing through its own I/O channel. Whether that held is
 * checked: the result says if the file kept its size (if not, the caller must rebuild what lay
 * past the filesystem; convert then falls back to resizing a copy of the filesystem).
 */
export async function resize(image: string, offset: number, bytes: number, blockSize: number, what: string, timestamp?: number): Promise<{ fileIntact: boolean }> {
  const blocks = Math.floor(bytes / blockSize);
  const args = ['-f', spec(image, offset), `${blocks}`];
  if (offset === 0) {
    await run('resize2fs', args, { what: `resize2fs of ${what}`, env: fakeTime(timestamp) });
    return { fileIntact: true };
  }
  const before = (await stat(image)).size;
  await run('sh', ['-c', 'exec "$0" "$@" 0<&-', requireTool('resize2fs'), ...args], { what: `resize2fs of ${what}`, env: fakeTime(timestamp) });
  return { fileIntact: (await stat(image)).size === before };
}

export interface MkfsOptions {
  label?: string;
  /** filesystem UUID; also the directory hash seed, so the same UUID gives the same bytes */
  uuid?: string;
  seedDir?: string;
  blockSize?: number;
  timestamp?: number;
}

/** Creates a fresh ext4 of `bytes` at `offset`, optionally populated from a host directory. */
export async function mkfs(image: string, offset: number, bytes: number, o: MkfsOptions = {}): Promise<void> {
  const bs = o.blockSize ?? 4096;
  const args = ['-q', '-F', '-t', 'ext4', '-b', String(bs), '-E', `offset=${offset},root_owner=0:0${o.uuid ? `,hash_seed=${o.uuid}` : ''}`];
  if (o.label) args.push('-L', o.label);
  if (o.uuid) args.push('-U', o.uuid);
  if (o.seedDir) args.push('-d', o.seedDir);
  args.push(image, `${Math.floor(bytes / bs)}`);
  await run('mke2fs', args, { env: fakeTime(o.timestamp), what: 'mke2fs' });
}

/**
 * Runs debugfs commands against the filesystem. debugfs exits 0 even when a command fails, so
 * its output is scanned for the error lines it prints (unless `errorsAreAnswers`: a stat of an
 * absent path is an answer, not a failure).
 */
export async function debugfs(image: string, offset: number, commands: string[], o: { write?: boolean; what: string; timestamp?: number; errorsAreAnswers?: boolean }): Promise<string> {
  const dir = makeTempDir(tmpdir(), 'otapack-debugfs-');
  try {
    const cmdFile = join(dir, 'commands');
    await writeFile(cmdFile, commands.join('\n') + '\n');
    const args = [...(o.write ? ['-w'] : []), '-f', cmdFile, spec(image, offset)];
    const r = await run('debugfs', args, { what: `debugfs on ${o.what}`, env: fakeTime(o.timestamp) });
    const errs = r.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l) && !/^debugfs:/.test(l));
    if (errs.length && !o.errorsAreAnswers) throw new OtapackError('TOOL', `debugfs on ${o.what}: ${errs[0]!.trim()}`);
    return r.stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
    unregisterTempDir(dir);
  }
}

/** Quotes a path for a debugfs command line (it understands double quotes). */
export const q = (p: string): string => {
  if (/["\n\r\0]/.test(p)) throw new OtapackError('CONFIG', `path ${JSON.stringify(p)} cannot be written by debugfs`);
  return `"${p}"`;
};

export interface Ext4Stat { type: 'file' | 'dir' | 'symlink' | 'other'; size: number; mode: number; target?: string }

/** Type of a path inside the filesystem, or undefined when absent. Follows no symlinks. */
export async function statPath(image: string, offset: number, path: string, what: string): Promise<Ext4Stat | undefined> {
  const r = await run('debugfs', ['-R', `stat ${q(path)}`, spec(image, offset)], { what: `debugfs on ${what}` });
  if (/File not found by ext2_lookup|not found/.test(r.stderr)) return undefined;
  return parseStat(r.stdout);
}

function parseStat(out: string): Ext4Stat | undefined {
  if (!/Inode: \d+/.test(out)) return undefined;
  const type = /Type: (\w+)/.exec(out)?.[1];
  const mode = parseInt(/Mode:\s+0?([0-7]+)/.exec(out)?.[1] ?? '0', 8);
  const size = Number(/Size: (\d+)/.exec(out)?.[1] ?? 0);
  const target = /Fast link dest: "(.*)"/.exec(out)?.[1];
  return { type: type === 'regular' ? 'file' : type === 'directory' ? 'dir' : type === 'symlink' ? 'symlink' : 'other', size, mode, target };
}

/** What is known of a filesystem's paths (undefined: absent), filled by statPaths and resolvePath. */
export type StatCache = Map<string, Ext4Stat | undefined>;

/**
 * Stats many paths in ONE debugfs run (each run opens the filesystem anew, some 10 ms on a GiB
 * rootfs) and adds them to `cache`. debugfs -f echoes every command as `debugfs: stat "<path>"`
 * on stdout before its output; a path that is absent prints nothing there.
 */
export async function statPaths(image: string, offset: number, paths: string[], what: string, cache: StatCache = new Map()): Promise<StatCache> {
  const todo = [...new Set(paths)].filter((p) => !cache.has(p));
  if (!todo.length) return cache;
  const out = await debugfs(image, offset, todo.map((p) => `stat ${q(p)}`), { what, errorsAreAnswers: true });
  const found = new Map<string, string>();
  for (const part of out.split(/^debugfs: /m).slice(1)) {
    const nl = part.indexOf('\n');
    const m = /^stat "(.*)"$/.exec(nl < 0 ? part : part.slice(0, nl));
    if (m) found.set(m[1]!, nl < 0 ? '' : part.slice(nl + 1));
  }
  for (const p of todo) {
    if (!found.has(p)) throw new OtapackError('TOOL', `debugfs on ${what}: no answer for stat ${p}`);
    cache.set(p, parseStat(found.get(p)!));
  }
  return cache;
}

/**
 * Resolves a path inside the filesystem, following symlinks (absolute ones relative to its root).
 * With a cache, paths it holds are not asked again and new answers are added to it.
 */
export async function resolvePath(image: string, offset: number, path: string, what: string, cache?: StatCache): Promise<{ path: string; stat: Ext4Stat } | undefined> {
  const statOf = async (p: string): Promise<Ext4Stat | undefined> => {
    if (cache?.has(p)) return cache.get(p);
    const s = await statPath(image, offset, p, what);
    cache?.set(p, s);
    return s;
  };
  let cur = path;
  for (let i = 0; i < 16; i++) {
    const s = await statOf(cur);
    if (!s) return undefined;
    if (s.type !== 'symlink') return { path: cur, stat: s };
    let t = s.target;
    if (t === undefined) {
      // slow symlink: the target is the file content
      t = (await readFile(image, offset, cur, what)).toString('utf8');
    }
    cur = t.startsWith('/') ? t : `${cur.replace(/\/[^/]*$/, '')}/${t}`;
    cur = normalize(cur);
  }
  return undefined;
}

const normalize = (p: string): string => {
  const out: string[] = [];
  for (const s of p.split('/')) {
    if (!s || s === '.') continue;
    if (s === '..') out.pop();
    else out.push(s);
  }
  return '/' + out.join('/');
};

/** Reads a (small) file from the filesystem. */
export async function readFile(image: string, offset: number, path: string, what: string): Promise<Buffer> {
  const r = await runBuffer('debugfs', ['-R', `cat ${q(path)}`, spec(image, offset)]);
  if (/not found|No such/.test(r.stderr)) throw new OtapackError('INPUT', `${what}: ${path} not found in the filesystem`);
  return r.stdout;
}

/** Lists a directory: name → type letter from debugfs `ls -p` (mode decides). */
export async function listDir(image: string, offset: number, path: string, what: string): Promise<{ name: string; mode: number }[]> {
  const r = await run('debugfs', ['-R', `ls -p ${q(path)}`, spec(image, offset)], { what: `debugfs on ${what}` });
  const out: { name: string; mode: number }[] = [];
  for (const line of r.stdout.split('\n')) {
    // /inode/mode/uid/gid/name/size/
    const m = /^\/(\d+)\/(\d+)\/\d+\/\d+\/(.*)\/\d*\/$/.exec(line.trim());
    if (m && m[3] !== '.' && m[3] !== '..') out.push({ name: m[3]!, mode: parseInt(m[2]!, 8) });
  }
  return out;
}

/**
 * Byte ranges (relative to the filesystem start) of every block in use, from the block bitmaps
 * as dumpe2fs prints them: the bmap of a converted disk maps exactly these.
 */
export async function usedRanges(image: string, offset: number, info: Ext4Info): Promise<[number, number][]> {
  const r = await run('dumpe2fs', [spec(image, offset)], { what: 'dumpe2fs' });
  const free: [number, number][] = [];
  for (const m of r.stdout.matchAll(/^\s+Free blocks: (.*)$/gm)) {
    for (const part of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      free.push([a!, (b ?? a)!]);
    }
  }
  free.sort((x, y) => x[0] - y[0]);
  const used: [number, number][] = [];
  let next = 0;
  for (const [a, b] of free) {
    if (a > next) used.push([next * info.blockSize, a * info.blockSize]);
    next = Math.max(next, b + 1);
  }
  if (next < info.blocks) used.push([next * info.blockSize, info.blocks * info.blockSize]);
  return used;
}
