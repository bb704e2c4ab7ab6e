// The SHA-256 of a whole disk image and of the byte ranges its bmap maps, in one sequential read.
// The image is described as pieces read from the file in order, so a slot that is still being
// written can be read from the slot it is a byte-for-byte copy of: convert starts this while it
// copies slot A to slot B, and the digest work runs in a worker thread beside the compressor.
// Holes (from the file's data map) are hashed as zeros without being read.
import { open } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { readSparse } from './extents.js';
import { workerScript, startWorker } from '../util/worker.js';
import { OtapackError, errnoOf, fileError, ioError } from '../errors.js';

export interface DigestJob {
  path: string;
  /** The image's bytes, in order: each piece is [from, from + length) of the file. */
  pieces: { from: number; length: number }[];
  /** File byte ranges [start, end) to hash on their own; each must be covered by the pieces. */
  ranges: [number, number][];
  /** Where the file holds data (extents.ts): holes are hashed as zeros without being read. */
  map?: [number, number][];
  /** Hash the pieces as one image (default); without it only the ranges are hashed. */
  image?: boolean;
}

export interface DigestResult {
  /** of the whole image; undefined when the job did not ask for it */
  sha256?: string;
  /** SHA-256 (hex) of each range, in the order given. */
  ranges: string[];
}

const CHUNK = 8 << 20;
let zeros: Buffer | undefined;

/**
 * SHA-256 of each of a set of byte ranges, fed the bytes in ascending position order (chunks
 * may straddle ranges, ranges may overlap). Used by the digest job, and by convert for the
 * ranges in slot A, which it hashes from the chunks it already holds while streaming the slot.
 */
export class RangeHasher {
  private readonly state: { start: number; end: number; i: number; next: number; hash?: Hash; hex: string }[];
  private readonly reach: number[] = []; // reach[k]: the furthest end among ranges 0..k
  private readonly count: number;

  constructor(ranges: [number, number][]) {
    this.count = ranges.length;
    this.state = ranges.map((r, i) => ({ start: r[0], end: r[1], i, next: r[0], hex: '' })).sort((a, b) => a.start - b.start || a.end - b.end);
    for (const [k, r] of this.state.entries()) this.reach.push(Math.max(r.end, k > 0 ? this.reach[k - 1]! : 0));
  }

  update(pos: number, chunk: Buffer): void {
    const end = pos + chunk.length;
    // ranges whose next unhashed byte lies in this chunk (sorted by start: binary search, then back)
    let lo = 0;
    let hi = this.state.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.state[mid]!.start < end) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo - 1; k >= 0 && this.reach[k]! > pos; k--) {
      const r = this.state[k]!;
      if (r.next >= r.end || r.next < pos || r.next >= end) continue;
      const stop = Math.min(r.end, end);
      r.hash ??= createHash('sha256');
      r.hash.update(chunk.subarray(r.next - pos, stop - pos));
      r.next = stop;
      if (r.next >= r.end) r.hex = r.hash.digest('hex');
    }
  }

  /** The digests in the order the ranges were given; every range must have been fed in full. */
  result(): string[] {
    const out: string[] = new Array(this.count);
    for (const r of this.state) {
      if (r.end <= r.start) r.hex = createHash('sha256').digest('hex');
      if (!r.hex) throw new OtapackError('INTERNAL', `digest: range ${r.start}-${r.end} was not covered by the image pieces`);
      out[r.i] = r.hex;
    }
    return out;
  }
}

/** Runs a digest job in this thread. `onProgress` gets the image bytes hashed so far. */
export async function digestImage(job: DigestJob, onProgress?: (done: number) => void): Promise<DigestResult> {
  const wholeImage = job.image !== false;
  const image = createHash('sha256');
  const ranges = new RangeHasher(job.ranges);
  const fh = await open(job.path, 'r').catch((e) => { throw fileError('IO', job.path, e); });
  const buf = Buffer.allocUnsafe(CHUNK);
  let done = 0;
  try {
    for (const piece of job.pieces) {
      for (let off = 0; off < piece.length; ) {
        const want = Math.min(CHUNK, piece.length - off);
        const pos = piece.from + off;
        const data = await readSparse(fh, buf, pos, want, job.map).catch((e) => { throw ioError('IO', `reading back ${job.path}`, e); });
        const chunk = data ? buf.subarray(0, want) : (zeros ??= Buffer.alloc(CHUNK)).subarray(0, want);
        if (wholeImage) image.update(chunk);
        ranges.update(pos, chunk);
        off += want;
        done += want;
        onProgress?.(done);
      }
    }
  } finally {
    await fh.close();
  }
  return { sha256: wholeImage ? image.digest('hex') : undefined, ranges: ranges.result() };
}

export interface RunningDigest {
  result: Promise<DigestResult>;
  cancel(): Promise<void>;
}

/**
 * Runs a digest job in a worker thread, so hashing overlaps whatever the main thread does (the
 * build from the TypeScript sources, which has no compiled worker, runs it in this thread).
 */
export function startDigest(job: DigestJob, onProgress?: (done: number) => void): RunningDigest {
  const script = workerScript('image-digest-worker.js', import.meta.url);
  if (!script) {
    const result = digestImage(job, onProgress);
    result.catch(() => {});
    return { result, cancel: async () => { await result.catch(() => {}); } };
  }
  let terminate: () => Promise<void> = async () => {};
  const result = startWorker(script, job).then((w) => new Promise<DigestResult>((resolve, reject) => {
    terminate = async () => { await w.terminate(); };
    w.on('message', (m: { progress?: number; result?: DigestResult; error?: string; code?: string }) => {
      if (m.progress !== undefined) onProgress?.(m.progress);
      else if (m.result) resolve(m.result);
      else if (m.code && errnoOf(m)) reject(ioError('IO', `reading back ${job.path}`, Object.assign(new Error(m.error), { code: m.code })));
      else reject(new OtapackError('INTERNAL', `digest worker: ${m.error ?? 'failed'}`));
    });
    w.on('error', (e) => reject(new OtapackError('INTERNAL', `digest worker: ${e.message}`, { cause: e })));
    w.on('exit', (code) => reject(new OtapackError('INTERNAL', `digest worker exited (${code})`)));
  }));
  result.catch(() => {});
  return { result, cancel: () => terminate() };
}
