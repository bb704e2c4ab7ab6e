// Buffered writes at explicit offsets of an output file, double-buffered so the next chunk is
// prepared while the previous one is being written; written bytes go to disk as the stream goes
// (writeback.ts).
import type { FileHandle } from 'node:fs/promises';
import { writeAll } from './io.js';
import { Writeback } from './writeback.js';

// (bundle.ts and resign.ts import writeAll from here)
export { writeAll };

const SIZE = 4 << 20;

export class PositionalWriter {
  private bufs = [Buffer.allocUnsafe(SIZE), Buffer.allocUnsafe(SIZE)];
  private cur = 0;
  private fill = 0;
  private pending: Promise<unknown> = Promise.resolve();
  private failure: unknown;

  private readonly writeback: Writeback;

  constructor(private readonly fh: FileHandle, public position: number) {
    this.writeback = new Writeback(fh);
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(SIZE - this.fill, chunk.length - off);
      this.bufs[this.cur]!.set(chunk.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === SIZE) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    const buf = this.bufs[this.cur]!;
    const len = this.fill;
    const pos = this.position;
    await this.pending; // the other buffer must be free before we fill it
    if (this.failure) throw this.failure;
    // keep the rejection inside the writer: it is rethrown at the next flush or at finish()
    this.pending = writeAll(this.fh, buf, len, pos).then(() => this.writeback.wrote(len), (e) => { this.failure = e; });
    this.position += len;
    this.cur ^= 1;
    this.fill = 0;
  }

  /** Writes out everything buffered; returns the position after the last byte. */
  async finish(): Promise<number> {
    await this.flush();
    await this.pending;
    if (this.failure) throw this.failure;
    await this.writeback.settle();
    return this.position;
  }
}
