// The conversion plan: pure data computed from what was read of the input (read-input.ts) and
// the config: the partition layout, the boot wiring (each file, each patched line), the files
// installed into the slots, the data partition's seed and the update artifact. Printed by
// `otapack inspect`, carried out step by step by apply.ts. Nothing here touches a file, and every
// refusal happens here, before a byte is written.
import { basename } from 'node:path';
import { OtapackError } from '../errors.js';
import { formatSize as fmt } from '../util/units.js';
import { guidFromSeed } from '../disk/guid.js';
import { GPT_TYPES, MBR_TYPES, isEspType, isFatType, type Partition } from '../disk/table.js';
import { partitionDevice, type ConvertConfig } from './config.js';
import type { DetectedLayout } from './detect.js';
import type { InputFacts } from './read-input.js';
import { planBoot, type BootPlan } from './boot-plan.js';
import { deviceFiles } from './device-files.js';
import type { ArtifactPlan, DeltaRequest, DeviceFile, DeviceKeys, DeviceLayout, UpdateClient } from '../clients/client.js';

export type Role = 'keep' | 'boot' | 'rootfs-a' | 'rootfs-b' | 'data';

export interface PlannedPartition {
  number: number;
  role: Role;
  start: number;
  size: number;
  type: string;
  typeName: string;
  name?: string;
  bootable: boolean;
  /** GPT unique GUID (MBR: none; the PARTUUID derives from the disk signature). */
  uuid?: string;
  partuuid: string;
  device: string;
  /** Where its bytes come from in the input (kept partitions and the rootfs). */
  copyFrom?: { start: number; size: number };
  fs: 'vfat' | 'ext4' | 'raw';
  /** Input partition this one replaces or keeps. */
  inputNumber?: number;
}

/** The disk layout part of the plan: partitions, table, sizes. */
export interface PlanCore {
  name: string;
  layout: DetectedLayout;
  table: 'mbr' | 'gpt';
  diskId: string;
  imageSize: number;
  partitions: PlannedPartition[];
  /** Input head bytes copied verbatim (raw boot loaders); the table's own sectors are rewritten. */
  rawCopy: { start: number; end: number }[];
  bootloader: 'uboot' | 'grub';
  slotSize: number;
  dataSize: number;
  device: string;
  /** The boot partition holds the boot script/grub.cfg and the A/B state. */
  createBootPartition: boolean;
  /** GPT output: LBA of the primary entry array (kept where the input had it). */
  gptEntriesLba: number;
  warnings: string[];
}

const MiB = 1 << 20;
const ALIGN = 4 * MiB;
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;
const MBR_MAX = 2 ** 32 * 512;

export function outputName(input: string): string {
  return basename(input).replace(/\.(img|raw|bin|sdimg|wic)?(\.(gz|xz|zst|zstd))?$/i, '') || 'image';
}

export function planLayout(layout: DetectedLayout, cfg: ConvertConfig, inputPath = layout.image): PlanCore {
  const warnings = [...layout.notes];
  const name = outputName(inputPath);
  const table = cfg.storage.table === 'keep' ? layout.table.kind : cfg.storage.table;
  if (cfg.bootloader !== 'auto' && cfg.bootloader !== layout.bootloader) {
    throw new OtapackError('CONFIG', `${cfg.file ?? 'config'}: bootloader: ${cfg.bootloader} was asked for, but this image boots with ${layout.bootloader === 'uboot' ? 'U-Boot' : 'GRUB'} (${layout.board.kind} ${'path' in layout.board ? layout.board.path : ''})`);
  }
  const seed = (role: string): string => guidFromSeed(`otapack:${name}:${layout.table.diskId}:${role}`);
  const diskId = table === layout.table.kind
    ? layout.table.diskId
    : table === 'gpt' ? seed('disk') : seed('disk').replace(/-/g, '').slice(0, 8);
  const device = cfg.storage.device;

  // ---- sizes
  const fs = layout.rootFs;
  const used = (fs.blocks - fs.freeBlocks) * fs.blockSize;
  const minSlot = alignUp(used * 1.05 + 8 * MiB, MiB);
  const slotSize = alignUp(cfg.storage.slotSize ?? Math.max(layout.root.size, fs.size, Math.ceil(used * 1.3), minSlot), MiB);
  if (slotSize < minSlot) {
    throw new OtapackError('CONFIG', `${cfg.file ?? 'config'}: storage.slot-size ${fmt(slotSize)} is too small for the rootfs, which uses ${fmt(used)} (needs at least ${fmt(minSlot)})`);
  }
  if (cfg.update.compress === 'none' && slotSize + 16 > 0xffffffff) {
    throw new OtapackError('LIMIT', `${cfg.file ?? 'config'}: a ${fmt(slotSize)} slot stored uncompressed exceeds the cpio limit of 4 GiB per bundle entry; set update.compress: zstd (or zlib)`);
  }
  if (slotSize < fs.size && cfg.storage.slotSize !== undefined) warnings.push(`the rootfs (${fmt(fs.size)}) is shrunk to the slot size ${fmt(slotSize)}`);

  // ---- layout: everything before the rootfs stays where it is
  const headEnd = Math.min(...layout.table.partitions.map((p) => p.start));
  const rawEnd = Math.max(headEnd, ...layout.rawBootloader.map((r) => r.end));
  const kept: PlannedPartition[] = [];
  let number = 1;
  const before = layout.table.partitions.filter((p) => p !== layout.root && p.typeName !== 'extended' && p.start < layout.root.start);
  for (const p of before) {
    const isBoot = p === layout.boot;
    kept.push(keep(p, isBoot ? 'boot' : 'keep', table, device));
    number = Math.max(number, p.number + 1);
  }
  const createBootPartition = !layout.boot && layout.bootloader === 'uboot';
  let cursor = Math.max(rawEnd, ...kept.map((k) => k.start + k.size));
  const parts: PlannedPartition[] = [...kept];
  const add = (role: Role, size: number, type: string, typeName: string, pname: string, align: number, fsKind: PlannedPartition['fs'], extra: Partial<PlannedPartition> = {}): PlannedPartition => {
    const start = alignUp(cursor, align);
    const p: PlannedPartition = {
      number: number++, role, start, size, type: typeFor(type, table), typeName, name: table === 'gpt' ? pname : undefined,
      bootable: role === 'boot', uuid: table === 'gpt' ? seed(role) : undefined, partuuid: '', device: '', fs: fsKind, ...extra,
    };
    cursor = start + size;
    parts.push(p);
    return p;
  };
  if (createBootPartition) {
    add('boot', alignUp(cfg.storage.bootSize, MiB), 'fat', 'fat', 'boot', MiB, 'vfat');
  }
  const rootType = layout.table.kind === table ? layout.root.type : 'linux';
  add('rootfs-a', slotSize, rootType, 'linux', 'rootfs-a', ALIGN, 'ext4', { copyFrom: { start: layout.root.start, size: layout.root.size }, inputNumber: layout.root.number });
  add('rootfs-b', slotSize, rootType, 'linux', 'rootfs-b', ALIGN, 'ext4');
  const dataStart = alignUp(cursor, ALIGN);
  const tail = table === 'gpt' ? 34 * 512 : 0;
  let dataSize: number;
  if (cfg.storage.totalSize !== undefined) {
    dataSize = Math.floor((cfg.storage.totalSize - tail - dataStart) / MiB) * MiB;
    if (dataSize < 4 * MiB) {
      throw new OtapackError('CONFIG', `${cfg.file ?? 'config'}: storage.total-size ${fmt(cfg.storage.totalSize)} is too small: boot, two ${fmt(slotSize)} slots and a data partition need at least ${fmt(dataStart + 4 * MiB + tail)}`);
    }
  } else {
    dataSize = alignUp(cfg.storage.dataSize ?? 128 * MiB, MiB);
  }
  add('data', dataSize, 'linux', 'linux', cfg.data.label, ALIGN, 'ext4');
  const imageSize = cfg.storage.totalSize ?? alignUp(cursor + tail, MiB);

  // ---- checks the table format imposes
  if (table === 'mbr') {
    if (parts.length > 4) {
      throw new OtapackError('LIMIT', `${parts.length} partitions are needed (${parts.map((p) => p.role).join(', ')}) but an MBR holds 4 primary partitions; set storage.table: gpt`, { path: layout.image });
    }
    if (imageSize > MBR_MAX) throw new OtapackError('LIMIT', `${fmt(imageSize)} disk exceeds the 2 TiB an MBR can address; set storage.table: gpt`);
  }
  if (table === 'gpt' && layout.table.kind === 'mbr') {
    const clash = layout.rawBootloader.find((r) => r.start < 34 * 512 && r.end > 512);
    if (clash) throw new OtapackError('CONFIG', `raw boot loader bytes at offset ${clash.start} sit where a GPT's partition entries go (sectors 1-33); keep the MBR (storage.table: keep)`, { path: layout.image });
    if (headEnd < 34 * 512) throw new OtapackError('CONFIG', `the first partition starts at sector ${headEnd / 512}, inside the space a GPT needs; keep the MBR`, { path: layout.image });
  }
  for (const p of parts) {
    p.device = partitionDevice(device, p.number);
    p.partuuid = table === 'gpt' ? p.uuid! : `${diskId.toLowerCase()}-${p.number.toString(16).padStart(2, '0')}`;
  }
  return {
    name, layout, table, diskId, imageSize, partitions: parts,
    rawCopy: layout.rawBootloader.map((r) => ({ start: r.start, end: Math.min(r.end, headEnd) })).filter((r) => r.end > r.start),
    bootloader: layout.bootloader, slotSize, dataSize, device, createBootPartition, warnings,
    gptEntriesLba: table === 'gpt' && layout.table.kind === 'gpt' ? layout.table.gptEntriesLba ?? 2 : 2,
  };
}

function keep(p: Partition, role: Role, table: 'mbr' | 'gpt', device: string): PlannedPartition {
  const type = p.kind === table ? p.type : typeFor(isEspType(p.type) ? 'efi' : isFatType(p.type) ? 'fat' : p.typeName, table);
  return {
    number: p.number, role, start: p.start, size: p.size, type, typeName: p.typeName, name: table === 'gpt' ? p.name : undefined,
    bootable: role === 'boot', uuid: table === 'gpt' ? (p.kind === 'gpt' ? p.partuuid : guidFromSeed(`keep:${p.partuuid}`)) : undefined,
    partuuid: '', device: partitionDevice(device, p.number), copyFrom: { start: p.start, size: p.size }, inputNumber: p.number,
    fs: role === 'boot' ? 'vfat' : 'raw',
  };
}

/** A type given by name ("linux", "fat", "efi") or already in the target table's form. */
function typeFor(t: string, table: 'mbr' | 'gpt'): string {
  if (table === 'mbr') {
    if (t.startsWith('0x')) return t;
    return ({ linux: MBR_TYPES.linux, fat: MBR_TYPES.fat32lba, efi: MBR_TYPES.efi } as Record<string, string>)[t] ?? MBR_TYPES.linux;
  }
  if (/^[0-9a-f]{8}-/.test(t)) return t;
  return ({ linux: GPT_TYPES.linux, fat: GPT_TYPES.basicData, efi: GPT_TYPES.efi } as Record<string, string>)[t] ?? GPT_TYPES.linux;
}

/** The complete plan: the layout, and everything apply will write. */
export interface ConvertPlan extends PlanCore {
  /** The update client the device is wired for. */
  client: UpdateClient['id'];
  boot: BootPlan;
  /** Files installed into slot A (and so into B). */
  files: DeviceFile[];
  fstabChanges: string[];
  /** Where the boot partition is mounted on the device, and where the A/B state is read there. */
  bootMount: string;
  envPath: string;
  /** What the update client sees of the disk. */
  deviceLayout: DeviceLayout;
  /** Files the data partition is created with (data.files). */
  dataFiles: { path: string; source: string; mode: number }[];
  /** Files the update client puts on the data partition (its state directory). */
  clientDataFiles: DeviceFile[];
  artifact: ArtifactPlan;
  /** The delta artifact (--delta-from), and what it is made from. */
  delta?: { artifact: ArtifactPlan; request: DeltaRequest };
}

export interface PlanOptions {
  inputPath?: string;
  client: UpdateClient;
  /** Key material installed on the device; `{ pending: true }` plans without it (inspect). */
  keys: DeviceKeys;
  timestamp?: number;
  /** Also a delta artifact from a previous release (--delta-from). */
  delta?: DeltaRequest;
}

/** Everything convert will do, from what was read: refuses here, before anything is written. */
export function planConversion(facts: InputFacts, cfg: ConvertConfig, o: PlanOptions): ConvertPlan {
  const core = planLayout(facts.layout, cfg, o.inputPath ?? facts.layout.image);
  // the client's binary comes from the image: refused here when it is not there
  o.client.checkInput(facts.clientPaths ?? {}, core.bootloader, o.inputPath ?? facts.layout.image);
  const A = byRole(core, 'rootfs-a')!;
  const B = byRole(core, 'rootfs-b')!;
  const boot = planBoot({
    facts,
    scheme: o.client.scheme,
    targets: { boot: byRole(core, 'boot')!, slotA: A, slotB: B, table: core.table, device: core.device, diskId: core.diskId, createBootPartition: core.createBootPartition },
    bootlimit: cfg.bootlimit,
    timestamp: o.timestamp,
    readOnly: cfg.rootfs.readOnly,
    installGrub: cfg.boot.installGrub,
  });
  const dev = deviceFiles({ plan: core, cfg, fstab: facts.fstab, inittab: facts.inittab, client: o.client, keys: o.keys });
  return {
    ...core,
    warnings: [...core.warnings, ...boot.loaderWarnings],
    client: o.client.id,
    boot,
    files: dev.files,
    fstabChanges: dev.fstabChanges,
    bootMount: dev.bootMount,
    envPath: dev.envPath,
    deviceLayout: dev.layout,
    dataFiles: cfg.data.files.map((f) => ({ path: f.target, source: f.source, mode: f.mode ?? 0o644 })),
    clientDataFiles: o.client.dataFiles(dev.layout, cfg),
    artifact: o.client.planArtifact(dev.layout, cfg),
    delta: o.delta ? { artifact: planDelta(o.delta, core, cfg, o.client, dev.layout), request: o.delta } : undefined,
  };
}

/**
 * The delta artifact, or the reason it cannot be made. rdiff copies from the running slot, so
 * that slot must still hold the previous release byte for byte: both releases need a read-only
 * root (one read-write mount of ext4 rewrites its superblock and journal), and the slots must not
 * have moved. zchunk reuses whatever chunks the running slot has, so it works either way, but its
 * chunks are served in the clear.
 */
function planDelta(d: DeltaRequest, core: PlanCore, cfg: ConvertConfig, client: UpdateClient, layout: DeviceLayout): ArtifactPlan {
  const file = cfg.file ?? 'otapack.yaml';
  const from = d.base.origin;
  if (!client.planDeltaArtifact) throw new OtapackError('CONFIG', `${client.id} has no delta artifact`);
  if (!d.base.ext4) throw new OtapackError('INPUT', 'its rootfs image is not ext4: not the slot image of a release otapack converted', { path: from, reason: 'not-a-slot-image' });
  if (d.base.size !== core.slotSize) {
    throw new OtapackError('CONFIG', `${file}: ${from} has ${fmt(d.base.size)} slots and this release plans ${fmt(core.slotSize)}: devices flashed with it could not take this release; set storage.slot-size: ${d.base.size % MiB === 0 ? `${d.base.size / MiB}M` : d.base.size}`);
  }
  if (d.method === 'rdiff') {
    if (!cfg.rootfs.readOnly) {
      throw new OtapackError('CONFIG', `${file}: an rdiff delta needs rootfs.read-only: true: it copies from the running slot, which must stay byte-identical, and one read-write mount of ext4 changes its bytes (or use --delta-method zchunk)`);
    }
    const opts = d.base.ext4.rootOptions;
    if (!opts?.includes('ro')) {
      throw new OtapackError('CONFIG', `${from}: its root filesystem is mounted read-write (fstab: ${opts ? opts.join(',') : 'no entry for /'}), so devices running it no longer hold its bytes and would refuse an rdiff delta from it; ship this release as a full bundle (rootfs.read-only: true) and make deltas from it on (or use --delta-method zchunk)`);
    }
  } else {
    if (!d.url) throw new OtapackError('USAGE', '--delta-method zchunk needs --delta-url: where devices fetch the .zck (an HTTP server with Range support)');
    if (cfg.update.encrypt) throw new OtapackError('CONFIG', `${file}: update.encrypt is set, and zchunk chunks cannot be encrypted (devices fetch them in the clear); use --delta-method rdiff`);
  }
  return client.planDeltaArtifact(layout, cfg, d);
}


export const byRole = (plan: PlanCore, role: Role): PlannedPartition | undefined => plan.partitions.find((p) => p.role === role);

