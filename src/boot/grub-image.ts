// What a GRUB EFI core image (BOOTX64.EFI made by grub-mkimage, grub-install or
// grub-mkstandalone) carries, read from its bytes: the modules built into it, its prefix (where it
// looks for grub.cfg and for more modules), an embedded config, the files of a memdisk, and whether
// the image is signed (Secure Boot).
//
// Layout (GRUB 2.x, util/mkimage.c): a PE32+/PE32 whose `mods` section (`.mods` in older builds)
// starts with struct grub_module_info { u32 magic 'mimg'; [u32 pad;] offset; size } (64-bit
// fields on 64-bit platforms), followed by objects { u32 type; u32 size (with this header) } and
// their data: type 0 a module (an ELF relocatable; its name is the `.modname` section, its
// dependencies `.moddeps`), 1 a memdisk (a tar for grub-mkstandalone), 2 the embedded config
// (-c), 3 the prefix (-p). Written by hand: no tool lists the modules of a core image.
import { OtapackError } from '../errors.js';

export interface GrubModule {
  name: string;
  /** Modules this one needs (its .moddeps), all built in as well. */
  deps: string[];
}

export interface GrubImage {
  /** GRUB platform from the PE machine: x86_64-efi, i386-efi, arm64-efi, arm-efi, riscv64-efi. */
  platform: string;
  modules: GrubModule[];
  /** The -p prefix, e.g. /EFI/BOOT or (memdisk)/boot/grub; undefined when none was given. */
  prefix?: string;
  /** The -c config text, when one is embedded. */
  config?: string;
  /** Paths in the memdisk (a tar), when there is one: boot/grub/x86_64-efi/loadenv.mod … */
  memdisk?: string[];
  /** The memdisk's files that are text configs (grub.cfg), by path. */
  memdiskConfigs?: Record<string, string>;
  /** An Authenticode signature is attached (a Secure Boot build: replacing the image loses it). */
  signed: boolean;
  /** The image has an .sbat section (built for shim and Secure Boot). */
  sbat: boolean;
}

const MACHINES: Record<number, string> = { 0x8664: 'x86_64-efi', 0x14c: 'i386-efi', 0xaa64: 'arm64-efi', 0x1c2: 'arm-efi', 0x1c4: 'arm-efi', 0x5064: 'riscv64-efi', 0x5032: 'riscv32-efi', 0x6264: 'loongarch64-efi' };
const MIMG = 0x676d696d;
const OBJ = { ELF: 0, MEMDISK: 1, CONFIG: 2, PREFIX: 3 } as const;

class NotGrub extends Error {}

function need(b: Buffer, at: number, n: number): void {
  if (at < 0 || at + n > b.length) throw new NotGrub(`truncated at ${at}`);
}

const cstr = (b: Buffer): string => {
  const z = b.indexOf(0);
  return b.toString('latin1', 0, z < 0 ? b.length : z);
};

/** The ELF's .modname and .moddeps (32- or 64-bit, little-endian). */
function moduleOf(elf: Buffer): GrubModule | undefined {
  if (elf.length < 52 || elf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = elf[4] === 2;
  if (elf[5] !== 1) return undefined;
  const shoff = is64 ? Number(elf.readBigUInt64LE(0x28)) : elf.readUInt32LE(0x20);
  const shentsize = elf.readUInt16LE(is64 ? 0x3a : 0x2e);
  const shnum = elf.readUInt16LE(is64 ? 0x3c : 0x30);
  const shstrndx = elf.readUInt16LE(is64 ? 0x3e : 0x32);
  if (shnum === 0 || shstrndx >= shnum || shoff + shnum * shentsize > elf.length) return undefined;
  const sec = (i: number): { name: number; off: number; size: number } => {
    const at = shoff + i * shentsize;
    return is64
      ? { name: elf.readUInt32LE(at), off: Number(elf.readBigUInt64LE(at + 0x18)), size: Number(elf.readBigUInt64LE(at + 0x20)) }
      : { name: elf.readUInt32LE(at), off: elf.readUInt32LE(at + 0x10), size: elf.readUInt32LE(at + 0x14) };
  };
  const strtab = sec(shstrndx);
  let name: string | undefined;
  let deps: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.off + s.size > elf.length || strtab.off + s.name >= elf.length) continue;
    const sname = cstr(elf.subarray(strtab.off + s.name, strtab.off + s.name + 64));
    const data = elf.subarray(s.off, s.off + s.size);
    if (sname === '.modname') name = cstr(data);
    else if (sname === '.moddeps') deps = data.toString('latin1').split('\0').filter(Boolean);
  }
  return name ? { name, deps } : undefined;
}

/** Paths (and small text files) of a ustar archive. */
function tarFiles(tar: Buffer): { paths: string[]; configs: Record<string, string> } {
  const paths: string[] = [];
  const configs: Record<string, string> = {};
  for (let at = 0; at + 512 <= tar.length;) {
    const h = tar.subarray(at, at + 512);
    if (h.every((x) => x === 0)) break;
    if (h.toString('latin1', 257, 262) !== 'ustar') break;
    const name = cstr(h.subarray(0, 100));
    const prefix = cstr(h.subarray(345, 500));
    const path = (prefix ? `${prefix}/${name}` : name).replace(/^\.?\/+/, '');
    const size = parseInt(cstr(h.subarray(124, 136)).trim() || '0', 8);
    const type = String.fromCharCode(h[156] || 0x30);
    if (type === '0' || type === '\0') {
      paths.push(path);
      if (/\.cfg$/.test(path) && size < 64 << 10) configs[path] = tar.toString('utf8', at + 512, at + 512 + size);
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return { paths, configs };
}

function parse(b: Buffer): GrubImage {
  need(b, 0, 64);
  if (b.toString('latin1', 0, 2) !== 'MZ') throw new NotGrub('not a PE image');
  const pe = b.readUInt32LE(0x3c);
  need(b, pe, 24);
  if (b.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new NotGrub('not a PE image');
  const machine = b.readUInt16LE(pe + 4);
  const nsec = b.readUInt16LE(pe + 6);
  const optSize = b.readUInt16LE(pe + 20);
  const opt = pe + 24;
  need(b, opt, optSize);
  const magic = b.readUInt16LE(opt);
  // the certificate table (data directory 4): an attached Authenticode signature
  const dirs = opt + (magic === 0x20b ? 112 : 96);
  const signed = optSize >= dirs - opt + 40 && b.readUInt32LE(dirs + 4 * 8 + 4) > 0;
  let mods: Buffer | undefined;
  let sbat = false;
  for (let i = 0; i < nsec; i++) {
    const s = opt + optSize + 40 * i;
    need(b, s, 40);
    const name = cstr(b.subarray(s, s + 8));
    const rawSize = b.readUInt32LE(s + 16);
    const rawPtr = b.readUInt32LE(s + 20);
    if (name === '.sbat') sbat = true;
    if (name === 'mods' || name === '.mods') {
      need(b, rawPtr, rawSize);
      mods = b.subarray(rawPtr, rawPtr + rawSize);
    }
  }
  // older images may put the module info elsewhere in a section: look for its magic
  if (!mods) {
    for (let at = b.indexOf('mimg', 0, 'latin1'); at >= 0; at = b.indexOf('mimg', at + 4, 'latin1')) {
      if (at % 4 === 0) { mods = b.subarray(at); break; }
    }
  }
  if (!mods || mods.length < 12 || mods.readUInt32LE(0) !== MIMG) throw new NotGrub('no GRUB module area (mods section)');
  const wide = machine !== 0x14c && machine !== 0x1c2 && machine !== 0x1c4 && machine !== 0x5032;
  const offset = wide ? Number(mods.readBigUInt64LE(8)) : mods.readUInt32LE(4);
  const size = wide ? Number(mods.readBigUInt64LE(16)) : mods.readUInt32LE(8);
  if (size > mods.length || offset > size) throw new NotGrub('module area size out of range');
  const out: GrubImage = { platform: MACHINES[machine] ?? `pe-machine-0x${machine.toString(16)}`, modules: [], signed, sbat };
  for (let p = offset; p + 8 <= size;) {
    const type = mods.readUInt32LE(p);
    const len = mods.readUInt32LE(p + 4);
    if (len < 8 || p + len > size) throw new NotGrub(`object at ${p} of ${len} bytes overruns the module area`);
    const data = mods.subarray(p + 8, p + len);
    if (type === OBJ.ELF) {
      const m = moduleOf(data);
      if (m) out.modules.push(m);
    } else if (type === OBJ.PREFIX) {
      out.prefix = cstr(data);
    } else if (type === OBJ.CONFIG) {
      out.config = cstr(data);
    } else if (type === OBJ.MEMDISK) {
      const t = tarFiles(data);
      out.memdisk = t.paths;
      out.memdiskConfigs = t.configs;
    }
    p += len;
  }
  return out;
}

/** Reads a GRUB EFI core image; undefined when the bytes are not one (another EFI program, shim). */
export function readGrubImage(bytes: Buffer): GrubImage | undefined {
  try {
    return parse(bytes);
  } catch (e) {
    if (e instanceof NotGrub || e instanceof RangeError) return undefined;
    throw e;
  }
}

/** Built-in modules nothing else built in depends on: the list a grub-mkimage command line names. */
export function topLevelModules(img: GrubImage): string[] {
  const deps = new Set(img.modules.flatMap((m) => m.deps));
  return img.modules.map((m) => m.name).filter((n) => !deps.has(n));
}

/** Buildroot's BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI default. */
export const BUILDROOT_GRUB_EFI_MODULES = ['boot', 'linux', 'ext2', 'fat', 'squash4', 'part_msdos', 'part_gpt', 'normal', 'efi_gop'] as const;

/** The commands otapack's GRUB logic may call, and the module each one lives in. */
export const GRUB_COMMAND_MODULES: Record<string, string> = {
  load_env: 'loadenv', save_env: 'loadenv', '[': 'test', test: 'test', echo: 'echo', configfile: 'configfile', source: 'configfile',
  reboot: 'reboot', linux: 'linux', initrd: 'linux', boot: 'boot', search: 'search', regexp: 'regexp', probe: 'probe',
};

/** Throws INPUT for an image whose module area is damaged in a way the reader cannot skip. */
export function requireGrubImage(bytes: Buffer, what: string): GrubImage {
  const img = readGrubImage(bytes);
  if (!img) throw new OtapackError('INPUT', `${what} is not a GRUB EFI core image (no module area)`);
  return img;
}
