// Puts files, directories and symlinks into an ext4 filesystem inside a disk image with one
// `debugfs -w` run. Parent directories are resolved through symlinks first (merged /usr:
// /sbin -> usr/sbin) because debugfs does not follow them when writing. Every new inode gets
// owner root and, with a timestamp, fixed times, so the result is reproducible.
import { rm, writeFile, readdir, lstat, readlink, copyFile } from 'node:fs/promises';
import { makeTempDir, unregisterTempDir } from '../util/cleanup.js';
import { join, posix } from 'node:path';
import { tmpdir } from 'node:os';
import { OtapackError } from '../errors.js';
import { debugfs, q, resolvePath, statPaths, type StatCache } from './ext4.js';

export interface FsEntry {
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  /** File content, or a host file/directory to copy (directories recursively). */
  data?: string | Buffer;
  source?: string;
  target?: string;
  mode: number;
  uid?: number;
  gid?: number;
  /** May take the place of an empty directory (debugfs rmdir refuses a non-empty one). */
  replaceEmptyDir?: boolean;
}

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const;

/** Expands host directories given as `source` into one entry per file/dir/symlink. */
async function expand(e: FsEntry): Promise<FsEntry[]> {
  if (!e.source) return [e];
  const st = await lstat(e.source);
  if (!st.isDirectory()) return [{ ...e, kind: 'file' }];
  const out: FsEntry[] = [{ path: e.path, kind: 'dir', mode: e.mode === 0o644 ? 0o755 : e.mode, uid: e.uid, gid: e.gid }];
  for (const name of (await readdir(e.source)).sort()) {
    const src = join(e.source, name);
    const s = await lstat(src);
    const path = posix.join(e.path, name);
    if (s.isDirectory()) out.push(...(await expand({ path, kind: 'dir', source: src, mode: s.mode & 0o7777, uid: e.uid, gid: e.gid })));
    else if (s.isSymbolicLink()) out.push({ path, kind: 'symlink', target: await readlink(src), mode: 0o777, uid: e.uid, gid: e.gid });
    else if (s.isFile()) out.push({ path, kind: 'file', source: src, mode: s.mode & 0o7777, uid: e.uid, gid: e.gid });
  }
  return out;
}

export async function injectEntries(image: string, offset: number, entries: FsEntry[], o: { what: string; timestamp?: number }): Promise<void> {
  const all: FsEntry[] = [];
  for (const e of entries) all.push(...(await expand(e)));
  const work = makeTempDir(tmpdir(), 'otapack-inject-');
  try {
    // every path and its parent folders as they are named, stat'ed in one debugfs run (symlinked
    // folders such as merged /usr's /sbin are then followed with one more run each)
    const stats: StatCache = new Map();
    const named = new Set<string>();
    for (const e of all) {
      if (!e.path.startsWith('/') || e.path.split('/').includes('..')) throw new OtapackError('CONFIG', `${e.path}: target paths must be absolute, without ".."`);
      for (let p = e.path; p !== '/'; p = posix.dirname(p)) named.add(p);
    }
    await statPaths(image, offset, [...named], o.what, stats);
    // resolve each parent directory once; create missing ones in order
    const known = new Map<string, string | null>(); // device path -> resolved path (null: will be created)
    const cmds: string[] = [];
    const resolveDir = async (dir: string): Promise<string> => {
      if (dir === '/') return '/';
      if (known.has(dir)) return known.get(dir) ?? dir;
      const parent = await resolveDir(posix.dirname(dir));
      const here = posix.join(parent, posix.basename(dir));
      if (known.get(posix.dirname(dir)) === null) {
        // the parent is being created: so is this
        known.set(dir, null);
        cmds.push(`mkdir ${q(here)}`);
        return here;
      }
      const r = await resolvePath(image, offset, here, o.what, stats);
      if (r && r.stat.type === 'dir') {
        known.set(dir, r.path);
        return r.path;
      }
      if (r) throw new OtapackError('INPUT', `${o.what}: cannot install under ${dir}: ${r.path} is not a directory`);
      known.set(dir, null);
      cmds.push(`mkdir ${q(here)}`);
      return here;
    };
    const stamp = (p: string, kind: FsEntry['kind'], mode: number, uid = 0, gid = 0): void => {
      cmds.push(`sif ${q(p)} mode 0${(TYPE_BITS[kind] | (mode & 0o7777)).toString(8)}`);
      cmds.push(`sif ${q(p)} uid ${uid}`, `sif ${q(p)} gid ${gid}`);
      if (o.timestamp !== undefined) for (const f of ['atime', 'mtime', 'ctime']) cmds.push(`sif ${q(p)} ${f} @${o.timestamp}`);
    };
    let n = 0;
    for (const e of all) {
      if (e.kind === 'dir') {
        const resolved = await resolveDir(e.path);
        if (known.get(e.path) === null) stamp(resolved, 'dir', e.mode, e.uid, e.gid);
        continue;
      }
      const dir = await resolveDir(posix.dirname(e.path));
      const p = posix.join(dir, posix.basename(e.path));
      const exists = known.get(posix.dirname(e.path)) === null ? undefined : (await statPaths(image, offset, [p], o.what, stats)).get(p);
      if (exists?.type === 'dir' && !e.replaceEmptyDir) throw new OtapackError('INPUT', `${o.what}: ${e.path} is a directory in the rootfs; cannot replace it with a ${e.kind}`);
      if (exists) cmds.push(exists.type === 'dir' ? `rmdir ${q(p)}` : `rm ${q(p)}`);
      if (e.kind === 'symlink') {
        cmds.push(`symlink ${q(p)} ${q(e.target!)}`);
        cmds.push(`sif ${q(p)} uid ${e.uid ?? 0}`, `sif ${q(p)} gid ${e.gid ?? 0}`);
        if (o.timestamp !== undefined) cmds.push(`sif ${q(p)} mtime @${o.timestamp}`);
        continue;
      }
      const local = join(work, `f${n++}`);
      if (e.source) await copyFile(e.source, local);
      else await writeFile(local, e.data ?? '');
      cmds.push(`write ${q(local)} ${q(p)}`);
      stamp(p, 'file', e.mode, e.uid, e.gid);
    }
    if (cmds.length) await debugfs(image, offset, cmds, { write: true, what: o.what, timestamp: o.timestamp });
  } finally {
    await rm(work, { recursive: true, force: true });
    unregisterTempDir(work);
  }
}
