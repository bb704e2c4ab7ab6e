// zchunk deltas through the `zck` CLI (Debian package zchunk). Reuse on the device happens only
// when otapack's chunk boundaries are the ones libzck's buzhash finds in the old image, so the
// chunker is libzck's own rather than a port. Two flags are required by SWUpdate's delta handler
// (next-formats §B): -u (uncompressed chunk digests, which the device matches its own chunks
// against) and -h sha256 (the default digest gives "HASH mismatch").
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OtapackError } from '../errors.js';
import { readInto, openInput } from '../util/io.js';
import { registerTemp, unregisterTemp } from '../util/cleanup.js';
import { run, spawnStream } from '../util/tools.js';

export interface ZchunkResult {
  /** The .zck file: the header, then the chunks (what the web server serves). */
  zck: string;
  size: number;
  /** Bytes of the header at its start: what the bundle carries. */
  headerSize: number;
  chunks: number;
  /** SHA-256 and size of the image it holds (what the written slot is checked against). */
  imageSha256: string;
  imageSize: number;
}

const CHUNK = 4 << 20;

/**
 * Chunks `source` (bytes [offset, offset+size) of a file) into `output` with `zck -u -h sha256`.
 * zck reads a path, and Node's child stdin is a socket, which /dev/stdin cannot open: the bytes
 * go through a FIFO next to the output, hashed on the way.
 */
export async function makeZchunk(source: { path: string; offset?: number; size: number }, output: string): Promise<ZchunkResult> {
  const fh = await openInput(source.path);
  const fifo = join(dirname(output), `.${basename(output)}.fifo`);
  const sha = createHash('sha256');
  try {
    registerTemp(fifo); // before it exists: an interruption during mkfifo must not leave it behind
    await run('mkfifo', ['-m', '0600', fifo]);
    const { done } = spawnStream('zck', ['-u', '-h', 'sha256', '-o', output, fifo]);
    const feed = (async () => {
      const w = await open(fifo, 'w'); // waits for zck to open it for reading
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        for (let pos = 0; pos < source.size; pos += CHUNK) {
          const n = Math.min(CHUNK, source.size - pos);
          const got = await readInto(fh, buf, (source.offset ?? 0) + pos, n);
          if (got < n) throw new OtapackError('INPUT', `ends at ${pos + got} bytes, before its ${source.size} bytes`, { path: source.path });
          sha.update(buf.subarray(0, n));
          for (let off = 0; off < n;) off += (await w.write(buf, off, n - off, null)).bytesWritten;
        }
      } finally {
        await w.close();
      }
    })();
    // zck failing first (its stdin closed) wins over the broken pipe the feed then sees
    const [z, f] = await Promise.allSettled([done, feed]);
    if (z.status === 'rejected') throw z.reason;
    if (f.status === 'rejected') throw f.reason;
  } finally {
    await fh.close();
    await rm(fifo, { force: true });
    unregisterTemp(fifo);
  }
  const info = await readZchunkHeader(output);
  return { zck: output, size: info.size, headerSize: info.headerSize, chunks: info.chunks, imageSha256: sha.digest('hex'), imageSize: source.size };
}

/** What `zck_read_header` says of a .zck: its header's size and chunk count. */
export async function readZchunkHeader(zck: string): Promise<{ headerSize: number; chunks: number; dataSize: number; size: number }> {
  const r = await run('zck_read_header', ['-v', zck], { what: 'zck_read_header' });
  const num = (re: RegExp): number => {
    const m = re.exec(r.stdout);
    if (!m) throw new OtapackError('TOOL', `zck_read_header printed no ${re.source.split(':')[0]} for ${zck}`, { tool: 'zck_read_header' });
    return Number(m[1]);
  };
  const headerSize = num(/^Header size:\s*(\d+)/m);
  const dataSize = num(/^Data size:\s*(\d+)/m);
  const chunks = num(/^Chunk count:\s*(\d+)/m);
  return { headerSize, chunks, dataSize, size: headerSize + dataSize };
}

/** The first `headerSize` bytes of a .zck: the header the bundle carries. */
export async function zchunkHeaderBytes(zck: string, headerSize: number): Promise<Buffer> {
  const fh = await open(zck, 'r');
  try {
    const b = Buffer.alloc(headerSize);
    if ((await readInto(fh, b, 0)) !== headerSize) throw new OtapackError('TOOL', `${zck} is shorter than its ${headerSize}-byte header`, { tool: 'zck' });
    return b;
  } finally {
    await fh.close();
  }
}
