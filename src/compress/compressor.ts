// One interface for payload compression. Implementations run the fastest correct codec the
// machine has (multi-threaded zstd / pigz) and stream: the caller pulls compressed chunks.
import type { Writable } from 'node:stream';
import type { BlockReader } from '../util/io.js';

export type CompressionId = 'zstd' | 'zlib' | 'none';
export const COMPRESSIONS: CompressionId[] = ['zstd', 'zlib', 'none'];

/**
 * A push source: calls `write` with every chunk in order and awaits it; the promise resolves
 * once the chunk's memory may be reused, so the producer can recycle its buffers (constant
 * memory, no copies). Resolves when everything was written.
 */
export type Feed = (write: (chunk: Buffer) => Promise<void>) => Promise<void>;

/**
 * A payload source: a file (read by the codec itself when it can), or a push source. `open`
 * opens the file for a codec that reads it in blocks (gzip); one that knows the file's holes
 * (disk/extents.ts, openSparse) saves reading them. Without it every byte is read.
 */
export type Input = { path: string; open?: () => Promise<BlockReader> } | { feed: Feed };

/**
 * Runs `feed` into a writable (a tool's stdin, a transform), then ends it. `copy` when the
 * writable keeps chunks after its write callback (a PassThrough does; a pipe or zlib does not).
 */
export function feedInto(w: Writable, feed: Feed, o: { copy: boolean; onBytes?: (n: number) => void }): Promise<void> {
  const write = (chunk: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      o.onBytes?.(chunk.length);
      w.write(o.copy ? Buffer.from(chunk) : chunk, (e) => (e ? reject(e) : resolve()));
    });
  const p = feed(write).then(
    () => new Promise<void>((resolve) => { w.end(resolve); }),
    (e) => { w.destroy(); throw e; },
  );
  p.catch(() => {});
  return p;
}

/**
 * The outcome of a tool fed by `feeding`: the feed's own failure (a read error) wins, except a
 * broken pipe caused by the tool dying, where the tool's exit status says why.
 */
export async function settleFed(tool: Promise<void>, feeding: Promise<void>): Promise<void> {
  const [t, f] = await Promise.allSettled([tool, feeding]);
  if (t.status === 'rejected') {
    const code = f.status === 'rejected' ? (f.reason as NodeJS.ErrnoException)?.code : undefined;
    if (f.status === 'fulfilled' || code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ECONNRESET') throw t.reason;
  }
  if (f.status === 'rejected') throw f.reason;
}

export interface CompressJob {
  output: AsyncIterable<Buffer>;
  /** Resolves when the codec exited cleanly; rejects with a TOOL error otherwise. */
  done: Promise<void>;
  /** Input bytes consumed so far, when known (for progress). */
  consumed(): number;
  abort(): void;
}

export interface Compressor {
  id: CompressionId;
  /** Suffix added to the stored file name. */
  suffix: string;
  /** Value of `compressed` in sw-description, if any. */
  swupdateName?: 'zstd' | 'zlib';
  defaultLevel: number;
  levels: [number, number];
  start(input: Input, level: number, opts?: StartOptions): CompressJob;
}

export interface StartOptions {
  /**
   * gzip only: one gzip member per block. For consumers that read concatenated members as one
   * stream (Go's compress/gzip, which Mender uses; not SWUpdate's inflate): the blocks then need
   * no walk of their deflate output to be joined into one stream (about a quarter less CPU in all).
   */
  members?: boolean;
}
