// Outputs are written to a temp file in the destination folder, fsynced, then renamed over the
// final name: a reader (or a crash) sees the old file or the complete new one, never a torso.
import { rename, unlink, stat, mkdir, rmdir, type FileHandle } from 'node:fs/promises';
import { openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { ioError } from '../errors.js';
import { readInto } from './io.js';
import { openTemp, unregisterTemp, commitOutputs, registerCreatedDirs, unregisterCreatedDirs } from './cleanup.js';

export class AtomicFile {
  private constructor(
    readonly finalPath: string,
    readonly tempPath: string,
    readonly handle: FileHandle,
  ) {}

  static async create(finalPath: string, mode = 0o644): Promise<AtomicFile> {
    const dir = dirname(finalPath);
    try {
      const s = await stat(finalPath);
      if (s.isDirectory()) throw ioError('IO', finalPath, Object.assign(new Error(), { code: 'EISDIR' }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('IO', finalPath, e);
    }
    const tempPath = join(dir, `.${basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    let handle: FileHandle;
    try {
      handle = await openTemp(tempPath, 'wx+', mode);
    } catch (e) {
      throw ioError('IO', `cannot write ${finalPath}`, e);
    }
    return new AtomicFile(finalPath, tempPath, handle);
  }

  /**
   * fsync the temp file and, meanwhile, read its first `size` bytes back for their SHA-256 (for
   * a format whose head is written last): the disk and the CPU work at once, and commit()'s own
   * fsync then finds nothing left to write.
   */
  async syncAndHash(size: number): Promise<string> {
    const [, sha256] = await Promise.all([this.handle.sync(), hashHandle(this.handle, size)]);
    return sha256;
  }

  async commit(): Promise<void> {
    try {
      await this.handle.sync();
      await this.handle.close();
      await commitOutputs(async () => {
        await rename(this.tempPath, this.finalPath);
        unregisterTemp(this.tempPath);
      });
    } catch (e) {
      await this.abort();
      throw ioError('IO', `cannot write ${this.finalPath}`, e);
    }
    syncDir(dirname(this.finalPath));
  }

  async abort(): Promise<void> {
    try { await this.handle.close(); } catch { /* closed already */ }
    try { await unlink(this.tempPath); } catch { /* gone already */ }
    unregisterTemp(this.tempPath);
  }
}

/** fsync a directory so a rename in it survives power loss; best effort (not all FSes allow it). */
export function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* ignore */ }
}

/** Writes a whole small file atomically. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const f = await AtomicFile.create(path, mode);
  try {
    await f.handle.writeFile(data);
  } catch (e) {
    await f.abort();
    throw ioError('IO', `cannot write ${path}`, e);
  }
  await f.commit();
}

export interface CreatedDirs {
  /** Removes the folders this call created, deepest first, as long as they are empty. */
  undo(): Promise<void>;
  /** The run succeeded: the folders stay. */
  keep(): void;
}

/** mkdir -p that remembers what it created, so a failed run can leave no new empty folder behind. */
export async function makeOutputDir(dir: string): Promise<CreatedDirs> {
  const abs = resolve(dir);
  const first = await mkdir(abs, { recursive: true }).catch((e) => { throw ioError('IO', `cannot create ${dir}`, e); });
  const created: string[] = [];
  if (first) for (let d = abs; d !== dirname(resolve(first)) && d !== dirname(d); d = dirname(d)) created.unshift(d);
  registerCreatedDirs(created);
  return {
    async undo() {
      unregisterCreatedDirs(created);
      for (const d of [...created].reverse()) await rmdir(d).catch(() => {});
    },
    keep() { unregisterCreatedDirs(created); },
  };
}

export interface StagedFiles {
  /** Renames every file into place (inside the caller's commitOutputs). */
  commit(): Promise<void>;
  /** Removes the temp files and the folders made for them. */
  abort(): Promise<void>;
}

/** Writes small files to temp names next to their final ones (folders made as needed); nothing is visible until commit. */
export async function stageFiles(files: { path: string; data: string | Uint8Array; mode?: number }[]): Promise<StagedFiles> {
  const staged: AtomicFile[] = [];
  const dirs: CreatedDirs[] = [];
  const abort = async (): Promise<void> => {
    for (const f of staged) await f.abort();
    for (const d of dirs.reverse()) await d.undo();
  };
  try {
    for (const f of files) {
      dirs.push(await makeOutputDir(dirname(f.path)));
      const a = await AtomicFile.create(f.path, f.mode);
      staged.push(a);
      await a.handle.writeFile(f.data).catch((e) => { throw ioError('IO', `cannot write ${f.path}`, e); });
    }
  } catch (e) {
    await abort();
    throw e;
  }
  return {
    async commit() {
      try {
        while (staged.length) {
          await staged[0]!.commit();
          staged.shift();
        }
      } catch (e) {
        await abort();
        throw e;
      }
      for (const d of dirs) d.keep();
    },
    abort,
  };
}

async function hashHandle(fh: FileHandle, size: number): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  for (let p = 0; p < size; ) {
    const n = await readInto(fh, buf, p, Math.min(buf.length, size - p));
    if (n === 0) break;
    h.update(buf.subarray(0, n));
    p += n;
  }
  return h.digest('hex');
}
