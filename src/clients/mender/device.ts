// What the Mender client (3.x, standalone mode) needs on the converted device, as meta-mender
// and mender-convert lay it out: /etc/mender/mender.conf naming the two slots (RootfsPartA/B)
// and the artifact verification key, /etc/mender/artifact_info (the running artifact's name,
// read on the first install), /var/lib/mender on the data partition (/data/mender: its database
// must survive the switch to the other slot, device_type lives there), the update command, and on
// GRUB the environment tools it calls. On U-Boot it uses fw_printenv/fw_setenv with
// /etc/fw_env.config, which convert installs for every client. Pure: returns file contents.
import { renderTemplate } from '../../util/template.js';
import type { ClientSettings, DeviceFile, DeviceKeys, DeviceLayout } from '../client.js';

export const MENDER_CONF = '/etc/mender/mender.conf';
export const VERIFY_KEY_PATH = '/etc/mender/artifact-verify-key.pem';
/** Mender's data directory (compiled in) and where it lives: on the data partition. */
export const MENDER_DATA_DIR = '/var/lib/mender';
export const MENDER_DATA_ON_DATA = '/data/mender';
const SETENV = '/usr/sbin/otapack-mender-setenv';
const PRINTENV = '/usr/sbin/otapack-mender-printenv';

export function menderConf(layout: Pick<DeviceLayout, 'bootloader' | 'slotA' | 'slotB'>, keys: DeviceKeys): string {
  const conf: Record<string, string> = {
    RootfsPartA: layout.slotA.device,
    RootfsPartB: layout.slotB.device,
  };
  // a key is configured when devices get one (pending: inspect shows where it will be)
  if (keys.pending || keys.verifyKeyPem) conf.ArtifactVerifyKey = VERIFY_KEY_PATH;
  if (layout.bootloader === 'grub') {
    conf.BootUtilitiesSetActivePart = SETENV;
    conf.BootUtilitiesGetNextActivePart = PRINTENV;
  }
  return JSON.stringify(conf, null, 2) + '\n';
}

export function menderDeviceFiles(layout: DeviceLayout, s: ClientSettings, keys: DeviceKeys): DeviceFile[] {
  const exe = 0o755;
  const files: DeviceFile[] = [
    { path: '/etc/mender', kind: 'dir', mode: 0o755, why: 'Mender configuration' },
    { path: MENDER_CONF, kind: 'file', data: menderConf(layout, keys), mode: 0o600, why: `Mender: slots ${layout.slotA.device} and ${layout.slotB.device}${keys.pending || keys.verifyKeyPem ? ', artifact verification key' : ''}${layout.bootloader === 'grub' ? ', GRUB environment tools' : ''}` },
    { path: '/etc/mender/artifact_info', kind: 'file', data: `artifact_name=${s.mender.artifactName}\n`, mode: 0o644, why: 'the artifact this image is (Mender reads it until its first install)' },
    { path: MENDER_DATA_DIR, kind: 'symlink', target: MENDER_DATA_ON_DATA, mode: 0o777, replaceEmptyDir: true, why: 'Mender\'s database and device_type on the data partition, shared by both slots' },
    { path: '/usr/sbin/otapack-update', kind: 'file', data: renderTemplate('device/otapack-update-mender', { BOOTLIMIT: String(s.bootlimit) }), mode: exe, why: 'installs an artifact into the inactive slot (mender install)' },
  ];
  if (keys.pending || keys.verifyKeyPem) {
    files.splice(2, 0, { path: VERIFY_KEY_PATH, kind: 'file', mode: 0o644, why: 'public key Mender checks artifact signatures with (ArtifactVerifyKey)', ...(keys.pending ? { pending: 'at convert: the public key of --trust, or of the signing key' } : { data: keys.verifyKeyPem }) });
  }
  if (layout.bootloader === 'grub') {
    files.push(
      { path: '/usr/sbin/otapack-mender-env', kind: 'file', data: renderTemplate('device/otapack-mender-env'), mode: exe, why: 'GRUB environment tools for Mender, over otapack-env' },
      { path: SETENV, kind: 'symlink', target: 'otapack-mender-env', mode: 0o777, why: 'Mender writes the boot state with it (BootUtilitiesSetActivePart)' },
      { path: PRINTENV, kind: 'symlink', target: 'otapack-mender-env', mode: 0o777, why: 'Mender reads the boot state with it (BootUtilitiesGetNextActivePart)' },
    );
  }
  return files;
}

/** The data partition starts with Mender's data directory and the device type. */
export function menderDataFiles(_layout: DeviceLayout, s: ClientSettings): DeviceFile[] {
  return [
    { path: '/mender', kind: 'dir', mode: 0o700, why: `Mender's data directory (${MENDER_DATA_DIR} on the device)` },
    { path: '/mender/device_type', kind: 'file', data: `device_type=${s.mender.deviceType}\n`, mode: 0o644, why: 'the device type artifacts must list' },
  ];
}
