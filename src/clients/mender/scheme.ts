// Mender's boot-state scheme (mender-client 3.4 and meta-mender's U-Boot integration, see
// shared/reference next-formats §C): an install writes mender_boot_part=<N> (decimal),
// mender_boot_part_hex=<N in hex>, upgrade_available=1 and bootcount=0 in one fw_setenv call;
// commit writes upgrade_available=0; the boot loader counts against bootlimit and swaps the two
// slot variables back on failure. Mender keeps no state variable of its own for a failed update.
import type { TrialScheme } from '../../boot/scheme.js';

export const MENDER_BOOT_SCHEME: TrialScheme = Object.freeze({
  kind: 'trial',
  client: 'mender',
  slotVar: 'mender_boot_part',
  mirrors: Object.freeze([Object.freeze({ name: 'mender_boot_part_hex', form: 'hex' as const })]),
  trialVar: 'upgrade_available',
  countVar: 'bootcount',
  limitVar: 'bootlimit',
  onFallback: Object.freeze({}),
  carry: Object.freeze([]),
});
