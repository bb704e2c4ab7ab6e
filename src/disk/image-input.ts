// Input images as users have them: a raw .img is used where it lies (opened read-only, never
// written); .img.gz/.img.xz/.img.zst are streamed into a sparse temp file in the work folder,
// because everything downstream needs random access. The format is decided by magic bytes, so a
// misnamed file still works.
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { OtapackError, fileError, ioError } from '../errors.js';
import { openTemp, unregisterTemp } from '../util/cleanup.js';
import { spawnStream } from '../util/tools.js';
import { SparseSink } from './sparse-copy.js';

export type Compression = 'none' | 'gzip' | 'xz' | 'zstd';

export interface ImageInput {
  /** A raw image to read: the input itself, or the decompressed temp file. */
  path: string;
  compressed: Compression;
  /** Removes the temp file (a no-op for raw input). */
  cleanup(): Promise<void>;
}

const MAGICS: [Compression, Buffer][] = [
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
];

export async function detectCompression(fh: FileHandle): Promise<Compression> {
  const head = Buffer.alloc(6);
  const { bytesRead } = await fh.read(head, 0, 6, 0);
  for (const [kind, magic] of MAGICS) if (bytesRead >= magic.length && head.subarray(0, magic.length).equals(magic)) return kind;
  return 'none';
}

/** Opens an input image, decompressing it into `workDir` when needed. */
export async function openImageInput(path: string, workDir: string): Promise<ImageInput> {
  let compressed: Compression;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw Object.assign(new Error(), { code: 'EISDIR' });
      if (!st.isFile()) throw new OtapackError('INPUT', 'not a regular file (a disk image file is expected)', { path, reason: 'not-a-regular-file' });
      compressed = await detectCompression(fh);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw fileError('INPUT', path, e);
  }
  if (compressed === 'none') return { path, compressed, cleanup: async () => {} };

  const stem = basename(path).replace(/\.(gz|xz|zst|zstd)$/i, '').replace(/\.img$/i, '');
  const out = join(workDir, `${stem}.${randomBytes(4).toString('hex')}.img`);
  let fh: FileHandle;
  try {
    fh = await openTemp(out);
  } catch (e) {
    throw ioError('IO', `cannot create a temp file in ${workDir}`, e);
  }
  const cleanup = async (): Promise<void> => {
    try { await unlink(out); } catch { /* gone already */ }
    unregisterTemp(out);
  };
  try {
    await decompressInto(path, compressed, fh);
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => {});
    await cleanup();
    throw e;
  }
  return { path: out, compressed, cleanup };
}

async function decompressInto(path: string, kind: Compression, fh: FileHandle): Promise<void> {
  const sink = new SparseSink(fh);
  const corrupt = (detail: string, tool?: OtapackError): OtapackError => new OtapackError('INPUT', `corrupt or truncated ${kind} data (${detail})`, {
    path, reason: 'corrupt-compressed-input', expected: `${kind} data`, tool: tool?.tool, status: tool?.status, cause: tool,
  });
  let stream: Readable;
  let done: Promise<void> = Promise.resolve();
  if (kind === 'gzip') {
    const gunzip = createGunzip();
    createReadStream(path).on('error', (e) => gunzip.destroy(e)).pipe(gunzip);
    stream = gunzip;
  } else {
    const tool = kind === 'xz' ? 'xz' : 'zstd';
    const p = spawnStream(tool, ['-d', '-c', '-q', '--', path], { stdin: 'ignore' });
    stream = p.child.stdout!;
    done = p.done;
  }
  try {
    for await (const piece of stream) await sink.write(piece as Buffer);
  } catch (e) {
    if (e instanceof OtapackError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code?.startsWith('Z_') || err.code === 'ERR_ZLIB_BINDING_CLOSED') throw corrupt(err.message);
    throw ioError('IO', `decompressing ${path}`, e);
  }
  try {
    await done;
  } catch (e) {
    if (!(e instanceof OtapackError) || e.reason !== 'tool-failed') throw e;
    // The tool's own last words ("xz: FILE: Unexpected end of input") name the problem: its
    // last line, without the program and file names.
    const last = (e.toolOutput ?? '').split('\n').filter((l) => l.trim()).pop() ?? 'failed';
    throw corrupt(last.replace(/^(\S*\/)?(xz|zstd): /, '').split(path).join('').replace(/^\s*:\s*/, '').trim() || 'failed', e);
  }
  try {
    await sink.end();
  } catch (e) {
    throw ioError('IO', `writing the decompressed copy of ${path}`, e);
  }
}
