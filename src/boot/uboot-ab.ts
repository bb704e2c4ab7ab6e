// Generator of otapack's U-Boot A/B boot script (boot.scr on the boot partition).
//
// The script wraps the board's own boot logic: it chooses the slot from a U-Boot environment file
// on the FAT boot partition (the file SWUpdate `-B uboot` writes through libubootenv), counts trial
// boots, falls back after `bootlimit` failed trials, and then runs one "board step". The hush text
// lives in templates/boot/uboot-ab.cmd and templates/boot/uboot-step-*.cmd; this module validates
// the options and fills the templates (convert compiles the text into boot.scr with encodeScriptImage).
//
// Every state variable comes from the update client's boot-state scheme (scheme.ts): the slot
// variable (decimal partition number) and its mirrors, the trial flag, the counter, the limit, what
// the fallback sets and what is carried through the env file. SWUpdate's scheme gives rootpart,
// upgrade_available, bootcount, bootlimit and ustate; Mender's mender_boot_part(+_hex),
// upgrade_available, bootcount and bootlimit. The script's own run-time variables are otapack_*,
// and `rootpart`, which it sets to the chosen slot's hexadecimal partition just before the board
// step (patched board scripts load from ${rootpart}); it is never written back to the env file.
import { OtapackError } from '../errors.js';
import { UBOOT_ENV_DEFAULT_SIZE } from './uboot-env.js';
import { renderTemplate } from '../util/template.js';
import {
  MAX_STATE_VARS, fallbackAssignments, fallbackNote, initialState, slotAssignments, stateVars, trialScheme,
  type BootScheme, type TrialScheme,
} from './scheme.js';

/** The U-Boot run-time variable the board step reads the chosen partition (hex) from. */
const RUNTIME_ROOTPART = 'rootpart';

const render = (name: string, values: Record<string, string>): string => renderTemplate(`boot/${name}`, values);

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
  /** The update client's boot-state variables (SWUPDATE_BOOT_SCHEME, MENDER_BOOT_SCHEME). */
  scheme: BootScheme;
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
  /**
   * How trial boots are counted: `setexpr` (default; setexpr and itest, hexadecimal) or `test`, a
   * decimal lookup chain compared with `test -gt`, for a U-Boot built without setexpr or itest
   * (Debian's RockPro64 and qemu-x86_64 builds have no setexpr).
   */
  counter?: 'setexpr' | 'test';
  /**
   * The slots' PARTUUIDs, written into the script, for a U-Boot without the `part` command.
   * Default: `part uuid` reads them at boot.
   */
  partuuids?: { a: string; b: string };
}

const SAFE_PATH = /^\/?[A-Za-z0-9._+-]+(\/[A-Za-z0-9._+-]+)*$/;
const PARTUUID_RE = /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{8}-[0-9a-fA-F]{2})$/;
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
  scheme: TrialScheme;
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
  counter: 'setexpr' | 'test';
  partuuids: { a: string; b: string } | undefined;
}

/** The scheme, checked for this generator: `rootpart` is the script's run-time variable unless it is the slot variable. */
function schemeOf(o: Pick<UbootAbOptions, 'scheme'>): TrialScheme {
  const scheme = trialScheme(o.scheme, 'U-Boot A/B script');
  if (scheme.slotVar !== RUNTIME_ROOTPART && stateVars(scheme).includes(RUNTIME_ROOTPART)) {
    bad(`the ${scheme.client} scheme uses ${RUNTIME_ROOTPART}, which the script sets to the hexadecimal partition for the board step`);
  }
  return scheme;
}

function resolve(o: UbootAbOptions): Resolved {
  const scheme = schemeOf(o);
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
  const state = stateVars(scheme);
  const extra = o.extraVars ?? [];
  for (const v of extra) {
    if (!/^[A-Za-z0-9_]+$/.test(v)) bad(`extra variable name ${JSON.stringify(v)} must be letters, digits and _`);
    if (state.includes(v) || v === RUNTIME_ROOTPART || v.startsWith('otapack_')) bad(`extra variable ${v} is reserved`);
  }
  const vars = [...state, ...new Set(extra)];
  if (vars.length > MAX_STATE_VARS) bad(`at most ${MAX_STATE_VARS - state.length} extra variables fit on one env export command line`);
  const devtype = o.defaultDevice?.devtype ?? 'mmc';
  const devnum = o.defaultDevice?.devnum ?? 0;
  if (!/^[a-z][a-z0-9_]*$/.test(devtype)) bad(`default devtype ${JSON.stringify(devtype)} is not a U-Boot interface name`);
  if (!Number.isInteger(devnum) || devnum < 0 || devnum > 255) bad(`default devnum ${devnum} must be 0..255`);
  if (o.rootFallbackPrefix !== undefined && !/^\/dev\/[A-Za-z0-9_/-]*$/.test(o.rootFallbackPrefix)) {
    bad(`rootFallbackPrefix ${JSON.stringify(o.rootFallbackPrefix)} must look like /dev/mmcblk0p`);
  }
  const step = o.boardStep;
  if (!step || typeof step !== 'object') bad('boardStep is required');
  const counter = o.counter ?? 'setexpr';
  if (counter !== 'setexpr' && counter !== 'test') bad(`counter ${String(counter)} must be setexpr or test`);
  if (o.partuuids) {
    const ok = (u: string): boolean => PARTUUID_RE.test(u);
    if (!ok(o.partuuids.a) || !ok(o.partuuids.b)) bad('partuuids must be GPT GUIDs or MBR xxxxxxxx-NN ids');
  }
  return {
    scheme, bootPart, slotA, slotB, envFile, envSize, bootlimit, vars, devtype, devnum,
    rootFallbackPrefix: o.rootFallbackPrefix, step, resetOnFailedTrial: o.resetOnFailedTrial ?? true,
    counter, partuuids: o.partuuids && { a: o.partuuids.a.toLowerCase(), b: o.partuuids.b.toLowerCase() },
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
      return render('uboot-step-boot-script.cmd', { FILE: path('board script file', s.file), BOOTPART: String(r.bootPart) });
    case 'slot-script': {
      const p = path('slot script path', s.path ?? '/boot/boot.scr');
      let prefix = s.prefix ?? p.slice(0, p.lastIndexOf('/') + 1);
      if (prefix === '') prefix = '/';
      if (!/^\/([A-Za-z0-9._+-]+\/)*$/.test(prefix)) bad(`slot script prefix ${JSON.stringify(prefix)} must start and end with /`);
      return render('uboot-step-slot-script.cmd', { PATH: p, PREFIX: prefix });
    }
    case 'extlinux': {
      if (s.location !== 'boot' && s.location !== 'slot') bad(`extlinux location must be boot or slot, got ${String(s.location)}`);
      const def = s.location === 'slot' ? '/boot/extlinux/extlinux.conf' : '/otapack/extlinux.conf';
      const p = path('extlinux.conf path', s.path ?? def);
      if (s.location === 'boot' && /^\/?(boot\/)?extlinux\/extlinux\.conf$/.test(p)) {
        // distro boot scans extlinux/extlinux.conf before boot.scr: it would bypass otapack
        bad(`extlinux.conf on the boot partition must not be at ${p}: U-Boot distro boot would start it before boot.scr`);
      }
      return render('uboot-step-extlinux.cmd', { PART: s.location === 'slot' ? '${rootpart}' : '${otapack_bootpart}', PATH: p });
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
      return render('uboot-step-kernel.cmd', {
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

const setenv = (assignments: [string, string][], indent: string): string[] => assignments.map(([k, v]) => `${indent}setenv ${k} ${v}`);

/** The hush text of the A/B boot script. */
export function generateUbootAbScript(opts: UbootAbOptions): string {
  const r = resolve(opts);
  const s = r.scheme;
  const envSize = `0x${r.envSize.toString(16)}`;
  const rootFallback = r.rootFallbackPrefix
    ? `  setenv otapack_root ${r.rootFallbackPrefix}\${${s.slotVar}}\n  echo otapack: using root=\${otapack_root} instead`
    : '  echo otapack: WARNING root= stays empty (no rootFallbackPrefix)';
  const count = s.countVar;
  const increment = r.counter === 'setexpr'
    ? `  setexpr ${count} \${${count}} + 1`
    : [
      // no setexpr/itest in this U-Boot: the counter steps through decimal values (bootlimit is 1..9)
      ...Array.from({ length: 10 }, (_, n) => `  ${n === 0 ? 'if' : 'elif'} test "\${${count}}" = "${n}"; then setenv ${count} ${n + 1}`),
      `  else setenv ${count} 10`,
      '  fi',
    ].join('\n');
  const counterNote = r.counter === 'setexpr'
    ? [
      '#  - setexpr and itest work in hexadecimal and test -gt in decimal: counters use setexpr/itest only,',
      `#    and ${s.limitVar} is kept between 1 and 9, where both notations agree`,
    ].join('\n')
    : [
      '#  - this U-Boot has no setexpr or itest: the counter steps through the decimal values 0..10 with',
      `#    test, and test -gt compares them (${s.limitVar} is kept between 1 and 9)`,
    ].join('\n');
  const rootFromPartuuid = r.partuuids
    ? [
      '# this U-Boot has no part command: the PARTUUIDs otapack gave the slots are written in here',
      'if test "${otapack_slot}" = "B"; then',
      `  setenv otapack_root PARTUUID=${r.partuuids.b}`,
      'else',
      `  setenv otapack_root PARTUUID=${r.partuuids.a}`,
      'fi',
    ].join('\n')
    : [
      'setenv otapack_partuuid',
      'setenv otapack_root',
      'if part uuid ${devtype} ${devnum}:${otapack_part} otapack_partuuid; then',
      '  setenv otapack_root PARTUUID=${otapack_partuuid}',
      'else',
      '  echo otapack: WARNING no partition UUID for ${devtype} ${devnum}:${otapack_part}',
      rootFallback,
      'fi',
    ].join('\n');
  const onFailure = r.resetOnFailedTrial
    ? [`if test "\${${s.trialVar}}" = "1"; then`, '  echo otapack: resetting so the failed trial boot is counted', '  reset', 'fi'].join('\n')
    : '# resetOnFailedTrial is off: U-Boot continues with its next boot source';
  const text = render('uboot-ab.cmd', {
    SLOT_VAR: s.slotVar,
    TRIAL_VAR: s.trialVar,
    COUNT_VAR: s.countVar,
    LIMIT_VAR: s.limitVar,
    FALLBACK_NOTE: fallbackNote(s),
    SELECT_A: setenv(slotAssignments(s, r.slotA), '').join('; '),
    SELECT_B: setenv(slotAssignments(s, r.slotB), '').join('; '),
    DEFAULTS: setenv(initialState(s, r.slotA, r.bootlimit), '  ').join('\n'),
    FALLBACK: setenv(fallbackAssignments(s), '    ').join('\n'),
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
    COUNTER_NOTE: counterNote,
    INT_TEST: r.counter === 'setexpr' ? 'itest' : 'test',
    INCREMENT: increment,
    ROOT_FROM_PARTUUID: rootFromPartuuid,
    BOARD_STEP: boardStep(r).trimEnd(),
    ON_FAILURE: onFailure,
  });
  assertHushSafe(text);
  return text;
}

/** Name written into the legacy image header (≤ 32 bytes). */
export const UBOOT_AB_IMAGE_NAME = 'otapack A/B boot';

/**
 * Initial content of the env file (encode with encodeUbootEnv(vars, envSize)): the scheme's slot
 * variables selecting `active`, no trial, counter 0, the limit; in name order, as U-Boot's
 * `env export` and libubootenv write it.
 */
export function initialUbootAbEnv(opts: Pick<UbootAbOptions, 'scheme' | 'slotA' | 'slotB' | 'bootlimit'>, active: 'A' | 'B' = 'A'): Record<string, string> {
  const scheme = schemeOf(opts);
  const slotA = partNo('slotA', opts.slotA);
  const slotB = partNo('slotB', opts.slotB);
  const bootlimit = opts.bootlimit ?? 3;
  if (!Number.isInteger(bootlimit) || bootlimit < 1 || bootlimit > 9) bad(`bootlimit ${bootlimit} must be 1..9`);
  const vars = initialState(scheme, active === 'A' ? slotA : slotB, bootlimit);
  return Object.fromEntries(vars.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** One line of /etc/fw_env.config for the env file as Linux sees it. */
export function fwEnvConfigLine(deviceFile: string, envSize = UBOOT_ENV_DEFAULT_SIZE): string {
  if (!/^\/[^\s]+$/.test(deviceFile)) throw new OtapackError('CONFIG', `fw_env.config: ${JSON.stringify(deviceFile)} must be an absolute path without spaces`);
  return `${deviceFile} 0x0 0x${envSize.toString(16)}`;
}
