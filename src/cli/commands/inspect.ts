import { inspectInput } from '../../convert/convert.js';
import { byRole } from '../../convert/plan.js';
import { formatSize as fmt } from '../../util/units.js';
import { SLOTS_CONF, type OtapackDisk } from '../../convert/otapack-disk.js';
import { printJson, say } from '../output.js';
import { describeInput, describeOutput } from './plan-table.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const r = await inspectInput(String(args[0]), o.config as string | undefined);
  if (r.abDisk) return showAbDisk(r.abDisk, o);
  const plan = r.plan;
  if (o.json) {
    const { layout, ...rest } = plan;
    printJson({
      schema: 'otapack.inspect/1',
      input: { path: layout.image, layout: layout.kind, table: layout.table, rootPartition: layout.root.number, bootPartition: layout.boot?.number ?? null, bootloader: layout.bootloader, board: layout.board, rootSpec: layout.rootSpec ?? null, rootfs: layout.rootFs, rawBootloader: layout.rawBootloader },
      plan: rest,
    });
  }
  if (!o.quiet) {
    for (const l of describeInput(plan)) say(l);
    for (const l of describeOutput(plan)) say(l);
    const A = byRole(plan, 'rootfs-a')!;
    say(`plan: rootfs -> slot A (p${A.number}) grown to ${fmt(A.size, 'MiB')}, cloned to slot B; ${plan.createBootPartition ? 'a new FAT boot partition holds' : `boot partition p${byRole(plan, 'boot')!.number} gets`} the A/B ${plan.bootloader === 'uboot' ? 'boot.scr + otapack.env' : 'grub.cfg + grubenv'}; data partition ${fmt(byRole(plan, 'data')!.size, 'MiB')}`);
    for (const w of plan.warnings) say(`note: ${w}`);
  }
  return 0;
}

/** A disk otapack already converted: its table with the roles, and why there is nothing to convert. */
function showAbDisk(d: OtapackDisk, o: Record<string, unknown>): number {
  const verdict = 'already an otapack A/B disk: convert refuses it; convert the original image, or build updates for these slots with otapack bundle';
  if (o.json) {
    printJson({
      schema: 'otapack.abdisk/1', path: d.image, table: d.table, bootloader: d.bootloader, device: d.device ?? null,
      slotA: d.slotA, slotB: d.slotB, bootPartition: d.bootPartition ?? null, dataPartition: d.dataPartition ?? null,
      markedBy: d.markedBy, bootFiles: d.bootFiles, message: verdict,
    });
  }
  if (!o.quiet) {
    const t = d.table;
    say(`input: otapack A/B disk, ${t.kind.toUpperCase()} (disk id ${t.diskId}), ${fmt(t.imageSize)}, ${d.bootloader === 'uboot' ? 'U-Boot' : 'GRUB'}${d.device ? `, converted for ${d.device}` : ''}`);
    for (const p of t.partitions) {
      const role = p.number === d.slotA ? `rootfs-a (slot A${p.number === d.markedBy ? `; ${SLOTS_CONF}` : ''})`
        : p.number === d.slotB ? `rootfs-b (slot B${p.number === d.markedBy ? `; ${SLOTS_CONF}` : ''})`
        : p.number === d.bootPartition ? `boot${d.bootFiles.length ? ` (A/B boot files: ${d.bootFiles.join(', ')})` : ''}`
        : p.number === d.dataPartition ? 'data'
        : 'kept';
      say(`  p${p.number}  ${String(p.start / 512).padStart(9)}  ${fmt(p.size).padStart(10)}  ${p.typeName.padEnd(8)} ${role}`);
    }
    say(verdict);
  }
  return 0;
}
