// Recognises a disk otapack has already converted, so inspect can say so and convert can refuse
// it with that reason (its layout would otherwise fail detection with a confusing message: the
// rootfs is not the last partition). The mark is the file every convert installs in both slots,
// /etc/otapack/slots.conf, and it counts only when the partitions it names as slots A and B are
// ext4 partitions of this very table: a rootfs copied out of a converted disk into another image
// does not make that image an A/B disk.
import { OtapackError } from '../errors.js';
import { readPartitionTable, type PartitionTable } from '../disk/table.js';
import { probeExt4, resolvePath, readFile as readExt4 } from '../fs/ext4.js';
import { probeFat, listFat } from '../fs/fat.js';

export const SLOTS_CONF = '/etc/otapack/slots.conf';

export interface OtapackDisk {
  image: string;
  table: PartitionTable;
  bootloader: 'uboot' | 'grub';
  /** The device the disk was converted for (slots.conf DEVICE). */
  device?: string;
  slotA: number;
  slotB: number;
  bootPartition?: number;
  dataPartition?: number;
  /** Partition whose root filesystem holds /etc/otapack/slots.conf. */
  markedBy: number;
  /** otapack's A/B boot files found on the boot partition. */
  bootFiles: string[];
}

const partNumber = (dev: string | undefined, device: string | undefined): number | undefined => {
  if (!dev) return undefined;
  const rest = device && dev.startsWith(device) ? dev.slice(device.length).replace(/^p/, '') : /(\d+)$/.exec(dev)?.[1];
  return rest && /^\d+$/.test(rest) ? Number(rest) : undefined;
};

/** The A/B layout when `raw` is a disk otapack converted; undefined for any other image. */
export async function findOtapackDisk(raw: string, image: string): Promise<OtapackDisk | undefined> {
  const table = await readPartitionTable(raw);
  const ext4 = new Set<number>();
  for (const p of table.partitions) if (p.typeName !== 'extended' && (await probeExt4(raw, p.start))) ext4.add(p.number);
  for (const p of table.partitions) {
    if (!ext4.has(p.number)) continue;
    const what = `partition ${p.number}`;
    const f = await resolvePath(raw, p.start, SLOTS_CONF, what);
    if (f?.stat.type !== 'file' || f.stat.size > 64 << 10) continue;
    const conf = new Map<string, string>();
    for (const line of (await readExt4(raw, p.start, f.path, what)).toString('utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) conf.set(m[1]!, m[2]!);
    }
    const slotA = Number(conf.get('SLOT_A_PART'));
    const slotB = Number(conf.get('SLOT_B_PART'));
    if (!ext4.has(slotA) || !ext4.has(slotB) || slotA === slotB) continue;
    const device = conf.get('DEVICE');
    const bootPartition = partNumber(conf.get('BOOT_DEV'), device);
    const boot = table.partitions.find((x) => x.number === bootPartition);
    const bootFiles = boot && (await probeFat(raw, boot.start))
      ? (await listFat(raw, boot.start)).filter((n) => /^\/(boot\.scr|otapack\.env|otapack\/[^/]+|EFI\/BOOT\/grub\.cfg)$/i.test(n))
      : [];
    return {
      image, table, bootloader: conf.get('BOOTLOADER') === 'grub' ? 'grub' : 'uboot', device, slotA, slotB,
      bootPartition: boot?.number, dataPartition: partNumber(conf.get('DATA_DEV'), device), markedBy: p.number, bootFiles,
    };
  }
  return undefined;
}

/** convert's refusal: exit 4 (INPUT), one line with the reason and the way out. */
export function alreadyConverted(d: OtapackDisk): OtapackError {
  return new OtapackError('INPUT', `${d.image}: already an otapack A/B disk (slots A and B are partitions ${d.slotA} and ${d.slotB}, named by ${SLOTS_CONF} in partition ${d.markedBy}); convert the original image instead, or build updates for this disk with otapack bundle`);
}
