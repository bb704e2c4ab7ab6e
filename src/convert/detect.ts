// Works out what an input image is: which partition is the Linux rootfs, where the boot files
// and the board's own boot logic live, and which boot loader drives it. Read-only: every probe
// reads superblocks directly or runs debugfs/mtools read commands.
import { OtapackError } from '../errors.js';
import { readPartitionTable, isLinuxType, isFatType, isEspType, type Partition, type PartitionTable } from '../disk/table.js';
import { probeExt4, statPaths, resolvePath, readFile as readExt4, listDir, type Ext4Info } from '../fs/ext4.js';
import { probeFat, listFat, readFat, type FatInfo } from '../fs/fat.js';

export type LayoutKind = 'buildroot' | 'armbian' | 'efi';

/** How the board boots today, which convert wraps rather than replaces. */
export type BoardBoot =
  | { kind: 'uboot-script'; where: 'boot'; path: string } // boot.scr on the boot partition
  | { kind: 'uboot-script'; where: 'rootfs'; path: string; envFile?: string } // Armbian: /boot/boot.scr in the rootfs
  | { kind: 'extlinux'; where: 'boot' | 'rootfs'; path: string }
  | { kind: 'grub'; where: 'boot' | 'rootfs'; path: string }
  | { kind: 'kernel-only'; kernel: string; initrd?: string };

export interface DetectedLayout {
  kind: LayoutKind;
  image: string;
  table: PartitionTable;
  root: Partition;
  rootFs: Ext4Info;
  /** FAT boot partition or ESP, when the image has one. */
  boot?: Partition;
  bootFs?: FatInfo;
  bootFiles: string[];
  board: BoardBoot;
  bootloader: 'uboot' | 'grub';
  /** How the current boot config names the root filesystem (root=…), when found. */
  rootSpec?: string;
  /** Bytes before the first partition that are not zero and not the table: raw boot loaders. */
  rawBootloader: { start: number; end: number }[];
  /** Partitions other than boot and root (e.g. boot loaders stored as GPT partitions). */
  others: Partition[];
  notes: string[];
}

const ROOT_MARKERS = ['/etc', '/sbin/init', '/bin/sh', '/usr/bin'];

async function looksLikeRoot(image: string, p: Partition): Promise<boolean> {
  const found = await statPaths(image, p.start, ROOT_MARKERS, `partition ${p.number}`);
  return ROOT_MARKERS.some((m) => found.get(m));
}

/** Finds the ranges of non-zero sectors in [from, to), ignoring the table's own bytes (raw boot loaders). */
async function nonZeroRanges(image: string, from: number, to: number, skip: [number, number][]): Promise<{ start: number; end: number }[]> {
  const { open } = await import('node:fs/promises');
  const fh = await open(image, 'r');
  const out: { start: number; end: number }[] = [];
  const ZERO = Buffer.alloc(512);
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let pos = from; pos < to; pos += buf.length) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - pos), pos);
      const view = buf.subarray(0, bytesRead);
      for (const [a, b] of skip) {
        const s = Math.max(a, pos) - pos;
        const e = Math.min(b, pos + bytesRead) - pos;
        if (e > s) view.fill(0, s, e);
      }
      for (let i = 0; i < bytesRead; i += 512) {
        const sector = view.subarray(i, Math.min(bytesRead, i + 512));
        if (sector.equals(ZERO.subarray(0, sector.length))) continue;
        const at = pos + i;
        const last = out[out.length - 1];
        if (last && last.end === at) last.end = at + sector.length;
        else out.push({ start: at, end: at + sector.length });
      }
      if (bytesRead === 0) break;
    }
  } finally {
    await fh.close();
  }
  return out;
}

function rootArg(text: string): string | undefined {
  return /(?:^|[\s"'])root=([^\s"';]+)/m.exec(text)?.[1];
}

export async function detectLayout(image: string): Promise<DetectedLayout> {
  const table = await readPartitionTable(image);
  if (table.usedBackupGpt) {
    // a converter must not guess on a damaged disk: name the problem and the way out
    const why = table.primaryGptProblem ? `primary GPT is corrupt (${table.primaryGptProblem})` : 'the primary GPT is damaged';
    throw new OtapackError('INPUT', `${why}, while the backup GPT is intact; repair the image first (e.g. gdisk's recovery menu, "use backup GPT header")`, { path: image, reason: 'corrupt-partition-table' });
  }
  const notes: string[] = [...table.warnings];
  // ---- the rootfs: a Linux-typed (or unknown-typed) ext2/3/4 that looks like a root
  const candidates: { p: Partition; fs: Ext4Info }[] = [];
  for (const p of table.partitions) {
    if (p.typeName === 'extended') continue;
    const fs = await probeExt4(image, p.start);
    if (fs) candidates.push({ p, fs });
  }
  if (candidates.length === 0) {
    const corrupt = table.partitions.find((p) => isLinuxType(p.type));
    if (corrupt) throw new OtapackError('INPUT', `partition ${corrupt.number} is a Linux partition but holds no readable ext2/3/4 filesystem (corrupt superblock?)`, { path: image });
    throw new OtapackError('INPUT', `no Linux root filesystem found (no ext2/3/4 partition); otapack converts images with an ext4 rootfs`, { path: image });
  }
  const roots: typeof candidates = [];
  for (const c of candidates) if (await looksLikeRoot(image, c.p)) roots.push(c);
  const pick = roots.length ? roots : candidates;
  // prefer the biggest root-looking filesystem (a separate /home or data partition is smaller)
  const chosen = [...pick].sort((a, b) => b.fs.size - a.fs.size)[0]!;
  if (!roots.length) notes.push(`partition ${chosen.p.number} has no /etc, /sbin/init or /bin/sh; treating it as the rootfs anyway`);
  if (chosen.fs.size > chosen.p.size) throw new OtapackError('INPUT', `the ext4 filesystem in partition ${chosen.p.number} (${chosen.fs.size} bytes) is larger than its partition (${chosen.p.size} bytes)`, { path: image });
  const root = chosen.p;
  const after = table.partitions.filter((p) => p.start > root.start);
  if (after.length) {
    throw new OtapackError('INPUT', `partition(s) ${after.map((p) => p.number).join(', ')} follow the rootfs; otapack needs the rootfs to be the last partition so slots B and data can follow it`, { path: image });
  }

  // ---- the boot partition: FAT before the root
  let boot: Partition | undefined;
  let bootFs: FatInfo | undefined;
  for (const p of table.partitions) {
    if (p === root || p.start > root.start) continue;
    const fat = await probeFat(image, p.start);
    if (fat && (isFatType(p.type) || isEspType(p.type) || p.typeName === 'unknown' || p.typeName === 'linux')) {
      if (!boot || isEspType(p.type)) { boot = p; bootFs = fat; }
    }
  }
  const bootFiles = boot ? await listFat(image, boot.start) : [];
  const has = (f: string): string | undefined => bootFiles.find((x) => x.toLowerCase() === f.toLowerCase());

  // ---- raw boot loader bytes between the table and the first partition
  const firstStart = Math.min(...table.partitions.map((p) => p.start));
  // the table's own sectors; with a moved GPT entry array the sectors between header and array
  // may hold a boot loader (Allwinner's boot ROM reads sector 16)
  const entriesLba = table.gptEntriesLba ?? 2;
  const tableBytes: [number, number][] = table.kind === 'gpt' ? [[0, 1024], [entriesLba * 512, (entriesLba + 32) * 512]] : [[440, 512]];
  const rawBootloader = await nonZeroRanges(image, 0, firstStart, tableBytes);
  const others = table.partitions.filter((p) => p !== root && p !== boot);

  const base = { image, table, root, rootFs: chosen.fs, boot, bootFs, bootFiles, rawBootloader, others, notes };
  const rootText = async (path: string): Promise<string | undefined> => {
    const r = await resolvePath(image, root.start, path, `partition ${root.number}`);
    return r && r.stat.type === 'file' && r.stat.size < 1 << 20 ? (await readExt4(image, root.start, r.path, `partition ${root.number}`)).toString('latin1') : undefined;
  };

  // ---- GPT/EFI with an ESP: GRUB
  if (boot && isEspType(boot.type)) {
    const cfg = ['/EFI/BOOT/grub.cfg', '/boot/grub/grub.cfg', '/grub/grub.cfg', '/EFI/debian/grub.cfg'].map(has).find(Boolean);
    if (cfg) {
      const text = (await readFat(image, boot.start, cfg))?.toString('latin1') ?? '';
      return { ...base, kind: 'efi', bootloader: 'grub', board: { kind: 'grub', where: 'boot', path: cfg }, rootSpec: rootArg(text) };
    }
    const inRoot = '/boot/grub/grub.cfg';
    const text = await rootText(inRoot);
    if (text !== undefined) return { ...base, kind: 'efi', bootloader: 'grub', board: { kind: 'grub', where: 'rootfs', path: inRoot }, rootSpec: rootArg(text) };
    throw new OtapackError('INPUT', `EFI system partition ${boot.number} has no grub.cfg (looked in /EFI/BOOT, /boot/grub, /grub and the rootfs's /boot/grub); otapack's EFI support drives GRUB`, { path: image });
  }

  // ---- U-Boot with its files on a FAT boot partition (Buildroot)
  if (boot) {
    const scr = has('/boot.scr');
    const ext = has('/extlinux/extlinux.conf');
    if (scr) {
      const raw = await readFat(image, boot.start, scr);
      const text = raw ? raw.subarray(72).toString('latin1') : '';
      return { ...base, kind: 'buildroot', bootloader: 'uboot', board: { kind: 'uboot-script', where: 'boot', path: scr }, rootSpec: rootArg(text) };
    }
    if (ext) {
      const text = (await readFat(image, boot.start, ext))?.toString('latin1') ?? '';
      return { ...base, kind: 'buildroot', bootloader: 'uboot', board: { kind: 'extlinux', where: 'boot', path: ext }, rootSpec: rootArg(text) };
    }
    if (has('/cmdline.txt') || has('/config.txt')) {
      throw new OtapackError('INPUT', `boots with the Raspberry Pi firmware (config.txt/cmdline.txt) and no U-Boot; A/B switching needs U-Boot (build the image with U-Boot as the kernel in config.txt) or GRUB`, { path: image });
    }
  }

  // ---- boot files inside the rootfs (Armbian and similar)
  const rootName = `partition ${root.number}`;
  for (const p of ['/boot/boot.scr', '/boot.scr']) {
    const r = await resolvePath(image, root.start, p, rootName);
    if (r?.stat.type === 'file') {
      const raw = await readExt4(image, root.start, r.path, rootName);
      const text = raw.subarray(72).toString('latin1');
      const envFile = (await resolvePath(image, root.start, '/boot/armbianEnv.txt', rootName))?.path;
      const envText = envFile ? (await readExt4(image, root.start, envFile, rootName)).toString('latin1') : '';
      const rootdev = /^rootdev=(\S+)/m.exec(envText)?.[1];
      return { ...base, kind: 'armbian', bootloader: 'uboot', board: { kind: 'uboot-script', where: 'rootfs', path: r.path, envFile }, rootSpec: rootdev ?? rootArg(text) };
    }
  }
  for (const p of ['/boot/extlinux/extlinux.conf', '/extlinux/extlinux.conf']) {
    const text = await rootText(p);
    if (text !== undefined) return { ...base, kind: 'armbian', bootloader: 'uboot', board: { kind: 'extlinux', where: 'rootfs', path: p }, rootSpec: rootArg(text) };
  }
  const grubInRoot = await rootText('/boot/grub/grub.cfg');
  if (grubInRoot !== undefined && boot) {
    return { ...base, kind: 'efi', bootloader: 'grub', board: { kind: 'grub', where: 'rootfs', path: '/boot/grub/grub.cfg' }, rootSpec: rootArg(grubInRoot) };
  }
  const bootDir = (await listDir(image, root.start, '/boot', rootName).catch(() => [])).map((e) => e.name);
  const kernel = bootDir.find((n) => /^(Image|zImage|vmlinuz|uImage)(-.*)?$/.test(n));
  if (kernel) {
    const initrd = bootDir.find((n) => /^(initrd|uInitrd|initramfs)/.test(n));
    notes.push(`no boot script found; the generated boot script loads /boot/${kernel} from the slot`);
    return { ...base, kind: boot ? 'buildroot' : 'armbian', bootloader: 'uboot', board: { kind: 'kernel-only', kernel: `/boot/${kernel}`, initrd: initrd ? `/boot/${initrd}` : undefined } };
  }
  throw new OtapackError('INPUT', `found the rootfs (partition ${root.number}) but no boot configuration: no boot.scr, extlinux.conf or grub.cfg on a boot partition or in /boot, and no kernel in /boot`, { path: image });
}
