// Input images may come compressed (.img.gz, .img.xz, .img.zst: detected by their magic bytes).
// Plain images are read in place and never written; compressed ones are streamed into a sparse
// temp file in the work folder (all-zero blocks are not written), removed afterwards.
import { open, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { join, basename } from 'node:path';
import type { Readable } from 'node:stream';
import { OtapackError, ioError } from '../errors.js';
import { spawnStream } from '../util/tools.js';
import { registerTemp, unregisterTemp } from '../util/cleanup.js';

export type InputCompression = 'none' | 'gzip' | 'xz' | 'zstd';

export async function sniffCompression(path: string): Promise<InputCompression> {
  const fh = await open(path, 'r').catch((e) => { throw ioError('INPUT', path, e); });
  try {
    const b = Buffer.alloc(6);
    await fh.read(b, 0, 6, 0);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

export async function openImageInput(path: string, workDir: string): Promise<{ path: string; compressed: InputCompression; cleanup(): Promise<void> }> {
  const kind = await sniffCompression(path);
  if (kind === 'none') return { path, compressed: 'none', cleanup: async () => {} };
  const out = join(workDir, basename(path).replace(/\.(gz|xz|zst|zstd)$/i, '') + '.raw');
  registerTemp(out);
  const cleanup = async (): Promise<void> => {
    await rm(out, { force: true });
    unregisterTemp(out);
  };
  let stream: Readable;
  let done: Promise<void> = Promise.resolve();
  if (kind === 'gzip') {
    stream = createReadStream(path).pipe(createGunzip());
  } else {
    const s = spawnStream(kind === 'xz' ? 'xz' : 'zstd', ['-dc', '--', path]);
    stream = s.child.stdout as Readable;
    done = s.done;
  }
  const fh = await open(out, 'w');
  const ZERO = Buffer.alloc(4096);
  let pos = 0;
  let pending: Buffer = Buffer.alloc(0);
  try {
    const flush = async (b: Buffer, final: boolean): Promise<Buffer> => {
      const whole = final ? b.length : b.length - (b.length % 4096);
      for (let i = 0; i < whole; i += 4096) {
        const blk = b.subarray(i, Math.min(whole, i + 4096));
        if (!blk.equals(ZERO.subarray(0, blk.length))) await fh.write(blk, 0, blk.length, pos + i);
      }
      pos += whole;
      return b.subarray(whole);
    };
    for await (const chunk of stream) pending = await flush(Buffer.concat([pending, chunk as Buffer]), false);
    await flush(pending, true);
    await done;
    await fh.truncate(pos);
  } catch (e) {
    await fh.close().catch(() => {});
    await cleanup();
    const msg = (e as Error).message ?? String(e);
    throw new OtapackError('INPUT', `${path}: cannot decompress the ${kind} image (${msg.split('\n')[0]}): truncated or corrupt?`);
  }
  await fh.close();
  return { path: out, compressed: kind, cleanup };
}
