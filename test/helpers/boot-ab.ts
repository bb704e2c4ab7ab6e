// Test-side helpers for the A/B boot logic: compiling the generated U-Boot script into boot.scr,
// and reading the marker line both generated scripts print before the board step.
import { encodeScriptImage, type ScriptImageOptions } from '../../src/boot/uboot-image.js';
import { generateUbootAbScript, UBOOT_AB_IMAGE_NAME, type UbootAbOptions } from '../../src/boot/uboot-ab.js';

/** boot.scr bytes: the generated script compiled as `mkimage -T script` would (convert does the same in boot-wiring.ts). */
export function buildUbootAbScript(opts: UbootAbOptions, image: ScriptImageOptions = {}): Buffer {
  return encodeScriptImage(generateUbootAbScript(opts), UBOOT_AB_IMAGE_NAME, image);
}

export interface UbootAbMarker {
  slot: 'A' | 'B';
  partition: number;
  bootcount: string;
  upgradeAvailable: string;
}

/** The marker line the scripts print: `otapack: booting slot A (partition 2) bootcount=0 upgrade_available=0`. */
export const UBOOT_AB_MARKER_RE = /otapack: booting slot ([AB]) \(partition (\d+)\) bootcount=(\S*) upgrade_available=(\S*)/;

/** Every marker in a console log, in order. */
export function parseAbMarkers(log: string): UbootAbMarker[] {
  const re = new RegExp(UBOOT_AB_MARKER_RE.source, 'g');
  return [...log.matchAll(re)].map((m) => ({ slot: m[1] as 'A' | 'B', partition: Number(m[2]), bootcount: m[3]!, upgradeAvailable: m[4]! }));
}
