// Bootable test systems for QEMU, built rootlessly from Debian packages (test/helpers/debs.ts):
// no mount, no loop device, no sudo. Filesystems come from `mke2fs -d` and `mkfs.vfat` + mtools,
// partition tables from sfdisk on a regular file, boot scripts from mkimage.
//
//   buildInitramfs   busybox + the kernel modules for virtio disks, ext4 and FAT; its /init
//                    mounts root= (/dev/…, PARTUUID=, UUID=, LABEL=) and switch_roots
//   buildGuestTree   a BusyBox root filesystem tree (Buildroot-shaped inittab/rcS/fstab) with
//                    the arm64/amd64 SWUpdate client and fw_printenv/fw_setenv, and the test
//                    runner /usr/sbin/otapack-test (test/boot/guest/otapack-test)
//   buildBuildrootDisk  MBR, p1 FAT (Image, initrd, boot.scr), p2 ext4 root   (arm64, U-Boot)
//   buildArmbianDisk    MBR, blobs before p1, p1 ext4 root with /boot/boot.scr,
//                       armbianEnv.txt, symlinked Image/uInitrd                 (arm64, U-Boot)
//   buildEfiGrubDisk    GPT, ESP with BOOTX64.EFI (grub-mkstandalone) + grub.cfg + bzImage,
//                       p2 ext4 root                                            (x86-64, OVMF)
// Each disk builder returns a GuestDisk ({ path, partitions, rootPartition, … }). The images are
// byte-for-byte reproducible (fixed UUIDs and volume ids, SOURCE_DATE_EPOCH for every timestamp,
// pinned inode times), except BOOTX64.EFI: grub-mkstandalone stamps the current time into its
// memdisk.
import { execa } from 'execa';
import {
  chmodSync, closeSync, lutimesSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync,
  readlinkSync, readSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync,
} from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { elfDeps, fetchGuestDebs, guestCacheDir, runtimeClosure, type GuestArch, type GuestDebs } from './debs.js';

export const GUEST_FILES = fileURLToPath(new URL('../boot/guest/', import.meta.url));
export const MIB = 1024 * 1024;
/** Every timestamp in the built images (SOURCE_DATE_EPOCH overrides). */
export const EPOCH = Number(process.env.SOURCE_DATE_EPOCH ?? 1700000000);
const TOOL_ENV = {
  LC_ALL: 'C', SOURCE_DATE_EPOCH: String(EPOCH), E2FSPROGS_FAKE_TIME: String(EPOCH), MKE2FS_DETERMINISTIC: '1',
  MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', MTOOLS_LOWER_CASE: '0',
};

/** Kernel modules the initramfs loads (with their modules.dep dependencies). */
export const INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_mmio', 'ext4', 'vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8', 'nls_iso8859-1'];
/** The serial console each architecture's QEMU machine gives the kernel. */
export const CONSOLE: Record<GuestArch, string> = { arm64: 'ttyAMA0', amd64: 'ttyS0' };

export async function sh(cmd: string, args: string[], opts: { input?: string | Buffer; cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const r = await execa(cmd, args, {
    reject: false, input: opts.input, cwd: opts.cwd, env: { ...TOOL_ENV, ...opts.env }, extendEnv: true, timeout: 600_000,
  });
  if (r.exitCode !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.exitCode}): ${String(r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  }
  return String(r.stdout);
}

// ---------------------------------------------------------------------------------------------
// initramfs

/** Every .ko under lib/modules/<kver>, by module name (dashes and underscores are the same). */
function moduleIndex(modulesDir: string): Map<string, string> {
  const idx = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) idx.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(modulesDir);
  return idx;
}

/** The `depends=` field of a module's .modinfo section. */
function moduleDepends(ko: string): string[] {
  const b = readFileSync(ko);
  const i = b.indexOf(Buffer.from('\0depends='));
  if (i < 0) return [];
  const end = b.indexOf(0, i + 1);
  const v = b.subarray(i + 9, end).toString('latin1');
  return v ? v.split(',').map((s) => s.replace(/-/g, '_')) : [];
}

/**
 * Modules to load, dependencies first. Names missing from the index are built into this
 * kernel (modules.builtin) or absent; builtin ones are skipped, absent ones are an error.
 */
export function moduleLoadOrder(modulesDir: string, wanted: string[]): { order: string[]; files: Map<string, string> } {
  const idx = moduleIndex(modulesDir);
  const builtinFile = join(modulesDir, 'modules.builtin');
  const builtin = new Set(existsSync(builtinFile)
    ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map((l) => posix.basename(l, '.ko').replace(/-/g, '_'))
    : []);
  const order: string[] = [];
  const files = new Map<string, string>();
  const visit = (name: string, stack: string[]): void => {
    const n = name.replace(/-/g, '_');
    if (files.has(n) || builtin.has(n)) return;
    const ko = idx.get(n);
    if (!ko) throw new Error(`kernel module ${n} (needed by ${stack.join(' → ') || 'the initramfs'}) is neither a module nor built in`);
    if (stack.includes(n)) throw new Error(`module dependency loop at ${n}`);
    for (const dep of moduleDepends(ko)) visit(dep, [...stack, n]);
    files.set(n, ko);
    order.push(n);
  };
  for (const w of wanted) visit(w, []);
  return { order, files };
}

function setTimes(dir: string): void {
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    if (st.isSymbolicLink()) lutimesSync(p, EPOCH, EPOCH);
    else utimesSync(p, EPOCH, EPOCH);
  };
  walk(dir);
}

/** A newc cpio.gz of `dir` (sorted names, owner 0:0, fixed times, gzip -n): reproducible. */
async function cpioGz(dir: string, out: string): Promise<void> {
  setTimes(dir);
  const names: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      names.push(r);
      const st = lstatSync(join(dir, r));
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  const cpio = await execa('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--reproducible', '--quiet'], {
    cwd: dir, input: names.join('\n') + '\n', encoding: 'buffer', stripFinalNewline: false, env: TOOL_ENV,
  });
  const gz = await execa('gzip', ['-9', '-n', '-c'], { input: Buffer.from(cpio.stdout as Uint8Array), encoding: 'buffer', stripFinalNewline: false });
  writeFileSync(out, Buffer.from(gz.stdout as Uint8Array));
}

export interface Initramfs { path: string; modules: string[]; kver: string }

/** The initramfs: /init (test/boot/guest/initramfs-init), static busybox, the modules in load order. */
export async function buildInitramfs(debs: GuestDebs, out: string, extraModules: string[] = []): Promise<Initramfs> {
  const stage = `${out}.d`;
  rmSync(stage, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'newroot', 'tmp', 'usr/bin', 'usr/sbin', `lib/modules/${debs.kver}`]) {
    mkdirSync(join(stage, d), { recursive: true });
  }
  copyFileSync(join(debs.root, 'bin/busybox'), join(stage, 'bin/busybox'));
  chmodSync(join(stage, 'bin/busybox'), 0o755);
  copyFileSync(join(GUEST_FILES, 'initramfs-init'), join(stage, 'init'));
  chmodSync(join(stage, 'init'), 0o755);
  const { order, files } = moduleLoadOrder(debs.modules, [...INITRAMFS_MODULES, ...extraModules]);
  for (const [name, ko] of files) copyFileSync(ko, join(stage, `lib/modules/${debs.kver}/${name}.ko`));
  writeFileSync(join(stage, 'lib/modules/load.order'), order.join('\n') + '\n');
  await cpioGz(stage, out);
  rmSync(stage, { recursive: true, force: true });
  return { path: out, modules: order, kver: debs.kver };
}

// ---------------------------------------------------------------------------------------------
// root filesystem tree

export interface FstabEntry { spec: string; file: string; type: string; options?: string; dump?: number; pass?: number }

export interface GuestTreeOptions {
  /** extra /etc/fstab lines after the Buildroot defaults (or instead of them, see fstabDefaults) */
  fstab?: FstabEntry[];
  /** the first /etc/fstab lines; default: Buildroot's (/dev/root noauto, proc, devpts, tmpfs, sysfs) */
  fstabDefaults?: FstabEntry[];
  /** Armbian-like merged /usr: /bin, /sbin and /lib are symlinks into /usr */
  mergedUsr?: boolean;
  hostname?: string;
  /** /etc/otapack-test/commands: what the test runner does at every boot of this tree */
  commands?: string[];
  /** /etc/fw_env.config content (e.g. "/boot/uboot.env 0x0 0x4000") */
  fwEnvConfig?: string;
  /** include swupdate, fw_printenv and fw_setenv with their libraries (default true) */
  client?: boolean;
  /** include the Mender client (/usr/bin/mender, Debian's 3.4) with its libraries */
  mender?: boolean;
  /** more files: path → content (string/Buffer, mode 0644) or { data, mode } or { symlink } */
  files?: Record<string, string | Buffer | { data: string | Buffer; mode: number } | { symlink: string }>;
  osRelease?: string;
}

const BUILDROOT_FSTAB: FstabEntry[] = [
  { spec: '/dev/root', file: '/', type: 'ext2', options: 'rw,noauto', pass: 1 },
  { spec: 'proc', file: '/proc', type: 'proc', options: 'defaults' },
  { spec: 'devpts', file: '/dev/pts', type: 'devpts', options: 'defaults,gid=5,mode=620,ptmxmode=0666' },
  { spec: 'tmpfs', file: '/dev/shm', type: 'tmpfs', options: 'mode=0777' },
  { spec: 'tmpfs', file: '/tmp', type: 'tmpfs', options: 'mode=1777' },
  { spec: 'tmpfs', file: '/run', type: 'tmpfs', options: 'mode=0755,nosuid,nodev' },
  { spec: 'sysfs', file: '/sys', type: 'sysfs', options: 'defaults' },
];

export function fstabText(entries: FstabEntry[]): string {
  return '# <file system>\t<mount pt>\t<type>\t<options>\t<dump>\t<pass>\n'
    + entries.map((e) => `${e.spec}\t${e.file}\t${e.type}\t${e.options ?? 'defaults'}\t${e.dump ?? 0}\t${e.pass ?? 0}`).join('\n') + '\n';
}

/** "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1)" as embedded in a busybox binary. */
function busyboxVersion(file: string): string | undefined {
  return /BusyBox v[0-9.]+ \(Debian [^)]+\)/.exec(readFileSync(file).toString('latin1'))?.[0];
}

const appletCache = new Map<string, string[]>();
/**
 * BusyBox applet paths (bin/sh, sbin/init, usr/bin/…) of the guest's busybox (`guestBusybox`,
 * which may not run on this host). Listed by an amd64 busybox-static of the same Debian version
 * (same source and configuration): the host's /bin/busybox when it is that, otherwise the one in
 * the amd64 guest package set.
 */
async function busyboxApplets(guestBusybox: string): Promise<string[]> {
  const want = busyboxVersion(guestBusybox);
  if (!want) throw new Error(`${guestBusybox}: no BusyBox version string`);
  const hit = appletCache.get(want);
  if (hit) return hit;
  let bb = '/bin/busybox';
  const hostFits = process.arch === 'x64' && existsSync(bb) && busyboxVersion(bb) === want && !elfDeps(bb)?.interp;
  if (!hostFits) bb = join((await fetchGuestDebs('amd64')).root, 'bin/busybox');
  if (busyboxVersion(bb) !== want) throw new Error(`no amd64 busybox-static matching ${want} to list the applets with`);
  const list = (await sh(bb, ['--list-full'])).split('\n').map((l) => l.trim()).filter(Boolean);
  appletCache.set(want, list);
  return list;
}

function writeFile(root: string, rel: string, data: string | Buffer, mode = 0o644): void {
  const p = join(root, rel);
  mkdirSync(dirname(p), { recursive: true });
  rmSync(p, { force: true });
  writeFileSync(p, data);
  chmodSync(p, mode);
}

/**
 * A BusyBox root filesystem tree in `dir`. /sbin/init is busybox; /etc/inittab mounts, runs
 * /etc/init.d/S??* and then the test runner (see test/boot/guest/otapack-test).
 */
export async function buildGuestTree(debs: GuestDebs, dir: string, o: GuestTreeOptions = {}): Promise<string> {
  rmSync(dir, { recursive: true, force: true });
  const usr = o.mergedUsr ? 'usr/' : '';
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'root', 'boot', 'data', 'mnt', 'etc/init.d', 'usr/bin', 'usr/sbin', 'usr/lib', 'var/lib', 'var/log']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  if (o.mergedUsr) {
    for (const d of ['bin', 'sbin', 'lib']) symlinkSync(`usr/${d}`, join(dir, d));
  } else {
    for (const d of ['bin', 'sbin', 'lib']) mkdirSync(join(dir, d), { recursive: true });
  }
  symlinkSync('../run', join(dir, 'var/run'));
  symlinkSync('../run/lock', join(dir, 'var/lock'));
  chmodSync(join(dir, 'tmp'), 0o1777);

  // busybox and its applet links (relative, like Buildroot's)
  writeFile(dir, `${usr}bin/busybox`, readFileSync(join(debs.root, 'bin/busybox')), 0o755);
  for (const a of await busyboxApplets(join(debs.root, 'bin/busybox'))) {
    const rel = a.replace(/^\//, '');
    const target = o.mergedUsr ? `usr/${rel.replace(/^usr\//, '')}` : rel;
    const p = join(dir, target);
    if (existsSync(p)) continue;
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync(posix.relative(posix.dirname(`/${target}`), `/${usr}bin/busybox`), p);
  }
  if (!existsSync(join(dir, 'sbin/init'))) symlinkSync(posix.relative('/sbin', `/${usr}bin/busybox`), join(dir, 'sbin/init'));

  // the SWUpdate client and libubootenv tools with exactly the libraries they load
  if (o.client !== false) {
    // swupdate-client: otapack-update feeds the client running as a daemon (delta installs)
    const programs = ['usr/bin/swupdate', 'usr/bin/swupdate-client', 'usr/bin/fw_printenv', 'usr/bin/fw_setenv', ...(o.mender ? ['usr/bin/mender'] : [])];
    for (const rel of runtimeClosure(debs.root, programs, debs.arch)) {
      // with merged /usr, /lib/… lands in /usr/lib/… (the /lib symlink makes both paths work)
      const target = o.mergedUsr ? rel.replace(/^(bin|sbin|lib)\//, 'usr/$1/') : rel;
      const src = join(debs.root, rel);
      const dst = join(dir, target);
      if (existsSync(dst) || isLink(dst)) continue;
      mkdirSync(dirname(dst), { recursive: true });
      const st = lstatSync(src);
      if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
      else { copyFileSync(src, dst); chmodSync(dst, st.mode & 0o7777); }
    }
    mkdirSync(join(dir, 'etc/swupdate'), { recursive: true });
    mkdirSync(join(dir, 'var/lib/swupdate'), { recursive: true });
  }

  // etc
  writeFile(dir, 'etc/inittab', readFileSync(join(GUEST_FILES, 'inittab')));
  writeFile(dir, 'etc/init.d/rcS', readFileSync(join(GUEST_FILES, 'rcS')), 0o755);
  writeFile(dir, 'etc/init.d/rcK', readFileSync(join(GUEST_FILES, 'rcK')), 0o755);
  writeFile(dir, 'usr/sbin/otapack-test', readFileSync(join(GUEST_FILES, 'otapack-test')), 0o755);
  writeFile(dir, 'etc/fstab', fstabText([...(o.fstabDefaults ?? BUILDROOT_FSTAB), ...(o.fstab ?? [])]));
  writeFile(dir, 'etc/hostname', `${o.hostname ?? 'otapack-guest'}\n`);
  writeFile(dir, 'etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  writeFile(dir, 'etc/group', 'root:x:0:\ntty:x:5:\n');
  writeFile(dir, 'etc/shadow', 'root::19000:0:99999:7:::\n', 0o600);
  writeFile(dir, 'etc/os-release', o.osRelease ?? 'NAME="otapack test guest"\nID=otapack-guest\nVERSION_ID=1.0\n');
  writeFile(dir, 'etc/profile', 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n');
  if (o.commands) writeFile(dir, 'etc/otapack-test/commands', o.commands.join('\n') + '\n');
  if (o.fwEnvConfig) writeFile(dir, 'etc/fw_env.config', o.fwEnvConfig.endsWith('\n') ? o.fwEnvConfig : `${o.fwEnvConfig}\n`);
  for (const [rel, v] of Object.entries(o.files ?? {})) {
    const r = rel.replace(/^\//, '');
    if (typeof v === 'object' && !Buffer.isBuffer(v) && 'symlink' in v) {
      mkdirSync(dirname(join(dir, r)), { recursive: true });
      rmSync(join(dir, r), { force: true });
      symlinkSync(v.symlink, join(dir, r));
    } else if (typeof v === 'object' && !Buffer.isBuffer(v)) writeFile(dir, r, v.data, v.mode);
    else writeFile(dir, r, v);
  }
  setTimes(dir);
  return dir;
}

function isLink(p: string): boolean {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}

/** Bytes used by a tree (files rounded up to 4 KiB, plus inode overhead): for sizing ext4. */
export function treeBytes(dir: string): number {
  let total = 0;
  const walk = (p: string): void => {
    const st = lstatSync(p);
    total += 4096 + (st.isFile() ? Math.ceil(st.size / 4096) * 4096 : 0);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
  return total;
}

// ---------------------------------------------------------------------------------------------
// filesystems and disks

export interface Ext4Options { uuid: string; label?: string; blockSize?: 1024 | 4096; features?: string }

/** An ext4 image of `tree` (mke2fs -d), `sizeMiB` large, deterministic. */
export async function makeExt4(path: string, tree: string, sizeMiB: number, o: Ext4Options): Promise<string> {
  rmSync(path, { force: true });
  const args = ['-q', '-F', '-t', 'ext4', '-d', tree, '-U', o.uuid, '-E', `root_owner=0:0,hash_seed=${o.uuid}`];
  if (o.label) args.push('-L', o.label);
  if (o.blockSize) args.push('-b', String(o.blockSize));
  if (o.features) args.push('-O', o.features);
  await sh('mke2fs', [...args, path, `${sizeMiB}M`]);
  // mke2fs -d copies each source file's ctime (which nothing rootless can set on the host), atime
  // (which reading the tree changes) and owner (the user building it): pin them all, so the image
  // is byte-for-byte reproducible and owned by root whoever builds it
  const pin = (r: string): string[] => [
    `set_inode_field "${r}" ctime ${EPOCH}`, `set_inode_field "${r}" atime ${EPOCH}`,
    `set_inode_field "${r}" uid 0`, `set_inode_field "${r}" gid 0`,
  ];
  const cmds: string[] = pin('/');
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(tree, rel)).sort()) {
      const r = `${rel}/${e}`;
      cmds.push(...pin(r));
      if (lstatSync(join(tree, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  writeFileSync(`${path}.ctime`, cmds.join('\n') + '\n');
  await sh('debugfs', ['-w', '-f', `${path}.ctime`, path]);
  rmSync(`${path}.ctime`);
  return path;
}

/** A FAT image holding the files of `tree` (mkfs.vfat --invariant, mcopy -s -m). */
export async function makeFat(path: string, tree: string | undefined, sizeMiB: number, o: { volumeId: string; label: string }): Promise<string> {
  rmSync(path, { force: true });
  await sh('mkfs.vfat', ['--invariant', '-C', '-i', o.volumeId, '-n', o.label, path, String(sizeMiB * 1024)]);
  if (tree) {
    setTimes(tree);
    const entries = readdirSync(tree).sort().map((e) => join(tree, e));
    if (entries.length) await sh('mcopy', ['-s', '-m', '-p', '-i', path, ...entries, '::/']);
  }
  return path;
}

/** Copies a filesystem image into the disk at `offset`, leaving zero blocks as holes. */
export function copyInto(disk: string, image: string, offset: number): void {
  const src = openSync(image, 'r');
  const dst = openSync(disk, 'r+');
  try {
    const buf = Buffer.alloc(4 * MIB);
    let pos = 0;
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, pos);
      if (n <= 0) break;
      for (let o = 0; o < n; o += 65536) {
        const chunk = buf.subarray(o, Math.min(n, o + 65536));
        if (chunk.some((b) => b !== 0)) writeSync(dst, chunk, 0, chunk.length, offset + pos + o);
      }
      pos += n;
    }
  } finally {
    closeSync(src);
    closeSync(dst);
  }
}

export interface GuestPartition {
  /** 1-based partition number */
  index: number;
  /** byte offset and size */
  start: number;
  size: number;
  /** sfdisk type as written: MBR hex ("c", "83") or a GPT type GUID/alias */
  type: string;
  fs: 'fat' | 'ext4' | 'none';
  /** PARTUUID as Linux prints it (MBR: <disk id>-<NN>; GPT: the entry GUID, lower case) */
  partuuid: string;
  /** filesystem UUID (ext4) or volume id (FAT, "ABCD-1234") */
  fsUuid?: string;
  label?: string;
  /** where the guest mounts it */
  mount?: string;
  /** Linux device name in the QEMU guest (single virtio disk) */
  device: string;
}

export interface GuestDisk {
  path: string;
  arch: GuestArch;
  style: 'buildroot' | 'armbian' | 'efi-grub';
  /** how QEMU boots it */
  firmware: 'u-boot' | 'ovmf';
  table: 'dos' | 'gpt';
  /** MBR disk identifier (0x…) or GPT disk GUID */
  diskId: string;
  partitions: GuestPartition[];
  rootPartition: number;
  /** the partition holding the kernel (and the boot script or grub.cfg) */
  bootPartition: number;
  dataPartition?: number;
  /** the kernel command line the image's boot configuration passes */
  cmdline: string;
  kver: string;
  sizeBytes: number;
  /** bytes before the first partition that are not the partition table (Armbian's boot loader blobs) */
  rawBlobs: { offset: number; length: number }[];
  /**
   * the root tree the root filesystem was made from (for building update payloads). Read-only:
   * after a cache hit it is the cached copy, shared by every later build; copyTree() it to change it.
   */
  rootTree: string;
  /** true when the image came from the disk cache (see cachedDisk) */
  cached?: boolean;
}

interface PartPlan { sizeMiB: number; startSector?: number; type: string; image?: string; fs: GuestPartition['fs']; fsUuid?: string; label?: string; mount?: string; bootable?: boolean; uuid?: string; name?: string }

/** Writes the partition table (sfdisk) and the partition images into a new sparse disk file. */
async function assembleDisk(path: string, table: 'dos' | 'gpt', diskId: string, parts: PartPlan[], firstSector = 2048): Promise<GuestPartition[]> {
  let sector = firstSector;
  const placed = parts.map((p) => {
    const start = p.startSector ?? sector;
    sector = start + (p.sizeMiB * MIB) / 512;
    return { ...p, start };
  });
  const total = sector * 512 + MIB; // room for the backup GPT
  rmSync(path, { force: true });
  writeFileSync(path, '');
  await sh('truncate', ['-s', String(total), path]);
  const lines = [table === 'dos' ? `label: dos\nlabel-id: ${diskId}` : `label: gpt\nlabel-id: ${diskId}\nfirst-lba: 34`, 'unit: sectors'];
  placed.forEach((p) => {
    let l = `start=${p.start}, size=${(p.sizeMiB * MIB) / 512}, type=${p.type}`;
    if (table === 'gpt' && p.uuid) l += `, uuid=${p.uuid}`;
    if (table === 'gpt' && p.name) l += `, name="${p.name}"`;
    if (table === 'dos' && p.bootable) l += ', bootable';
    lines.push(l);
  });
  await sh('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', path], { input: lines.join('\n') + '\n' });
  const idHex = diskId.replace(/^0x/, '').toLowerCase().padStart(8, '0');
  return placed.map((p, i) => {
    if (p.image) copyInto(path, p.image, p.start * 512);
    return {
      index: i + 1, start: p.start * 512, size: p.sizeMiB * MIB, type: p.type, fs: p.fs,
      partuuid: table === 'dos' ? `${idHex}-${String(i + 1).padStart(2, '0')}` : (p.uuid ?? '').toLowerCase(),
      fsUuid: p.fsUuid, label: p.label, mount: p.mount, device: `/dev/vda${i + 1}`,
    };
  });
}

export interface DataPartitionOptions {
  sizeMiB?: number;
  /** files placed on /data (paths relative to the data partition root) */
  files?: Record<string, string | Buffer>;
}

export interface DiskOptions {
  /** work directory; the disk is <dir>/<name>.img */
  dir: string;
  name?: string;
  arch?: GuestArch;
  /** extra words for the kernel command line (e.g. "otapack.test=smoke") */
  cmdlineExtra?: string;
  /** commands for /etc/otapack-test/commands in the root filesystem */
  commands?: string[];
  /** an ext4 /data partition after the root partition (mounted at /data by fstab) */
  data?: DataPartitionOptions;
  /** mount the boot partition at /boot (Buildroot images normally do not) */
  mountBoot?: boolean;
  /** a U-Boot environment file on the boot partition: name=value lines; adds /etc/fw_env.config */
  ubootEnv?: Record<string, string>;
  /** Buildroot-style disk: name the root as /dev/vda2 (default) or root=PARTUUID=<disk id>-02 */
  rootBy?: 'device' | 'partuuid';
  /** root filesystem size (default: content + 24 MiB, at least 64 MiB) */
  rootSizeMiB?: number;
  tree?: Omit<GuestTreeOptions, 'commands'>;
  /** use the disk cache (default true; OTAPACK_GUEST_DISK_CACHE=0 turns it off everywhere) */
  cache?: boolean;
  /**
   * EFI disk: BOOTX64.EFI built the way Buildroot builds it (grub-mkimage with exactly these
   * built-in modules, prefix /EFI/BOOT, no module folder, no embedded config) instead of the
   * default grub-mkstandalone image (every module in a memdisk)
   */
  grubModules?: string[];
}

const DATA_UUID = 'da7a0000-0000-4000-8000-00000000da7a';

function rootSize(tree: string, o: DiskOptions): number {
  return o.rootSizeMiB ?? Math.max(64, Math.ceil(treeBytes(tree) / MIB) + 24);
}

async function dataPartition(dir: string, name: string, o: DataPartitionOptions): Promise<PartPlan> {
  const tree = join(dir, `${name}.data.d`);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  for (const [rel, data] of Object.entries(o.files ?? {})) writeFile(tree, rel.replace(/^\//, ''), data);
  setTimes(tree);
  const sizeMiB = o.sizeMiB ?? Math.max(32, Math.ceil(treeBytes(tree) / MIB) + 16);
  const image = await makeExt4(join(dir, `${name}.data.ext4`), tree, sizeMiB, { uuid: DATA_UUID, label: 'data' });
  return { sizeMiB, type: '83', image, fs: 'ext4', fsUuid: DATA_UUID, label: 'data', mount: '/data' };
}

/** A 16 KiB U-Boot environment image (mkenvimage), as libubootenv and the boot scripts expect. */
export async function makeUbootEnv(path: string, vars: Record<string, string>, size = 0x4000): Promise<string> {
  const txt = `${path}.txt`;
  writeFileSync(txt, Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  await sh('mkenvimage', ['-s', `0x${size.toString(16)}`, '-o', path, txt]);
  rmSync(txt);
  return path;
}

/** mkimage -T script (legacy image; mkimage takes its timestamp from SOURCE_DATE_EPOCH). */
export async function makeBootScr(out: string, script: string, arch: GuestArch = 'arm64'): Promise<string> {
  writeFileSync(`${out}.cmd`, script);
  await sh('mkimage', ['-A', arch === 'arm64' ? 'arm64' : 'x86_64', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'boot script', '-d', `${out}.cmd`, out]);
  return out;
}

function template(name: string, vars: Record<string, string>): string {
  let t = readFileSync(join(GUEST_FILES, name), 'utf8');
  for (const [k, v] of Object.entries(vars)) t = t.split(`@@${k}@@`).join(v);
  const left = t.match(/@@[A-Z_]+@@/);
  if (left) throw new Error(`${name}: ${left[0]} not substituted`);
  return t;
}

function fwEnvFor(o: DiskOptions): string | undefined {
  return o.ubootEnv ? '/boot/uboot.env 0x0000 0x4000' : o.tree?.fwEnvConfig;
}

/**
 * Buildroot-style arm64 disk (like Buildroot's qemu/sunxi genimage output): MBR, p1 FAT "boot"
 * with Image, initrd (raw cpio.gz) and boot.scr; p2 ext4 root (1 KiB blocks, ^64bit like
 * Buildroot's); optional p3 ext4 /data. boot.scr loads from ${devtype} ${devnum}:1 and boots
 * root=/dev/vda2 with the devicetree QEMU provides (${fdt_addr}).
 */
export function buildBuildrootDisk(o: DiskOptions): Promise<GuestDisk> {
  return cachedDisk('buildroot', o, o.arch ?? 'arm64', () => buildBuildrootDiskNow(o));
}

async function buildBuildrootDiskNow(o: DiskOptions): Promise<GuestDisk> {
  const arch = o.arch ?? 'arm64';
  if (arch !== 'arm64') throw new Error('the Buildroot-style disk boots with the qemu_arm64 U-Boot: arm64 only');
  const name = o.name ?? 'buildroot';
  mkdirSync(o.dir, { recursive: true });
  const debs = await fetchGuestDebs(arch);
  const initrd = await buildInitramfs(debs, join(o.dir, `${name}.initrd`));
  const fstab: FstabEntry[] = [];
  if (o.mountBoot || o.ubootEnv) fstab.push({ spec: '/dev/vda1', file: '/boot', type: 'vfat', options: 'defaults' });
  if (o.data) fstab.push({ spec: '/dev/vda3', file: '/data', type: 'ext4', options: 'defaults', pass: 2 });
  const tree = await buildGuestTree(debs, join(o.dir, `${name}.root.d`), {
    ...o.tree, commands: o.commands, fstab: [...fstab, ...(o.tree?.fstab ?? [])], fwEnvConfig: fwEnvFor(o),
  });
  const diskId = '0x0ca7b007';
  const rootArg = o.rootBy === 'partuuid' ? `PARTUUID=${diskId.slice(2)}-02` : '/dev/vda2';
  const cmdline = `console=${CONSOLE[arch]} root=${rootArg} rootwait ro panic=5${o.cmdlineExtra ? ` ${o.cmdlineExtra}` : ''}`;
  const boot = join(o.dir, `${name}.boot.d`);
  rmSync(boot, { recursive: true, force: true });
  mkdirSync(boot, { recursive: true });
  copyFileSync(debs.kernel, join(boot, 'Image'));
  copyFileSync(initrd.path, join(boot, 'initrd'));
  await makeBootScr(join(boot, 'boot.scr'), template('buildroot-boot.cmd', { BOOTARGS: cmdline }));
  rmSync(join(boot, 'boot.scr.cmd'));
  if (o.ubootEnv) await makeUbootEnv(join(boot, 'uboot.env'), o.ubootEnv);
  const bootMiB = Math.max(64, Math.ceil(treeBytes(boot) / MIB) + 16);
  const fat = await makeFat(join(o.dir, `${name}.boot.vfat`), boot, bootMiB, { volumeId: 'b007b007', label: 'BOOT' });
  const rootUuid = '0ca7a000-0000-4000-8000-0000000000a2';
  const root = await makeExt4(join(o.dir, `${name}.root.ext4`), tree, rootSize(tree, o), { uuid: rootUuid, label: 'rootfs', blockSize: 1024, features: '^64bit' });
  const parts: PartPlan[] = [
    { sizeMiB: bootMiB, type: 'c', image: fat, fs: 'fat', fsUuid: 'B007-B007', label: 'BOOT', bootable: true, mount: o.mountBoot || o.ubootEnv ? '/boot' : undefined },
    { sizeMiB: rootSize(tree, o), type: '83', image: root, fs: 'ext4', fsUuid: rootUuid, label: 'rootfs', mount: '/' },
  ];
  if (o.data) parts.push(await dataPartition(o.dir, name, o.data));
  const path = join(o.dir, `${name}.img`);
  const partitions = await assembleDisk(path, 'dos', diskId, parts);
  for (const f of [fat, root, join(o.dir, `${name}.data.ext4`)]) rmSync(f, { force: true });
  return {
    path, arch, style: 'buildroot', firmware: 'u-boot', table: 'dos', diskId, partitions, rootPartition: 2, bootPartition: 1,
    dataPartition: o.data ? 3 : undefined, cmdline, kver: debs.kver, sizeBytes: statSync(path).size, rawBlobs: [], rootTree: tree,
  };
}

/** Deterministic pseudo-random bytes (stand-ins for boot loader blobs). */
export function blob(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) { x = (x * 1103515245 + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

/**
 * Armbian-style arm64 disk (rockchip64 layout): MBR, boot loader blobs in the gap (idbloader at
 * sector 64, u-boot.itb at 16384), p1 ext4 root at sector 32768 (4 KiB blocks) holding /boot
 * with boot.scr, armbianEnv.txt (rootdev=UUID=…), and the symlinks Image → vmlinuz-<kver>,
 * uInitrd → uInitrd-<kver>. Merged /usr. fstab mounts / by UUID like Armbian's.
 */
export function buildArmbianDisk(o: DiskOptions): Promise<GuestDisk> {
  return cachedDisk('armbian', o, o.arch ?? 'arm64', () => buildArmbianDiskNow(o));
}

async function buildArmbianDiskNow(o: DiskOptions): Promise<GuestDisk> {
  const arch = o.arch ?? 'arm64';
  if (arch !== 'arm64') throw new Error('the Armbian-style disk boots with the qemu_arm64 U-Boot: arm64 only');
  const name = o.name ?? 'armbian';
  mkdirSync(o.dir, { recursive: true });
  const debs = await fetchGuestDebs(arch);
  const rootUuid = '3f2a1c55-0000-4000-8000-00000000abcd';
  const initrd = await buildInitramfs(debs, join(o.dir, `${name}.initrd`));
  const uInitrd = join(o.dir, `${name}.uInitrd`);
  await sh('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'ramdisk', '-C', 'gzip', '-n', 'uInitrd', '-d', initrd.path, uInitrd]);
  const k = debs.kver;
  const armbianEnv = `verbosity=1\nconsole=serial\noverlay_prefix=rockchip\nrootdev=UUID=${rootUuid}\nrootfstype=ext4\n${o.cmdlineExtra ? `extraargs=${o.cmdlineExtra}\n` : ''}`;
  const bootScr = join(o.dir, `${name}.boot.scr`);
  await makeBootScr(bootScr, template('armbian-boot.cmd', { CONSOLE: CONSOLE[arch] }));
  const fstabDefaults: FstabEntry[] = [
    { spec: `UUID=${rootUuid}`, file: '/', type: 'ext4', options: 'defaults,noatime,commit=600,errors=remount-ro', pass: 1 },
    { spec: 'tmpfs', file: '/tmp', type: 'tmpfs', options: 'defaults,nosuid' },
    // no /proc, /sys or /run: systemd mounts them on Armbian, the guest's inittab does here
  ];
  const fstab: FstabEntry[] = [];
  if (o.data) fstab.push({ spec: '/dev/vda2', file: '/data', type: 'ext4', options: 'defaults', pass: 2 });
  const tree = await buildGuestTree(debs, join(o.dir, `${name}.root.d`), {
    ...o.tree, mergedUsr: true, hostname: 'rockpro64', commands: o.commands, fstabDefaults, fstab: [...fstab, ...(o.tree?.fstab ?? [])],
    fwEnvConfig: fwEnvFor(o),
    osRelease: 'PRETTY_NAME="Armbian 24.5 bookworm (otapack test stand-in)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
    files: {
      ...(o.tree?.files ?? {}),
      [`boot/vmlinuz-${k}`]: readFileSync(debs.kernel),
      [`boot/uInitrd-${k}`]: readFileSync(uInitrd),
      [`boot/config-${k}`]: readFileSync(join(dirname(debs.kernel), `config-${k}`)),
      'boot/Image': { symlink: `vmlinuz-${k}` },
      'boot/uInitrd': { symlink: `uInitrd-${k}` },
      'boot/dtb': { symlink: `dtb-${k}` },
      [`boot/dtb-${k}/rockchip/.keep`]: '',
      'boot/boot.cmd': readFileSync(`${bootScr}.cmd`),
      'boot/boot.scr': readFileSync(bootScr),
      'boot/armbianEnv.txt': armbianEnv,
      'etc/armbian-release': 'BOARD=rockpro64\nBOARD_NAME="RockPro64"\nLINUXFAMILY=rockchip64\nBRANCH=current\n',
    },
  });
  if (o.ubootEnv) await makeUbootEnv(join(tree, 'boot/uboot.env'), o.ubootEnv);
  const rootMiB = rootSize(tree, o);
  const root = await makeExt4(join(o.dir, `${name}.root.ext4`), tree, rootMiB, { uuid: rootUuid, label: 'armbi_root', blockSize: 4096 });
  const parts: PartPlan[] = [{ sizeMiB: rootMiB, startSector: 32768, type: '83', image: root, fs: 'ext4', fsUuid: rootUuid, label: 'armbi_root', mount: '/' }];
  if (o.data) parts.push(await dataPartition(o.dir, name, o.data));
  const path = join(o.dir, `${name}.img`);
  const diskId = '0x4a2b1c0d';
  const partitions = await assembleDisk(path, 'dos', diskId, parts);
  const rawBlobs = [{ offset: 64 * 512, length: 300 * 1024 }, { offset: 16384 * 512, length: 900 * 1024 }];
  const fd = openSync(path, 'r+');
  try {
    rawBlobs.forEach((b, i) => writeSync(fd, blob(b.length, 0xa5 + i), 0, b.length, b.offset));
  } finally { closeSync(fd); }
  rmSync(root, { force: true });
  rmSync(join(o.dir, `${name}.data.ext4`), { force: true });
  const cmdline = `root=UUID=${rootUuid} rootwait rootfstype=ext4 console=${CONSOLE[arch]} panic=5 consoleblank=0 loglevel=1 ubootpart= ${o.cmdlineExtra ?? ''}`.trim();
  return {
    path, arch, style: 'armbian', firmware: 'u-boot', table: 'dos', diskId, partitions, rootPartition: 1, bootPartition: 1,
    dataPartition: o.data ? 2 : undefined, cmdline, kver: k, sizeBytes: statSync(path).size, rawBlobs, rootTree: tree,
  };
}

export const GRUB_EFI_DIR = '/usr/lib/grub/x86_64-efi';

/** BOOTX64.EFI made with grub-mkstandalone; its embedded config chains to /EFI/BOOT/grub.cfg on the ESP. */
export async function makeGrubEfi(out: string): Promise<string> {
  const embedded = `${out}.embedded.cfg`;
  writeFileSync(embedded, readFileSync(join(GUEST_FILES, 'grub-embedded.cfg')));
  const modules = 'part_gpt part_msdos fat ext2 normal configfile linux echo test search search_fs_file search_fs_uuid loadenv regexp sleep reboot halt all_video gzio';
  await sh('grub-mkstandalone', [
    '-O', 'x86_64-efi', '-d', GRUB_EFI_DIR, '-o', out, `--modules=${modules}`, `--install-modules=${modules}`,
    '--locales=', '--fonts=', '--themes=', `boot/grub/grub.cfg=${embedded}`,
  ]);
  rmSync(embedded);
  writeFileSync(out, pinTarTimes(readFileSync(out), EPOCH));
  return out;
}

/**
 * grub-mkstandalone puts its files in a tar memdisk stamped with the current time (GRUB 2.06
 * has no SOURCE_DATE_EPOCH support). Rewrites the mtime of every ustar header found in `buf`
 * (checksum verified before, recomputed after), which makes BOOTX64.EFI reproducible. Nothing
 * checks the memdisk's bytes, so GRUB reads it as before.
 */
export function pinTarTimes(buf: Buffer, epoch: number): Buffer {
  const sum = (h: Buffer): number => {
    let n = 0;
    for (let i = 0; i < 512; i++) n += i >= 148 && i < 156 ? 32 : h[i]!;
    return n;
  };
  for (let at = buf.indexOf('ustar'); at >= 0; at = buf.indexOf('ustar', at + 5)) {
    const h = buf.subarray(at - 257, at - 257 + 512);
    if (at < 257 || h.length < 512) continue;
    const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, ''), 8);
    if (stored !== sum(h)) continue;
    h.write(`${epoch.toString(8).padStart(11, '0')}\0`, 136, 12, 'latin1');
    h.write(`${sum(h).toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  }
  return buf;
}

/**
 * x86-64 EFI disk like Buildroot's pc_x86_64_efi: GPT, p1 ESP (FAT, from sector 64) with
 * EFI/BOOT/BOOTX64.EFI, EFI/BOOT/grub.cfg, bzImage and initrd; p2 ext4 root addressed as
 * root=PARTUUID=…; optional p3 /data. Boots under OVMF.
 */
export function buildEfiGrubDisk(o: DiskOptions): Promise<GuestDisk> {
  return cachedDisk('efi-grub', o, o.arch ?? 'amd64', () => buildEfiGrubDiskNow(o));
}

async function buildEfiGrubDiskNow(o: DiskOptions): Promise<GuestDisk> {
  const arch = o.arch ?? 'amd64';
  if (arch !== 'amd64') throw new Error('the EFI/GRUB disk is x86-64 (amd64) only');
  const name = o.name ?? 'efi-grub';
  mkdirSync(o.dir, { recursive: true });
  const debs = await fetchGuestDebs(arch);
  const initrd = await buildInitramfs(debs, join(o.dir, `${name}.initrd`));
  const rootPartUuid = 'b921b045-1df0-41c3-af44-4c6f280d3fae';
  const fstab: FstabEntry[] = [];
  if (o.mountBoot || o.ubootEnv) fstab.push({ spec: '/dev/vda1', file: '/boot', type: 'vfat', options: 'defaults' });
  if (o.data) fstab.push({ spec: '/dev/vda3', file: '/data', type: 'ext4', options: 'defaults', pass: 2 });
  const tree = await buildGuestTree(debs, join(o.dir, `${name}.root.d`), {
    ...o.tree, commands: o.commands, fstab: [...fstab, ...(o.tree?.fstab ?? [])], fwEnvConfig: fwEnvFor(o),
  });
  const cmdline = `root=PARTUUID=${rootPartUuid} rootwait ro console=${CONSOLE[arch]} panic=5${o.cmdlineExtra ? ` ${o.cmdlineExtra}` : ''}`;
  const esp = join(o.dir, `${name}.esp.d`);
  rmSync(esp, { recursive: true, force: true });
  mkdirSync(join(esp, 'EFI/BOOT'), { recursive: true });
  if (o.grubModules) await sh('grub-mkimage', ['-O', 'x86_64-efi', '-d', GRUB_EFI_DIR, '-p', '/EFI/BOOT', '-o', join(esp, 'EFI/BOOT/BOOTX64.EFI'), ...o.grubModules]);
  else await makeGrubEfi(join(esp, 'EFI/BOOT/BOOTX64.EFI'));
  writeFileSync(join(esp, 'EFI/BOOT/grub.cfg'), template('grub.cfg', { CMDLINE: cmdline }));
  copyFileSync(debs.kernel, join(esp, 'bzImage'));
  copyFileSync(initrd.path, join(esp, 'initrd'));
  const espMiB = Math.max(48, Math.ceil(treeBytes(esp) / MIB) + 16);
  const fat = await makeFat(join(o.dir, `${name}.esp.vfat`), esp, espMiB, { volumeId: 'e5be5be5', label: 'EFI' });
  const rootUuid = '0ca7a000-0000-4000-8000-0000000086a2';
  const rootMiB = rootSize(tree, o);
  const root = await makeExt4(join(o.dir, `${name}.root.ext4`), tree, rootMiB, { uuid: rootUuid, label: 'rootfs', blockSize: 1024 });
  const parts: PartPlan[] = [
    { sizeMiB: espMiB, startSector: 64, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', image: fat, fs: 'fat', fsUuid: 'E5BE-5BE5', label: 'EFI', uuid: 'b0a70000-0000-4000-8000-0000000e5be1', name: 'efi', mount: o.mountBoot || o.ubootEnv ? '/boot' : undefined },
    // Buildroot's pc config gives the root partition the x86-64 root type
    { sizeMiB: rootMiB, type: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709', image: root, fs: 'ext4', fsUuid: rootUuid, label: 'rootfs', uuid: rootPartUuid, name: 'rootfs', mount: '/' },
  ];
  if (o.data) parts.push({ ...(await dataPartition(o.dir, name, o.data)), type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', uuid: 'da7a0000-0000-4000-8000-00000000da7b', name: 'data' });
  const path = join(o.dir, `${name}.img`);
  const diskId = '0B0A0000-0000-4000-8000-0000000086EF';
  const partitions = await assembleDisk(path, 'gpt', diskId, parts, 64);
  for (const f of [fat, root, join(o.dir, `${name}.data.ext4`)]) rmSync(f, { force: true });
  return {
    path, arch, style: 'efi-grub', firmware: 'ovmf', table: 'gpt', diskId, partitions, rootPartition: 2, bootPartition: 1,
    dataPartition: o.data ? 3 : undefined, cmdline, kver: debs.kver, sizeBytes: statSync(path).size, rawBlobs: [], rootTree: tree,
  };
}

// ---------------------------------------------------------------------------------------------
// disk cache: a built disk is stored under <guest cache>/disks/<kind>-<key>/ (disk.img, sparse;
// disk.json; root.d, the root tree) and copied out on the next build with the same inputs. The
// key covers everything the bytes depend on: the builder kind and options (Buffers by hash,
// `dir`/`name`/`cache` excluded), the pinned guest package set, every file in test/boot/guest/,
// the builder's own source, the host tools' package versions and SOURCE_DATE_EPOCH.

const SELF = fileURLToPath(import.meta.url);
/** How many cached disks are kept (least recently used ones are removed). */
export const DISK_CACHE_ENTRIES = Number(process.env.OTAPACK_GUEST_DISK_CACHE_ENTRIES ?? 12);

let hostToolsMemo: Promise<string> | undefined;
function hostToolVersions(): Promise<string> {
  hostToolsMemo ??= execa('dpkg-query', ['-W', '-f', '${Package} ${Version}\n', 'e2fsprogs', 'dosfstools', 'mtools',
    'u-boot-tools', 'grub-efi-amd64-bin', 'grub-common', 'fdisk', 'cpio', 'gzip', 'busybox-static'], { reject: false, env: TOOL_ENV })
    .then((r) => String(r.stdout));
  return hostToolsMemo;
}

function feedCanonical(v: unknown, h: Hash): void {
  if (v instanceof Uint8Array) {
    h.update(`B${v.length}:`).update(createHash('sha256').update(v).digest());
  } else if (Array.isArray(v)) {
    h.update('[');
    for (const x of v) { feedCanonical(x, h); h.update(','); }
    h.update(']');
  } else if (v instanceof RegExp) {
    h.update(`R${String(v)}`);
  } else if (v !== null && typeof v === 'object') {
    h.update('{');
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x === undefined) continue;
      h.update(`${JSON.stringify(k)}:`);
      feedCanonical(x, h);
      h.update(',');
    }
    h.update('}');
  } else {
    h.update(JSON.stringify(v) ?? 'undefined');
  }
}

/** The cache key of a disk build (16 hex digits). */
export async function diskCacheKey(kind: string, options: object, debs: GuestDebs, sources: string[] = []): Promise<string> {
  const h = createHash('sha256');
  h.update(`${kind}\0`);
  const { dir: _d, name: _n, cache: _c, ...rest } = options as { dir?: unknown; name?: unknown; cache?: unknown };
  feedCanonical(rest, h);
  h.update(readFileSync(debs.resolved));
  for (const f of readdirSync(GUEST_FILES).sort()) {
    const p = join(GUEST_FILES, f);
    if (statSync(p).isFile()) h.update(`${f}\0`).update(readFileSync(p));
  }
  for (const f of [SELF, ...sources]) h.update(readFileSync(f));
  h.update(await hostToolVersions());
  h.update(String(EPOCH));
  return h.digest('hex').slice(0, 16);
}

/** A sparse copy (cp --sparse=always): a disk image is mostly holes. */
export async function sparseCopy(src: string, dst: string): Promise<void> {
  rmSync(dst, { force: true });
  await sh('cp', ['--sparse=always', src, dst]);
}

function pruneDiskCache(root: string, keep: number): void {
  if (!existsSync(root)) return;
  const now = Date.now();
  const entries = readdirSync(root).map((e) => ({ e, p: join(root, e), t: statSync(join(root, e)).mtimeMs }));
  for (const x of entries) if (x.e.includes('.tmp-') && now - x.t > 3_600_000) rmSync(x.p, { recursive: true, force: true });
  const done = entries.filter((x) => !x.e.includes('.tmp-')).sort((a, b) => b.t - a.t);
  for (const x of done.slice(keep)) rmSync(x.p, { recursive: true, force: true });
}

/**
 * Runs `build` unless a disk with the same inputs was built before, in which case the cached
 * image is copied to <dir>/<name>.img. The image returned is always a private copy (QEMU writes
 * to it); rootTree may point into the cache (read-only).
 */
export async function cachedDisk<D extends GuestDisk>(
  kind: string, o: { dir: string; name?: string; cache?: boolean }, arch: GuestArch, build: () => Promise<D>, sources: string[] = [],
): Promise<D> {
  if (o.cache === false || process.env.OTAPACK_GUEST_DISK_CACHE === '0') return build();
  const debs = await fetchGuestDebs(arch);
  const key = await diskCacheKey(kind, o, debs, sources);
  const root = join(guestCacheDir(), 'disks');
  const entry = join(root, `${kind}-${key}`);
  const path = join(o.dir, `${o.name ?? kind}.img`);
  if (existsSync(join(entry, 'disk.json'))) {
    const meta = JSON.parse(readFileSync(join(entry, 'disk.json'), 'utf8')) as D;
    mkdirSync(o.dir, { recursive: true });
    await sparseCopy(join(entry, 'disk.img'), path);
    const t = new Date();
    utimesSync(entry, t, t); // least recently used goes first when pruning
    return { ...meta, path, rootTree: join(entry, 'root.d'), cached: true };
  }
  const d = await build();
  const tmp = `${entry}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await sparseCopy(d.path, join(tmp, 'disk.img'));
  cpSync(d.rootTree, join(tmp, 'root.d'), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  const { path: _p, rootTree: _r, cached: _c, ...meta } = d;
  writeFileSync(join(tmp, 'disk.json'), JSON.stringify({ ...meta, key }, null, 2) + '\n');
  try {
    renameSync(tmp, entry);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process stored the same disk first
  }
  pruneDiskCache(root, DISK_CACHE_ENTRIES);
  return { ...d, cached: false };
}

// ---------------------------------------------------------------------------------------------
// any disk image (e.g. the converter's output) and reading results back after a boot (rootless)

/** What the read/write helpers need to know about a disk: the file and where partitions start. */
export interface DiskView { path: string; partitions: { index: number; start: number; size: number }[] }

export interface InspectedDisk extends DiskView {
  table: 'dos' | 'gpt';
  diskId: string;
  partitions: GuestPartition[];
}

/**
 * Reads a disk image's partition table (sfdisk --json) and probes each partition's filesystem
 * (ext4 superblock magic / FAT boot sector): for images this module did not build, such as
 * `otapack convert` output. Devices are named as a single virtio disk in the guest (/dev/vdaN).
 */
export async function inspectDisk(path: string): Promise<InspectedDisk> {
  const j = JSON.parse(await sh('sfdisk', ['--json', path])) as {
    partitiontable: { label: 'dos' | 'gpt'; id: string; sectorsize?: number; partitions?: { start: number; size: number; type: string; uuid?: string; name?: string }[] };
  };
  const t = j.partitiontable;
  const ss = t.sectorsize ?? 512;
  const fd = openSync(path, 'r');
  try {
    const partitions = (t.partitions ?? []).map((p, i): GuestPartition => {
      const start = p.start * ss;
      const sb = Buffer.alloc(2048);
      readSync(fd, sb, 0, sb.length, start);
      let fs: GuestPartition['fs'] = 'none';
      let fsUuid: string | undefined;
      let label: string | undefined;
      if (sb.readUInt16LE(1024 + 56) === 0xef53) {
        fs = 'ext4';
        const u = sb.subarray(1024 + 104, 1024 + 120).toString('hex');
        fsUuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
        label = sb.subarray(1024 + 120, 1024 + 136).toString('latin1').replace(/\0.*$/s, '') || undefined;
      } else if (sb.readUInt16LE(510) === 0xaa55 && (sb.subarray(82, 87).toString('latin1') === 'FAT32' || sb.subarray(54, 57).toString('latin1') === 'FAT')) {
        fs = 'fat';
        const fat32 = sb.subarray(82, 87).toString('latin1') === 'FAT32';
        const vid = (fat32 ? sb.readUInt32LE(67) : sb.readUInt32LE(39)).toString(16).toUpperCase().padStart(8, '0');
        fsUuid = `${vid.slice(0, 4)}-${vid.slice(4)}`;
        label = (fat32 ? sb.subarray(71, 82) : sb.subarray(43, 54)).toString('latin1').trim() || undefined;
      }
      const idHex = t.id.replace(/^0x/, '').toLowerCase().padStart(8, '0');
      return {
        index: i + 1, start, size: p.size * ss, type: p.type, fs, fsUuid, label, device: `/dev/vda${i + 1}`,
        partuuid: t.label === 'dos' ? `${idHex}-${String(i + 1).padStart(2, '0')}` : (p.uuid ?? '').toLowerCase(),
      };
    });
    return { path, table: t.label, diskId: t.id, partitions };
  } finally {
    closeSync(fd);
  }
}

function partition(disk: DiskView, part: number): DiskView['partitions'][number] {
  const p = disk.partitions.find((x) => x.index === part);
  if (!p) throw new Error(`${disk.path}: no partition ${part}`);
  return p;
}

/** A file from a FAT partition of the disk (mcopy), or undefined. */
export async function readFatFile(disk: DiskView, part: number, path: string): Promise<Buffer | undefined> {
  const p = partition(disk, part);
  const r = await execa('mcopy', ['-n', '-i', `${disk.path}@@${p.start}`, `::${path}`, '-'], { reject: false, encoding: 'buffer', stripFinalNewline: false, env: TOOL_ENV });
  return r.exitCode === 0 ? Buffer.from(r.stdout as Uint8Array) : undefined;
}

/** A file from an ext4 partition of the disk (debugfs on image?offset=), or undefined. */
export async function readExt4File(disk: DiskView, part: number, path: string): Promise<Buffer | undefined> {
  const p = partition(disk, part);
  const r = await execa('debugfs', ['-R', `cat ${path}`, `${disk.path}?offset=${p.start}`], { reject: false, encoding: 'buffer', stripFinalNewline: false, env: TOOL_ENV });
  if (r.exitCode !== 0) return undefined;
  const err = Buffer.from(r.stderr as Uint8Array).toString();
  if (/File not found|not found by ext2_lookup/.test(err)) return undefined;
  return Buffer.from(r.stdout as Uint8Array);
}

/** Writes files into an ext4 partition of the disk (debugfs -w; parent directories created). */
export async function writeExt4Files(disk: DiskView, part: number, files: Record<string, string | Buffer>, workDir: string): Promise<void> {
  const p = partition(disk, part);
  const stage = join(workDir, `.ext4-write-${process.pid}`);
  mkdirSync(stage, { recursive: true });
  const cmds: string[] = [];
  let i = 0;
  for (const [rel, data] of Object.entries(files)) {
    const abs = `/${rel.replace(/^\//, '')}`;
    const parts = abs.split('/').filter(Boolean);
    for (let d = 1; d < parts.length; d++) cmds.push(`mkdir /${parts.slice(0, d).join('/')}`);
    const local = join(stage, String(i++));
    writeFileSync(local, data);
    cmds.push(`rm ${abs}`, `write ${local} ${abs}`, `set_inode_field ${abs} mtime ${EPOCH}`);
  }
  writeFileSync(join(stage, 'cmds'), cmds.join('\n') + '\n');
  // debugfs reports "already exists"/"not found" for mkdir/rm of existing/missing paths; harmless
  await execa('debugfs', ['-w', '-f', join(stage, 'cmds'), `${disk.path}?offset=${p.start}`], { reject: false, env: TOOL_ENV });
  rmSync(stage, { recursive: true, force: true });
  for (const rel of Object.keys(files)) {
    if (!(await readExt4File(disk, part, `/${rel.replace(/^\//, '')}`))) throw new Error(`debugfs could not write ${rel} into partition ${part}`);
  }
}

/** The U-Boot environment stored in a FAT file, as fw_printenv reads it (host side). */
export async function readUbootEnv(disk: DiskView, part: number, path = 'uboot.env', size = 0x4000): Promise<Record<string, string> | undefined> {
  const data = await readFatFile(disk, part, path);
  if (!data) return undefined;
  const dir = join(dirname(disk.path), `.env-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'uboot.env'), data);
  writeFileSync(join(dir, 'fw_env.config'), `${join(dir, 'uboot.env')} 0x0 0x${size.toString(16)}\n`);
  const r = await execa('fw_printenv', ['-c', join(dir, 'fw_env.config')], { reject: false });
  rmSync(dir, { recursive: true, force: true });
  if (r.exitCode !== 0) return undefined;
  const env: Record<string, string> = {};
  for (const l of String(r.stdout).split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) env[l.slice(0, i)] = l.slice(i + 1);
  }
  return env;
}

/** A copy of a tree for variants (symlinks kept). */
export function copyTree(src: string, dst: string): string {
  rmSync(dst, { recursive: true, force: true });
  cpSync(src, dst, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  return dst;
}

export interface GuestTestInput {
  /** /data/otapack-test/commands: run at every boot without its own boot.<N> file */
  commands?: string[];
  /** /data/otapack-test/boot.<N>: run at boot number N only (boots counted on /data by the guest) */
  boots?: Record<number, string[]>;
  /** /data/otapack-test/swupdate.args for images without otapack-update (e.g. "-k … -H … -B uboot -e stable,copy2") */
  swupdateArgs?: string;
  /** more files under /data/otapack-test/ (bundle as update.swu, certificates, keys) */
  files?: Record<string, string | Buffer>;
  /** restart the boot count at 1 (default true) */
  resetBootCount?: boolean;
}

/**
 * Hands the test runner its work through the ext4 /data partition of any disk (debugfs -w, no
 * mount): the way to drive a converted image, whose boot script the test does not write.
 */
export async function writeTestInput(disk: DiskView, dataPartition: number, input: GuestTestInput, workDir: string): Promise<void> {
  const files: Record<string, string | Buffer> = {};
  const T = 'otapack-test';
  if (input.commands) files[`${T}/commands`] = input.commands.join('\n') + '\n';
  for (const [n, c] of Object.entries(input.boots ?? {})) files[`${T}/boot.${n}`] = c.join('\n') + '\n';
  if (input.swupdateArgs) files[`${T}/swupdate.args`] = input.swupdateArgs + '\n';
  for (const [k, v] of Object.entries(input.files ?? {})) files[`${T}/${k.replace(/^\//, '')}`] = v;
  if (input.resetBootCount !== false) files[`${T}/boots`] = '0\n';
  await writeExt4Files(disk, dataPartition, files, workDir);
}
