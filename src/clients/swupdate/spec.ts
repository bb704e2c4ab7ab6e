// The bundle spec (YAML): what goes into a .swu and where the client installs it. Parsed and
// validated up front so every mistake is reported, with its line, before any payload is read.
import { stat } from 'node:fs/promises';
import { dirname, resolve, basename } from 'node:path';
import { ConfigReader, type ConfigMap } from '../../util/yaml-config.js';
import { COMPRESSIONS, compressor, type CompressionId, type Feed } from '../../compress/index.js';
import { OtapackError } from '../../errors.js';

export type ArtifactKind = 'images' | 'files' | 'scripts';

/** A payload that is not a plain file: convert streams a slot straight out of the disk it builds. */
export interface StreamSource {
  label: string;
  size: number;
  /** Pushes the payload's bytes, in order (see Feed); may be called more than once. */
  feed: Feed;
  /** Where the same bytes lie in a file, for readers that need them at random (a delta's new image). */
  at?: { path: string; offset: number };
}

export type DeltaMethod = 'rdiff' | 'zchunk';
export const DELTA_METHODS: readonly DeltaMethod[] = ['rdiff', 'zchunk'];

/** An image shipped as a delta from the release the device runs (`delta:` in the spec). */
export interface DeltaSpec {
  /** The previous release: its slot image or its .swu. */
  from: string;
  method: DeltaMethod;
  /** zchunk: where the device fetches the chunks (<name>.zck on the user's web server). */
  url?: string;
  /** The base's device per slot: the running slot (with two slots, the other one). */
  base: Record<string, string>;
}

export interface ArtifactSpec {
  kind: ArtifactKind;
  source: string | StreamSource;
  /** Name of the cpio entry; defaults to the file name plus compression/encryption suffixes. */
  filename?: string;
  type: string;
  device?: string;
  path?: string;
  filesystem?: string;
  volume?: string;
  offset?: string;
  mtdname?: string;
  name?: string;
  version?: string;
  data?: string;
  compress: CompressionId;
  level?: number;
  encrypt: boolean;
  installedDirectly: boolean;
  installIfDifferent: boolean;
  installIfHigher: boolean;
  preserveAttributes: boolean;
  properties: Record<string, string | string[]>;
  /** Restrict to these slots (A/B form); all slots when absent. */
  slots?: string[];
  /** Ship as a delta from a previous release (prepared into plain artifacts by delta.ts). */
  delta?: DeltaSpec;
  /** After install, the target is read back and checked against the whole image (SWUpdate's readback). */
  readback?: { sha256: string; size: number };
}

export interface SlotSpec {
  name: string;
  device?: string;
  bootenv: Record<string, string>;
}

export interface BundleSpec {
  file: string;
  version: string;
  description?: string;
  hardwareCompatibility: string[];
  collection: string;
  slots: SlotSpec[];
  bootenv: Record<string, string>;
  artifacts: ArtifactSpec[];
  manifestFormat: 'libconfig' | 'json';
  cpioFormat: 'crc' | 'newc';
}

const TOP_KEYS = ['version', 'description', 'hardware-compatibility', 'collection', 'slots', 'bootenv', 'images', 'files', 'scripts', 'manifest-format', 'cpio-format'] as const;
const ART_KEYS = [
  'file', 'filename', 'type', 'device', 'path', 'filesystem', 'volume', 'offset', 'mtdname', 'name', 'version', 'data',
  'compress', 'compress-level', 'encrypt', 'installed-directly', 'install-if-different', 'install-if-higher',
  'preserve-attributes', 'properties', 'slots', 'delta',
] as const;

export const LC_NAME = /^[A-Za-z*][-A-Za-z0-9_*]*$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/;
const DEFAULT_TYPE: Record<ArtifactKind, string> = { images: 'raw', files: 'rawfile', scripts: 'shellscript' };

export async function loadBundleSpec(file: string): Promise<BundleSpec> {
  const { reader, data } = await ConfigReader.load(file);
  return parseBundleSpec(reader, data, dirname(resolve(file)));
}

export async function parseBundleSpec(reader: ConfigReader, data: unknown, baseDir: string): Promise<BundleSpec> {
  const top = reader.map(data, [], TOP_KEYS);
  const version = top.str('version', { required: true, pattern: VERSION, hint: 'e.g. 1.0.0' });
  const hw = top.strList('hardware-compatibility');
  if (!top.has('hardware-compatibility') || hw.length === 0) {
    throw top.err(undefined, 'missing "hardware-compatibility": a list of hardware revisions, e.g. ["1.0"] (SWUpdate requires it)');
  }
  hw.forEach((h, i) => {
    if (h.startsWith('#RE:')) {
      try { new RegExp(h.slice(4)); } catch { throw reader.error(['hardware-compatibility', i], `"${h}" is not a valid regular expression`); }
    } else if (!/^[\x21-\x7e]{1,64}$/.test(h)) throw reader.error(['hardware-compatibility', i], `"${h}" is not a valid revision`);
  });
  const slots: SlotSpec[] = [];
  if (top.has('slots')) {
    const raw = top.raw('slots');
    if (typeof raw !== 'object' || Array.isArray(raw)) throw top.err('slots', 'expected a mapping of slot name to { device, bootenv }');
    for (const name of Object.keys(raw as object)) {
      if (!LC_NAME.test(name)) throw reader.error(['slots', name], `"${name}" is not a valid slot name (letters, digits, - and _)`);
      const s = reader.map((raw as Record<string, unknown>)[name], ['slots', name], ['device', 'bootenv']);
      slots.push({ name, device: s.str('device'), bootenv: s.strMap('bootenv') });
    }
  }
  const bootenv = top.strMap('bootenv');
  const artifacts: ArtifactSpec[] = [];
  for (const kind of ['images', 'files', 'scripts'] as const) {
    const list = top.list(kind);
    for (let i = 0; i < list.length; i++) {
      artifacts.push(await parseArtifact(reader.map(list[i], [kind, i], ART_KEYS), kind, baseDir, slots));
    }
  }
  if (artifacts.length === 0) throw top.err(undefined, 'nothing to install: add "images", "files" or "scripts"');
  const spec: BundleSpec = {
    file: reader.file,
    version,
    description: top.str('description'),
    hardwareCompatibility: hw,
    collection: top.str('collection', { pattern: LC_NAME }) ?? 'stable',
    slots,
    bootenv,
    artifacts,
    manifestFormat: top.oneOf('manifest-format', ['libconfig', 'json'] as const, 'libconfig'),
    cpioFormat: top.oneOf('cpio-format', ['crc', 'newc'] as const, 'crc'),
  };
  checkNames(spec);
  return spec;
}

async function parseArtifact(m: ConfigMap, kind: ArtifactKind, baseDir: string, slots: SlotSpec[]): Promise<ArtifactSpec> {
  const fileRel = m.str('file', { required: true });
  const source = resolve(baseDir, fileRel);
  try {
    const st = await stat(source);
    if (!st.isFile() && !st.isBlockDevice()) throw m.err('file', `${fileRel}: not a regular file`);
  } catch (e) {
    if (e instanceof OtapackError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw m.err('file', `${fileRel}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code}`);
  }
  const compress = m.oneOf('compress', COMPRESSIONS, kind === 'scripts' ? 'none' : 'zstd');
  const [lo, hi] = compressor(compress).levels;
  const a: ArtifactSpec = {
    kind,
    source,
    filename: m.str('filename', { pattern: /^[^/\\\0]{1,255}$/, hint: 'a bare file name' }),
    type: m.str('type', { pattern: /^[a-z0-9_-]{1,32}$/, hint: 'a SWUpdate handler name such as raw, rawfile, archive, shellscript' }) ?? DEFAULT_TYPE[kind],
    device: m.str('device'),
    path: m.str('path'),
    filesystem: m.str('filesystem'),
    volume: m.str('volume'),
    offset: m.str('offset'),
    mtdname: m.str('mtdname'),
    name: m.str('name'),
    version: m.str('version'),
    data: m.str('data'),
    compress,
    level: compress === 'none' ? undefined : m.int('compress-level', { min: lo, max: hi }),
    encrypt: m.bool('encrypt', false),
    installedDirectly: m.bool('installed-directly', false),
    installIfDifferent: m.bool('install-if-different', false),
    installIfHigher: m.bool('install-if-higher', false),
    preserveAttributes: m.bool('preserve-attributes', false),
    properties: parseProperties(m),
    slots: m.has('slots') ? m.strList('slots') : undefined,
  };
  for (const s of a.slots ?? []) {
    if (!slots.some((x) => x.name === s)) throw m.err('slots', `unknown slot "${s}" (defined: ${slots.map((x) => x.name).join(', ') || 'none'})`);
  }
  if (m.has('delta')) a.delta = await parseDelta(m, a, kind, baseDir, slots);
  // Where does it go? Checked per form so the message says what is missing.
  const needsTarget = kind !== 'scripts';
  if (needsTarget && !a.device && !a.path && !a.volume && !a.mtdname) {
    if (slots.length === 0) throw m.err(undefined, `no "device" or "path": without "slots" every ${kind.slice(0, -1)} needs its own target`);
    if (!a.path) {
      const targets = slots.filter((s) => !a.slots || a.slots.includes(s.name));
      const missing = targets.find((s) => !s.device);
      if (missing) throw m.err(undefined, `no "device", and slot "${missing.name}" has no device either`);
    }
  }
  if (a.type === 'rawfile' && !a.path) throw m.err(undefined, 'type rawfile needs "path" (where the file is written on the device)');
  if (a.type === 'archive' && !a.path) throw m.err(undefined, 'type archive needs "path" (the directory it is unpacked into)');
  return a;
}

const URL_RE = /^https?:\/\/[^\s"]+$/;

async function parseDelta(m: ConfigMap, a: ArtifactSpec, kind: ArtifactKind, baseDir: string, slots: SlotSpec[]): Promise<DeltaSpec> {
  const d = m.sub('delta', ['from', 'method', 'url', 'base']);
  if (kind !== 'images') throw m.err('delta', `only images can be shipped as a delta, not ${kind}`);
  if (a.type !== 'raw') throw m.err('type', `an image with "delta" is a whole slot image (type raw); the delta handler is chosen by delta.method`);
  if (a.installedDirectly) throw m.err('installed-directly', 'a delta is checked against its base before anything is written; it cannot be installed directly');
  if (a.properties.rdiffbase !== undefined || a.properties.url !== undefined) throw m.err('properties', 'rdiffbase and url are set by "delta" (delta.base, delta.url)');
  const fromRel = d.str('from', { required: true });
  const from = resolve(baseDir, fromRel);
  try {
    const st = await stat(from);
    if (!st.isFile() && !st.isBlockDevice()) throw d.err('from', `${fromRel}: not a regular file`);
  } catch (e) {
    if (e instanceof OtapackError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw d.err('from', `${fromRel}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code}`);
  }
  const method = d.oneOf('method', DELTA_METHODS, 'rdiff');
  const url = d.str('url', { pattern: URL_RE, hint: 'http(s)://host/path/<name>.zck, served with HTTP Range support' });
  if (method === 'zchunk') {
    if (!url) throw d.err('url', 'zchunk needs "url": where devices fetch the chunks (the .zck written next to the bundle)');
    if (!/[^/]$/.test(new URL(url).pathname)) throw d.err('url', `"${url}" must end in the file name of the .zck (it is written next to the bundle under that name)`);
    if (a.encrypt) throw m.err('encrypt', 'zchunk chunks cannot be encrypted: SWUpdate fetches them as plain zstd from the server; use delta.method: rdiff to ship an encrypted delta');
  } else if (url) throw d.err('url', 'only zchunk fetches from a URL; an rdiff delta travels inside the bundle');
  // the base is the running slot: with two slots, each installs over the other's release
  const targets = slots.filter((s) => !a.slots || a.slots.includes(s.name));
  const given = d.str('base', { pattern: /^\/[^\s"]+$/, hint: 'the base device, e.g. /dev/mmcblk0p2' });
  const base: Record<string, string> = {};
  if (given) for (const s of targets.length ? targets : [{ name: '' }]) base[s.name] = given;
  else if (slots.length === 2 && targets.length > 0) {
    for (const s of targets) {
      const other = slots.find((x) => x.name !== s.name)!;
      if (!other.device) throw d.err('base', `slot "${other.name}" has no device, so slot "${s.name}" has no base: set delta.base`);
      base[s.name] = other.device;
    }
  } else throw d.err('base', `the base (the running release's device) is known only with exactly two slots; set delta.base`);
  return { from, method, url, base };
}

function parseProperties(m: ConfigMap): Record<string, string | string[]> {
  if (!m.has('properties')) return {};
  const raw = m.raw('properties');
  if (typeof raw !== 'object' || Array.isArray(raw)) throw m.err('properties', 'expected a mapping');
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!LC_NAME.test(k)) throw m.reader.error([...m.path, 'properties', k], `"${k}" is not a valid property name`);
    if (Array.isArray(v)) out[k] = v.map(String);
    else if (['string', 'number', 'boolean'].includes(typeof v)) out[k] = String(v);
    else throw m.reader.error([...m.path, 'properties', k], 'expected a string or a list of strings');
  }
  return out;
}

/** Stored entry name of an artifact. */
export function storedName(a: ArtifactSpec): string {
  if (a.filename) return a.filename;
  const base = typeof a.source === 'string' ? basename(a.source) : a.source.label;
  return base + compressor(a.compress).suffix + (a.encrypt ? '.enc' : '');
}

function checkNames(spec: BundleSpec): void {
  const seen = new Map<string, ArtifactSpec>();
  for (const a of spec.artifacts) {
    const n = storedName(a);
    if (n === 'sw-description' || n === 'sw-description.sig' || n === 'TRAILER!!!') {
      throw new OtapackError('CONFIG', `${spec.file}: "${n}" is reserved; set "filename" for that ${a.kind.slice(0, -1)}`);
    }
    const prev = seen.get(n);
    // the same source, stored the same way, is stored once and referenced twice
    if (prev && !(prev.source === a.source && prev.compress === a.compress && prev.encrypt === a.encrypt && prev.level === a.level)) {
      throw new OtapackError('CONFIG', `${spec.file}: two different payloads would both be stored as "${n}"; set "filename" on one of them`);
    }
    seen.set(n, a);
  }
}
