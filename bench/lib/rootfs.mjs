// Builds realistic ext4 rootfs images for the benchmark, rootless: a tree is populated with
// real ELF binaries and libraries and real text files from the host's /usr, incompressible blobs
// (firmware, media, already-compressed archives: seeded AES-CTR keystream) and compressible
// generated data (logs, databases), then `mke2fs -d` turns it into an image. Fixed UUID, hash
// seed and time, so one host always produces the same image.
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, readdir, lstat, open, rm, writeFile, copyFile, symlink, stat, readFile } from 'node:fs/promises';
import { join, dirname, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

export const GENERATOR_VERSION = 3;
const MiB = 1 << 20;

/** Share of the used bytes per kind of content. */
export const MIX = { elf: 0.40, text: 0.25, random: 0.15, generated: 0.20 };

async function* walk(dir) {
  let names;
  try { names = (await readdir(dir)).sort(); } catch { return; }
  for (const n of names) {
    const p = join(dir, n);
    let s;
    try { s = await lstat(p); } catch { continue; }
    if (s.isDirectory()) yield* walk(p);
    else if (s.isFile()) yield { path: p, size: s.size };
  }
}

async function head(path, n) {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(n);
    const { bytesRead } = await fh.read(b, 0, n, 0);
    return b.subarray(0, bytesRead);
  } finally { await fh.close(); }
}

const isElf = (b) => b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
function isText(b) {
  if (b.length < 64) return false;
  let bad = 0;
  for (const c of b) {
    if (c === 0) return false;
    if (c < 9 || (c > 13 && c < 32)) bad++;
  }
  return bad / b.length < 0.01;
}

/** Copies host files of one kind from `roots` into `dest` (same relative paths) up to `budget` bytes. */
async function copyKind(roots, dest, budget, accept, maxFile) {
  let total = 0;
  let files = 0;
  for (const root of roots) {
    for await (const f of walk(root)) {
      if (total >= budget) return { total, files };
      if (f.size < 256 || f.size > maxFile || total + f.size > budget * 1.02) continue;
      let b;
      try { b = await head(f.path, 4096); } catch { continue; }
      if (!accept(b)) continue;
      const to = join(dest, relative('/', f.path));
      await mkdir(dirname(to), { recursive: true });
      try { await copyFile(f.path, to); } catch { continue; }
      total += f.size;
      files++;
    }
  }
  return { total, files };
}

/** Deterministic incompressible bytes: AES-128-CTR keystream seeded by a label. */
export function keystream(label, n) {
  const key = createHash('sha256').update(label).digest().subarray(0, 16);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return c.update(Buffer.alloc(n));
}

/** Deterministic PRNG (xorshift32) for the generated text. */
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

const WORDS = 'kernel systemd network service started stopped mounted device update slot rootfs partition config daemon timeout retry connected disconnected sensor value temperature voltage current firmware version checksum verified request response client server session user login logout error warning info debug trace'.split(' ');

/** Log-like or table-like text that compresses about as well as real logs and databases do. */
export function generatedText(seed, n) {
  const r = rng(seed);
  const parts = [];
  let len = 0;
  let t = 1700000000 + seed * 1000;
  while (len < n) {
    t += Math.floor(r() * 5);
    const words = Array.from({ length: 4 + Math.floor(r() * 8) }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ');
    const line = `${new Date(t * 1000).toISOString()} host${Math.floor(r() * 4)} ${WORDS[Math.floor(r() * WORDS.length)]}[${100 + Math.floor(r() * 9000)}]: ${words} id=${Math.floor(r() * 1e9).toString(16)} v=${(r() * 1000).toFixed(3)}\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/** Populates `tree` with about `used` bytes of mixed content. Returns counts per kind. */
export async function populateTree(tree, used) {
  await rm(tree, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'etc/init.d', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'root', 'var/log', 'var/lib/app', 'boot', 'mnt', 'opt/media', 'lib/firmware']) {
    await mkdir(join(tree, d), { recursive: true });
  }
  const stats = {};
  // real binaries and libraries
  stats.elf = await copyKind(['/usr/lib/x86_64-linux-gnu', '/usr/bin', '/usr/sbin', '/usr/libexec', '/usr/lib'], join(tree, 'host'), used * MIX.elf, isElf, 16 * MiB);
  // real text: headers, scripts, docs
  stats.text = await copyKind(['/usr/include', '/usr/share/perl', '/usr/lib/python3', '/usr/lib/python3.11', '/usr/share'], join(tree, 'host'), used * MIX.text, isText, 4 * MiB);
  // incompressible: firmware blobs, media, compressed archives (64 KiB .. 8 MiB)
  {
    const budget = used * MIX.random;
    let total = 0; let i = 0;
    const r = rng(7);
    while (total < budget) {
      const n = Math.min(budget - total, Math.floor(64 * 1024 * 2 ** (r() * 7)));
      const dir = i % 3 === 0 ? 'lib/firmware' : 'opt/media';
      await writeFile(join(tree, dir, `blob-${String(i).padStart(4, '0')}.bin`), keystream(`blob${i}`, Math.ceil(n)));
      total += Math.ceil(n); i++;
    }
    stats.random = { total, files: i };
  }
  // compressible: logs and database-like files (16 KiB .. 16 MiB)
  {
    const budget = used * MIX.generated;
    let total = 0; let i = 0;
    const r = rng(11);
    while (total < budget) {
      const n = Math.ceil(Math.min(budget - total, 16 * 1024 * 2 ** (r() * 10)));
      const dir = i % 2 === 0 ? 'var/log' : 'var/lib/app';
      await writeFile(join(tree, dir, `data-${String(i).padStart(4, '0')}.${i % 2 ? 'db' : 'log'}`), generatedText(i + 1, n));
      total += n; i++;
    }
    stats.generated = { total, files: i };
  }
  // a bootable-looking /etc (convert reads /etc/fstab)
  await writeFile(join(tree, 'etc/fstab'), '/dev/root\t/\text4\trw,noauto\t0\t1\nproc\t/proc\tproc\tdefaults\t0\t0\nsysfs\t/sys\tsysfs\tdefaults\t0\t0\n');
  await writeFile(join(tree, 'etc/inittab'), '::sysinit:/bin/mount -a\n::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n');
  await writeFile(join(tree, 'etc/os-release'), 'NAME=Buildroot\nVERSION_ID=2024.02\nID=buildroot\n');
  await writeFile(join(tree, 'etc/hostname'), 'bench-board\n');
  await writeFile(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  try {
    await copyFile('/bin/busybox', join(tree, 'bin/busybox'));
    for (const a of ['sh', 'ls', 'cat', 'mount']) await symlink('busybox', join(tree, 'bin', a));
    await symlink('../bin/busybox', join(tree, 'sbin/init'));
  } catch { /* busybox-static not installed: not needed for the benchmark */ }
  return stats;
}

function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', ...env }, maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().trim().split('\n').slice(-2).join(' / ')}`);
  return r.stdout.toString();
}

export const FAKE_TIME = '1700000000';

/** mke2fs -d: an ext4 image of `bytes` from `tree`; sparse (holes where nothing is written). */
export function makeExt4(image, bytes, tree) {
  run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-U', '0f1e2d3c-4b5a-4697-8877-665544332211',
    '-E', 'root_owner=0:0,hash_seed=1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d', '-L', 'rootfs', '-d', tree, image, `${bytes / 4096}`],
  { E2FSPROGS_FAKE_TIME: FAKE_TIME });
}

/** Used bytes of an ext4 image (block count minus free blocks, from its superblock). */
export async function ext4Used(image) {
  const sb = Buffer.alloc(1024);
  const fh = await open(image, 'r');
  try { await fh.read(sb, 0, 1024, 1024); } finally { await fh.close(); }
  const bs = 1024 << sb.readUInt32LE(24);
  return (sb.readUInt32LE(4) - sb.readUInt32LE(12)) * bs;
}

/**
 * A Buildroot-style SD card image: MBR, p1 FAT boot partition (U-Boot script with
 * root=/dev/mmcblk0p2, a kernel placeholder), p2 the given ext4 rootfs (see
 * examples/build-sample-image.sh, the same shape at full size).
 */
export async function makeSdcard(out, rootfs, work) {
  const rootBytes = (await stat(rootfs)).size;
  await mkdir(work, { recursive: true });
  const cmd = join(work, 'boot.cmd');
  await writeFile(cmd, 'setenv bootargs console=ttyAMA0 root=/dev/mmcblk0p2 rootwait\nload ${devtype} ${devnum}:1 ${kernel_addr_r} Image\nbooti ${kernel_addr_r} - ${fdt_addr}\n');
  run('mkimage', ['-A', 'arm64', '-O', 'linux', '-T', 'script', '-C', 'none', '-n', 'bench boot script', '-d', cmd, join(work, 'boot.scr')]);
  await writeFile(join(work, 'Image'), keystream('kernel', 8 * MiB));
  const vfat = join(work, 'boot.vfat');
  await rm(vfat, { force: true });
  const vfh = await open(vfat, 'w');
  await vfh.truncate(32 * MiB);
  await vfh.close();
  run('mkfs.vfat', ['--invariant', '-i', '5a4b3c2d', '-n', 'BOOT', vfat]);
  run('mcopy', ['-m', '-i', vfat, join(work, 'boot.scr'), cmd, join(work, 'Image'), '::/'], { MTOOLS_SKIP_CHECK: '1' });
  const bootStart = 2048;
  const bootSectors = (32 * MiB) / 512;
  const rootStart = bootStart + bootSectors;
  const rootSectors = rootBytes / 512;
  await rm(out, { force: true });
  const fh = await open(out, 'w');
  await fh.truncate((rootStart + rootSectors) * 512);
  await fh.close();
  const table = `label: dos\nlabel-id: 0x5a3c0001\nstart=${bootStart}, size=${bootSectors}, type=c, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n`;
  const r = spawnSync('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', out], { input: table });
  if (r.status !== 0) throw new Error(`sfdisk failed: ${r.stderr}`);
  run('dd', [`if=${vfat}`, `of=${out}`, 'bs=1M', `seek=${bootStart * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  run('dd', [`if=${rootfs}`, `of=${out}`, 'bs=1M', `seek=${rootStart * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
}

export async function readStamp(path) {
  try { return JSON.parse(await readFile(path, 'utf8')); } catch { return undefined; }
}
