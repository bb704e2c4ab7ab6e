import { inspectInput } from '../../convert/convert.js';
import { byRole } from '../../convert/plan.js';
import { SLOTS_CONF, type OtapackDisk } from '../../convert/otapack-disk.js';
import { formatSize as fmt } from '../../util/units.js';
import { printJson, say } from '../output.js';
import { inspectJson, abDiskJson } from '../json.js';
import { CLIENT_IDS } from '../choices.js';
import { text, choice, required, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';
import { describeInput, describeOutput, describeBoot, describeRest } from './plan-table.js';

export interface InspectOptions extends GlobalOptions {
  image: string;
  config?: string;
  client?: (typeof CLIENT_IDS)[number];
}

export const options = (args: string[], o: OptionValues): InspectOptions => ({
  ...globalOptions(o),
  image: required(args, 0, 'image'),
  config: text(o.config),
  client: choice(o.client, CLIENT_IDS),
});

export async function run(o: InspectOptions): Promise<number> {
  const r = await inspectInput(o.image, o.config, { client: o.client });
  if (r.abDisk) return showAbDisk(r.abDisk, o);
  const plan = r.plan;
  if (o.json) printJson(inspectJson(plan));
  if (!o.quiet) {
    for (const l of describeInput(plan)) say(l);
    for (const l of describeOutput(plan)) say(l);
    const A = byRole(plan, 'rootfs-a')!;
    say(`plan: rootfs -> slot A (p${A.number}) grown to ${fmt(A.size, 'MiB')}, cloned to slot B; ${plan.createBootPartition ? 'a new FAT boot partition holds' : `boot partition p${byRole(plan, 'boot')!.number} gets`} the A/B ${plan.bootloader === 'uboot' ? 'boot.scr + otapack.env' : 'grub.cfg + grubenv'}; data partition ${fmt(byRole(plan, 'data')!.size, 'MiB')}`);
    for (const l of describeBoot(plan.boot)) say(l);
    for (const l of describeRest(plan)) say(l);
    for (const w of plan.warnings) say(`note: ${w}`);
  }
  return 0;
}

/** A disk otapack already converted: its table with the roles, and why there is nothing to convert. */
function showAbDisk(d: OtapackDisk, o: InspectOptions): number {
  const verdict = 'already an otapack A/B disk: convert refuses it; convert the original image, or build updates for these slots with otapack bundle';
  if (o.json) printJson(abDiskJson(d, verdict));
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
