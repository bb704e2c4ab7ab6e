// The spec of a .mender (YAML, `format: mender`): one rootfs image for the inactive slot, the
// artifact's name, the device types it installs on, provides/depends and state scripts. Parsed
// and checked up front, each mistake with its line, before the image is read.
//
//   format: mender
//   artifact-name: release-2
//   device-types: [my-board]
//   image: rootfs.ext4            # the root filesystem image (a file or block device)
//   compress: gzip                # gzip (default) or none
//   compress-level: 1             # 1 (default) … 9
//   payload-name: rootfs.ext4     # name inside the artifact (default: the image's file name)
//   provides: { artifact_group: stable }
//   depends: { artifact_name: [release-1] }
//   type-provides: { rootfs-image.version: "2.0" }   # default rootfs-image.version: <artifact-name>
//   type-depends: {}
//   clears-provides: [artifact_group, rootfs_image_checksum, rootfs-image.*]
//   state-scripts: [scripts/ArtifactCommit_Enter_01_check]
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigReader, type ConfigMap } from '../../util/yaml-config.js';
import { OtapackError } from '../../errors.js';
import type { StreamSource } from '../swupdate/spec.js';
import { DEFAULT_CLEARS_PROVIDES, MENDER_GZIP_LEVEL, NAME_RE, PAYLOAD_NAME_RE, STATE_SCRIPT_RE, type MenderCompression, type MenderHeader } from './artifact.js';

export interface MenderSpec {
  file: string;
  artifactName: string;
  deviceTypes: string[];
  /** The image: a file path, or a stream (convert's slot A). */
  source: string | StreamSource;
  payloadName: string;
  compress: MenderCompression;
  level?: number;
  provides: Record<string, string>;
  depends: Record<string, string[]>;
  typeProvides: Record<string, string>;
  typeDepends: Record<string, string>;
  clearsProvides: string[];
  scripts: { name: string; source: string }[];
}

const TOP = ['format', 'artifact-name', 'device-types', 'image', 'compress', 'compress-level', 'payload-name', 'provides', 'depends', 'type-provides', 'type-depends', 'clears-provides', 'state-scripts'] as const;
const KEY_RE = /^[a-z][a-z0-9_.-]{0,63}$/;

/** True when a YAML document is a Mender spec (`format: mender`); used to pick the builder. */
export function isMenderSpecData(data: unknown): boolean {
  return !!data && typeof data === 'object' && !Array.isArray(data) && (data as Record<string, unknown>).format === 'mender';
}

/** The spec file's data and reader, to look at `format` before choosing a parser. */
export async function readSpecFile(file: string): Promise<{ reader: ConfigReader; data: unknown }> {
  return ConfigReader.load(file);
}

export async function loadMenderSpec(file: string): Promise<MenderSpec> {
  const { reader, data } = await ConfigReader.load(file);
  return parseMenderSpec(reader, data, dirname(resolve(file)));
}

function checkName(m: ConfigMap, key: string, v: string, path: (string | number)[] = [key]): string {
  if (!NAME_RE.test(v)) throw m.reader.error([...m.path, ...path], `"${v}" is not a valid ${key} (letters, digits and . _ : + ~ @ / -, up to 128, no spaces)`);
  return v;
}

function stringMap(m: ConfigMap, key: string): Record<string, string> {
  const out = m.strMap(key);
  for (const [k, v] of Object.entries(out)) {
    if (!KEY_RE.test(k)) throw m.reader.error([...m.path, key, k], `"${k}" is not a valid key (lower case letters, digits, _ . -)`);
    checkName(m, k, v, [key, k]);
  }
  return out;
}

async function fileSource(m: ConfigMap, key: string, rel: string, baseDir: string, path: (string | number)[] = [key]): Promise<string> {
  const source = resolve(baseDir, rel);
  try {
    const st = await stat(source);
    if (!st.isFile() && !st.isBlockDevice()) throw m.reader.error([...m.path, ...path], `${rel}: not a regular file`);
  } catch (e) {
    if (e instanceof OtapackError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw m.reader.error([...m.path, ...path], `${rel}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code}`);
  }
  return source;
}

export async function parseMenderSpec(reader: ConfigReader, data: unknown, baseDir: string): Promise<MenderSpec> {
  const top = reader.map(data, [], TOP);
  top.oneOf('format', ['mender'] as const, 'mender');
  const artifactName = checkName(top, 'artifact-name', top.str('artifact-name', { required: true }));
  if (!top.has('device-types')) throw top.err(undefined, 'missing "device-types": the device types this artifact installs on (the device_type the devices report), e.g. [my-board]');
  const deviceTypes = top.strList('device-types').map((d, i) => checkName(top, 'device-types', d, ['device-types', i]));
  if (deviceTypes.length === 0) throw top.err('device-types', 'must list at least one device type');
  const imageRel = top.str('image', { required: true });
  const source = await fileSource(top, 'image', imageRel, baseDir);
  const compressWord = top.oneOf('compress', ['gzip', 'zlib', 'none', 'zstd'] as const, 'gzip');
  if (compressWord === 'zstd') throw top.err('compress', 'zstd: Debian\'s Mender client 3.4 (and mender-artifact 3.9) read gzip, lzma or uncompressed artifacts only; use gzip or none');
  const compress: MenderCompression = compressWord === 'none' ? 'none' : 'zlib';
  const payloadName = top.str('payload-name') ?? basename(imageRel);
  if (!PAYLOAD_NAME_RE.test(payloadName)) {
    throw top.err(top.has('payload-name') ? 'payload-name' : 'image', `"${payloadName}": the Mender client accepts payload names of letters, digits and . , _ - only; set payload-name`);
  }
  const depends: Record<string, string[]> = {};
  if (top.has('depends')) {
    const raw = top.raw('depends');
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw top.err('depends', 'expected a mapping of name to a list of values');
    const d = top.sub('depends', Object.keys(raw as object));
    for (const k of Object.keys(raw as object)) {
      if (!KEY_RE.test(k)) throw reader.error(['depends', k], `"${k}" is not a valid key`);
      if (k === 'device_type') throw reader.error(['depends', k], 'set the device types with "device-types"');
      const v = (raw as Record<string, unknown>)[k];
      depends[k] = (Array.isArray(v) ? d.strList(k) : [d.str(k, { required: true })]).map((x, i) => checkName(d, k, x, [k, i]));
    }
  }
  const provides = stringMap(top, 'provides');
  if ('artifact_name' in provides) throw reader.error(['provides', 'artifact_name'], 'set it with "artifact-name"');
  const typeProvides = { 'rootfs-image.version': artifactName, ...stringMap(top, 'type-provides') };
  if ('rootfs-image.checksum' in typeProvides) throw reader.error(['type-provides', 'rootfs-image.checksum'], 'otapack writes rootfs-image.checksum itself (the SHA-256 of the image)');
  const scripts: MenderSpec['scripts'] = [];
  const list = top.strList('state-scripts');
  for (let i = 0; i < list.length; i++) {
    const src = await fileSource(top, 'state-scripts', list[i]!, baseDir, ['state-scripts', i]);
    const name = basename(src);
    if (!STATE_SCRIPT_RE.test(name)) {
      throw reader.error(['state-scripts', i], `"${name}" is not a state script name an artifact may carry: Artifact{Install,Reboot,Commit,Rollback,RollbackReboot,Failure}_{Enter,Leave,Error}_NN[_name]`);
    }
    if (scripts.some((s) => s.name === name)) throw reader.error(['state-scripts', i], `"${name}" is listed twice`);
    scripts.push({ name, source: src });
  }
  return {
    file: reader.file,
    artifactName,
    deviceTypes,
    source,
    payloadName,
    compress,
    level: compress === 'none' ? undefined : top.int('compress-level', { min: 1, max: 9 }) ?? MENDER_GZIP_LEVEL,
    provides,
    depends,
    typeProvides,
    typeDepends: stringMap(top, 'type-depends'),
    clearsProvides: top.has('clears-provides') ? top.strList('clears-provides') : [...DEFAULT_CLEARS_PROVIDES],
    scripts,
  };
}

/** The header data of a spec (state scripts read now). */
export async function menderHeader(spec: MenderSpec): Promise<MenderHeader> {
  const scripts = await Promise.all(spec.scripts.map(async (s) => ({ name: s.name, data: await readFile(s.source).catch((e) => { throw new OtapackError('CONFIG', `${s.source}: ${(e as Error).message}`); }) })));
  return {
    artifactName: spec.artifactName, deviceTypes: spec.deviceTypes, provides: spec.provides, depends: spec.depends,
    typeProvides: spec.typeProvides, typeDepends: spec.typeDepends, clearsProvides: spec.clearsProvides, scripts,
  };
}
