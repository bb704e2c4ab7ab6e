// Shared text rendering of a conversion plan (inspect and convert print the same table).
import type { ConvertPlan } from '../../convert/plan.js';
import { formatSize as fmt } from '../../util/units.js';

export function describeInput(plan: ConvertPlan): string[] {
  const L = plan.layout;
  const board = L.board.kind === 'kernel-only' ? `kernel ${L.board.kernel}` : `${L.board.kind} ${L.board.path} (${L.board.where === 'boot' ? `partition ${L.boot?.number}` : 'in the rootfs'})`;
  const lines = [
    `input: ${L.kind} layout, ${L.table.kind.toUpperCase()} (disk id ${L.table.diskId}), ${fmt(L.table.imageSize)}, ${L.bootloader === 'uboot' ? 'U-Boot' : 'GRUB'} via ${board}${L.rootSpec ? `, root=${L.rootSpec}` : ''}`,
    ...L.table.partitions.map((p) => `  p${p.number}  ${String(p.start / 512).padStart(9)}  ${fmt(p.size).padStart(10)}  ${p.typeName.padEnd(8)} ${p === L.root ? `rootfs (ext4, ${L.rootFs.blockSize}-byte blocks, ${L.rootFs.features.includes('metadata_csum') ? 'metadata_csum' : 'no csum'})` : p === L.boot ? 'boot (FAT)' : 'kept as is'}`),
  ];
  for (const r of L.rawBootloader) lines.push(`  raw boot loader bytes at ${r.start}-${r.end} (sectors ${r.start / 512}-${Math.ceil(r.end / 512) - 1}), kept bit for bit`);
  return lines;
}

export function describeOutput(plan: ConvertPlan): string[] {
  return [
    `output: ${plan.table.toUpperCase()}, ${fmt(plan.imageSize)}, target device ${plan.device}`,
    `  #   role        start sector        size  device              partuuid`,
    ...plan.partitions.map((p) => `  ${String(p.number).padEnd(3)} ${p.role.padEnd(10)} ${String(p.start / 512).padStart(13)}  ${fmt(p.size).padStart(10)}  ${p.device.padEnd(18)}  ${p.partuuid}`),
  ];
}
