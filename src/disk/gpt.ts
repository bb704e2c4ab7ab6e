// GUID partition tables (UEFI spec §5.3): read with both CRC32s checked and a fall-back to the
// backup header, and write primary + backup with a protective MBR. Written here because convert
// must control every byte around the table (raw boot loaders live right after it).
import { crc32 } from 'node:zlib';
import { OtapackError } from '../errors.js';
import { guidToBytes, bytesToGuid } from './guid.js';
import { encodeMbr } from './mbr.js';

export interface GptPartition {
  number: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  lastLba: number;
  attributes: bigint;
  name: string;
}

export interface Gpt {
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: GptPartition[];
  warnings: string[];
}

const SIG = 'EFI PART';
const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

type Reader = (offset: number, length: number) => Promise<Buffer>;

interface Header { myLba: number; altLba: number; firstUsable: number; lastUsable: number; diskGuid: string; entriesLba: number; count: number; entrySize: number; entriesCrc: number }

function parseHeader(b: Buffer, where: string): Header | string {
  if (b.subarray(0, 8).toString('latin1') !== SIG) return `${where}: no "EFI PART" signature`;
  const size = b.readUInt32LE(12);
  if (size < 92 || size > 512) return `${where}: header size ${size} out of range`;
  const stored = b.readUInt32LE(16);
  const copy = Buffer.from(b.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) return `${where}: header CRC mismatch`;
  const count = b.readUInt32LE(80);
  const entrySize = b.readUInt32LE(84);
  if (entrySize < 128 || entrySize % 8 || entrySize > 4096 || count > 4096 || count * entrySize > 1 << 20) return `${where}: entry array ${count}×${entrySize} bytes is not plausible`;
  return {
    myLba: Number(b.readBigUInt64LE(24)), altLba: Number(b.readBigUInt64LE(32)),
    firstUsable: Number(b.readBigUInt64LE(40)), lastUsable: Number(b.readBigUInt64LE(48)),
    diskGuid: bytesToGuid(b.subarray(56, 72)), entriesLba: Number(b.readBigUInt64LE(72)),
    count, entrySize, entriesCrc: b.readUInt32LE(88),
  };
}

async function readTable(read: Reader, h: Header, imageSize: number, where: string): Promise<GptPartition[] | string> {
  const bytes = h.count * h.entrySize;
  if (h.entriesLba * 512 + bytes > imageSize) return `${where}: partition entries lie past the end of the image`;
  const arr = await read(h.entriesLba * 512, bytes);
  if (arr.length < bytes) return `${where}: partition entries truncated`;
  if (crc32(arr) !== h.entriesCrc) return `${where}: partition entries CRC mismatch`;
  const parts: GptPartition[] = [];
  for (let i = 0; i < h.count; i++) {
    const e = arr.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const typeGuid = bytesToGuid(e.subarray(0, 16));
    if (typeGuid === ZERO_GUID) continue;
    const nameRaw = e.subarray(56, 128).toString('utf16le');
    parts.push({
      number: i + 1, typeGuid, uniqueGuid: bytesToGuid(e.subarray(16, 32)),
      firstLba: Number(e.readBigUInt64LE(32)), lastLba: Number(e.readBigUInt64LE(40)),
      attributes: e.readBigUInt64LE(48), name: nameRaw.replace(/\0.*$/s, ''),
    });
  }
  return parts;
}

/** Reads the GPT of an image of `imageSize` bytes; throws an INPUT error naming the problem. */
export async function readGpt(read: Reader, imageSize: number, what: string): Promise<Gpt> {
  if (imageSize < 34 * 512 * 2) throw new OtapackError('INPUT', `${what}: too small to hold a GPT`);
  const lastLba = Math.floor(imageSize / 512) - 1;
  const warnings: string[] = [];
  const tryAt = async (lba: number, where: string): Promise<{ h: Header; parts: GptPartition[] } | string> => {
    const h = parseHeader(await read(lba * 512, 512), where);
    if (typeof h === 'string') return h;
    if (h.myLba !== lba) return `${where}: header claims to be at sector ${h.myLba}`;
    const parts = await readTable(read, h, imageSize, where);
    return typeof parts === 'string' ? parts : { h, parts };
  };
  const r = await tryAt(1, 'primary GPT');
  if (typeof r === 'string') {
    const primaryProblem = r;
    const alt = await tryAt(lastLba, 'backup GPT');
    if (typeof alt === 'string') {
      const big = await read(4096, 8);
      if (big.toString('latin1') === SIG) throw new OtapackError('INPUT', `${what}: GPT for 4096-byte sectors; otapack handles 512-byte-sector images`);
      throw new OtapackError('INPUT', `${what}: ${primaryProblem}, and ${alt}`);
    }
    // a converter must not guess on a damaged disk: name the problem and the way out
    throw new OtapackError('INPUT', `${what}: ${primaryProblem} (the backup GPT at the end of the image is intact; repair the image first, e.g. with gdisk's recovery menu, "use backup GPT header")`);
  } else {
    const alt = await tryAt(lastLba, 'backup GPT');
    if (typeof alt === 'string') warnings.push(`${alt} (the primary GPT is intact)`);
  }
  const { h, parts } = r;
  for (const p of parts) {
    if (p.lastLba < p.firstLba) throw new OtapackError('INPUT', `${what}: GPT partition ${p.number} ends (sector ${p.lastLba}) before it starts (${p.firstLba})`);
    if ((p.lastLba + 1) * 512 > imageSize) throw new OtapackError('INPUT', `${what}: GPT partition ${p.number} (sectors ${p.firstLba}-${p.lastLba}) extends past the end of the image (${Math.floor(imageSize / 512)} sectors)`);
  }
  return { diskGuid: h.diskGuid, firstUsableLba: h.firstUsable, lastUsableLba: h.lastUsable, partitions: parts, warnings };
}

export interface GptEntryInput { typeGuid: string; uniqueGuid: string; firstLba: number; lastLba: number; name?: string; attributes?: bigint }

export function encodeGpt(o: { diskGuid: string; partitions: GptEntryInput[]; diskSizeBytes: number; numEntries?: number; bootCode?: Buffer }): { primary: Buffer; backup: Buffer; backupOffset: number } {
  const count = o.numEntries ?? 128;
  const entrySize = 128;
  const entrySectors = Math.ceil((count * entrySize) / 512);
  const total = Math.floor(o.diskSizeBytes / 512);
  const lastLba = total - 1;
  const firstUsable = 2 + entrySectors;
  const lastUsable = lastLba - entrySectors - 1;
  if (o.partitions.length > count) throw new OtapackError('LIMIT', `${o.partitions.length} partitions exceed the ${count} GPT entries`);
  const entries = Buffer.alloc(entrySectors * 512);
  o.partitions.forEach((p, i) => {
    if (p.firstLba < firstUsable || p.lastLba > lastUsable) throw new OtapackError('INTERNAL', `GPT partition ${i + 1} (sectors ${p.firstLba}-${p.lastLba}) outside the usable area ${firstUsable}-${lastUsable}`);
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    guidToBytes(p.typeGuid).copy(e, 0);
    guidToBytes(p.uniqueGuid).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.firstLba), 32);
    e.writeBigUInt64LE(BigInt(p.lastLba), 40);
    e.writeBigUInt64LE(p.attributes ?? 0n, 48);
    Buffer.from((p.name ?? '').slice(0, 36), 'utf16le').copy(e, 56);
  });
  const entriesCrc = crc32(entries.subarray(0, count * entrySize));
  const header = (my: number, alt: number, entriesLba: number): Buffer => {
    const h = Buffer.alloc(512);
    h.write(SIG, 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(my), 24);
    h.writeBigUInt64LE(BigInt(alt), 32);
    h.writeBigUInt64LE(BigInt(firstUsable), 40);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    guidToBytes(o.diskGuid).copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(count, 80);
    h.writeUInt32LE(entrySize, 84);
    h.writeUInt32LE(entriesCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };
  const pmbr = encodeMbr({ bootCode: o.bootCode, diskSignature: 0, partitions: [{ bootable: false, type: 0xee, startLba: 1, sectors: Math.min(total - 1, 0xffffffff) }] });
  const primary = Buffer.concat([pmbr, header(1, lastLba, 2), entries]);
  const backup = Buffer.concat([entries, header(lastLba, 1, lastLba - entrySectors)]);
  return { primary, backup, backupOffset: (lastLba - entrySectors) * 512 };
}
