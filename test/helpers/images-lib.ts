// Low-level pieces for the disk-image fixtures (test/helpers/images.ts): a host tree builder,
// ext4/FAT/partition-table makers driven by the real tools, and a few tiny binary encoders.
//
// Hand-written encoders (FDT, newc cpio, fake kernel headers) exist for determinism and to avoid
// needing dtc/cpio on the machine: a fixture must hash the same on every run and every host.
//
// Determinism rules, all enforced here:
//  - every timestamp is EPOCH: SOURCE_DATE_EPOCH (mkfs.vfat, mtools, mkimage),
//    E2FSPROGS_FAKE_TIME (mke2fs, debugfs), lutimes on the host tree, and a debugfs pass that
//    rewrites each inode's ctime (mke2fs -d copies the host ctime, which nobody can set);
//  - every UUID, volume id, disk id and hash seed is derived from the fixture's key;
//  - owners are set by debugfs (uid/gid 0 unless asked), so the host user does not leak in;
//  - FAT directories are filled in sorted order, one mcopy per directory;
//  - TZ=UTC, LC_ALL=C for every tool.
import { execa } from 'execa';
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { gzipSync } from 'node:zlib';
import { requires } from './require-tool.js';

export const EPOCH = 1700000000; // 2023-11-14T22:13:20Z
export const SECTOR = 512;

const TOOL_ENV: Record<string, string> = {
  LC_ALL: 'C',
  TZ: 'UTC',
  SOURCE_DATE_EPOCH: String(EPOCH),
  E2FSPROGS_FAKE_TIME: String(EPOCH),
  MTOOLS_SKIP_CHECK: '1',
  MTOOLS_NO_VFAT: '0',
};

export async function tool(cmd: string, args: string[], o: { input?: string | Buffer; cwd?: string } = {}): Promise<string> {
  const r = await execa(cmd, args, { env: TOOL_ENV, extendEnv: true, input: o.input, cwd: o.cwd, reject: false, encoding: 'utf8' });
  if (r.exitCode !== 0) {
    const why = String(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${cmd} ${args.join(' ')}: exit ${r.exitCode}: ${why}`);
  }
  return String(r.stdout);
}

export function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(d, cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  return undefined;
}

// ---------------------------------------------------------------- deterministic bytes and ids

/** Incompressible, reproducible bytes (AES-256-CTR keystream keyed by the seed). */
export function prng(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(`otapack-fixture:${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A version-4-shaped UUID derived from a seed (lowercase). */
export function uuidFrom(seed: string): string {
  const b = createHash('sha256').update(`uuid:${seed}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function hex32From(seed: string): string {
  return createHash('sha256').update(`id32:${seed}`).digest('hex').slice(0, 8);
}

/** A recognisable raw blob: a text banner, then seeded random bytes (no long zero runs). */
export function patternBlob(name: string, length: number, header?: Buffer): Buffer {
  const b = prng(`blob:${name}`, length);
  const banner = Buffer.from(`OTAPACK-FIXTURE ${name} ${length} bytes\0`);
  let at = 0;
  if (header) { header.copy(b, 0); at = header.length; }
  banner.copy(b, at);
  return b;
}

/** Parses "60M", "512K", "1G" or a plain byte count. */
export function parseSize(s: string | number): number {
  if (typeof s === 'number') return s;
  const m = /^(\d+)\s*([KMG]?)i?B?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${JSON.stringify(s)}`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}

// ---------------------------------------------------------------- tiny encoders

export interface FdtNode { props?: Record<string, string | string[] | number[] | Buffer>; children?: Record<string, FdtNode> }

/** A valid flattened device tree blob (version 17), enough for `fdtdump` and U-Boot's `fdt addr`. */
export function fdt(root: FdtNode): Buffer {
  const strings: string[] = [];
  const strOff = new Map<string, number>();
  let strLen = 0;
  const nameoff = (n: string): number => {
    let o = strOff.get(n);
    if (o === undefined) { o = strLen; strOff.set(n, o); strings.push(n); strLen += Buffer.byteLength(n) + 1; }
    return o;
  };
  const parts: Buffer[] = [];
  const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return b; };
  const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const node = (name: string, n: FdtNode): void => {
    parts.push(u32(1), pad4(Buffer.from(`${name}\0`)));
    for (const [k, v] of Object.entries(n.props ?? {})) {
      let val: Buffer;
      if (Buffer.isBuffer(v)) val = v;
      else if (typeof v === 'string') val = Buffer.from(`${v}\0`);
      else if (v.length && typeof v[0] === 'string') val = Buffer.from((v as string[]).map((s) => `${s}\0`).join(''));
      else val = Buffer.concat((v as number[]).map(u32));
      parts.push(u32(3), u32(val.length), u32(nameoff(k)), pad4(val));
    }
    for (const [cn, c] of Object.entries(n.children ?? {})) node(cn, c);
    parts.push(u32(2));
  };
  node('', root);
  parts.push(u32(9));
  const struct = Buffer.concat(parts);
  const strs = Buffer.from(strings.map((s) => `${s}\0`).join(''));
  const offRsv = 40, offStruct = offRsv + 16, offStrings = offStruct + struct.length;
  const total = offStrings + strs.length;
  const h = Buffer.alloc(40);
  [0xd00dfeed, total, offStruct, offStrings, offRsv, 17, 16, 0, strs.length, struct.length].forEach((v, i) => h.writeUInt32BE(v, i * 4));
  return Buffer.concat([h, Buffer.alloc(16), struct, strs]);
}

export interface CpioEntry { name: string; mode: number; data?: Buffer | string; target?: string }

/** newc cpio (what the kernel unpacks as an initramfs), fixed mtimes and inode numbers. */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const out: Buffer[] = [];
  const pad = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer, nlink: number): void => {
    const fields = [ino++, mode, 0, 0, nlink, EPOCH, data.length, 0, 0, 0, 0, Buffer.byteLength(name) + 1, 0];
    const hdr = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}${name}\0`);
    out.push(hdr, pad(hdr.length), data, pad(data.length));
  };
  for (const e of entries) {
    const data = e.target !== undefined ? Buffer.from(e.target) : Buffer.from(e.data ?? '');
    push(e.name, e.mode, data, (e.mode & 0o170000) === 0o040000 ? 2 : 1);
  }
  ino = 0;
  push('TRAILER!!!', 0, Buffer.alloc(0), 1);
  return Buffer.concat(out);
}

/** gzip with a fixed header (node's zlib writes mtime 0), like a distro initrd. */
export function gzipFixed(b: Buffer): Buffer {
  return gzipSync(b, { level: 9 });
}

/** A small initramfs that mounts the root named on the command line and switches to it. */
export function initramfs(label: string): Buffer {
  const init = `#!/bin/sh\n# ${label} initramfs stand-in (otapack fixture)\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\nfor a in $(cat /proc/cmdline); do case "$a" in root=*) ROOT="\${a#root=}";; esac; done\necho "initramfs: root=$ROOT"\nexec switch_root /newroot /sbin/init\n`;
  return gzipFixed(cpioNewc([
    { name: 'bin', mode: 0o040755 }, { name: 'dev', mode: 0o040755 }, { name: 'proc', mode: 0o040755 },
    { name: 'sys', mode: 0o040755 }, { name: 'newroot', mode: 0o040755 },
    { name: 'init', mode: 0o100755, data: init },
    { name: 'bin/sh', mode: 0o120777, target: 'busybox' },
    { name: 'lib', mode: 0o040755 }, { name: 'lib/modules', mode: 0o040755 },
    // stands in for the kernel modules a distro initrd carries (incompressible, so the size holds)
    { name: 'lib/modules/virtio_blk.ko', mode: 0o100644, data: prng(`initrd:${label}:modules`, 1 << 20) },
  ]));
}

/** A stand-in arm64 `Image`: the real 64-byte header (magic "ARM\x64" at 0x38), then noise. */
export function fakeArm64Image(name: string, length = 2 << 20): Buffer {
  const h = Buffer.alloc(64);
  h.writeUInt32LE(0x5a4d, 0); // "MZ" (EFI stub) + branch in a real one
  h.writeBigUInt64LE(0x0n, 8); // text_offset
  h.writeBigUInt64LE(BigInt(length), 16); // image_size
  h.writeBigUInt64LE(0xan, 24); // flags: LE, 4K pages, anywhere
  h.writeUInt32LE(0x644d5241, 0x38); // "ARM\x64"
  return patternBlob(`kernel:${name}`, length, h);
}

/** A stand-in x86 `bzImage`: boot sector signature, "HdrS" setup header, then noise. */
export function fakeBzImage(name: string, length = 2 << 20): Buffer {
  const h = Buffer.alloc(0x240);
  h.write('MZ', 0, 'latin1');
  h.writeUInt16LE(0xaa55, 0x1fe);
  h.write('HdrS', 0x202, 'latin1');
  h.writeUInt16LE(0x020f, 0x206); // boot protocol 2.15
  return patternBlob(`kernel:${name}`, length, h);
}

/** A stand-in PE/COFF EFI application (for arches without a GRUB build on the host). */
export function fakeEfiApp(name: string, machine: number, length = 96 << 10): Buffer {
  const h = Buffer.alloc(0x98);
  h.write('MZ', 0, 'latin1');
  h.writeUInt32LE(0x80, 0x3c);
  h.write('PE\0\0', 0x80, 'latin1');
  h.writeUInt16LE(machine, 0x84);
  return patternBlob(`efi:${name}`, length, h);
}

/** Sunxi SPL blob header: branch, "eGON.BT0", checksum, length, "SPL" (see sunxi-tools). */
export function sunxiSplHeader(length: number): Buffer {
  const h = Buffer.alloc(32);
  h.writeUInt32LE(0xea000016, 0); // b +0x60
  h.write('eGON.BT0', 4, 'latin1');
  h.writeUInt32LE(0x5f0a6c39, 12); // stamp; not recomputed (fixture)
  h.writeUInt32LE(Math.min(length, 32768), 16);
  h.write('SPL\x02', 20, 'latin1');
  return h;
}

// ---------------------------------------------------------------- host tree

export interface XattrSpec { path: string; name: string; value: Buffer }
export interface DeviceSpec { path: string; kind: 'c' | 'b'; major: number; minor: number; mode: number }

/**
 * Builds a rootfs on the host. Every call sets its mode explicitly (umask-proof); `finish()`
 * stamps all times to EPOCH. Things the host cannot hold rootlessly (device nodes, owners,
 * xattrs on a filesystem that may not support user.*) are recorded and applied by debugfs.
 */
export class Tree {
  readonly owners = new Map<string, [number, number]>();
  readonly xattrs: XattrSpec[] = [];
  readonly devices: DeviceSpec[] = [];
  readonly fifos: string[] = [];

  constructor(readonly root: string) { fs.mkdirSync(root, { recursive: true }); fs.chmodSync(root, 0o755); }

  private abs(p: string): string { return join(this.root, p.replace(/^\/+/, '')); }

  dir(p: string, mode = 0o755): this {
    fs.chmodSync(this.ensureDir(p), mode);
    return this;
  }

  /** Creates missing directories (0755) without touching the mode of existing ones. */
  private ensureDir(p: string): string {
    const parts = p.replace(/^\/+|\/+$/g, '').split('/').filter(Boolean);
    let cur = this.root;
    for (const part of parts) {
      cur = join(cur, part);
      const st = fs.lstatSync(cur, { throwIfNoEntry: false });
      if (!st) { fs.mkdirSync(cur); fs.chmodSync(cur, 0o755); } else if (!st.isDirectory()) throw new Error(`fixture tree: ${p} goes through ${cur}, which is not a directory (use the real path)`);
    }
    return cur;
  }

  /** Parent dirs made; an existing non-directory at `p` is replaced (never written through a symlink). */
  private parent(p: string): string {
    const a = this.abs(p);
    this.ensureDir(posix.dirname('/' + p.replace(/^\/+/, '')));
    const st = fs.lstatSync(a, { throwIfNoEntry: false });
    if (st && !st.isDirectory()) fs.unlinkSync(a);
    else if (st) throw new Error(`fixture tree: ${p} is a directory`);
    return a;
  }

  file(p: string, content: string | Buffer, mode = 0o644): this {
    const a = this.parent(p);
    fs.writeFileSync(a, content);
    fs.chmodSync(a, mode);
    return this;
  }

  symlink(p: string, target: string): this {
    const a = this.parent(p);
    fs.symlinkSync(target, a);
    return this;
  }

  hardlink(p: string, existing: string): this {
    const a = this.parent(p);
    fs.linkSync(this.abs(existing), a);
    return this;
  }

  /** A file with holes: `length` apparent bytes, data only at the given offsets. */
  sparse(p: string, length: number, chunks: { offset: number; data: Buffer }[], mode = 0o644): this {
    const a = this.parent(p);
    const fd = fs.openSync(a, 'w');
    try { for (const c of chunks) fs.writeSync(fd, c.data, 0, c.data.length, c.offset); fs.ftruncateSync(fd, length); } finally { fs.closeSync(fd); }
    fs.chmodSync(a, mode);
    return this;
  }

  fifo(p: string): this { this.parent(p); this.fifos.push(p); return this; }
  owner(p: string, uid: number, gid: number): this { this.owners.set(p, [uid, gid]); return this; }
  xattr(p: string, name: string, value: Buffer | string): this { this.xattrs.push({ path: p, name, value: Buffer.from(value) }); return this; }
  device(p: string, kind: 'c' | 'b', major: number, minor: number, mode: number): this {
    this.ensureDir(posix.dirname(p)); this.devices.push({ path: p, kind, major, minor, mode }); return this;
  }

  /** Creates FIFOs, stamps every entry's atime/mtime, returns all paths ('/'-rooted, sorted). */
  async finish(): Promise<string[]> {
    for (const f of this.fifos) {
      await tool('mkfifo', ['-m', '0644', this.abs(f)]);
      fs.chmodSync(this.abs(f), 0o644);
    }
    const all: string[] = [];
    const walk = (rel: string): void => {
      const a = join(this.root, rel);
      const names = fs.readdirSync(a).sort();
      for (const n of names) {
        const r = rel ? `${rel}/${n}` : n;
        all.push('/' + r);
        const st = fs.lstatSync(join(this.root, r));
        if (st.isDirectory()) walk(r);
      }
    };
    walk('');
    // Children before parents, so stamping a child does not touch a stamped parent.
    for (const p of [...all].reverse()) fs.lutimesSync(this.abs(p), EPOCH, EPOCH);
    fs.utimesSync(this.root, EPOCH, EPOCH);
    return all;
  }
}

// ---------------------------------------------------------------- filesystems

function dq(p: string): string {
  if (/["\n]/.test(p)) throw new Error(`debugfs cannot take the path ${JSON.stringify(p)}`);
  return `"${p}"`;
}

export interface Ext4Options {
  out: string; tree: Tree; entries: string[]; sizeBytes: number; blockSize: 1024 | 4096;
  label: string; uuid: string; features?: string; reservedPercent?: number; inodeSize?: number;
}

/** mke2fs -d, then one debugfs -w pass: device nodes, xattrs, owners, and ctime = EPOCH everywhere. */
export async function makeExt4(o: Ext4Options): Promise<void> {
  if (o.sizeBytes % o.blockSize) throw new Error(`ext4 size ${o.sizeBytes} is not a multiple of ${o.blockSize}`);
  fs.writeFileSync(o.out, '');
  fs.truncateSync(o.out, o.sizeBytes);
  const args = ['-q', '-F', '-t', 'ext4', '-b', String(o.blockSize), '-L', o.label, '-U', o.uuid,
    '-E', `root_owner=0:0,hash_seed=${uuidFrom(o.uuid + ':hash')}`, '-m', String(o.reservedPercent ?? 5),
    '-I', String(o.inodeSize ?? 256)];
  if (o.features) args.push('-O', o.features);
  args.push('-d', o.tree.root, o.out, String(o.sizeBytes / o.blockSize));
  await tool('mke2fs', args);

  const t = `0x${EPOCH.toString(16)}`;
  const script: string[] = [];
  const work = `${o.out}.xattr`;
  fs.mkdirSync(work, { recursive: true });
  o.tree.xattrs.forEach((x, i) => {
    const vf = join(work, String(i));
    fs.writeFileSync(vf, x.value);
    script.push(`ea_set -f ${dq(vf)} ${dq(x.path)} ${x.name}`);
  });
  for (const d of o.tree.devices) {
    script.push(`cd ${dq(posix.dirname(d.path))}`, `mknod ${dq(posix.basename(d.path))} ${d.kind} ${d.major} ${d.minor}`, 'cd /');
    script.push(`sif ${dq(d.path)} mode 0${((d.kind === 'c' ? 0o020000 : 0o060000) | d.mode).toString(8)}`);
  }
  const paths = ['/', ...o.entries, ...o.tree.devices.map((d) => d.path)];
  for (const p of paths) {
    const [uid, gid] = o.tree.owners.get(p) ?? [0, 0];
    script.push(`sif ${dq(p)} uid ${uid}`, `sif ${dq(p)} gid ${gid}`, `sif ${dq(p)} ctime ${t}`, `sif ${dq(p)} atime ${t}`, `sif ${dq(p)} mtime ${t}`);
  }
  const sf = join(work, 'script');
  fs.writeFileSync(sf, script.join('\n') + '\n');
  const out = await execa('debugfs', ['-w', '-f', sf, o.out], { env: TOOL_ENV, extendEnv: true, reject: false });
  fs.rmSync(work, { recursive: true, force: true });
  // debugfs exits 0 even when a request fails; its complaints go to stderr.
  const errs = String(out.stderr).split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l) && !/^Allocated inode/.test(l));
  if (out.exitCode !== 0 || errs.length) throw new Error(`debugfs on ${o.out}: ${errs.slice(0, 3).join(' | ')}`);
}

export interface FatFile { path: string; data?: Buffer | string; dir?: boolean }

/** mkfs.vfat on a file of exactly sizeBytes, filled with mmd/mcopy in sorted order. */
export async function makeVfat(o: { out: string; sizeBytes: number; label: string; volumeId: string; fatBits?: 12 | 16 | 32; files: FatFile[] }): Promise<void> {
  fs.writeFileSync(o.out, '');
  fs.truncateSync(o.out, o.sizeBytes);
  // mkfs.vfat stamps the volume-label entry with the wall clock (it ignores SOURCE_DATE_EPOCH),
  // so: --invariant (no label entry, fixed id), then mlabel writes label + serial at EPOCH.
  const args = ['--invariant'];
  if (o.fatBits) args.push('-F', String(o.fatBits));
  await tool('mkfs.vfat', [...args, o.out]);
  await tool('mlabel', ['-i', o.out, '-N', o.volumeId, `::${o.label}`]);
  const dirs = new Set<string>();
  for (const f of o.files) {
    const parts = f.path.replace(/^\/+/, '').split('/');
    const upto = f.dir ? parts.length : parts.length - 1;
    for (let i = 1; i <= upto; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const sortedDirs = [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b));
  if (sortedDirs.length) await tool('mmd', ['-i', o.out, ...sortedDirs.map((d) => `::/${d}`)]);
  const stage = `${o.out}.stage`;
  const byDir = new Map<string, string[]>();
  for (const f of o.files.filter((x) => !x.dir).sort((a, b) => a.path.localeCompare(b.path))) {
    const rel = f.path.replace(/^\/+/, '');
    const src = join(stage, rel);
    fs.mkdirSync(dirname(src), { recursive: true });
    fs.writeFileSync(src, f.data ?? '');
    fs.utimesSync(src, EPOCH, EPOCH);
    const d = posix.dirname(rel);
    byDir.set(d, [...(byDir.get(d) ?? []), src]);
  }
  for (const [d, srcs] of [...byDir].sort(([a], [b]) => a.localeCompare(b))) {
    await tool('mcopy', ['-m', '-o', '-i', o.out, ...srcs, d === '.' ? '::/' : `::/${d}/`]);
  }
  fs.rmSync(stage, { recursive: true, force: true });
}

/** mkimage -T script: a legacy U-Boot script image (header time from SOURCE_DATE_EPOCH). */
export async function mkScript(cmdFile: string, out: string, arch = 'arm64', name = 'boot script'): Promise<void> {
  await tool('mkimage', ['-A', arch, '-O', 'linux', '-T', 'script', '-C', 'none', '-n', name, '-d', cmdFile, out]);
}

/** mkimage -T ramdisk: Armbian's uInitrd. */
export async function mkRamdisk(initrd: string, out: string, arch = 'arm64'): Promise<void> {
  await tool('mkimage', ['-A', arch, '-O', 'linux', '-T', 'ramdisk', '-C', 'gzip', '-n', 'uInitrd', '-d', initrd, out]);
}

// ---------------------------------------------------------------- disk assembly

export interface TablePart {
  start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean; attrs?: string;
  file?: string; extended?: boolean;
}

export interface DiskSpec {
  out: string; sizeBytes: number; label: 'dos' | 'gpt'; labelId: string; parts: TablePart[];
  raw?: { offset: number; data: Buffer }[]; firstLba?: number;
}

/** A sparse disk file: sfdisk writes the table, partition images and raw blobs are spliced in. */
export async function assembleDisk(d: DiskSpec): Promise<void> {
  fs.writeFileSync(d.out, '');
  fs.truncateSync(d.out, d.sizeBytes);
  const lines = [`label: ${d.label}`, `label-id: ${d.label === 'dos' ? '0x' + d.labelId : d.labelId.toUpperCase()}`, 'unit: sectors'];
  if (d.label === 'gpt') lines.push(`first-lba: ${d.firstLba ?? 34}`);
  lines.push('');
  for (const p of d.parts) {
    const f = [`start=${p.start}`, `size=${p.size}`, `type=${p.type}`];
    if (p.uuid) f.push(`uuid=${p.uuid.toUpperCase()}`);
    if (p.name) f.push(`name="${p.name}"`);
    if (p.attrs) f.push(`attrs="${p.attrs}"`);
    if (p.bootable) f.push('bootable');
    lines.push(f.join(', '));
  }
  await tool('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '--wipe', 'never', d.out], { input: lines.join('\n') + '\n' });
  const fd = fs.openSync(d.out, 'r+');
  try {
    for (const p of d.parts) {
      if (!p.file) continue;
      const len = fs.statSync(p.file).size;
      if (len > p.size * SECTOR) throw new Error(`${p.file} (${len} bytes) does not fit partition at ${p.start} (${p.size} sectors)`);
      spliceFile(fd, p.file, p.start * SECTOR);
    }
    for (const r of d.raw ?? []) fs.writeSync(fd, r.data, 0, r.data.length, r.offset);
  } finally { fs.closeSync(fd); }
}

/** Copies src into an open fd at offset, skipping all-zero chunks (the target is sparse). */
export function spliceFile(fd: number, src: string, offset: number): void {
  const CH = 1 << 20;
  const buf = Buffer.alloc(CH);
  const sfd = fs.openSync(src, 'r');
  try {
    let pos = 0;
    for (;;) {
      const n = fs.readSync(sfd, buf, 0, CH, pos);
      if (n <= 0) break;
      let zero = true;
      for (let i = 0; i < n; i += 8) { if (i + 8 <= n ? buf.readBigUInt64LE(i) !== 0n : buf.subarray(i, n).some((x) => x)) { zero = false; break; } }
      if (!zero) fs.writeSync(fd, buf, 0, n, offset + pos);
      pos += n;
    }
  } finally { fs.closeSync(sfd); }
}

export async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Real GRUB EFI image (grub-mkimage, deterministic); false when the platform files are absent and
 * the caller puts a stub EFI app in its place. x86_64 goes through requires(): CI installs
 * grub-efi-amd64-bin, so there a missing one fails. The arm64 modules cannot be installed on an
 * amd64 Debian host, so the arm64 fixture stands in with a stub wherever they are absent.
 */
export async function grubEfi(out: string, platform: 'x86_64-efi' | 'arm64-efi', modules?: string[]): Promise<boolean> {
  const dir = `/usr/lib/grub/${platform}`;
  const real = platform === 'x86_64-efi'
    ? requires({ what: 'a real GRUB in the x86_64 EFI fixtures', files: [join(dir, 'normal.mod')], tools: ['grub-mkimage'], install: 'apt-get install grub-efi-amd64-bin grub-common', fallback: 'a stub EFI app stands in' })
    : fs.existsSync(join(dir, 'normal.mod')) && which('grub-mkimage') !== undefined;
  if (!real) return false;
  // Buildroot's way: every module built in, prefix /EFI/BOOT so grub.cfg sits next to the binary.
  const mods = modules ?? ['boot', 'linux', 'ext2', 'fat', 'part_msdos', 'part_gpt', 'normal', 'configfile', 'search',
    'search_fs_uuid', 'search_fs_file', 'search_label', 'echo', 'test', 'loadenv', 'gzio', 'reboot', 'halt', 'sleep',
    'efi_gop', 'all_video', 'serial', 'terminal'];
  await tool('grub-mkimage', ['-d', dir, '-O', platform, '-p', '/EFI/BOOT', '-o', out, ...mods.filter((m) => fs.existsSync(join(dir, `${m}.mod`)))]);
  return true;
}
