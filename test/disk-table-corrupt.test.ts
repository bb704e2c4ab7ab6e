// Damaged or hostile images: readPartitionTable either recovers the way firmware and libfdisk do
// (bad primary GPT → backup, with a warning) or refuses with one INPUT line naming the file and
// the reason. Each refusal has its intact twin in disk-table-read.test.ts or below.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFileSync, truncateSync, statSync, rmSync } from 'node:fs';
import { readPartitionTable } from '../src/disk/table.js';
import { encodeMbr } from '../src/disk/mbr.js';
import { encodeGpt } from '../src/disk/gpt.js';
import { guidFromSeed } from '../src/disk/guid.js';
import { OtapackError } from '../src/errors.js';
import { tmp } from './helpers/run.js';
import { sfdiskImage, sfdiskJson, sparseFile, copySparse, poke, flip, SECTOR, MiB } from './helpers/disk-fixtures.js';

let dir: string;
let gptImg: string;
let mbrImg: string;
let extImg: string;
const GPT_SIZE = 64 * MiB;

beforeAll(async () => {
  dir = tmp('otapack-disk-corrupt-');
  gptImg = await sfdiskImage(join(dir, 'gpt.img'), GPT_SIZE, 'label: gpt\nfirst-lba: 34\nstart=64, size=8000, type=L, name="loader1"\nstart=32768, size=65536, type=U, name="esp"\nstart=98304, size=20000, type=L, name="root"\n');
  mbrImg = await sfdiskImage(join(dir, 'mbr.img'), 64 * MiB, 'label: dos\nlabel-id: 0x12345678\nstart=2048, size=20480, type=c\nstart=22528, size=100000, type=83\n');
  extImg = await sfdiskImage(join(dir, 'ext.img'), 64 * MiB, 'label: dos\nlabel-id: 0x0e0e0e0e\nstart=2048, size=100000, type=5\nstart=4096, size=10000, type=83\nstart=20480, size=10000, type=83\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh copy of a fixture to damage. */
const copy = (src: string): string => {
  const p = join(dir, `case-${n++}.img`);
  copySparse(src, p);
  return p;
};

/** Refused with INPUT, one line, starting with the file name. */
async function expectRefused(path: string, reason: RegExp): Promise<void> {
  const err = await readPartitionTable(path).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(OtapackError);
  const e = err as OtapackError;
  expect(e.code).toBe('INPUT');
  expect(e.message.startsWith(`${path}: `)).toBe(true);
  expect(e.message).not.toMatch(/\n/);
  expect(e.message).toMatch(reason);
}

const lastLba = GPT_SIZE / SECTOR - 1;
const backupEntries = (lastLba - 32) * SECTOR;

describe('GPT damage', () => {
  test('bad primary header CRC: the backup is used and the fallback is reported', async () => {
    const expected = await readPartitionTable(gptImg);
    const img = copy(gptImg);
    flip(img, SECTOR + 60); // inside the disk GUID, covered by the header CRC
    const t = await readPartitionTable(img);
    expect(t.partitions).toEqual(expected.partitions);
    expect(t.warnings).toEqual([`primary GPT is corrupt (header CRC mismatch); using the backup GPT at LBA ${lastLba}`]);
    // sfdisk makes the same choice and sees the same partitions.
    const j = await sfdiskJson(img);
    expect(j.partitions.map((p) => p.start * SECTOR)).toEqual(t.partitions.map((p) => p.start));
  });

  test('bad primary entries CRC: the backup is used and the reason named', async () => {
    const img = copy(gptImg);
    flip(img, 2 * SECTOR + 128 + 40); // partition 2's last LBA
    const t = await readPartitionTable(img);
    expect(t.partitions.map((p) => p.size)).toEqual([8000, 65536, 20000].map((s) => s * SECTOR));
    expect(t.warnings[0]).toMatch(/primary GPT is corrupt \(partition entries CRC mismatch\)/);
  });

  test('bad backup only: the primary is used, the damage is reported', async () => {
    const img = copy(gptImg);
    flip(img, backupEntries + 5);
    const t = await readPartitionTable(img);
    expect(t.partitions).toHaveLength(3);
    expect(t.warnings).toEqual([`the backup GPT at LBA ${lastLba} is corrupt (partition entries CRC mismatch); the primary is used`]);
  });

  test('bad entries CRC in both copies: refused', async () => {
    const img = copy(gptImg);
    flip(img, 2 * SECTOR + 5);
    flip(img, backupEntries + 5);
    await expectRefused(img, /protective MBR \(type 0xEE\) without a valid GPT: no valid GPT: primary \(LBA 1\): partition entries CRC mismatch; backup LBA \d+: partition entries CRC mismatch/);
  });

  test('primary and backup headers both bad: refused', async () => {
    const img = copy(gptImg);
    flip(img, SECTOR + 60);
    flip(img, lastLba * SECTOR + 60);
    await expectRefused(img, /without a valid GPT: .*primary \(LBA 1\): header CRC mismatch; backup LBA \d+: header CRC mismatch/);
  });

  test('protective MBR without any GPT: refused', async () => {
    const img = copy(gptImg);
    poke(img, SECTOR, Buffer.alloc(SECTOR));
    poke(img, lastLba * SECTOR, Buffer.alloc(SECTOR));
    await expectRefused(img, /protective MBR \(type 0xEE\) without a valid GPT: .*no "EFI PART" signature/);
  });

  test('truncated GPT image (partitions past the end, backup gone): refused', async () => {
    const img = copy(gptImg);
    truncateSync(img, 48 * MiB);
    await expectRefused(img, /partition 3 \(sectors 98304–118303\) extends past the end of the image \(98304 sectors\)/);
  });

  test('GPT entries that overlap (consistent CRCs): refused', async () => {
    const img = join(dir, 'gpt-overlap.img');
    sparseFile(img, 32 * MiB);
    const L = '0fc63daf-8483-4772-8e79-3d69d8477de4';
    const g = encodeGpt({ diskGuid: guidFromSeed('d'), diskSizeBytes: 32 * MiB, partitions: [
      { typeGuid: L, uniqueGuid: guidFromSeed('1'), firstLba: 2048, lastLba: 10000, name: 'a' },
      { typeGuid: L, uniqueGuid: guidFromSeed('2'), firstLba: 8192, lastLba: 20000, name: 'b' },
    ] });
    poke(img, 0, g.primary);
    poke(img, g.backupOffset, g.backup);
    await expectRefused(img, /partition 2 \(sectors 8192–20000\) overlaps partition 1 \(sectors 2048–10000\)/);
  });

  test('GPT laid out for 4096-byte sectors: refused by name', async () => {
    const img = join(dir, 'gpt4k.img');
    sparseFile(img, 32 * MiB);
    const g = encodeGpt({ diskGuid: guidFromSeed('4k'), diskSizeBytes: 32 * MiB, partitions: [] });
    poke(img, 0, g.primary.subarray(0, SECTOR)); // protective MBR
    poke(img, 4096, g.primary.subarray(SECTOR, 2 * SECTOR)); // header where 4Kn LBA 1 is
    await expectRefused(img, /laid out for 4096-byte sectors/);
  });
});

describe('MBR damage', () => {
  test('overlapping partitions: refused, naming both', async () => {
    const img = copy(mbrImg);
    poke(img, 0, encodeMbr({ diskSignature: 0x12345678, partitions: [
      { bootable: false, type: 0x0c, startLba: 2048, sectors: 20480 },
      { bootable: false, type: 0x83, startLba: 20000, sectors: 100000 },
    ] }));
    await expectRefused(img, /partition 2 \(sectors 20000–119999\) overlaps partition 1 \(sectors 2048–22527\)/);
  });

  test('partition past the end of the image (truncated): refused', async () => {
    const img = copy(mbrImg);
    truncateSync(img, 50 * MiB);
    await expectRefused(img, /partition 2 \(sectors 22528–122527\) extends past the end of the image \(102400 sectors\): truncated image\?/);
  });

  test('partition over sector 0: refused', async () => {
    const img = copy(mbrImg);
    poke(img, 0, encodeMbr({ diskSignature: 1, partitions: [{ bootable: false, type: 0x83, startLba: 1, sectors: 10 }] }));
    poke(img, 446 + 8, Buffer.from([0, 0, 0, 0])); // start LBA 0
    await expectRefused(img, /partition 1 \(sectors 0–9\) overlaps the partition table/);
  });

  test('logical partition outside its extended partition: refused', async () => {
    const img = copy(extImg);
    const t = await readPartitionTable(img); // intact twin reads fine
    expect(t.partitions.map((p) => p.number)).toEqual([1, 5, 6]);
    // The second EBR (its data entry's size) now reaches beyond the extended partition.
    const secondEbr = (t.partitions[2]!.start / SECTOR) - 2048;
    poke(img, secondEbr * SECTOR + 446 + 12, Buffer.from([0xff, 0xff, 0x0f, 0x00]));
    await expectRefused(img, /partition 6 .* lies outside its extended partition 1/);
  });

  test('EBR chain that loops, or links outside the extended partition: refused', async () => {
    const t = await readPartitionTable(extImg);
    const secondEbr = (t.partitions[2]!.start / SECTOR) - 2048;
    const linkEntry = (rel: number): Buffer => {
      const e = Buffer.alloc(16);
      e[4] = 0x05;
      e.writeUInt32LE(rel, 8);
      e.writeUInt32LE(4096, 12);
      return e;
    };
    const loop = copy(extImg);
    poke(loop, secondEbr * SECTOR + 446 + 16, linkEntry(secondEbr - 2048)); // the second EBR links to itself
    await expectRefused(loop, new RegExp(`extended partition 1: the EBR chain loops back to sector ${secondEbr}`));
    const outside = copy(extImg);
    poke(outside, secondEbr * SECTOR + 446 + 16, linkEntry(200000));
    await expectRefused(outside, /EBR link to sector 202048 points outside the extended partition/);
  });

  test('sector 0 with a boot signature but garbage entries (bare FAT boot sector): refused', async () => {
    const img = copy(mbrImg);
    poke(img, 446, Buffer.from([0x29]));
    await expectRefused(img, /no partition table \(MBR entry 1 has boot flag 0x29/);
  });
});

describe('not a disk image at all', () => {
  test('zero-length file', async () => {
    const img = join(dir, 'empty.img');
    writeFileSync(img, '');
    await expectRefused(img, /empty file \(0 bytes\)/);
  });
  test('truncated to less than a sector', async () => {
    const img = copy(mbrImg);
    truncateSync(img, 300);
    await expectRefused(img, /truncated: 300 bytes is less than one 512-byte sector/);
  });
  test('size not a multiple of 512', async () => {
    const img = copy(mbrImg);
    truncateSync(img, statSync(img).size - 100);
    await expectRefused(img, /not a whole number of 512-byte sectors/);
  });
  test('no partition table (all zeros)', async () => {
    const img = sparseFile(join(dir, 'zeros.img'), 4 * MiB);
    await expectRefused(img, /no partition table \(sector 0 has no 0x55AA signature\)/);
  });
  test('missing file', async () => {
    await expectRefused(join(dir, 'nope.img'), /no such file or directory/);
  });
});
