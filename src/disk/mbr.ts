// The classic MBR ("dos" label): four primary entries in sector 0 plus the chain of extended boot
// records (EBRs) that holds logical partitions. Written by hand because it is 512 bytes of fixed
// layout and we must keep the boot code and everything around it byte for byte.
//
// Numbering follows Linux/libblkid: primaries are 1–4 by slot (an empty slot 1 leaves a gap),
// logical partitions are 5, 6, … in chain order.
import { OtapackError } from '../errors.js';

export const SECTOR = 512;
const TABLE_OFFSET = 446;
const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
/** Bounds the EBR walk so a looping or absurd chain cannot hang us. */
const MAX_LOGICAL = 256;

export interface MbrPartition {
  number: number;
  bootable: boolean;
  type: number;
  /** Absolute sector of the first sector. */
  startLba: number;
  sectors: number;
  logical: boolean;
}

export interface Mbr {
  /** Bytes 0..439, the boot code area, as found. */
  bootCode: Buffer;
  diskSignature: number;
  /** Exactly one used entry and it is 0xEE: a GPT disk's protective MBR. */
  protective: boolean;
  /** Some entry is 0xEE (protective or hybrid MBR): the disk claims to be GPT. */
  claimsGpt: boolean;
  /** Used entries (size ≠ 0), including the extended container, sorted by number. */
  partitions: MbrPartition[];
  warnings: string[];
}

export const isExtendedType = (type: number): boolean => EXTENDED_TYPES.has(type);
export const hasBootSignature = (sector: Buffer): boolean => sector.length >= 512 && sector[510] === 0x55 && sector[511] === 0xaa;

interface RawEntry { bootable: boolean; type: number; start: number; sectors: number }

function entry(sector: Buffer, slot: number): RawEntry {
  const o = TABLE_OFFSET + slot * 16;
  return { bootable: sector[o] === 0x80, type: sector[o + 4]!, start: sector.readUInt32LE(o + 8), sectors: sector.readUInt32LE(o + 12) };
}

/**
 * Parses sector 0 and, when `readAt` is given, the EBR chain of an extended partition.
 * Throws INPUT (without a file name; the caller adds it) when the sector is not an MBR or the
 * chain is broken.
 */
export async function parseMbr(sector0: Buffer, readAt?: (offset: number, len: number) => Promise<Buffer>): Promise<Mbr> {
  if (!hasBootSignature(sector0)) throw new OtapackError('INPUT', 'no partition table (sector 0 has no 0x55AA signature)', { reason: 'not-a-disk-image' });
  const warnings: string[] = [];
  const partitions: MbrPartition[] = [];
  const raw = [0, 1, 2, 3].map((slot) => entry(sector0, slot));
  // Like libblkid: a boot flag other than 0x00/0x80 means sector 0 is something else (a FAT boot
  // sector, a bare filesystem) that merely ends in 0x55AA.
  for (let slot = 0; slot < 4; slot++) {
    const flag = sector0[TABLE_OFFSET + slot * 16]!;
    if (flag !== 0 && flag !== 0x80) throw new OtapackError('INPUT', `no partition table (MBR entry ${slot + 1} has boot flag 0x${flag.toString(16)}; sector 0 is not an MBR)`, { reason: 'not-a-disk-image' });
  }
  raw.forEach((e, slot) => {
    if (e.sectors !== 0) partitions.push({ number: slot + 1, bootable: e.bootable, type: e.type, startLba: e.start, sectors: e.sectors, logical: false });
  });
  const used = raw.filter((e) => e.sectors !== 0);
  const claimsGpt = used.some((e) => e.type === 0xee);
  const extended = partitions.filter((p) => isExtendedType(p.type));
  if (extended.length > 1) throw new OtapackError('INPUT', `more than one extended partition (${extended.map((p) => p.number).join(', ')})`);
  if (extended[0] && !claimsGpt) {
    if (readAt) partitions.push(...(await walkEbrChain(extended[0], readAt, warnings)));
    else warnings.push('logical partitions were not read');
  }
  return {
    bootCode: Buffer.from(sector0.subarray(0, 440)),
    diskSignature: sector0.readUInt32LE(440),
    protective: used.length === 1 && used[0]!.type === 0xee,
    claimsGpt,
    partitions,
    warnings,
  };
}

/**
 * Each EBR holds one data entry (start relative to this EBR) and one link to the next EBR (start
 * relative to the extended partition). Like libblkid we stop at an EBR without 0x55AA.
 */
async function walkEbrChain(ext: MbrPartition, readAt: (offset: number, len: number) => Promise<Buffer>, warnings: string[]): Promise<MbrPartition[]> {
  const out: MbrPartition[] = [];
  const seen = new Set<number>();
  const extEnd = ext.startLba + ext.sectors;
  let ebr = ext.startLba;
  for (let hops = 0; ; hops++) {
    if (hops > MAX_LOGICAL) throw new OtapackError('INPUT', `extended partition ${ext.number}: more than ${MAX_LOGICAL} logical partitions (looping EBR chain?)`);
    if (seen.has(ebr)) throw new OtapackError('INPUT', `extended partition ${ext.number}: the EBR chain loops back to sector ${ebr}`);
    seen.add(ebr);
    const sector = await readAt(ebr * SECTOR, SECTOR);
    if (sector.length < SECTOR) throw new OtapackError('INPUT', `extended partition ${ext.number}: EBR at sector ${ebr} lies past the end of the image`);
    if (!hasBootSignature(sector)) {
      // An empty extended partition (no logicals yet) has a zeroed first EBR: nothing to report.
      if (ebr !== ext.startLba) warnings.push(`extended partition ${ext.number}: EBR at sector ${ebr} has no 0x55AA signature; the chain ends there`);
      break;
    }
    let next: number | undefined;
    let data: RawEntry | undefined;
    for (let i = 0; i < 4; i++) {
      const e = entry(sector, i);
      if (e.sectors === 0) continue;
      if (isExtendedType(e.type)) next ??= ext.startLba + e.start;
      // Entries 3 and 4 are often garbage; libfdisk and the kernel only trust the first two.
      else if (i < 2) data ??= e;
    }
    if (data) {
      out.push({ number: 5 + out.length, bootable: data.bootable, type: data.type, startLba: ebr + data.start, sectors: data.sectors, logical: true });
      const l = out[out.length - 1]!;
      if (l.startLba <= ebr || l.startLba + l.sectors > extEnd) {
        throw new OtapackError('INPUT', `partition ${l.number} (sectors ${l.startLba}–${l.startLba + l.sectors - 1}) lies outside its extended partition ${ext.number} (sectors ${ext.startLba}–${extEnd - 1})`);
      }
    }
    if (next === undefined) break;
    if (next <= ext.startLba || next >= extEnd) throw new OtapackError('INPUT', `extended partition ${ext.number}: EBR link to sector ${next} points outside the extended partition`);
    ebr = next;
  }
  return out;
}

/** CHS triple for an LBA the way libfdisk writes it: 255 heads, 63 sectors, clamped at cylinder 1023. */
function chs(lba: number): [number, number, number] {
  const H = 255;
  const S = 63;
  if (Math.floor(lba / (H * S)) > 1023) lba = H * S * 1024 - 1;
  const c = Math.floor(lba / (H * S));
  const h = Math.floor(lba / S) % H;
  const s = (lba % S) + 1;
  return [h, s | ((c >> 2) & 0xc0), c & 0xff];
}

export interface MbrEntryInput { bootable: boolean; type: number; startLba: number; sectors: number }

/** One 512-byte sector 0 with up to four primary partitions (logical partitions are not written). */
export function encodeMbr(t: { bootCode?: Buffer; diskSignature: number; partitions: MbrEntryInput[] }): Buffer {
  if (t.partitions.length > 4) throw new OtapackError('LIMIT', `an MBR holds at most 4 primary partitions (asked for ${t.partitions.length})`);
  const s = Buffer.alloc(SECTOR);
  if (t.bootCode) t.bootCode.copy(s, 0, 0, Math.min(440, t.bootCode.length));
  s.writeUInt32LE(t.diskSignature >>> 0, 440);
  t.partitions.forEach((p, i) => {
    const last = p.startLba + p.sectors - 1;
    if (p.startLba < 1 || p.sectors < 1 || last > 0xffffffff || !Number.isSafeInteger(last)) {
      throw new OtapackError('LIMIT', `partition ${i + 1} (sectors ${p.startLba}–${last}) cannot be expressed in an MBR (32-bit sectors, 2 TiB)`);
    }
    if (p.type < 1 || p.type > 0xff) throw new OtapackError('CONFIG', `partition ${i + 1}: MBR type 0x${p.type.toString(16)} is not a byte`);
    const o = TABLE_OFFSET + i * 16;
    s[o] = p.bootable ? 0x80 : 0;
    Buffer.from(chs(p.startLba)).copy(s, o + 1);
    s[o + 4] = p.type;
    Buffer.from(chs(last)).copy(s, o + 5);
    s.writeUInt32LE(p.startLba, o + 8);
    s.writeUInt32LE(p.sectors, o + 12);
  });
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}
