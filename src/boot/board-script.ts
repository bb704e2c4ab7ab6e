// Patches a board's own boot logic (U-Boot boot.cmd text, extlinux.conf) so that it boots the slot
// otapack's A/B script chose, instead of the single root partition it was written for:
//   - root=<anything> on setenv/env set lines            → root=${otapack_root}  (PARTUUID of the slot)
//   - setenv rootdev … (Armbian) and after `env import -t` → setenv rootdev ${otapack_root}
//     (armbianEnv.txt's rootdev=UUID=… is shared by both slots, so it must be overridden)
//   - loads from the old root partition                   → ${devtype} ${devnum}:${rootpart}
//     (`mmc 0:2`, `${devtype} ${devnum}:2`, `${devnum}:${distro_bootpart}` when the script lived on
//     the rootfs, and `${devtype} ${devnum}` without a partition when the rootfs was the default one)
//   - extlinux.conf `append` lines                        → root=${otapack_root}
// Every change is returned as an edit for the conversion report. Pure text in, text out.
import { OtapackError } from '../errors.js';
import { decodeScriptImage, encodeScriptImage, type ScriptImageOptions } from './uboot-image.js';

export interface BoardScriptPatchOptions {
  /** Partition number of the rootfs in the original image. */
  oldRootPart: number;
  /** Partition the original script was loaded from (its ${distro_bootpart}). Default: oldRootPart. */
  scriptPart?: number;
  /**
   * The old rootfs was the partition U-Boot picks for a device given without a partition
   * (`load mmc 0 …`): the first bootable partition, else partition 1. Default: oldRootPart === 1.
   */
  oldRootIsDefault?: boolean;
  /** The partition the script calls the boot partition moved (e.g. {from: 1, to: 2}). */
  bootPartMove?: { from: number; to: number };
  /** File name used in error messages. */
  name?: string;
}

export type BoardEditKind = 'root-arg' | 'rootdev' | 'rootdev-after-import' | 'root-partition' | 'boot-partition' | 'read-only';

export interface BoardEdit {
  /** 1-based line number in the input. */
  line: number;
  kind: BoardEditKind;
  before: string;
  after: string;
}

export interface PatchResult {
  text: string;
  edits: BoardEdit[];
}

export const OTAPACK_ROOT_REF = '${otapack_root}';
export const SLOT_DEVICE_REF = '${devtype} ${devnum}:${rootpart}';

/** Commands whose first arguments are `<interface> <dev>[:<part>]`. */
const DEVICE_COMMANDS = [
  'load', 'fatload', 'ext2load', 'ext4load', 'ls', 'fatls', 'ext2ls', 'ext4ls', 'size', 'fatsize', 'ext4size',
  'fstype', 'fatinfo', 'test -e', 'sysboot(?: -p)?', 'part uuid', 'save', 'fatwrite',
];
const IFACE = String.raw`\$\{devtype\}|\$devtype|mmc|usb|scsi|sata|virtio|nvme|ide|host`;
const DEVNUM = String.raw`\$\{devnum\}|\$devnum|\d+`;
const PART = String.raw`\$\{distro_bootpart\}|\$distro_bootpart|[0-9a-fA-F]+`;
const DEVICE_RE = new RegExp(
  String.raw`(^|[\s;]|\bthen\s|\bif\s)((?:${DEVICE_COMMANDS.join('|')})\s+)(${IFACE})\s+(${DEVNUM})(?::(${PART}))?(?=[\s;"]|$)`,
  'g',
);

const ROOT_ARG_RE = /(^|[\s"])root=([^\s";]*)/g;
const SETS_VAR_RE = /\b(setenv|env\s+set)\s+[A-Za-z0-9_]+/;
const ROOTDEV_SET_RE = /\b(setenv|env\s+set)\s+rootdev(\s+("[^"]*"|[^\s;]+))?/g;

function partOk(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > 128) throw new OtapackError('CONFIG', `board script patch: ${what} ${n} is not a partition number`);
}

/** Patches U-Boot boot script text (boot.cmd / the text inside boot.scr). */
export function patchBootScript(text: string, opts: BoardScriptPatchOptions): PatchResult {
  const name = opts.name ?? 'boot script';
  partOk(opts.oldRootPart, 'oldRootPart');
  const scriptPart = opts.scriptPart ?? opts.oldRootPart;
  partOk(scriptPart, 'scriptPart');
  const rootIsDefault = opts.oldRootIsDefault ?? opts.oldRootPart === 1;
  if (opts.bootPartMove) { partOk(opts.bootPartMove.from, 'bootPartMove.from'); partOk(opts.bootPartMove.to, 'bootPartMove.to'); }

  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(/\r?\n/);
  const edits: BoardEdit[] = [];
  const out: string[] = [];
  let sawRoot = false;
  let sawRootdev = false;
  const usesRootdev = /\$\{?rootdev\b/.test(text);

  lines.forEach((orig, idx) => {
    const lineNo = idx + 1;
    const trimmed = orig.trimStart();
    if (trimmed.startsWith('#')) { out.push(orig); return; }
    if (/\b(setenv|env\s+set)\s+rootpart\b/.test(orig)) {
      throw new OtapackError('INPUT', `${name} line ${lineNo}: the script sets its own "rootpart", the variable otapack uses for the slot; rename it first`);
    }
    let line = orig;

    // root= on variable assignments (bootargs and the helper variables that feed it)
    if (SETS_VAR_RE.test(line) && /(^|[\s"])root=/.test(line)) {
      sawRoot = true;
      const next = line.replace(ROOT_ARG_RE, (m, pre: string, val: string) => (val === OTAPACK_ROOT_REF ? m : `${pre}root=${OTAPACK_ROOT_REF}`));
      if (next !== line) { edits.push({ line: lineNo, kind: 'root-arg', before: line.trim(), after: next.trim() }); line = next; }
    }

    // Armbian rootdev defaults
    if (/\b(setenv|env\s+set)\s+rootdev\b/.test(line)) {
      sawRootdev = true;
      const next = line.replace(ROOTDEV_SET_RE, (m) => (m.endsWith(OTAPACK_ROOT_REF) ? m : `setenv rootdev ${OTAPACK_ROOT_REF}`));
      if (next !== line) { edits.push({ line: lineNo, kind: 'rootdev', before: line.trim(), after: next.trim() }); line = next; }
    }

    // device references
    const next = line.replace(DEVICE_RE, (m, pre: string, cmd: string, iface: string, dev: string, part: string | undefined) => {
      if (part === undefined) {
        return rootIsDefault && !cmd.startsWith('part') ? `${pre}${cmd}${SLOT_DEVICE_REF}` : m;
      }
      const isVar = part.startsWith('$');
      const num = isVar ? scriptPart : parseInt(part, 16);
      if (num === opts.oldRootPart) return `${pre}${cmd}${SLOT_DEVICE_REF}`;
      if (!isVar && opts.bootPartMove && num === opts.bootPartMove.from) return `${pre}${cmd}${iface} ${dev}:${opts.bootPartMove.to.toString(16)}`;
      return m;
    });
    if (next !== line) {
      const kind: BoardEditKind = next.includes(SLOT_DEVICE_REF) && !line.includes(SLOT_DEVICE_REF) ? 'root-partition' : 'boot-partition';
      edits.push({ line: lineNo, kind, before: line.trim(), after: next.trim() });
      line = next;
    }
    out.push(line);

    // after a text-env import (armbianEnv.txt), force rootdev again
    const following = (lines[idx + 1] ?? '').trim();
    if (usesRootdev && /\benv\s+import\s+-t\b/.test(line) && following !== `setenv rootdev ${OTAPACK_ROOT_REF}`) {
      const indent = /^\s*/.exec(line)![0];
      const added = `${indent}setenv rootdev ${OTAPACK_ROOT_REF}`;
      out.push(added);
      sawRootdev = true;
      edits.push({ line: lineNo, kind: 'rootdev-after-import', before: line.trim(), after: `${line.trim()} + ${added.trim()}` });
    }
  });

  if (!sawRoot && !sawRootdev) {
    throw new OtapackError('INPUT', `${name}: no root= on a setenv line and no rootdev variable found; otapack cannot point this script at the A/B slots`);
  }
  return { text: out.join(eol), edits };
}

/** Patches an extlinux.conf: root= on every append line becomes root=${otapack_root}. */
export function patchExtlinuxConf(text: string, opts: { name?: string } = {}): PatchResult {
  const name = opts.name ?? 'extlinux.conf';
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const edits: BoardEdit[] = [];
  let appendLines = 0;
  let rootLines = 0;
  const out = text.split(/\r?\n/).map((line, idx) => {
    if (!/^\s*append\s/i.test(line)) return line;
    appendLines++;
    if (!/(^|\s)root=/.test(line)) return line;
    rootLines++;
    const next = line.replace(/(^|\s)root=(\S*)/g, (m, pre: string, val: string) => (val === OTAPACK_ROOT_REF ? m : `${pre}root=${OTAPACK_ROOT_REF}`));
    if (next !== line) edits.push({ line: idx + 1, kind: 'root-arg', before: line.trim(), after: next.trim() });
    return next;
  });
  if (appendLines === 0) throw new OtapackError('INPUT', `${name}: no append line; otapack cannot give the kernel the slot root`);
  if (rootLines !== appendLines) {
    throw new OtapackError('INPUT', `${name}: ${appendLines - rootLines} of ${appendLines} append lines have no root=; otapack cannot point them at the A/B slots`);
  }
  return { text: out.join(eol), edits };
}

/**
 * Reads a board's compiled boot.scr, patches its text and compiles it again under the same name.
 * Refuses an image whose CRCs do not match (U-Boot would refuse to run it too).
 */
export function patchBootScriptImage(
  scr: Buffer,
  opts: BoardScriptPatchOptions,
  image: ScriptImageOptions = {},
): PatchResult & { image: Buffer; name: string } {
  const name = opts.name ?? 'boot.scr';
  let d;
  try {
    d = decodeScriptImage(scr);
  } catch (e) {
    throw new OtapackError('INPUT', `${name}: ${(e as Error).message}`, { cause: e });
  }
  if (!d.headerCrcOk || !d.dataCrcOk) throw new OtapackError('INPUT', `${name}: ${!d.headerCrcOk ? 'header' : 'data'} CRC mismatch; U-Boot would not run this script`);
  const r = patchBootScript(d.text, { ...opts, name });
  return { ...r, name: d.name, image: encodeScriptImage(r.text, d.name, image) };
}
