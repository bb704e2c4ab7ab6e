// gzip on every core, written here (the way pigz does it) because it is the fastest correct
// "zlib" codec available: worker threads put the deflate on every core without any extra
// program, and the deflate itself is libdeflate (native/deflate.c, built by `npm run build`)
// or, where that is not built, node:zlib, which is still markedly faster than the system zlib
// that gzip and pigz use.
//
// The input is cut into 1 MiB blocks. Each block is deflated on its own (in a worker thread)
// and ends with a sync flush, which byte-aligns it: the blocks concatenate into ONE deflate
// stream, framed as ONE gzip member (a multi-member file may be cut short by a consumer's
// inflate). With node:zlib a block gets the previous block's last 32 KiB as its dictionary, so
// matches reach back across block edges; libdeflate has no dictionary (about 0.3 % larger
// output, far less CPU). The last block finishes the stream; the CRC-32 and length of the whole
// input follow. The bytes depend only on the input, the level and the deflate engine, never on
// the number of cores. Zero blocks and incompressible blocks skip the match search
// (deflateBlock), which roughly halves the CPU time on a typical rootfs image.
// With `members` (for consumers known to read concatenated members, e.g. Mender's Go reader)
// each block is instead a complete gzip member of its own: no dictionary, no walk of the native
// deflate's output to turn its final block into a sync flush.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { OtapackError } from '../errors.js';
import { openFile, type BlockReader } from '../util/io.js';
import { crc32, nativeDeflate } from './native-deflate.js';
import { workerScript, startWorker } from '../util/worker.js';
import type { CompressJob, Input } from './compressor.js';

export { BLOCK, deflateBlock, sampleEntropy, STORE_ENTROPY, type DeflateRequest, type DeflateReply } from './deflate-block.js';
import { BLOCK, deflateBlock, type DeflateRequest, type DeflateReply } from './deflate-block.js';

const DICT = 32 << 10;

function gzipHeader(level: number): Buffer {
  // magic, CM=deflate, FLG=0, MTIME=0 (as gzip -n), XFL (2: best, 4: fastest), OS=3 (Unix)
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level >= 9 ? 2 : level <= 1 ? 4 : 0, 3]);
}

/** CRC-32 and length (mod 2^32) of a member's uncompressed bytes. */
function gzipTrailer(crc: number, size: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(size % 0x100000000, 4);
  return t;
}

/** Input blocks of BLOCK bytes (the last may be shorter or empty), each in its own ArrayBuffer. */
interface BlockSource {
  next(): Promise<Buffer | undefined>;
  recycle(b: Uint8Array): void;
  close(): Promise<void>;
}

function pool(): { take(): Buffer; give(b: Uint8Array): void } {
  const free: Buffer[] = [];
  return {
    take: () => free.pop() ?? Buffer.allocUnsafeSlow(BLOCK),
    give: (b) => { if (b.buffer.byteLength === BLOCK && free.length < 16) free.push(Buffer.from(b.buffer, 0, BLOCK)); },
  };
}

function fileBlocks(input: { path: string; open?: () => Promise<BlockReader> }, onRead: (n: number) => void): BlockSource {
  const p = pool();
  let pos = 0;
  const opened = input.open ? input.open() : openFile(input.path);
  opened.catch(() => {});
  return {
    async next() {
      const f = await opened;
      const b = p.take();
      const n = await f.read(b, pos);
      pos += n;
      onRead(n);
      if (n === 0) { p.give(b); return undefined; }
      return b.subarray(0, n);
    },
    recycle: p.give,
    async close() { await (await opened).close(); },
  };
}

/** Collects pushed chunks into blocks; the feed waits while enough blocks are queued. */
function feedBlocks(feed: (write: (chunk: Buffer) => Promise<void>) => Promise<void>, onRead: (n: number) => void, maxQueued: number): BlockSource {
  const p = pool();
  const queue: Buffer[] = [];
  let cur: Buffer | undefined;
  let fill = 0;
  let ended = false;
  let failure: unknown;
  let wakeReader: (() => void) | undefined;
  let wakeWriter: (() => void) | undefined;
  const wake = (): void => { wakeReader?.(); wakeReader = undefined; };
  const fed = feed(async (chunk) => {
    let off = 0;
    while (off < chunk.length) {
      cur ??= p.take();
      const k = Math.min(chunk.length - off, BLOCK - fill);
      chunk.copy(cur, fill, off, off + k);
      fill += k;
      off += k;
      if (fill === BLOCK) {
        queue.push(cur);
        cur = undefined;
        fill = 0;
        wake();
        while (queue.length >= maxQueued && !failure) await new Promise<void>((r) => { wakeWriter = r; });
        if (failure) throw failure;
      }
    }
    onRead(chunk.length);
  }).then(
    () => { if (cur && fill) queue.push(cur.subarray(0, fill)); cur = undefined; ended = true; wake(); },
    (e) => { failure ??= e; ended = true; wake(); },
  );
  return {
    async next() {
      for (;;) {
        if (failure) throw failure;
        const b = queue.shift();
        if (b) { wakeWriter?.(); wakeWriter = undefined; return b; }
        if (ended) return undefined;
        await new Promise<void>((r) => { wakeReader = r; });
      }
    },
    recycle: p.give,
    async close() {
      failure ??= new OtapackError('INTERNAL', 'compression stopped');
      wakeWriter?.();
      await fed;
    },
  };
}

/** Deflates blocks on worker threads, in order, keeping a bounded number in flight. */
class Deflaters {
  private workers: Worker[] = [];
  private pending = new Map<number, { resolve(r: DeflateReply): void; reject(e: unknown): void }>();
  private rr = 0;
  private failure: unknown;

  static async start(n: number): Promise<Deflaters | undefined> {
    const script = workerScript('deflate-worker.js', import.meta.url);
    if (!script) return undefined;
    const d = new Deflaters();
    d.workers = await Promise.all(Array.from({ length: n }, () => startWorker(script)));
    for (const w of d.workers) {
      w.on('message', (m: DeflateReply) => {
        const p = d.pending.get(m.id);
        d.pending.delete(m.id);
        p?.resolve(m);
      });
      w.on('error', (e) => d.fail(e));
      w.on('exit', (code) => { if (code !== 0) d.fail(new Error(`deflate worker exited (${code})`)); });
    }
    return d;
  }

  private fail(e: unknown): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  deflate(r: DeflateRequest): Promise<DeflateReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(r.id, { resolve, reject });
      // only the blocks' own buffers are moved to the worker (never a shared pool's)
      const transfer = r.data.byteOffset === 0 && r.data.buffer.byteLength === BLOCK ? [r.data.buffer as ArrayBuffer] : [];
      this.workers[this.rr++ % this.workers.length]!.postMessage(r, transfer);
    });
  }

  async stop(): Promise<void> {
    this.failure ??= new Error('stopped');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export function parallelGzip(input: Input, level: number, threads = availableParallelism(), members = false): CompressJob {
  let consumed = 0;
  const onRead = (n: number): void => { consumed += n; };
  const inFlight = Math.max(2, threads) * 2;
  const source = 'path' in input ? fileBlocks(input, onRead) : feedBlocks(input.feed, onRead, inFlight);
  let aborted = false;
  let deflaters: Deflaters | undefined;
  let settle!: { resolve(): void; reject(e: unknown): void };
  const done = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
  done.catch(() => {});

  async function* run(): AsyncGenerator<Buffer> {
    try {
      deflaters = await Deflaters.start(Math.max(1, threads));
      const deflate = async (data: Buffer, dict: Buffer | undefined, last: boolean, id: number): Promise<Buffer> => {
        if (!deflaters) {
          const out = deflateBlock({ data, dict, level, last });
          source.recycle(data);
          return out;
        }
        const r = await deflaters.deflate({ id, data, dict, level, last });
        source.recycle(r.data);
        return Buffer.from(r.out.buffer, r.out.byteOffset, r.out.byteLength);
      };
      if (!members) yield gzipHeader(level);
      let crc = 0;
      let size = 0;
      let id = 0;
      let dict: Buffer | undefined;
      // libdeflate takes no dictionary. node:zlib's comes from two buffers used in turn: a block's
      // dictionary is copied (structured clone, or used in-thread) as it is dispatched, before the
      // buffer is refilled. A fresh 32 KiB copy per block left V8 up to ~64 MiB of dead external
      // memory to collect when blocks came fast (the holes of a sparse image).
      const dicts = nativeDeflate() || members ? undefined : [Buffer.allocUnsafe(DICT), Buffer.allocUnsafe(DICT)];
      const queue: Promise<Buffer>[] = [];
      let held = await source.next(); // one block is held back until we know whether it is the last
      for (;;) {
        if (aborted) return;
        const next = held ? await source.next() : undefined;
        const block = held ?? Buffer.from(new Uint8Array(0));
        const last = next === undefined;
        let nextDict: Buffer | undefined;
        if (members) {
          // the member's CRC and length are taken before the block's buffer goes to a worker
          const trailer = gzipTrailer(crc32(block, 0), block.length);
          queue.push(deflate(block, undefined, true, id++).then((piece) => Buffer.concat([gzipHeader(level), piece, trailer])));
        } else {
          crc = crc32(block, crc);
          size += block.length;
          if (dicts && block.length >= DICT) block.copy((nextDict = dicts[id % 2]!), 0, block.length - DICT);
          queue.push(deflate(block, dict, last, id++));
        }
        queue[queue.length - 1]!.catch(() => {});
        dict = nextDict;
        held = next;
        while (queue.length >= inFlight || (last && queue.length)) yield await queue.shift()!;
        if (last) break;
      }
      if (!members) yield gzipTrailer(crc, size);
      settle.resolve();
    } catch (e) {
      const io = (e as NodeJS.ErrnoException)?.code !== undefined && 'path' in input;
      const err = e instanceof OtapackError ? e : io ? new OtapackError('INPUT', `${(input as { path: string }).path}: ${(e as Error).message}`) : new OtapackError('TOOL', `gzip compression failed: ${(e as Error)?.message ?? e}`);
      settle.reject(err);
      throw err;
    } finally {
      await deflaters?.stop();
      await source.close().catch(() => {});
      if (aborted) settle.reject(new OtapackError('INTERRUPTED', 'compression stopped'));
    }
  }

  return {
    output: run(),
    done,
    consumed: () => consumed,
    abort: () => {
      aborted = true;
      void deflaters?.stop();
      settle.reject(new OtapackError('INTERRUPTED', 'compression stopped'));
    },
  };
}
