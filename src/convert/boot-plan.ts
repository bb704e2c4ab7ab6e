// The A/B boot logic in front of the board's own, planned from what was read (pure): the boot
// partition gets otapack's boot.scr (U-Boot) or grub.cfg (GRUB) and the initial A/B state, and
// the board's script, extlinux.conf or grub.cfg is kept, patched only so that it boots the chosen
// slot (root=${otapack_root}, loads from ${rootpart}); each patched line is recorded. Files that
// live in the rootfs are returned for injection so both slots carry them. apply.ts writes it all.
import { OtapackError } from '../errors.js';
import type { FsEntry } from '../fs/ext4-inject.js';
import { encodeUbootEnv } from '../boot/uboot-env.js';
import { encodeScriptImage, decodeScriptImage } from '../boot/uboot-image.js';
import { generateUbootAbScript, initialUbootAbEnv, type UbootBoardStep, type UbootAbOptions } from '../boot/uboot-ab.js';
import { patchBootScript, patchExtlinuxConf, type BoardEdit } from '../boot/board-script.js';
import { generateGrubAbConfig, initialGrubAbEnv, patchGrubCfg, type GrubBoardStep } from '../boot/grub-ab.js';
import { encodeGrubenv } from '../boot/grubenv.js';
import type { BootScheme } from '../boot/scheme.js';
import { partitionDevice } from './config.js';
import type { InputFacts } from './read-input.js';

export const ENV_SIZE = 0x4000;
/** The A/B state file on the boot partition (U-Boot env format). */
export const ENV_FILE = 'otapack.env';

/** What the boot wiring does, as the report and inspect show it. */
export interface BootWiring {
  bootloader: 'uboot' | 'grub';
  bootPartition: number;
  /** Files written to the boot partition. */
  bootFiles: { path: string; what: string }[];
  boardStep: string;
  edits: (BoardEdit & { file: string })[];
  initialEnv: Record<string, string>;
  envFile: string;
  bootlimit: number;
  rootfsFiles: FsEntry[];
}

/** The boot wiring and the writes that carry it out. */
export interface BootPlan extends BootWiring {
  /** A new FAT boot partition is made (Armbian-style images) with this label and volume id. */
  format?: { label: string; volumeId: string };
  /** Files removed from the boot partition first (a board extlinux.conf moved out of distro boot's way). */
  remove: string[];
  /** Files written to the boot partition, with their bytes. */
  writes: { path: string; data: Buffer | string }[];
}

/** The partitions and disk facts the boot logic is planned against. */
export interface BootTargets {
  boot: { number: number };
  slotA: { number: number; partuuid: string };
  slotB: { number: number; partuuid: string };
  table: 'mbr' | 'gpt';
  /** The disk as the device names it (/dev/mmcblk0). */
  device: string;
  diskId: string;
  createBootPartition: boolean;
}

export interface BootPlanOptions {
  facts: InputFacts;
  /** The boot-state variables of the update client (src/boot/scheme.ts). */
  scheme: BootScheme;
  targets: BootTargets;
  bootlimit: number;
  timestamp?: number;
  /** rootfs.read-only: every kernel command line the board gives gets `ro` (an `rw` becomes `ro`). */
  readOnly?: boolean;
}

/**
 * The kernel mounts the root read-only: on every line that passes root= to a kernel, an `rw`
 * becomes `ro`, and `ro` follows root=… where neither is given (the kernel's own default is ro,
 * but a board's init may not know that). Each changed line is recorded.
 */
export function readOnlyCmdline(text: string, file: string): { text: string; edits: BootWiring['edits'] } {
  const edits: BootWiring['edits'] = [];
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(/\r?\n/).map((line, i) => {
    if (/^\s*#/.test(line) || !/(^|[\s"'])root=/.test(line)) return line;
    let next = line.replace(/(^|[\s"'])rw(?=$|[\s"';])/g, '$1ro');
    if (!/(^|[\s"'])ro(?=$|[\s"';])/.test(next)) next = next.replace(/((?:^|[\s"'])root=[^\s"';]*)/, '$1 ro');
    if (next !== line) edits.push({ line: i + 1, kind: 'read-only', before: line.trim(), after: next.trim(), file });
    return next;
  });
  return { text: lines.join(eol), edits };
}

export function planBoot(o: BootPlanOptions): BootPlan {
  return o.facts.layout.bootloader === 'grub' ? planGrub(o) : planUboot(o);
}

function planUboot(o: BootPlanOptions): BootPlan {
  const { facts, targets: t } = o;
  const ro = (text: string, file: string): string => {
    const r = readOnlyCmdline(text, file);
    edits.push(...r.edits);
    return r.text;
  };
  const L = facts.layout;
  const boot = t.boot;
  const A = t.slotA;
  const B = t.slotB;
  const format = t.createBootPartition ? { label: 'OTABOOT', volumeId: t.diskId.replace(/-/g, '').slice(0, 8).padStart(8, '0') } : undefined;
  const remove: string[] = [];
  const edits: BootWiring['edits'] = [];
  const bootFiles: BootWiring['bootFiles'] = [];
  const rootfsFiles: FsEntry[] = [];
  const writes: { path: string; data: Buffer | string }[] = [];
  const oldRoot = L.root.number;
  const move = t.createBootPartition ? undefined : L.boot && L.boot.number !== boot.number ? { from: L.boot.number, to: boot.number } : undefined;
  let step: UbootBoardStep;
  const board = facts.board;
  if (board.kind === 'uboot-script' && board.where === 'boot') {
    const raw = board.image;
    const dec = raw ? decodeScriptImage(raw) : undefined;
    if (!dec || !dec.dataCrcOk) throw new OtapackError('INPUT', `${board.path} on the boot partition is not a valid U-Boot script image`, { path: L.image });
    const patched = patchBootScript(dec.text, { oldRootPart: oldRoot, scriptPart: L.boot!.number, bootPartMove: move, name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `boot partition ${board.path} -> /otapack/board.scr` })));
    if (o.readOnly) patched.text = ro(patched.text, `boot partition ${board.path} -> /otapack/board.scr`);
    writes.push({ path: '/otapack/board.scr', data: encodeScriptImage(patched.text, dec.name || 'board boot script', { time: o.timestamp }) });
    writes.push({ path: '/otapack/board.cmd', data: patched.text });
    bootFiles.push({ path: '/otapack/board.scr', what: `the board's ${board.path}, patched to boot the chosen slot` });
    step = { kind: 'boot-script', file: '/otapack/board.scr' };
  } else if (board.kind === 'uboot-script' && board.where === 'rootfs') {
    const dec = decodeScriptImage(board.image!);
    if (!dec.dataCrcOk) throw new OtapackError('INPUT', `${board.path} in the rootfs is not a valid U-Boot script image`, { path: L.image });
    const patched = patchBootScript(dec.text, { oldRootPart: oldRoot, oldRootIsDefault: oldRoot === 1, name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `rootfs ${board.path}` })));
    if (o.readOnly) patched.text = ro(patched.text, `rootfs ${board.path}`);
    rootfsFiles.push({ path: board.path, kind: 'file', data: encodeScriptImage(patched.text, dec.name || 'boot script', { time: o.timestamp }), mode: 0o644 });
    if (board.cmdSibling) rootfsFiles.push({ path: board.cmdSibling, kind: 'file', data: patched.text, mode: 0o644 });
    const dir = board.path.replace(/[^/]*$/, '');
    step = { kind: 'slot-script', path: board.path, prefix: dir };
  } else if (board.kind === 'extlinux') {
    const patched = patchExtlinuxConf(board.text, { name: board.path });
    if (o.readOnly) patched.text = ro(patched.text, board.where === 'boot' ? `boot partition ${board.path} -> /otapack/extlinux.conf` : `rootfs ${board.path}`);
    if (board.where === 'boot') {
      edits.push(...patched.edits.map((e) => ({ ...e, file: `boot partition ${board.path} -> /otapack/extlinux.conf` })));
      // distro boot tries extlinux.conf before boot.scr: move it out of its way
      remove.push(board.path);
      writes.push({ path: '/otapack/extlinux.conf', data: patched.text });
      bootFiles.push({ path: '/otapack/extlinux.conf', what: `the board's ${board.path}, patched and moved so U-Boot runs boot.scr first` });
      step = { kind: 'extlinux', location: 'boot', path: '/otapack/extlinux.conf' };
    } else {
      edits.push(...patched.edits.map((e) => ({ ...e, file: `rootfs ${board.path}` })));
      rootfsFiles.push({ path: board.path, kind: 'file', data: patched.text, mode: 0o644 });
      step = { kind: 'extlinux', location: 'slot', path: board.path };
    }
  } else if (board.kind === 'kernel-only' && L.board.kind === 'kernel-only') {
    const k = L.board;
    step = { kind: 'kernel', kernel: k.kernel, initrd: k.initrd, initrdFormat: k.initrd && /uInitrd/.test(k.initrd) ? 'uimage' : 'raw', bootargs: o.readOnly ? 'rootwait ro' : 'rootwait' };
  } else {
    throw new OtapackError('INTERNAL', `unexpected board boot ${board.kind} for U-Boot`);
  }
  const opts: UbootAbOptions = {
    scheme: o.scheme, bootPart: boot.number, slotA: A.number, slotB: B.number, envFile: ENV_FILE, envSize: ENV_SIZE, bootlimit: o.bootlimit,
    rootFallbackPrefix: partitionDevice(t.device, 0).replace(/0$/, ''), boardStep: step,
  };
  const script = generateUbootAbScript(opts);
  const env = initialUbootAbEnv(opts);
  writes.push({ path: '/boot.scr', data: encodeScriptImage(script, 'otapack A/B boot', { time: o.timestamp }) });
  writes.push({ path: '/otapack/boot.cmd', data: script });
  writes.push({ path: `/${ENV_FILE}`, data: encodeUbootEnv(env, ENV_SIZE) });
  bootFiles.unshift(
    { path: '/boot.scr', what: 'otapack A/B boot script (bootcount, fallback, root=PARTUUID of the slot), then the board step' },
    { path: '/otapack/boot.cmd', what: 'its source text' },
    { path: `/${ENV_FILE}`, what: `A/B state (rootpart=${A.number}), CRC-protected U-Boot env format, ${ENV_SIZE} bytes (not uboot.env: a board U-Boot with ENV_IS_IN_FAT would take that as its own environment)` },
  );
  // distro boot tries extlinux.conf before boot.scr on the partition it scans: none may remain there
  for (const f of ['/extlinux/extlinux.conf', '/boot/extlinux/extlinux.conf']) {
    if (L.bootFiles.some((x) => x.toLowerCase() === f) && !(board.kind === 'extlinux' && board.where === 'boot' && board.path === f)) {
      throw new OtapackError('INPUT', `the boot partition holds ${f} besides ${'path' in board ? board.path : 'the boot files'}; U-Boot would boot it and bypass the A/B logic`, { path: L.image });
    }
  }
  return { bootloader: 'uboot', bootPartition: boot.number, bootFiles, boardStep: describeStep(step), edits, initialEnv: env, envFile: `/${ENV_FILE}`, bootlimit: o.bootlimit, rootfsFiles, format, remove, writes };
}

function planGrub(o: BootPlanOptions): BootPlan {
  const { facts, targets: t } = o;
  const ro = (text: string, file: string): string => {
    const r = readOnlyCmdline(text, file);
    edits.push(...r.edits);
    return r.text;
  };
  const L = facts.layout;
  const esp = t.boot;
  const A = t.slotA;
  const B = t.slotB;
  const board = facts.board;
  if (board.kind !== 'grub') throw new OtapackError('INTERNAL', `unexpected board boot ${board.kind} for GRUB`);
  const edits: BootWiring['edits'] = [];
  const bootFiles: BootWiring['bootFiles'] = [];
  const rootfsFiles: FsEntry[] = [];
  const writes: { path: string; data: Buffer | string }[] = [];
  let step: GrubBoardStep;
  const envFile = '/otapack/grubenv';
  if (board.where === 'boot') {
    const text = board.text;
    // kernels on the ESP stay there; kernels in the rootfs are read from the chosen slot
    const kernelPath = /^\s*linux\w*\s+(?:\([^)]*\))?(\/\S+)/m.exec(text)?.[1];
    const onEsp = !!kernelPath && L.bootFiles.some((f) => f.toLowerCase() === kernelPath.toLowerCase());
    const kernelFrom = onEsp ? 'esp' : 'slot';
    const patched = patchGrubCfg(text, { kernelFrom, name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `ESP ${board.path} -> /otapack/board.cfg` })));
    if (o.readOnly) patched.text = ro(patched.text, `ESP ${board.path} -> /otapack/board.cfg`);
    writes.push({ path: '/otapack/board.cfg', data: patched.text });
    bootFiles.push({ path: '/otapack/board.cfg', what: `the board's ${board.path}, patched to boot the chosen slot` });
    step = { kind: 'configfile', location: 'esp', path: '/otapack/board.cfg' };
  } else {
    const patched = patchGrubCfg(board.text, { kernelFrom: 'slot', name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `rootfs ${board.path}` })));
    if (o.readOnly) patched.text = ro(patched.text, `rootfs ${board.path}`);
    rootfsFiles.push({ path: board.path, kind: 'file', data: patched.text, mode: 0o644 });
    step = { kind: 'configfile', location: 'slot', path: board.path };
  }
  const cfgText = generateGrubAbConfig({
    scheme: o.scheme, slotA: A.number, slotB: B.number, envFile, partmap: t.table === 'gpt' ? 'gpt' : 'msdos',
    partuuids: { a: A.partuuid, b: B.partuuid }, bootlimit: o.bootlimit, boardStep: step,
  });
  const env = initialGrubAbEnv({ scheme: o.scheme, slotA: A.number, slotB: B.number, bootlimit: o.bootlimit });
  // otapack's grub.cfg takes the place the GRUB binary reads; the board's moved aside
  const target = board.where === 'boot' ? board.path : '/EFI/BOOT/grub.cfg';
  writes.push({ path: target, data: cfgText }, { path: envFile, data: encodeGrubenv(env) });
  bootFiles.unshift(
    { path: target, what: 'otapack A/B GRUB configuration (bootcount, fallback, root=PARTUUID of the slot), then the board step' },
    { path: envFile, what: `A/B state (rootpart=${A.number}), 1 KiB grubenv; the device bind-mounts /otapack at /boot/grub` },
  );
  return { bootloader: 'grub', bootPartition: esp.number, bootFiles, boardStep: describeStep(step), edits, initialEnv: Object.fromEntries(env), envFile, bootlimit: o.bootlimit, rootfsFiles, remove: [], writes };
}

function describeStep(s: UbootBoardStep | GrubBoardStep): string {
  switch (s.kind) {
    case 'boot-script': return `source the board's boot script ${s.file}`;
    case 'slot-script': return `source ${s.path} from the chosen slot`;
    case 'extlinux': return `sysboot ${s.path ?? 'extlinux.conf'} (${s.location === 'boot' ? 'boot partition' : 'chosen slot'})`;
    case 'configfile': return `configfile ${s.path} (${s.location === 'esp' ? 'ESP' : 'chosen slot'})`;
    case 'kernel': return `load ${s.kernel}${s.initrd ? ` + ${s.initrd}` : ''} from the chosen slot`;
    default: return 'unknown';
  }
}
