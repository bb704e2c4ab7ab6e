// copyRange: the destination range equals the source range (judged by cmp), stays sparse (judged
// by st_blocks), unaligned offsets and lengths included; onChunk sees exactly the source bytes.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { copyRange } from '../src/disk/sparse-copy.js';
import { openDirect } from '../src/disk/direct-io.js';
import { OtapackError } from '../src/errors.js';
import { tmp } from './helpers/run.js';
import { sh, sparseFile, poke, random, allocated, MiB } from './helpers/disk-fixtures.js';

const GiB = 1024 * MiB;
let dir: string;
let src: string;
let dataBytes = 0;

beforeAll(() => {
  dir = tmp('otapack-disk-copy-');
  src = sparseFile(join(dir, 'src.img'), GiB);
  const islands: [number, Buffer][] = [
    [0, random(4096)],
    [MiB + 100, random(5000)], // unaligned, straddles blocks
    [300 * MiB, random(8 * MiB)],
    [500 * MiB, Buffer.concat([random(65536), Buffer.alloc(65536), random(65536)])], // written zeros in the middle
    [GiB - 777, random(777)], // tail
  ];
  for (const [off, b] of islands) {
    poke(src, off, b);
    dataBytes += b.length;
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** cmp of two byte ranges; true when equal. */
async function cmpRange(a: string, aOff: number, b: string, bOff: number, len: number): Promise<{ equal: boolean; out: string }> {
  const r = await sh('cmp', ['-i', `${aOff}:${bOff}`, '-n', `${len}`, a, b]);
  return { equal: r.code === 0, out: r.stdout + r.stderr };
}

async function copy(srcOff: number, dstPath: string, dstOff: number, len: number, dstSize: number, tee = true, withDirect = false) {
  sparseFile(dstPath, dstSize);
  const s = await open(src, 'r');
  const d = await open(dstPath, 'r+');
  const direct = withDirect ? await openDirect(dstPath) : undefined;
  if (withDirect) expect(direct, 'O_DIRECT open of a file on the test folder').toBeDefined();
  const hash = createHash('sha256');
  const chunks: { buf: Buffer; sum: string }[] = [];
  const progress: number[] = [];
  try {
    const t0 = performance.now();
    const r = await copyRange(s, srcOff, d, dstOff, len, !tee ? { direct } : {
      direct,
      onChunk: (c) => {
        hash.update(c);
        if (chunks.length < 3) chunks.push({ buf: Buffer.from(c), sum: createHash('sha256').update(c).digest('hex') }); // reused after the callback: keep a copy
      },
      onProgress: (done) => progress.push(done),
    });
    return { ...r, ms: performance.now() - t0, sha: hash.digest('hex'), chunks, progress };
  } finally {
    await s.close();
    await d.close();
    await direct?.fh.close();
  }
}

/** Bytes of `path` in the page cache (util-linux fincore). */
async function cachedBytes(path: string): Promise<number> {
  const r = await sh('fincore', ['--bytes', '--noheadings', '-o', 'RES', path]);
  expect(r.code, r.stderr).toBe(0);
  return Number(r.stdout.trim());
}

async function sourceSha(off: number, len: number): Promise<string> {
  const fh = await open(src, 'r');
  try {
    const h = createHash('sha256');
    const buf = Buffer.alloc(4 * MiB);
    for (let done = 0; done < len;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, len - done), off + done);
      h.update(buf.subarray(0, bytesRead));
      done += bytesRead;
    }
    return h.digest('hex');
  } finally {
    await fh.close();
  }
}

describe('copyRange', () => {
  test('1 GiB sparse image: equal (cmp), sparse, onChunk sees every byte in order', async () => {
    const plain = join(dir, 'plain.img');
    const p = await copy(0, plain, 0, GiB, GiB, false);
    expect((await cmpRange(src, 0, plain, 0, GiB)).equal).toBe(true);
    const dst = join(dir, 'full.img');
    const r = await copy(0, dst, 0, GiB, GiB);
    console.info(`copyRange of a 1 GiB sparse file (${(dataBytes / MiB).toFixed(1)} MiB data): ${p.ms.toFixed(0)} ms; with onChunk feeding SHA-256: ${r.ms.toFixed(0)} ms; ${r.bytesWritten} bytes written, ${r.bytesSkipped} skipped`);
    expect((await cmpRange(src, 0, dst, 0, GiB)).equal).toBe(true);
    expect(r.bytesWritten + r.bytesSkipped).toBe(GiB);
    // Written: whole 4 KiB blocks holding data; the 64 KiB of written zeros are skipped.
    expect(r.bytesWritten).toBe(4096 + 2 * 4096 + 8 * MiB + 2 * 65536 + 4096);
    expect(allocated(dst)).toBeLessThanOrEqual(r.bytesWritten + 64 * 1024); // fs metadata slack only
    expect(allocated(dst)).toBeLessThan(allocated(src));
    expect(r.sha).toBe(await sourceSha(0, GiB));
    expect(r.progress.at(-1)).toBe(GiB);
    expect(r.progress.every((p, i) => i === 0 || p > r.progress[i - 1]!)).toBe(true);
    // Chunks are 1–4 MiB (their memory is reused once the callback has returned).
    for (const c of r.chunks) {
      expect(c.buf.length).toBeLessThanOrEqual(4 * MiB);
      expect(c.buf.length).toBeGreaterThanOrEqual(MiB);
      expect(createHash('sha256').update(c.buf).digest('hex')).toBe(c.sum);
    }
  });

  test('with an O_DIRECT destination: the same bytes, and the data bypassed the page cache (fincore)', async () => {
    const dst = join(dir, 'direct.img');
    const r = await copy(0, dst, 0, GiB, GiB, true, true);
    const direct = await cachedBytes(dst); // before anything reads it back
    expect((await cmpRange(src, 0, dst, 0, GiB)).equal).toBe(true);
    expect(r.sha).toBe(await sourceSha(0, GiB));
    expect(allocated(dst)).toBeLessThanOrEqual(r.bytesWritten + 64 * 1024);
    // the twin: the same copy through the page cache leaves its data cached
    const buffered = join(dir, 'buffered.img');
    const b = await copy(0, buffered, 0, GiB, GiB, false, false);
    const cached = await cachedBytes(buffered);
    console.info(`page cache after copying ${(r.bytesWritten / MiB).toFixed(1)} MiB: O_DIRECT ${direct} bytes, buffered ${cached} bytes`);
    expect(cached).toBeGreaterThanOrEqual(b.bytesWritten);
    expect(direct).toBeLessThan(64 * 1024);
  });

  test.each([
    ['odd source and destination offsets', 12345, 777, 20 * MiB + 17],
    ['straddling one block boundary', MiB + 95, 4095, 4097],
    ['a single byte', MiB + 100, 4096 * 3 + 1, 1],
    ['dense region, unaligned both sides', 300 * MiB - 3, 8191, 8 * MiB + 6],
    ['ending at the source end', GiB - 5000, 1, 5000],
  ].flatMap(([name, ...rest]) => [[name, ...rest, false], [`${name}, O_DIRECT destination`, ...rest, true]]) as [string, number, number, number, boolean][])('%s', async (_name, srcOff, dstOff, len, withDirect) => {
    const dst = join(dir, `u-${srcOff}-${dstOff}-${withDirect}.img`);
    const size = dstOff + len + 3 * 4096;
    const r = await copy(srcOff, dst, dstOff, len, size, true, withDirect);
    expect((await cmpRange(src, srcOff, dst, dstOff, len)).equal).toBe(true);
    // Around the range the destination is still all zeros.
    const d = await open(dst, 'r');
    try {
      const before = Buffer.alloc(dstOff);
      await d.read(before, 0, dstOff, 0);
      const after = Buffer.alloc(size - dstOff - len);
      await d.read(after, 0, after.length, dstOff + len);
      expect(before.every((x) => x === 0) && after.every((x) => x === 0)).toBe(true);
    } finally {
      await d.close();
    }
    expect(r.sha).toBe(await sourceSha(srcOff, len));
    expect(r.bytesWritten + r.bytesSkipped).toBe(len);
    // Only blocks that got data are allocated (plus one block of fs slack per side).
    expect(allocated(dst)).toBeLessThanOrEqual(Math.ceil(r.bytesWritten / 4096 + 2) * 4096 + 8192);
  });

  test('negative twin: zeros are not written, so a destination that is not fresh differs (cmp fails)', async () => {
    const dst = join(dir, 'dirty.img');
    sparseFile(dst, 2 * MiB);
    poke(dst, 0, Buffer.alloc(2 * MiB, 0xff));
    const s = await open(src, 'r');
    const d = await open(dst, 'r+');
    try {
      await copyRange(s, 0, d, 0, 2 * MiB);
    } finally {
      await s.close();
      await d.close();
    }
    const c = await cmpRange(src, 0, dst, 0, 2 * MiB);
    expect(c.equal).toBe(false);
    expect(c.out).toMatch(/differ: (byte|char) 4097/);
  });

  test('a source that ends inside the range is an INPUT error', async () => {
    const short = join(dir, 'short.img');
    sparseFile(short, 10000);
    const s = await open(short, 'r');
    const d = await open(sparseFile(join(dir, 'short-dst.img'), 0), 'r+');
    try {
      const err = await copyRange(s, 5000, d, 0, 6000).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(OtapackError);
      expect((err as OtapackError).code).toBe('INPUT');
      expect((err as Error).message).toMatch(/source ends at byte 10000/);
    } finally {
      await s.close();
      await d.close();
    }
  });
});
