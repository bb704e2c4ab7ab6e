// SWUpdate's boot-state scheme: the variables `swupdate -B uboot|grub` and otapack's bundles
// and device scripts read and write. The bundle's bootenv selects the slot (rootpart) and starts
// a trial (upgrade_available=1, bootcount=0); SWUpdate itself keeps its update state in ustate
// (1 = installed), which the boot logic's fallback sets to 3 (failed).
import type { TrialScheme } from '../../boot/scheme.js';

export const SWUPDATE_BOOT_SCHEME: TrialScheme = Object.freeze({
  kind: 'trial',
  client: 'swupdate',
  slotVar: 'rootpart',
  mirrors: Object.freeze([]),
  trialVar: 'upgrade_available',
  countVar: 'bootcount',
  limitVar: 'bootlimit',
  onFallback: Object.freeze({ ustate: '3' }),
  fallbackNote: 'failed',
  carry: Object.freeze(['ustate']),
});
