// The "zlib" codec compresses on every core (blocks deflated in worker threads, chained by a
// 32 KiB dictionary into one deflate stream, one gzip member). Judged by GNU gzip: the stream
// is valid and gives back the input; the bytes do not depend on the thread count, nor on whether
// the workers run (compiled build) or the blocks are deflated in this thread (TypeScript sources).
// Members mode (for Mender) makes one complete member per block instead.
import { afterAll, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, openSync, ftruncateSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { crc32, inflateRawSync } from 'node:zlib';
import { execa } from 'execa';
import { parallelGzip as fromSources } from '../src/compress/parallel-gzip.js';
import { requires } from './helpers/require-tool.js';
import { ROOT } from './helpers/run.js';

const dir = mkdtempSync(join(tmpdir(), 'otapack-pgz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function gz(make: typeof fromSources, input: Parameters<typeof fromSources>[0], threads: number, level = 6, members = false): Promise<Buffer> {
  const job = make(input, level, threads, members);
  const parts: Buffer[] = [];
  for await (const b of job.output) parts.push(Buffer.from(b));
  await job.done;
  return Buffer.concat(parts);
}

/** Equal bytes, or a failure naming the first differing offset and which 1 MiB blocks moved. */
function expectSame(got: Buffer, want: Buffer, onDisk: Buffer): void {
  if (got.equals(want)) return;
  let i = 0;
  while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++;
  const M = 1 << 20;
  const moved: string[] = [];
  for (let k = 0; k * M < got.length; k++) for (let j = 0; j * M < want.length; j++) if (k !== j && got.subarray(k * M, (k + 1) * M).equals(want.subarray(j * M, (j + 1) * M))) moved.push(`${j}->${k}`);
  throw new Error(`output differs from the input at byte ${i} (lengths ${got.length}/${want.length}; blocks moved: ${moved.join(' ') || 'none'}; file on disk ${onDisk.equals(want) ? 'unchanged' : 'CHANGED'})`);
}

function sample(): Buffer {
  // text, incompressible bytes, zeros and repeats reaching across the 1 MiB block edges
  let x = 7;
  const rnd = Buffer.alloc(3 << 20);
  for (let i = 0; i < rnd.length; i++) { x = (x * 1103515245 + 12345) >>> 0; rnd[i] = x >>> 24; }
  const text = Buffer.from(readFileSync(new URL('../README.md', import.meta.url), 'utf8').repeat(20));
  return Buffer.concat([text, rnd, Buffer.alloc(2 << 20), rnd.subarray(0, 1 << 20), text.subarray(0, 12345)]);
}

test('valid gzip, input restored, same bytes for 1/2/4 threads, workers or not, file or feed', async () => {
  const { parallelGzip: compiled } = await import('../dist/compress/parallel-gzip.js');
  const data = sample();
  const path = join(dir, 'in.bin');
  writeFileSync(path, data);
  const ref = await gz(compiled, { path }, 2);
  expect(ref.subarray(0, 4)).toEqual(Buffer.from([0x1f, 0x8b, 8, 0]));
  writeFileSync(join(dir, 'out.gz'), ref);
  await execa('gzip', ['-t', join(dir, 'out.gz')]);
  const back = (await execa('gzip', ['-dc', join(dir, 'out.gz')], { encoding: 'buffer', stripFinalNewline: false })).stdout;
  expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  expect(ref.length).toBeLessThan(data.length * 0.75);
  for (const t of [1, 4]) expect((await gz(compiled, { path }, t)).equals(ref)).toBe(true);
  expect((await gz(fromSources, { path }, 2)).equals(ref)).toBe(true);
  // pushed in odd-sized pieces, as convert feeds it
  const feed = async (write: (c: Buffer) => Promise<void>): Promise<void> => { for (let o = 0; o < data.length; o += 777_777) await write(data.subarray(o, o + 777_777)); };
  expect((await gz(compiled, { feed }, 2)).equals(ref)).toBe(true);
  // the empty input is a valid, empty gzip stream
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'empty.gz'), await gz(compiled, { path: join(dir, 'empty') }, 2));
  expect((await execa('gzip', ['-dc', join(dir, 'empty.gz')], { encoding: 'buffer', stripFinalNewline: false })).stdout.length).toBe(0);
}, 120_000);

test('incompressible blocks go out stored (exact size), zero blocks reuse one piece; gzip restores both', async () => {
  const { parallelGzip: compiled, deflateBlock, sampleEntropy, STORE_ENTROPY } = await import('../dist/compress/parallel-gzip.js');
  const MiB = 1 << 20;
  const rnd = randomBytes(4 * MiB); // as compressed or encrypted files look
  expect(sampleEntropy(rnd)).toBeGreaterThan(STORE_ENTROPY);
  const text = Buffer.from(readFileSync(new URL('../README.md', import.meta.url), 'utf8').repeat(40)).subarray(0, MiB);
  expect(sampleEntropy(text)).toBeLessThan(6);
  const path = join(dir, 'rnd.bin');
  writeFileSync(path, rnd);
  const out = await gz(compiled, { path }, 2, 4);
  // header + 4 blocks of 17 stored blocks (5-byte headers) + trailer: no zlib effort, no growth beyond that
  expect(out.length).toBe(10 + 4 * (MiB + 17 * 5) + 8);
  writeFileSync(join(dir, 'rnd.gz'), out);
  // (execa must not strip a final newline byte from binary output: random data ends in 0x0a
  // one run in 256, which once looked like a codec fault)
  expectSame(Buffer.from((await execa('gzip', ['-dc', join(dir, 'rnd.gz')], { encoding: 'buffer', stripFinalNewline: false })).stdout), rnd, readFileSync(path));
  // text is still deflated
  expect(deflateBlock({ data: text, level: 4, last: false }).length).toBeLessThan(text.length / 2);
  // zeros after zeros: the same piece each time (a copy), tiny, and it inflates to zeros
  const zeros = Buffer.alloc(MiB);
  const dict = Buffer.alloc(32 << 10);
  const a = deflateBlock({ data: zeros, dict, level: 4, last: false });
  const b = deflateBlock({ data: zeros, dict, level: 4, last: false });
  expect(a.equals(b) && a !== b).toBe(true);
  expect(a.length).toBeLessThan(4096);
  const mixed = Buffer.concat([text, zeros, zeros, rnd.subarray(0, MiB), zeros, text.subarray(0, 1000)]);
  writeFileSync(join(dir, 'mixed.bin'), mixed);
  writeFileSync(join(dir, 'mixed.gz'), await gz(compiled, { path: join(dir, 'mixed.bin') }, 2, 4));
  await execa('gzip', ['-t', join(dir, 'mixed.gz')]);
  expect(Buffer.from((await execa('gzip', ['-dc', join(dir, 'mixed.gz')], { encoding: 'buffer', stripFinalNewline: false })).stdout).equals(mixed)).toBe(true);
}, 120_000);

// CI installs libdeflate-dev and builds with OTAPACK_NATIVE_REQUIRED=1: there the addon must exist
const haveNative = requires({
  what: 'the native deflate addon', files: [join(ROOT, 'native/build/otapack_deflate.node')],
  install: 'apt-get install gcc libdeflate-dev, then npm run build',
});

test.skipIf(!haveNative)('the native deflate (libdeflate) is the engine and makes byte-aligned, non-final pieces that chain into one stream', async () => {
  const { deflateEngine, nativeDeflate } = await import('../dist/compress/native-deflate.js');
  const native = nativeDeflate();
  expect(native, 'the addon is built but does not load (or OTAPACK_DEFLATE=zlib is set)').not.toBeNull();
  expect(deflateEngine()).toMatch(/^libdeflate \d/);
  const text = Buffer.from(readFileSync(new URL('../README.md', import.meta.url), 'utf8').repeat(30));
  const six = Buffer.from(randomBytes(300_000).map((b) => 0x30 + (b & 0x3f)));
  // sizes around the stored-block and byte limits, and every end-of-stream bit position
  const inputs = [text.subarray(0, 1), text.subarray(0, 3), six.subarray(0, 999), text.subarray(0, 65_535), six.subarray(0, 65_536), text.subarray(0, 70_001), six, randomBytes(20_000), Buffer.alloc(100_000), text];
  for (const level of [1, 4, 6, 9, 12]) {
    const pieces = inputs.map((d) => native!.deflate(d, level, false));
    for (const p of pieces) expect(p.subarray(-4)).toEqual(Buffer.from([0, 0, 0xff, 0xff]));
    const stream = Buffer.concat([...pieces, native!.deflate(text.subarray(0, 5000), level, true)]);
    expect(inflateRawSync(stream).equals(Buffer.concat([...inputs, text.subarray(0, 5000)])), `level ${level}`).toBe(true);
  }
  // its CRC-32 (the gzip trailer's) is zlib's, continued from any value
  for (const d of inputs) for (const start of [0, 1, 0xffffffff, 0x12345678]) expect(native!.crc32(start, d)).toBe(crc32(d, start));
});

test('the same sample through the native and node:zlib engines: valid gzip both, each thread-count independent', async () => {
  const { nativeDeflate } = await import('../dist/compress/native-deflate.js');
  const { parallelGzip: compiled } = await import('../dist/compress/parallel-gzip.js');
  const native = nativeDeflate();
  // the same sample through both engines: valid gzip (judged by GNU gzip), thread-count independent
  const data = sample();
  const path = join(dir, 'engines.bin');
  writeFileSync(path, data);
  const outs: Buffer[] = [];
  for (const engine of ['native', 'zlib']) {
    const saved = process.env.OTAPACK_DEFLATE;
    if (engine === 'zlib') process.env.OTAPACK_DEFLATE = 'zlib'; // worker threads copy the environment when they start
    try {
      const a = await gz(compiled, { path }, 2, 4);
      expect((await gz(compiled, { path }, 3, 4)).equals(a), engine).toBe(true);
      writeFileSync(join(dir, `${engine}.gz`), a);
      await execa('gzip', ['-t', join(dir, `${engine}.gz`)]);
      expect(Buffer.from((await execa('gzip', ['-dc', join(dir, `${engine}.gz`)], { encoding: 'buffer', stripFinalNewline: false })).stdout).equals(data), engine).toBe(true);
      outs.push(a);
    } finally {
      if (saved === undefined) delete process.env.OTAPACK_DEFLATE;
      else process.env.OTAPACK_DEFLATE = saved;
    }
  }
  // two engines, two different (both valid) streams - unless the native one is not built here
  expect(outs[0]!.equals(outs[1]!)).toBe(!native);
}, 120_000);

test('members mode (Mender): one complete gzip member per 1 MiB block, each with its CRC and length; gzip restores the whole; both engines, thread-count independent', async () => {
  const { parallelGzip: compiled } = await import('../dist/compress/parallel-gzip.js');
  const data = sample();
  const path = join(dir, 'members.bin');
  writeFileSync(path, data);
  for (const engine of ['native', 'zlib']) {
    const saved = process.env.OTAPACK_DEFLATE;
    if (engine === 'zlib') process.env.OTAPACK_DEFLATE = 'zlib';
    try {
      const ref = await gz(compiled, { path }, 2, 4, true);
      expect((await gz(compiled, { path }, 3, 4, true)).equals(ref), engine).toBe(true);
      const feed = async (write: (c: Buffer) => Promise<void>): Promise<void> => { for (let o = 0; o < data.length; o += 777_777) await write(data.subarray(o, o + 777_777)); };
      expect((await gz(compiled, { feed }, 2, 4, true)).equals(ref), engine).toBe(true);
      // walk the members: header, a raw deflate stream that ends by itself, CRC-32 and length of its block
      const M = 1 << 20;
      let off = 0;
      let k = 0;
      while (off < ref.length) {
        expect(ref.subarray(off, off + 4), `member ${k} header`).toEqual(Buffer.from([0x1f, 0x8b, 8, 0]));
        const { buffer: out, engine: z } = inflateRawSync(ref.subarray(off + 10), { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
        const block = data.subarray(k * M, (k + 1) * M);
        expect(out.equals(block), `member ${k} (${engine})`).toBe(true);
        const end = off + 10 + z.bytesWritten;
        expect(ref.readUInt32LE(end)).toBe(crc32(block));
        expect(ref.readUInt32LE(end + 4)).toBe(block.length);
        off = end + 8;
        k++;
      }
      expect(k).toBe(Math.ceil(data.length / M));
      writeFileSync(join(dir, `members-${engine}.gz`), ref);
      await execa('gzip', ['-t', join(dir, `members-${engine}.gz`)]);
      expect(Buffer.from((await execa('gzip', ['-dc', join(dir, `members-${engine}.gz`)], { encoding: 'buffer', stripFinalNewline: false })).stdout).equals(data), engine).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.OTAPACK_DEFLATE;
      else process.env.OTAPACK_DEFLATE = saved;
    }
  }
}, 120_000);

test('a large sparse file, read through its data map (holes as zeros), comes back byte for byte', async () => {
  const { parallelGzip: compiled } = await import('../dist/compress/parallel-gzip.js');
  const { openSparse } = await import('../dist/disk/extents.js');
  const MiB = 1 << 20;
  const path = join(dir, 'sparse.img');
  // 80 MiB (over the size where the data map is asked for) with data at unaligned spots, a
  // hole-free stretch of zeros, and data up to the very end
  const fd = openSync(path, 'w');
  ftruncateSync(fd, 80 * MiB);
  const pieces: [number, Buffer][] = [[5, randomBytes(100)], [3 * MiB - 7, Buffer.from('x'.repeat(3 * MiB))], [40 * MiB, Buffer.alloc(2 * MiB)], [80 * MiB - 5000, randomBytes(5000)]];
  for (const [at, b] of pieces) writeSync(fd, b, 0, b.length, at);
  closeSync(fd);
  const want = readFileSync(path);
  const a = await gz(compiled, { path, open: () => openSparse(path) }, 2, 4);
  writeFileSync(join(dir, 'sparse.gz'), a);
  const back = Buffer.from((await execa('gzip', ['-dc', join(dir, 'sparse.gz')], { encoding: 'buffer', stripFinalNewline: false })).stdout);
  expect(back.length).toBe(want.length);
  expect(back.equals(want)).toBe(true);
  // the same bytes as when every block is read
  expect((await gz(compiled, { feed: async (write: (c: Buffer) => Promise<void>) => { for (let o = 0; o < want.length; o += 4 * MiB) await write(want.subarray(o, o + 4 * MiB)); } }, 2, 4)).equals(a)).toBe(true);
}, 120_000);
