// What SWUpdate needs on the device: its configuration (trust anchor, AES key, boot loader,
// hawkBit), the identity it checks bundles against (hwrevision, sw-versions), and the update
// command that calls it for the inactive slot. Pure: returns file contents.
import { renderTemplate } from '../../util/template.js';

const renderDeviceTemplate = (name: string, values: Record<string, string> = {}): string => renderTemplate(`device/${name}`, values);
import type { ClientSettings, DeviceFile, DeviceKeys, DeviceLayout } from '../client.js';

export function swupdateConfig(layout: Pick<DeviceLayout, 'bootloader'>, s: ClientSettings): string {
  const g = [
    '\tverbose = true;',
    '\tloglevel = 5;',
    '\tsyslog = true;',
    '\tpublic-key-file = "/etc/otapack/trust.pem";',
    ...(s.update.installAesKey ? ['\taes-key-file = "/etc/otapack/aes.key";'] : []),
    `\tbootloader = "${layout.bootloader}";`,
    ...(s.update.certPurpose === 'codeSigning' ? ['\tcert-purpose = "codeSigning";'] : []),
  ];
  let text = `# SWUpdate configuration installed by otapack convert.\nglobals :\n{\n${g.join('\n')}\n};\n`;
  const hb = s.hawkbit;
  if (hb) {
    const lines = [
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
    text += `\nsuricatta :\n{\n${lines.join('\n')}\n};\n`;
  }
  return text;
}

export function swupdateDeviceFiles(layout: DeviceLayout, s: ClientSettings, keys: DeviceKeys): DeviceFile[] {
  const exe = 0o755;
  const files: DeviceFile[] = [
    { path: '/etc/otapack/trust.pem', kind: 'file', mode: 0o644, why: 'certificate(s) SWUpdate checks bundle signatures against', ...(keys.pending ? { pending: 'at convert: --trust, or the signing chain' } : { data: keys.trustPem ?? '' }) },
    { path: '/etc/swupdate.cfg', kind: 'file', data: swupdateConfig(layout, s), mode: 0o644, why: `SWUpdate: bootloader ${layout.bootloader}, trust anchor${s.update.installAesKey ? ', AES key' : ''}${s.hawkbit ? ', hawkBit' : ''}` },
    { path: '/etc/hwrevision', kind: 'file', data: `${s.hardware.board} ${s.hardware.revision}\n`, mode: 0o644, why: 'hardware identity SWUpdate checks against hardware-compatibility' },
    { path: '/etc/sw-versions', kind: 'file', data: `rootfs ${s.version}\n`, mode: 0o644, why: 'installed software versions' },
    { path: '/usr/sbin/otapack-update', kind: 'file', data: renderDeviceTemplate('otapack-update', { BOOTLIMIT: String(s.bootlimit) }), mode: exe, why: 'installs a bundle into the inactive slot' },
  ];
  if (s.update.installAesKey && (keys.pending || keys.aesKeyLine !== undefined)) {
    files.push({ path: '/etc/otapack/aes.key', kind: 'file', mode: 0o600, why: 'AES key for encrypted bundles (install-aes-key: true)', secret: true, ...(keys.pending ? { pending: 'at convert: the AES key' } : { data: keys.aesKeyLine }) });
  }
  if (s.hawkbit) {
    files.push(
      { path: '/usr/sbin/otapack-suricatta', kind: 'file', data: renderDeviceTemplate('otapack-suricatta'), mode: exe, why: 'hawkBit client for the inactive slot' },
      { path: '/etc/init.d/S98otapack-suricatta', kind: 'file', data: renderDeviceTemplate('S98otapack-suricatta'), mode: exe, why: 'starts the hawkBit client (BusyBox/SysV)' },
      { path: '/etc/systemd/system/otapack-suricatta.service', kind: 'file', data: renderDeviceTemplate('otapack-suricatta.service'), mode: 0o644, why: 'hawkBit client unit' },
      { path: '/etc/systemd/system/multi-user.target.wants/otapack-suricatta.service', kind: 'symlink', target: '/etc/systemd/system/otapack-suricatta.service', mode: 0o777, why: 'enables the hawkBit client' },
    );
  }
  return files;
}
