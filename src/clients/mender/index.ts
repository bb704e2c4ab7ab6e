// Mender as an update client of convert: the device files it needs (device.ts), the check that
// the image brings the client, and the first .mender for the slots: slot A's image as a
// rootfs-image payload, which `mender install` writes into whichever slot is not running.
import { OtapackError } from '../../errors.js';
import type { ArtifactPlan, ClientSettings, DeviceLayout, InputPath, SlotSource, UpdateClient } from '../client.js';
import { MENDER_BOOT_SCHEME } from './scheme.js';
import { menderDataFiles, menderDeviceFiles, MENDER_DATA_DIR } from './device.js';
import { buildMenderArtifact, type MenderBuildResult } from './bundle.js';
import { DEFAULT_CLEARS_PROVIDES, MENDER_GZIP_LEVEL, NAME_RE } from './artifact.js';
import type { MenderSpec } from './spec.js';

const MENDER_PATHS = ['/usr/bin/mender', '/usr/sbin/mender', '/bin/mender', '/sbin/mender', '/usr/local/bin/mender'];
const FW_SETENV = ['/usr/bin/fw_setenv', '/usr/sbin/fw_setenv', '/bin/fw_setenv', '/sbin/fw_setenv'];
const FW_PRINTENV = ['/usr/bin/fw_printenv', '/usr/sbin/fw_printenv', '/bin/fw_printenv', '/sbin/fw_printenv'];
const PAYLOAD = 'rootfs.ext4';

/** The artifact spec for the slots, without its payload source (slot A of the disk being written). */
export type SlotMenderSpec = Omit<MenderSpec, 'source'> & { source: { label: string; size: number } };

export function slotMenderSpec(layout: DeviceLayout, s: ClientSettings): SlotMenderSpec {
  const file = s.file ?? 'otapack convert';
  if (s.update.encrypt) throw new OtapackError('CONFIG', `${file}: update.encrypt: Mender artifacts are not encrypted (the client has no decryption); remove it with client: mender`);
  if (s.update.compress === 'zstd') {
    throw new OtapackError('CONFIG', `${file}: update.compress: zstd: Debian's Mender client 3.4 reads gzip or uncompressed artifacts only; use zlib (gzip, the default with client: mender) or none`);
  }
  if (s.update.level !== undefined && s.update.level > 9 && s.update.compress !== 'none') throw new OtapackError('CONFIG', `${file}: update.compress-level: ${s.update.level}: gzip levels are 1-9`);
  for (const [k, v] of [['mender.device-type', s.mender.deviceType], ['mender.artifact-name', s.mender.artifactName]] as const) {
    if (!NAME_RE.test(v)) throw new OtapackError('CONFIG', `${file}: ${k} "${v}" must be letters, digits and . _ : + ~ @ / - (no spaces)`);
  }
  return {
    file,
    artifactName: s.mender.artifactName,
    deviceTypes: [s.mender.deviceType],
    source: { label: PAYLOAD, size: layout.slotA.size },
    payloadName: PAYLOAD,
    compress: s.update.compress === 'none' ? 'none' : 'zlib',
    level: s.update.compress === 'none' ? undefined : s.update.level !== undefined ? s.update.level : MENDER_GZIP_LEVEL,
    provides: {},
    depends: {},
    typeProvides: { 'rootfs-image.version': s.mender.artifactName },
    typeDepends: {},
    clearsProvides: [...DEFAULT_CLEARS_PROVIDES],
    scripts: [],
  };
}

function present(paths: Record<string, InputPath | undefined>, list: string[]): boolean {
  return list.some((p) => paths[p]?.type === 'file');
}

export const menderClient: UpdateClient = {
  id: 'mender',
  name: 'Mender',
  signing: 'raw',
  scheme: MENDER_BOOT_SCHEME,
  inputPaths: (bootloader) => [...MENDER_PATHS, ...(bootloader === 'uboot' ? [...FW_SETENV, ...FW_PRINTENV] : []), MENDER_DATA_DIR],
  checkInput(paths, bootloader, image) {
    if (!present(paths, MENDER_PATHS)) {
      throw new OtapackError('INPUT', `the rootfs has no Mender client (looked for ${MENDER_PATHS.join(', ')}); otapack wires the Mender client the image brings: add it to the image (Buildroot: BR2_PACKAGE_MENDER; Debian/Armbian: apt-get install mender-client; Yocto: meta-mender) and convert again`, { path: image, reason: 'client-missing' });
    }
    if (bootloader === 'uboot' && (!present(paths, FW_SETENV) || !present(paths, FW_PRINTENV))) {
      throw new OtapackError('INPUT', `the rootfs has no fw_setenv/fw_printenv, which Mender uses to switch slots on U-Boot; add them to the image (Buildroot: BR2_PACKAGE_LIBUBOOTENV or BR2_PACKAGE_UBOOT_TOOLS_FWPRINTENV; Debian/Armbian: apt-get install libubootenv-tool) and convert again`, { path: image, reason: 'client-missing' });
    }
    const data = paths[MENDER_DATA_DIR];
    if (data && data.type !== 'dir' && data.type !== 'symlink') {
      throw new OtapackError('INPUT', `${MENDER_DATA_DIR} in the rootfs is not a directory; convert puts it on the data partition (a link to /data/mender)`, { path: image });
    }
    if (data?.type === 'dir' && (data.entries ?? 0) > 0) {
      throw new OtapackError('INPUT', `${MENDER_DATA_DIR} in the rootfs holds ${data.entries} entries; convert links it to /data/mender on the data partition (both slots share Mender's database there): empty it in the image, or move what it holds to the data partition with data.files`, { path: image });
    }
  },
  commit: {
    command: 'mender commit',
    what: 'mender commit: upgrade_available=0',
    // after the boot loader gave up on a trial (it set upgrade_available=0 and switched back),
    // `mender rollback` closes the install Mender still has open in its database
    onIdle: '\t# an install the boot loader fell back from stays open in Mender\'s database until this\n\tmender rollback >/dev/null 2>&1 || true\n',
  },
  deviceFiles: menderDeviceFiles,
  dataFiles: menderDataFiles,
  planArtifact(layout: DeviceLayout, s: ClientSettings): ArtifactPlan {
    const spec = slotMenderSpec(layout, s);
    return {
      file: `${layout.name}.mender`,
      summary: `Mender artifact ${spec.artifactName} (rootfs-image, ${spec.compress === 'zlib' ? 'gzip' : 'uncompressed'}) for device type ${spec.deviceTypes.join(', ')}: slot A's image; mender install writes it into the slot not running (${layout.slotA.device} or ${layout.slotB.device})`,
      spec,
    };
  },
  async buildArtifact(o) {
    const planned = o.plan.spec as SlotMenderSpec;
    const source: SlotSource = o.source;
    const spec: MenderSpec = { ...planned, source };
    const r: MenderBuildResult = await buildMenderArtifact({ spec, output: o.output, signer: o.manifestSigner, mtime: o.mtime, reproducible: o.reproducible, reporter: o.reporter });
    return {
      size: r.size, sha256: r.sha256!, signed: r.signed, signer: r.signer, signatureAlgorithm: r.signatureAlgorithm, manifest: r.manifest, detail: r,
      entries: [{ name: `data/0000/${r.payloadName}`, size: r.payloadSize, sha256: r.payloadSha256, compression: spec.compress, encrypted: false, source: source.label, inputSize: r.payloadSize }],
    };
  },
};
