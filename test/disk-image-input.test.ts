// openImageInput: raw images are used in place and never written; gzip/xz/zstd images (found by
// magic bytes, whatever their name) decompress to the original's SHA-256 into a sparse temp file;
// corrupt or truncated input is one INPUT error and leaves no temp file behind.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync, statSync, renameSync, rmSync } from 'node:fs';
import { openImageInput } from '../src/disk/image-input.js';
import { OtapackError } from '../src/errors.js';
import { tmp } from './helpers/run.js';
import { sh, sparseFile, poke, random, sha256File, allocated, MiB } from './helpers/disk-fixtures.js';

let dir: string;
let raw: string;
let rawSha: string;
const SIZE = 48 * MiB + 3 * 512;

beforeAll(async () => {
  dir = tmp('otapack-disk-input-');
  raw = sparseFile(join(dir, 'disk.img'), SIZE);
  poke(raw, 0, random(64 * 1024));
  poke(raw, 7 * MiB + 13, random(300_000));
  poke(raw, 20 * MiB, Buffer.alloc(MiB, 0x5a));
  poke(raw, SIZE - 1000, random(1000));
  rawSha = sha256File(raw);
  for (const [tool, args, ext] of [['gzip', ['-k', '-f', '-6'], 'gz'], ['xz', ['-k', '-f', '-T1', '-1'], 'xz'], ['zstd', ['-k', '-f', '-q'], 'zst']] as const) {
    const r = await sh(tool, [...args, raw]);
    if (r.code !== 0) throw new Error(`${tool}: ${r.stderr}`);
    expect(existsSync(`${raw}.${ext}`)).toBe(true);
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const work = (name: string): string => {
  const w = join(dir, `work-${name}`);
  mkdirSync(w, { recursive: true });
  return w;
};

describe('openImageInput', () => {
  test('a raw .img is used in place and not written', async () => {
    const before = statSync(raw);
    const w = work('raw');
    const input = await openImageInput(raw, w);
    expect(input).toMatchObject({ path: raw, compressed: 'none' });
    await input.cleanup();
    expect(existsSync(raw)).toBe(true);
    expect(statSync(raw).mtimeMs).toBe(before.mtimeMs);
    expect(sha256File(raw)).toBe(rawSha);
    expect(readdirSync(w)).toEqual([]);
  });

  test.each([['gz', 'gzip'], ['xz', 'xz'], ['zst', 'zstd']] as const)('.img.%s decompresses to the same SHA-256, sparsely, and cleans up', async (ext, kind) => {
    const w = work(ext);
    const input = await openImageInput(`${raw}.${ext}`, w);
    expect(input.compressed).toBe(kind);
    expect(input.path.startsWith(w)).toBe(true);
    expect(statSync(input.path).size).toBe(SIZE);
    expect(sha256File(input.path)).toBe(rawSha);
    expect(allocated(input.path)).toBeLessThan(3 * MiB); // ~1.4 MiB of data in a 48 MiB image
    await input.cleanup();
    expect(readdirSync(w)).toEqual([]);
  });

  test('the format comes from the magic bytes, not the name', async () => {
    const misnamed = join(dir, 'really-xz.img.gz');
    writeFileSync(misnamed, readFileSync(`${raw}.xz`));
    const plainNamedGz = join(dir, 'plain.img.gz');
    writeFileSync(plainNamedGz, readFileSync(raw).subarray(0, 1 * MiB));
    const a = await openImageInput(misnamed, work('magic'));
    expect(a.compressed).toBe('xz');
    expect(sha256File(a.path)).toBe(rawSha);
    await a.cleanup();
    const b = await openImageInput(plainNamedGz, work('magic'));
    expect(b).toMatchObject({ path: plainNamedGz, compressed: 'none' });
  });

  test.each([['gz', /corrupt or truncated gzip data \(unexpected end of file\)/], ['xz', /corrupt or truncated xz data .*Unexpected end of input/], ['zst', /corrupt or truncated zstd data/]] as const)(
    'a truncated .%s is one INPUT error and leaves no temp file', async (ext, reason) => {
      const cut = join(dir, `cut.img.${ext}`);
      const whole = readFileSync(`${raw}.${ext}`);
      writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.6)));
      const w = work(`cut-${ext}`);
      const err = await openImageInput(cut, w).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(OtapackError);
      expect((err as OtapackError).code).toBe('INPUT');
      expect((err as Error).message).toMatch(new RegExp(`^${cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      expect((err as Error).message).toMatch(reason);
      expect((err as Error).message).not.toMatch(/\n/);
      expect(readdirSync(w)).toEqual([]);
    });

  test('corrupt gzip data (flipped bytes in the middle) is refused the same way', async () => {
    const bad = join(dir, 'bad.img.gz');
    const b = Buffer.from(readFileSync(`${raw}.gz`));
    for (let i = 1000; i < 1100; i++) b[i]! ^= 0x55;
    writeFileSync(bad, b);
    const w = work('bad');
    await expect(openImageInput(bad, w)).rejects.toThrow(/bad\.img\.gz: corrupt or truncated gzip data/);
    expect(readdirSync(w)).toEqual([]);
  });

  test('a missing input names the file', async () => {
    const err = await openImageInput(join(dir, 'nope.img.xz'), work('missing')).then(() => undefined, (e: unknown) => e);
    expect((err as OtapackError).code).toBe('INPUT');
    expect((err as Error).message).toMatch(/nope\.img\.xz: no such file or directory/);
  });

  test('negative twin of the SHA-256 check: a different image does not match', async () => {
    const other = join(dir, 'other.img');
    renameSync(sparseFile(join(dir, 'other.tmp'), SIZE), other);
    poke(other, 7 * MiB + 13, random(10));
    const r = await sh('gzip', ['-k', '-f', other]);
    expect(r.code).toBe(0);
    const input = await openImageInput(`${other}.gz`, work('other'));
    expect(sha256File(input.path)).not.toBe(rawSha);
    expect(sha256File(input.path)).toBe(sha256File(other));
    await input.cleanup();
  });
});
