// The one partition-table interface the rest of otapack uses: read an MBR or GPT disk image into
// plain data (byte offsets, normalised types, Linux-style PARTUUIDs), refusing anything a
// converter should not touch, and write a new table without disturbing the bytes around it.
import { type FileHandle } from 'node:fs/promises';
import { OtapackError, fileError } from '../errors.js';
import { parseMbr, encodeMbr, isExtendedType, SECTOR, type MbrPartition } from './mbr.js';
import { readGpt, encodeGpt, type Gpt } from './gpt.js';
import { guidFromSeed, isGuid } from './guid.js';
import { readFully, writeAll, openInput } from '../util/io.js';

/** Type codes the converter writes, by role. */
export const MBR_TYPES = { linux: '0x83', fat32lba: '0x0c', efi: '0xef' } as const;
export const GPT_TYPES = { linux: '0fc63daf-8483-4772-8e79-3d69d8477de4', basicData: 'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7', efi: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b' } as const;

const nameOf = (type: string): string => (type.startsWith('0x') ? mbrTypeName(parseInt(type, 16)) : gptTypeName(type));
/** Partition types that can hold a Linux root filesystem. */
export const isLinuxType = (type: string): boolean => /^linux(-root|-home|-xbootldr)?$/.test(nameOf(type));
export const isFatType = (type: string): boolean => nameOf(type) === 'fat';
export const isEspType = (type: string): boolean => nameOf(type) === 'efi';

export interface Partition {
  number: number;
  /** Bytes from the start of the image. */
  start: number;
  /** Bytes. */
  size: number;
  kind: 'mbr' | 'gpt';
  /** MBR: '0x83' (two lower-case hex digits); GPT: lower-case type GUID. */
  type: string;
  typeName: string;
  /** GPT partition name. */
  name?: string;
  /** MBR: "<disk signature, 8 hex>-<number, 2 hex>" as blkid prints it; GPT: the unique GUID. */
  partuuid: string;
  /** MBR boot flag (0x80); GPT: the LegacyBIOSBootable attribute. */
  bootable: boolean;
  /** GPT attributes in sfdisk's spelling ("RequiredPartition LegacyBIOSBootable GUID:60,63"). */
  attributes?: string;
}

export interface PartitionTable {
  kind: 'mbr' | 'gpt';
  sectorSize: 512;
  /** MBR: disk signature as 8 lower-case hex digits; GPT: lower-case disk GUID. */
  diskId: string;
  partitions: Partition[];
  imageSize: number;
  /** Bytes at the start owned by the table itself (MBR: sector 0; GPT: sector 0 to the end of the entry array). */
  headBytes: number;
  /** Bytes at the end owned by the table (the backup GPT when it sits at the end; else 0). */
  tailBytes: number;
  /** GPT: the primary copy was damaged and the backup was read instead. */
  usedBackupGpt?: boolean;
  /** Why the primary GPT was unusable, when the backup was used. */
  primaryGptProblem?: string;
  /** GPT: first sector of the primary entry array (2 normally; more after `sgdisk -j`). */
  gptEntriesLba?: number;
  warnings: string[];
}

export interface NewPartition {
  /** Bytes, a multiple of 512. */
  start: number;
  /** Bytes, a multiple of 512. */
  size: number;
  /** '0x83' / '83' (MBR), a GUID (GPT), or a type name from the table below ('linux', 'efi', …). */
  type: string;
  name?: string;
  bootable?: boolean;
  /** GPT unique GUID (default: derived from the disk id and the partition number). */
  uuid?: string;
  /** GPT attributes in the spelling `Partition.attributes` uses. */
  attributes?: string;
}

// Type names: the first entry for a name is the one written when a caller asks for that name.
const MBR_TYPE_NAMES: [number, string][] = [
  [0x83, 'linux'], [0x0c, 'fat'], [0x0b, 'fat'], [0x0e, 'fat'], [0x06, 'fat'], [0x04, 'fat'], [0x01, 'fat'],
  [0xef, 'efi'], [0x82, 'linux-swap'], [0x8e, 'linux-lvm'], [0xfd, 'linux-raid'],
  [0x05, 'extended'], [0x0f, 'extended'], [0x85, 'extended'], [0xee, 'gpt-protective'],
];
const GPT_TYPE_NAMES: [string, string][] = [
  ['0fc63daf-8483-4772-8e79-3d69d8477de4', 'linux'],
  ['c12a7328-f81f-11d2-ba4b-00a0c93ec93b', 'efi'],
  ['ebd0a0a2-b9e5-4433-87c0-68b6b72699c7', 'fat'], // Microsoft basic data, what FAT partitions carry
  ['21686148-6449-6e6f-744e-656564454649', 'bios-boot'],
  ['0657fd6d-a4ab-43c4-84e5-0933c84b4f4f', 'linux-swap'],
  ['e6d6d379-f507-44c2-a23c-238f2a3df928', 'linux-lvm'],
  ['a19d880f-05fc-4d3b-a006-743f0f84911e', 'linux-raid'],
  ['bc13c2ff-59e6-4262-a352-b275fd6f7172', 'linux-xbootldr'],
  ['933ac7e1-2eb4-4f13-b844-0e14e2aef915', 'linux-home'],
  // Discoverable-partitions root types (x86, x86-64, arm, arm64, riscv64).
  ['4f68bce3-e8cd-4db1-96e7-fbcaf984b709', 'linux-root'],
  ['44479540-f297-41b2-9af7-d131d5f0458a', 'linux-root'],
  ['69dad710-2ce4-4e3c-b16c-21a1d49abed3', 'linux-root'],
  ['b921b045-1df0-41c3-af44-4c6f280d3fae', 'linux-root'],
  ['72ec70a6-cf74-40e6-bd49-4bda08e8f224', 'linux-root'],
];

export const mbrTypeName = (type: number): string => MBR_TYPE_NAMES.find(([t]) => t === type)?.[1] ?? 'unknown';
export const gptTypeName = (guid: string): string => GPT_TYPE_NAMES.find(([g]) => g === guid.toLowerCase())?.[1] ?? 'unknown';
const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

// GPT attribute bits with names, as sfdisk prints and parses them; bits 48–63 are "GUID:n,…".
const ATTR_NAMES: [number, string][] = [[0, 'RequiredPartition'], [1, 'NoBlockIOProtocol'], [2, 'LegacyBIOSBootable']];
const LEGACY_BOOTABLE = 1n << 2n;

export function formatGptAttributes(a: bigint): string | undefined {
  if (a === 0n) return undefined;
  const words = ATTR_NAMES.filter(([bit]) => (a >> BigInt(bit)) & 1n).map(([, n]) => n);
  const guidBits = [];
  for (let bit = 48; bit < 64; bit++) if ((a >> BigInt(bit)) & 1n) guidBits.push(bit);
  if (guidBits.length) words.push(`GUID:${guidBits.join(',')}`);
  // Bits 3–47 have no name in sfdisk; keep them as a hex word so nothing is lost.
  const other = a & 0x0000fffffffffff8n;
  if (other) words.push(`0x${other.toString(16).padStart(16, '0')}`);
  return words.join(' ');
}

export function parseGptAttributes(text: string | undefined): bigint {
  let a = 0n;
  for (const w of (text ?? '').trim().split(/\s+/).filter(Boolean)) {
    const named = ATTR_NAMES.find(([, n]) => n === w);
    if (named) a |= 1n << BigInt(named[0]);
    else if (/^GUID:\d+(,\d+)*$/.test(w)) {
      for (const bit of w.slice(5).split(',').map(Number)) {
        if (bit < 48 || bit > 63) throw new OtapackError('CONFIG', `GPT attribute GUID:${bit}: only bits 48–63 are type-specific`);
        a |= 1n << BigInt(bit);
      }
    } else if (/^0x[0-9a-f]{1,16}$/i.test(w)) a |= BigInt(w);
    else throw new OtapackError('CONFIG', `GPT attribute "${w}" is not RequiredPartition, NoBlockIOProtocol, LegacyBIOSBootable, GUID:n or 0x…`);
  }
  return a;
}

/** Reads and checks the partition table of a disk image. Refuses with one INPUT line naming the file. */
export async function readPartitionTable(path: string): Promise<PartitionTable> {
  const fh = await openInput(path);
  try {
    return await readTable(fh);
  } catch (e) {
    if (e instanceof OtapackError) throw e.path === undefined ? e.withPath(path) : e;
    throw fileError('INPUT', path, e);
  } finally {
    await fh.close();
  }
}

async function readTable(fh: FileHandle): Promise<PartitionTable> {
  const imageSize = (await fh.stat()).size;
  const notImage = { reason: 'not-a-disk-image', actual: `${imageSize} bytes` };
  if (imageSize === 0) throw new OtapackError('INPUT', 'empty file (0 bytes), not a disk image', notImage);
  if (imageSize < SECTOR) throw new OtapackError('INPUT', `truncated: ${imageSize} bytes is less than one 512-byte sector`, notImage);
  if (imageSize % SECTOR !== 0) throw new OtapackError('INPUT', `size ${imageSize} bytes is not a whole number of 512-byte sectors (truncated or padded image?)`, { ...notImage, expected: 'a multiple of 512 bytes' });
  const readAt = (offset: number, len: number): Promise<Buffer> => readFully(fh, offset, len);
  const mbr = await parseMbr(await readAt(0, SECTOR), readAt);
  const totalSectors = imageSize / SECTOR;
  const warnings = [...mbr.warnings];
  let t: PartitionTable;
  if (mbr.claimsGpt) {
    let gpt: Gpt;
    try {
      gpt = await readGpt(readAt, imageSize);
    } catch (e) {
      if (e instanceof OtapackError && e.reason === 'sector-size-4096') throw e;
      throw new OtapackError('INPUT', `${mbr.protective ? 'protective' : 'hybrid'} MBR (type 0xEE) without a valid GPT: ${e instanceof OtapackError ? e.detail : (e as Error).message}`, { reason: 'corrupt-partition-table', cause: e });
    }
    if (!mbr.protective) warnings.push('hybrid MBR (0xEE next to other MBR partitions): the GPT is used, the MBR entries are ignored');
    warnings.push(...gpt.warnings);
    t = fromGpt(gpt, imageSize, warnings);
    if (gpt.usedBackup) {
      t.usedBackupGpt = true;
      t.primaryGptProblem = gpt.primaryProblem;
    }
  } else {
    t = fromMbr(mbr.diskSignature, mbr.partitions, imageSize, warnings);
  }
  checkRanges(t, totalSectors);
  return t;
}

function fromMbr(signature: number, parts: MbrPartition[], imageSize: number, warnings: string[]): PartitionTable {
  const sig = signature.toString(16).padStart(8, '0');
  return {
    kind: 'mbr',
    sectorSize: 512,
    diskId: sig,
    partitions: parts.map((p) => ({
      number: p.number,
      start: p.startLba * SECTOR,
      size: p.sectors * SECTOR,
      kind: 'mbr' as const,
      type: `0x${hex2(p.type)}`,
      typeName: mbrTypeName(p.type),
      partuuid: `${sig}-${hex2(p.number)}`,
      bootable: p.bootable,
    })),
    imageSize,
    headBytes: SECTOR,
    tailBytes: 0,
    warnings,
  };
}

function fromGpt(gpt: Gpt, imageSize: number, warnings: string[]): PartitionTable {
  const h = gpt.header;
  const entrySectors = Math.ceil((h.numEntries * h.entrySize) / SECTOR);
  for (const e of gpt.entries) {
    const where = `partition ${e.index} (sectors ${e.firstLba}–${e.lastLba})`;
    if (e.lastLba < e.firstLba) throw new OtapackError('INPUT', `${where} ends before it starts`);
    if (e.firstLba < h.firstUsableLba || e.lastLba > h.lastUsableLba) {
      throw new OtapackError('INPUT', `${where} lies outside the GPT usable range ${h.firstUsableLba}–${h.lastUsableLba}`);
    }
  }
  // The backup sits at the last LBA (or the header claims so): its sectors belong to the table.
  const backupAtEnd = (gpt.usedBackup ? h.myLba : h.alternateLba) === imageSize / SECTOR - 1;
  return {
    kind: 'gpt',
    sectorSize: 512,
    diskId: h.diskGuid,
    partitions: gpt.entries.map((e) => {
      const attributes = formatGptAttributes(e.attributes);
      return {
        number: e.index,
        start: e.firstLba * SECTOR,
        size: (e.lastLba - e.firstLba + 1) * SECTOR,
        kind: 'gpt' as const,
        type: e.typeGuid,
        typeName: gptTypeName(e.typeGuid),
        ...(e.name ? { name: e.name } : {}),
        partuuid: e.uniqueGuid,
        bootable: (e.attributes & LEGACY_BOOTABLE) !== 0n,
        ...(attributes ? { attributes } : {}),
      };
    }),
    imageSize,
    headBytes: ((gpt.usedBackup ? 2 : h.entriesLba) + entrySectors) * SECTOR,
    gptEntriesLba: gpt.usedBackup ? 2 : h.entriesLba,
    tailBytes: backupAtEnd ? (1 + entrySectors) * SECTOR : 0,
    warnings,
  };
}

const sectorsOf = (p: Partition): string => `sectors ${p.start / SECTOR}–${(p.start + p.size) / SECTOR - 1}`;

/** Every partition inside the image and after the table; no two data partitions overlap. */
function checkRanges(t: PartitionTable, totalSectors: number): void {
  const isContainer = (p: Partition): boolean => t.kind === 'mbr' && isExtendedType(parseInt(p.type, 16));
  for (const p of t.partitions) {
    if (p.start < t.headBytes) throw new OtapackError('INPUT', `partition ${p.number} (${sectorsOf(p)}) overlaps the partition table`);
    if (p.start + p.size > t.imageSize) {
      throw new OtapackError('INPUT', `partition ${p.number} (${sectorsOf(p)}) extends past the end of the image (${totalSectors} sectors): truncated image?`);
    }
  }
  const ps = t.partitions;
  for (let i = 0; i < ps.length; i++) {
    for (let j = i + 1; j < ps.length; j++) {
      const [a, b] = [ps[i]!, ps[j]!];
      if (a.start < b.start + b.size && b.start < a.start + a.size) {
        // An extended partition contains its logical partitions by design.
        if (isContainer(a) !== isContainer(b) && (a.number > 4 || b.number > 4)) continue;
        const [first, second] = a.start <= b.start ? [a, b] : [b, a];
        throw new OtapackError('INPUT', `partition ${second.number} (${sectorsOf(second)}) overlaps partition ${first.number} (${sectorsOf(first)})`);
      }
    }
  }
  t.partitions.sort((a, b) => a.number - b.number);
}

function resolveMbrType(type: string, n: number): number {
  const named = MBR_TYPE_NAMES.find(([, name]) => name === type);
  if (named && named[1] !== 'extended') return named[0];
  const m = /^(?:0x)?([0-9a-f]{1,2})$/i.exec(type);
  if (!m || parseInt(m[1]!, 16) === 0) throw new OtapackError('CONFIG', `partition ${n}: "${type}" is not an MBR type (use e.g. 0x83, 0x0c or linux, fat, efi)`);
  const v = parseInt(m[1]!, 16);
  if (isExtendedType(v)) throw new OtapackError('LIMIT', `partition ${n}: extended/logical MBR partitions are not written by otapack`);
  return v;
}

function resolveGptType(type: string, n: number): string {
  const named = GPT_TYPE_NAMES.find(([, name]) => name === type);
  if (named) return named[0];
  if (!isGuid(type)) throw new OtapackError('CONFIG', `partition ${n}: "${type}" is not a GPT type GUID or a known name (linux, efi, fat, bios-boot, linux-swap)`);
  return type.toLowerCase();
}

/**
 * Writes a new table for `t.partitions` (numbered 1, 2, … in the order given) into an image open
 * for writing. Only the table sectors are written: bytes 0–439 of sector 0 (boot code) are kept —
 * `t.bootCode` when given, otherwise what the file already holds — and nothing outside sector 0
 * (MBR) or the primary and backup GPT areas is touched. `imageSize` is the disk size; the backup
 * GPT goes at its end.
 */
export async function writePartitionTable(fh: FileHandle, t: { kind: 'mbr' | 'gpt'; diskId: string; partitions: NewPartition[]; imageSize: number; bootCode?: Buffer; gptEntriesLba?: number }): Promise<void> {
  if (t.imageSize <= 0 || t.imageSize % SECTOR !== 0) throw new OtapackError('CONFIG', `disk size ${t.imageSize} is not a positive multiple of 512 bytes`);
  const sorted = t.partitions.map((p, i) => ({ ...p, n: i + 1 })).sort((a, b) => a.start - b.start);
  sorted.forEach((p, i) => {
    if (p.start % SECTOR || p.size % SECTOR || p.size <= 0) throw new OtapackError('CONFIG', `partition ${p.n}: start ${p.start} and size ${p.size} must be positive multiples of 512 bytes`);
    if (p.start + p.size > t.imageSize) throw new OtapackError('LIMIT', `partition ${p.n} ends at byte ${p.start + p.size}, past the end of the ${t.imageSize}-byte disk`);
    const prev = sorted[i - 1];
    if (prev && prev.start + prev.size > p.start) throw new OtapackError('CONFIG', `partition ${p.n} (from byte ${p.start}) overlaps partition ${prev.n} (up to byte ${prev.start + prev.size})`);
  });
  const bootCode = t.bootCode ?? (await readFully(fh, 0, 440));
  if (t.kind === 'mbr') {
    const id = /^(?:0x)?([0-9a-f]{1,8})$/i.exec(t.diskId);
    if (!id) throw new OtapackError('CONFIG', `MBR disk id "${t.diskId}" is not 8 hex digits`);
    const sig = parseInt(id[1]!, 16);
    const sector = encodeMbr({
      bootCode,
      diskSignature: sig,
      partitions: t.partitions.map((p, i) => {
        if (p.start < SECTOR) throw new OtapackError('CONFIG', `partition ${i + 1} starts inside the MBR sector`);
        const want = `${sig.toString(16).padStart(8, '0')}-${hex2(i + 1)}`;
        if (p.uuid !== undefined && p.uuid.toLowerCase() !== want) throw new OtapackError('CONFIG', `partition ${i + 1}: an MBR PARTUUID is always <disk id>-<number> (${want}), not ${p.uuid}`);
        return { bootable: p.bootable ?? false, type: resolveMbrType(p.type, i + 1), startLba: p.start / SECTOR, sectors: p.size / SECTOR };
      }),
    });
    await writeAll(fh, sector, sector.length, 0);
    return;
  }
  if (!isGuid(t.diskId)) throw new OtapackError('CONFIG', `GPT disk id "${t.diskId}" is not a GUID`);
  const diskGuid = t.diskId.toLowerCase();
  const gpt = encodeGpt({
    diskGuid,
    diskSizeBytes: t.imageSize,
    entriesLba: t.gptEntriesLba,
    partitions: t.partitions.map((p, i) => {
      let attributes = parseGptAttributes(p.attributes);
      if (p.bootable !== undefined) attributes = p.bootable ? attributes | LEGACY_BOOTABLE : attributes & ~LEGACY_BOOTABLE;
      return {
        typeGuid: resolveGptType(p.type, i + 1),
        uniqueGuid: (p.uuid ?? guidFromSeed(`${diskGuid}/partition/${i + 1}`)).toLowerCase(),
        firstLba: p.start / SECTOR,
        lastLba: (p.start + p.size) / SECTOR - 1,
        name: p.name ?? '',
        attributes,
      };
    }),
  });
  bootCode.copy(gpt.primary, 0, 0, Math.min(440, bootCode.length));
  await writeAll(fh, gpt.primary, gpt.primary.length, 0);
  if (gpt.entries) await writeAll(fh, gpt.entries.data, gpt.entries.data.length, gpt.entries.offset);
  await writeAll(fh, gpt.backup, gpt.backup.length, gpt.backupOffset);
}
