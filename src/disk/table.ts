// One view of a disk's partition table, MBR or GPT, with the checks convert relies on: no
// overlaps, nothing past the end of the image, and a clear reason when something is wrong.
import { open, type FileHandle } from 'node:fs/promises';
import { OtapackError, ioError } from '../errors.js';
import { parseMbr, encodeMbr, isExtendedType, hasMbrSignature } from './mbr.js';
import { readGpt, encodeGpt } from './gpt.js';

export interface Partition {
  number: number;
  start: number;
  size: number;
  kind: 'mbr' | 'gpt';
  type: string;
  typeName: string;
  name?: string;
  partuuid: string;
  bootable: boolean;
  attributes?: string;
}

export interface PartitionTable {
  kind: 'mbr' | 'gpt';
  sectorSize: 512;
  diskId: string;
  partitions: Partition[];
  imageSize: number;
  headBytes: number;
  warnings: string[];
}

export const MBR_TYPES = { linux: '0x83', fat32lba: '0x0c', fat32: '0x0b', fat16lba: '0x0e', fat16: '0x06', efi: '0xef', swap: '0x82' } as const;
export const GPT_TYPES = {
  linux: '0fc63daf-8483-4772-8e79-3d69d8477de4',
  efi: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b',
  basicData: 'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7',
  biosBoot: '21686148-6449-6e6f-744e-656564454649',
  rootX86_64: '4f68bce3-e8cd-4db1-96e7-fbcaf984b709',
  rootArm64: 'b921b045-1df0-41c3-af44-4c6f280d3fae',
  rootArm32: '69dad710-2ce4-4e3c-b16c-21a1d49abed3',
  rootX86: '44479540-f297-41b2-9af7-d131d5f0458a',
  swap: '0657fd6d-a4ab-43c4-84e5-0933c84b4f4f',
  home: '933ac7e1-2eb4-4f13-b844-0e14e2aef915',
  xbootldr: 'bc13c2ff-59e6-4262-a352-b275fd6f7172',
} as const;

const GPT_NAMES: Record<string, string> = {
  [GPT_TYPES.linux]: 'linux', [GPT_TYPES.rootX86_64]: 'linux', [GPT_TYPES.rootArm64]: 'linux', [GPT_TYPES.rootArm32]: 'linux',
  [GPT_TYPES.rootX86]: 'linux', [GPT_TYPES.home]: 'linux', [GPT_TYPES.xbootldr]: 'linux',
  [GPT_TYPES.efi]: 'efi', [GPT_TYPES.basicData]: 'fat', [GPT_TYPES.biosBoot]: 'bios-boot', [GPT_TYPES.swap]: 'linux-swap',
};
const MBR_NAMES: Record<number, string> = {
  0x83: 'linux', 0x0c: 'fat', 0x0b: 'fat', 0x0e: 'fat', 0x06: 'fat', 0x04: 'fat', 0x01: 'fat', 0xef: 'efi',
  0x05: 'extended', 0x0f: 'extended', 0x85: 'extended', 0x82: 'linux-swap', 0xee: 'gpt-protective',
};

export const isLinuxType = (t: string): boolean => (t.startsWith('0x') ? MBR_NAMES[parseInt(t, 16)] : GPT_NAMES[t]) === 'linux';
export const isFatType = (t: string): boolean => (t.startsWith('0x') ? MBR_NAMES[parseInt(t, 16)] : GPT_NAMES[t]) === 'fat';
export const isEspType = (t: string): boolean => t === GPT_TYPES.efi || t === MBR_TYPES.efi;
const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

export async function readPartitionTable(path: string): Promise<PartitionTable> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError('INPUT', path, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) throw new OtapackError('INPUT', `${path}: not a regular file`);
    const imageSize = st.size;
    if (imageSize === 0) throw new OtapackError('INPUT', `${path}: empty file`);
    if (imageSize < 512) throw new OtapackError('INPUT', `${path}: ${imageSize} bytes, too small to be a disk image`);
    const read = async (offset: number, length: number): Promise<Buffer> => {
      const b = Buffer.alloc(length);
      const { bytesRead } = await fh.read(b, 0, length, offset);
      return b.subarray(0, bytesRead);
    };
    const s0 = await read(0, 512);
    if (!hasMbrSignature(s0)) throw new OtapackError('INPUT', `${path}: no partition table (no 55AA signature in sector 0); is this a disk image?`);
    const mbr = await parseMbr(s0, read, path);
    let t: PartitionTable;
    if (mbr.partitions.some((p) => p.type === 0xee)) {
      const gptSig = (await read(512, 8)).toString('latin1') === 'EFI PART';
      if (!mbr.protective && !gptSig) throw new OtapackError('INPUT', `${path}: hybrid MBR without a GPT`);
      let gpt;
      try {
        gpt = await readGpt(read, imageSize, path);
      } catch (e) {
        if (e instanceof OtapackError && !gptSig) throw new OtapackError('INPUT', `${path}: protective MBR but no valid GPT (${e.message.replace(`${path}: `, '')})`);
        throw e;
      }
      t = {
        kind: 'gpt', sectorSize: 512, diskId: gpt.diskGuid, imageSize, headBytes: 34 * 512, warnings: gpt.warnings,
        partitions: gpt.partitions.map((p) => ({
          number: p.number, start: p.firstLba * 512, size: (p.lastLba - p.firstLba + 1) * 512, kind: 'gpt', type: p.typeGuid,
          typeName: GPT_NAMES[p.typeGuid] ?? 'unknown', name: p.name, partuuid: p.uniqueGuid, bootable: (p.attributes & 4n) !== 0n,
          attributes: `0x${p.attributes.toString(16)}`,
        })),
      };
    } else {
      const sig = mbr.diskSignature.toString(16).padStart(8, '0');
      t = {
        kind: 'mbr', sectorSize: 512, diskId: sig, imageSize, headBytes: 512, warnings: [],
        partitions: mbr.partitions.map((p) => ({
          number: p.number, start: p.startLba * 512, size: p.sectors * 512, kind: 'mbr', type: hex2(p.type),
          typeName: MBR_NAMES[p.type] ?? 'unknown', partuuid: `${sig}-${p.number.toString(16).padStart(2, '0')}`, bootable: p.bootable,
        })),
      };
    }
    validate(t, path);
    return t;
  } finally {
    await fh.close();
  }
}

function validate(t: PartitionTable, path: string): void {
  if (t.partitions.length === 0) throw new OtapackError('INPUT', `${path}: the partition table is empty`);
  const real = t.partitions.filter((p) => p.typeName !== 'extended');
  for (const p of t.partitions) {
    const range = `sectors ${p.start / 512}-${(p.start + p.size) / 512 - 1}`;
    if (p.start < t.headBytes) throw new OtapackError('INPUT', `${path}: partition ${p.number} (${range}) overlaps the partition table`);
    if (p.start + p.size > t.imageSize) {
      throw new OtapackError('INPUT', `${path}: partition ${p.number} (${range}) extends past the end of the image (${Math.floor(t.imageSize / 512)} sectors): truncated image or wrong table`);
    }
  }
  const sorted = [...real].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.start < a.start + a.size) {
      throw new OtapackError('INPUT', `${path}: partition ${b.number} (sectors ${b.start / 512}-${(b.start + b.size) / 512 - 1}) overlaps partition ${a.number} (sectors ${a.start / 512}-${(a.start + a.size) / 512 - 1})`);
    }
  }
}

export interface NewPartition { start: number; size: number; type: string; name?: string; bootable?: boolean; uuid?: string }

export async function writePartitionTable(fh: FileHandle, t: { kind: 'mbr' | 'gpt'; diskId: string; partitions: NewPartition[]; imageSize: number; bootCode?: Buffer }): Promise<void> {
  for (const p of t.partitions) {
    if (p.start % 512 || p.size % 512) throw new OtapackError('INTERNAL', 'partitions must be sector aligned');
  }
  if (t.kind === 'mbr') {
    const b = encodeMbr({
      bootCode: t.bootCode, diskSignature: parseInt(t.diskId, 16),
      partitions: t.partitions.map((p) => ({ bootable: !!p.bootable, type: parseInt(p.type, 16), startLba: p.start / 512, sectors: p.size / 512 })),
    });
    await fh.write(b, 0, b.length, 0);
    return;
  }
  const g = encodeGpt({
    diskGuid: t.diskId, diskSizeBytes: t.imageSize, bootCode: t.bootCode,
    partitions: t.partitions.map((p) => ({ typeGuid: p.type, uniqueGuid: p.uuid!, firstLba: p.start / 512, lastLba: (p.start + p.size) / 512 - 1, name: p.name, attributes: p.bootable ? 4n : 0n })),
  });
  await fh.write(g.primary, 0, g.primary.length, 0);
  await fh.write(g.backup, 0, g.backup.length, g.backupOffset);
}

export { isExtendedType };
