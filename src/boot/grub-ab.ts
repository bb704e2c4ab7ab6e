// Generator of otapack's GRUB A/B configuration (the grub.cfg GRUB reads from the ESP), and the
// patcher for a board's own grub.cfg.
//
// Same rules as the U-Boot script (uboot-ab.ts), with the state variables of the update client's
// boot-state scheme (scheme.ts) kept in a grubenv block on the ESP. With SWUpdate's scheme:
//   rootpart (decimal partition number of the slot), upgrade_available, bootcount, bootlimit (1..9),
//   ustate (3 after a fallback). SWUpdate `-B grub` edits the same block (its path is compiled in:
//   /boot/grub/grubenv on Debian), so a bundle's `bootenv` selects the slot.
// The GRUB script lives in templates/boot/grub-ab.cfg and templates/boot/grub-step-*.cfg.
import { OtapackError } from '../errors.js';
import { renderTemplate } from '../util/template.js';
import type { BoardEdit, PatchResult } from './board-script.js';
import { OTAPACK_ROOT_REF } from './board-script.js';
import {
  fallbackAssignments, fallbackNote, initialState, slotAssignments, stateVars, trialScheme,
  type BootScheme, type TrialScheme,
} from './scheme.js';

const render = (name: string, values: Record<string, string>): string => renderTemplate(`boot/${name}`, values);

export type GrubBoardStep =
  /** `configfile` the board's grub.cfg (patched with patchGrubCfg), from the ESP or from the slot. */
  | { kind: 'configfile'; location: 'esp' | 'slot'; path: string }
  /** Boot `linux`/`initrd` from the slot directly. */
  | { kind: 'kernel'; kernel: string; initrd?: string; bootargs: string };

export interface GrubAbOptions {
  /** The update client's boot-state variables (SWUPDATE_BOOT_SCHEME, MENDER_BOOT_SCHEME). */
  scheme: BootScheme;
  /** Partition numbers of slot A and slot B. */
  slotA: number;
  slotB: number;
  /** grubenv path on the partition GRUB starts from (the ESP). Default /EFI/BOOT/grubenv. */
  envFile?: string;
  /** GRUB partition map name: gpt (default) or msdos. */
  partmap?: 'gpt' | 'msdos';
  /** Known PARTUUIDs of the slots, written in; without them GRUB probes them (`probe --part-uuid`, needs the probe module). */
  partuuids?: { a: string; b: string };
  /** Partition number of the partition GRUB reads this config from (the ESP): finds the disk without regexp. Default 1. */
  espPartition?: number;
  /** Modules to load first with insmod: ones the GRUB image has in its module folder rather than built in. */
  insmod?: string[];
  /** Failed trial boots tolerated before the fallback, 1..9. Default 3. */
  bootlimit?: number;
  /** More grubenv variables to load and save (names [A-Za-z0-9_]). */
  extraVars?: string[];
  /** Used for otapack_root when no PARTUUID is known: prefix + decimal partition, e.g. /dev/sda. */
  rootFallbackPrefix?: string;
  boardStep: GrubBoardStep;
  /** When the board step returns during a trial boot, `reboot` so the next attempt is counted. Default true. */
  rebootOnFailedTrial?: boolean;
}

const SAFE_PATH = /^\/[A-Za-z0-9._+-]+(\/[A-Za-z0-9._+-]+)*$/;
const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MBR_PARTUUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{2}$/;

function bad(message: string): never {
  throw new OtapackError('CONFIG', `GRUB A/B config: ${message}`);
}

function partNo(what: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 128) bad(`${what} must be a partition number 1..128, got ${String(n)}`);
  return n;
}

function path(what: string, p: unknown): string {
  if (typeof p !== 'string' || !SAFE_PATH.test(p) || p.includes('..')) bad(`${what} ${JSON.stringify(p)} must be an absolute path of letters, digits and . _ + - /`);
  return p;
}

function checkBootargs(args: unknown): string {
  if (typeof args !== 'string' || /["'`;\\\n\r{}|&<>]/.test(args.replace(/\$\{[A-Za-z0-9_]+\}/g, ''))) {
    bad(`bootargs ${JSON.stringify(args)} must not contain quotes, ; \\ | & < > or newlines`);
  }
  if (/\$(?!\{[A-Za-z0-9_]+\})/.test(args)) bad('bootargs may use $ only as ${name}');
  if (/(^|\s)root=/.test(args)) bad('bootargs must not contain root=: otapack adds root=${otapack_root}');
  return args.trim();
}

function boardStep(s: GrubBoardStep): string {
  if (!s || typeof s !== 'object') bad('boardStep is required');
  switch (s.kind) {
    case 'configfile': {
      if (s.location !== 'esp' && s.location !== 'slot') bad(`configfile location must be esp or slot, got ${String(s.location)}`);
      const p = path('board grub.cfg path', s.path);
      return render('grub-step-configfile.cfg', {
        SET_ROOT: s.location === 'slot' ? 'set root="${otapack_rootdev}"' : '# the board configuration stays on the ESP: root is unchanged',
        PATH: s.location === 'slot' ? `(\${otapack_rootdev})${p}` : `(\${root})${p}`,
      });
    }
    case 'kernel': {
      const kernel = path('kernel path', s.kernel);
      const args = checkBootargs(s.bootargs);
      const initrd = s.initrd === undefined ? '  # no initrd' : `  initrd "${path('initrd path', s.initrd)}"`;
      return render('grub-step-kernel.cfg', {
        KERNEL: kernel, BOOTARGS: `${args} root=\${otapack_root}`.trim(), INITRD: initrd,
      });
    }
    default:
      return bad(`unknown board step ${JSON.stringify((s as { kind?: unknown }).kind)}`);
  }
}

/** The grub.cfg text of the A/B logic. */
export function generateGrubAbConfig(o: GrubAbOptions): string {
  const s = trialScheme(o.scheme, 'GRUB A/B config');
  const state = stateVars(s);
  const slotA = partNo('slotA', o.slotA);
  const slotB = partNo('slotB', o.slotB);
  if (slotA === slotB) bad('slotA and slotB must be different partitions');
  const envFile = path('envFile', o.envFile ?? '/EFI/BOOT/grubenv');
  const partmap = o.partmap ?? 'gpt';
  if (partmap !== 'gpt' && partmap !== 'msdos') bad(`partmap ${String(partmap)} must be gpt or msdos`);
  const bootlimit = o.bootlimit ?? 3;
  if (!Number.isInteger(bootlimit) || bootlimit < 1 || bootlimit > 9) bad(`bootlimit ${bootlimit} must be 1..9`);
  const extra = o.extraVars ?? [];
  for (const v of extra) {
    if (!/^[A-Za-z0-9_]+$/.test(v)) bad(`extra variable name ${JSON.stringify(v)} must be letters, digits and _`);
    if (state.includes(v) || v.startsWith('otapack_')) bad(`extra variable ${v} is reserved`);
  }
  let partuuid: string;
  if (o.partuuids) {
    const ok = (u: string): boolean => GUID_RE.test(u) || MBR_PARTUUID_RE.test(u);
    if (!ok(o.partuuids.a) || !ok(o.partuuids.b)) bad('partuuids must be GPT GUIDs or MBR xxxxxxxx-NN ids');
    partuuid = `if [ "\${otapack_slot}" = "B" ]; then set otapack_partuuid=${o.partuuids.b.toLowerCase()}; else set otapack_partuuid=${o.partuuids.a.toLowerCase()}; fi`;
  } else {
    partuuid = 'probe --set=otapack_partuuid --part-uuid "(${otapack_rootdev})"';
  }
  const esp = partNo('espPartition', o.espPartition ?? 1);
  const insmod = o.insmod ?? [];
  for (const m of insmod) if (!/^[a-z0-9_]+$/.test(m)) bad(`insmod module ${JSON.stringify(m)} must be a GRUB module name`);
  const modules = ['loadenv', 'test', 'echo', o.boardStep?.kind === 'kernel' ? 'linux' : 'configfile', ...(o.rebootOnFailedTrial ?? true ? ['reboot'] : []), ...(o.partuuids ? [] : ['probe'])];
  if (o.rootFallbackPrefix !== undefined && !/^\/dev\/[A-Za-z0-9_/-]*$/.test(o.rootFallbackPrefix)) {
    bad(`rootFallbackPrefix ${JSON.stringify(o.rootFallbackPrefix)} must look like /dev/sda`);
  }
  const rootFallback = o.rootFallbackPrefix
    ? `  set otapack_root="${o.rootFallbackPrefix}\${${s.slotVar}}"`
    : '  echo "otapack: WARNING root= stays empty (no rootFallbackPrefix)"';
  const onFailure = (o.rebootOnFailedTrial ?? true)
    ? [`if [ "\${${s.trialVar}}" = "1" ]; then`, '  echo "otapack: rebooting so the failed trial boot is counted"', '  reboot', 'fi'].join('\n')
    : '# rebootOnFailedTrial is off: GRUB returns to its menu or prompt';
  const set = (assignments: [string, string][], indent: string): string[] => assignments.map(([k, v]) => `${indent}set ${k}=${v}`);
  const text = render('grub-ab.cfg', {
    SLOT_VAR: s.slotVar,
    TRIAL_VAR: s.trialVar,
    COUNT_VAR: s.countVar,
    LIMIT_VAR: s.limitVar,
    FALLBACK_NOTE: fallbackNote(s),
    SELECT_A: set(slotAssignments(s, slotA), '').join('; '),
    SELECT_B: set(slotAssignments(s, slotB), '').join('; '),
    DEFAULTS: set(initialState(s, slotA, bootlimit), '  ').join('\n'),
    FALLBACK: set(fallbackAssignments(s), '    ').join('\n'),
    SLOT_A: String(slotA),
    SLOT_B: String(slotB),
    ENVFILE: envFile,
    VARS: [...state, ...new Set(extra)].join(' '),
    BOOTLIMIT: String(bootlimit),
    PARTMAP: partmap,
    ESP: String(esp),
    INSMOD: insmod.length ? insmod.map((m) => `insmod ${m}`).join('\n') : '# every module it needs is built into the GRUB image (or loaded by it)',
    MODULES: modules.join(', '),
    PARTUUID: partuuid,
    ROOT_FALLBACK: rootFallback,
    BOARD_STEP: boardStep(o.boardStep).trimEnd(),
    ON_FAILURE: onFailure,
  });
  assertGrubConsoleSafe(text, 'GRUB config', { ...schemeWidths(s), otapack_env: 12 + envFile.length });
  return text;
}

/** Widest expected value of the config's own variables that it echoes. */
const VAR_WIDTH: Record<string, number> = {
  otapack_slot: 1, root: 10, otapack_rootdev: 10, otapack_root: 45, otapack_env: 40,
};

/** Widest expected value of the scheme's variables: partition numbers up to 3 digits, counters and marks 2. */
function schemeWidths(s: TrialScheme): Record<string, number> {
  const w: Record<string, number> = Object.fromEntries(stateVars(s).map((n) => [n, 2]));
  w[s.slotVar] = 3;
  for (const m of s.mirrors) w[m.name] = 3;
  return w;
}

/**
 * Echo lines must fit the 80-column EFI console (longer ones wrap, which breaks log matching):
 * refuses a line whose text, with each ${var} at its widest expected value, exceeds 79 columns.
 */
export function assertGrubConsoleSafe(text: string, what = 'GRUB config', widths: Record<string, number> = {}): void {
  text.split('\n').forEach((line, i) => {
    const m = /^\s*echo\s+"(.*)"\s*$/.exec(line);
    if (!m) return;
    const width = m[1]!.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_v, n: string) => 'x'.repeat(widths[n] ?? VAR_WIDTH[n] ?? 12)).length;
    if (width > 79) throw new OtapackError('INTERNAL', `${what} line ${i + 1}: echo text of about ${width} columns wraps on the EFI console: ${line.trim()}`);
  });
}

/** Initial grubenv variables (encode with encodeGrubenv): the slot variables selecting `active`, no trial, counter 0, the limit. */
export function initialGrubAbEnv(opts: Pick<GrubAbOptions, 'scheme' | 'slotA' | 'slotB' | 'bootlimit'>, active: 'A' | 'B' = 'A'): [string, string][] {
  const s = trialScheme(opts.scheme, 'GRUB A/B config');
  const slotA = partNo('slotA', opts.slotA);
  const slotB = partNo('slotB', opts.slotB);
  const bootlimit = opts.bootlimit ?? 3;
  if (!Number.isInteger(bootlimit) || bootlimit < 1 || bootlimit > 9) bad(`bootlimit ${bootlimit} must be 1..9`);
  return initialState(s, active === 'A' ? slotA : slotB, bootlimit);
}

export interface GrubCfgPatchOptions {
  /**
   * Where the board's kernels are read from after conversion: `esp` leaves its root device alone,
   * `slot` points `search … --set=root` and `set root=` lines (and the start) at ${otapack_rootdev}.
   */
  kernelFrom: 'esp' | 'slot';
  name?: string;
}

const LINUX_LINE = /^\s*(linux|linuxefi|linux16)\s/;

/** Patches a board grub.cfg: root= → root=${otapack_root}; with kernelFrom slot, its root device → the slot. */
export function patchGrubCfg(text: string, opts: GrubCfgPatchOptions): PatchResult {
  const name = opts.name ?? 'grub.cfg';
  if (opts.kernelFrom !== 'esp' && opts.kernelFrom !== 'slot') throw new OtapackError('CONFIG', `${name}: kernelFrom must be esp or slot`);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const edits: BoardEdit[] = [];
  let linuxLines = 0;
  let rootLines = 0;
  const setRoot = 'set root="${otapack_rootdev}"';
  const out = text.split(/\r?\n/).map((line, idx) => {
    const lineNo = idx + 1;
    if (/^\s*#/.test(line)) return line;
    if (LINUX_LINE.test(line)) {
      linuxLines++;
      if (/\sroot=/.test(line)) {
        rootLines++;
        const next = line.replace(/(\s)root=("[^"]*"|'[^']*'|\S*)/g, (m, pre: string, val: string) => (val === OTAPACK_ROOT_REF ? m : `${pre}root=${OTAPACK_ROOT_REF}`));
        if (next !== line) edits.push({ line: lineNo, kind: 'root-arg', before: line.trim(), after: next.trim() });
        return next;
      }
      return line;
    }
    if (opts.kernelFrom === 'slot') {
      const indent = /^\s*/.exec(line)![0];
      const isSearchRoot = /^\s*search(\.[a-z_]+)?\s/.test(line) && /(--set(=|\s+)root\b|\sroot\s*$)/.test(line);
      const isSetRoot = /^\s*set\s+root=/.test(line) && !line.includes('${otapack_rootdev}');
      if (isSearchRoot || isSetRoot) {
        const next = indent + setRoot;
        edits.push({ line: lineNo, kind: 'root-partition', before: line.trim(), after: setRoot });
        return next;
      }
    }
    return line;
  });
  if (linuxLines === 0) throw new OtapackError('INPUT', `${name}: no linux line; otapack cannot give the kernel the slot root`);
  if (rootLines === 0) throw new OtapackError('INPUT', `${name}: no linux line has root=; otapack cannot point it at the A/B slots`);
  if (opts.kernelFrom === 'slot' && !out.some((l) => l.trim() === setRoot)) {
    out.unshift(setRoot);
    edits.push({ line: 1, kind: 'root-partition', before: '', after: setRoot });
  }
  return { text: out.join(eol), edits };
}
