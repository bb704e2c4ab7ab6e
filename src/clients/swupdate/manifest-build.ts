// sw-description from a validated spec and the stored payloads' digests. The text has a fixed
// length for given inputs (sha256 and ivt are fixed-width), which lets the bundle writer reserve
// its space before the payloads are hashed.
import { stringifyLibconfig, type LcGroup, type LcValue } from './libconfig.js';
import { compressor } from '../../compress/index.js';
import { storedName, type ArtifactSpec, type BundleSpec, type SlotSpec } from './spec.js';

export interface StoredInfo {
  sha256: string; // 64 hex
  ivt?: string; // 32 hex
}

function artifactGroup(a: ArtifactSpec, info: StoredInfo, slot?: SlotSpec): LcGroup {
  const g: LcGroup = Object.create(null);
  g.filename = storedName(a);
  if (a.name) g.name = a.name;
  if (a.version) g.version = a.version;
  g.type = a.type;
  const device = a.device ?? (a.path || a.volume || a.mtdname ? undefined : slot?.device);
  if (device) g.device = device;
  if (a.filesystem) g.filesystem = a.filesystem;
  if (a.path) g.path = a.path;
  if (a.volume) g.volume = a.volume;
  if (a.offset) g.offset = a.offset;
  if (a.mtdname) g.mtdname = a.mtdname;
  if (a.data) g.data = a.data;
  const c = compressor(a.compress).swupdateName;
  if (c) g.compressed = c;
  if (a.encrypt) {
    g.encrypted = true;
    if (info.ivt) g.ivt = info.ivt;
  }
  if (a.installedDirectly) g['installed-directly'] = true;
  if (a.installIfDifferent) g['install-if-different'] = true;
  if (a.installIfHigher) g['install-if-higher'] = true;
  if (a.preserveAttributes) g['preserve-attributes'] = true;
  if (Object.keys(a.properties).length) {
    const p: LcGroup = Object.create(null);
    for (const [k, v] of Object.entries(a.properties)) p[k] = v as LcValue;
    g.properties = p;
  }
  g.sha256 = info.sha256;
  return g;
}

/**
 * SWUpdate's readback handler: a script entry without a payload that, after the images are
 * written and before the boot environment changes, hashes `size` bytes of the target.
 */
function readbackGroup(a: ArtifactSpec, slot: SlotSpec | undefined): LcGroup {
  const g: LcGroup = Object.create(null);
  g.type = 'readback';
  g.device = a.device ?? slot?.device ?? '';
  const p: LcGroup = Object.create(null);
  p.sha256 = a.readback!.sha256;
  p.size = String(a.readback!.size);
  p.offset = '0';
  g.properties = p;
  return g;
}

function installSet(spec: BundleSpec, info: Map<ArtifactSpec, StoredInfo>, slot: SlotSpec | undefined): LcGroup {
  const g: LcGroup = Object.create(null);
  for (const kind of ['images', 'files', 'scripts'] as const) {
    const items = spec.artifacts.filter((a) => a.kind === kind && (!slot || !a.slots || a.slots.includes(slot.name)));
    const groups = items.map((a) => artifactGroup(a, info.get(a)!, slot));
    // readback entries run with the postinstall scripts, after every image is written
    if (kind === 'scripts') groups.push(...spec.artifacts.filter((a) => a.readback && (!slot || !a.slots || a.slots.includes(slot.name))).map((a) => readbackGroup(a, slot)));
    if (groups.length) g[kind] = groups;
  }
  const env = { ...spec.bootenv, ...(slot?.bootenv ?? {}) };
  if (Object.keys(env).length) {
    g.bootenv = Object.entries(env).map(([name, value]) => {
      const e: LcGroup = Object.create(null);
      e.name = name;
      e.value = value;
      return e;
    });
  }
  return g;
}

export function buildManifestTree(spec: BundleSpec, info: Map<ArtifactSpec, StoredInfo>): LcGroup {
  const sw: LcGroup = Object.create(null);
  sw.version = spec.version;
  if (spec.description) sw.description = spec.description;
  sw['hardware-compatibility'] = spec.hardwareCompatibility;
  if (spec.slots.length) {
    const coll: LcGroup = Object.create(null);
    for (const s of spec.slots) coll[s.name] = installSet(spec, info, s);
    sw[spec.collection] = coll;
  } else {
    Object.assign(sw, installSet(spec, info, undefined));
  }
  const root: LcGroup = Object.create(null);
  root.software = sw;
  return root;
}

export function renderManifest(tree: LcGroup, format: 'libconfig' | 'json'): string {
  return format === 'json' ? JSON.stringify(tree, null, 2) + '\n' : stringifyLibconfig(tree);
}
