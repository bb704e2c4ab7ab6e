// writePartitionTable: what it writes passes sfdisk --verify and sgdisk -v, reads back through
// sfdisk --json and partx exactly as written, reproduces sfdisk's own bytes for the same table,
// and leaves every byte outside the table sectors (boot code included) as it was.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFileSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { readPartitionTable, writePartitionTable, type NewPartition, type PartitionTable } from '../src/disk/table.js';
import { encodeMbr } from '../src/disk/mbr.js';
import { guidFromSeed, guidToBytes, guidFromBytes } from '../src/disk/guid.js';
import { OtapackError } from '../src/errors.js';
import { tmp } from './helpers/run.js';
import { sh, sfdiskImage, sfdiskJson, partxUuids, partNumber, poke, peek, flip, random, SECTOR, MiB } from './helpers/disk-fixtures.js';

let dir: string;
beforeAll(() => { dir = tmp('otapack-disk-write-'); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function write(path: string, t: Parameters<typeof writePartitionTable>[1]): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await writePartitionTable(fh, t);
  } finally {
    await fh.close();
  }
}

/** sfdisk --verify and (for GPT) sgdisk -v find nothing; their exit codes are not reliable, their words are. */
async function expectVerified(path: string, gpt: boolean): Promise<void> {
  const v = await sh('sfdisk', ['--verify', path]);
  expect(v.stdout + v.stderr).toMatch(/No errors detected/);
  expect(v.stdout + v.stderr).not.toMatch(/warning|corrupt|overlap|error detected/i);
  if (gpt) {
    const s = await sh('sgdisk', ['-v', path]);
    expect(s.stdout).toMatch(/No problems found/);
    expect(s.stdout + s.stderr).not.toMatch(/Caution|Warning|Problem:/);
  }
}

const asNew = (t: PartitionTable): NewPartition[] => t.partitions.map((p) => ({ start: p.start, size: p.size, type: p.type, name: p.name, bootable: p.bootable, uuid: t.kind === 'gpt' ? p.partuuid : undefined, attributes: p.attributes }));

/** A file of random bytes, so any byte we should not have touched shows. */
function randomImage(path: string, size: number): Buffer {
  const b = random(size);
  writeFileSync(path, b);
  return b;
}

/** Byte ranges [start, end) that differ between two buffers of equal length. */
function diffRanges(a: Buffer, b: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const last = out[out.length - 1];
    if (last && last[1] >= i - 512) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

describe('MBR written by otapack', () => {
  test('passes sfdisk --verify, reads back exactly, touches only bytes 440–511 of sector 0', async () => {
    const img = join(dir, 'mbr.img');
    const size = 97 * MiB + 3 * SECTOR;
    const before = randomImage(img, size);
    const parts: NewPartition[] = [
      { start: 1 * SECTOR, size: 65535 * SECTOR, type: 'fat', bootable: true },
      { start: 65536 * SECTOR, size: 60000 * SECTOR, type: '0x83' },
      { start: 125536 * SECTOR, size: 60000 * SECTOR, type: 'linux' },
      { start: 185536 * SECTOR, size: 13000 * SECTOR, type: '0xda' },
    ];
    await write(img, { kind: 'mbr', diskId: '0xa1b2c3d4', partitions: parts, imageSize: size });
    const after = readFileSync(img);
    expect(diffRanges(before, after).every(([s, e]) => s >= 440 && e <= 512)).toBe(true);
    await expectVerified(img, false);
    const j = await sfdiskJson(img);
    expect(j.id).toBe('0xa1b2c3d4');
    expect(j.partitions.map((p) => [partNumber(p.node), p.start, p.size, p.type, p.bootable ?? false])).toEqual([
      [1, 1, 65535, 'c', true], [2, 65536, 60000, '83', false], [3, 125536, 60000, '83', false], [4, 185536, 13000, 'da', false],
    ]);
    const uuids = await partxUuids(img);
    const t = await readPartitionTable(img);
    expect(t.partitions.map((p) => p.partuuid)).toEqual(['a1b2c3d4-01', 'a1b2c3d4-02', 'a1b2c3d4-03', 'a1b2c3d4-04']);
    for (const p of t.partitions) expect(uuids.get(p.number)).toBe(p.partuuid);
  });

  test('re-writing what sfdisk wrote gives sfdisk\'s bytes (CHS fields included, beyond cylinder 1024 too)', async () => {
    const img = await sfdiskImage(join(dir, 'sf-mbr.img'), 10 * 1024 * MiB, 'label: dos\nlabel-id: 0x0badcafe\nstart=1, size=2047, type=c\nstart=2128, size=30640, type=b, bootable\nstart=32768, size=16000000, type=83\nstart=16032768, size=4000000, type=83\n');
    poke(img, 0, random(440)); // boot code
    const original = peek(img, 0, SECTOR);
    const t = await readPartitionTable(img);
    poke(img, 440, Buffer.alloc(72)); // wipe signature + table
    await write(img, { kind: 'mbr', diskId: t.diskId, partitions: asNew(t), imageSize: t.imageSize });
    expect(peek(img, 0, SECTOR).equals(original)).toBe(true);
  });

  test('negative twin: an overlapping table written raw is flagged by sfdisk --verify and refused by the writer', async () => {
    const img = join(dir, 'overlap.img');
    randomImage(img, 32 * MiB);
    poke(img, 0, encodeMbr({ diskSignature: 1, partitions: [{ bootable: false, type: 0x83, startLba: 2048, sectors: 20000 }, { bootable: false, type: 0x83, startLba: 4096, sectors: 20000 }] }));
    const v = await sh('sfdisk', ['--verify', img]);
    expect(v.stdout + v.stderr).toMatch(/overlaps/);
    await expect(write(img, { kind: 'mbr', diskId: '1', imageSize: 32 * MiB, partitions: [{ start: 2048 * SECTOR, size: 20000 * SECTOR, type: 'linux' }, { start: 4096 * SECTOR, size: 20000 * SECTOR, type: 'linux' }] }))
      .rejects.toThrow(/partition 2 \(from byte 2097152\) overlaps partition 1/);
  });
});

describe('GPT written by otapack', () => {
  const L = '0fc63daf-8483-4772-8e79-3d69d8477de4';
  const parts: NewPartition[] = [
    { start: 64 * SECTOR, size: 8000 * SECTOR, type: L, name: 'loader1' },
    { start: 16384 * SECTOR, size: 8192 * SECTOR, type: L, name: 'loader2' },
    { start: 32768 * SECTOR, size: 32768 * SECTOR, type: 'efi', name: 'boot', bootable: true },
    { start: 65536 * SECTOR, size: 40960 * SECTOR, type: 'linux', name: 'rootfs_a', attributes: 'RequiredPartition GUID:48,55' },
    { start: 106496 * SECTOR, size: 40960 * SECTOR, type: 'linux', name: 'rootfs_b – ünïcödé', uuid: 'C0FFEE00-1111-4222-8333-444455556666' },
  ];
  const diskId = '1B2C3D4E-5F60-4172-8394-A5B6C7D8E9F0';

  test('passes sgdisk -v and sfdisk --verify, reads back exactly, touches only the table sectors', async () => {
    const img = join(dir, 'gpt.img');
    const size = 80 * MiB + 5 * SECTOR;
    const before = randomImage(img, size);
    await write(img, { kind: 'gpt', diskId, partitions: parts, imageSize: size });
    const after = readFileSync(img);
    // Only the protective MBR (from byte 440), LBA 1–33 and the last 33 sectors may change.
    const allowed = (s: number, e: number): boolean => (s >= 440 && e <= 34 * SECTOR) || s >= size - 33 * SECTOR;
    expect(diffRanges(before, after).filter(([s, e]) => !allowed(s, e))).toEqual([]);
    expect(after.subarray(0, 440).equals(before.subarray(0, 440))).toBe(true);
    await expectVerified(img, true);

    const j = await sfdiskJson(img);
    expect(j.id).toBe(diskId);
    expect(j.firstlba).toBe(34);
    expect(j.lastlba).toBe(size / SECTOR - 34);
    expect(j.partitions.map((p) => ({ n: partNumber(p.node), start: p.start, size: p.size, type: p.type.toLowerCase(), name: p.name, attrs: p.attrs }))).toEqual([
      { n: 1, start: 64, size: 8000, type: L, name: 'loader1', attrs: undefined },
      { n: 2, start: 16384, size: 8192, type: L, name: 'loader2', attrs: undefined },
      { n: 3, start: 32768, size: 32768, type: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', name: 'boot', attrs: 'LegacyBIOSBootable' },
      { n: 4, start: 65536, size: 40960, type: L, name: 'rootfs_a', attrs: 'RequiredPartition GUID:48,55' },
      { n: 5, start: 106496, size: 40960, type: L, name: 'rootfs_b – ünïcödé', attrs: undefined },
    ]);
    // Unique GUIDs: given, or derived from the disk id (deterministic), and libblkid sees the same.
    expect(j.partitions[4]!.uuid).toBe('C0FFEE00-1111-4222-8333-444455556666');
    expect(j.partitions[0]!.uuid!.toLowerCase()).toBe(guidFromSeed(`${diskId.toLowerCase()}/partition/1`));
    const uuids = await partxUuids(img);
    const t = await readPartitionTable(img);
    for (const p of t.partitions) expect(uuids.get(p.number)).toBe(p.partuuid);
    expect(t.warnings).toEqual([]);
  });

  test('re-writing what sfdisk wrote gives sfdisk\'s bytes, whole file', async () => {
    const img = await sfdiskImage(join(dir, 'sf-gpt.img'), 150 * MiB + 7 * SECTOR, [
      'label: gpt', `label-id: ${diskId}`, 'first-lba: 34',
      'start=64, size=8000, type=21686148-6449-6E6F-744E-656564454649, name="bios"',
      'start=8192, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP", attrs="RequiredPartition LegacyBIOSBootable"',
      'start=73728, size=200000, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="root"',
    ].join('\n') + '\n');
    poke(img, 0, random(440));
    const original = readFileSync(img);
    const t = await readPartitionTable(img);
    poke(img, 440, Buffer.alloc(34 * SECTOR - 440));
    poke(img, t.imageSize - 33 * SECTOR, Buffer.alloc(33 * SECTOR));
    await write(img, { kind: 'gpt', diskId: t.diskId, partitions: asNew(t), imageSize: t.imageSize });
    expect(diffRanges(original, readFileSync(img))).toEqual([]);
  });

  test('bootCode, when given, replaces bytes 0–439 (and only those)', async () => {
    const img = join(dir, 'boot.img');
    const before = randomImage(img, 40 * MiB);
    const code = random(440);
    await write(img, { kind: 'gpt', diskId, partitions: parts.slice(0, 2), imageSize: 40 * MiB, bootCode: code });
    const after = readFileSync(img);
    expect(after.subarray(0, 440).equals(code)).toBe(true);
    expect(after.subarray(34 * SECTOR, 40 * MiB - 33 * SECTOR).equals(before.subarray(34 * SECTOR, 40 * MiB - 33 * SECTOR))).toBe(true);
    await expectVerified(img, true);
  });

  test('negative twin: one flipped byte in our entry array is caught by sgdisk -v and by our reader', async () => {
    const img = join(dir, 'flip.img');
    randomImage(img, 40 * MiB);
    await write(img, { kind: 'gpt', diskId, partitions: parts.slice(0, 2), imageSize: 40 * MiB });
    flip(img, 2 * SECTOR + 60);
    const s = await sh('sgdisk', ['-v', img]);
    expect(s.stdout).toMatch(/CRC for the main partition table is invalid/);
    expect(s.stdout).not.toMatch(/No problems found/);
    const t = await readPartitionTable(img);
    expect(t.warnings.join('\n')).toMatch(/primary GPT is corrupt \(partition entries CRC mismatch\); using the backup GPT/);
  });
});

describe('writePartitionTable refuses tables it cannot write', () => {
  const img = (): string => { const p = join(dir, `refuse-${Math.random().toString(16).slice(2)}.img`); randomImage(p, 8 * MiB); return p; };
  const p = (startSector: number, sectors: number, type = 'linux'): NewPartition => ({ start: startSector * SECTOR, size: sectors * SECTOR, type });
  const cases: [string, Parameters<typeof writePartitionTable>[1], string, RegExp][] = [
    ['five MBR primaries', { kind: 'mbr', diskId: '1', imageSize: 8 * MiB, partitions: [p(2048, 10), p(2058, 10), p(2068, 10), p(2078, 10), p(2088, 10)] }, 'LIMIT', /at most 4 primary/],
    ['partition past the end', { kind: 'mbr', diskId: '1', imageSize: 8 * MiB, partitions: [p(2048, 20000)] }, 'LIMIT', /past the end of the 8388608-byte disk/],
    ['unaligned start', { kind: 'mbr', diskId: '1', imageSize: 8 * MiB, partitions: [{ start: 1000, size: 4096, type: 'linux' }] }, 'CONFIG', /multiples of 512/],
    ['MBR partition over sector 0', { kind: 'mbr', diskId: '1', imageSize: 8 * MiB, partitions: [p(0, 100)] }, 'CONFIG', /inside the MBR sector/],
    ['GPT partition over the entry array', { kind: 'gpt', diskId: guidFromSeed('x'), imageSize: 8 * MiB, partitions: [p(33, 100)] }, 'LIMIT', /does not fit the GPT usable range 34–16350/],
    ['GPT partition over the backup', { kind: 'gpt', diskId: guidFromSeed('x'), imageSize: 8 * MiB, partitions: [p(2048, 16384 - 2048 - 10)] }, 'LIMIT', /does not fit the GPT usable range/],
    ['unknown type', { kind: 'gpt', diskId: guidFromSeed('x'), imageSize: 8 * MiB, partitions: [p(2048, 10, 'ext4')] }, 'CONFIG', /"ext4" is not a GPT type GUID/],
    ['extended type', { kind: 'mbr', diskId: '1', imageSize: 8 * MiB, partitions: [p(2048, 10, '0x05')] }, 'LIMIT', /extended\/logical/],
    ['MBR PARTUUID that cannot be', { kind: 'mbr', diskId: '0000abcd', imageSize: 8 * MiB, partitions: [{ ...p(2048, 10), uuid: '0000abcd-02' }] }, 'CONFIG', /always <disk id>-<number> \(0000abcd-01\)/],
    ['bad disk GUID', { kind: 'gpt', diskId: 'not-a-guid', imageSize: 8 * MiB, partitions: [] }, 'CONFIG', /not a GUID/],
  ];
  test.each(cases)('%s', async (_name, t, code, re) => {
    const path = img();
    const before = readFileSync(path);
    const err = await write(path, t).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OtapackError);
    expect((err as OtapackError).code).toBe(code);
    expect((err as Error).message).toMatch(re);
    expect(readFileSync(path).equals(before)).toBe(true); // nothing written
  });
});

describe('GUID codec', () => {
  test('mixed-endian bytes as the UEFI spec gives them for the ESP type', () => {
    const b = guidToBytes('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(b.toString('hex')).toBe('28732ac11ff8d211ba4b00a0c93ec93b');
    expect(guidFromBytes(b)).toBe('c12a7328-f81f-11d2-ba4b-00a0c93ec93b');
  });
  test('guidFromSeed is deterministic, v4-shaped and seed-sensitive', () => {
    const g = guidFromSeed('slot-a');
    expect(g).toBe(guidFromSeed(Buffer.from('slot-a')));
    expect(g).not.toBe(guidFromSeed('slot-b'));
    expect(g).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
