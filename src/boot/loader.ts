// The boot loader an image really has, and what otapack's A/B logic may use of it. read-input
// reads the GRUB EFI image (grub-image.ts) or the U-Boot binary (uboot-commands.ts) into
// LoaderFacts; the plan asks checkGrub/checkUboot (pure) what to generate: which modules to
// insmod, which U-Boot commands to avoid, and what is missing, which refuses the conversion in
// one line naming it and how to add it.
import type { GrubImage } from './grub-image.js';
import { BUILDROOT_GRUB_EFI_MODULES, topLevelModules } from './grub-image.js';
import { envSubcommands, type UbootCommandTable } from './uboot-commands.js';

/** Modules a GRUB needs for otapack's grub.cfg besides a minimal image's (Buildroot's default list). */
export const GRUB_MINIMUM_MODULES = ['loadenv', 'test', 'echo', 'configfile', 'reboot'] as const;

/** A module folder the GRUB image loads more modules from (insmod, autoload). */
export interface GrubModuleFolder {
  /** esp: a folder on the ESP; memdisk: inside the image's memdisk. */
  where: 'esp' | 'memdisk';
  /** The folder, e.g. /EFI/BOOT/x86_64-efi. */
  path: string;
  modules: string[];
}

export type LoaderFacts =
  | { kind: 'grub'; source: string; path: string; image: GrubImage; folder?: GrubModuleFolder; notes: string[] }
  | { kind: 'uboot'; source: string; table: UbootCommandTable; notes: string[] }
  | { kind: 'none'; bootloader: 'uboot' | 'grub'; looked: string[]; notes: string[] };

/** What the plan and inspect show of the boot loader: where it was read, what it has, what was adapted. */
export interface LoaderReport {
  kind: 'grub' | 'uboot';
  /** Where it was read from; null when no boot loader binary was found on the image. */
  source: string | null;
  /** One line: what it is and has. */
  summary: string;
  /** GRUB: modules built into the image; U-Boot: its commands. Empty when not found. */
  builtIn: string[];
  /** GRUB: modules in its module folder (null: none); U-Boot: env's subcommands (null: not read). */
  extra: string[] | null;
  /** The A/B logic's requirements that it has, by name (modules or commands). */
  uses: string[];
  /** What the generated logic does differently for this boot loader. */
  adaptations: string[];
  notes: string[];
}

export interface GrubNeeds {
  partmap: 'gpt' | 'msdos';
  /** The board step reads the slot (its grub.cfg or kernel): the ext2 module. */
  readsSlot: boolean;
  step: 'configfile' | 'kernel';
}

export interface GrubCheck {
  /** Needed modules found in the module folder rather than built in: the config insmods them. */
  insmod: string[];
  /** The image has reboot: a failed trial boot restarts to be counted. */
  reboot: boolean;
  /** Needed modules the GRUB has neither built in nor in its folder. */
  missing: string[];
  report: LoaderReport;
}

const moduleNames = (img: GrubImage): Set<string> => new Set(img.modules.map((m) => m.name));

function grubSummary(f: Extract<LoaderFacts, { kind: 'grub' }>): string {
  const i = f.image;
  return [
    `GRUB ${i.platform}: ${i.modules.length} modules built in`,
    `prefix ${i.prefix ?? '(none)'}`,
    ...(i.config !== undefined ? ['an embedded config'] : []),
    ...(i.memdisk ? [`a memdisk of ${i.memdisk.length} files`] : []),
    f.folder ? `${f.folder.modules.length} more modules in ${f.folder.path}` : 'no module folder',
    ...(i.signed ? ['signed (Secure Boot)'] : i.sbat ? ['SBAT section (for shim)'] : []),
  ].join(', ');
}

/** What otapack's grub.cfg needs of a GRUB, and what this one has. */
export function checkGrub(f: LoaderFacts, needs: GrubNeeds): GrubCheck {
  const required = ['loadenv', 'test', 'echo', needs.step === 'kernel' ? 'linux' : 'configfile', 'fat', `part_${needs.partmap}`, ...(needs.readsSlot ? ['ext2'] : [])];
  if (f.kind !== 'grub') {
    const notes = [...f.notes, `no GRUB EFI image found (looked at ${f.kind === 'none' ? f.looked.join(', ') : 'a U-Boot'}): its modules were not checked; the A/B logic needs ${[...required, 'reboot'].join(', ')}`];
    return { insmod: [], reboot: true, missing: [], report: { kind: 'grub', source: null, summary: 'no GRUB EFI image found: not checked', builtIn: [], extra: null, uses: [], adaptations: [], notes } };
  }
  const built = moduleNames(f.image);
  const folder = new Set(f.folder?.modules ?? []);
  const insmod: string[] = [];
  const missing: string[] = [];
  for (const m of required) {
    if (built.has(m)) continue;
    if (folder.has(m)) insmod.push(m);
    else missing.push(m);
  }
  const reboot = built.has('reboot') || folder.has('reboot');
  if (!built.has('reboot') && reboot) insmod.push('reboot');
  const adaptations = [
    'slot devices and PARTUUIDs written in (no regexp or probe at boot)',
    ...(insmod.length ? [`insmod ${insmod.join(' ')} from ${f.folder!.path}`] : []),
    ...(reboot ? [] : ['no reboot module: a failed trial boot stops instead of restarting; it is counted at the next power-on']),
  ];
  return {
    insmod, reboot, missing,
    report: {
      kind: 'grub', source: f.source, summary: grubSummary(f), builtIn: [...built], extra: f.folder ? f.folder.modules : null,
      uses: [...required, ...(reboot ? ['reboot'] : [])].filter((m) => built.has(m) || folder.has(m)), adaptations, notes: f.notes,
    },
  };
}

/**
 * The module list to give grub-mkimage (Buildroot: BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI) for this
 * image plus `add`: Buildroot's defaults the image has, in their order, then its other top-level
 * modules, then the additions.
 */
export function grubModuleList(img: GrubImage, add: readonly string[]): string[] {
  const built = moduleNames(img);
  const br = BUILDROOT_GRUB_EFI_MODULES.filter((m) => built.has(m));
  const rest = topLevelModules(img).filter((m) => !br.includes(m as (typeof br)[number]));
  return [...new Set([...br, ...rest, ...add])];
}

export interface UbootNeeds {
  step: 'boot-script' | 'slot-script' | 'extlinux' | 'kernel';
  bootCmd?: 'booti' | 'bootz' | 'bootm';
}

/** A command the A/B boot script needs and the U-Boot options that build it. */
interface Need { command: string; config: string; why: string }

export interface UbootCheck {
  /** setexpr + itest (as before), or a decimal chain with test when either is missing. */
  counter: 'setexpr' | 'test';
  /** No `part` command: PARTUUIDs are written into the script. */
  bakePartuuids: boolean;
  /** The `reset` command exists: a failed trial boot restarts to be counted. */
  reset: boolean;
  missing: Need[];
  report: LoaderReport;
}

/** What otapack's boot.scr needs of a U-Boot, and what this one has. */
export function checkUboot(f: LoaderFacts, needs: UbootNeeds): UbootCheck {
  const required: Need[] = [
    { command: 'setenv', config: 'CONFIG_CMDLINE', why: 'the script sets variables' },
    { command: 'echo', config: 'CONFIG_CMD_ECHO', why: 'markers on the console' },
    { command: 'test', config: 'CONFIG_HUSH_PARSER', why: 'conditions' },
    { command: 'load', config: 'CONFIG_CMD_FS_GENERIC', why: 'reading otapack.env' },
    { command: 'env import', config: 'CONFIG_CMD_IMPORTENV', why: 'reading otapack.env' },
    { command: 'env export', config: 'CONFIG_CMD_EXPORTENV', why: 'writing otapack.env' },
    { command: 'fatwrite', config: 'CONFIG_CMD_FAT + CONFIG_FAT_WRITE', why: 'counting boot attempts in otapack.env' },
    { command: 'source', config: 'CONFIG_CMD_SOURCE', why: 'running boot.scr' },
  ];
  if (needs.step === 'extlinux') required.push({ command: 'sysboot', config: 'CONFIG_CMD_SYSBOOT', why: "the board's extlinux.conf" });
  if (needs.step === 'kernel') {
    const c = needs.bootCmd ?? 'booti';
    required.push({ command: c, config: `CONFIG_CMD_${c.toUpperCase()}`, why: 'starting the kernel' });
  }
  if (f.kind !== 'uboot') {
    const notes = [...f.notes, `no U-Boot found${f.kind === 'none' ? ` (looked at ${f.looked.join(', ')})` : ''}: its commands were not checked; the boot script needs ${required.map((r) => r.command).join(', ')}, setexpr, itest and part (set boot.loader-binary to the U-Boot the board runs to have them checked)`];
    return { counter: 'setexpr', bakePartuuids: false, reset: true, missing: [], report: { kind: 'uboot', source: null, summary: 'no U-Boot found: not checked', builtIn: [], extra: null, uses: [], adaptations: [], notes } };
  }
  const cmds = new Set(f.table.commands);
  const env = envSubcommands(f.table);
  const notes = [...f.notes];
  if (cmds.has('env') && !env) notes.push("the env command's subcommand table was not found: env import/export are assumed present");
  const has = (c: string): boolean => {
    if (c.startsWith('env ')) return cmds.has('env') && (env === undefined || env.includes(c.slice(4)));
    return cmds.has(c);
  };
  const missing = required.filter((r) => !has(r.command));
  const counter = has('setexpr') && has('itest') ? 'setexpr' : 'test';
  const bakePartuuids = !has('part');
  const reset = has('reset');
  const adaptations = [
    ...(counter === 'test' ? [`no ${['setexpr', 'itest'].filter((c) => !has(c)).join(' or ')}: trial boots are counted with a decimal lookup chain and test`] : []),
    ...(bakePartuuids ? ['no part command: the slots\' PARTUUIDs are written into boot.scr'] : []),
    ...(reset ? [] : ['no reset command: a failed trial boot stops instead of restarting; it is counted at the next power-on']),
  ];
  const uses = [...required.map((r) => r.command), 'setexpr', 'itest', 'part', 'reset'].filter(has);
  return {
    counter, bakePartuuids, reset, missing,
    report: {
      kind: 'uboot', source: f.source, builtIn: f.table.commands, extra: env ?? null, uses, adaptations, notes,
      summary: `U-Boot (${f.table.width * 8}-bit${f.table.inflatedFrom !== undefined ? ', gzip-compressed' : ''}): ${f.table.commands.length} commands${env ? `; env ${env.join(' ')}` : ''}`,
    },
  };
}

/** The one-line refusal for a U-Boot that lacks commands the A/B script cannot do without. */
export function ubootRefusal(source: string, missing: Need[]): string {
  const names = missing.map((m) => m.command).join(', ');
  const options = [...new Set(missing.flatMap((m) => m.config.split(' + ')))];
  const why = [...new Set(missing.map((m) => m.why))].join('; ');
  return `${source}: this U-Boot has no ${names} (needed for ${why}); build U-Boot with ${options.join(', ')} (Buildroot: a fragment in BR2_TARGET_UBOOT_CONFIG_FRAGMENT_FILES with ${options.map((o) => `${o}=y`).join(' ')}), or set boot.loader-binary to the U-Boot the board really runs`;
}

/** The one-line refusal for a GRUB without the modules the A/B config needs. */
export function grubRefusal(f: Extract<LoaderFacts, { kind: 'grub' }>, missing: string[], reboot: boolean): string {
  const add = [...missing, ...(reboot ? [] : ['reboot'])];
  const list = grubModuleList(f.image, add).join(' ');
  return `${f.source}: GRUB lacks the module${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that otapack's A/B grub.cfg needs (grubenv state, conditions, console markers, the board's config); build GRUB with them (Buildroot: BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI="${list}"), or set boot.install-grub: true to put in a GRUB built from Debian's grub-efi-amd64-bin with them`;
}
