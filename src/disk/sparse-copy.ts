// Copying disk regions into a fresh (all-hole) destination without writing zeros: an image with
// a mostly empty 4 GiB rootfs then costs what its data costs, on disk and in time. Zero
// detection works on 4 KiB blocks of the *destination* (that is where holes are made), so
// unaligned offsets and lengths only change where the first and last blocks are cut. Every
// chunk, zeros included, can be handed to a consumer on the way, so one read serves a copy and
// a compressor.
//
// copyRange is pipelined: the next chunk is read while the previous one is written and
// consumed, the writes of one chunk are issued together, and zero blocks are found by comparing
// in place (no per-block allocation). With the source's data map, holes are not read at all.
// Memory stays at DEPTH chunks whatever the length. Given an O_DIRECT handle on the destination,
// block-aligned runs skip the page cache (direct-io.ts).
import type { FileHandle } from 'node:fs/promises';
import { OtapackError } from '../errors.js';
import { readSparse, type DataMap } from './extents.js';
import { alignedBuffer, writeRange, type DirectTarget } from './direct-io.js';
import { writeAll } from '../util/io.js';

export const BLOCK = 4096;
export const CHUNK = 4 * 1024 * 1024;
const DEPTH = 3; // chunks in flight: one being read, the others being written / consumed
const ZERO = Buffer.alloc(CHUNK);
let zeroChunk: Buffer | undefined; // handed to consumers for a chunk that is all hole; never written

/**
 * Writes `buf` at `pos`, skipping every destination 4 KiB block (or partial block at either end)
 * that is all zero; runs of non-zero blocks go out as one write. Returns the bytes written.
 * The destination must read as zero where nothing is written (a hole or a fresh region).
 */
export async function writeSparse(fh: FileHandle, buf: Buffer, pos: number): Promise<number> {
  let written = 0;
  for (const [a, b] of dataRuns(buf, pos)) {
    await writeAll(fh, buf.subarray(a, b), b - a, pos + a);
    written += b - a;
  }
  return written;
}

export interface CopyOptions {
  /**
   * Receives every chunk in order. The chunk's memory is reused once the returned promise
   * settles, so a consumer that keeps it longer must copy it.
   */
  onChunk?: (chunk: Buffer) => void | Promise<void>;
  /** Bytes of the range done so far. */
  onProgress?: (done: number) => void;
  /** Where the source holds data (extents.ts); holes are not read. */
  sourceMap?: DataMap;
  /** An O_DIRECT handle on the destination (direct-io.ts): aligned runs bypass the page cache. */
  direct?: DirectTarget;
  /** An O_DIRECT handle on the source: aligned reads bypass the page cache (only with `direct`). */
  directSource?: DirectTarget;
}

const isZero = (b: Buffer, start: number, end: number): boolean => b.compare(ZERO, 0, end - start, start, end) === 0;

/** Runs of non-zero blocks of `chunk` (block boundaries relative to the destination position). */
export function dataRuns(chunk: Buffer, dstPos: number): [number, number][] {
  const runs: [number, number][] = [];
  const n = chunk.length;
  let i = 0;
  while (i < n) {
    const blockEnd = Math.min(n, i + BLOCK - ((dstPos + i) % BLOCK));
    if (isZero(chunk, i, blockEnd)) { i = blockEnd; continue; }
    let j = blockEnd;
    while (j < n) {
      const e = Math.min(n, j + BLOCK);
      if (isZero(chunk, j, e)) break;
      j = e;
    }
    runs.push([i, j]);
    i = j;
  }
  return runs;
}


/**
 * Copies `length` bytes from `src` at `srcOffset` to `dst` at `dstOffset`, writing only non-zero
 * blocks. The destination must already be sized (ftruncate) to cover the range: trailing zeros
 * are not written and so would not extend the file. A source that ends inside the range is an
 * INPUT error (checked up front for regular files, where the size is known).
 */
export async function copyRange(src: FileHandle, srcOffset: number, dst: FileHandle, dstOffset: number, length: number, o: CopyOptions = {}): Promise<{ bytesWritten: number; bytesSkipped: number }> {
  const st = await src.stat();
  if (st.isFile() && srcOffset + length > st.size) {
    throw new OtapackError('INPUT', `source ends at byte ${st.size}, inside the range being copied (up to byte ${srcOffset + length})`);
  }
  const slots: { buf: Buffer; busy: Promise<void> }[] = [];
  let direct = o.direct;
  for (let i = 0; i < Math.min(DEPTH, Math.ceil(length / CHUNK)); i++) {
    const aligned = direct ? alignedBuffer(CHUNK) : undefined;
    if (!aligned) direct = undefined; // no aligned memory: every write goes through the page cache
    slots.push({ buf: aligned ?? Buffer.allocUnsafe(CHUNK), busy: Promise.resolve() });
  }
  let consumed: Promise<void> = Promise.resolve(); // onChunk calls, in order
  let written = 0;
  let reported = 0;
  let failure: unknown;
  const fail = (e: unknown): void => { failure ??= e; };
  let k = 0;
  for (let done = 0; done < length; k++) {
    const slot = slots[k % slots.length]!;
    await slot.busy; // its previous chunk is written and consumed
    if (failure) break;
    const want = Math.min(CHUNK, length - done);
    // past the end of the source the rest reads as zeros (a sparse or short file)
    const hasData = await readSparse(src, slot.buf, srcOffset + done, want, o.sourceMap, direct && o.directSource);
    const chunk = hasData ? slot.buf.subarray(0, want) : (zeroChunk ??= Buffer.alloc(CHUNK)).subarray(0, want);
    const dstPos = dstOffset + done;
    const runs = hasData ? dataRuns(chunk, dstPos) : [];
    for (const [a, b] of runs) written += b - a;
    const writes = Promise.all(runs.map(([a, b]) => writeRange(dst, direct, chunk, a, b, dstPos + a)));
    const onChunk = o.onChunk;
    if (onChunk) consumed = consumed.then(() => (failure ? undefined : onChunk(chunk)));
    const consumedHere = consumed;
    done += want;
    const doneHere = done;
    // chunks can settle out of order: progress only ever moves forward
    slot.busy = Promise.all([writes, consumedHere]).then(() => { if (doneHere > reported) o.onProgress?.((reported = doneHere)); }, fail);
  }
  await Promise.all(slots.map((s) => s.busy));
  if (failure) throw failure;
  return { bytesWritten: written, bytesSkipped: length - written };
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
