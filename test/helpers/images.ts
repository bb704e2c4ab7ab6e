// Input disk images for the converter's tests and the demo, built rootlessly with the real tools
// (sfdisk, mke2fs -d, debugfs, mkfs.vfat, mtools, mkimage, grub-mkimage) in the layouts real
// images come in: Buildroot/genimage (sunxi, RPi, generic U-Boot), Armbian (Rockchip, sunxi),
// PC/arm64 EFI (GPT, ESP at 64) and RockPro64 GPT (bootloaders as partitions).
//
// Every builder writes `<dir>/<name>.img` and returns a FixtureImage describing it. Builds are
// deterministic (same options and inputs → same sha256, see images-lib.ts) and cached: the first
// build of a given option set lands in os.tmpdir()/otapack-fixtures/<key>/ (built under a temp
// name, then renamed, so parallel vitest workers can race safely) and later calls copy it
// (sparse). The cache key covers the options, the content of any input file (kernel, initrd,
// dtb, busybox) and the source of these helpers. OTAPACK_FIXTURE_CACHE moves the cache;
// OTAPACK_FIXTURE_NOCACHE=1 turns it off. `rootfsTree` points into the cache: read it, never write.
import { execa } from 'execa';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EPOCH, SECTOR, Tree, assembleDisk, fakeArm64Image, fakeBzImage, fakeEfiApp, fdt, fileSha256, grubEfi, hex32From,
  initramfs, makeExt4, makeVfat, mkRamdisk, mkScript, parseSize, patternBlob, sha256, sunxiSplHeader, uuidFrom,
  type DeviceSpec, type FatFile, type TablePart,
} from './images-lib.js';
import { armbianBootCmd, armbianTree, boardDtb, buildrootTree, busyboxBinary, overlayDtbo, type EdgeCaseInfo } from './images-rootfs.js';

export { badImages, type BadImage } from './images-bad.js';

export type Layout = 'buildroot' | 'armbian' | 'efi' | 'rpi' | 'rockpro64-gpt';

export interface FixturePartition {
  number: number;
  /** first sector (512 bytes) */
  start: number;
  /** sectors */
  size: number;
  /** as `sfdisk --json` prints it: MBR "c"/"83"/"5", GPT an upper-case type GUID */
  type: string;
  fs?: 'vfat' | 'ext4';
  /** GPT partition name / unique GUID (lower-case), when GPT */
  name?: string;
  uuid?: string;
  /** what this partition is for */
  role: 'boot' | 'esp' | 'root' | 'loader' | 'other';
}

export interface RawRegion { offset: number; sha256: string; length: number; name: string }

export interface FixtureImage {
  path: string;
  layout: Layout;
  table: 'mbr' | 'gpt';
  partitions: FixturePartition[];
  rootPartition: number;
  bootPartition?: number;
  /** bytes outside any filesystem that must survive byte for byte (SPL, idbloader, u-boot.itb) */
  rawRegions: RawRegion[];
  /** host dir the rootfs was built from (device nodes, owners and xattrs are added by debugfs: see `specials`) */
  rootfsTree: string;
  /** how root is named on the kernel command line: '/dev/mmcblk0p2' | 'UUID=…' | 'PARTUUID=…' */
  rootSpec: string;
  sha256: string;
  /** file size in bytes */
  size: number;
  /** MBR disk id ("1a2b3c4d") or GPT disk GUID (lower-case) */
  diskId: string;
  /** root filesystem: UUID, label, block size, features passed to mke2fs */
  rootfs: { uuid: string; label: string; blockSize: 1024 | 4096; features: string; sizeBytes: number };
  /** where the boot configuration naming the root lives, and its text */
  bootConfig: { partition: number; path: string; kind: 'boot.scr' | 'extlinux' | 'cmdline.txt' | 'grub.cfg' | 'armbianEnv.txt'; text: string };
  /** files in the boot partition (or /boot for Armbian), '/'-rooted */
  bootFiles: string[];
  /** symlinks under /boot (Armbian) → their targets */
  bootSymlinks: Record<string, string>;
  /** the awkward rootfs entries, by role */
  edge: EdgeCaseInfo;
  /** entries that are not in rootfsTree itself but were written into the ext4 by debugfs */
  specials: { devices: DeviceSpec[]; xattrs: { path: string; name: string; valueHex: string }[]; owners: Record<string, [number, number]> };
  /** true when the host's busybox binary was used (false: a stand-in blob) */
  busyboxReal: boolean;
  /** true when BOOTX64.EFI is a real GRUB (EFI layout only) */
  grubReal?: boolean;
  /** cache key; `cached` says whether this call reused an earlier build; buildMs is the cold build time */
  key: string;
  cached: boolean;
  buildMs: number;
}

export interface CommonOptions {
  /** file name inside `dir` (default `<layout>-<key8>.img`) */
  name?: string;
  /** path to a real kernel, else a stand-in with a real header */
  kernel?: string;
  initrd?: string;
  /** busybox binary to install (e.g. an arm64 busybox-static for boot tests); default: the host's */
  busybox?: string;
  rootfsSize?: string;
  rootfsExtra?: Record<string, string>;
  /** create /dev/console and /dev/null device nodes in the rootfs (default true) */
  devices?: boolean;
}

export interface BuildrootOptions extends CommonOptions {
  p1StartSector?: 1 | 64 | 2128 | 2048 | 32768;
  blockSize?: 1024 | 4096;
  bootSize?: string;
  bootKind?: 'boot.scr' | 'extlinux' | 'cmdline.txt';
  /** raw sunxi SPL (u-boot-sunxi-with-spl.bin) at 8 KiB */
  spl?: boolean;
  /** a real U-Boot binary (e.g. Debian's u-boot-sunxi-with-spl) at 8 KiB instead of the stand-in blob; implies spl */
  splFile?: string;
  /** more files on the boot partition: '/'-rooted path there → host file (e.g. a board's u-boot.bin) */
  bootPartitionFiles?: Record<string, string>;
  dtb?: string;
  imageSizeUnaligned?: boolean;
  /** root= on the kernel command line (default /dev/mmcblk0p2) */
  rootDev?: string;
  /** serial console for bootargs (default ttyS0,115200; RPi ttyAMA0,115200) */
  console?: string;
  /** U-Boot device:partition boot.scr loads from (default "mmc 0:1"; "virtio 0:1" under QEMU virt) */
  ubootDev?: string;
}

export interface ArmbianOptions extends CommonOptions {
  rootStartSector?: 8192 | 32768;
  /** rockchip: idbloader at 64 + u-boot.itb at 16384 (needs root at 32768); sunxi: SPL+U-Boot at 8 KiB */
  soc?: 'rockchip' | 'sunxi';
  /** Armbian's old-U-Boot mode: -O ^64bit,^metadata_csum */
  legacyExt4Features?: boolean;
}

export interface EfiOptions extends CommonOptions {
  espStartSector?: 64 | 2048;
  arch?: 'x86_64' | 'arm64';
  rootType?: 'linux-generic' | 'linux-root-x86-64' | 'linux-root-arm64';
  /** rootfs: /boot/vmlinuz in the root filesystem (grub.cfg searches for it); esp: Buildroot's bzImage on the ESP */
  kernelLocation?: 'rootfs' | 'esp';
  espSize?: string;
  blockSize?: 1024 | 4096;
  /** grub-mkimage's module list for the real GRUB (default: a generous Buildroot-style list with loadenv) */
  grubModules?: string[];
  /** more files on the ESP: '/'-rooted path there → host file (e.g. a GRUB module folder) */
  espFiles?: Record<string, string>;
}

export interface Rockpro64Options extends CommonOptions {
  /** real boot loader files (Debian's u-boot-rockchip idbloader.img / u-boot.itb) instead of the stand-in blobs */
  idbloaderFile?: string;
  ubootItbFile?: string;
  blockSize?: 1024 | 4096;
  bootSize?: string;
  dtb?: string;
  rootDev?: string;
}

// ---------------------------------------------------------------- type GUIDs

export const GUID = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  rootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  rootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  basicData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
} as const;

// ---------------------------------------------------------------- cache

const HELPER_FILES = ['images.ts', 'images-lib.ts', 'images-rootfs.ts', 'images-bad.ts'];
const HERE = fileURLToPath(new URL('.', import.meta.url));
let sourceHash: string | undefined;
function helperSourceHash(): string {
  sourceHash ??= sha256(HELPER_FILES.map((f) => { try { return fs.readFileSync(join(HERE, f)); } catch { return Buffer.alloc(0); } })
    .reduce((a, b) => Buffer.concat([a, b]), Buffer.alloc(0)));
  return sourceHash;
}

function fileHash(p: string | undefined): string | undefined {
  return p === undefined ? undefined : sha256(fs.readFileSync(p));
}

export function cacheRoot(): string {
  return process.env.OTAPACK_FIXTURE_CACHE ?? join(tmpdir(), 'otapack-fixtures');
}

let pruned = false;
/**
 * Once per process: drop entries made by another version of these helpers (each is ~25 MB on
 * disk) and temp dirs of builds that died, once they are an hour old (so a concurrent run of an
 * older checkout is not disturbed).
 */
function pruneCache(root: string): void {
  if (pruned) return;
  pruned = true;
  const now = Date.now();
  let names: string[] = [];
  try { names = fs.readdirSync(root); } catch { return; }
  for (const n of names) {
    const p = join(root, n);
    try {
      const age = now - fs.statSync(p).mtimeMs;
      if (age < 3600_000) continue;
      const stale = n.startsWith('.tmp-') || (fs.existsSync(join(p, 'src')) && fs.readFileSync(join(p, 'src'), 'utf8') !== helperSourceHash());
      if (stale) fs.rmSync(p, { recursive: true, force: true });
    } catch { /* raced with another worker: fine */ }
  }
}

type Built = Omit<FixtureImage, 'path' | 'key' | 'cached' | 'buildMs' | 'sha256' | 'size'>;
interface Entry { dir: string; desc: Omit<FixtureImage, 'path' | 'cached'> }
const inflight = new Map<string, Promise<Entry>>();

const INPUT_FILES = new Set(['kernel', 'initrd', 'dtb', 'busybox']);
/** Options (input files by base name: their content is hashed separately), inputs, helper source. */
function computeKey(kind: string, opts: object, files: (string | undefined)[]): string {
  const o = Object.entries(opts).filter(([k, v]) => v !== undefined && k !== 'name')
    .map(([k, v]) => [k, INPUT_FILES.has(k) ? basename(String(v)) : v] as const).sort(([a], [b]) => a.localeCompare(b));
  const norm = JSON.stringify({ kind, opts: Object.fromEntries(o), files: files.map(fileHash), bb: busyboxIdentity(opts), src: helperSourceHash(), epoch: EPOCH });
  return sha256(norm).slice(0, 24);
}

function busyboxIdentity(opts: object): string {
  const o = opts as { busybox?: string };
  if (o.busybox) return 'opt';
  const p = ['/bin/busybox', '/usr/bin/busybox'].find((x) => fs.existsSync(x));
  return p ? `${fs.statSync(p).size}:${fs.statSync(p).mtimeMs}` : 'none';
}

async function cached(kind: string, opts: object, files: (string | undefined)[], workParent: string | undefined, build: (work: string, key: string) => Promise<Built>): Promise<Entry> {
  const key = computeKey(kind, opts, files);
  const root = cacheRoot();
  const final = join(root, key);
  fs.mkdirSync(root, { recursive: true });
  pruneCache(root);
  if (!workParent) {
    const hit = readEntry(final);
    if (hit) return hit;
    const p = inflight.get(key);
    if (p) return p;
  }
  const run = (async (): Promise<Entry> => {
    fs.mkdirSync(workParent ?? root, { recursive: true });
    const work = fs.mkdtempSync(join(workParent ?? root, `.tmp-${key}-`));
    fs.chmodSync(work, 0o755);
    try {
      const t0 = performance.now();
      const built = await build(work, key);
      const img = join(work, 'image.img');
      const desc: Entry['desc'] = { ...built, sha256: await fileSha256(img), size: fs.statSync(img).size, key, buildMs: Math.round(performance.now() - t0) };
      if (workParent) {
        fs.writeFileSync(join(work, 'desc.json'), JSON.stringify(desc, null, 1));
        return { dir: work, desc };
      }
      // Paths inside the description point at the final location.
      const moved = JSON.parse(JSON.stringify(desc).split(work).join(final)) as Entry['desc'];
      fs.writeFileSync(join(work, 'src'), helperSourceHash());
      fs.writeFileSync(join(work, 'desc.json'), JSON.stringify(moved, null, 1));
      try { fs.renameSync(work, final); } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        fs.rmSync(work, { recursive: true, force: true }); // another worker won the race
      }
      const hit = readEntry(final);
      if (!hit) throw new Error(`fixture cache entry ${final} is unreadable`);
      return hit;
    } catch (e) {
      fs.rmSync(work, { recursive: true, force: true });
      throw e;
    } finally { if (!workParent) inflight.delete(key); }
  })();
  if (!workParent) inflight.set(key, run);
  return run;
}

function readEntry(dir: string): Entry | undefined {
  try { return { dir, desc: JSON.parse(fs.readFileSync(join(dir, 'desc.json'), 'utf8')) as Entry['desc'] }; } catch { return undefined; }
}

async function deliver(entry: Entry, dir: string, name: string | undefined, wasCached: boolean): Promise<FixtureImage> {
  fs.mkdirSync(dir, { recursive: true });
  const out = join(dir, name ?? `${entry.desc.layout}-${entry.desc.key.slice(0, 8)}.img`);
  await execa('cp', ['--sparse=always', '--reflink=auto', join(entry.dir, 'image.img'), out]);
  return { ...entry.desc, path: out, cached: wasCached };
}

/**
 * With the cache off (OTAPACK_FIXTURE_NOCACHE=1) the build happens in `<dir>/.tmp-<key>-*`, which
 * then holds rootfsTree: it goes away with the caller's directory.
 */
async function buildCached(kind: string, dir: string, opts: CommonOptions & object, files: (string | undefined)[], build: (work: string, key: string) => Promise<Built>): Promise<FixtureImage> {
  const noCache = process.env.OTAPACK_FIXTURE_NOCACHE === '1';
  const key = computeKey(kind, opts, files);
  const existed = !noCache && (inflight.has(key) || fs.existsSync(join(cacheRoot(), key, 'desc.json')));
  const entry = await cached(kind, opts, files, noCache ? dir : undefined, build);
  const img = await deliver(entry, dir, opts.name, existed);
  if (noCache) fs.rmSync(join(entry.dir, 'image.img'));
  return img;
}

// ---------------------------------------------------------------- helpers

const MiB = 1 << 20;
const sectors = (bytes: number): number => Math.ceil(bytes / SECTOR);
const roundUp = (n: number, m: number): number => Math.ceil(n / m) * m;

function region(name: string, offset: number, data: Buffer): RawRegion & { data: Buffer } {
  return { name, offset, length: data.length, sha256: sha256(data), data };
}

function readOr(p: string | undefined, make: () => Buffer): Buffer {
  return p ? fs.readFileSync(p) : make();
}

function specialsOf(t: Tree): FixtureImage['specials'] {
  return {
    devices: t.devices,
    xattrs: t.xattrs.map((x) => ({ path: x.path, name: x.name, valueHex: x.value.toString('hex') })),
    owners: Object.fromEntries(t.owners),
  };
}

const SUNXI_SPL_LEN = 640_163; // u-boot-sunxi-with-spl.bin is ~600-700 KiB and not sector-padded
const IDBLOADER_LEN = 165_888; // rk3399 idbloader.img (TPL+SPL), padded to 2 KiB by mkimage -T rksd
const UBOOT_ITB_LEN = 1_046_531; // u-boot.itb (FIT with ATF + U-Boot + DTB), not sector-padded

function sunxiSpl(): Buffer { return patternBlob('u-boot-sunxi-with-spl.bin', SUNXI_SPL_LEN, sunxiSplHeader(SUNXI_SPL_LEN)); }
function idbloader(): Buffer { return patternBlob('idbloader.img', IDBLOADER_LEN, Buffer.from('RK33', 'latin1')); }
function ubootItb(): Buffer {
  const h = Buffer.alloc(8); h.writeUInt32BE(0xd00dfeed, 0); h.writeUInt32BE(UBOOT_ITB_LEN, 4);
  return patternBlob('u-boot.itb', UBOOT_ITB_LEN, h);
}

// ---------------------------------------------------------------- Buildroot / RPi

/** Buildroot genimage-style MBR image: p1 FAT boot (boot.scr | extlinux | RPi firmware), p2 ext4 rootfs. */
export async function buildBuildrootImage(dir: string, o: BuildrootOptions = {}): Promise<FixtureImage> {
  const bootKind = o.bootKind ?? 'boot.scr';
  const rpi = bootKind === 'cmdline.txt';
  const splLen = o.splFile ? fs.statSync(o.splFile).size : SUNXI_SPL_LEN;
  const p1Start = o.p1StartSector ?? (rpi ? 1 : o.spl || o.splFile ? 2128 : 2048);
  const opts = {
    ...o, bootKind, p1StartSector: p1Start, blockSize: o.blockSize ?? 1024, rootfsSize: o.rootfsSize ?? '60M',
    bootSize: o.bootSize ?? '32M', spl: (o.spl ?? false) || o.splFile !== undefined, imageSizeUnaligned: o.imageSizeUnaligned ?? p1Start === 1,
    rootDev: o.rootDev ?? '/dev/mmcblk0p2', console: o.console ?? (rpi ? 'ttyAMA0,115200' : 'ttyS0,115200'), devices: o.devices ?? true,
    ubootDev: o.ubootDev ?? 'mmc 0:1',
  };
  if (opts.spl && p1Start * SECTOR < 8192 + splLen) throw new Error(`spl needs p1 at or after sector ${sectors(8192 + splLen)} (got ${p1Start})`);
  return buildCached('buildroot', dir, opts, [o.kernel, o.initrd, o.dtb, o.busybox, o.splFile, ...Object.values(o.bootPartitionFiles ?? {})], async (work, key) => {
    const layout: Layout = rpi ? 'rpi' : 'buildroot';
    const fsUuid = uuidFrom(`${key}:rootfs`);
    const dtbName = o.dtb ? basename(o.dtb) : rpi ? 'bcm2711-rpi-4-b.dtb' : 'sun50i-h5-orangepi-pc2.dtb';
    const dtb = readOr(o.dtb, () => boardDtb(rpi ? 'Raspberry Pi 4 Model B' : 'Xunlong Orange Pi PC 2', dtbName.replace(/\.dtb$/, '')));
    const kernel = readOr(o.kernel, () => fakeArm64Image(`buildroot-${layout}`));
    const initrd = o.initrd ? fs.readFileSync(o.initrd) : undefined;
    const cmdline = `console=${opts.console} root=${opts.rootDev} rootwait`;

    // p1: the FAT boot partition genimage would make from boot.vfat
    const files: FatFile[] = [{ path: '/Image', data: kernel }, { path: `/${dtbName}`, data: dtb }];
    if (initrd) files.push({ path: '/initrd.img', data: initrd });
    for (const [path, host] of Object.entries(o.bootPartitionFiles ?? {})) files.push({ path, data: fs.readFileSync(host) });
    let bootConfig: FixtureImage['bootConfig'];
    if (bootKind === 'boot.scr') {
      const cmd = [
        `setenv bootargs ${cmdline}`,
        `fatload ${opts.ubootDev} \${kernel_addr_r} Image`,
        `load ${opts.ubootDev} \${fdt_addr_r} ${dtbName}`,
        ...(initrd ? [`load ${opts.ubootDev} \${ramdisk_addr_r} initrd.img`, 'booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}'] : ['booti ${kernel_addr_r} - ${fdt_addr_r}']),
      ].join('\n') + '\n';
      const cmdFile = join(work, 'boot.cmd');
      fs.writeFileSync(cmdFile, cmd);
      await mkScript(cmdFile, join(work, 'boot.scr'));
      files.push({ path: '/boot.scr', data: fs.readFileSync(join(work, 'boot.scr')) });
      bootConfig = { partition: 1, path: '/boot.scr', kind: 'boot.scr', text: cmd };
    } else if (bootKind === 'extlinux') {
      const text = `label buildroot\n  kernel /Image\n  devicetree /${dtbName}\n${initrd ? '  initrd /initrd.img\n' : ''}  append ${cmdline}\n`;
      files.push({ path: '/extlinux/extlinux.conf', data: text });
      bootConfig = { partition: 1, path: '/extlinux/extlinux.conf', kind: 'extlinux', text };
    } else {
      const text = `root=${opts.rootDev} rootwait console=tty1 console=${opts.console}\n`;
      const config = `# Raspberry Pi 4, 64-bit (fixture)\nstart_file=start4.elf\nfixup_file=fixup4.dat\n\nkernel=Image\narm_64bit=1\n${initrd ? 'initramfs initrd.img followkernel\n' : ''}\ndisable_overscan=1\ngpu_mem=100\n\n# serial console on GPIO 14/15\nenable_uart=1\ndtoverlay=miniuart-bt\n`;
      files.push({ path: '/cmdline.txt', data: text }, { path: '/config.txt', data: config },
        { path: '/start4.elf', data: patternBlob('rpi:start4.elf', 256 << 10) }, { path: '/fixup4.dat', data: patternBlob('rpi:fixup4.dat', 5446) },
        { path: '/overlays/miniuart-bt.dtbo', data: overlayDtbo('miniuart-bt') }, { path: '/overlays/vc4-kms-v3d-pi4.dtbo', data: overlayDtbo('vc4-kms-v3d-pi4') });
      bootConfig = { partition: 1, path: '/cmdline.txt', kind: 'cmdline.txt', text };
    }
    const bootBytes = parseSize(opts.bootSize);
    const bootImg = join(work, 'boot.vfat');
    await makeVfat({ out: bootImg, sizeBytes: bootBytes, label: 'BOOT', volumeId: hex32From(`${key}:boot`), files });

    // p2: rootfs.ext4 as Buildroot makes it (-O ^64bit, 1 KiB blocks below 512 MiB, label rootfs)
    const fstab = '# <file system>\t<mount pt>\t<type>\t<options>\t<dump>\t<pass>\n/dev/root\t/\t\text2\trw,noauto\t0\t1\nproc\t\t/proc\t\tproc\tdefaults\t0\t0\ndevpts\t\t/dev/pts\tdevpts\tdefaults,gid=5,mode=620,ptmxmode=0666\t0\t0\ntmpfs\t\t/dev/shm\ttmpfs\tmode=0777\t0\t0\ntmpfs\t\t/tmp\t\ttmpfs\tmode=1777\t0\t0\ntmpfs\t\t/run\t\ttmpfs\tmode=0755,nosuid,nodev\t0\t0\nsysfs\t\t/sys\t\tsysfs\tdefaults\t0\t0\n';
    const treeDir = join(work, 'rootfs');
    const { tree, edge, busyboxReal } = buildrootTree(treeDir, { hostname: rpi ? 'buildroot-rpi4' : 'buildroot', fstab, busybox: o.busybox, arch: 'aarch64', devices: opts.devices, extra: o.rootfsExtra });
    const entries = await tree.finish();
    const bs = opts.blockSize;
    let rootBytes = parseSize(opts.rootfsSize);
    if (opts.imageSizeUnaligned && (p1Start + sectors(bootBytes)) * SECTOR % MiB === 0) rootBytes += 3 * bs; // make the end land off a MiB boundary
    const features = '^64bit';
    const rootImg = join(work, 'rootfs.ext4');
    await makeExt4({ out: rootImg, tree, entries, sizeBytes: rootBytes, blockSize: bs, label: 'rootfs', uuid: fsUuid, features });

    const p2Start = p1Start + sectors(bootBytes);
    const end = (p2Start + sectors(rootBytes)) * SECTOR;
    const size = opts.imageSizeUnaligned ? end : roundUp(end, MiB);
    const diskId = hex32From(`${key}:disk`);
    const raw = opts.spl ? [region('u-boot-sunxi-with-spl.bin', 8192, o.splFile ? fs.readFileSync(o.splFile) : sunxiSpl())] : [];
    await assembleDisk({
      out: join(work, 'image.img'), sizeBytes: size, label: 'dos', labelId: diskId, raw,
      parts: [
        { start: p1Start, size: sectors(bootBytes), type: 'c', bootable: true, file: bootImg },
        { start: p2Start, size: sectors(rootBytes), type: '83', file: rootImg },
      ],
    });
    fs.rmSync(bootImg); fs.rmSync(rootImg);
    return {
      layout, table: 'mbr', diskId, rootPartition: 2, bootPartition: 1, rootSpec: opts.rootDev,
      partitions: [
        { number: 1, start: p1Start, size: sectors(bootBytes), type: 'c', fs: 'vfat', role: 'boot' },
        { number: 2, start: p2Start, size: sectors(rootBytes), type: '83', fs: 'ext4', role: 'root' },
      ],
      rawRegions: raw.map(({ data: _d, ...r }) => r),
      rootfsTree: treeDir, rootfs: { uuid: fsUuid, label: 'rootfs', blockSize: bs, features, sizeBytes: rootBytes },
      bootConfig, bootFiles: files.map((f) => f.path).sort(), bootSymlinks: {}, edge, specials: specialsOf(tree), busyboxReal,
    };
  });
}

/** Buildroot raspberrypi4_64: p1 at sector 1, config.txt + cmdline.txt, file size not a whole MiB. */
export function buildRpiImage(dir: string, o: Omit<BuildrootOptions, 'bootKind'> = {}): Promise<FixtureImage> {
  return buildBuildrootImage(dir, { ...o, bootKind: 'cmdline.txt' });
}

// ---------------------------------------------------------------- Armbian

/** Armbian-style single-partition image: raw U-Boot blobs before the root, /boot inside the ext4 root. */
export async function buildArmbianImage(dir: string, o: ArmbianOptions = {}): Promise<FixtureImage> {
  const rootStart = o.rootStartSector ?? 32768;
  const soc = o.soc ?? (rootStart === 8192 ? 'sunxi' : 'rockchip');
  if (soc === 'rockchip' && rootStart < 16384 + sectors(UBOOT_ITB_LEN)) throw new Error(`rockchip Armbian needs the root after u-boot.itb at sector 16384 (rootStartSector ${rootStart})`);
  const opts = { ...o, rootStartSector: rootStart, soc, rootfsSize: o.rootfsSize ?? '160M', legacyExt4Features: o.legacyExt4Features ?? false, devices: o.devices ?? true };
  return buildCached('armbian', dir, opts, [o.kernel, o.initrd, o.busybox], async (work, key) => {
    const fsUuid = uuidFrom(`${key}:rootfs`);
    const rk = soc === 'rockchip';
    const board = rk
      ? { board: 'rockpro64', boardName: 'RockPro64', family: 'rockchip64', fdtfile: 'rockchip/rk3399-rockpro64.dtb', overlayPrefix: 'rockchip', overlayDir: 'rockchip', console: 'ttyS2,1500000', loadAddr: '0x9000000' }
      : { board: 'orangepizero2', boardName: 'OrangePi Zero2', family: 'sunxi64', fdtfile: 'allwinner/sun50i-h616-orangepi-zero2.dtb', overlayPrefix: 'sun50i-h616', overlayDir: 'allwinner', console: 'ttyS0,115200', loadAddr: '0x45000000' };
    const kernelVersion = `6.6.16-current-${board.family}`;
    const initrd = readOr(o.initrd, () => initramfs('armbian'));
    const initrdFile = join(work, 'initrd.img');
    fs.writeFileSync(initrdFile, initrd);
    await mkRamdisk(initrdFile, join(work, 'uInitrd'));
    const bootCmd = armbianBootCmd({ loadAddr: board.loadAddr, consoleSerial: board.console, overlayDir: board.overlayDir });
    fs.writeFileSync(join(work, 'boot.cmd'), bootCmd);
    await mkScript(join(work, 'boot.cmd'), join(work, 'boot.scr'), 'arm', 'Armbian boot script');
    const treeDir = join(work, 'rootfs');
    const { tree, edge, bootSymlinks } = armbianTree(treeDir, {
      fsUuid, ...board, kernelVersion, kernel: o.kernel ? fs.readFileSync(o.kernel) : undefined, initrd,
      uInitrd: fs.readFileSync(join(work, 'uInitrd')), bootCmd, bootScr: fs.readFileSync(join(work, 'boot.scr')),
      busybox: o.busybox, devices: opts.devices, extra: o.rootfsExtra, console: 'both',
    });
    for (const f of ['initrd.img', 'uInitrd', 'boot.cmd', 'boot.scr']) fs.rmSync(join(work, f));
    const entries = await tree.finish();
    const rootBytes = parseSize(opts.rootfsSize);
    const features = opts.legacyExt4Features ? '^64bit,^metadata_csum' : '';
    const rootImg = join(work, 'rootfs.ext4');
    await makeExt4({ out: rootImg, tree, entries, sizeBytes: rootBytes, blockSize: 4096, label: 'armbi_root', uuid: fsUuid, features: features || undefined, reservedPercent: 2 });
    const diskId = hex32From(`${key}:disk`);
    const raw = rk
      ? [region('idbloader.img', 64 * SECTOR, idbloader()), region('u-boot.itb', 16384 * SECTOR, ubootItb())]
      : [region('u-boot-sunxi-with-spl.bin', 8192, sunxiSpl())];
    await assembleDisk({
      out: join(work, 'image.img'), sizeBytes: rootStart * SECTOR + rootBytes, label: 'dos', labelId: diskId, raw,
      parts: [{ start: rootStart, size: sectors(rootBytes), type: '83', file: rootImg }],
    });
    fs.rmSync(rootImg);
    const envText = fs.readFileSync(join(treeDir, 'boot/armbianEnv.txt'), 'utf8');
    const bootFiles = entries.filter((e) => e.startsWith('/boot/')).filter((e) => !fs.lstatSync(join(treeDir, e)).isDirectory());
    return {
      layout: 'armbian', table: 'mbr', diskId, rootPartition: 1, rootSpec: `UUID=${fsUuid}`,
      partitions: [{ number: 1, start: rootStart, size: sectors(rootBytes), type: '83', fs: 'ext4', role: 'root' }],
      rawRegions: raw.map(({ data: _d, ...r }) => r),
      rootfsTree: treeDir, rootfs: { uuid: fsUuid, label: 'armbi_root', blockSize: 4096, features: features || '(mke2fs.conf defaults: 64bit,metadata_csum)', sizeBytes: rootBytes },
      bootConfig: { partition: 1, path: '/boot/armbianEnv.txt', kind: 'armbianEnv.txt', text: envText },
      bootFiles, bootSymlinks, edge, specials: specialsOf(tree), busyboxReal: busyboxBinary(o.busybox).real,
    };
  });
}

// ---------------------------------------------------------------- EFI

/** Buildroot pc_x86_64_efi-style GPT image: ESP (GRUB + grub.cfg) at sector 64, ext4 root with root=PARTUUID=. */
export async function buildEfiImage(dir: string, o: EfiOptions = {}): Promise<FixtureImage> {
  const arch = o.arch ?? 'x86_64';
  const opts = {
    ...o, arch, espStartSector: o.espStartSector ?? 64, rootType: o.rootType ?? (arch === 'x86_64' ? 'linux-root-x86-64' : 'linux-root-arm64'),
    kernelLocation: o.kernelLocation ?? 'rootfs', espSize: o.espSize ?? '32M', rootfsSize: o.rootfsSize ?? '60M', blockSize: o.blockSize ?? 1024, devices: o.devices ?? true,
  };
  return buildCached('efi', dir, opts, [o.kernel, o.initrd, o.busybox, ...Object.values(o.espFiles ?? {})], async (work, key) => {
    const x86 = arch === 'x86_64';
    const fsUuid = uuidFrom(`${key}:rootfs`);
    const espUuid = uuidFrom(`${key}:esp-part`);
    const rootUuid = uuidFrom(`${key}:root-part`);
    const diskId = uuidFrom(`${key}:disk`);
    const rootTypeGuid = { 'linux-generic': GUID.linux, 'linux-root-x86-64': GUID.rootX86_64, 'linux-root-arm64': GUID.rootArm64 }[opts.rootType];
    const kernel = readOr(o.kernel, () => (x86 ? fakeBzImage('efi-x86_64') : fakeArm64Image('efi-arm64')));
    const initrd = readOr(o.initrd, () => initramfs('efi'));
    const serial = x86 ? 'ttyS0,115200' : 'ttyAMA0,115200';
    const onEsp = opts.kernelLocation === 'esp';
    const kname = x86 ? 'bzImage' : 'Image';
    const linuxLine = onEsp
      ? `\tlinux /${kname} root=PARTUUID=${rootUuid} rootwait console=tty1 console=${serial}\n\tinitrd /initrd.img\n`
      : `\tinsmod part_gpt\n\tinsmod ext2\n\tsearch --no-floppy --fs-uuid --set=root ${fsUuid}\n\tlinux /boot/vmlinuz root=PARTUUID=${rootUuid} rootwait ro console=tty1 console=${serial}\n\tinitrd /boot/initrd.img\n`;
    const grubCfg = `set default="0"\nset timeout="2"\n\nmenuentry "Buildroot" {\n${linuxLine}}\n`;
    const efiName = x86 ? 'BOOTX64.EFI' : 'BOOTAA64.EFI';
    const efiPath = join(work, efiName);
    const grubReal = await grubEfi(efiPath, x86 ? 'x86_64-efi' : 'arm64-efi', o.grubModules);
    const efiBin = grubReal ? fs.readFileSync(efiPath) : fakeEfiApp(`grub-${arch}`, x86 ? 0x8664 : 0xaa64);
    if (grubReal) fs.rmSync(efiPath);
    const files: FatFile[] = [{ path: `/EFI/BOOT/${efiName}`, data: efiBin }, { path: '/EFI/BOOT/grub.cfg', data: grubCfg }];
    if (onEsp) files.push({ path: `/${kname}`, data: kernel }, { path: '/initrd.img', data: initrd });
    for (const [path, host] of Object.entries(o.espFiles ?? {})) files.push({ path, data: fs.readFileSync(host) });
    const espBytes = parseSize(opts.espSize);
    const espImg = join(work, 'efi-part.vfat');
    await makeVfat({ out: espImg, sizeBytes: espBytes, label: 'EFI', volumeId: hex32From(`${key}:esp`), files });

    const fstab = `# <file system>\t<mount pt>\t<type>\t<options>\t<dump>\t<pass>\nPARTUUID=${rootUuid}\t/\text4\trw,noatime\t0\t1\nPARTUUID=${espUuid}\t/boot/efi\tvfat\tdefaults,umask=0077\t0\t2\nproc\t\t/proc\t\tproc\tdefaults\t0\t0\ndevpts\t\t/dev/pts\tdevpts\tdefaults,gid=5,mode=620,ptmxmode=0666\t0\t0\ntmpfs\t\t/dev/shm\ttmpfs\tmode=0777\t0\t0\ntmpfs\t\t/tmp\t\ttmpfs\tmode=1777\t0\t0\ntmpfs\t\t/run\t\ttmpfs\tmode=0755,nosuid,nodev\t0\t0\nsysfs\t\t/sys\t\tsysfs\tdefaults\t0\t0\n`;
    const treeDir = join(work, 'rootfs');
    const { tree, edge, busyboxReal } = buildrootTree(treeDir, {
      hostname: 'buildroot-efi', fstab, busybox: o.busybox, arch: x86 ? 'x86_64' : 'aarch64', devices: opts.devices, extra: o.rootfsExtra,
      extraDirs: ['/boot/efi'], kernelInRootfs: onEsp ? undefined : { path: '/boot/vmlinuz', data: kernel, initrd: { path: '/boot/initrd.img', data: initrd } },
    });
    const entries = await tree.finish();
    const rootBytes = parseSize(opts.rootfsSize);
    const rootImg = join(work, 'rootfs.ext4');
    await makeExt4({ out: rootImg, tree, entries, sizeBytes: rootBytes, blockSize: opts.blockSize, label: 'rootfs', uuid: fsUuid, features: '^64bit' });
    const espStart = opts.espStartSector;
    const rootStart = espStart + sectors(espBytes);
    const size = (rootStart + sectors(rootBytes) + 33) * SECTOR; // genimage: backup GPT right after the last partition
    await assembleDisk({
      out: join(work, 'image.img'), sizeBytes: size, label: 'gpt', labelId: diskId,
      parts: [
        { start: espStart, size: sectors(espBytes), type: GUID.esp, uuid: espUuid, name: 'boot', attrs: 'LegacyBIOSBootable', file: espImg },
        { start: rootStart, size: sectors(rootBytes), type: rootTypeGuid, uuid: rootUuid, name: 'root', file: rootImg },
      ],
    });
    fs.rmSync(espImg); fs.rmSync(rootImg);
    return {
      layout: 'efi', table: 'gpt', diskId, rootPartition: 2, bootPartition: 1, rootSpec: `PARTUUID=${rootUuid}`,
      partitions: [
        { number: 1, start: espStart, size: sectors(espBytes), type: GUID.esp, fs: 'vfat', name: 'boot', uuid: espUuid, role: 'esp' },
        { number: 2, start: rootStart, size: sectors(rootBytes), type: rootTypeGuid, fs: 'ext4', name: 'root', uuid: rootUuid, role: 'root' },
      ],
      rawRegions: [], rootfsTree: treeDir,
      rootfs: { uuid: fsUuid, label: 'rootfs', blockSize: opts.blockSize, features: '^64bit', sizeBytes: rootBytes },
      bootConfig: { partition: 1, path: '/EFI/BOOT/grub.cfg', kind: 'grub.cfg', text: grubCfg },
      bootFiles: files.map((f) => f.path).sort(), bootSymlinks: {}, edge, specials: specialsOf(tree), busyboxReal, grubReal,
    };
  });
}

// ---------------------------------------------------------------- RockPro64 GPT

/** Buildroot rockpro64-style GPT: loader1 (idbloader) at 64, loader2 (u-boot.itb) at 16384, FAT boot, ext4 root. */
export async function buildRockpro64GptImage(dir: string, o: Rockpro64Options = {}): Promise<FixtureImage> {
  const opts = { ...o, blockSize: o.blockSize ?? 1024, bootSize: o.bootSize ?? '32M', rootfsSize: o.rootfsSize ?? '60M', rootDev: o.rootDev ?? '/dev/mmcblk1p4', devices: o.devices ?? true };
  return buildCached('rockpro64-gpt', dir, opts, [o.kernel, o.initrd, o.dtb, o.busybox, o.idbloaderFile, o.ubootItbFile], async (work, key) => {
    const fsUuid = uuidFrom(`${key}:rootfs`);
    const diskId = uuidFrom(`${key}:disk`);
    const pu = (n: string): string => uuidFrom(`${key}:part:${n}`);
    const dtbName = o.dtb ? basename(o.dtb) : 'rk3399-rockpro64.dtb';
    const initrd = o.initrd ? fs.readFileSync(o.initrd) : undefined;
    const text = `label RockPro64 linux\n  kernel /Image\n  devicetree /${dtbName}\n${initrd ? '  initrd /initrd.img\n' : ''}  append earlycon=uart8250,mmio32,0xff1a0000 console=ttyS2,1500000n8 root=${opts.rootDev} rootwait\n`;
    const files: FatFile[] = [
      { path: '/Image', data: readOr(o.kernel, () => fakeArm64Image('rockpro64')) },
      { path: `/${dtbName}`, data: readOr(o.dtb, () => boardDtb('Pine64 RockPro64 v2.1', 'rk3399-rockpro64')) },
      { path: '/extlinux/extlinux.conf', data: text },
    ];
    if (initrd) files.push({ path: '/initrd.img', data: initrd });
    const bootBytes = parseSize(opts.bootSize);
    const bootImg = join(work, 'boot.vfat');
    await makeVfat({ out: bootImg, sizeBytes: bootBytes, label: 'BOOT', volumeId: hex32From(`${key}:boot`), files });
    const fstab = '# <file system>\t<mount pt>\t<type>\t<options>\t<dump>\t<pass>\n/dev/root\t/\t\text2\trw,noauto\t0\t1\nproc\t\t/proc\t\tproc\tdefaults\t0\t0\ntmpfs\t\t/tmp\t\ttmpfs\tmode=1777\t0\t0\nsysfs\t\t/sys\t\tsysfs\tdefaults\t0\t0\n';
    const treeDir = join(work, 'rootfs');
    const { tree, edge, busyboxReal } = buildrootTree(treeDir, { hostname: 'rockpro64', fstab, busybox: o.busybox, arch: 'aarch64', devices: opts.devices, extra: o.rootfsExtra });
    const entries = await tree.finish();
    const rootBytes = parseSize(opts.rootfsSize);
    const rootImg = join(work, 'rootfs.ext4');
    await makeExt4({ out: rootImg, tree, entries, sizeBytes: rootBytes, blockSize: opts.blockSize, label: 'rootfs', uuid: fsUuid, features: '^64bit' });
    const idb = region('idbloader.img', 64 * SECTOR, o.idbloaderFile ? fs.readFileSync(o.idbloaderFile) : idbloader());
    const itb = region('u-boot.itb', 16384 * SECTOR, o.ubootItbFile ? fs.readFileSync(o.ubootItbFile) : ubootItb());
    const bootStart = 32768;
    const rootStart = bootStart + sectors(bootBytes);
    const parts: (TablePart & { role: FixturePartition['role']; fs?: 'vfat' | 'ext4' })[] = [
      // genimage gives partitions without a type the Linux filesystem GUID: loaders look like Linux data.
      { start: 64, size: 8000, type: GUID.linux, uuid: pu('loader1'), name: 'loader1', role: 'loader' },
      { start: 16384, size: 8192, type: GUID.linux, uuid: pu('loader2'), name: 'loader2', role: 'loader' },
      { start: bootStart, size: sectors(bootBytes), type: GUID.basicData, uuid: pu('boot'), name: 'boot', attrs: 'LegacyBIOSBootable', file: bootImg, role: 'boot', fs: 'vfat' },
      { start: rootStart, size: sectors(rootBytes), type: GUID.linux, uuid: pu('rootfs'), name: 'rootfs', file: rootImg, role: 'root', fs: 'ext4' },
    ];
    await assembleDisk({ out: join(work, 'image.img'), sizeBytes: (rootStart + sectors(rootBytes) + 33) * SECTOR, label: 'gpt', labelId: diskId, parts, raw: [idb, itb] });
    fs.rmSync(bootImg); fs.rmSync(rootImg);
    return {
      layout: 'rockpro64-gpt', table: 'gpt', diskId, rootPartition: 4, bootPartition: 3, rootSpec: opts.rootDev,
      partitions: parts.map((p, i) => ({ number: i + 1, start: p.start, size: p.size, type: p.type, name: p.name, uuid: p.uuid, role: p.role, ...(p.fs ? { fs: p.fs } : {}) })),
      rawRegions: [idb, itb].map(({ data: _d, ...r }) => r), rootfsTree: treeDir,
      rootfs: { uuid: fsUuid, label: 'rootfs', blockSize: opts.blockSize, features: '^64bit', sizeBytes: rootBytes },
      bootConfig: { partition: 3, path: '/extlinux/extlinux.conf', kind: 'extlinux', text },
      bootFiles: files.map((f) => f.path).sort(), bootSymlinks: {}, edge, specials: specialsOf(tree), busyboxReal,
    };
  });
}

/** Every variant worth converting, with a short name; for table-driven converter tests. */
export const VARIANTS: { name: string; build: (dir: string) => Promise<FixtureImage> }[] = [
  { name: 'buildroot-sunxi-spl-2128', build: (d) => buildBuildrootImage(d, { spl: true }) },
  { name: 'buildroot-extlinux-2048', build: (d) => buildBuildrootImage(d, { bootKind: 'extlinux' }) },
  { name: 'buildroot-bootscr-32768-4k', build: (d) => buildBuildrootImage(d, { p1StartSector: 32768, blockSize: 4096 }) },
  { name: 'buildroot-64-unaligned', build: (d) => buildBuildrootImage(d, { p1StartSector: 64, imageSizeUnaligned: true }) },
  { name: 'rpi-sector1', build: (d) => buildRpiImage(d) },
  {
    // caller-supplied kernel, initrd and dtb (stand-ins written here), booted from an initrd
    name: 'buildroot-inputs-initrd', build: (d) => {
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(join(d, 'Image.in'), fakeArm64Image('caller-kernel', 3 << 20));
      fs.writeFileSync(join(d, 'initrd.in'), initramfs('caller'));
      fs.writeFileSync(join(d, 'custom-board.dtb'), boardDtb('Custom Board', 'custom-board'));
      return buildBuildrootImage(d, { kernel: join(d, 'Image.in'), initrd: join(d, 'initrd.in'), dtb: join(d, 'custom-board.dtb'), ubootDev: 'virtio 0:1', rootDev: '/dev/vda2', console: 'ttyAMA0' });
    },
  },
  { name: 'armbian-rockchip-32768', build: (d) => buildArmbianImage(d) },
  { name: 'armbian-sunxi-8192', build: (d) => buildArmbianImage(d, { rootStartSector: 8192 }) },
  { name: 'efi-x86_64-esp64', build: (d) => buildEfiImage(d) },
  { name: 'efi-x86_64-esp2048-generic', build: (d) => buildEfiImage(d, { espStartSector: 2048, rootType: 'linux-generic' }) },
  { name: 'efi-x86_64-kernel-on-esp', build: (d) => buildEfiImage(d, { kernelLocation: 'esp' }) },
  { name: 'efi-arm64', build: (d) => buildEfiImage(d, { arch: 'arm64' }) },
  { name: 'rockpro64-gpt', build: (d) => buildRockpro64GptImage(d) },
];

// Kept for callers that want the raw pieces (stand-in kernels, initramfs, device trees).
export { boardDtb, fakeArm64Image, fakeBzImage, fdt, initramfs, uuidFrom };
