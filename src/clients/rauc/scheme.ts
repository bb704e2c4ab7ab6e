// RAUC's boot-state scheme for U-Boot (rauc 1.8, see shared/reference next-formats §D): the
// slots are tried in the order of BOOT_ORDER ("A B"), each with BOOT_<slot>_LEFT attempts; an
// install moves the new slot to the front with BOOT_<slot>_LEFT=3, `rauc status mark-good`
// restores the count. Data only: the A/B generators refuse it until RAUC support lands.
import type { BootOrderScheme } from '../../boot/scheme.js';

export const RAUC_BOOT_SCHEME: BootOrderScheme = Object.freeze({
  kind: 'order',
  client: 'rauc',
  orderVar: 'BOOT_ORDER',
  leftVar: (slot: 'A' | 'B'): string => `BOOT_${slot}_LEFT`,
  attempts: 3,
});
