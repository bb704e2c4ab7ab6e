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
import { checkGrub, checkUboot, grubModuleList, grubRefusal, ubootRefusal, GRUB_MINIMUM_MODULES, type LoaderReport } from '../boot/loader.js';
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
  /** The boot loader as read from the image: what it has, what the A/B logic uses and adapts to. */
  loader: LoaderReport;
  /** boot.install-grub, when the image's GRUB lacked modules: the GRUB otapack puts in its place. */
  installGrub?: GrubInstall;
}

/** A GRUB EFI image built with grub-mkimage from Debian's modules, replacing the image's. */
export interface GrubInstall {
  /** The ESP file replaced. */
  path: string;
  platform: string;
  /** Debian's module folder (grub-efi-amd64-bin). */
  directory: string;
  /** grub-mkimage's module list. */
  modules: string[];
  /** The prefix kept from the image's GRUB. */
  prefix: string;
  /** The image's GRUB had an embedded config (-c), which the new one keeps. */
  embeddedConfig: boolean;
  /** What the replaced GRUB was: an attached signature is lost (Secure Boot). */
  replaced: { signed: boolean; sbat: boolean };
}

/** The boot wiring and the writes that carry it out. */
export interface BootPlan extends BootWiring {
  /** A new FAT boot partition is made (Armbian-style images) with this label and volume id. */
  format?: { label: string; volumeId: string };
  /** Files removed from the boot partition first (a board extlinux.conf moved out of distro boot's way). */
  remove: string[];
  /** Files written to the boot partition, with their bytes. */
  writes: { path: string; data: Buffer | string }[];
  /** The embedded config grub-mkimage gets for installGrub (-c). */
  installGrubConfig?: string;
  /** Problems of the boot loader the A/B logic works around with less (plan warnings). */
  loaderWarnings: string[];
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
  /** boot.install-grub: a GRUB lacking modules is replaced by one built with them (else refused). */
  installGrub?: boolean;
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
  // what this U-Boot has decides what the script may call; what it cannot do without refuses here
  const check = checkUboot(facts.loader, { step: step.kind, bootCmd: step.kind === 'kernel' ? step.bootCmd ?? 'booti' : undefined });
  if (check.missing.length) throw new OtapackError('INPUT', ubootRefusal(check.report.source!, check.missing), { path: L.image, reason: 'boot-loader-lacks-commands' });
  const opts: UbootAbOptions = {
    scheme: o.scheme, bootPart: boot.number, slotA: A.number, slotB: B.number, envFile: ENV_FILE, envSize: ENV_SIZE, bootlimit: o.bootlimit,
    rootFallbackPrefix: partitionDevice(t.device, 0).replace(/0$/, ''), boardStep: step,
    ...(check.counter === 'test' ? { counter: 'test' as const } : {}),
    ...(check.bakePartuuids ? { partuuids: { a: A.partuuid, b: B.partuuid } } : {}),
    ...(check.reset ? {} : { resetOnFailedTrial: false }),
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
  return {
    bootloader: 'uboot', bootPartition: boot.number, bootFiles, boardStep: describeStep(step), edits, initialEnv: env, envFile: `/${ENV_FILE}`, bootlimit: o.bootlimit, rootfsFiles,
    loader: check.report, format, remove, writes, loaderWarnings: check.reset ? [] : check.report.adaptations.filter((x) => x.startsWith('no reset')),
  };
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
  // what this GRUB has decides what grub.cfg may call; what it lacks refuses here, or (boot.install-grub) a GRUB with it goes in
  const partmap = t.table === 'gpt' ? 'gpt' : 'msdos';
  const readsSlot = step.location === 'slot' || edits.some((e) => e.kind === 'root-partition');
  let check = checkGrub(facts.loader, { partmap, readsSlot, step: step.kind });
  let installGrub: GrubInstall | undefined;
  let installGrubConfig: string | undefined;
  const loaderWarnings: string[] = [];
  if (check.missing.length || (o.installGrub && facts.loader.kind === 'grub' && !check.reboot)) {
    const f = facts.loader;
    if (f.kind !== 'grub') throw new OtapackError('INTERNAL', 'GRUB modules missing without a GRUB image');
    if (!o.installGrub) throw new OtapackError('INPUT', grubRefusal(f, check.missing, check.reboot), { path: L.image, reason: 'boot-loader-lacks-modules' });
    const plan = planGrubInstall(f, facts.hostGrub, check.missing, L.image);
    installGrub = plan.install;
    installGrubConfig = plan.config;
    const replaced = installGrub.replaced.signed ? 'a signed GRUB (Secure Boot)' : 'the image\'s GRUB';
    loaderWarnings.push(`boot.install-grub: ${installGrub.path} (${replaced}, without ${[...check.missing, ...(check.reboot ? [] : ['reboot'])].join(', ')}) is replaced by an unsigned GRUB built with grub-mkimage from ${installGrub.directory}${installGrub.replaced.signed || installGrub.replaced.sbat ? '; with Secure Boot on, the firmware will refuse it until you sign it' : ''}`);
    check = {
      insmod: [], reboot: true, missing: [],
      report: { ...check.report, summary: `${check.report.summary}; replaced (boot.install-grub) by an unsigned GRUB with ${installGrub.modules.length} modules`, builtIn: installGrub.modules, uses: [...check.report.uses, ...check.missing, ...(check.reboot ? [] : ['reboot'])], adaptations: [`replaced by a GRUB built with ${installGrub.modules.join(' ')} (boot.install-grub)`, ...check.report.adaptations.filter((a) => !/insmod|reboot/.test(a))] },
    };
  } else if (o.installGrub && facts.loader.kind === 'grub') {
    check.report.notes.push('boot.install-grub: the image\'s GRUB has every module the A/B logic needs; it is kept');
  } else if (o.installGrub) {
    check.report.notes.push('boot.install-grub: no GRUB EFI image was found on the ESP, so none is replaced');
  }
  if (!check.reboot) loaderWarnings.push(...check.report.adaptations.filter((a) => a.startsWith('no reboot')));
  const cfgText = generateGrubAbConfig({
    scheme: o.scheme, slotA: A.number, slotB: B.number, envFile, partmap,
    partuuids: { a: A.partuuid, b: B.partuuid }, bootlimit: o.bootlimit, boardStep: step, espPartition: esp.number,
    insmod: check.insmod, rebootOnFailedTrial: check.reboot,
  });
  const env = initialGrubAbEnv({ scheme: o.scheme, slotA: A.number, slotB: B.number, bootlimit: o.bootlimit });
  // otapack's grub.cfg takes the place the GRUB binary reads; the board's moved aside
  const target = board.where === 'boot' ? board.path : '/EFI/BOOT/grub.cfg';
  writes.push({ path: target, data: cfgText }, { path: envFile, data: encodeGrubenv(env) });
  bootFiles.unshift(
    { path: target, what: 'otapack A/B GRUB configuration (bootcount, fallback, root=PARTUUID of the slot), then the board step' },
    { path: envFile, what: `A/B state (rootpart=${A.number}), 1 KiB grubenv; the device bind-mounts /otapack at /boot/grub` },
  );
  if (installGrub) bootFiles.push({ path: installGrub.path, what: `GRUB built by grub-mkimage (${installGrub.platform}, prefix ${installGrub.prefix}) with the modules the A/B logic needs, in place of the image's` });
  return {
    bootloader: 'grub', bootPartition: esp.number, bootFiles, boardStep: describeStep(step), edits, initialEnv: Object.fromEntries(env), envFile, bootlimit: o.bootlimit, rootfsFiles,
    loader: check.report, ...(installGrub ? { installGrub } : {}), remove: [], writes, installGrubConfig, loaderWarnings,
  };
}

/** The GRUB boot.install-grub puts in: the image's modules and prefix (and embedded config) plus otapack's minimum. */
function planGrubInstall(f: Extract<InputFacts['loader'], { kind: 'grub' }>, host: InputFacts['hostGrub'], missing: string[], image: string): { install: GrubInstall; config?: string } {
  const img = f.image;
  if (img.platform !== 'x86_64-efi') {
    throw new OtapackError('CONFIG', `boot.install-grub builds x86_64-efi GRUB images (Debian's grub-efi-amd64-bin); ${f.source} is ${img.platform}: add ${missing.join(', ')} to its build instead`, { path: image });
  }
  if (f.source.startsWith('boot.loader-binary')) {
    throw new OtapackError('CONFIG', `boot.install-grub replaces the GRUB on the image's ESP, and boot.loader-binary names one outside it (${f.path}); rebuild that one with ${missing.join(', ')}`, { path: image });
  }
  if (img.memdisk) {
    throw new OtapackError('CONFIG', `boot.install-grub: ${f.source} carries a memdisk (grub-mkstandalone); rebuild it with ${missing.join(', ')} in --modules instead`, { path: image });
  }
  if (!img.prefix) throw new OtapackError('CONFIG', `boot.install-grub: ${f.source} has no prefix; otapack cannot tell where the new GRUB must look for grub.cfg`, { path: image });
  if (!host || host.modules.length === 0 || !host.mkimage) {
    const what = !host || host.modules.length === 0 ? `Debian's GRUB modules in /usr/lib/grub/${img.platform}` : 'grub-mkimage';
    throw new OtapackError('TOOL', `boot.install-grub needs ${what}: install grub-efi-amd64-bin and grub-common`, { tool: 'grub-mkimage', reason: 'tool-missing' });
  }
  const have = new Set(host.modules);
  const wanted = grubModuleList(img, GRUB_MINIMUM_MODULES);
  const absent = GRUB_MINIMUM_MODULES.filter((m) => !have.has(m));
  if (absent.length) throw new OtapackError('TOOL', `boot.install-grub: ${host.dir} has no ${absent.join(', ')} module`, { tool: 'grub-mkimage' });
  // modules of the image's own build that Debian's GRUB has not (another version) are left out and said
  const modules = wanted.filter((m) => have.has(m));
  const dropped = wanted.filter((m) => !have.has(m));
  if (dropped.length) f.notes.push(`boot.install-grub: Debian's GRUB has no ${dropped.join(', ')}; the new image is built without them`);
  return {
    install: { path: f.path, platform: img.platform, directory: host.dir, modules, prefix: img.prefix, embeddedConfig: img.config !== undefined, replaced: { signed: img.signed, sbat: img.sbat } },
    config: img.config,
  };
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
