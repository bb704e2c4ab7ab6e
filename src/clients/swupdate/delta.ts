// Delta images for SWUpdate: an image with `delta: { from, method, url }` becomes, before the
// bundle is built, plain artifacts the client's two delta handlers install:
//   rdiff  - type rdiff_image: otapack's block-aligned rdiff delta (src/delta/rdiff.ts), carried in
//            the bundle, compressed and encrypted like any payload; rdiffbase is the running slot.
//            A shellscript checks the base before anything is written (the handler never does).
//   zchunk - type delta, chain raw: the bundle carries the zchunk header, the chunks go to
//            <name>.zck next to the bundle for the user's web server; source is the running slot.
// Both: after writing, the slot is checked against the whole image's SHA-256 (readback, or the
// script for images of 4 GiB and more) before the boot environment is switched.
// With slots copy1/copy2, copy1's base is slot B's device and copy2's is slot A's (per-slot
// entries of one stored payload).
import { stat, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { OtapackError, ioError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { renderTemplate } from '../../util/template.js';
import { registerTemp, unregisterTemp, makeTempDir, unregisterTempDir } from '../../util/cleanup.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { stage } from '../../util/profile.js';
import type { AesKey } from '../../crypto/keys.js';
import { openDeltaBase, type DeltaBase } from '../../delta/base.js';
import { encodeRdiff, targetDigest, type RdiffStats, type RdiffTarget } from '../../delta/rdiff.js';
import { makeZchunk, zchunkHeaderBytes } from '../../delta/zchunk.js';
import type { ArtifactSpec, BundleSpec, DeltaMethod } from './spec.js';

/** SWUpdate's readback handler holds the size in an unsigned int: images from 4 GiB on are checked by the script. */
export const READBACK_LIMIT = 2 ** 32;

export interface PreparedDelta {
  /** The image it replaces (rootfs.ext4). */
  label: string;
  method: DeltaMethod;
  /** The base; dataSha256 (rdiff) is what the device's base check hashes. */
  base: { origin: string; version?: string; size: number; dataBytes: number; dataSha256?: string; blockSize: number; ranges: number };
  image: { sha256: string; size: number };
  /** Stored payload before compression: the rdiff delta or the zchunk header. */
  payloadBytes: number;
  rdiff?: Omit<RdiffStats, 'targetSha256' | 'targetSize' | 'baseDataSha256'>;
  zchunk?: { file: string; size: number; headerSize: number; chunks: number; url: string };
  /** How the result is checked on the device. */
  readback: 'readback' | 'script';
  seconds: number;
}

export interface DeltaPreparation {
  /** The spec with every delta image turned into the artifacts that install it. */
  spec: BundleSpec;
  deltas: PreparedDelta[];
  /** Files to publish next to the bundle: a temp path and its final path (the .zck). */
  outputs: { temp: string; final: string }[];
  /** Removes the work files and any unpublished output. */
  cleanup(): Promise<void>;
}

export interface DeltaOptions {
  aes?: AesKey;
  /** Folder the bundle is written to: work files and the .zck go there. */
  outputDir: string;
  /** File name of the .zck (default: the last part of delta.url). */
  zckName?: string;
  /** Bases opened already, by delta.from: used as they are, and left open for their owner to close. */
  bases?: Map<string, DeltaBase>;
  reporter?: Reporter;
}

/** A value for a shell script, single-quoted. */
const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The check script's dd reads, one line "bs skip count" each: a range is read in 1 MiB blocks
 * where it is aligned to them, and its unaligned head and tail in the largest power of two that
 * fits (a dd read per block: 1 KiB reads of a whole slot are slow on a small board).
 */
export function rangeLines(ranges: [number, number][]): string {
  const MB = 1 << 20;
  const piece = (a: number, b: number): string => {
    let bs = MB;
    while (bs > 1 && (a % bs !== 0 || (b - a) % bs !== 0)) bs /= 2;
    return `${bs} ${a / bs} ${(b - a) / bs}`;
  };
  const out: string[] = [];
  for (const [a, b] of ranges) {
    const m0 = Math.min(b, Math.ceil(a / MB) * MB);
    const m1 = Math.max(m0, Math.floor(b / MB) * MB);
    if (a < m0) out.push(piece(a, m0));
    if (m0 < m1) out.push(piece(m0, m1));
    if (m1 < b && m1 >= m0) out.push(piece(Math.max(m1, a), b));
  }
  return out.join('\n');
}

/** A name for a script's messages: safe characters, at most 48 of them. */
const shortName = (s: string): string => {
  const t = s.replace(/[^A-Za-z0-9 ._()+~:-]/g, '_');
  return t.length > 48 ? `${t.slice(0, 45)}...` : t;
};

export function baseName(b: DeltaBase): string {
  return b.bundle?.version ? `release ${b.bundle.version} (${basename(b.origin)})` : basename(b.origin);
}

/**
 * The per-slot shellscript: the base check (rdiff) before writing, and with `slotCheck` (images
 * of READBACK_LIMIT and more) the written slot against the image's SHA-256 after.
 */
export function checkScript(o: { method: DeltaMethod; base?: DeltaBase; dataSha256?: string; baseDevice: string; target?: string; image: { sha256: string; size: number }; name: string; slotCheck: boolean }): string | undefined {
  const pre = o.method === 'rdiff' && o.base && o.dataSha256
    ? renderTemplate('swupdate/delta-base-check.sh', {
      HANDLER: 'rdiff_image',
      BASE: shq(o.baseDevice),
      BASE_WHAT: o.base.ext4 ? `the blocks its ext4 filesystem uses but its superblock and journal, which the kernel changes in its cache when it mounts the root: ${formatBytes(o.base.rangesBytes)} in ${o.base.ranges.length} ranges` : `its first ${o.base.size} bytes`,
      RANGES: rangeLines(o.base.ranges),
      BASE_SHA256: o.dataSha256,
      BASE_SHORT: o.dataSha256.slice(0, 12),
      BASE_NAME: shortName(baseName(o.base)),
      BASE_BYTES: String(o.base.rangesBytes),
    }).trimEnd()
    : undefined;
  const post = o.slotCheck && o.target
    ? renderTemplate('swupdate/delta-slot-check.sh', { SIZE: String(o.image.size), TARGET: shq(o.target), SHA256: o.image.sha256, SHORT: o.image.sha256.slice(0, 12), NAME: shortName(o.name) }).trimEnd()
    : undefined;
  if (!pre && !post) return undefined;
  return renderTemplate('swupdate/otapack-delta-check.sh', {
    WHAT: [pre && '# preinst: base check of the running slot', post && '# postinst: the written slot against the whole image\'s SHA-256'].filter(Boolean).join('\n'),
    PREINST: pre ?? '\t:',
    POSTINST: post ?? '\t:',
  });
}

function targetOf(a: ArtifactSpec): RdiffTarget & { label: string } {
  if (typeof a.source === 'string') return { path: a.source, offset: 0, size: 0, label: basename(a.source) };
  if (!a.source.at) throw new OtapackError('INTERNAL', `delta image ${a.source.label} has no file to read the new image from`);
  return { path: a.source.at.path, offset: a.source.at.offset, size: a.source.size, label: a.source.label };
}

/** Turns every image with `delta` into the artifacts that install it; writes the delta payloads and .zck files. */
export async function prepareDeltas(spec: BundleSpec, o: DeltaOptions): Promise<DeltaPreparation> {
  const reporter = o.reporter ?? silentReporter;
  const work = makeTempDir(o.outputDir, '.otapack-delta-');
  const outputs: { temp: string; final: string }[] = [];
  const cleanup = async (): Promise<void> => {
    for (const f of outputs) {
      await rm(f.temp, { force: true });
      unregisterTemp(f.temp);
    }
    await rm(work, { recursive: true, force: true });
    unregisterTempDir(work);
  };
  try {
    const deltas: PreparedDelta[] = [];
    const artifacts: ArtifactSpec[] = [];
    for (const a of spec.artifacts) {
      if (!a.delta) {
        artifacts.push(a);
        continue;
      }
      const t0 = Date.now();
      const d = a.delta;
      const target = targetOf(a);
      if (typeof a.source === 'string') {
        try {
          target.size = (await stat(a.source)).size;
        } catch (e) {
          throw ioError('INPUT', a.source, e);
        }
      }
      // the new image is hashed (in a worker) while the base is being taken out of its bundle
      const early = d.method === 'rdiff' ? targetDigest(target) : undefined;
      const given = o.bases?.get(d.from);
      const step = reporter.step(`reading the delta base ${basename(d.from)}`);
      const base = given ?? await stage('delta: base (out of its .swu)', () => openDeltaBase(d.from, { workDir: work, label: target.label, aes: o.aes })).catch(async (e) => {
        await early?.cancel();
        throw e;
      });
      step.done();
      try {
        if (d.method === 'rdiff' && base.size < target.size / 4) {
          reporter.warn(`${basename(d.from)}: the base is ${formatBytes(base.size)} for a ${formatBytes(target.size)} image; is it the right release?`);
        }
        const meta: Record<string, string> = {
          'otapack-delta': d.method,
          'otapack-base': baseName(base),
          'otapack-base-size': String(base.size),
        };
        let image: { sha256: string; size: number };
        let payload: string;
        let payloadBytes: number;
        let rdiff: RdiffStats | undefined;
        let zchunk: PreparedDelta['zchunk'];
        let entry: (slot: string, baseDevice: string) => Partial<ArtifactSpec>;
        if (d.method === 'rdiff') {
          payload = join(work, `${target.label}.rdiff`);
          const p = reporter.step(`computing the rdiff delta of ${target.label} (${base.blockSize}-byte blocks)`, base.rangesBytes + target.size);
          rdiff = await stage('delta: rdiff (index + one pass)', () => encodeRdiff({
            base: { path: base.path, size: base.size, blockSize: base.blockSize, ranges: base.ranges },
            target, output: payload, targetDigest: early,
            onProgress: (phase, done) => p.update(phase === 'index' ? done : base.rangesBytes + done),
          }));
          p.done();
          image = { sha256: rdiff.targetSha256, size: rdiff.targetSize };
          payloadBytes = rdiff.deltaSize;
          meta['otapack-base-data-sha256'] = rdiff.baseDataSha256;
          entry = (_slot, dev) => ({ type: 'rdiff_image', properties: { ...a.properties, rdiffbase: dev, ...meta } });
        } else {
          const name = o.zckName ?? basename(new URL(d.url!).pathname);
          if (!/^[^/\\\0]{1,255}$/.test(name) || name === '.' || name === '..') throw new OtapackError('CONFIG', `${spec.file}: delta.url ${d.url} does not end in a file name for the .zck`);
          const final = join(o.outputDir, name);
          const temp = join(o.outputDir, `.${name}.${process.pid}.${Date.now()}.tmp`);
          registerTemp(temp);
          outputs.push({ temp, final });
          const p = reporter.step(`chunking ${target.label} with zck`, target.size);
          const z = await stage('delta: zck', () => makeZchunk(target, temp));
          p.done();
          image = { sha256: z.imageSha256, size: z.imageSize };
          payload = join(work, `${target.label}.zck-header`);
          writeFileSync(payload, await zchunkHeaderBytes(temp, z.headerSize));
          payloadBytes = z.headerSize;
          zchunk = { file: final, size: z.size, headerSize: z.headerSize, chunks: z.chunks, url: d.url! };
          entry = (_slot, dev) => ({ type: 'delta', compress: 'none', level: undefined, encrypt: false, properties: { ...a.properties, url: d.url!, source: dev, chain: 'raw', ...meta } });
        }
        const readback = image.size < READBACK_LIMIT;
        for (const [slot, dev] of Object.entries(d.base)) {
          const slots = slot ? [slot] : a.slots;
          artifacts.push({ ...a, delta: undefined, filename: undefined, source: payload, slots, readback: readback ? image : undefined, ...entry(slot, dev) });
          const targetDevice = a.device ?? spec.slots.find((s) => s.name === slot)?.device;
          const script = checkScript({ method: d.method, base, dataSha256: rdiff?.baseDataSha256, baseDevice: dev, target: targetDevice, image, name: `${target.label} ${spec.version}`, slotCheck: !readback });
          if (script) {
            const bytes = Buffer.from(script);
            artifacts.push({
              kind: 'scripts', source: { label: `otapack-delta-check${slot ? `.${slot}` : ''}.sh`, size: bytes.length, feed: async (w) => { await w(bytes); } },
              type: 'shellscript', compress: 'none', encrypt: false, installedDirectly: false, installIfDifferent: false, installIfHigher: false, preserveAttributes: false,
              properties: {}, slots,
            });
          }
        }
        deltas.push({
          label: target.label, method: d.method,
          base: { origin: base.origin, version: base.bundle?.version, size: base.size, dataBytes: base.rangesBytes, dataSha256: rdiff?.baseDataSha256, blockSize: base.blockSize, ranges: base.ranges.length },
          image, payloadBytes, zchunk, readback: readback ? 'readback' : 'script',
          rdiff: rdiff && (({ targetSha256: _s, targetSize: _z, baseDataSha256: _d, ...r }) => r)(rdiff),
          seconds: (Date.now() - t0) / 1000,
        });
      } finally {
        await early?.cancel();
        if (!given) await base.cleanup();
      }
    }
    return { spec: { ...spec, artifacts }, deltas, outputs, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
