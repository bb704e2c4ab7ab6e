// Generator of otapack's U-Boot A/B boot script (boot.scr on the boot partition).
//
// The script wraps the board's own boot logic: it chooses the slot from a U-Boot environment file
// on the FAT boot partition (the file SWUpdate `-B uboot` writes through libubootenv), counts trial
// boots, falls back after `bootlimit` failed trials, and then runs one "board step". The hush text
// lives in templates/boot/uboot-ab.cmd and templates/boot/uboot-step-*.cmd; this module validates
// the options, fills the templates and compiles the result with encodeScriptImage.
//
// The state variables are the ones an otapack bundle sets through `bootenv`:
//   rootpart           decimal partition number of the slot to boot (2, 3, …)
//   upgrade_available  1 while a freshly installed slot is on trial
//   bootcount          trial boots counted so far (reset to 0 by the bundle and by the fallback)
//   bootlimit          failed trial boots tolerated before the fallback (1..9)
//   ustate             SWUpdate's update state; the fallback sets 3 (failed)
import { OtapackError } from '../errors.js';
import { encodeScriptImage, type ScriptImageOptions } from './uboot-image.js';
import { UBOOT_ENV_DEFAULT_SIZE } from './uboot-env.js';
import { renderBootTemplate } from './template.js';

/** Variables the boot script imports from and exports to the env file, in this order. */
export const UBOOT_AB_STATE_VARS = ['rootpart', 'upgrade_available', 'bootcount', 'bootlimit', 'ustate'] as const;

/** U-Boot's CONFIG_SYS_MAXARGS is 16 on common builds: `env export -c -s SIZE ADDR` leaves room for 10 names. */
const MAX_STATE_VARS = 10;

export type UbootBoardStep =
  /** (a) The board's own boot script (already patched, see board-script.ts), stored as a legacy
   *  script image on the boot partition under `file`. */
  | { kind: 'boot-script'; file: string }
  /** (b) A boot script inside the slot rootfs (Armbian: /boot/boot.scr, prefix /boot/); it must be
   *  the patched one, so convert writes the patched script into both slots. */
  | { kind: 'slot-script'; path?: string; prefix?: string }
  /** (c) `sysboot` an extlinux.conf, either on the boot partition or inside the slot. */
  | { kind: 'extlinux'; location: 'boot' | 'slot'; path?: string }
  /** (d) Generic: load kernel (+ initrd + dtb) from the slot and boot it. */
  | {
    kind: 'kernel';
    /** Path inside the slot, e.g. /boot/Image. */
    kernel: string;
    initrd?: string;
    /** `raw` (cpio.gz: booti needs addr:size) or `uimage` (mkimage-wrapped uInitrd). Default raw. */
    initrdFormat?: 'raw' | 'uimage';
    /** Device tree path inside the slot (may use ${fdtfile}); default: the firmware's ${fdt_addr}. */
    fdt?: string;
    /** Kernel command line without root= (otapack adds root=${otapack_root}). */
    bootargs: string;
    /** booti (arm64 Image), bootz (arm zImage) or bootm (uImage/FIT). Default booti. */
    bootCmd?: 'booti' | 'bootz' | 'bootm';
  };

export interface UbootAbOptions {
  /** Partition number of the FAT boot/state partition holding boot.scr and the env file. */
  bootPart: number;
  /** Partition numbers of slot A and slot B (rootfs copies). */
  slotA: number;
  slotB: number;
  /**
   * Env file name on the boot partition. Default otapack.env. Not uboot.env: a board U-Boot built
   * with ENV_IS_IN_FAT loads a valid uboot.env from the boot partition as its whole environment,
   * which would leave it with only otapack's variables and no bootcmd.
   */
  envFile?: string;
  /** Allow envFile names a board U-Boot may use natively (uboot.env, uboot-redund.env) — only for
   *  boards known to have no ENV_IS_IN_FAT, such as Debian's qemu_arm64 build. */
  allowNativeEnvName?: boolean;
  /** Env image size; must equal the size in fw_env.config. Default 0x4000. */
  envSize?: number;
  /** Failed trial boots tolerated before the fallback, 1..9. Default 3. */
  bootlimit?: number;
  /** More env-file variables to carry through U-Boot's rewrite (at most 5; names [A-Za-z0-9_]). */
  extraVars?: string[];
  /** Device used when the script was not started by distro boot (no ${devtype}). Default mmc 0. */
  defaultDevice?: { devtype: string; devnum: number };
  /**
   * Used for otapack_root when `part uuid` fails (no partition UUIDs): prefix + decimal partition
   * number, e.g. /dev/mmcblk0p. Without it root= stays empty and the failure shows on the console.
   */
  rootFallbackPrefix?: string;
  /** What to run once the slot is chosen. */
  boardStep: UbootBoardStep;
  /** When the board step returns during a trial boot, `reset` so the next attempt is counted. Default true. */
  resetOnFailedTrial?: boolean;
}

const SAFE_PATH = /^\/?[A-Za-z0-9._+-]+(\/[A-Za-z0-9._+-]+)*$/;
const SAFE_DT_PATH = /^\/?([A-Za-z0-9._+-]+|\$\{fdtfile\})(\/([A-Za-z0-9._+-]+|\$\{fdtfile\}))*$/;

function bad(message: string): never {
  throw new OtapackError('CONFIG', `U-Boot A/B script: ${message}`);
}

function partNo(what: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 128) bad(`${what} must be a partition number 1..128, got ${String(n)}`);
  return n;
}

function path(what: string, p: string | undefined, re = SAFE_PATH): string {
  if (typeof p !== 'string' || !re.test(p) || p.includes('..')) {
    bad(`${what} ${JSON.stringify(p)} must be a plain path of letters, digits and . _ + - /`);
  }
  return p;
}

/** The hexadecimal form U-Boot parses in `dev:part` strings. */
export const ubootPartToken = (n: number): string => n.toString(16);

interface Resolved {
  bootPart: number;
  slotA: number;
  slotB: number;
  envFile: string;
  envSize: number;
  bootlimit: number;
  vars: string[];
  devtype: string;
  devnum: number;
  rootFallbackPrefix: string | undefined;
  step: UbootBoardStep;
  resetOnFailedTrial: boolean;
}

function resolve(o: UbootAbOptions): Resolved {
  const bootPart = partNo('bootPart', o.bootPart);
  const slotA = partNo('slotA', o.slotA);
  const slotB = partNo('slotB', o.slotB);
  if (new Set([bootPart, slotA, slotB]).size !== 3) bad(`bootPart ${bootPart}, slotA ${slotA} and slotB ${slotB} must be three different partitions`);
  const envFile = path('envFile', o.envFile ?? 'otapack.env');
  if (/^\/?uboot(-redund)?\.env$/i.test(envFile) && !o.allowNativeEnvName) {
    bad(`envFile ${envFile} is the file a U-Boot with ENV_IS_IN_FAT loads as its own environment; use another name (default otapack.env) or set allowNativeEnvName`);
  }
  const envSize = o.envSize ?? UBOOT_ENV_DEFAULT_SIZE;
  if (!Number.isInteger(envSize) || envSize < 0x100 || envSize > 0x100000) bad(`envSize ${envSize} must be between 0x100 and 0x100000`);
  const bootlimit = o.bootlimit ?? 3;
  if (!Number.isInteger(bootlimit) || bootlimit < 1 || bootlimit > 9) {
    bad(`bootlimit ${bootlimit} must be 1..9 (U-Boot counts in hexadecimal; single digits read the same in both)`);
  }
  const extra = o.extraVars ?? [];
  for (const v of extra) {
    if (!/^[A-Za-z0-9_]+$/.test(v)) bad(`extra variable name ${JSON.stringify(v)} must be letters, digits and _`);
    if ((UBOOT_AB_STATE_VARS as readonly string[]).includes(v) || v.startsWith('otapack_')) bad(`extra variable ${v} is reserved`);
  }
  const vars = [...UBOOT_AB_STATE_VARS, ...new Set(extra)];
  if (vars.length > MAX_STATE_VARS) bad(`at most ${MAX_STATE_VARS - UBOOT_AB_STATE_VARS.length} extra variables fit on one env export command line`);
  const devtype = o.defaultDevice?.devtype ?? 'mmc';
  const devnum = o.defaultDevice?.devnum ?? 0;
  if (!/^[a-z][a-z0-9_]*$/.test(devtype)) bad(`default devtype ${JSON.stringify(devtype)} is not a U-Boot interface name`);
  if (!Number.isInteger(devnum) || devnum < 0 || devnum > 255) bad(`default devnum ${devnum} must be 0..255`);
  if (o.rootFallbackPrefix !== undefined && !/^\/dev\/[A-Za-z0-9_/-]*$/.test(o.rootFallbackPrefix)) {
    bad(`rootFallbackPrefix ${JSON.stringify(o.rootFallbackPrefix)} must look like /dev/mmcblk0p`);
  }
  const step = o.boardStep;
  if (!step || typeof step !== 'object') bad('boardStep is required');
  return {
    bootPart, slotA, slotB, envFile, envSize, bootlimit, vars, devtype, devnum,
    rootFallbackPrefix: o.rootFallbackPrefix, step, resetOnFailedTrial: o.resetOnFailedTrial ?? true,
  };
}

function checkBootargs(args: string): string {
  if (typeof args !== 'string' || /["'`;\\#\n\r]/.test(args)) bad(`bootargs ${JSON.stringify(args)} must not contain quotes, ; \\ # or newlines`);
  if (/(^|\s)root=/.test(args)) bad('bootargs must not contain root=: otapack adds root=${otapack_root}');
  if (/\$(?!\{[A-Za-z0-9_]+\})/.test(args)) bad('bootargs may use $ only as ${name}');
  return args.trim();
}

function boardStep(r: Resolved): string {
  const s = r.step;
  switch (s.kind) {
    case 'boot-script':
      return renderBootTemplate('uboot-step-boot-script.cmd', { FILE: path('board script file', s.file), BOOTPART: String(r.bootPart) });
    case 'slot-script': {
      const p = path('slot script path', s.path ?? '/boot/boot.scr');
      let prefix = s.prefix ?? p.slice(0, p.lastIndexOf('/') + 1);
      if (prefix === '') prefix = '/';
      if (!/^\/([A-Za-z0-9._+-]+\/)*$/.test(prefix)) bad(`slot script prefix ${JSON.stringify(prefix)} must start and end with /`);
      return renderBootTemplate('uboot-step-slot-script.cmd', { PATH: p, PREFIX: prefix });
    }
    case 'extlinux': {
      if (s.location !== 'boot' && s.location !== 'slot') bad(`extlinux location must be boot or slot, got ${String(s.location)}`);
      const def = s.location === 'slot' ? '/boot/extlinux/extlinux.conf' : '/otapack/extlinux.conf';
      const p = path('extlinux.conf path', s.path ?? def);
      if (s.location === 'boot' && /^\/?(boot\/)?extlinux\/extlinux\.conf$/.test(p)) {
        // distro boot scans extlinux/extlinux.conf before boot.scr: it would bypass otapack
        bad(`extlinux.conf on the boot partition must not be at ${p}: U-Boot distro boot would start it before boot.scr`);
      }
      return renderBootTemplate('uboot-step-extlinux.cmd', { PART: s.location === 'slot' ? '${rootpart}' : '${otapack_bootpart}', PATH: p });
    }
    case 'kernel': {
      const kernel = path('kernel path', s.kernel);
      const bootCmd = s.bootCmd ?? 'booti';
      if (!['booti', 'bootz', 'bootm'].includes(bootCmd)) bad(`bootCmd ${String(bootCmd)} must be booti, bootz or bootm`);
      const args = checkBootargs(s.bootargs);
      let initrd = '# no initrd';
      if (s.initrd !== undefined) {
        const ip = path('initrd path', s.initrd);
        const fmt = s.initrdFormat ?? 'raw';
        if (fmt !== 'raw' && fmt !== 'uimage') bad(`initrdFormat ${String(fmt)} must be raw or uimage`);
        const ref = fmt === 'raw' ? '${ramdisk_addr_r}:${filesize}' : '${ramdisk_addr_r}';
        initrd = [
          'if test -z "${ramdisk_addr_r}"; then',
          '  echo otapack: ERROR this U-Boot defines no ramdisk_addr_r',
          '  setenv otapack_loaded 0',
          `elif load \${devtype} \${devnum}:\${rootpart} \${ramdisk_addr_r} ${ip}; then`,
          `  setenv otapack_initrd ${ref}`,
          'else',
          `  echo otapack: ERROR cannot load ${ip} from slot \${otapack_slot}`,
          '  setenv otapack_loaded 0',
          'fi',
        ].join('\n');
      }
      let fdt = '# device tree: the one the firmware passes in ${fdt_addr}';
      if (s.fdt !== undefined) {
        const fp = path('fdt path', s.fdt, SAFE_DT_PATH);
        fdt = [
          'if test -z "${fdt_addr_r}"; then',
          '  echo otapack: WARNING no fdt_addr_r - using the firmware device tree',
          `elif load \${devtype} \${devnum}:\${rootpart} \${fdt_addr_r} ${fp}; then`,
          '  setenv otapack_fdt ${fdt_addr_r}',
          'else',
          `  echo otapack: WARNING cannot load ${fp} from slot \${otapack_slot} - using the firmware device tree`,
          'fi',
        ].join('\n');
      }
      return renderBootTemplate('uboot-step-kernel.cmd', {
        BOOTARGS: `${args} root=\${otapack_root}`.trim(), KERNEL: kernel, INITRD: initrd, FDT: fdt, BOOTCMD: bootCmd,
      });
    }
    default:
      return bad(`unknown board step ${JSON.stringify((s as { kind?: unknown }).kind)}`);
  }
}

/** U-Boot's CONFIG_SYS_MAXARGS on the builds otapack targets (qemu_arm64, sunxi, rockchip). */
export const HUSH_MAX_ARGS = 16;

/** Words of each simple command on a line (quoted strings count as one word; comments dropped). */
function commandWords(line: string): string[][] {
  const out: string[][] = [];
  let words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote = '';
  const flush = (): void => { if (inWord) { words.push(cur); cur = ''; inWord = false; } };
  const end = (): void => { flush(); if (words.length) out.push(words); words = []; };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) { cur += c; if (c === quote) quote = ''; continue; }
    if (c === '"') { quote = c; cur += c; inWord = true; continue; }
    if (c === '#' && !inWord) break;
    if (c === ';') { end(); continue; }
    if (c === '&' && line[i + 1] === '&') { end(); i++; continue; }
    if (c === '|' && line[i + 1] === '|') { end(); i++; continue; }
    if (/\s/.test(c)) { flush(); continue; }
    cur += c;
    inWord = true;
  }
  end();
  // leading keywords are not arguments
  return out.map((w) => { let k = 0; while (k < w.length && ['if', 'then', 'else', 'elif', 'do', 'while', 'until', 'for'].includes(w[k]!)) k++; return w.slice(k); })
    .filter((w) => w.length && !['fi', 'done'].includes(w[0]!));
}

/**
 * Refuses script text that would trip U-Boot's hush: any apostrophe (in a double-quoted echo it
 * aborts the whole script; even in comments it is cheap to avoid), quote characters on echo lines,
 * and commands with more than HUSH_MAX_ARGS words (echo then prints its usage instead of the text).
 */
export function assertHushSafe(text: string, what = 'boot script'): void {
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const where = `${what} line ${i + 1}`;
    if (line.includes("'")) throw new OtapackError('INTERNAL', `${where} contains an apostrophe, which U-Boot hush mis-parses: ${line.trim()}`);
    if (/^\s*echo\b/.test(line) && line.includes('"')) throw new OtapackError('INTERNAL', `${where}: quote characters inside echo text: ${line.trim()}`);
    for (const words of commandWords(line)) {
      if (words.length > HUSH_MAX_ARGS) throw new OtapackError('INTERNAL', `${where}: ${words.length} words, more than U-Boot's ${HUSH_MAX_ARGS} arguments: ${line.trim()}`);
    }
  });
}

/** The hush text of the A/B boot script. */
export function generateUbootAbScript(opts: UbootAbOptions): string {
  const r = resolve(opts);
  const envSize = `0x${r.envSize.toString(16)}`;
  const rootFallback = r.rootFallbackPrefix
    ? `  setenv otapack_root ${r.rootFallbackPrefix}\${rootpart}\n  echo otapack: using root=\${otapack_root} instead`
    : '  echo otapack: WARNING root= stays empty (no rootFallbackPrefix)';
  const onFailure = r.resetOnFailedTrial
    ? ['if test "${upgrade_available}" = "1"; then', '  echo otapack: resetting so the failed trial boot is counted', '  reset', 'fi'].join('\n')
    : '# resetOnFailedTrial is off: U-Boot continues with its next boot source';
  const text = renderBootTemplate('uboot-ab.cmd', {
    BOOTPART: String(r.bootPart),
    BOOTPART_HEX: ubootPartToken(r.bootPart),
    ENVFILE: r.envFile,
    ENVSIZE: envSize,
    DEFAULT_DEVTYPE: r.devtype,
    DEFAULT_DEVNUM: String(r.devnum),
    VARS: r.vars.join(' '),
    SLOT_A: String(r.slotA),
    SLOT_B: String(r.slotB),
    SLOT_A_HEX: ubootPartToken(r.slotA),
    SLOT_B_HEX: ubootPartToken(r.slotB),
    BOOTLIMIT: String(r.bootlimit),
    ROOT_FALLBACK: rootFallback,
    BOARD_STEP: boardStep(r).trimEnd(),
    ON_FAILURE: onFailure,
  });
  assertHushSafe(text);
  return text;
}

/** Name written into the legacy image header (≤ 32 bytes). */
export const UBOOT_AB_IMAGE_NAME = 'otapack A/B boot';

/** boot.scr bytes: the generated script compiled as `mkimage -T script` would. */
export function buildUbootAbScript(opts: UbootAbOptions, image: ScriptImageOptions = {}): Buffer {
  return encodeScriptImage(generateUbootAbScript(opts), UBOOT_AB_IMAGE_NAME, image);
}

/** Initial content of the env file (encode with encodeUbootEnv(vars, envSize)). */
export function initialUbootAbEnv(opts: Pick<UbootAbOptions, 'slotA' | 'slotB' | 'bootlimit'>, active: 'A' | 'B' = 'A'): Record<string, string> {
  const slotA = partNo('slotA', opts.slotA);
  const slotB = partNo('slotB', opts.slotB);
  const bootlimit = opts.bootlimit ?? 3;
  if (!Number.isInteger(bootlimit) || bootlimit < 1 || bootlimit > 9) bad(`bootlimit ${bootlimit} must be 1..9`);
  return { bootcount: '0', bootlimit: String(bootlimit), rootpart: String(active === 'A' ? slotA : slotB), upgrade_available: '0' };
}

/** The `bootenv` entries an otapack bundle sets to start a trial boot of `partition`. */
export function trialBootEnv(partition: number): { name: string; value: string }[] {
  return [
    { name: 'rootpart', value: String(partNo('partition', partition)) },
    { name: 'upgrade_available', value: '1' },
    { name: 'bootcount', value: '0' },
  ];
}

/** One line of /etc/fw_env.config for the env file as Linux sees it. */
export function fwEnvConfigLine(deviceFile: string, envSize = UBOOT_ENV_DEFAULT_SIZE): string {
  if (!/^\/[^\s]+$/.test(deviceFile)) throw new OtapackError('CONFIG', `fw_env.config: ${JSON.stringify(deviceFile)} must be an absolute path without spaces`);
  return `${deviceFile} 0x0 0x${envSize.toString(16)}`;
}

export interface UbootAbMarker {
  slot: 'A' | 'B';
  partition: number;
  bootcount: string;
  upgradeAvailable: string;
}

/** The marker line the script prints: `otapack: booting slot A (partition 2) bootcount=0 upgrade_available=0`. */
export const UBOOT_AB_MARKER_RE = /otapack: booting slot ([AB]) \(partition (\d+)\) bootcount=(\S*) upgrade_available=(\S*)/;

/** Every marker in a console log, in order. */
export function parseAbMarkers(log: string): UbootAbMarker[] {
  const re = new RegExp(UBOOT_AB_MARKER_RE.source, 'g');
  return [...log.matchAll(re)].map((m) => ({ slot: m[1] as 'A' | 'B', partition: Number(m[2]), bootcount: m[3]!, upgradeAvailable: m[4]! }));
}
