// A hand-built A/B disk for rehearsing the A/B scenario with the harness before the converter
// exists: MBR, p1 FAT (Image, initrd, boot.scr from test/boot/guest/ab-rehearsal-boot.cmd,
// uboot.env), p2 root A, p3 root B, p4 ext4 /data. The guest has /etc/fw_env.config pointing
// at /boot/uboot.env, so the real swupdate -B uboot and fw_setenv drive the same state the boot
// script counts. When `otapack convert` lands, its output replaces this disk and the rest of
// the test (writeTestInput, bootQemu, readUbootEnv) stays as it is.
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchGuestDebs } from './debs.js';
import {
  buildGuestTree, buildInitramfs, cachedDisk, copyInto, copyTree, GUEST_FILES, makeBootScr, makeExt4, makeFat, makeUbootEnv, MIB, sh, treeBytes,
  type GuestDisk, type GuestTreeOptions,
} from './guest.js';

export interface AbRehearsalOptions {
  dir: string;
  name?: string;
  bootlimit?: number;
  slotMiB?: number;
  dataMiB?: number;
  tree?: GuestTreeOptions;
  /** use the disk cache (default true) */
  cache?: boolean;
}

export interface AbRehearsalDisk extends GuestDisk {
  slotMiB: number;
  /** ext4 UUIDs given to slot A's and slot B's filesystems */
  slotUuids: { A: string; B: string };
}

export const SLOT_UUID = { A: '5107a000-0000-4000-8000-00000000000a', B: '5107b000-0000-4000-8000-00000000000b' };

/** Cached like the other disks (see cachedDisk in guest.ts); this file's source is part of the key. */
export function buildAbRehearsalDisk(o: AbRehearsalOptions): Promise<AbRehearsalDisk> {
  return cachedDisk('ab', o, 'arm64', () => buildAbRehearsalDiskNow(o), [fileURLToPath(import.meta.url)]);
}

async function buildAbRehearsalDiskNow(o: AbRehearsalOptions): Promise<AbRehearsalDisk> {
  const name = o.name ?? 'ab';
  mkdirSync(o.dir, { recursive: true });
  const debs = await fetchGuestDebs('arm64');
  const initrd = await buildInitramfs(debs, join(o.dir, `${name}.initrd`));
  const tree = await buildGuestTree(debs, join(o.dir, `${name}.rootA.d`), {
    ...o.tree,
    fstab: [
      { spec: '/dev/vda1', file: '/boot', type: 'vfat', options: 'defaults' },
      { spec: '/dev/vda4', file: '/data', type: 'ext4', options: 'defaults', pass: 2 },
      ...(o.tree?.fstab ?? []),
    ],
    fwEnvConfig: '/boot/uboot.env 0x0000 0x4000',
    files: { ...(o.tree?.files ?? {}), 'etc/otapack-test/version': 'A-1\n' },
  });
  const slotMiB = o.slotMiB ?? Math.max(64, Math.ceil(treeBytes(tree) / MIB) + 24);
  const boot = join(o.dir, `${name}.boot.d`);
  rmSync(boot, { recursive: true, force: true });
  mkdirSync(boot, { recursive: true });
  copyFileSync(debs.kernel, join(boot, 'Image'));
  copyFileSync(initrd.path, join(boot, 'initrd'));
  const bootlimit = String(o.bootlimit ?? 2);
  const script = readFileSync(join(GUEST_FILES, 'ab-rehearsal-boot.cmd'), 'utf8').split('@@BOOTLIMIT@@').join(bootlimit);
  await makeBootScr(join(boot, 'boot.scr'), script);
  rmSync(join(boot, 'boot.scr.cmd'));
  await makeUbootEnv(join(boot, 'uboot.env'), { rootpart: '2', upgrade_available: '0', bootcount: '0', bootlimit });
  const fat = await makeFat(join(o.dir, `${name}.boot.vfat`), boot, 64, { volumeId: 'ab00b007', label: 'BOOT' });
  const rootA = await makeExt4(join(o.dir, `${name}.rootA.ext4`), tree, slotMiB, { uuid: SLOT_UUID.A, label: 'rootA', blockSize: 1024 });
  const dataTree = join(o.dir, `${name}.data.d`);
  rmSync(dataTree, { recursive: true, force: true });
  mkdirSync(join(dataTree, 'otapack-test'), { recursive: true });
  writeFileSync(join(dataTree, 'otapack-test/boots'), '0\n');
  const dataMiB = o.dataMiB ?? 128;
  const data = await makeExt4(join(o.dir, `${name}.data.ext4`), dataTree, dataMiB, { uuid: 'da7a0000-0000-4000-8000-0000000000ab', label: 'data' });

  const path = join(o.dir, `${name}.img`);
  const sizes = [64, slotMiB, slotMiB, dataMiB];
  let sector = 2048;
  const starts = sizes.map((s) => { const st = sector; sector += (s * MIB) / 512; return st; });
  rmSync(path, { force: true });
  writeFileSync(path, '');
  await sh('truncate', ['-s', String(sector * 512 + MIB), path]);
  const types = ['c', '83', '83', '83'];
  const diskId = '0x0ab0ab00';
  await sh('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', path], {
    input: `label: dos\nlabel-id: ${diskId}\n` + sizes.map((s, i) => `start=${starts[i]}, size=${(s * MIB) / 512}, type=${types[i]}${i === 0 ? ', bootable' : ''}`).join('\n') + '\n',
  });
  copyInto(path, fat, starts[0]! * 512);
  copyInto(path, rootA, starts[1]! * 512);
  copyInto(path, data, starts[3]! * 512);
  for (const f of [fat, rootA, data]) rmSync(f, { force: true });
  const partitions = sizes.map((s, i) => ({
    index: i + 1, start: starts[i]! * 512, size: s * MIB, type: types[i]!, fs: (i === 0 ? 'fat' : i === 2 ? 'none' : 'ext4') as 'fat' | 'ext4' | 'none',
    partuuid: `0ab0ab00-0${i + 1}`, device: `/dev/vda${i + 1}`, mount: ['/boot', '/', undefined, '/data'][i],
  }));
  return {
    path, arch: 'arm64', style: 'buildroot', firmware: 'u-boot', table: 'dos', diskId, partitions, rootPartition: 2, bootPartition: 1,
    dataPartition: 4, cmdline: 'console=ttyAMA0 root=/dev/vda${rootpart} rootwait ro panic=5', kver: debs.kver,
    sizeBytes: statSync(path).size, rawBlobs: [], rootTree: tree, slotMiB, slotUuids: SLOT_UUID,
  };
}

/**
 * The root filesystem image for an update: slot A's tree with a new version stamp (and, for a
 * broken update, commands that make the slot panic before its health check), same size as a slot.
 */
export async function makeSlotImage(disk: AbRehearsalDisk, out: string, o: { version: string; broken?: boolean }): Promise<Buffer> {
  const tree = copyTree(disk.rootTree, `${out}.d`);
  writeFileSync(join(tree, 'etc/otapack-test/version'), `${o.version}\n`);
  if (o.broken) writeFileSync(join(tree, 'etc/otapack-test/commands'), 'panic\n');
  await makeExt4(out, tree, disk.slotMiB, { uuid: SLOT_UUID.B, label: 'rootB', blockSize: 1024 });
  rmSync(tree, { recursive: true, force: true });
  return readFileSync(out);
}
