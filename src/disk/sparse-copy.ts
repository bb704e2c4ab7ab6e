// Copying disk regions into a fresh (all-hole) destination without writing zeros: an image with
// a mostly empty 4 GiB rootfs then costs what its data costs, on disk and in time. Zero
// detection works on 4 KiB blocks of the *destination* (that is where holes are made), so
// unaligned offsets and lengths only change where the first and last blocks are cut.
import type { FileHandle } from 'node:fs/promises';
import { OtapackError } from '../errors.js';

export const BLOCK = 4096;
export const CHUNK = 4 * 1024 * 1024;
const ZERO = Buffer.alloc(CHUNK);

const isZero = (buf: Buffer, start: number, end: number): boolean => buf.compare(ZERO, 0, end - start, start, end) === 0;

async function writeAll(fh: FileHandle, buf: Buffer, start: number, end: number, pos: number): Promise<void> {
  while (start < end) {
    const { bytesWritten } = await fh.write(buf, start, end - start, pos);
    start += bytesWritten;
    pos += bytesWritten;
  }
}

/**
 * Writes `buf` at `pos`, skipping every destination 4 KiB block (or partial block at either end)
 * that is all zero; runs of non-zero blocks go out as one write. Returns the bytes written.
 * The destination must read as zero where nothing is written (a hole or a fresh region).
 */
export async function writeSparse(fh: FileHandle, buf: Buffer, pos: number): Promise<number> {
  if (buf.length <= CHUNK && isZero(buf, 0, buf.length)) return 0;
  let written = 0;
  let runStart = -1;
  let s = 0;
  while (s < buf.length) {
    const e = Math.min(buf.length, s + BLOCK - ((pos + s) % BLOCK));
    if (isZero(buf, s, e)) {
      if (runStart >= 0) {
        await writeAll(fh, buf, runStart, s, pos + runStart);
        written += s - runStart;
        runStart = -1;
      }
    } else if (runStart < 0) runStart = s;
    s = e;
  }
  if (runStart >= 0) {
    await writeAll(fh, buf, runStart, buf.length, pos + runStart);
    written += buf.length - runStart;
  }
  return written;
}

async function readExactly(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, pos + got);
    if (bytesRead === 0) throw new OtapackError('INPUT', `source ends at byte ${pos + got}, inside the range being copied (up to byte ${pos + buf.length})`);
    got += bytesRead;
  }
}

export interface CopyOptions {
  /** Every chunk read, zeros included, in order; each is a fresh Buffer the callback may keep. */
  onChunk?: (chunk: Buffer) => void | Promise<void>;
  /** Bytes of the range done so far. */
  onProgress?: (done: number) => void;
}

/**
 * Copies `length` bytes from `src` at `srcOffset` to `dst` at `dstOffset` in chunks of up to
 * 4 MiB (constant memory), writing only non-zero blocks. After the first chunk every chunk
 * starts on a destination block boundary, so holes line up with the destination's blocks.
 * The destination must already be sized (ftruncate) to cover the range: trailing zeros are not
 * written and so would not extend the file.
 */
export async function copyRange(src: FileHandle, srcOffset: number, dst: FileHandle, dstOffset: number, length: number, opts: CopyOptions = {}): Promise<{ bytesWritten: number; bytesSkipped: number }> {
  let done = 0;
  let bytesWritten = 0;
  while (done < length) {
    const n = Math.min(length - done, CHUNK - ((dstOffset + done) % BLOCK));
    // A fresh buffer per chunk: onChunk consumers (compressor streams) may hold on to it.
    const buf = Buffer.allocUnsafe(n);
    await readExactly(src, buf, srcOffset + done);
    bytesWritten += await writeSparse(dst, buf, dstOffset + done);
    if (opts.onChunk) await opts.onChunk(buf);
    done += n;
    opts.onProgress?.(done);
  }
  return { bytesWritten, bytesSkipped: length - bytesWritten };
}

/**
 * Collects a stream of arbitrary-sized pieces into block-aligned chunks and writes them sparsely
 * from `pos` on. `end()` extends the file to the full length so trailing zeros become a hole.
 */
export class SparseSink {
  private readonly staging = Buffer.allocUnsafe(CHUNK);
  private fill = 0;
  private flushedTo: number;
  bytesWritten = 0;

  constructor(private readonly fh: FileHandle, private readonly pos = 0) {
    this.flushedTo = pos;
  }

  get length(): number {
    return this.flushedTo - this.pos + this.fill;
  }

  async write(piece: Buffer): Promise<void> {
    let off = 0;
    while (off < piece.length) {
      const n = piece.copy(this.staging, this.fill, off);
      this.fill += n;
      off += n;
      if (this.fill === CHUNK) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    this.bytesWritten += await writeSparse(this.fh, this.staging.subarray(0, this.fill), this.flushedTo);
    this.flushedTo += this.fill;
    this.fill = 0;
  }

  /** Flushes the rest and sets the file size to the end of what was written; returns the length. */
  async end(): Promise<number> {
    await this.flush();
    await this.fh.truncate(this.flushedTo);
    return this.length;
  }
}
