// computeBmap: the real `bmaptool copy` accepts our bmaps (it checks the file checksum and every
// range's SHA-256) and copies exactly the mapped ranges; a single wrong range checksum makes it
// fail. For a sparse file whose data extents are passed as `mapped`, the bmap is byte-identical
// to `bmaptool create`'s. Identical A/B slots reuse range checksums instead of being read twice.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFileSync, readFileSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { sealBmap, type BmapCopy } from '../src/disk/bmap.js';
import { computeBmap } from './helpers/bmap.js';
import { OtapackError } from '../src/errors.js';
import { tmp } from './helpers/run.js';
import { sh, sparseFile, copySparse, poke, peek, random, sha256File, MiB } from './helpers/disk-fixtures.js';

let dir: string;
let img: string;
const SIZE = 64 * MiB + 1536; // last block is partial, as in images not sized to 4 KiB
// Data written at block-aligned places, so these are exactly the file's data extents.
const DATA: [number, number][] = [[0, 8192], [MiB, MiB + 3 * 4096], [10 * MiB, 12 * MiB], [40 * MiB, 40 * MiB + 4096], [64 * MiB, SIZE]];
const UNMAPPED: [number, number] = [50 * MiB, 50 * MiB + 4096]; // data the caller says is not needed

beforeAll(() => {
  dir = tmp('otapack-disk-bmap-');
  img = sparseFile(join(dir, 'image.img'), SIZE);
  for (const [s, e] of [...DATA, UNMAPPED]) poke(img, s, random(e - s));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function bmapOf(path: string, size: number, mapped: [number, number][], copies?: BmapCopy[], count?: { bytes: number }) {
  const fh = await open(path, 'r');
  try {
    // A FileHandle that counts what is read, to see which ranges were really hashed.
    const counting = count ? ({ read: (async (...a: Parameters<FileHandle['read']>) => { const r = await (fh.read as (...x: unknown[]) => Promise<{ bytesRead: number }>)(...a); count.bytes += r.bytesRead; return r; }) } as unknown as FileHandle) : fh;
    return await computeBmap(counting, size, mapped, { copies });
  } finally {
    await fh.close();
  }
}

async function bmaptoolCopy(bmap: string, image: string, target: string) {
  return sh('bmaptool', ['copy', '--bmap', bmap, image, target]);
}

describe('computeBmap against bmaptool', () => {
  test('bmaptool copy accepts it and writes exactly the mapped ranges', async () => {
    const r = await bmapOf(img, SIZE, DATA);
    const bmap = join(dir, 'image.bmap');
    writeFileSync(bmap, r.xml);
    const target = join(dir, 'target.img');
    const c = await bmaptoolCopy(bmap, img, target);
    expect(c.stderr).not.toMatch(/ERROR|mismatch/);
    expect(c.code).toBe(0);
    expect(sealBmap(r.xml)).toBe(r.xml); // resealing a sealed bmap changes nothing
    expect(r.ranges.map((x) => [x.first, x.last])).toEqual([[0, 1], [256, 258], [2560, 3071], [10240, 10240], [16384, 16384]]);
    expect(r.mappedBytes).toBe((2 + 3 + 512 + 1 + 1) * 4096);
    for (const [s, e] of DATA) expect(sha256File(target, s, e - s)).toBe(sha256File(img, s, e - s));
    // The range the bmap leaves out was not copied: zeros in the target, data in the image.
    expect(peek(target, UNMAPPED[0], 4096).every((b) => b === 0)).toBe(true);
    expect(peek(img, UNMAPPED[0], 4096).every((b) => b === 0)).toBe(false);
  });

  test('unaligned, unordered, overlapping mapped ranges give the same bmap as the aligned ones', async () => {
    const aligned = await bmapOf(img, SIZE, DATA);
    const messy = await bmapOf(img, SIZE, [[64 * MiB + 10, SIZE], [100, 200], [10 * MiB + 5, 11 * MiB], [150, 8000], [11 * MiB - 7, 12 * MiB - 1], [MiB + 4095, MiB + 3 * 4096 - 1], [MiB, MiB + 1], [40 * MiB + 4000, 40 * MiB + 4001], [5, 5]]);
    expect(messy.xml).toBe(aligned.xml);
  });

  test('byte-identical to `bmaptool create` for a sparse file whose data extents are passed as mapped', async () => {
    const file = sparseFile(join(dir, 'extents.img'), SIZE);
    for (const [s, e] of DATA) poke(file, s, peek(img, s, e - s));
    const theirs = join(dir, 'extents.bmap');
    const r = await sh('bmaptool', ['create', '-o', theirs, file]);
    expect(r.code).toBe(0);
    const ours = await bmapOf(file, SIZE, DATA);
    expect(ours.xml).toBe(readFileSync(theirs, 'utf8'));
  });

  test('negative twin: one wrong range checksum (file checksum resealed) makes bmaptool copy fail', async () => {
    const r = await bmapOf(img, SIZE, DATA);
    const bad = r.ranges[2]!.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const bmap = join(dir, 'bad-range.bmap');
    writeFileSync(bmap, sealBmap(r.xml.replace(r.ranges[2]!.sha256, bad)));
    const c = await bmaptoolCopy(bmap, img, join(dir, 'bad-target.img'));
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/checksum mismatch for blocks range 2560-3071/);
  });

  test('negative twin: an edited bmap without a resealed file checksum is rejected as a whole', async () => {
    const r = await bmapOf(img, SIZE, DATA);
    const bmap = join(dir, 'bad-file.bmap');
    writeFileSync(bmap, r.xml.replace('<Range chksum', '<Range  chksum'));
    const c = await bmaptoolCopy(bmap, img, join(dir, 'bad-file-target.img'));
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/checksum mismatch for bmap file/);
  });

  test('mapped ranges outside the image are a programming error', async () => {
    const err = await bmapOf(img, SIZE, [[0, SIZE + 1]]).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OtapackError);
    expect((err as OtapackError).code).toBe('INTERNAL');
  });
});

describe('identical A/B slots share range checksums', () => {
  const A = 4 * MiB;
  const B = 20 * MiB;
  const LEN = 16 * MiB;
  const slotData: [number, number][] = [[0, 64 * 1024], [MiB, 3 * MiB], [LEN - 4096, LEN]]; // relative to a slot
  const size = 40 * MiB;
  let ab: string;
  const mapped = (): [number, number][] => [[0, 4096], ...slotData.map(([s, e]) => [A + s, A + e] as [number, number]), ...slotData.map(([s, e]) => [B + s, B + e] as [number, number])];

  beforeAll(() => {
    ab = sparseFile(join(dir, 'ab.img'), size);
    poke(ab, 0, random(4096));
    for (const [s, e] of slotData) {
      const d = random(e - s);
      poke(ab, A + s, d);
      poke(ab, B + s, d);
    }
  });

  test('slot B is not read again, and bmaptool copy verifies the reused checksums', async () => {
    const plainCount = { bytes: 0 };
    const plain = await bmapOf(ab, size, mapped(), undefined, plainCount);
    const count = { bytes: 0 };
    const shared = await bmapOf(ab, size, mapped(), [{ from: A, to: B, length: LEN }], count);
    const slotBytes = slotData.reduce((n, [s, e]) => n + e - s, 0);
    expect(plainCount.bytes).toBe(4096 + 2 * slotBytes);
    expect(count.bytes).toBe(4096 + slotBytes); // B's data was never read
    // Same blocks mapped; the ranges inside A and B carry equal checksums.
    expect(shared.mappedBytes).toBe(plain.mappedBytes);
    const inSlot = (base: number) => shared.ranges.filter((r) => r.first * 4096 >= base && r.first * 4096 < base + LEN).map((r) => [r.first - base / 4096, r.last - base / 4096, r.sha256]);
    expect(inSlot(B)).toEqual(inSlot(A));
    expect(inSlot(A)).toHaveLength(3);
    const bmap = join(dir, 'ab.bmap');
    writeFileSync(bmap, shared.xml);
    const target = join(dir, 'ab-target.img');
    const c = await bmaptoolCopy(bmap, ab, target);
    expect(c.code).toBe(0);
    expect(sha256File(target)).toBe(sha256File(ab));
  });

  test('negative twin: if B in fact differs, the reused checksum is wrong and bmaptool copy fails', async () => {
    const differs = join(dir, 'ab-differs.img');
    copySparse(ab, differs);
    poke(differs, B + MiB + 12345, Buffer.from([peek(differs, B + MiB + 12345, 1)[0]! ^ 1]));
    const r = await bmapOf(differs, size, mapped(), [{ from: A, to: B, length: LEN }]);
    const bmap = join(dir, 'ab-differs.bmap');
    writeFileSync(bmap, r.xml);
    const c = await bmaptoolCopy(bmap, differs, join(dir, 'ab-differs-target.img'));
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/checksum mismatch for blocks range 5376-5887/);
  });

  test('copies must be block-aligned', async () => {
    const err = await bmapOf(ab, size, mapped(), [{ from: A + 512, to: B, length: LEN }]).then(() => undefined, (e: unknown) => e);
    expect((err as OtapackError).code).toBe('INTERNAL');
    expect((err as Error).message).toMatch(/not aligned to 4096-byte blocks/);
  });
});
