// The rdiff delta format (librsync's, which SWUpdate's rdiff_image handler applies), written by
// hand: librsync's own encoder matches on a rolling checksum at any byte offset and is beaten on
// filesystem images by matching whole blocks at the filesystem's block size, where files live
// (next-formats §A: 1.94 MB against rdiff's 2.01 MB on a 1 KiB-block ext4). The stream is the
// magic 72 73 02 36, then commands: LITERAL_N4 (0x43, u32 length, the bytes), COPY_N8_N8 (0x54,
// u64 base offset, u64 length) and END (0x00); the parser also reads the other encodings librsync
// may write, so `verify` can walk any rdiff delta.
//
// Memory: an index of the base (a 64-bit key and a block number per distinct non-zero block the
// device is guaranteed to hold, in typed arrays: 24 bytes per base block at most), never the base
// itself; the new image is read once, in order, and the delta written as it goes. Zero literals
// are left as holes in the output file, so a mostly empty slot costs no disk.
import { hash as digest } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { OtapackError, ioError } from '../errors.js';
import { readInto, openInput } from '../util/io.js';
import { PositionalWriter } from '../util/positional-writer.js';
import { startDigest, type RunningDigest } from '../disk/image-digest.js';

export const RDIFF_MAGIC = 0x72730236;
const OP_END = 0x00;
const OP_LITERAL_N4 = 0x43;
const OP_COPY_N8_N8 = 0x54;

/** The base as the device will hold it: which of its bytes the delta may copy from. */
export interface RdiffBase {
  path: string;
  /** Offset of the base in `path` (0 for an image file). */
  offset?: number;
  size: number;
  /** Matching granularity: the filesystem's block size. */
  blockSize: number;
  /** Block-aligned byte ranges the device is guaranteed to hold (sorted, disjoint). */
  ranges: [number, number][];
}

export interface RdiffTarget {
  path: string;
  offset?: number;
  size: number;
}

export interface RdiffStats {
  /** Bytes the delta reproduces (the new image's size). */
  targetSize: number;
  /** SHA-256 of the new image, computed on the way (what the written slot is checked against). */
  targetSha256: string;
  /** SHA-256 of the base's usable ranges, in order (what the device's base check hashes). */
  baseDataSha256: string;
  /** Size of the delta file (its zero literals are holes in it). */
  deltaSize: number;
  copyBytes: number;
  literalBytes: number;
  /** Of the literal bytes, those that are zeros (they compress to nothing). */
  zeroLiteralBytes: number;
  copies: number;
  literals: number;
  /** Distinct non-zero base blocks in the index, and the index's memory. */
  indexedBlocks: number;
  indexBytes: number;
}

/** The most bytes one LITERAL command carries (a run is split into commands of this size). */
const MAX_LITERAL = 16 << 20;
/** Zero stretches at least this long inside a literal become holes in the delta file. */
const HOLE_MIN = 64 << 10;
const READ_CHUNK = 4 << 20;
const ZEROS = Buffer.alloc(HOLE_MIN);

// ---------------------------------------------------------------------------- base index

/**
 * Open addressing over typed arrays: key = the first 8 bytes of the block's SHA-256, value =
 * block number + 1 (0 = empty). The first occurrence of a content wins.
 */
class BlockIndex {
  private readonly mask: number;
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly val: Uint32Array;
  count = 0;

  constructor(maxEntries: number) {
    let cap = 1024;
    while (cap < maxEntries * 2) cap *= 2;
    this.mask = cap - 1;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.val = new Uint32Array(cap);
  }

  get bytes(): number {
    return this.hi.byteLength * 3;
  }

  insert(h: Buffer, block: number): void {
    const a = h.readUInt32LE(0);
    const b = h.readUInt32LE(4);
    for (let i = (a ^ (b * 0x9e3779b1)) & this.mask; ; i = (i + 1) & this.mask) {
      if (this.val[i] === 0) {
        this.hi[i] = a;
        this.lo[i] = b;
        this.val[i] = block + 1;
        this.count++;
        return;
      }
      if (this.hi[i] === a && this.lo[i] === b) return;
    }
  }

  find(h: Buffer): number {
    const a = h.readUInt32LE(0);
    const b = h.readUInt32LE(4);
    for (let i = (a ^ (b * 0x9e3779b1)) & this.mask; ; i = (i + 1) & this.mask) {
      const v = this.val[i]!;
      if (v === 0) return -1;
      if (this.hi[i] === a && this.lo[i] === b) return v - 1;
    }
  }
}

const blockKey = (b: Buffer): Buffer => digest('sha256', b, 'buffer') as unknown as Buffer;

/**
 * Compares base blocks with the new image's. The base bytes at the same offsets as the chunk of
 * the new image being encoded are read alongside it (`setLockstep`); other offsets (moved
 * blocks, continuations) go through a small cache of 64 KiB windows whose buffers are reused.
 * Cached or lockstep compares answer synchronously; only a window read is awaited.
 */
class BaseReader {
  private readonly win = 64 << 10;
  private readonly cache = new Map<number, Buffer>();
  private lock: Buffer = Buffer.alloc(0);
  private lockAt = 0;
  constructor(private readonly fh: FileHandle, private readonly offset: number, readonly size: number) {}

  /** Reads base[pos, pos+len) (clipped to the base) as the lockstep buffer. */
  async setLockstep(pos: number, buf: Buffer, len: number): Promise<void> {
    const n = Math.max(0, Math.min(len, this.size - pos));
    this.lockAt = pos;
    this.lock = buf.subarray(0, n ? await readInto(this.fh, buf, this.offset + pos, n) : 0);
  }

  /** Whether base[pos, pos+len) equals buf[at, at+len); len at most a block, so never across a window. */
  equals(pos: number, buf: Buffer, at: number, len: number): boolean | Promise<boolean> {
    const l = pos - this.lockAt;
    if (l >= 0 && l + len <= this.lock.length) return this.lock.compare(buf, at, at + len, l, l + len) === 0;
    const w = Math.floor(pos / this.win);
    const o = pos - w * this.win;
    const win = this.cache.get(w);
    if (win) return win.compare(buf, at, at + len, o, o + len) === 0;
    return this.load(w).then((b) => b.compare(buf, at, at + len, o, o + len) === 0);
  }

  private async load(w: number): Promise<Buffer> {
    let b: Buffer;
    if (this.cache.size >= 32) {
      const old = this.cache.keys().next().value!;
      b = this.cache.get(old)!;
      this.cache.delete(old);
    } else b = Buffer.allocUnsafe(this.win);
    const start = w * this.win;
    const n = Math.min(this.win, this.size - start);
    const got = await readInto(this.fh, b, this.offset + start, n);
    b.fill(0, got);
    this.cache.set(w, b);
    return b;
  }
}

// ---------------------------------------------------------------------------- writer

/** Literal bytes collected in 256 KiB buffers (the read buffer they come from is reused). */
class LiteralBuffer {
  private readonly buf: Buffer;
  private fill = 0;
  constructor(size: number) { this.buf = Buffer.allocUnsafe(size); }
  room(): number { return this.buf.length - this.fill; }
  add(src: Buffer, at: number, len: number): void { src.copy(this.buf, this.fill, at, at + len); this.fill += len; }
  bytes(): Buffer { return this.buf.subarray(0, this.fill); }
}

/**
 * Builds the command stream synchronously (copies coalesce, literal runs collect their bytes)
 * into a queue of buffers and zero stretches; drain() writes the queue out, zero stretches of
 * HOLE_MIN and more as holes. The caller drains after every chunk of the new image it encodes.
 */
class DeltaWriter {
  private readonly out: PositionalWriter;
  /** The pending literal run: buffers and zero stretches, in order. */
  private pieces: (LiteralBuffer | number)[] = [];
  private pieceBytes = 0;
  private copyFrom = -1;
  private copyLen = 0;
  /** Ready to be written: bytes, or a count of zeros. */
  private queue: (Buffer | number)[] = [];
  stats = { copyBytes: 0, literalBytes: 0, zeroLiteralBytes: 0, copies: 0, literals: 0 };

  constructor(fh: FileHandle) {
    this.out = new PositionalWriter(fh, 0);
    const m = Buffer.alloc(4);
    m.writeUInt32BE(RDIFF_MAGIC);
    this.queue.push(m);
  }

  /** Continues the current copy when `from` follows it; otherwise starts a new one. */
  copy(from: number, len: number): void {
    this.flushLiteral();
    if (this.copyFrom >= 0 && this.copyFrom + this.copyLen === from) {
      this.copyLen += len;
      return;
    }
    this.flushCopy();
    this.copyFrom = from;
    this.copyLen = len;
  }

  /** Where the running copy continues in the base, or -1. */
  get next(): number {
    return this.copyFrom < 0 ? -1 : this.copyFrom + this.copyLen;
  }

  /** Appends src[at, at+len) to the literal run (zeros are only counted). */
  literal(src: Buffer, at: number, len: number, zero: boolean): void {
    this.flushCopy();
    // one command carries at most MAX_LITERAL bytes
    if (this.pieceBytes + len > MAX_LITERAL) this.flushLiteral();
    const last = this.pieces[this.pieces.length - 1];
    if (zero) {
      if (typeof last === 'number') this.pieces[this.pieces.length - 1] = last + len;
      else this.pieces.push(len);
      this.stats.zeroLiteralBytes += len;
    } else if (last instanceof LiteralBuffer && last.room() >= len) {
      last.add(src, at, len);
    } else {
      const b = new LiteralBuffer(Math.max(len, 256 << 10));
      b.add(src, at, len);
      this.pieces.push(b);
    }
    this.pieceBytes += len;
    this.stats.literalBytes += len;
  }

  private flushCopy(): void {
    if (this.copyFrom < 0) return;
    const h = Buffer.alloc(17);
    h[0] = OP_COPY_N8_N8;
    h.writeBigUInt64BE(BigInt(this.copyFrom), 1);
    h.writeBigUInt64BE(BigInt(this.copyLen), 9);
    this.queue.push(h);
    this.stats.copyBytes += this.copyLen;
    this.stats.copies++;
    this.copyFrom = -1;
    this.copyLen = 0;
  }

  private flushLiteral(): void {
    if (this.pieceBytes === 0) return;
    const h = Buffer.alloc(5);
    h[0] = OP_LITERAL_N4;
    h.writeUInt32BE(this.pieceBytes, 1);
    this.queue.push(h);
    for (const p of this.pieces) this.queue.push(typeof p === 'number' ? p : p.bytes());
    this.stats.literals++;
    this.pieces = [];
    this.pieceBytes = 0;
  }

  /** Writes out what is ready. */
  async drain(): Promise<void> {
    const q = this.queue;
    this.queue = [];
    for (const p of q) {
      if (typeof p !== 'number') await this.out.write(p);
      else if (p < HOLE_MIN) await this.out.write(p <= ZEROS.length ? ZEROS.subarray(0, p) : Buffer.alloc(p));
      else {
        await this.out.finish();
        this.out.position += p; // a hole: the file reads zeros there
      }
    }
  }

  /** Ends the stream; returns its size. */
  async end(): Promise<number> {
    this.flushCopy();
    this.flushLiteral();
    this.queue.push(Buffer.from([OP_END]));
    await this.drain();
    return this.out.finish();
  }
}

// ---------------------------------------------------------------------------- encoder

function usableBitmap(base: RdiffBase): Uint8Array {
  const blocks = Math.ceil(base.size / base.blockSize);
  const bits = new Uint8Array(Math.ceil(blocks / 8));
  for (const [a, b] of base.ranges) {
    for (let i = Math.ceil(a / base.blockSize); i < Math.floor(Math.min(b, base.size) / base.blockSize); i++) bits[i >> 3]! |= 1 << (i & 7);
  }
  return bits;
}

const isUsable = (bits: Uint8Array, block: number): boolean => block >= 0 && block < bits.length * 8 && (bits[block >> 3]! & (1 << (block & 7))) !== 0;

/**
 * Writes the rdiff delta that turns `base` into `target` to `output` (created or truncated).
 * Matching is block-aligned at base.blockSize and only against the base's usable ranges; a new
 * block is, in this order of preference: the continuation of the current copy, the base block at
 * the same offset, an all-zero literal, any indexed base block with the same content (compared
 * byte for byte), or a literal.
 */
export async function encodeRdiff(o: {
  base: RdiffBase; target: RdiffTarget; output: string; onProgress?: (phase: 'index' | 'delta', done: number, total: number) => void;
  /** The new image's digest, when the caller started it earlier (targetDigest()). */
  targetDigest?: RunningDigest;
}): Promise<RdiffStats> {
  const { base, target } = o;
  const bs = base.blockSize;
  if (!(bs >= 512 && (bs & (bs - 1)) === 0)) throw new OtapackError('INTERNAL', `rdiff block size ${bs} is not a power of two`);
  const bits = usableBitmap(base);
  const zero = Buffer.alloc(bs);
  const baseFh = await openInput(base.path);
  let targetFh: FileHandle | undefined;
  let outFh: FileHandle | undefined;
  const digests: RunningDigest[] = [];
  try {
    // ---- the index: every usable, non-zero base block; the same bytes hashed whole, in order,
    // are what the device's base check hashes
    const usableBlocks = base.ranges.reduce((n, [a, b]) => n + Math.floor((Math.min(b, base.size) - a) / bs), 0);
    const index = new BlockIndex(Math.max(1, usableBlocks));
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    // the two whole-input digests run in worker threads beside the index and the pass: the
    // base's usable bytes in order (what the device's base check hashes) and the new image
    const off = base.offset ?? 0;
    digests.push(
      startDigest({ path: base.path, pieces: base.ranges.map(([a, b]) => ({ from: off + a, length: Math.min(b, base.size) - a })), ranges: [] }),
      o.targetDigest ?? targetDigest(target),
    );
    let indexed = 0;
    for (const [a, b0] of base.ranges) {
      const b = Math.min(b0, base.size);
      for (let pos = a; pos < b; pos += READ_CHUNK) {
        const n = Math.min(READ_CHUNK, b - pos);
        const got = await readInto(baseFh, buf, (base.offset ?? 0) + pos, n);
        if (got < n) throw new OtapackError('INPUT', `the base ends at ${pos + got} bytes, before its ${base.size} bytes`, { path: base.path });
        for (let p = 0; p + bs <= n; p += bs) {
          if (buf.compare(zero, 0, bs, p, p + bs) !== 0) index.insert(blockKey(buf.subarray(p, p + bs)), (pos + p) / bs);
        }
        indexed += n;
        o.onProgress?.('index', indexed, usableBlocks * bs);
      }
    }

    // ---- one pass over the new image
    const tfh = await openInput(target.path);
    targetFh = tfh;
    try {
      outFh = await open(o.output, 'w');
    } catch (e) {
      throw ioError('IO', `cannot write ${o.output}`, e);
    }
    const reader = new BaseReader(baseFh, base.offset ?? 0, base.size);
    const w = new DeltaWriter(outFh);
    const lock = Buffer.allocUnsafe(READ_CHUNK);
    /** base[from…] equals chunk[p, p+len), from a block the device is guaranteed to hold */
    const matches = (from: number, chunk: Buffer, p: number, len: number): boolean | Promise<boolean> =>
      from % bs === 0 && isUsable(bits, from / bs) && from + len <= base.size && reader.equals(from, chunk, p, len);
    for (let pos = 0; pos < target.size; pos += READ_CHUNK) {
      const n = Math.min(READ_CHUNK, target.size - pos);
      const got = await readInto(tfh, buf, (target.offset ?? 0) + pos, n);
      if (got < n) throw new OtapackError('INPUT', `ends at ${pos + got} bytes, before its ${target.size} bytes`, { path: target.path });
      await reader.setLockstep(pos, lock, n);
      const chunk = buf.subarray(0, n);
      for (let p = 0; p < n; p += bs) {
        const len = Math.min(bs, n - p);
        const at = pos + p;
        const next = w.next;
        if (next >= 0) {
          let m = matches(next, chunk, p, len);
          if (typeof m !== 'boolean') m = await m;
          if (m) { w.copy(next, len); continue; }
        }
        if (next !== at) {
          let m = matches(at, chunk, p, len);
          if (typeof m !== 'boolean') m = await m;
          if (m) { w.copy(at, len); continue; }
        }
        if (chunk.compare(zero, 0, len, p, p + len) === 0) { w.literal(chunk, p, len, true); continue; }
        if (len === bs) {
          const c = index.find(blockKey(chunk.subarray(p, p + bs)));
          if (c >= 0) {
            let m = matches(c * bs, chunk, p, len);
            if (typeof m !== 'boolean') m = await m;
            if (m) { w.copy(c * bs, bs); continue; }
          }
        }
        w.literal(chunk, p, len, false);
      }
      await w.drain();
      o.onProgress?.('delta', pos + n, target.size);
    }
    const deltaSize = await w.end();
    await outFh.truncate(deltaSize);
    await outFh.sync();
    const [baseData, image] = await Promise.all(digests.map((d) => d.result));
    digests.length = 0;
    return { targetSize: target.size, targetSha256: image!.sha256!, baseDataSha256: baseData!.sha256!, deltaSize, ...w.stats, indexedBlocks: index.count, indexBytes: index.bytes };
  } finally {
    for (const d of digests) await d.cancel();
    await baseFh.close().catch(() => {});
    await targetFh?.close().catch(() => {});
    await outFh?.close().catch(() => {});
  }
}

/** The SHA-256 of a new image, in a worker thread: start it early, hand it to encodeRdiff. */
export const targetDigest = (t: RdiffTarget): RunningDigest => startDigest({ path: t.path, pieces: [{ from: t.offset ?? 0, length: t.size }], ranges: [] });

// ---------------------------------------------------------------------------- parser

export interface RdiffSummary {
  /** Bytes the delta produces. */
  outputSize: number;
  copies: number;
  copyBytes: number;
  literals: number;
  literalBytes: number;
  /** One past the furthest base byte a copy reads. */
  baseExtent: number;
}

/**
 * Walks an rdiff delta pushed in chunks, without keeping it: what it produces and which base
 * bytes it reads. A malformed stream fails with an INPUT error naming the offset.
 */
export class RdiffParser {
  private pos = 0;
  private state: 'magic' | 'op' | 'args' | 'literal' | 'end' = 'magic';
  private need = 4;
  private acc: number[] = [];
  private op = 0;
  private literalLeft = 0;
  readonly summary: RdiffSummary = { outputSize: 0, copies: 0, copyBytes: 0, literals: 0, literalBytes: 0, baseExtent: 0 };

  private bad(what: string): OtapackError {
    return new OtapackError('INPUT', `not a valid rdiff delta: ${what} at offset ${this.pos}`, { reason: 'corrupt-delta' });
  }

  /** Argument widths of an opcode: [literal length] or [copy offset, copy length]; undefined if unknown. */
  private static widths(op: number): number[] | undefined {
    if (op >= 0x01 && op <= 0x40) return [];
    if (op >= 0x41 && op <= 0x44) return [1 << (op - 0x41)];
    if (op >= 0x45 && op <= 0x54) {
      const k = op - 0x45;
      return [1 << (k >> 2), 1 << (k & 3)];
    }
    return undefined;
  }

  write(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'end') throw this.bad('data after the END command');
      if (this.state === 'literal') {
        const n = Math.min(this.literalLeft, chunk.length - i);
        this.literalLeft -= n;
        i += n;
        this.pos += n;
        if (this.literalLeft === 0) this.state = 'op';
        continue;
      }
      this.acc.push(chunk[i]!);
      i++;
      this.pos++;
      if (this.state === 'magic') {
        if (this.acc.length < 4) continue;
        if (Buffer.from(this.acc).readUInt32BE(0) !== RDIFF_MAGIC) throw this.bad(`magic ${Buffer.from(this.acc).toString('hex')} (expected 72730236)`);
        this.acc = [];
        this.state = 'op';
      } else if (this.state === 'op') {
        const op = this.acc.pop()!;
        if (op === OP_END) { this.state = 'end'; continue; }
        const widths = RdiffParser.widths(op);
        if (!widths) throw this.bad(`unknown command 0x${op.toString(16).padStart(2, '0')}`);
        this.op = op;
        if (widths.length === 0) this.startLiteral(op);
        else {
          this.need = widths.reduce((a, b) => a + b, 0);
          this.state = 'args';
        }
      } else if (this.acc.length === this.need) {
        const widths = RdiffParser.widths(this.op)!;
        const vals: number[] = [];
        let at = 0;
        for (const w of widths) {
          let v = 0;
          for (let k = 0; k < w; k++) v = v * 256 + this.acc[at + k]!;
          if (!Number.isSafeInteger(v)) throw this.bad('a length beyond 2^53');
          vals.push(v);
          at += w;
        }
        this.acc = [];
        if (widths.length === 1) this.startLiteral(vals[0]!);
        else {
          const [from, len] = vals as [number, number];
          this.summary.copies++;
          this.summary.copyBytes += len;
          this.summary.outputSize += len;
          this.summary.baseExtent = Math.max(this.summary.baseExtent, from + len);
          this.state = 'op';
        }
      }
    }
  }

  private startLiteral(len: number): void {
    this.summary.literals++;
    this.summary.literalBytes += len;
    this.summary.outputSize += len;
    this.literalLeft = len;
    this.state = len > 0 ? 'literal' : 'op';
  }

  /** The summary; fails when the stream stopped before its END command. */
  end(): RdiffSummary {
    if (this.state !== 'end') throw this.bad(this.state === 'magic' ? 'too short for the magic' : 'stream ends without an END command');
    return this.summary;
  }
}
