// Shared text rendering of a conversion plan (inspect and convert print the same table).
import type { ConvertPlan } from '../../convert/plan.js';
import type { BootWiring } from '../../convert/boot-plan.js';
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

/** The boot wiring: files on the boot partition, the hand-over, every patched line. */
export function describeBoot(boot: BootWiring & { format?: { label: string }; remove?: string[] }): string[] {
  const lines = [
    `boot: ${boot.bootloader === 'uboot' ? 'U-Boot' : 'GRUB'} A/B logic on p${boot.bootPartition} (${boot.bootFiles.map((f) => f.path).join(', ')}), then ${boot.boardStep}; bootlimit ${boot.bootlimit}`,
  ];
  const l = boot.loader;
  lines.push(`boot loader: ${l.source ?? 'not found on the image'}${l.source ? `: ${l.summary}` : ''}`);
  if (l.builtIn.length) lines.push(`  ${l.kind === 'grub' ? 'modules' : 'commands'}: ${l.builtIn.join(' ')}`);
  if (l.extra) lines.push(`  ${l.kind === 'grub' ? 'module folder' : 'env subcommands'}: ${l.extra.join(' ') || '(empty)'}`);
  if (l.uses.length) lines.push(`  the A/B logic uses: ${l.uses.join(' ')}`);
  for (const a of l.adaptations) lines.push(`  adapted: ${a}`);
  for (const n of l.notes) lines.push(`  note: ${n}`);
  if (boot.installGrub) lines.push(`  boot.install-grub: ${boot.installGrub.path} replaced by grub-mkimage -O ${boot.installGrub.platform} -p ${boot.installGrub.prefix} ${boot.installGrub.modules.join(' ')}${boot.installGrub.replaced.signed ? ' (the replaced image was signed: Secure Boot will refuse the new one until it is signed)' : ''}`);
  if (boot.format) lines.push(`  new FAT boot partition p${boot.bootPartition}, label ${boot.format.label}`);
  for (const r of boot.remove ?? []) lines.push(`  moved aside on the boot partition: ${r}`);
  for (const e of boot.edits) lines.push(`  patched ${e.file} line ${e.line}: ${e.before}  =>  ${e.after}`);
  return lines;
}

/** Everything else the plan writes: the slots' files, the data partition, the update artifact. */
export function describeRest(plan: ConvertPlan): string[] {
  const lines = [`rootfs: ${plan.files.length + plan.boot.rootfsFiles.length} device-side files installed in both slots:`];
  const width = Math.min(40, Math.max(...plan.files.map((f) => f.path.length), ...plan.boot.rootfsFiles.map((f) => f.path.length)));
  for (const f of plan.files) {
    const mode = f.kind === 'symlink' ? 'link' : f.kind === 'dir' ? 'dir' : `0${f.mode.toString(8)}`;
    const what = f.kind === 'symlink' ? `-> ${f.target}: ${f.why}` : f.why;
    lines.push(`  ${f.path.padEnd(width)}  ${mode.padEnd(5)}  ${what}${f.pending ? ` (${f.pending})` : ''}`);
  }
  for (const f of plan.boot.rootfsFiles) lines.push(`  ${f.path.padEnd(width)}  0${f.mode.toString(8)}   the board's boot file, patched (lines above)`);
  const data = plan.partitions.find((p) => p.role === 'data')!;
  lines.push(`data: p${data.number} ${fmt(data.size)} ext4 mounted at /data${plan.dataFiles.length ? `, seeded with ${plan.dataFiles.length} file(s)` : ''}`);
  for (const f of plan.clientDataFiles ?? []) lines.push(`  /data${f.path}  ${f.kind === 'dir' ? 'dir' : `0${f.mode.toString(8)}`}  ${f.why}`);
  lines.push(`update: ${plan.artifact.file}: ${plan.artifact.summary}`);
  return lines;
}
