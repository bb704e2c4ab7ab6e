// Option sets the A/B generators were rendered with before they took a boot-state scheme (commit
// e3fb9c7). test/fixtures/boot-ab-swupdate.json holds the sha256 of each output from that code;
// test/boot-scheme.test.ts renders the same options with SWUpdate's scheme and compares bytes.
// Options here carry no scheme: the test adds it.

import type { UbootAbOptions, UbootBoardStep } from '../../src/boot/uboot-ab.js';
import type { GrubAbOptions } from '../../src/boot/grub-ab.js';

export type UbootCase = Omit<UbootAbOptions, 'scheme'>;
export type GrubCase = Omit<GrubAbOptions, 'scheme'>;

const UBOOT_STEPS: Record<string, UbootBoardStep> = {
  'boot-script': { kind: 'boot-script', file: 'board.scr' },
  'boot-script-convert': { kind: 'boot-script', file: '/otapack/board.scr' },
  'slot-script': { kind: 'slot-script' },
  'slot-script-prefix': { kind: 'slot-script', path: '/boot/boot.scr', prefix: '/boot/' },
  'extlinux-slot': { kind: 'extlinux', location: 'slot' },
  'extlinux-boot': { kind: 'extlinux', location: 'boot', path: '/otapack/extlinux.conf' },
  'kernel-bootz': { kind: 'kernel', kernel: '/boot/zImage', bootargs: 'console=ttyS0,115200 rootwait', bootCmd: 'bootz' },
  'kernel-uimage-fdt': { kind: 'kernel', kernel: '/boot/Image', initrd: '/boot/uInitrd', initrdFormat: 'uimage', fdt: '/boot/dtb/${fdtfile}', bootargs: 'console=ttyAMA0' },
  'kernel-raw-initrd': { kind: 'kernel', kernel: '/boot/Image', initrd: '/boot/i.gz', bootargs: 'rootwait' },
};

export const UBOOT_CASES: Record<string, UbootCase> = {
  ...Object.fromEntries(Object.entries(UBOOT_STEPS).map(([k, boardStep]) => [`step-${k}`, { bootPart: 1, slotA: 2, slotB: 3, boardStep }])),
  'convert-style': { bootPart: 1, slotA: 2, slotB: 3, envFile: 'otapack.env', envSize: 0x4000, bootlimit: 3, rootFallbackPrefix: '/dev/mmcblk0p', boardStep: UBOOT_STEPS['boot-script-convert']! },
  'high-partitions': { bootPart: 12, slotA: 10, slotB: 11, boardStep: UBOOT_STEPS['slot-script']! },
  'extra-vars': { bootPart: 1, slotA: 2, slotB: 3, extraVars: ['recovery_status', 'ota_note'], rootFallbackPrefix: '/dev/mmcblk0p', boardStep: UBOOT_STEPS['extlinux-slot']! },
  'native-env-name': { bootPart: 1, slotA: 2, slotB: 3, envFile: 'uboot.env', allowNativeEnvName: true, boardStep: UBOOT_STEPS['boot-script']! },
  'no-reset': { bootPart: 2, slotA: 3, slotB: 4, resetOnFailedTrial: false, bootlimit: 5, envSize: 0x2000, defaultDevice: { devtype: 'virtio', devnum: 1 }, boardStep: UBOOT_STEPS['kernel-raw-initrd']! },
  'bootlimit-1': { bootPart: 1, slotA: 2, slotB: 3, bootlimit: 1, boardStep: UBOOT_STEPS['kernel-uimage-fdt']! },
};

export const GRUB_CASES: Record<string, GrubCase> = {
  base: { slotA: 2, slotB: 3, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } },
  'convert-style': { slotA: 2, slotB: 3, envFile: '/otapack/grubenv', partmap: 'gpt', partuuids: { a: '0FC63DAF-8483-4772-8E79-3D69D8477DE4', b: 'b921b045-1df0-41c3-af44-4c6f280d3fae' }, bootlimit: 3, boardStep: { kind: 'configfile', location: 'esp', path: '/otapack/board.cfg' } },
  'msdos-esp': { slotA: 2, slotB: 3, partmap: 'msdos', partuuids: { a: '5EEDB007-02', b: '5eedb007-03' }, envFile: '/grub/grubenv', boardStep: { kind: 'configfile', location: 'esp', path: '/EFI/BOOT/grub-board.cfg' } },
  'kernel-initrd': { slotA: 2, slotB: 3, boardStep: { kind: 'kernel', kernel: '/boot/bzImage', initrd: '/boot/initrd.img', bootargs: 'console=ttyS0 rootwait' } },
  'kernel-no-initrd-fallback': { slotA: 5, slotB: 6, rootFallbackPrefix: '/dev/sda', bootlimit: 1, rebootOnFailedTrial: false, boardStep: { kind: 'kernel', kernel: '/vmlinuz', bootargs: 'quiet' } },
  'extra-vars': { slotA: 2, slotB: 3, extraVars: ['ota_note', 'ota_note'], bootlimit: 9, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } },
};

/** Initial-env cases: slots, bootlimit, active slot. */
export const ENV_CASES: { name: string; slotA: number; slotB: number; bootlimit?: number; active: 'A' | 'B' }[] = [
  { name: 'default-A', slotA: 2, slotB: 3, active: 'A' },
  { name: 'bootlimit5-B', slotA: 2, slotB: 3, bootlimit: 5, active: 'B' },
  { name: 'high-A', slotA: 10, slotB: 11, bootlimit: 1, active: 'A' },
];

/** Device templates and the values convert renders them with. */
export const DEVICE_TEMPLATE_CASES: { name: string; values: Record<string, string> }[] = [
  { name: 'otapack-update', values: { BOOTLIMIT: '3' } },
  { name: 'otapack-update', values: { BOOTLIMIT: '7' } },
  // the slot and commit commands take SWUpdate's boot-state variable names (the same text as before)
  { name: 'otapack-slot', values: { SLOT_VAR: 'rootpart' } },
  // the commit command comes from the client (SWUpdate's: the same text as before)
  { name: 'otapack-commit', values: { TRIAL_VAR: 'upgrade_available', COMMIT: '/usr/sbin/otapack-env set upgrade_available=0 bootcount=0', COMMIT_WHAT: 'upgrade_available=0, bootcount=0', ON_IDLE: '' } },
  // Mender's (added with it): its update command and the GRUB environment tools it calls
  { name: 'otapack-commit', values: { TRIAL_VAR: 'upgrade_available', COMMIT: 'mender commit', COMMIT_WHAT: 'mender commit: upgrade_available=0', ON_IDLE: '\t# an install the boot loader fell back from stays open in Mender\'s database until this\n\tmender rollback >/dev/null 2>&1 || true\n' } },
  { name: 'otapack-update-mender', values: { BOOTLIMIT: '3' } },
  { name: 'otapack-mender-env', values: {} },
  ...['otapack-env', 'S99otapack-commit', 'otapack-commit.service', 'otapack-suricatta', 'S98otapack-suricatta', 'otapack-suricatta.service']
    .map((name) => ({ name, values: {} })),
];
