// Copies a byte range between files without writing all-zero 4 KiB blocks, so the destination
// (a fresh sparse file) keeps holes where the source has nothing; every chunk, zeros included,
// can be handed to a consumer on the way, so one read serves a copy and a compressor.
import type { FileHandle } from 'node:fs/promises';

const CHUNK = 4 << 20;
const BLOCK = 4096;
const ZERO = Buffer.alloc(BLOCK);

export interface CopyOptions {
  onChunk?: (chunk: Buffer) => void | Promise<void>;
  onProgress?: (done: number) => void;
}

export async function copyRange(src: FileHandle, srcOffset: number, dst: FileHandle, dstOffset: number, length: number, o: CopyOptions = {}): Promise<{ bytesWritten: number; bytesSkipped: number }> {
  const buf = Buffer.allocUnsafe(CHUNK);
  let done = 0;
  let written = 0;
  while (done < length) {
    const want = Math.min(CHUNK, length - done);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await src.read(buf, got, want - got, srcOffset + done + got);
      if (bytesRead === 0) {
        // past the end of the source: the rest reads as zeros (a sparse or short file)
        buf.fill(0, got, want);
        got = want;
        break;
      }
      got += bytesRead;
    }
    const chunk = buf.subarray(0, want);
    // write runs of non-zero blocks, block boundaries relative to the destination
    const dstPos = dstOffset + done;
    let i = 0;
    while (i < want) {
      const blockEnd = Math.min(want, i + BLOCK - ((dstPos + i) % BLOCK));
      if (chunk.subarray(i, blockEnd).equals(ZERO.subarray(0, blockEnd - i))) { i = blockEnd; continue; }
      let j = blockEnd;
      while (j < want) {
        const e = Math.min(want, j + BLOCK);
        if (chunk.subarray(j, e).equals(ZERO.subarray(0, e - j))) break;
        j = e;
      }
      let w = 0;
      while (w < j - i) w += (await dst.write(chunk, i + w, j - i - w, dstPos + i + w)).bytesWritten;
      written += j - i;
      i = j;
    }
    if (o.onChunk) await o.onChunk(chunk);
    done += want;
    o.onProgress?.(done);
  }
  return { bytesWritten: written, bytesSkipped: length - written };
}
