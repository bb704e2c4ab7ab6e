// Whole reads and writes at explicit offsets: a positional read or write may move fewer bytes
// than asked (signals, pipes, some file systems), so every caller loops; these are that loop.
import { open, type FileHandle } from 'node:fs/promises';
import { fileError } from '../errors.js';

/** Writes buf[0, len) at `pos`, however many calls that takes. */
export async function writeAll(fh: FileHandle, buf: Uint8Array, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesWritten } = await fh.write(buf, done, len - done, pos + done);
    done += bytesWritten;
  }
}

/** Fills buf[0, len) from `pos`; returns how many bytes it got (fewer only at the end of the file). */
export async function readInto(fh: FileHandle, buf: Buffer, pos: number, len = buf.length): Promise<number> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/** Reads up to `len` bytes at `offset`; shorter only at the end of the file. */
export async function readFully(fh: FileHandle, offset: number, len: number): Promise<Buffer> {
  const buf = Buffer.alloc(len);
  return buf.subarray(0, await readInto(fh, buf, offset));
}

/**
 * A file read in blocks by code that reads its input itself (the gzip codec). One that knows
 * where the file's holes are (disk/extents.ts, openSparse) hands out zeros for them without
 * reading; openFile reads everything.
 */
export interface BlockReader {
  /** Fills buf from the file's bytes at `pos`; returns how many (fewer than buf.length only at the end of the file). */
  read(buf: Buffer, pos: number): Promise<number>;
  close(): Promise<void>;
}

/** Opens a file otapack reads; failing, an INPUT error naming `label` (the user's name for the file). */
export async function openInput(path: string, label = path): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw fileError('INPUT', label, e);
  }
}

/** A BlockReader that reads every byte. */
export async function openFile(path: string): Promise<BlockReader> {
  const fh = await open(path, 'r');
  return { read: (buf, pos) => readInto(fh, buf, pos), close: () => fh.close() };
}
