// Bulk writes of a disk image that bypass the page cache (O_DIRECT).
//
// Why: convert writes each rootfs slot once (GiBs) and never reads most of it back through the
// cache. Buffered, every page is allocated, dirtied and written back by the kernel, and on small
// virtual machines that kernel work costs more CPU than compressing the bundle beside it
// (measured on a 2-core runner: 600 MiB of rootfs written buffered 0.8–3.3 s of system time,
// with O_DIRECT 0.2–0.5 s; bench/results.md). Direct writes also leave the runner's page cache to
// the work that reuses it.
//
// O_DIRECT needs the memory, the file offset and the length aligned to the device's logical
// block (512 B or 4 KiB). Node cannot align a Buffer, but a WebAssembly memory is page-aligned
// by construction, so chunk buffers for direct writes are carved from one. Writes that are not
// 4 KiB-aligned go through the ordinary handle, and where O_DIRECT is refused (tmpfs on older
// kernels, some network and FUSE file systems; EINVAL at open or at the first write) every
// write does: the result is the same bytes either way.
import { open, constants, type FileHandle } from 'node:fs/promises';
import { writeAll } from '../util/io.js';

export const DIRECT_ALIGN = 4096;

/** A second, O_DIRECT handle on a file that is also open normally; `off` once refused. */
// (reads of a slot just written this way skip the page cache too: the data is not in it)
export interface DirectTarget {
  fh: FileHandle;
  off: boolean;
}

/** Opens `path` for direct reads and writes; undefined where the platform or file system has no O_DIRECT. */
export async function openDirect(path: string): Promise<DirectTarget | undefined> {
  if (!constants.O_DIRECT || process.env.OTAPACK_NO_DIRECT_IO === '1') return undefined;
  try {
    return { fh: await open(path, constants.O_RDWR | constants.O_DIRECT), off: false };
  } catch {
    return undefined;
  }
}

// (the global is there in Node; this project's TypeScript lib settings do not declare it)
const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } } }).WebAssembly;

/**
 * A zero-filled Buffer whose memory starts on a page boundary (usable for O_DIRECT), or
 * undefined where V8 cannot reserve one (a WebAssembly memory reserves address space beyond its
 * size, which a tight `ulimit -v` may refuse): the caller then writes through the page cache.
 */
export function alignedBuffer(size: number): Buffer | undefined {
  const pages = Math.ceil(size / 65536); // WebAssembly pages of 64 KiB
  try {
    return Buffer.from(new Memory({ initial: pages, maximum: pages }).buffer, 0, size);
  } catch {
    return undefined;
  }
}

const aligned = (n: number): boolean => n % DIRECT_ALIGN === 0;

/**
 * Writes buf[start, end) at `pos`: through the direct handle when everything is aligned (`buf`
 * must then come from alignedBuffer), otherwise, or once direct writes were refused, through
 * the normal one.
 */
export async function writeRange(fh: FileHandle, direct: DirectTarget | undefined, buf: Buffer, start: number, end: number, pos: number): Promise<void> {
  if (direct && !direct.off && aligned(start) && aligned(end - start) && aligned(pos) && aligned(buf.byteOffset)) {
    try {
      await writeAll(direct.fh, buf.subarray(start, end), end - start, pos);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      direct.off = true; // this file system takes no direct writes: the normal handle writes all
    }
  }
  await writeAll(fh, buf.subarray(start, end), end - start, pos);
}

/** Reads into buf[start, start + length) from `pos`: directly when aligned, as writeRange decides. */
export async function readAt(fh: FileHandle, direct: DirectTarget | undefined, buf: Buffer, start: number, length: number, pos: number): Promise<{ bytesRead: number }> {
  if (direct && !direct.off && aligned(start) && aligned(length) && aligned(pos) && aligned(buf.byteOffset)) {
    try {
      return await direct.fh.read(buf, start, length, pos);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      direct.off = true;
    }
  }
  return fh.read(buf, start, length, pos);
}
