// Outputs are written to a temp file in the destination folder, fsynced, then renamed over the
// final name: a reader (or a crash) sees the old file or the complete new one, never a torso.
import { open, rename, unlink, stat, type FileHandle } from 'node:fs/promises';
import { openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ioError } from '../errors.js';
import { registerTemp, unregisterTemp, commitOutputs } from './cleanup.js';

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
      handle = await open(tempPath, 'wx+', mode);
    } catch (e) {
      throw ioError('IO', `cannot write ${finalPath}`, e);
    }
    registerTemp(tempPath);
    return new AtomicFile(finalPath, tempPath, handle);
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
