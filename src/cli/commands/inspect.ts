import { inspectImage } from '../../convert/convert.js';
import { byRole } from '../../convert/plan.js';
import { printJson, say } from '../output.js';
import { describeInput, describeOutput } from './plan-table.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const plan = await inspectImage(String(args[0]), o.config as string | undefined);
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
    say(`plan: rootfs -> slot A (p${A.number}) grown to ${A.size >> 20} MiB, cloned to slot B; ${plan.createBootPartition ? 'a new FAT boot partition holds' : `boot partition p${byRole(plan, 'boot')!.number} gets`} the A/B ${plan.bootloader === 'uboot' ? 'boot.scr + otapack.env' : 'grub.cfg + grubenv'}; data partition ${byRole(plan, 'data')!.size >> 20} MiB`);
    for (const w of plan.warnings) say(`note: ${w}`);
  }
  return 0;
}
