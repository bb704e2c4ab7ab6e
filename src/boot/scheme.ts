// Boot-state schemes: which variables an update client reads and writes in the boot loader's
// environment to choose the slot, start a trial boot and fall back. The A/B boot logic
// (uboot-ab.ts, grub-ab.ts) is generated from a scheme, so a new client brings its scheme as data
// (src/clients/<client>/scheme.ts) instead of a copy of the generators.
//
// The generated logic keeps its own run-time variables under otapack_* (and, in U-Boot, reuses
// `rootpart` as the hexadecimal partition for the board step); a scheme may not use those names.
import { OtapackError } from '../errors.js';

export type BootScheme = TrialScheme | BootOrderScheme;

/** Another variable that always holds the slot's partition number, in another notation. */
export interface SlotMirror {
  readonly name: string;
  readonly form: 'hex' | 'decimal';
}

/**
 * SWUpdate and Mender: one variable names the slot to boot (its decimal partition number); a
 * trial flag, a counter and a limit; after `limit` failed trial boots the boot loader swaps the slot.
 */
export interface TrialScheme {
  readonly kind: 'trial';
  /** The update client, e.g. 'swupdate' or 'mender'. */
  readonly client: string;
  /** Decimal partition number of the slot to boot: 'rootpart', 'mender_boot_part'. */
  readonly slotVar: string;
  /** Set together with slotVar wherever the slot changes: Mender's mender_boot_part_hex. */
  readonly mirrors: readonly SlotMirror[];
  /** 1 while a freshly installed slot is on trial: 'upgrade_available'. */
  readonly trialVar: string;
  /** Trial boots counted so far: 'bootcount'. */
  readonly countVar: string;
  /** Failed trial boots tolerated before the fallback (1..9): 'bootlimit'. */
  readonly limitVar: string;
  /** More assignments the fallback makes (besides trial=0, count=0): SWUpdate { ustate: '3' }. */
  readonly onFallback: Readonly<Record<string, string>>;
  /** What the onFallback values mean, for the comments of the generated logic: SWUpdate 'failed'. */
  readonly fallbackNote?: string;
  /** More state variables kept through the boot loader's rewrite of the env: SWUpdate ['ustate']. */
  readonly carry: readonly string[];
}

/** RAUC: BOOT_ORDER="A B" and BOOT_<slot>_LEFT counters (data now; generated when RAUC lands). */
export interface BootOrderScheme {
  readonly kind: 'order';
  readonly client: 'rauc';
  readonly orderVar: 'BOOT_ORDER';
  readonly leftVar: (slot: 'A' | 'B') => string;
  /** Boot attempts a slot gets (BOOT_<slot>_LEFT after an install). */
  readonly attempts: number;
}

/**
 * Most state variables one U-Boot `env export -c -s SIZE ADDR var…` (and `env import -c ADDR
 * SIZE var…`) line can name: CONFIG_SYS_MAXARGS is 16 on common builds and 6 words are the command.
 */
export const MAX_STATE_VARS = 10;

const NAME_RE = /^[A-Za-z0-9_]+$/;
/** Values written into boot scripts as they are: no quoting needed in hush or GRUB. */
const VALUE_RE = /^[A-Za-z0-9_.:+-]+$/;

function bad(client: unknown, message: string): never {
  throw new OtapackError('CONFIG', `boot-state scheme ${typeof client === 'string' && client ? client : '(unnamed)'}: ${message}`);
}

function checkName(client: string, what: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) bad(client, `${what} ${JSON.stringify(name)} must be letters, digits and _`);
  if (name.startsWith('otapack_')) bad(client, `${what} ${name} clashes with the otapack_* variables the boot logic uses at run time`);
  return name;
}

/** The env import/export list: slot, mirrors, trial, count, limit, carried, then fallback-only names. */
export function stateVars(s: TrialScheme): string[] {
  return [...new Set([s.slotVar, ...s.mirrors.map((m) => m.name), s.trialVar, s.countVar, s.limitVar, ...s.carry, ...Object.keys(s.onFallback)])];
}

/**
 * Checks a scheme: names [A-Za-z0-9_], none under otapack_*, no name used twice, fallback
 * values plain, and at most MAX_STATE_VARS state variables. Throws CONFIG.
 */
export function validateScheme(s: BootScheme): BootScheme {
  if (!s || typeof s !== 'object') bad(undefined, 'missing');
  const client = (s as { client?: unknown }).client;
  if (typeof client !== 'string' || !/^[a-z][a-z0-9-]*$/.test(client)) bad(client, 'client must be a lower-case name');
  if (s.kind === 'order') {
    checkName(client, 'orderVar', s.orderVar);
    if (typeof s.leftVar !== 'function') bad(client, 'leftVar must be a function of the slot');
    const a = checkName(client, 'leftVar(A)', s.leftVar('A'));
    const b = checkName(client, 'leftVar(B)', s.leftVar('B'));
    if (a === b || a === s.orderVar || b === s.orderVar) bad(client, 'BOOT_ORDER and the two counters must be three different variables');
    if (!Number.isInteger(s.attempts) || s.attempts < 1 || s.attempts > 9) bad(client, `attempts ${s.attempts} must be 1..9`);
    return s;
  }
  if (s.kind !== 'trial') bad(client, `unknown kind ${JSON.stringify((s as { kind?: unknown }).kind)}`);
  if (!Array.isArray(s.mirrors) || !Array.isArray(s.carry) || !s.onFallback || typeof s.onFallback !== 'object') {
    bad(client, 'mirrors and carry must be lists and onFallback a record');
  }
  const core = [
    checkName(client, 'slotVar', s.slotVar),
    ...s.mirrors.map((m) => {
      if (m.form !== 'hex' && m.form !== 'decimal') bad(client, `mirror ${m.name} form must be hex or decimal`);
      return checkName(client, 'mirror', m.name);
    }),
    checkName(client, 'trialVar', s.trialVar),
    checkName(client, 'countVar', s.countVar),
    checkName(client, 'limitVar', s.limitVar),
  ];
  const seen = new Set<string>();
  for (const n of core) {
    if (seen.has(n)) bad(client, `variable ${n} has two roles`);
    seen.add(n);
  }
  for (const n of s.carry) {
    checkName(client, 'carried variable', n);
    if (seen.has(n)) bad(client, `carried variable ${n} is already a state variable`);
    seen.add(n);
  }
  for (const [k, v] of Object.entries(s.onFallback)) {
    checkName(client, 'fallback variable', k);
    if (core.includes(k)) bad(client, `the fallback sets ${k} itself; onFallback may not`);
    if (typeof v !== 'string' || !VALUE_RE.test(v)) bad(client, `fallback value ${k}=${JSON.stringify(v)} must be letters, digits and . _ : + -`);
  }
  if (s.fallbackNote !== undefined && (typeof s.fallbackNote !== 'string' || !/^[A-Za-z0-9 ,.=_-]*$/.test(s.fallbackNote))) {
    bad(client, 'fallbackNote must be plain words');
  }
  const n = stateVars(s).length;
  if (n > MAX_STATE_VARS) bad(client, `${n} state variables; one U-Boot env export line holds at most ${MAX_STATE_VARS}`);
  return s;
}

/** The scheme as a TrialScheme, validated; an order scheme (RAUC) is a CONFIG error for now. */
export function trialScheme(s: BootScheme, generator: string): TrialScheme {
  validateScheme(s);
  if (s.kind !== 'trial') {
    throw new OtapackError('CONFIG', `${generator}: the ${s.client} boot-state scheme (${s.orderVar} and ${s.leftVar('A')}/${s.leftVar('B')} counters) is not supported yet`);
  }
  return s;
}

function partNo(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 128) throw new OtapackError('CONFIG', `partition must be a partition number 1..128, got ${String(n)}`);
  return n;
}

/** The assignments that select `partition` as the slot to boot: slotVar and its mirrors. */
export function slotAssignments(s: TrialScheme, partition: number): [string, string][] {
  const n = partNo(partition);
  return [[s.slotVar, String(n)], ...s.mirrors.map((m): [string, string] => [m.name, m.form === 'hex' ? n.toString(16) : String(n)])];
}

/** A freshly written env: `partition` selected, no trial, counter 0, the limit. */
export function initialState(s: TrialScheme, partition: number, bootlimit: number): [string, string][] {
  return [...slotAssignments(s, partition), [s.trialVar, '0'], [s.countVar, '0'], [s.limitVar, String(bootlimit)]];
}

/** What the fallback sets besides the slot: trial 0, counter 0, then the client's marks. */
export function fallbackAssignments(s: TrialScheme): [string, string][] {
  return [[s.trialVar, '0'], [s.countVar, '0'], ...Object.entries(s.onFallback)];
}

/** ` and sets ustate=3 (failed)` (empty without onFallback): the fallback's own marks, for the generated comments. */
export function fallbackNote(s: TrialScheme): string {
  const marks = Object.entries(s.onFallback).map(([k, v]) => `${k}=${v}`).join(', ');
  return marks ? ` and sets ${marks}${s.fallbackNote ? ` (${s.fallbackNote})` : ''}` : '';
}

/** The `bootenv` entries a bundle sets to start a trial boot of `partition`. */
export function trialBootEnv(scheme: BootScheme, partition: number): { name: string; value: string }[] {
  const s = trialScheme(scheme, 'trial boot env');
  const entries: [string, string][] = [...slotAssignments(s, partition), [s.trialVar, '1'], [s.countVar, '0']];
  return entries.map(([name, value]) => ({ name, value }));
}
