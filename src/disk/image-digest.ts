// The SHA-256 of a whole disk image and of the byte ranges its bmap maps, in one sequential read.
// The image is described as pieces read from the file in order, so a slot that is still being
// written can be read from the slot it is a byte-for-byte copy of: convert starts this while it
// copies slot A to slot B, and the digest work runs in a worker thread beside the compressor.
// Holes (from the file's data map) are hashed as zeros without being read.
import { open } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { readSparse } from './extents.js';
import { workerScript, startWorker } from '../util/worker.js';

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

/** Runs a digest job in this thread. `onProgress` gets the image bytes hashed so far. */
export async function digestImage(job: DigestJob, onProgress?: (done: number) => void): Promise<DigestResult> {
  const wholeImage = job.image !== false;
  const image = createHash('sha256');
  const order = job.ranges.map((r, i) => ({ start: r[0], end: r[1], i })).sort((a, b) => a.start - b.start || a.end - b.end);
  const state = order.map((r) => ({ ...r, next: r.start, hash: undefined as Hash | undefined, hex: '' }));
  // reach[k]: the furthest end among ranges 0..k, so a backward scan knows when to stop
  const reach: number[] = [];
  for (const [k, r] of state.entries()) reach.push(Math.max(r.end, k > 0 ? reach[k - 1]! : 0));
  const fh = await open(job.path, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  let done = 0;
  try {
    for (const piece of job.pieces) {
      for (let off = 0; off < piece.length; ) {
        const want = Math.min(CHUNK, piece.length - off);
        const pos = piece.from + off;
        const chunk = (await readSparse(fh, buf, pos, want, job.map)) ? buf.subarray(0, want) : (zeros ??= Buffer.alloc(CHUNK)).subarray(0, want);
        if (wholeImage) image.update(chunk);
        // ranges whose next unhashed byte lies in this chunk (ranges are sorted by start)
        let lo = 0;
        let hi = state.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (state[mid]!.start < pos + want) lo = mid + 1;
          else hi = mid;
        }
        for (let k = lo - 1; k >= 0 && reach[k]! > pos; k--) {
          const r = state[k]!;
          if (r.next >= r.end || r.next < pos || r.next >= pos + want) continue;
          const end = Math.min(r.end, pos + want);
          r.hash ??= createHash('sha256');
          r.hash.update(chunk.subarray(r.next - pos, end - pos));
          r.next = end;
          if (r.next >= r.end) r.hex = r.hash.digest('hex');
        }
        off += want;
        done += want;
        onProgress?.(done);
      }
    }
  } finally {
    await fh.close();
  }
  const out: string[] = new Array(job.ranges.length);
  for (const r of state) {
    if (r.end <= r.start) r.hex = createHash('sha256').digest('hex');
    if (!r.hex) throw new Error(`digest: range ${r.start}-${r.end} was not covered by the image pieces`);
    out[r.i] = r.hex;
  }
  return { sha256: wholeImage ? image.digest('hex') : undefined, ranges: out };
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
    w.on('message', (m: { progress?: number; result?: DigestResult; error?: string }) => {
      if (m.progress !== undefined) onProgress?.(m.progress);
      else if (m.result) resolve(m.result);
      else reject(new Error(m.error ?? 'digest worker failed'));
    });
    w.on('error', reject);
    w.on('exit', (code) => reject(new Error(`digest worker exited (${code})`)));
  }));
  result.catch(() => {});
  return { result, cancel: () => terminate() };
}
