// Whole reads and writes at explicit offsets: a positional read or write may move fewer bytes
// than asked (signals, pipes, some file systems), so every caller loops; these are that loop.
import type { FileHandle } from 'node:fs/promises';

/** Writes buf[0, len) at `pos`, however many calls that takes. */
export async function writeAll(fh: FileHandle, buf: Uint8Array, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesWritten } = await fh.write(buf, done, len - done, pos + done);
    done += bytesWritten;
  }
}

/** Reads up to `len` bytes at `offset`; shorter only at the end of the file. */
export async function readFully(fh: FileHandle, offset: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
