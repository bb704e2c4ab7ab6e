// GUID Partition Table (UEFI spec 2.10, chapter 5.3): a header at LBA 1 and a backup header at
// the last LBA, each pointing at its own copy of the entry array, all protected by CRC32.
// Written by hand because the checks (which copy to trust, and why) are the point, and because
// writing must leave every byte outside the table sectors untouched.
import { crc32 } from 'node:zlib';
import { OtapackError } from '../errors.js';
import { guidFromBytes, guidToBytes, ZERO_GUID } from './guid.js';
import { SECTOR } from './mbr.js';

const SIGNATURE = Buffer.from('EFI PART', 'latin1');
const REVISION = 0x00010000;
const HEADER_SIZE = 92;
const ENTRY_SIZE = 128;
/** Refuse entry arrays bigger than this: no real disk needs more, and it bounds memory. */
const MAX_ENTRY_BYTES = 1024 * 1024;

export interface GptHeader {
  revision: number;
  headerSize: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  numEntries: number;
  entrySize: number;
  entriesCrc: number;
}

export interface GptEntry {
  /** 1-based slot number, as Linux numbers the partition. */
  index: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  lastLba: number;
  attributes: bigint;
  name: string;
}

export interface Gpt {
  header: GptHeader;
  /** Used entries (type GUID not zero), in slot order. */
  entries: GptEntry[];
  /** The primary copy was bad and the backup was used. */
  usedBackup: boolean;
  /** Why the primary was not used, when the backup was. */
  primaryProblem?: string;
  warnings: string[];
}

type ReadAt = (offset: number, len: number) => Promise<Buffer>;

const u64 = (b: Buffer, o: number): number => Number(b.readBigUInt64LE(o));

/** Parses and checks one header sector read from `lba`; throws a reason on any problem. */
export function parseGptHeader(sector: Buffer, lba: number, totalSectors: number): GptHeader {
  if (sector.length < SECTOR || !sector.subarray(0, 8).equals(SIGNATURE)) throw new OtapackError('INPUT', 'no "EFI PART" signature');
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < HEADER_SIZE || headerSize > SECTOR) throw new OtapackError('INPUT', `header size ${headerSize} is invalid`);
  const copy = Buffer.from(sector.subarray(0, headerSize));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) throw new OtapackError('INPUT', 'header CRC mismatch');
  const h: GptHeader = {
    revision: sector.readUInt32LE(8),
    headerSize,
    myLba: u64(sector, 24),
    alternateLba: u64(sector, 32),
    firstUsableLba: u64(sector, 40),
    lastUsableLba: u64(sector, 48),
    diskGuid: guidFromBytes(sector, 56),
    entriesLba: u64(sector, 72),
    numEntries: sector.readUInt32LE(80),
    entrySize: sector.readUInt32LE(84),
    entriesCrc: sector.readUInt32LE(88),
  };
  if (h.myLba !== lba) throw new OtapackError('INPUT', `header says it is at LBA ${h.myLba}, found at LBA ${lba}`);
  // UEFI: entry size is 128 × 2^n.
  if (h.entrySize < ENTRY_SIZE || (h.entrySize & (h.entrySize - 1)) !== 0) throw new OtapackError('INPUT', `entry size ${h.entrySize} is invalid`);
  if (h.numEntries * h.entrySize > MAX_ENTRY_BYTES) throw new OtapackError('INPUT', `entry array of ${h.numEntries} × ${h.entrySize} bytes is unreasonably large`);
  if (h.firstUsableLba > h.lastUsableLba + 1) throw new OtapackError('INPUT', `usable range ${h.firstUsableLba}–${h.lastUsableLba} is empty`);
  const entrySectors = Math.ceil((h.numEntries * h.entrySize) / SECTOR);
  if (h.entriesLba < 2 || h.entriesLba + entrySectors > totalSectors) throw new OtapackError('INPUT', `entry array at LBA ${h.entriesLba} lies outside the image`);
  return h;
}

function parseEntries(buf: Buffer, h: GptHeader): GptEntry[] {
  const out: GptEntry[] = [];
  for (let i = 0; i < h.numEntries; i++) {
    const o = i * h.entrySize;
    const typeGuid = guidFromBytes(buf, o);
    if (typeGuid === ZERO_GUID) continue;
    const name = buf.subarray(o + 56, o + 128).toString('utf16le');
    const nul = name.indexOf('\0');
    out.push({
      index: i + 1,
      typeGuid,
      uniqueGuid: guidFromBytes(buf, o + 16),
      firstLba: u64(buf, o + 32),
      lastLba: u64(buf, o + 40),
      attributes: buf.readBigUInt64LE(o + 48),
      name: nul >= 0 ? name.slice(0, nul) : name,
    });
  }
  return out;
}

/** Reads and checks one copy (header at `lba` plus its entries). */
async function readCopy(readAt: ReadAt, lba: number, totalSectors: number): Promise<{ header: GptHeader; entries: GptEntry[] }> {
  const header = parseGptHeader(await readAt(lba * SECTOR, SECTOR), lba, totalSectors);
  const raw = await readAt(header.entriesLba * SECTOR, header.numEntries * header.entrySize);
  if (crc32(raw) !== header.entriesCrc) throw new OtapackError('INPUT', 'partition entries CRC mismatch');
  return { header, entries: parseEntries(raw, header) };
}

const reason = (e: unknown): string => (e instanceof OtapackError ? e.detail : e instanceof Error ? e.message : String(e));

/**
 * Finds a valid GPT: the primary at LBA 1, else the backup (at the primary's alternate LBA if its
 * header survived, else at the last LBA), as UEFI firmware and libfdisk do. Using the backup, or
 * a damaged or misplaced backup, is reported as a warning. Throws INPUT when neither copy is valid.
 */
export async function readGpt(readAt: ReadAt, imageSize: number): Promise<Gpt> {
  const totalSectors = Math.floor(imageSize / SECTOR);
  const lastLba = totalSectors - 1;
  const warnings: string[] = [];
  let primaryError: string;
  try {
    const p = await readCopy(readAt, 1, totalSectors);
    await checkBackup(readAt, p.header, totalSectors, warnings);
    return { ...p, usedBackup: false, warnings };
  } catch (e) {
    primaryError = reason(e);
  }
  if (imageSize >= 4096 * 3) {
    const lba1of4k = await readAt(4096, 8);
    if (lba1of4k.equals(SIGNATURE)) throw new OtapackError('INPUT', 'the GPT is laid out for 4096-byte sectors; only 512-byte sectors are supported', { reason: 'sector-size-4096', expected: '512-byte sectors', actual: '4096-byte sectors' });
  }
  // A primary whose header is sound but whose entries are not still says where its backup is.
  const candidates = new Set<number>();
  try {
    const h = parseGptHeader(await readAt(SECTOR, SECTOR), 1, totalSectors);
    if (h.alternateLba > 1 && h.alternateLba <= lastLba) candidates.add(h.alternateLba);
  } catch { /* header unusable too: only the last LBA is left */ }
  candidates.add(lastLba);
  const backupErrors: string[] = [];
  for (const lba of candidates) {
    try {
      const b = await readCopy(readAt, lba, totalSectors);
      if (b.header.alternateLba !== 1) throw new OtapackError('INPUT', `backup header points at LBA ${b.header.alternateLba} for the primary, not 1`);
      warnings.push(`primary GPT is corrupt (${primaryError}); using the backup GPT at LBA ${lba}`);
      return { ...b, usedBackup: true, primaryProblem: primaryError, warnings };
    } catch (e) {
      backupErrors.push(`LBA ${lba}: ${reason(e)}`);
    }
  }
  throw new OtapackError('INPUT', `no valid GPT: primary (LBA 1): ${primaryError}; backup ${backupErrors.join('; ')}`, { reason: 'corrupt-partition-table' });
}

async function checkBackup(readAt: ReadAt, primary: GptHeader, totalSectors: number, warnings: string[]): Promise<void> {
  const lastLba = totalSectors - 1;
  if (primary.alternateLba > lastLba) {
    warnings.push(`the GPT expects a backup at LBA ${primary.alternateLba} but the image ends at LBA ${lastLba} (image truncated or shrunk)`);
    return;
  }
  if (primary.alternateLba !== lastLba) warnings.push(`the backup GPT is at LBA ${primary.alternateLba}, not at the end of the image (LBA ${lastLba})`);
  try {
    const b = await readCopy(readAt, primary.alternateLba, totalSectors);
    if (b.header.diskGuid !== primary.diskGuid) throw new OtapackError('INPUT', 'disk GUID differs from the primary');
    if (b.header.entriesCrc !== primary.entriesCrc) throw new OtapackError('INPUT', 'partition entries differ from the primary');
  } catch (e) {
    warnings.push(`the backup GPT at LBA ${primary.alternateLba} is corrupt (${reason(e)}); the primary is used`);
  }
}

export interface GptPartitionInput {
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  lastLba: number;
  name: string;
  attributes?: bigint;
}

export interface EncodedGpt {
  /** LBA 0 (protective MBR), LBA 1 (header) and, at the default LBA 2, the entry array: write at offset 0. */
  primary: Buffer;
  /** With a moved entry array (entriesLba > 2): the primary entry array and where it goes. */
  entries?: { data: Buffer; offset: number };
  /** The backup entry array followed by the backup header: write at `backupOffset`. */
  backup: Buffer;
  backupOffset: number;
}

/** Geometry of a fresh GPT with `numEntries` 128-byte entries on a disk of `diskSizeBytes`. */
export function gptLayout(diskSizeBytes: number, numEntries = 128): { entrySectors: number; firstUsableLba: number; lastUsableLba: number; lastLba: number } {
  const entrySectors = Math.ceil((numEntries * ENTRY_SIZE) / SECTOR);
  const lastLba = Math.floor(diskSizeBytes / SECTOR) - 1;
  return { entrySectors, firstUsableLba: 2 + entrySectors, lastUsableLba: lastLba - 1 - entrySectors, lastLba };
}

/** Protective MBR as libfdisk writes it: one 0xEE entry from LBA 1 covering the disk (capped). */
function protectiveMbr(totalSectors: number): Buffer {
  const s = Buffer.alloc(SECTOR);
  const o = 446;
  Buffer.from([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff]).copy(s, o);
  s.writeUInt32LE(1, o + 8);
  s.writeUInt32LE(Math.min(totalSectors - 1, 0xffffffff), o + 12);
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}

function header(h: Omit<GptHeader, 'revision' | 'headerSize'>): Buffer {
  const s = Buffer.alloc(SECTOR);
  SIGNATURE.copy(s, 0);
  s.writeUInt32LE(REVISION, 8);
  s.writeUInt32LE(HEADER_SIZE, 12);
  s.writeBigUInt64LE(BigInt(h.myLba), 24);
  s.writeBigUInt64LE(BigInt(h.alternateLba), 32);
  s.writeBigUInt64LE(BigInt(h.firstUsableLba), 40);
  s.writeBigUInt64LE(BigInt(h.lastUsableLba), 48);
  guidToBytes(h.diskGuid).copy(s, 56);
  s.writeBigUInt64LE(BigInt(h.entriesLba), 72);
  s.writeUInt32LE(h.numEntries, 80);
  s.writeUInt32LE(h.entrySize, 84);
  s.writeUInt32LE(h.entriesCrc, 88);
  s.writeUInt32LE(crc32(s.subarray(0, HEADER_SIZE)), 16);
  return s;
}

/** Builds both copies of a GPT (partitions go into slots 1, 2, … in the order given). */
export function encodeGpt(t: { diskGuid: string; partitions: GptPartitionInput[]; diskSizeBytes: number; numEntries?: number; entriesLba?: number }): EncodedGpt {
  const numEntries = t.numEntries ?? 128;
  // `sgdisk -j`: boards whose boot ROM reads sector 16 (Allwinner) need the entry array moved
  const entriesLba = t.entriesLba ?? 2;
  if (numEntries < 128 || numEntries * ENTRY_SIZE > MAX_ENTRY_BYTES) throw new OtapackError('LIMIT', `GPT entry count ${numEntries} must be between 128 and ${MAX_ENTRY_BYTES / ENTRY_SIZE}`);
  if (t.partitions.length > numEntries) throw new OtapackError('LIMIT', `a GPT with ${numEntries} entries cannot hold ${t.partitions.length} partitions`);
  const L = gptLayout(t.diskSizeBytes, numEntries);
  if (entriesLba < 2) throw new OtapackError('LIMIT', `GPT entry array LBA ${entriesLba} must be at least 2`);
  L.firstUsableLba = Math.max(L.firstUsableLba, entriesLba + L.entrySectors);
  if (L.lastUsableLba < L.firstUsableLba) throw new OtapackError('LIMIT', `a ${t.diskSizeBytes}-byte disk is too small for a GPT`);
  const entries = Buffer.alloc(L.entrySectors * SECTOR);
  t.partitions.forEach((p, i) => {
    if (p.firstLba < L.firstUsableLba || p.lastLba > L.lastUsableLba || p.lastLba < p.firstLba) {
      throw new OtapackError('LIMIT', `partition ${i + 1} (sectors ${p.firstLba}–${p.lastLba}) does not fit the GPT usable range ${L.firstUsableLba}–${L.lastUsableLba}`);
    }
    const name = Buffer.from(p.name, 'utf16le');
    if (name.length > 72) throw new OtapackError('LIMIT', `partition ${i + 1}: GPT names hold 36 UTF-16 units ("${p.name}" is too long)`);
    const o = i * ENTRY_SIZE;
    guidToBytes(p.typeGuid).copy(entries, o);
    guidToBytes(p.uniqueGuid).copy(entries, o + 16);
    entries.writeBigUInt64LE(BigInt(p.firstLba), o + 32);
    entries.writeBigUInt64LE(BigInt(p.lastLba), o + 40);
    entries.writeBigUInt64LE(p.attributes ?? 0n, o + 48);
    name.copy(entries, o + 56);
  });
  const entriesCrc = crc32(entries.subarray(0, numEntries * ENTRY_SIZE));
  const common = { firstUsableLba: L.firstUsableLba, lastUsableLba: L.lastUsableLba, diskGuid: t.diskGuid, numEntries, entrySize: ENTRY_SIZE, entriesCrc };
  const backupEntriesLba = L.lastLba - L.entrySectors;
  const primaryHeader = header({ ...common, myLba: 1, alternateLba: L.lastLba, entriesLba });
  const backupHeader = header({ ...common, myLba: L.lastLba, alternateLba: 1, entriesLba: backupEntriesLba });
  if (entriesLba !== 2) {
    return {
      primary: Buffer.concat([protectiveMbr(L.lastLba + 1), primaryHeader]),
      entries: { data: entries, offset: entriesLba * SECTOR },
      backup: Buffer.concat([entries, backupHeader]),
      backupOffset: backupEntriesLba * SECTOR,
    };
  }
  return {
    primary: Buffer.concat([protectiveMbr(L.lastLba + 1), primaryHeader, entries]),
    backup: Buffer.concat([entries, backupHeader]),
    backupOffset: backupEntriesLba * SECTOR,
  };
}
