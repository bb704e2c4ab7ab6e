// The "zlib" codec compresses on every core (blocks deflated in worker threads, chained by a
// 32 KiB dictionary into one deflate stream, one gzip member). Judged by GNU gzip: the stream
// is valid and gives back the input; the bytes do not depend on the thread count, nor on whether
// the workers run (compiled build) or the blocks are deflated in this thread (TypeScript sources).
import { afterAll, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { parallelGzip as fromSources } from '../src/compress/parallel-gzip.js';

const dir = mkdtempSync(join(tmpdir(), 'otapack-pgz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function gz(make: typeof fromSources, input: Parameters<typeof fromSources>[0], threads: number, level = 6): Promise<Buffer> {
  const job = make(input, level, threads);
  const parts: Buffer[] = [];
  for await (const b of job.output) parts.push(Buffer.from(b));
  await job.done;
  return Buffer.concat(parts);
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
  const back = (await execa('gzip', ['-dc', join(dir, 'out.gz')], { encoding: 'buffer' })).stdout;
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
  expect((await execa('gzip', ['-dc', join(dir, 'empty.gz')], { encoding: 'buffer' })).stdout.length).toBe(0);
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
  expect(Buffer.from((await execa('gzip', ['-dc', join(dir, 'rnd.gz')], { encoding: 'buffer' })).stdout).equals(rnd)).toBe(true);
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
  expect(Buffer.from((await execa('gzip', ['-dc', join(dir, 'mixed.gz')], { encoding: 'buffer' })).stdout).equals(mixed)).toBe(true);
}, 120_000);
