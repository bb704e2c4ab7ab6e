// readPartitionTable agrees with sfdisk --json (start, size, type, uuid, name, attributes, boot
// flag) and with libblkid's PARTUUIDs (via partx) on tables sfdisk built in the layouts real
// images have: p1 at sector 1, 64, 2128, 32768, raw bootloader bytes before p1, four primaries,
// logical partitions, GPT with ESP + root, and RockPro64's bootloaders as GPT partitions.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { readPartitionTable, type PartitionTable } from '../src/disk/table.js';
import { tmp } from './helpers/run.js';
import { sh, sfdiskImage, sfdiskJson, partxUuids, partNumber, poke, peek, random, SECTOR, MiB } from './helpers/disk-fixtures.js';

let dir: string;
beforeAll(() => { dir = tmp('otapack-disk-read-'); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Our reading and sfdisk's, field by field, plus partx's PARTUUIDs. */
async function expectAgreement(path: string, warnings: RegExp[] = []): Promise<PartitionTable> {
  const ours = await readPartitionTable(path);
  const theirs = await sfdiskJson(path);
  const uuids = await partxUuids(path);
  expect(ours.kind).toBe(theirs.label === 'dos' ? 'mbr' : 'gpt');
  expect(ours.diskId).toBe(theirs.label === 'dos' ? theirs.id.replace(/^0x/, '') : theirs.id.toLowerCase());
  const expected = theirs.partitions
    .map((p) => ({
      number: partNumber(p.node),
      start: p.start * SECTOR,
      size: p.size * SECTOR,
      type: theirs.label === 'dos' ? `0x${p.type.padStart(2, '0')}` : p.type.toLowerCase(),
      name: p.name,
      partuuid: theirs.label === 'dos' ? uuids.get(partNumber(p.node)) : p.uuid!.toLowerCase(),
      bootable: theirs.label === 'dos' ? p.bootable === true : /LegacyBIOSBootable/.test(p.attrs ?? ''),
      attributes: p.attrs,
    }))
    .sort((a, b) => a.number - b.number);
  expect(ours.partitions.map((p) => ({ number: p.number, start: p.start, size: p.size, type: p.type, name: p.name, partuuid: p.partuuid, bootable: p.bootable, attributes: p.attributes })))
    .toEqual(expected);
  // partx (libblkid) agrees on every PARTUUID, GPT included.
  for (const p of ours.partitions) expect(uuids.get(p.number)).toBe(p.partuuid);
  expect(ours.warnings).toHaveLength(warnings.length);
  warnings.forEach((w, i) => expect(ours.warnings[i]).toMatch(w));
  return ours;
}

describe('MBR layouts of real images', () => {
  test('p1 at sector 1, image size not a multiple of 1 MiB (Buildroot RPi)', async () => {
    const img = await sfdiskImage(join(dir, 'rpi.img'), 153 * MiB + 7 * SECTOR, 'label: dos\nlabel-id: 0x5452574f\nstart=1, size=65535, type=c, bootable\nstart=65536, size=247807, type=83\n');
    const t = await expectAgreement(img);
    expect(t.partitions[0]).toMatchObject({ start: 512, typeName: 'fat', partuuid: '5452574f-01', bootable: true });
    expect(t.partitions[1]!.typeName).toBe('linux');
    expect(t.headBytes).toBe(512);
    expect(t.imageSize).toBe(153 * MiB + 7 * SECTOR);
  });

  test('p1 at sector 64 (PC-style), random bytes before p1 do not confuse the reader', async () => {
    const img = await sfdiskImage(join(dir, 's64.img'), 64 * MiB, 'label: dos\nlabel-id: 0x0000abcd\nstart=64, size=32704, type=ef\nstart=32768, size=65536, type=83\n');
    poke(img, SECTOR, random(63 * SECTOR));
    const t = await expectAgreement(img);
    expect(t.partitions.map((p) => p.typeName)).toEqual(['efi', 'linux']);
  });

  test('p1 at sector 2128 with a sunxi SPL at 8 KiB', async () => {
    const img = await sfdiskImage(join(dir, 'sunxi.img'), 80 * MiB, 'label: dos\nlabel-id: 0x0eadbeef\nstart=2128, size=30640, type=c\nstart=32768, size=100000, type=83\n');
    poke(img, 8192, Buffer.concat([Buffer.from([0x14, 0x00, 0x00, 0xea]), Buffer.from('eGON.BT0'), random(24 * 1024)]));
    await expectAgreement(img);
  });

  test('p1 at sector 32768 with blobs at sectors 64 and 16384 (Armbian)', async () => {
    const img = await sfdiskImage(join(dir, 'armbian.img'), 300 * MiB, 'label: dos\nlabel-id: 0x6f9e1b2c\nstart=32768, size=581632, type=83\n');
    poke(img, 64 * SECTOR, random(200 * 1024));
    poke(img, 16384 * SECTOR, random(1024 * 1024));
    const t = await expectAgreement(img);
    expect(t.partitions).toHaveLength(1);
    expect(t.partitions[0]!.start).toBe(32768 * SECTOR);
  });

  test('four primaries, one beyond cylinder 1024 (10 GiB sparse image)', async () => {
    const img = await sfdiskImage(join(dir, 'four.img'), 10 * 1024 * MiB, 'label: dos\nlabel-id: 0x01020304\nstart=2048, size=2048, type=c\nstart=4096, size=409600, type=83, bootable\nstart=413696, size=409600, type=83\nstart=18000000, size=2000000, type=82\n');
    const t = await expectAgreement(img);
    expect(t.partitions.map((p) => p.number)).toEqual([1, 2, 3, 4]);
    expect(t.partitions[3]!.typeName).toBe('linux-swap');
  });

  test('an empty slot 1 keeps the Linux numbering (partition 2 stays 2)', async () => {
    const img = await sfdiskImage(join(dir, 'gap.img'), 32 * MiB, 'label: dos\nlabel-id: 0x11112222\n2: start=2048, size=8192, type=83\n');
    const t = await expectAgreement(img);
    expect(t.partitions.map((p) => [p.number, p.partuuid])).toEqual([[2, '11112222-02']]);
  });

  test('extended partition with two logical partitions', async () => {
    const img = await sfdiskImage(join(dir, 'ext.img'), 200 * MiB, 'label: dos\nlabel-id: 0xdeadbeef\nstart=2048, size=20480, type=c, bootable\nstart=22528, size=200000, type=5\nstart=24576, size=10000, type=83\nstart=40960, size=20000, type=82\nstart=230000, size=100000, type=83\n');
    const t = await expectAgreement(img);
    expect(t.partitions.map((p) => [p.number, p.typeName])).toEqual([[1, 'fat'], [2, 'extended'], [3, 'linux'], [5, 'linux'], [6, 'linux-swap']]);
    expect(t.partitions.find((p) => p.number === 6)!.partuuid).toBe('deadbeef-06');
  });
});

describe('GPT layouts of real images', () => {
  test('ESP + root (x86-64 EFI), ESP at sector 64', async () => {
    const img = await sfdiskImage(join(dir, 'efi.img'), 120 * MiB, [
      'label: gpt', 'label-id: 6A3B1C2D-0E4F-4A5B-8C7D-9E0F1A2B3C4D', 'first-lba: 34',
      'start=64, size=65472, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="efi", uuid=0F6E1D2C-3B4A-4958-8776-655443322110, attrs="LegacyBIOSBootable"',
      'start=65536, size=163840, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name="rootfs", uuid=DEADBEEF-0000-4000-8000-000000000002',
    ].join('\n') + '\n');
    const t = await expectAgreement(img);
    expect(t.partitions.map((p) => p.typeName)).toEqual(['efi', 'linux-root']);
    expect(t.partitions[0]!.bootable).toBe(true);
    expect(t.headBytes).toBe(34 * SECTOR);
    expect(t.tailBytes).toBe(33 * SECTOR);
  });

  test('five partitions, RockPro64-style bootloaders as GPT partitions at 64 and 16384', async () => {
    const L = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
    const img = await sfdiskImage(join(dir, 'rockpro64.img'), 400 * MiB + 3 * SECTOR, [
      'label: gpt', 'label-id: 0B1C2D3E-4F50-4162-8374-8596A7B8C9DA', 'first-lba: 34',
      `start=64, size=8000, type=${L}, name="loader1"`,
      `start=16384, size=8192, type=${L}, name="loader2"`,
      `start=24576, size=8192, type=${L}, name="trust"`,
      `start=32768, size=229376, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="boot", attrs="RequiredPartition GUID:60,63"`,
      `start=262144, size=524288, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name="rootfs"`,
    ].join('\n') + '\n');
    poke(img, 64 * SECTOR, random(300 * 1024));
    const t = await expectAgreement(img);
    expect(t.partitions.map((p) => p.name)).toEqual(['loader1', 'loader2', 'trust', 'boot', 'rootfs']);
    expect(t.partitions[3]).toMatchObject({ typeName: 'fat', attributes: 'RequiredPartition GUID:60,63', bootable: false });
    expect(t.partitions[4]!.typeName).toBe('linux-root');
  });

  test('hybrid MBR made by sgdisk -h: the GPT is read (as sfdisk does), with a warning', async () => {
    const img = await sfdiskImage(join(dir, 'hybrid.img'), 64 * MiB, 'label: gpt\nfirst-lba: 34\nstart=2048, size=8192, type=U, name="esp"\nstart=10240, size=20480, type=L, name="root"\n');
    const r = await sh('sgdisk', ['-h', '2', img]);
    expect(r.code).toBe(0);
    expect(peek(img, 446 + 16 + 4, 1)[0]).toBe(0x83); // a real MBR entry next to the 0xEE one
    await expectAgreement(img, [/hybrid MBR .* the GPT is used/]);
  });
});
