// Puts the A/B boot logic in front of the board's own: the boot partition gets otapack's
// boot.scr (U-Boot) or grub.cfg (GRUB) and the initial A/B state, and the board's script,
// extlinux.conf or grub.cfg is kept, patched only so that it boots the chosen slot
// (root=${otapack_root}, loads from ${rootpart}). Files that live in the rootfs are returned
// for injection so both slots carry them.
import { OtapackError } from '../errors.js';
import { readFat, writeFat, deleteFat, mkfsFat } from '../fs/fat.js';
import { readFile as readExt4, resolvePath } from '../fs/ext4.js';
import type { FsEntry } from '../fs/ext4-inject.js';
import { encodeUbootEnv } from '../boot/uboot-env.js';
import { encodeScriptImage, decodeScriptImage } from '../boot/uboot-image.js';
import { generateUbootAbScript, initialUbootAbEnv, type UbootBoardStep, type UbootAbOptions } from '../boot/uboot-ab.js';
import { patchBootScript, patchExtlinuxConf, type BoardEdit } from '../boot/board-script.js';
import { generateGrubAbConfig, initialGrubAbEnv, patchGrubCfg, type GrubBoardStep } from '../boot/grub-ab.js';
import { encodeGrubenv } from '../boot/grubenv.js';
import { SWUPDATE_BOOT_SCHEME } from '../clients/swupdate/scheme.js';
import { partitionDevice, type ConvertConfig } from './config.js';
import { byRole, type ConvertPlan } from './plan.js';
import { ENV_SIZE, ENV_FILE } from './device-files.js';

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

export interface WireOptions {
  plan: ConvertPlan;
  cfg: ConvertConfig;
  image: string;
  envPath: string;
  timestamp?: number;
  work: string;
}

export async function wireBoot(o: WireOptions): Promise<BootWiring> {
  return o.plan.bootloader === 'grub' ? wireGrub(o) : wireUboot(o);
}

async function wireUboot(o: WireOptions): Promise<BootWiring> {
  const { plan, cfg, image } = o;
  const L = plan.layout;
  const boot = byRole(plan, 'boot')!;
  const A = byRole(plan, 'rootfs-a')!;
  const B = byRole(plan, 'rootfs-b')!;
  if (plan.createBootPartition) {
    await mkfsFat(image, boot.start, boot.size, { label: 'OTABOOT', volumeId: plan.diskId.replace(/-/g, '').slice(0, 8).padStart(8, '0') });
  }
  const edits: BootWiring['edits'] = [];
  const bootFiles: BootWiring['bootFiles'] = [];
  const rootfsFiles: FsEntry[] = [];
  const writes: { path: string; data: Buffer | string }[] = [];
  const oldRoot = L.root.number;
  const move = plan.createBootPartition ? undefined : L.boot && L.boot.number !== boot.number ? { from: L.boot.number, to: boot.number } : undefined;
  let step: UbootBoardStep;
  const board = L.board;
  if (board.kind === 'uboot-script' && board.where === 'boot') {
    const raw = await readFat(image, boot.start, board.path);
    const dec = raw ? decodeScriptImage(raw) : undefined;
    if (!dec || !dec.dataCrcOk) throw new OtapackError('INPUT', `${board.path} on the boot partition is not a valid U-Boot script image`, { path: L.image });
    const patched = patchBootScript(dec.text, { oldRootPart: oldRoot, scriptPart: L.boot!.number, bootPartMove: move, name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `boot partition ${board.path} -> /otapack/board.scr` })));
    writes.push({ path: '/otapack/board.scr', data: encodeScriptImage(patched.text, dec.name || 'board boot script', { time: o.timestamp }) });
    writes.push({ path: '/otapack/board.cmd', data: patched.text });
    bootFiles.push({ path: '/otapack/board.scr', what: `the board's ${board.path}, patched to boot the chosen slot` });
    step = { kind: 'boot-script', file: '/otapack/board.scr' };
  } else if (board.kind === 'uboot-script' && board.where === 'rootfs') {
    const raw = await readExt4(image, A.start, board.path, 'the rootfs');
    const dec = decodeScriptImage(raw);
    if (!dec.dataCrcOk) throw new OtapackError('INPUT', `${board.path} in the rootfs is not a valid U-Boot script image`, { path: L.image });
    const patched = patchBootScript(dec.text, { oldRootPart: oldRoot, oldRootIsDefault: oldRoot === 1, name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `rootfs ${board.path}` })));
    rootfsFiles.push({ path: board.path, kind: 'file', data: encodeScriptImage(patched.text, dec.name || 'boot script', { time: o.timestamp }), mode: 0o644 });
    const cmd = board.path.replace(/\.scr$/, '.cmd');
    if (cmd !== board.path && (await resolvePath(image, A.start, cmd, 'the rootfs'))?.stat.type === 'file') {
      rootfsFiles.push({ path: cmd, kind: 'file', data: patched.text, mode: 0o644 });
    }
    const dir = board.path.replace(/[^/]*$/, '');
    step = { kind: 'slot-script', path: board.path, prefix: dir };
  } else if (board.kind === 'extlinux') {
    const text = board.where === 'boot'
      ? (await readFat(image, boot.start, board.path))?.toString('utf8') ?? ''
      : (await readExt4(image, A.start, board.path, 'the rootfs')).toString('utf8');
    const patched = patchExtlinuxConf(text, { name: board.path });
    if (board.where === 'boot') {
      edits.push(...patched.edits.map((e) => ({ ...e, file: `boot partition ${board.path} -> /otapack/extlinux.conf` })));
      // distro boot tries extlinux.conf before boot.scr: move it out of its way
      await deleteFat(image, boot.start, board.path);
      writes.push({ path: '/otapack/extlinux.conf', data: patched.text });
      bootFiles.push({ path: '/otapack/extlinux.conf', what: `the board's ${board.path}, patched and moved so U-Boot runs boot.scr first` });
      step = { kind: 'extlinux', location: 'boot', path: '/otapack/extlinux.conf' };
    } else {
      edits.push(...patched.edits.map((e) => ({ ...e, file: `rootfs ${board.path}` })));
      rootfsFiles.push({ path: board.path, kind: 'file', data: patched.text, mode: 0o644 });
      step = { kind: 'extlinux', location: 'slot', path: board.path };
    }
  } else if (board.kind === 'kernel-only') {
    step = { kind: 'kernel', kernel: board.kernel, initrd: board.initrd, initrdFormat: board.initrd && /uInitrd/.test(board.initrd) ? 'uimage' : 'raw', bootargs: 'rootwait' };
  } else {
    throw new OtapackError('INTERNAL', `unexpected board boot ${board.kind} for U-Boot`);
  }
  const opts: UbootAbOptions = {
    scheme: SWUPDATE_BOOT_SCHEME, bootPart: boot.number, slotA: A.number, slotB: B.number, envFile: ENV_FILE, envSize: ENV_SIZE, bootlimit: cfg.bootlimit,
    rootFallbackPrefix: partitionDevice(plan.device, 0).replace(/0$/, ''), boardStep: step,
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
  await writeFat(image, boot.start, writes, o.timestamp);
  // distro boot tries extlinux.conf before boot.scr on the partition it scans: none may remain there
  for (const f of ['/extlinux/extlinux.conf', '/boot/extlinux/extlinux.conf']) {
    if (L.bootFiles.some((x) => x.toLowerCase() === f) && !(board.kind === 'extlinux' && board.where === 'boot' && board.path === f)) {
      throw new OtapackError('INPUT', `the boot partition holds ${f} besides ${'path' in board ? board.path : 'the boot files'}; U-Boot would boot it and bypass the A/B logic`, { path: L.image });
    }
  }
  return { bootloader: 'uboot', bootPartition: boot.number, bootFiles, boardStep: describeStep(step), edits, initialEnv: env, envFile: `/${ENV_FILE}`, bootlimit: cfg.bootlimit, rootfsFiles };
}

async function wireGrub(o: WireOptions): Promise<BootWiring> {
  const { plan, cfg, image } = o;
  const L = plan.layout;
  const esp = byRole(plan, 'boot')!;
  const A = byRole(plan, 'rootfs-a')!;
  const B = byRole(plan, 'rootfs-b')!;
  const board = L.board;
  if (board.kind !== 'grub') throw new OtapackError('INTERNAL', `unexpected board boot ${board.kind} for GRUB`);
  const edits: BootWiring['edits'] = [];
  const bootFiles: BootWiring['bootFiles'] = [];
  const rootfsFiles: FsEntry[] = [];
  const writes: { path: string; data: Buffer | string }[] = [];
  let step: GrubBoardStep;
  const envFile = '/otapack/grubenv';
  if (board.where === 'boot') {
    const text = (await readFat(image, esp.start, board.path))?.toString('utf8') ?? '';
    // kernels on the ESP stay there; kernels in the rootfs are read from the chosen slot
    const kernelPath = /^\s*linux\w*\s+(?:\([^)]*\))?(\/\S+)/m.exec(text)?.[1];
    const onEsp = !!kernelPath && L.bootFiles.some((f) => f.toLowerCase() === kernelPath.toLowerCase());
    const kernelFrom = onEsp ? 'esp' : 'slot';
    const patched = patchGrubCfg(text, { kernelFrom, name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `ESP ${board.path} -> /otapack/board.cfg` })));
    writes.push({ path: '/otapack/board.cfg', data: patched.text });
    bootFiles.push({ path: '/otapack/board.cfg', what: `the board's ${board.path}, patched to boot the chosen slot` });
    step = { kind: 'configfile', location: 'esp', path: '/otapack/board.cfg' };
  } else {
    const text = (await readExt4(image, A.start, board.path, 'the rootfs')).toString('utf8');
    const patched = patchGrubCfg(text, { kernelFrom: 'slot', name: board.path });
    edits.push(...patched.edits.map((e) => ({ ...e, file: `rootfs ${board.path}` })));
    rootfsFiles.push({ path: board.path, kind: 'file', data: patched.text, mode: 0o644 });
    step = { kind: 'configfile', location: 'slot', path: board.path };
  }
  const cfgText = generateGrubAbConfig({
    scheme: SWUPDATE_BOOT_SCHEME, slotA: A.number, slotB: B.number, envFile, partmap: plan.table === 'gpt' ? 'gpt' : 'msdos',
    partuuids: { a: A.partuuid, b: B.partuuid }, bootlimit: cfg.bootlimit, boardStep: step,
  });
  const env = initialGrubAbEnv({ scheme: SWUPDATE_BOOT_SCHEME, slotA: A.number, slotB: B.number, bootlimit: cfg.bootlimit });
  // otapack's grub.cfg takes the place the GRUB binary reads; the board's moved aside
  const target = board.where === 'boot' ? board.path : '/EFI/BOOT/grub.cfg';
  writes.push({ path: target, data: cfgText }, { path: envFile, data: encodeGrubenv(env) });
  bootFiles.unshift(
    { path: target, what: 'otapack A/B GRUB configuration (bootcount, fallback, root=PARTUUID of the slot), then the board step' },
    { path: envFile, what: `A/B state (rootpart=${A.number}), 1 KiB grubenv; the device bind-mounts /otapack at /boot/grub` },
  );
  await writeFat(image, esp.start, writes, o.timestamp);
  return { bootloader: 'grub', bootPartition: esp.number, bootFiles, boardStep: describeStep(step), edits, initialEnv: Object.fromEntries(env), envFile, bootlimit: cfg.bootlimit, rootfsFiles };
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
