// SWUpdate as an update client of convert: the device files it needs and the .swu that installs
// slot A's image into either slot (collection <stable>: copy1 -> slot A, copy2 -> slot B, each
// starting a trial boot through `bootenv`).
import type { ArtifactPlan, ClientSettings, DeltaRequest, DeviceLayout, LayoutPartition, SlotSource, UpdateClient } from '../client.js';
import type { DeltaBase } from '../../delta/base.js';
import { swupdateDeviceFiles } from './device.js';
import { SWUPDATE_BOOT_SCHEME } from './scheme.js';
import { trialBootEnv } from '../../boot/scheme.js';
import { buildBundle, type BuildResult } from './bundle.js';
import type { ArtifactSpec, BundleSpec } from './spec.js';

/** The bootenv a bundle sets to start a trial boot of `slot`, in the scheme's variables. */
const trialEnv = (slot: LayoutPartition): Record<string, string> => Object.fromEntries(trialBootEnv(SWUPDATE_BOOT_SCHEME, slot.number).map((e) => [e.name, e.value]));

/** The bundle spec for the slots, without its payload source (that is slot A of the disk being written). */
export type SlotBundleSpec = Omit<BundleSpec, 'artifacts'> & { artifacts: (Omit<ArtifactSpec, 'source'> & { source: { label: string; size: number } })[] };

export function slotBundleSpec(layout: DeviceLayout, s: ClientSettings): SlotBundleSpec {
  return {
    file: s.file ?? 'otapack convert',
    version: s.version,
    description: `${layout.name} rootfs ${s.version}`,
    hardwareCompatibility: s.hardware.compatible,
    collection: s.update.collection,
    slots: [
      { name: 'copy1', device: layout.slotA.device, bootenv: trialEnv(layout.slotA) },
      { name: 'copy2', device: layout.slotB.device, bootenv: trialEnv(layout.slotB) },
    ],
    bootenv: {},
    artifacts: [{
      kind: 'images', source: { label: 'rootfs.ext4', size: layout.slotA.size }, type: 'raw', compress: s.update.compress, level: s.update.level,
      encrypt: s.update.encrypt, installedDirectly: false, installIfDifferent: false, installIfHigher: false, preserveAttributes: false, properties: {},
    }],
    manifestFormat: 'libconfig',
    cpioFormat: 'crc',
  };
}

/**
 * The delta bundle for the slots: the same spec, its image shipped as a delta from the release
 * the device runs (copy1 installs into A over B's release, copy2 into B over A's).
 */
export function slotDeltaSpec(layout: DeviceLayout, s: ClientSettings, d: DeltaRequest): SlotBundleSpec {
  const spec = slotBundleSpec(layout, s);
  const a = spec.artifacts[0]!;
  a.delta = { from: d.base.origin, method: d.method, url: d.url, base: { copy1: layout.slotB.device, copy2: layout.slotA.device } };
  if (d.method === 'zchunk') {
    a.compress = 'none';
    a.level = undefined;
    a.encrypt = false;
  }
  spec.description = `${layout.name} rootfs ${s.version} (${d.method} delta from ${d.base.version ?? d.base.origin})`;
  return spec;
}

export const swupdateClient: UpdateClient = {
  id: 'swupdate',
  name: 'SWUpdate',
  signing: 'cms',
  scheme: SWUPDATE_BOOT_SCHEME,
  // swupdate and fw_printenv/fw_setenv are not looked for (as before this seam)
  inputPaths: () => [],
  checkInput: () => {},
  commit: {
    command: `/usr/sbin/otapack-env set ${SWUPDATE_BOOT_SCHEME.trialVar}=0 ${SWUPDATE_BOOT_SCHEME.countVar}=0`,
    what: `${SWUPDATE_BOOT_SCHEME.trialVar}=0, ${SWUPDATE_BOOT_SCHEME.countVar}=0`,
    onIdle: '',
  },
  dataFiles: () => [],
  deviceFiles: swupdateDeviceFiles,
  planArtifact(layout: DeviceLayout, s: ClientSettings): ArtifactPlan {
    const spec = slotBundleSpec(layout, s);
    return {
      file: `${layout.name}.swu`,
      summary: `SWUpdate bundle: ${spec.artifacts[0]!.compress}${spec.artifacts[0]!.encrypt ? ' + AES-256-CBC' : ''} image of slot A; ${s.update.collection},copy1 installs it into ${layout.slotA.device}, ${s.update.collection},copy2 into ${layout.slotB.device}`,
      spec,
    };
  },
  planDeltaArtifact(layout: DeviceLayout, s: ClientSettings, d: DeltaRequest): ArtifactPlan {
    const spec = slotDeltaSpec(layout, s, d);
    const a = spec.artifacts[0]!;
    const from = d.base.version ? `release ${d.base.version}` : d.base.origin;
    return {
      file: `${layout.name}.delta.swu`,
      extraFiles: d.method === 'zchunk' ? [`${layout.name}.zck`] : undefined,
      summary: d.method === 'rdiff'
        ? `SWUpdate delta bundle: rdiff from ${from} (${a.compress}${a.encrypt ? ' + AES-256-CBC' : ''}), the running slot checked first, the written slot read back; ${s.update.collection},copy1 installs into ${layout.slotA.device} over ${layout.slotB.device}, copy2 into ${layout.slotB.device} over ${layout.slotA.device}`
        : `SWUpdate delta bundle: zchunk header from ${from}; ${layout.name}.zck served at ${d.url}; chunks of the running slot reused, the written slot read back`,
      spec,
    };
  },
  async buildArtifact(o) {
    const planned = o.plan.spec as SlotBundleSpec;
    const source: SlotSource = o.source;
    const spec: BundleSpec = { ...planned, artifacts: planned.artifacts.map((a) => ({ ...a, source })) };
    const base = o.deltaBase as DeltaBase | undefined;
    const r: BuildResult = await buildBundle({
      spec, output: o.output, signer: o.signer, aes: o.aes, mtime: o.mtime, reproducible: o.reproducible, reporter: o.reporter,
      zckName: o.plan.extraFiles?.[0], deltaBases: base ? new Map([[base.origin, base]]) : undefined,
    });
    return { size: r.size, sha256: r.sha256!, signed: r.signed, signer: r.signer, signatureAlgorithm: r.signatureAlgorithm, entries: r.entries, manifest: r.manifest, detail: r };
  },
};
