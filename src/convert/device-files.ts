// What convert installs into both slots so the device side works: mounts, boot-environment
// access, SWUpdate's configuration, identity files, the trust anchor, and the update, slot,
// environment and commit commands with their init wiring. Pure: returns file contents.
import { renderTemplate } from '../util/template.js';
import type { ConvertConfig } from './config.js';
import { byRole, type ConvertPlan } from './plan.js';

export interface Injection {
  path: string;
  kind: 'file' | 'dir' | 'symlink';
  data?: string | Buffer;
  target?: string;
  mode: number;
  why: string;
  secret?: boolean;
  /** Host file or directory to copy instead of `data`. */
  source?: string;
}

const template = (name: string, values: Record<string, string> = {}): string => renderTemplate(`device/${name}`, values);

export const ENV_SIZE = 0x4000;
/** The A/B state file on the boot partition (U-Boot env format). */
export const ENV_FILE = 'otapack.env';

/** Where the boot partition is mounted on the device, and where the A/B state lives under it. */
export function bootMounts(plan: ConvertPlan, fstab: string | undefined): { mount: string; envPath: string; grubDir?: string } {
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
function findMount(fstab: string, boot: ConvertPlan['partitions'][number], plan: ConvertPlan): string | undefined {
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
export function patchFstab(original: string | undefined, plan: ConvertPlan, mount: string, cfg: ConvertConfig): { text: string; changes: string[] } {
  const changes: string[] = [];
  const lines = (original ?? '').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const boot = byRole(plan, 'boot')!;
  const data = byRole(plan, 'data')!;
  const out: string[] = [];
  let hasBoot = false;
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 2 && !f[0]!.startsWith('#')) {
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
  out.push('# otapack: A/B boot state and persistent data');
  if (!hasBoot) {
    out.push(`${boot.device}\t${mount}\tvfat\tdefaults,noatime\t0\t0`);
    changes.push(`boot partition ${boot.device} mounted at ${mount}`);
  }
  if (plan.bootloader === 'grub') {
    out.push(`${mount}/otapack\t/boot/grub\tnone\tbind\t0\t0`);
    changes.push(`${mount}/otapack bind-mounted at /boot/grub (SWUpdate edits /boot/grub/grubenv)`);
  }
  out.push(`${data.device}\t/data\text4\tdefaults,noatime\t0\t2`);
  changes.push(`data partition ${data.device} (${cfg.data.label}) mounted at /data`);
  return { text: out.join('\n') + '\n', changes };
}

export function swupdateConfig(plan: ConvertPlan, cfg: ConvertConfig): string {
  const g = [
    '\tverbose = true;',
    '\tloglevel = 5;',
    '\tsyslog = true;',
    '\tpublic-key-file = "/etc/otapack/trust.pem";',
    ...(cfg.update.installAesKey ? ['\taes-key-file = "/etc/otapack/aes.key";'] : []),
    `\tbootloader = "${plan.bootloader}";`,
    ...(cfg.update.certPurpose === 'codeSigning' ? ['\tcert-purpose = "codeSigning";'] : []),
  ];
  let text = `# SWUpdate configuration installed by otapack convert.\nglobals :\n{\n${g.join('\n')}\n};\n`;
  const hb = cfg.hawkbit;
  if (hb) {
    const s = [
      `\turl = "${hb.url}";`,
      `\ttenant = "${hb.tenant}";`,
      `\tpolldelay = ${hb.pollingInterval};`,
      ...(hb.targetName ? [`\tid = "${hb.targetName}";`] : []),
      ...(hb.gatewayToken ? [`\tgatewaytoken = "${hb.gatewayToken}";`] : []),
      ...(hb.targetToken ? [`\ttargettoken = "${hb.targetToken}";`] : []),
      ...(hb.caFile ? [`\tcafile = "${hb.caFile}";`] : []),
      '\tretry = 10;',
      '\tretrywait = 60;',
    ];
    text += `\nsuricatta :\n{\n${s.join('\n')}\n};\n`;
  }
  return text;
}

export function slotsConf(plan: ConvertPlan, cfg: ConvertConfig, envPath: string): string {
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
  plan: ConvertPlan;
  cfg: ConvertConfig;
  fstab?: string;
  trustPem: string;
  aesKeyLine?: string;
  hasSystemd: boolean;
}

export function deviceFiles(i: DeviceFileInputs): { files: Injection[]; fstabChanges: string[]; envPath: string; bootMount: string } {
  const { plan, cfg } = i;
  const { mount, envPath, grubDir } = bootMounts(plan, i.fstab);
  const fstab = patchFstab(i.fstab, plan, mount, cfg);
  const exe = 0o755;
  const files: Injection[] = [
    { path: mount, kind: 'dir', mode: 0o755, why: 'mount point of the boot partition (boot state)' },
    { path: '/data', kind: 'dir', mode: 0o755, why: 'mount point of the persistent data partition' },
    { path: '/etc/fstab', kind: 'file', data: fstab.text, mode: 0o644, why: fstab.changes.join('; ') },
    { path: '/etc/otapack', kind: 'dir', mode: 0o755, why: 'otapack device configuration' },
    { path: '/etc/otapack/health.d', kind: 'dir', mode: 0o755, why: 'health checks run before a new slot is committed' },
    { path: '/etc/otapack/slots.conf', kind: 'file', data: slotsConf(plan, cfg, envPath), mode: 0o644, why: 'A/B layout for the update and commit commands' },
    { path: '/etc/otapack/trust.pem', kind: 'file', data: i.trustPem, mode: 0o644, why: 'certificate(s) SWUpdate checks bundle signatures against' },
    { path: '/etc/swupdate.cfg', kind: 'file', data: swupdateConfig(plan, cfg), mode: 0o644, why: `SWUpdate: bootloader ${plan.bootloader}, trust anchor${cfg.update.installAesKey ? ', AES key' : ''}${cfg.hawkbit ? ', hawkBit' : ''}` },
    { path: '/etc/hwrevision', kind: 'file', data: `${cfg.hardware.board} ${cfg.hardware.revision}\n`, mode: 0o644, why: 'hardware identity SWUpdate checks against hardware-compatibility' },
    { path: '/etc/sw-versions', kind: 'file', data: `rootfs ${cfg.version}\n`, mode: 0o644, why: 'installed software versions' },
    { path: '/usr/sbin/otapack-update', kind: 'file', data: template('otapack-update', { BOOTLIMIT: String(cfg.bootlimit) }), mode: exe, why: 'installs a bundle into the inactive slot' },
    { path: '/usr/sbin/otapack-slot', kind: 'file', data: template('otapack-slot'), mode: exe, why: 'prints the running slot' },
    { path: '/usr/sbin/otapack-env', kind: 'file', data: template('otapack-env'), mode: exe, why: 'reads/writes the A/B boot state' },
    { path: '/usr/sbin/otapack-commit', kind: 'file', data: template('otapack-commit'), mode: exe, why: 'health checks, then marks a new slot good' },
    { path: '/etc/init.d/S99otapack-commit', kind: 'file', data: template('S99otapack-commit'), mode: exe, why: 'runs the commit at the end of a BusyBox/SysV boot' },
    { path: '/etc/systemd/system/otapack-commit.service', kind: 'file', data: template('otapack-commit.service'), mode: 0o644, why: 'runs the commit after multi-user.target' },
    { path: '/etc/systemd/system/multi-user.target.wants/otapack-commit.service', kind: 'symlink', target: '/etc/systemd/system/otapack-commit.service', mode: 0o777, why: 'enables the commit unit' },
  ];
  if (plan.bootloader === 'uboot') {
    files.push({ path: '/etc/fw_env.config', kind: 'file', data: `# U-Boot environment of the A/B boot script (otapack)\n${envPath}\t0x0000\t0x${ENV_SIZE.toString(16)}\n`, mode: 0o644, why: 'where fw_printenv/fw_setenv and SWUpdate -B uboot find the boot state' });
  } else {
    files.push({ path: '/boot/grub', kind: 'dir', mode: 0o755, why: `bind mount of ${grubDir} (grubenv)` });
  }
  if (cfg.update.installAesKey && i.aesKeyLine) {
    files.push({ path: '/etc/otapack/aes.key', kind: 'file', data: i.aesKeyLine, mode: 0o600, why: 'AES key for encrypted bundles (install-aes-key: true)', secret: true });
  }
  if (cfg.hawkbit) {
    files.push(
      { path: '/usr/sbin/otapack-suricatta', kind: 'file', data: template('otapack-suricatta'), mode: exe, why: 'hawkBit client for the inactive slot' },
      { path: '/etc/init.d/S98otapack-suricatta', kind: 'file', data: template('S98otapack-suricatta'), mode: exe, why: 'starts the hawkBit client (BusyBox/SysV)' },
      { path: '/etc/systemd/system/otapack-suricatta.service', kind: 'file', data: template('otapack-suricatta.service'), mode: 0o644, why: 'hawkBit client unit' },
      { path: '/etc/systemd/system/multi-user.target.wants/otapack-suricatta.service', kind: 'symlink', target: '/etc/systemd/system/otapack-suricatta.service', mode: 0o777, why: 'enables the hawkBit client' },
    );
  }
  for (const f of cfg.rootfs.files) files.push({ path: f.target, kind: 'file', source: f.source, mode: f.mode ?? 0o644, why: `from ${f.source} (rootfs.files)` });
  return { files, fstabChanges: fstab.changes, envPath, bootMount: mount };
}
