// What convert installs into both slots so the device side works: mounts, boot-environment
// access, the A/B layout, and the slot, environment and commit commands with their init wiring;
// the update client adds its own (configuration, identity, trust anchor, update command: see
// src/clients/). Pure: returns file contents.
import { renderTemplate } from '../util/template.js';
import { trialScheme } from '../boot/scheme.js';
import type { DeviceFile, DeviceKeys, DeviceLayout, UpdateClient } from '../clients/client.js';
import type { ConvertConfig } from './config.js';
import { byRole, type PlanCore } from './plan.js';
import { ENV_FILE, ENV_SIZE } from './boot-plan.js';

const template = (name: string, values: Record<string, string> = {}): string => renderTemplate(`device/${name}`, values);

/** Where the boot partition is mounted on the device, and where the A/B state lives under it. */
export function bootMounts(plan: PlanCore, fstab: string | undefined): { mount: string; envPath: string; grubDir?: string } {
  const boot = byRole(plan, 'boot')!;
  const existing = fstab ? findMount(fstab, boot, plan) : undefined;
  if (plan.bootloader === 'grub') {
    const mount = existing ?? '/boot/efi';
    return { mount, envPath: '/boot/grub/grubenv', grubDir: `${mount}/otapack` };
  }
  const mount = existing ?? '/uboot';
  return { mount, envPath: `${mount}/${ENV_FILE}` };
}

/** A mount point the input's fstab already gives the boot partition, if any. */
function findMount(fstab: string, boot: PlanCore['partitions'][number], plan: PlanCore): string | undefined {
  const inputBoot = plan.layout.boot;
  const names = new Set<string>([boot.device, `PARTUUID=${boot.partuuid}`]);
  if (inputBoot) names.add(`PARTUUID=${inputBoot.partuuid}`);
  if (plan.layout.bootFs) {
    const v = plan.layout.bootFs.volumeId.toUpperCase();
    names.add(`UUID=${v.slice(0, 4)}-${v.slice(4)}`);
    if (plan.layout.bootFs.label) names.add(`LABEL=${plan.layout.bootFs.label}`);
  }
  for (const line of fstab.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 2 && !f[0]!.startsWith('#') && (names.has(f[0]!) || names.has(f[0]!.toUpperCase()))) return f[1];
  }
  return undefined;
}

/** fstab of the slots: root by /dev/root (A and B share a filesystem UUID), plus boot and data. */
export function patchFstab(original: string | undefined, plan: PlanCore, mount: string, cfg: ConvertConfig): { text: string; changes: string[] } {
  const changes: string[] = [];
  const lines = (original ?? '').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const boot = byRole(plan, 'boot')!;
  const data = byRole(plan, 'data')!;
  const out: string[] = [];
  let hasBoot = false;
  let hasRoot = false;
  let hasTmp = false;
  const ro = cfg.rootfs.readOnly;
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 2 && !f[0]!.startsWith('#')) {
      if (f[1] === '/') hasRoot = true;
      if (f[1] === '/tmp') hasTmp = true;
      if (f[1] === '/' && ro) {
        // never mounted read-write, never "repaired" by a boot-time fsck: the slot's bytes stay
        // those of the release (an rdiff delta's base)
        const opts = (f[3] ?? 'defaults').split(',').filter((o) => o !== 'rw' && o !== 'defaults' && o !== 'ro');
        const next = ['/dev/root', '/', f[2] ?? 'auto', ['ro', ...opts].join(','), f[4] ?? '0', '0'].join('\t');
        out.push(`# otapack: was "${line.trim()}": read-only root (rootfs.read-only), the kernel mounts the running slot`);
        out.push(next);
        if (f[0] !== '/dev/root') changes.push(`root entry ${f[0]} -> /dev/root`);
        changes.push(`root mounted read-only (${['ro', ...opts].join(',')}, no fsck pass)`);
        continue;
      }
      if (f[1] === '/' && f[0] !== '/dev/root') {
        out.push(`# otapack: was "${f[0]}" (shared by slots A and B); the kernel mounts the running slot`);
        out.push(line.replace(f[0]!, '/dev/root'));
        changes.push(`root entry ${f[0]} -> /dev/root`);
        continue;
      }
      if (f[1] === '/data') {
        out.push(`# otapack: replaced: ${line}`);
        changes.push('previous /data entry replaced');
        continue;
      }
      if (f[1] === mount) hasBoot = true;
    }
    out.push(line);
  }
  if (ro && !hasRoot) {
    out.push('# otapack: read-only root (rootfs.read-only)');
    out.push('/dev/root\t/\tauto\tro\t0\t0');
    changes.push('root mounted read-only (ro, no fsck pass)');
  }
  if (ro && !hasTmp) {
    out.push('# otapack: the root is read-only; scratch space (SWUpdate\'s TMPDIR among others) in RAM');
    out.push('tmpfs\t/tmp\ttmpfs\tmode=1777,nosuid,nodev\t0\t0');
    changes.push('tmpfs mounted at /tmp');
  }
  out.push('# otapack: A/B boot state and persistent data');
  if (!hasBoot) {
    out.push(`${boot.device}\t${mount}\tvfat\tdefaults,noatime\t0\t0`);
    changes.push(`boot partition ${boot.device} mounted at ${mount}`);
  }
  if (plan.bootloader === 'grub') {
    out.push(`${mount}/otapack\t/boot/grub\tnone\tbind\t0\t0`);
    changes.push(`${mount}/otapack bind-mounted at /boot/grub (${cfg.client === 'mender' ? 'Mender edits it through otapack-env' : 'SWUpdate edits'} /boot/grub/grubenv)`);
  }
  out.push(`${data.device}\t/data\text4\tdefaults,noatime\t0\t2`);
  changes.push(`data partition ${data.device} (${cfg.data.label}) mounted at /data`);
  return { text: out.join('\n') + '\n', changes };
}

/** BusyBox/SysV inittab with the remount of / read-write commented out (Buildroot's default has one). */
export function readOnlyInittab(text: string): { text: string; changed: number } {
  let changed = 0;
  const out = text.split('\n').map((line) => {
    if (/^\s*#/.test(line) || !/\bmount\b.*-o\s*remount,rw\s+\/\s*$/.test(line)) return line;
    changed++;
    return `# otapack (rootfs.read-only): the root stays read-only\n# ${line}`;
  });
  return { text: out.join('\n'), changed };
}

export function slotsConf(plan: PlanCore, cfg: ConvertConfig, envPath: string): string {
  const a = byRole(plan, 'rootfs-a')!;
  const b = byRole(plan, 'rootfs-b')!;
  const boot = byRole(plan, 'boot')!;
  const data = byRole(plan, 'data')!;
  return [
    '# A/B layout of this device, written by otapack convert. Sourced by the otapack-* commands.',
    `BOOTLOADER=${plan.bootloader}`,
    `DEVICE=${plan.device}`,
    `BOOT_DEV=${boot.device}`,
    `SLOT_A_PART=${a.number}`,
    `SLOT_A_DEV=${a.device}`,
    `SLOT_A_PARTUUID=${a.partuuid}`,
    `SLOT_B_PART=${b.number}`,
    `SLOT_B_DEV=${b.device}`,
    `SLOT_B_PARTUUID=${b.partuuid}`,
    `DATA_DEV=${data.device}`,
    `COLLECTION=${cfg.update.collection}`,
    `BOOTLIMIT=${cfg.bootlimit}`,
    plan.bootloader === 'grub' ? `GRUBENV=${envPath}` : `UBOOT_ENV=${envPath}`,
    ...(cfg.hawkbit?.targetName ? [`HAWKBIT_TARGET_NAME=${cfg.hawkbit.targetName}`] : []),
    '',
  ].join('\n');
}

export interface DeviceFileInputs {
  plan: PlanCore;
  cfg: ConvertConfig;
  fstab?: string;
  inittab?: string;
  client: UpdateClient;
  keys: DeviceKeys;
}

/** What a client sees of the converted disk. */
export function deviceLayout(plan: PlanCore, envPath: string): DeviceLayout {
  const part = (role: 'boot' | 'rootfs-a' | 'rootfs-b' | 'data') => {
    const p = byRole(plan, role)!;
    return { number: p.number, device: p.device, partuuid: p.partuuid, size: p.size };
  };
  return { name: plan.name, bootloader: plan.bootloader, device: plan.device, slotA: part('rootfs-a'), slotB: part('rootfs-b'), boot: part('boot'), data: part('data'), envPath };
}

export function deviceFiles(i: DeviceFileInputs): { files: DeviceFile[]; fstabChanges: string[]; envPath: string; bootMount: string; layout: DeviceLayout } {
  const { plan, cfg } = i;
  const { mount, envPath, grubDir } = bootMounts(plan, i.fstab);
  const fstab = patchFstab(i.fstab, plan, mount, cfg);
  const layout = deviceLayout(plan, envPath);
  const exe = 0o755;
  // the slot and commit commands speak the client's boot-state variables
  const scheme = trialScheme(i.client.scheme, 'the device commands');
  const files: DeviceFile[] = [
    { path: mount, kind: 'dir', mode: 0o755, why: 'mount point of the boot partition (boot state)' },
    { path: '/data', kind: 'dir', mode: 0o755, why: 'mount point of the persistent data partition' },
    { path: '/etc/fstab', kind: 'file', data: fstab.text, mode: 0o644, why: fstab.changes.join('; ') },
    { path: '/etc/otapack', kind: 'dir', mode: 0o755, why: 'otapack device configuration' },
    { path: '/etc/otapack/health.d', kind: 'dir', mode: 0o755, why: 'health checks run before a new slot is committed' },
    { path: '/etc/otapack/slots.conf', kind: 'file', data: slotsConf(plan, cfg, envPath), mode: 0o644, why: 'A/B layout for the update and commit commands' },
    ...i.client.deviceFiles(layout, cfg, i.keys),
    { path: '/usr/sbin/otapack-slot', kind: 'file', data: template('otapack-slot', { SLOT_VAR: scheme.slotVar }), mode: exe, why: 'prints the running slot' },
    { path: '/usr/sbin/otapack-env', kind: 'file', data: template('otapack-env'), mode: exe, why: 'reads/writes the A/B boot state' },
    { path: '/usr/sbin/otapack-commit', kind: 'file', data: template('otapack-commit', { TRIAL_VAR: scheme.trialVar, COMMIT: i.client.commit.command, COMMIT_WHAT: i.client.commit.what, ON_IDLE: i.client.commit.onIdle }), mode: exe, why: 'health checks, then marks a new slot good' },
    { path: '/etc/init.d/S99otapack-commit', kind: 'file', data: template('S99otapack-commit'), mode: exe, why: 'runs the commit at the end of a BusyBox/SysV boot' },
    { path: '/etc/systemd/system/otapack-commit.service', kind: 'file', data: template('otapack-commit.service'), mode: 0o644, why: 'runs the commit after multi-user.target' },
    { path: '/etc/systemd/system/multi-user.target.wants/otapack-commit.service', kind: 'symlink', target: '/etc/systemd/system/otapack-commit.service', mode: 0o777, why: 'enables the commit unit' },
  ];
  if (plan.bootloader === 'uboot') {
    files.push({ path: '/etc/fw_env.config', kind: 'file', data: `# U-Boot environment of the A/B boot script (otapack)\n${envPath}\t0x0000\t0x${ENV_SIZE.toString(16)}\n`, mode: 0o644, why: `where fw_printenv/fw_setenv${i.client.id === 'swupdate' ? ' and SWUpdate -B uboot' : ` (and ${i.client.name} through them)`} find the boot state` });
  } else {
    files.push({ path: '/boot/grub', kind: 'dir', mode: 0o755, why: `bind mount of ${grubDir} (grubenv)` });
  }
  if (cfg.rootfs.readOnly && i.inittab !== undefined) {
    const it = readOnlyInittab(i.inittab);
    if (it.changed) files.push({ path: '/etc/inittab', kind: 'file', data: it.text, mode: 0o644, why: `read-only root: ${it.changed} "mount -o remount,rw /" line${it.changed > 1 ? 's' : ''} commented out` });
  }
  for (const f of cfg.rootfs.files) files.push({ path: f.target, kind: 'file', source: f.source, mode: f.mode ?? 0o644, why: `from ${f.source} (rootfs.files)` });
  return { files, fstabChanges: fstab.changes, envPath, bootMount: mount, layout };
}
