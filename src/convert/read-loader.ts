// Reads the boot loader an input image boots with (read-only), so the plan knows what the A/B
// logic may use: for GRUB EFI the core image on the ESP (its built-in modules, prefix, embedded
// config or memdisk) and the module folder its prefix points at; for U-Boot the command table of
// the first U-Boot found in the raw area before the first partition, in a loader partition, or as
// a u-boot*.bin/.itb/.img file on the boot partition. boot.loader-binary names the binary instead
// (a U-Boot in SPI flash, or one QEMU is given with -bios).
import { open, readdir, readFile } from 'node:fs/promises';
import { OtapackError, fileError } from '../errors.js';
import { readFat } from '../fs/fat.js';
import { readGrubImage, type GrubImage } from '../boot/grub-image.js';
import { readUbootCommands } from '../boot/uboot-commands.js';
import { which } from '../util/tools.js';
import { readFully } from '../util/io.js';
import type { GrubModuleFolder, LoaderFacts } from '../boot/loader.js';
import type { DetectedLayout } from './detect.js';

/** Largest area or partition read whole to look for a U-Boot in it. */
const MAX_SCAN = 32 << 20;

const EFI_FALLBACK = ['/EFI/BOOT/BOOTX64.EFI', '/EFI/BOOT/BOOTAA64.EFI', '/EFI/BOOT/BOOTIA32.EFI', '/EFI/BOOT/BOOTRISCV64.EFI', '/EFI/BOOT/BOOTARM.EFI'];

async function readRange(image: string, start: number, end: number): Promise<Buffer> {
  const fh = await open(image, 'r');
  try {
    return await readFully(fh, start, end - start);
  } finally {
    await fh.close();
  }
}

async function readBinary(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw fileError('INPUT', path, e);
  }
}

/** The last `set prefix=…` of a config, unquoted. */
function prefixSetIn(text: string | undefined): string | undefined {
  let last: string | undefined;
  for (const m of (text ?? '').matchAll(/^\s*set\s+prefix=("[^"]*"|'[^']*'|\S+)/gm)) last = m[1]!.replace(/^["']|["']$/g, '');
  return last;
}

/** Where the image loads modules from: `${prefix}/${platform}` on the ESP or in its memdisk. */
function moduleFolder(img: GrubImage, espFiles: string[], notes: string[]): GrubModuleFolder | undefined {
  const memCfg = img.memdiskConfigs?.['boot/grub/grub.cfg'];
  const prefix = prefixSetIn(img.config) ?? prefixSetIn(memCfg) ?? img.prefix;
  if (!prefix) return undefined;
  const m = /^(?:\(([^)]*)\))?(\/.*)?$/.exec(prefix.trim());
  if (!m) {
    notes.push(`GRUB prefix ${prefix}: not a path otapack can follow; its module folder was not read`);
    return undefined;
  }
  const device = m[1];
  const dir = (m[2] ?? '/').replace(/\/+$/, '');
  if (device === 'memdisk') {
    if (!img.memdisk) return undefined;
    const inside = `${dir.replace(/^\//, '')}/${img.platform}/`;
    return { where: 'memdisk', path: `(memdisk)/${inside.replace(/\/$/, '')}`, modules: img.memdisk.filter((p) => p.startsWith(inside) && p.endsWith('.mod')).map((p) => p.slice(inside.length, -4)).filter((n) => !n.includes('/')) };
  }
  if (device !== undefined && !/^\$\{?root\}?$/.test(device)) {
    notes.push(`GRUB prefix ${prefix} names a device; its module folder was not read (only the ESP's and the memdisk's are)`);
    return undefined;
  }
  const folder = `${dir}/${img.platform}/`.toLowerCase();
  const mods = espFiles.filter((f) => f.toLowerCase().startsWith(folder) && f.toLowerCase().endsWith('.mod')).map((f) => f.slice(folder.length, -4)).filter((n) => !n.includes('/'));
  return mods.length ? { where: 'esp', path: `${dir}/${img.platform}`, modules: mods } : undefined;
}

async function readGrub(image: string, layout: DetectedLayout, loaderBinary: string | undefined): Promise<LoaderFacts> {
  const notes: string[] = [];
  const files = layout.bootFiles.filter((f) => !f.endsWith('/'));
  if (loaderBinary !== undefined) {
    const img = readGrubImage(await readBinary(loaderBinary));
    if (!img) throw new OtapackError('INPUT', 'boot.loader-binary: not a GRUB EFI core image (no GRUB module area)', { path: loaderBinary, reason: 'not-grub' });
    return { kind: 'grub', source: `boot.loader-binary ${loaderBinary}`, path: loaderBinary, image: img, folder: moduleFolder(img, files, notes), notes };
  }
  const esp = layout.boot;
  const looked: string[] = [];
  if (esp) {
    const byName = (p: string): string | undefined => files.find((f) => f.toLowerCase() === p.toLowerCase());
    const fallback = EFI_FALLBACK.map(byName).filter((p): p is string => !!p);
    // a shim as the fallback binary loads grub*.efi from its folder; distributions keep GRUB in /EFI/<name>/ too
    const others = files.filter((f) => /^\/EFI\/[^/]+\/grub[^/]*\.efi$/i.test(f) && !fallback.includes(f));
    for (const path of [...fallback, ...others]) {
      looked.push(`ESP ${path}`);
      const bytes = await readFat(image, esp.start, path);
      const img = bytes && readGrubImage(bytes);
      if (img) return { kind: 'grub', source: `ESP (partition ${esp.number}) ${path}`, path, image: img, folder: moduleFolder(img, files, notes), notes };
      notes.push(`ESP ${path} is not a GRUB core image (a shim or another EFI program)`);
    }
    if (!looked.length) looked.push(`ESP (partition ${esp.number}) /EFI/BOOT/BOOT*.EFI`);
  }
  return { kind: 'none', bootloader: 'grub', looked, notes };
}

async function readUboot(image: string, layout: DetectedLayout, loaderBinary: string | undefined): Promise<LoaderFacts> {
  const notes: string[] = [];
  if (loaderBinary !== undefined) {
    const table = readUbootCommands(await readBinary(loaderBinary));
    if (!table) throw new OtapackError('INPUT', 'boot.loader-binary: no U-Boot command table found (not a little-endian U-Boot binary)', { path: loaderBinary, reason: 'not-uboot' });
    return { kind: 'uboot', source: `boot.loader-binary ${loaderBinary}`, table, notes };
  }
  const looked: string[] = [];
  const found: { source: string; table: NonNullable<ReturnType<typeof readUbootCommands>> }[] = [];
  const first = Math.min(...layout.table.partitions.map((p) => p.start));
  if (layout.rawBootloader.length) {
    const start = Math.min(...layout.rawBootloader.map((r) => r.start));
    const end = Math.min(Math.max(...layout.rawBootloader.map((r) => r.end)), start + MAX_SCAN);
    const where = `raw area before partition ${layout.table.partitions.find((p) => p.start === first)?.number ?? 1} (bytes ${start}-${end})`;
    looked.push(where);
    const table = readUbootCommands(await readRange(image, start, end));
    if (table) found.push({ source: where, table });
  }
  for (const p of layout.others) {
    if (p.size > MAX_SCAN) continue;
    const where = `partition ${p.number}${p.name ? ` (${p.name})` : ''}`;
    looked.push(where);
    const table = readUbootCommands(await readRange(image, p.start, p.start + p.size));
    if (table) found.push({ source: where, table });
  }
  if (layout.boot) {
    const files = layout.bootFiles.filter((f) => !f.endsWith('/'));
    const config = files.find((f) => f.toLowerCase() === '/config.txt');
    const configText = config ? (await readFat(image, layout.boot.start, config))?.toString('latin1') ?? '' : '';
    const kernel = /^\s*kernel\s*=\s*(\S+)/m.exec(configText)?.[1];
    const names = files.filter((f) => /^\/u-boot[^/]*\.(bin|itb|img)$/i.test(f) || (kernel !== undefined && f.toLowerCase() === `/${kernel.toLowerCase()}`));
    for (const f of names) {
      const where = `boot partition (partition ${layout.boot.number}) ${f}`;
      looked.push(where);
      const bytes = await readFat(image, layout.boot.start, f);
      const table = bytes && readUbootCommands(bytes);
      if (table) found.push({ source: where, table });
    }
    if (!names.length) looked.push(`boot partition u-boot*.bin/.itb/.img`);
  }
  if (!found.length) return { kind: 'none', bootloader: 'uboot', looked, notes };
  for (const other of found.slice(1)) notes.push(`another U-Boot is in ${other.source}; the one checked is the first the board starts`);
  return { kind: 'uboot', source: found[0]!.source, table: found[0]!.table, notes };
}

/** The boot loader the image boots with, as read from it (or from boot.loader-binary). */
export function readLoader(image: string, layout: DetectedLayout, o: { loaderBinary?: string } = {}): Promise<LoaderFacts> {
  return layout.bootloader === 'grub' ? readGrub(image, layout, o.loaderBinary) : readUboot(image, layout, o.loaderBinary);
}

/** Debian's GRUB modules for a platform (grub-efi-amd64-bin: /usr/lib/grub/x86_64-efi), for boot.install-grub. */
export interface HostGrub {
  dir: string;
  platform: string;
  /** Module names there; empty when the folder is missing. */
  modules: string[];
  /** grub-mkimage (grub-common) is on PATH: checked here so that planning, not apply, refuses without it. */
  mkimage: boolean;
}

export async function readHostGrub(platform: string, root = '/usr/lib/grub'): Promise<HostGrub> {
  const dir = `${root}/${platform}`;
  const names = await readdir(dir).catch(() => [] as string[]);
  return { dir, platform, modules: names.filter((n) => n.endsWith('.mod')).map((n) => n.slice(0, -4)).sort(), mkimage: which('grub-mkimage') !== null };
}
