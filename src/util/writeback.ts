// Early writeback for large outputs: every `every` bytes written, an fdatasync is started on the
// thread pool (one at a time, nobody waiting on it). The output has to be durable before it is
// renamed into place anyway; this way the disk (and a virtual disk's host-side cache, which an
// fsync flushes as a whole) writes it while the CPU is still busy, instead of everything at one
// final fsync that the run then waits on. Measured on a 2-core VM: the final fsync of a 214 MiB
// .swu went from 0.14-0.20 s to a few ms.
import type { FileHandle } from 'node:fs/promises';

export class Writeback {
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  private failure: unknown;

  constructor(private readonly fh: FileHandle, private readonly every = 32 << 20) {}

  /** Counts bytes just written; starts a sync when enough piled up and none is running. */
  wrote(n: number): void {
    this.unsynced += n;
    if (this.unsynced < this.every || this.syncing) return;
    this.unsynced = 0;
    this.syncing = this.fh.datasync().then(
      () => { this.syncing = undefined; },
      (e) => { this.failure ??= e; this.syncing = undefined; },
    );
  }

  /** Waits for the sync in flight, if any; a failed sync (EIO, ENOSPC) is the write's failure. */
  async settle(): Promise<void> {
    await this.syncing;
    if (this.failure) throw this.failure;
  }
}
