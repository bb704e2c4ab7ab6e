// Which commands a U-Boot build has, read from its binary: the command table U-Boot looks names up
// in at run time, so what is found here is exactly what a boot script can call.
//
// U-Boot keeps its commands in a linker list (`_u_boot_list_2_cmd_2_<name>`): a contiguous array
// of `struct cmd_tbl` { char *name; int maxargs; cmd_rep; cmd; usage; [help]; [complete] }, one
// entry per command, and subcommand tables (`env import`, `env export`, …) are arrays of the same
// struct. The binaries carry no symbols, and the pointers in them are link-time addresses
// (CONFIG_SYS_TEXT_BASE + offset; U-Boot relocates them itself at run time), so the reader:
//  1. finds the link base: every aligned word followed by a small `maxargs` votes for
//     `word - offset` of each well-known command name string (`bootm\0`, `setenv\0`, …); the base
//     the most different names agree on wins (a real table gives one vote per name, noise ~1);
//  2. finds the stride (which optional members the build has) and the longest run of valid
//     entries at that stride around the voting entries: the command list;
//  3. collects the other runs of valid entries at the same stride: the subcommand tables.
// Pointer width 8 (arm64, x86_64, riscv64) and 4 (arm, x86, riscv32) are both tried, little-endian.
// The input is any bytes holding the binary at any 4-byte-aligned offset: u-boot.bin, a legacy
// u-boot.img, a FIT (.itb, external or embedded data), u-boot-sunxi-with-spl.bin, the raw area
// before the first partition. A gzip-compressed image inside is inflated and read too.
//
// Written by hand: no tool lists a U-Boot binary's commands (the ELF Debian ships is stripped).
import { gunzipSync } from 'node:zlib';

/** One command table found in a binary. */
export interface UbootCommandTable {
  /** Pointer width in bytes: 8 (64-bit build) or 4. */
  width: 4 | 8;
  /** Bytes per entry (which optional struct members the build has). */
  stride: number;
  /** Link address of offset 0 of the searched bytes. */
  base: number;
  /** Offset of the command list's first entry in the searched bytes. */
  offset: number;
  /** Top-level command names, in table order. */
  commands: string[];
  /** Subcommand tables, each as the list of its names (e.g. env's: print, set, import, export …). */
  subtables: string[][];
  /** The search was done on gzip-inflated bytes found at this offset. */
  inflatedFrom?: number;
}

/** Command names that nearly every build has, used to find the link base. */
const ANCHORS = [
  'bootm', 'booti', 'bootz', 'bootd', 'bootefi', 'help', 'version', 'printenv', 'setenv', 'saveenv', 'source', 'fatload',
  'fatls', 'ext4load', 'ext4ls', 'echo', 'reset', 'itest', 'setexpr', 'fatwrite', 'sysboot', 'bdinfo', 'coninfo',
  'iminfo', 'sleep', 'crc32', 'false', 'true', 'load', 'test', 'part', 'mmc', 'usb', 'env', 'run', 'fdt',
];

const NAME_RE = /^[\x21-\x7e]{1,32}$/;
const MIN_VOTES = 4;
const MIN_COMMANDS = 8;

class View {
  constructor(readonly b: Buffer) {}
  u32(p: number): number { return this.b.readUInt32LE(p); }
  /** A 64-bit pointer as a number, or -1 when it cannot be an address in a boot loader (≥ 2^48). */
  u64(p: number): number {
    const hi = this.b.readUInt32LE(p + 4);
    return hi >= 0x10000 ? -1 : hi * 0x1_0000_0000 + this.b.readUInt32LE(p);
  }
  word(p: number, w: 4 | 8): number { return w === 8 ? this.u64(p) : this.u32(p); }
  /** The NUL-terminated string at `off`, when it looks like a command name. */
  name(off: number): string | undefined {
    if (off < 0 || off >= this.b.length) return undefined;
    const end = this.b.indexOf(0, off);
    if (end < 0 || end - off > 32 || end === off) return undefined;
    const s = this.b.toString('latin1', off, end);
    return NAME_RE.test(s) ? s : undefined;
  }
}

/** `maxargs` (an int right after the name pointer) is between 1 and 255; on 64-bit the next int is padding (0) or an old `repeatable` flag. */
function maxargsOk(v: View, p: number, w: 4 | 8): boolean {
  if (p + w + 8 > v.b.length) return false;
  const m = v.u32(p + w);
  if (m < 1 || m > 255) return false;
  return w === 4 || v.u32(p + 12) <= 1;
}

/**
 * Where `cmd` and `usage` sit: 64-bit builds since 2019 have a cmd_rep pointer after maxargs
 * (cmd at 24, usage at 32), older ones an int `repeatable` (cmd at 16, usage at 24); 32-bit
 * builds have cmd at 12 and usage at 16 either way.
 */
const LAYOUTS: Record<4 | 8, { cmd: number; usage: number }[]> = { 8: [{ cmd: 24, usage: 32 }, { cmd: 16, usage: 24 }], 4: [{ cmd: 12, usage: 16 }] };

/** A usage text: printable, at most 1 KiB; empty only where allowed (subcommands have "" usage). */
function textAt(v: View, off: number, empty: boolean): boolean {
  if (off <= 0 || off >= v.b.length) return false;
  const end = v.b.indexOf(0, off);
  if (end < 0 || (end === off && !empty) || end - off > 1024) return false;
  for (let i = off; i < end; i++) {
    const c = v.b[i]!;
    if (c < 0x20 ? c !== 0x09 && c !== 0x0a : c > 0x7e) return false;
  }
  return true;
}

/** The name of the cmd_tbl entry at `p`, when it is one: name, maxargs, a handler inside the binary, a usage text. */
function entryName(v: View, p: number, w: 4 | 8, base: number, emptyUsage = false): string | undefined {
  if (p < 0 || p + 40 > v.b.length || !maxargsOk(v, p, w)) return undefined;
  const ptr = v.word(p, w);
  if (ptr < 0) return undefined;
  const name = v.name(ptr - base);
  if (name === undefined) return undefined;
  for (const l of LAYOUTS[w]) {
    const cmd = v.word(p + l.cmd, w) - base;
    const usage = v.word(p + l.usage, w) - base;
    if (cmd > 0 && cmd < v.b.length && textAt(v, usage, emptyUsage)) return name;
  }
  return undefined;
}

/** Offsets of each anchor's string (followed by NUL), at most 8 per name. */
function anchorOffsets(b: Buffer): Map<number, string> {
  const out = new Map<number, string>();
  for (const a of ANCHORS) {
    const needle = Buffer.from(`${a}\0`, 'latin1');
    let n = 0;
    for (let at = b.indexOf(needle); at >= 0 && n < 8; at = b.indexOf(needle, at + 1), n++) out.set(at, a);
  }
  return out;
}

/** The link bases the most different anchor names vote for, best first. */
function voteBases(v: View, w: 4 | 8, anchors: Map<number, string>): { base: number; votes: number }[] {
  const offs = [...anchors.keys()];
  const names = new Map<number, Set<string>>();
  const end = v.b.length - (w + 8);
  const len = v.b.length;
  for (let p = 0; p <= end - 40; p += 4) {
    if (!maxargsOk(v, p, w)) continue;
    const ptr = v.word(p, w);
    if (ptr <= 0) continue;
    // the handler and the usage text lie in the same binary as the name: within its length of it
    const near = LAYOUTS[w].some((l) => {
      const cmd = v.word(p + l.cmd, w);
      const usage = v.word(p + l.usage, w);
      return cmd > 0 && usage > 0 && Math.abs(cmd - ptr) < len && Math.abs(usage - ptr) < len;
    });
    if (!near) continue;
    for (const o of offs) {
      const base = ptr - o;
      if (base < 0) continue;
      let s = names.get(base);
      if (!s) { s = new Set(); names.set(base, s); }
      s.add(anchors.get(o)!);
    }
  }
  return [...names].map(([base, s]) => ({ base, votes: s.size })).filter((c) => c.votes >= MIN_VOTES).sort((a, b) => b.votes - a.votes || a.base - b.base);
}

/** The run of valid entries at `stride` that contains `p`: its first offset and names. */
function runAround(v: View, p: number, w: 4 | 8, stride: number, base: number, emptyUsage = false): { start: number; names: string[] } {
  let start = p;
  while (entryName(v, start - stride, w, base, emptyUsage) !== undefined) start -= stride;
  const names: string[] = [];
  for (let q = start; ; q += stride) {
    const n = entryName(v, q, w, base, emptyUsage);
    if (n === undefined) break;
    names.push(n);
  }
  return { start, names };
}

const STRIDES: Record<4 | 8, number[]> = { 8: [40, 48, 56, 64], 4: [20, 24, 28, 32] };

function tableAt(v: View, w: 4 | 8, base: number): UbootCommandTable | undefined {
  // entries whose name is an anchor: the command list contains most of them
  const seeds: number[] = [];
  const anchorSet = new Set(ANCHORS);
  for (let p = 0; p + w + 8 <= v.b.length; p += 4) {
    const n = entryName(v, p, w, base);
    if (n !== undefined && anchorSet.has(n)) seeds.push(p);
  }
  let best: { stride: number; start: number; names: string[] } | undefined;
  for (const stride of STRIDES[w]) {
    const seen = new Set<number>();
    for (const s of seeds) {
      const r = runAround(v, s, w, stride, base);
      if (seen.has(r.start)) continue;
      seen.add(r.start);
      if (!best || r.names.length > best.names.length) best = { stride, ...r };
    }
  }
  if (!best || best.names.length < MIN_COMMANDS) return undefined;
  const { stride, start } = best;
  // other arrays of the same struct: subcommand tables (aligned like the command list)
  const subtables: string[][] = [];
  const mainEnd = start + best.names.length * stride;
  const align = w;
  for (let p = start % align; p + w + 8 <= v.b.length; p += align) {
    if (p >= start && p < mainEnd) { p = mainEnd - align; continue; }
    if (entryName(v, p, w, base, true) === undefined) continue;
    const r = runAround(v, p, w, stride, base, true);
    if (r.start !== p) continue;
    if (r.names.length >= 2) subtables.push(r.names);
    p += (r.names.length - 1) * stride;
  }
  return { width: w, stride, base, offset: start, commands: best.names, subtables };
}

function findIn(b: Buffer): UbootCommandTable | undefined {
  const v = new View(b);
  const anchors = anchorOffsets(b);
  if (anchors.size < MIN_VOTES) return undefined;
  let best: UbootCommandTable | undefined;
  for (const w of [8, 4] as const) {
    for (const c of voteBases(v, w, anchors).slice(0, 3)) {
      const t = tableAt(v, w, c.base);
      if (t && (!best || t.commands.length > best.commands.length)) best = t;
    }
  }
  return best;
}

/**
 * The command table of the U-Boot build in `bytes` (or undefined when there is none): u-boot.bin,
 * an image or FIT holding it, or a raw disk area. Looks into gzip streams when nothing is found
 * in the plain bytes.
 */
export function readUbootCommands(bytes: Buffer): UbootCommandTable | undefined {
  const plain = findIn(bytes);
  if (plain) return plain;
  const GZ = Buffer.from([0x1f, 0x8b, 0x08]);
  for (let at = bytes.indexOf(GZ); at >= 0; at = bytes.indexOf(GZ, at + 1)) {
    let inflated: Buffer;
    try {
      inflated = gunzipSync(bytes.subarray(at), { maxOutputLength: 64 << 20 });
    } catch {
      continue;
    }
    const t = findIn(inflated);
    if (t) return { ...t, inflatedFrom: at };
  }
  return undefined;
}

/** The names a subcommand table holds, for the command that owns it (env: print and set are always there). */
export function envSubcommands(t: UbootCommandTable): string[] | undefined {
  return t.subtables.find((s) => s.includes('print') && s.includes('set') && (s.includes('default') || s.includes('delete')));
}
