// One interface for payload compression. Implementations run the fastest correct codec the
// machine has (multi-threaded zstd / pigz) and stream: the caller pulls compressed chunks.
import type { Readable } from 'node:stream';

export type CompressionId = 'zstd' | 'zlib' | 'none';
export const COMPRESSIONS: CompressionId[] = ['zstd', 'zlib', 'none'];

/** A payload source: a file (read by the codec itself when it can) or a stream. */
export type Input = { path: string } | { stream: Readable };

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
  start(input: Input, level: number): CompressJob;
}
