// Debian 12 packages for QEMU test guests (arm64 and amd64): a kernel, busybox-static, the
// SWUpdate and Mender clients and fw_printenv/fw_setenv with every runtime dependency. The download, the
// dependency resolution (apt itself, private state, APT::Architecture=<arch>) and the cache live
// in scripts/fetch-guest-debs.sh so CI and a developer's shell share one implementation; this
// module runs it once per process and reads its KEY=VALUE answer.
//
// Also here: a small ELF reader (DT_NEEDED and PT_INTERP) so the guest tree gets exactly the
// shared libraries its programs load, resolved the way glibc's ld.so searches a Debian system
// without ld.so.cache. An unresolved library is an error, so an incomplete package set cannot
// reach a guest unnoticed.
import { execa } from 'execa';
import { closeSync, existsSync, lstatSync, openSync, readSync, readlinkSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

export type GuestArch = 'arm64' | 'amd64';

export interface GuestPackage { name: string; arch: string; version: string }

export interface GuestDebs {
  arch: GuestArch;
  /** kernel release, e.g. 6.1.0-56-cloud-arm64 */
  kver: string;
  /** the kernel image (arm64: an uncompressed Image for booti; amd64: a bzImage) */
  kernel: string;
  /** lib/modules/<kver> inside the unpacked tree */
  modules: string;
  /** every resolved package unpacked here with dpkg-deb -x */
  root: string;
  /** "name arch version" per line: the pinned set */
  resolved: string;
  packages: GuestPackage[];
  /** bytes downloaded by this call (0 when everything came from the cache) */
  downloadedBytes: number;
  seconds: number;
}

const SCRIPT = fileURLToPath(new URL('../../scripts/fetch-guest-debs.sh', import.meta.url));
const memo = new Map<GuestArch, Promise<GuestDebs>>();

/** Where the packages are cached (the script's default, overridable with OTAPACK_GUEST_CACHE). */
export function guestCacheDir(): string {
  return process.env.OTAPACK_GUEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'otapack-guest');
}

/** Downloads (first time) or finds (cached) the guest packages for `arch`. Memoised per process. */
export function fetchGuestDebs(arch: GuestArch = 'arm64'): Promise<GuestDebs> {
  let p = memo.get(arch);
  if (!p) {
    p = runFetch(arch);
    memo.set(arch, p);
    p.catch(() => memo.delete(arch));
  }
  return p;
}

async function runFetch(arch: GuestArch): Promise<GuestDebs> {
  const r = await execa('bash', [SCRIPT, arch], { reject: false, env: { LC_ALL: 'C' }, timeout: 900_000 });
  if (r.exitCode !== 0) {
    const tail = String(r.stderr).trim().split('\n').slice(-8).join('\n');
    throw new Error(`scripts/fetch-guest-debs.sh ${arch} failed (exit ${r.exitCode}):\n${tail}`);
  }
  const kv = new Map<string, string>();
  for (const line of String(r.stdout).split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const get = (k: string): string => {
    const v = kv.get(k);
    if (v === undefined) throw new Error(`fetch-guest-debs.sh printed no ${k}`);
    return v;
  };
  const resolved = get('RESOLVED');
  const { readFileSync } = await import('node:fs');
  const packages = readFileSync(resolved, 'utf8').trim().split('\n').map((l) => {
    const [name, a, version] = l.split(' ');
    return { name: name!, arch: a!, version: version! };
  });
  return {
    arch, kver: get('KVER'), kernel: get('KERNEL'), modules: get('MODULES'), root: get('ROOT'), resolved, packages,
    downloadedBytes: Number(get('DOWNLOADED_BYTES')), seconds: Number(get('SECONDS')),
  };
}

// ---------------------------------------------------------------------------------------------
// ELF: just enough to follow DT_NEEDED (64-bit little-endian, which arm64 and amd64 both are)

export interface ElfDeps { interp?: string; needed: string[] }

/** DT_NEEDED entries and the program interpreter of an ELF file; undefined for non-ELF files. */
export function elfDeps(file: string): ElfDeps | undefined {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const read = (pos: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      const n = readSync(fd, b, 0, len, pos);
      return b.subarray(0, n);
    };
    const h = read(0, 64);
    if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46) return undefined;
    if (h[4] !== 2 || h[5] !== 1) throw new Error(`${file}: only 64-bit little-endian ELF is supported`);
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    const loads: { vaddr: number; off: number; filesz: number }[] = [];
    let dyn: { off: number; size: number } | undefined;
    let interp: string | undefined;
    for (let i = 0; i < phnum; i++) {
      const p = read(phoff + i * phentsize, phentsize);
      const type = p.readUInt32LE(0);
      const off = Number(p.readBigUInt64LE(8));
      const vaddr = Number(p.readBigUInt64LE(16));
      const filesz = Number(p.readBigUInt64LE(32));
      if (type === 1) loads.push({ vaddr, off, filesz });
      else if (type === 2) dyn = { off, size: filesz };
      else if (type === 3) interp = read(off, filesz).toString('latin1').replace(/\0.*$/s, '');
    }
    if (!dyn) return { interp, needed: [] };
    const d = read(dyn.off, dyn.size);
    const neededOffsets: number[] = [];
    let strtab = -1;
    for (let o = 0; o + 16 <= d.length; o += 16) {
      const tag = Number(d.readBigInt64LE(o));
      const val = Number(d.readBigUInt64LE(o + 8));
      if (tag === 0) break;
      if (tag === 1) neededOffsets.push(val);
      else if (tag === 5) strtab = val;
    }
    if (strtab < 0) return { interp, needed: [] };
    // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segments
    const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
    if (!seg) throw new Error(`${file}: DT_STRTAB outside every PT_LOAD segment`);
    const strOff = seg.off + (strtab - seg.vaddr);
    const needed = neededOffsets.map((n) => {
      const b = read(strOff + n, Math.min(256, size - (strOff + n)));
      return b.toString('latin1').replace(/\0.*$/s, '');
    });
    return { interp, needed };
  } finally {
    closeSync(fd);
  }
}

/** The multiarch triplet glibc uses on Debian for each guest architecture. */
export const TRIPLET: Record<GuestArch, string> = { arm64: 'aarch64-linux-gnu', amd64: 'x86_64-linux-gnu' };

/**
 * Resolves a symlink inside `root` (absolute targets are taken relative to `root`), like the
 * guest will see it. Returns the path relative to root.
 */
function resolveInRoot(root: string, rel: string, depth = 0): string | undefined {
  if (depth > 16) return undefined;
  const parts = rel.split('/').filter(Boolean);
  let cur = '';
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(cur, parts[i]!);
    const abs = join(root, next);
    let st;
    try { st = lstatSync(abs); } catch { return undefined; }
    if (st.isSymbolicLink()) {
      const t = readlinkSync(abs);
      const target = t.startsWith('/') ? t.slice(1) : posix.join(cur, t);
      const r = resolveInRoot(root, posix.normalize(target), depth + 1);
      if (r === undefined) return undefined;
      cur = r;
    } else {
      cur = next;
    }
  }
  return cur;
}

/**
 * Every file (relative to `root`, symlinks included as they are) that the given programs need
 * at run time: the programs, their interpreter and the DT_NEEDED closure, searched in ld.so's
 * default order for `arch`. Throws naming the library when one cannot be found.
 */
export function runtimeClosure(root: string, programs: string[], arch: GuestArch): string[] {
  const t = TRIPLET[arch];
  const searchDirs = [`lib/${t}`, `usr/lib/${t}`, 'lib', 'usr/lib'];
  const out = new Set<string>();
  const seen = new Set<string>();
  const addPathWithLinks = (rel: string): string => {
    // record every symlink hop so the copy reproduces the chain
    let cur = rel;
    for (let hop = 0; hop < 16; hop++) {
      out.add(cur);
      const abs = join(root, cur);
      const st = lstatSync(abs);
      if (!st.isSymbolicLink()) return cur;
      const tgt = readlinkSync(abs);
      cur = posix.normalize(tgt.startsWith('/') ? tgt.slice(1) : posix.join(posix.dirname(cur), tgt));
      // the symlink's directory itself may be a link: resolve through the root
      cur = resolveInRoot(root, cur) ?? cur;
    }
    throw new Error(`${rel}: symlink loop`);
  };
  const visit = (rel: string, from: string): void => {
    if (seen.has(rel)) return;
    seen.add(rel);
    if (!existsSync(join(root, rel))) throw new Error(`${from}: ${rel} not found in ${root}`);
    const real = addPathWithLinks(rel);
    const deps = elfDeps(join(root, real));
    if (!deps) return;
    if (deps.interp) visit(deps.interp.replace(/^\//, ''), real);
    for (const lib of deps.needed) {
      const dir = searchDirs.find((d) => existsSync(join(root, d, lib)));
      if (!dir) throw new Error(`${real} needs ${lib}, which no unpacked package provides (searched ${searchDirs.join(', ')})`);
      visit(posix.join(dir, lib), real);
    }
  };
  for (const p of programs) visit(p.replace(/^\//, ''), p);
  return [...out].sort();
}

export const SCRIPTS_DIR = dirname(SCRIPT);
