// Broken and unsupported inputs for the converter's reliability tests. Each one is a small real
// image (from the builders in images.ts) damaged in one precise way, or made from scratch with
// sfdisk, with the reason a converter should give as a substring in `expect` (match it
// case-insensitively). All of them should be refused as INPUT errors (exit 4), with one line
// naming the file and the field, before anything is written.
import { execa } from 'execa';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { SECTOR, assembleDisk, hex32From, makeVfat, prng, tool } from './images-lib.js';
import { buildBuildrootImage, buildEfiImage, type FixtureImage } from './images.js';

export interface BadImage {
  name: string;
  path: string;
  /** substring of the reason the converter should give (compare case-insensitively) */
  expect: string;
  /** what is wrong, for a human */
  why: string;
}

// ---------------------------------------------------------------- byte surgery

function patch(path: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(path, 'r+');
  try { fs.writeSync(fd, data, 0, data.length, offset); } finally { fs.closeSync(fd); }
}

function readAt(path: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(path, 'r');
  try { const b = Buffer.alloc(length); fs.readSync(fd, b, 0, length, offset); return b; } finally { fs.closeSync(fd); }
}

async function copy(src: string, dst: string): Promise<string> {
  await execa('cp', ['--sparse=always', src, dst]);
  return dst;
}

/** One 16-byte MBR partition entry (CHS fields left as 0xfe/0xff "use LBA" markers). */
function mbrEntry(type: number, start: number, size: number, boot = false): Buffer {
  const e = Buffer.alloc(16);
  e[0] = boot ? 0x80 : 0;
  e.writeUIntLE(0xfffffe, 1, 3);
  e[4] = type;
  e.writeUIntLE(0xfffffe, 5, 3);
  e.writeUInt32LE(start, 8);
  e.writeUInt32LE(size, 12);
  return e;
}

interface Gpt { header: Buffer; entries: Buffer; headerLba: number; entriesLba: number }

function readGpt(path: string, lba: number): Gpt {
  const header = readAt(path, lba * SECTOR, SECTOR);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') throw new Error(`${path}: no GPT header at LBA ${lba}`);
  const entriesLba = Number(header.readBigUInt64LE(72));
  const n = header.readUInt32LE(80), sz = header.readUInt32LE(84);
  return { header, entries: readAt(path, entriesLba * SECTOR, n * sz), headerLba: lba, entriesLba };
}

function writeGpt(path: string, g: Gpt, fixCrc: { entries: boolean; header: boolean }): void {
  if (fixCrc.entries) g.header.writeUInt32LE(crc32(g.entries), 88);
  if (fixCrc.header) {
    const size = g.header.readUInt32LE(12);
    g.header.writeUInt32LE(0, 16);
    g.header.writeUInt32LE(crc32(g.header.subarray(0, size)), 16);
  }
  patch(path, g.entriesLba * SECTOR, g.entries);
  patch(path, g.headerLba * SECTOR, g.header);
}

/** Applies `edit` to the entry array of both GPT copies and re-signs them, so only `edit` is wrong. */
function editGptEntries(path: string, edit: (entries: Buffer) => void): void {
  const primary = readGpt(path, 1);
  const backupLba = Number(primary.header.readBigUInt64LE(32));
  for (const g of [primary, readGpt(path, backupLba)]) {
    edit(g.entries);
    writeGpt(path, g, { entries: true, header: true });
  }
}

const ENTRY = 128;
const setEntryLba = (entries: Buffer, index: number, first?: number, last?: number): void => {
  if (first !== undefined) entries.writeBigUInt64LE(BigInt(first), index * ENTRY + 32);
  if (last !== undefined) entries.writeBigUInt64LE(BigInt(last), index * ENTRY + 40);
};

// ---------------------------------------------------------------- the list

/**
 * Builds every bad input into `dir` (about 25 MB of sparse files, a few seconds).
 * Bases are small Buildroot (MBR) and EFI (GPT) fixtures.
 */
export async function badImages(dir: string): Promise<BadImage[]> {
  fs.mkdirSync(dir, { recursive: true });
  const small = { rootfsSize: '16M', bootSize: '8M' };
  const mbr: FixtureImage = await buildBuildrootImage(dir, { ...small, name: '.base-mbr.img' });
  const gpt: FixtureImage = await buildEfiImage(dir, { rootfsSize: '16M', espSize: '8M', name: '.base-gpt.img' });
  const out: BadImage[] = [];
  const add = (name: string, expect: string, why: string): string => {
    const path = join(dir, `${name}.img`);
    out.push({ name, path, expect, why });
    return path;
  };
  const p = (img: FixtureImage, n: number) => img.partitions.find((x) => x.number === n)!;
  const gptSectors = gpt.size / SECTOR;

  // -- not a disk at all
  fs.writeFileSync(add('zero-length', 'empty', 'a 0-byte file'), '');
  fs.writeFileSync(add('tiny', 'too small', '300 bytes: not even one sector'), prng('bad:tiny', 300));
  fs.writeFileSync(add('random-junk', 'no partition table', '1 MiB of noise, no 0x55AA signature'), prng('bad:junk', 1 << 20));
  {
    const path = add('bare-ext4', 'no partition table', 'a rootfs.ext4 on its own (a common mistake): a filesystem, not a disk');
    const r = p(mbr, 2);
    await tool('dd', [`if=${mbr.path}`, `of=${path}`, 'bs=512', `skip=${r.start}`, `count=${r.size}`, 'conv=sparse', 'status=none']);
  }

  // -- size vs table
  {
    const path = await copy(mbr.path, add('truncated', 'beyond the end of the image', 'MBR image cut in the middle of the rootfs (and not on a sector boundary)'));
    const r = p(mbr, 2);
    fs.truncateSync(path, (r.start + Math.floor(r.size / 2)) * SECTOR + 100);
  }
  {
    const path = await copy(gpt.path, add('gpt-smaller-than-table', 'beyond the end of the image', 'GPT image cut 200 sectors into the root partition: the backup GPT and most of the root are gone'));
    fs.truncateSync(path, (p(gpt, 2).start + 200) * SECTOR);
  }
  {
    const path = await copy(mbr.path, add('mbr-out-of-range', 'beyond the end of the image', 'MBR partition 2 starts 1000 sectors past the end of the file'));
    const r = p(mbr, 2);
    patch(path, 446 + 16, mbrEntry(0x83, mbr.size / SECTOR + 1000, r.size));
  }
  {
    const path = await copy(gpt.path, add('gpt-out-of-range', 'beyond the end of the image', 'GPT partition 2 ends 100 sectors past the end of the file (CRCs valid)'));
    editGptEntries(path, (e) => setEntryLba(e, 1, undefined, gptSectors + 100));
  }

  // -- overlaps
  {
    const path = await copy(mbr.path, add('mbr-overlap', 'overlaps partition', 'MBR partition 2 starts 100 sectors inside partition 1'));
    const b = p(mbr, 1), r = p(mbr, 2);
    patch(path, 446 + 16, mbrEntry(0x83, b.start + 100, r.size));
  }
  {
    const path = await copy(gpt.path, add('gpt-overlap', 'overlaps partition', 'GPT partition 2 starts inside the ESP (CRCs valid)'));
    editGptEntries(path, (e) => setEntryLba(e, 1, p(gpt, 1).start + 10));
  }
  {
    const path = await copy(mbr.path, add('mbr-over-table', 'overlaps the partition table', 'MBR partition 1 starts at sector 0, on top of the MBR'));
    const b = p(mbr, 1);
    patch(path, 446, mbrEntry(0x0c, 0, b.size + b.start, true));
  }
  {
    const path = await copy(gpt.path, add('gpt-over-table', 'overlaps the partition table', 'GPT partition 1 starts at LBA 10, inside the entry array (LBA 2-33) (CRCs valid)'));
    editGptEntries(path, (e) => setEntryLba(e, 0, 10));
  }

  // -- GPT damage
  {
    const path = await copy(gpt.path, add('gpt-bad-header-crc', 'header CRC', 'one byte of the primary GPT header (disk GUID) changed, CRC not updated; backup intact'));
    const b = readAt(path, SECTOR + 56, 1); b[0]! ^= 0xff; patch(path, SECTOR + 56, b);
  }
  {
    const path = await copy(gpt.path, add('gpt-bad-entries-crc', 'entries CRC', 'a byte of partition 2\'s name in the primary entry array changed, array CRC not updated'));
    const off = 2 * SECTOR + ENTRY + 56;
    const b = readAt(path, off, 1); b[0]! ^= 0x20; patch(path, off, b);
  }
  {
    const path = await copy(gpt.path, add('gpt-backup-only', 'primary GPT header', 'LBA 1-33 zeroed: protective MBR and the backup GPT at the end are fine'));
    patch(path, SECTOR, Buffer.alloc(33 * SECTOR));
  }
  {
    const path = await copy(gpt.path, add('protective-mbr-no-gpt', 'protective MBR', 'a 0xEE protective MBR, but no GPT header anywhere (both copies zeroed)'));
    patch(path, SECTOR, Buffer.alloc(33 * SECTOR));
    patch(path, gpt.size - 33 * SECTOR, Buffer.alloc(33 * SECTOR));
  }

  // -- content
  {
    const path = await copy(mbr.path, add('corrupt-ext4-superblock', 'superblock', 'rootfs superblock s_inodes_count changed: metadata_csum no longer matches'));
    const off = p(mbr, 2).start * SECTOR + 1024;
    const b = readAt(path, off, 4); b[0]! ^= 0x5a; patch(path, off, b);
  }
  {
    const path = add('no-linux-rootfs', 'no Linux root', 'MBR with a single FAT partition: nothing to turn into slot A');
    const fat = join(dir, '.fat-only.vfat');
    await makeVfat({ out: fat, sizeBytes: 8 << 20, label: 'DATA', volumeId: hex32From('bad:fat-only'), files: [{ path: '/README.TXT', data: 'only FAT here\n' }] });
    await assembleDisk({ out: path, sizeBytes: (2048 + 16384) * SECTOR, label: 'dos', labelId: hex32From('bad:fat-only-disk'), parts: [{ start: 2048, size: 16384, type: 'c', bootable: true, file: fat }] });
    fs.rmSync(fat);
  }

  // -- MBR shapes the converter cannot extend
  {
    const path = add('mbr-extended', 'extended', '6 partition entries on MBR: boot, root, data, and an extended partition (p4) holding logical p5 data and p6 swap');
    await mbrFromBase(mbr, path, true);
  }
  {
    const path = add('mbr-full', 'MBR is full', '4 primary partitions (boot, root, data, swap): no free MBR entry for slot B or /data');
    await mbrFromBase(mbr, path, false);
  }

  // -- compressed input
  {
    const path = join(dir, 'truncated.img.xz');
    out.push({ name: 'truncated-xz', path, expect: 'unexpected end', why: 'an .img.xz cut in half (xz says "Unexpected end of input")' });
    const xz = await execa('xz', ['-0', '-T1', '-c', mbr.path], { encoding: 'buffer', maxBuffer: 1 << 30 });
    const data = Buffer.from(xz.stdout as Uint8Array);
    fs.writeFileSync(path, data.subarray(0, Math.floor(data.length / 2)));
  }

  fs.rmSync(mbr.path); fs.rmSync(gpt.path);
  return out;
}

/**
 * The base's boot + root partitions (same sectors, same bytes), then: p3 data (4 MiB), and either
 * p4 swap (4 MiB, the MBR is full) or p4 extended holding p5 data and p6 swap (4 MiB each).
 */
async function mbrFromBase(base: FixtureImage, path: string, extended: boolean): Promise<void> {
  const [b, r] = [base.partitions[0]!, base.partitions[1]!];
  const p3 = Math.ceil((r.start + r.size) / 2048) * 2048;
  const p4 = p3 + 8192;
  const lines = ['label: dos', `label-id: 0x${hex32From(`bad:${path}`)}`, 'unit: sectors', '',
    `start=${b.start}, size=${b.size}, type=c, bootable`, `start=${r.start}, size=${r.size}, type=83`,
    `start=${p3}, size=8192, type=83`];
  let end: number;
  if (extended) {
    lines.push(`start=${p4}, size=${2 * (2048 + 8192)}, type=5`, `start=${p4 + 2048}, size=8192, type=83`, `start=${p4 + 2048 + 8192 + 2048}, size=8192, type=82`);
    end = p4 + 2 * (2048 + 8192);
  } else {
    lines.push(`start=${p4}, size=8192, type=82`);
    end = p4 + 8192;
  }
  await copy(base.path, path);
  fs.truncateSync(path, end * SECTOR);
  await tool('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '--wipe', 'never', path], { input: lines.join('\n') + '\n' });
}
