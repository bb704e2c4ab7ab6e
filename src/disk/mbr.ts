// MBR (DOS) partition tables: read (primaries, the EBR chain of logical partitions, protective
// MBR detection) and write (up to four primaries). Written here because it is 512 bytes of fixed
// structure and convert must keep the boot code bytes and everything around the table intact.
import { OtapackError } from '../errors.js';

export interface MbrPartition {
  number: number;
  bootable: boolean;
  type: number;
  startLba: number;
  sectors: number;
  logical: boolean;
}

export interface Mbr {
  diskSignature: number;
  partitions: MbrPartition[];
  protective: boolean;
}

const EXTENDED = new Set([0x05, 0x0f, 0x85]);
export const isExtendedType = (t: number): boolean => EXTENDED.has(t);

export const hasMbrSignature = (s0: Uint8Array): boolean => s0.length >= 512 && s0[510] === 0x55 && s0[511] === 0xaa;

function entry(b: Buffer, i: number): { status: number; type: number; start: number; sectors: number } {
  const o = 446 + i * 16;
  return { status: b[o]!, type: b[o + 4]!, start: b.readUInt32LE(o + 8), sectors: b.readUInt32LE(o + 12) };
}

/** Parses sector 0; `readAt` reads the extended boot records of logical partitions. */
export async function parseMbr(sector0: Buffer, readAt?: (offset: number, length: number) => Promise<Buffer>, what = 'image'): Promise<Mbr> {
  if (!hasMbrSignature(sector0)) throw new OtapackError('INPUT', `${what}: no partition table (no 55AA signature in sector 0)`);
  const partitions: MbrPartition[] = [];
  let protective = false;
  for (let i = 0; i < 4; i++) {
    const e = entry(sector0, i);
    if (e.type === 0 || e.sectors === 0) continue;
    if (e.status !== 0 && e.status !== 0x80) throw new OtapackError('INPUT', `${what}: MBR entry ${i + 1} has an invalid status byte 0x${e.status.toString(16)}`);
    if (e.type === 0xee) protective = true;
    partitions.push({ number: i + 1, bootable: e.status === 0x80, type: e.type, startLba: e.start, sectors: e.sectors, logical: false });
  }
  const ext = partitions.find((p) => isExtendedType(p.type));
  if (ext && readAt) {
    let next = 0;
    let n = 5;
    const seen = new Set<number>();
    for (let guard = 0; guard < 128; guard++) {
      const lba = ext.startLba + next;
      if (seen.has(lba)) throw new OtapackError('INPUT', `${what}: the chain of logical partitions loops`);
      seen.add(lba);
      const ebr = await readAt(lba * 512, 512);
      if (!hasMbrSignature(ebr)) throw new OtapackError('INPUT', `${what}: extended boot record at sector ${lba} is invalid`);
      const l = entry(ebr, 0);
      if (l.type !== 0 && l.sectors !== 0) {
        partitions.push({ number: n++, bootable: l.status === 0x80, type: l.type, startLba: lba + l.start, sectors: l.sectors, logical: true });
      }
      const link = entry(ebr, 1);
      if (!isExtendedType(link.type) || link.sectors === 0) break;
      next = link.start;
    }
  }
  return { diskSignature: sector0.readUInt32LE(440), partitions, protective: protective && partitions.length === 1 };
}

function chs(lba: number): [number, number, number] {
  const heads = 255;
  const spt = 63;
  const c = Math.floor(lba / (heads * spt));
  if (c > 1023) return [0xfe, 0xff, 0xff];
  const h = Math.floor(lba / spt) % heads;
  const s = (lba % spt) + 1;
  return [h, ((c >> 2) & 0xc0) | s, c & 0xff];
}

export interface MbrEntryInput { bootable: boolean; type: number; startLba: number; sectors: number }

export function encodeMbr(o: { bootCode?: Buffer; diskSignature: number; partitions: MbrEntryInput[] }): Buffer {
  if (o.partitions.length > 4) throw new OtapackError('LIMIT', `an MBR holds 4 primary partitions, ${o.partitions.length} were asked for; use GPT`);
  const b = Buffer.alloc(512);
  if (o.bootCode) o.bootCode.copy(b, 0, 0, Math.min(440, o.bootCode.length));
  b.writeUInt32LE(o.diskSignature >>> 0, 440);
  o.partitions.forEach((p, i) => {
    if (p.startLba > 0xffffffff || p.sectors > 0xffffffff) throw new OtapackError('LIMIT', `partition ${i + 1} lies beyond the 2 TiB an MBR can address; use GPT`);
    const off = 446 + i * 16;
    b[off] = p.bootable ? 0x80 : 0;
    Buffer.from(chs(p.startLba)).copy(b, off + 1);
    b[off + 4] = p.type;
    Buffer.from(chs(p.startLba + p.sectors - 1)).copy(b, off + 5);
    b.writeUInt32LE(p.startLba, off + 8);
    b.writeUInt32LE(p.sectors, off + 12);
  });
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}
