// Builds a .swu in one pass per payload: each payload is compressed, encrypted when asked, and
// streamed by the archive writer (archive.ts) straight into its place; sw-description, which
// holds every payload's sha256, and its signature are written last into the space reserved for
// them at the start.
import { openSparse } from '../../disk/extents.js';
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { open, stat, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { createReadStream } from 'node:fs';
import { OtapackError, ioError } from '../../errors.js';
import { AtomicFile } from '../../util/atomic-file.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { commitOutputs, unregisterTemp } from '../../util/cleanup.js';
import { prepareDeltas, type PreparedDelta } from './delta.js';
import type { DeltaBase } from '../../delta/base.js';
import { compressor } from '../../compress/index.js';
import type { CompressJob } from '../../compress/compressor.js';
import type { AesKey } from '../../crypto/keys.js';
import { aesCipherName } from '../../crypto/keys.js';
import { signCms, predictCmsSize } from '../../crypto/cms.js';
import { schemeName, type Signer } from '../../crypto/signer.js';
import { MAX_ENTRY_SIZE, type CpioFormat } from './cpio.js';
import { ArchiveWriter, prefixSize } from './archive.js';
import { buildManifestTree, renderManifest, type StoredInfo } from './manifest-build.js';
import { storedName, type ArtifactSpec, type BundleSpec } from './spec.js';
import { REPRODUCIBLE_EPOCH } from '../../util/reproducible.js';
import { Meter, metered, stage } from '../../util/profile.js';

export interface BuildOptions {
  spec: BundleSpec;
  output: string;
  signer?: Signer;
  aes?: AesKey;
  /** cpio mtime for every entry (SOURCE_DATE_EPOCH); 0 by default, REPRODUCIBLE_EPOCH with `reproducible`. */
  mtime?: number;
  /** Derive each ivt from the AES key and the payload, so encrypted bundles are reproducible too. */
  reproducible?: boolean;
  signingTime?: Date;
  reporter?: Reporter;
  /**
   * Also compute the SHA-256 of the whole archive (BuildResult.sha256), which takes one more read
   * of the output after it is complete. Default true; the CLI asks for it only with --json.
   */
  hashOutput?: boolean;
  /** File name of a zchunk delta's .zck, next to the output (default: the last part of its url). */
  zckName?: string;
  /** Delta bases already opened, by delta.from (convert reads its base before planning). */
  deltaBases?: Map<string, DeltaBase>;
}

export interface BuiltEntry {
  name: string;
  size: number;
  sha256: string;
  compression: string;
  encrypted: boolean;
  source: string;
  inputSize: number;
}

export interface BuildResult {
  output: string;
  size: number;
  /** SHA-256 of the archive; absent when hashOutput was false. */
  sha256?: string;
  manifest: string;
  manifestFormat: 'libconfig' | 'json';
  cpioFormat: CpioFormat;
  signed: boolean;
  signer?: string;
  signatureAlgorithm?: string;
  entries: BuiltEntry[];
  /** The delta images, when the spec had any (delta.ts). */
  deltas?: PreparedDelta[];
  /** Files written next to the bundle (a zchunk delta's .zck). */
  extraOutputs?: string[];
}

interface Store {
  name: string;
  artifact: ArtifactSpec;
  ivt?: Buffer;
  inputSize: number;
}

const sourceLabel = (a: ArtifactSpec): string => (typeof a.source === 'string' ? a.source : a.source.label);

async function sourceSize(a: ArtifactSpec): Promise<number> {
  if (typeof a.source !== 'string') return a.source.size;
  try {
    const st = await stat(a.source);
    if (st.isBlockDevice()) {
      const fh = await open(a.source, 'r');
      try { return (await fh.stat()).size; } finally { await fh.close(); }
    }
    return st.size;
  } catch (e) {
    throw new OtapackError('INPUT', `${a.source}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

async function hashSource(a: ArtifactSpec): Promise<Buffer> {
  const h = createHash('sha256');
  if (typeof a.source === 'string') {
    for await (const c of createReadStream(a.source, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  } else {
    await a.source.feed(async (c) => { h.update(c); });
  }
  return h.digest();
}

/** Checks everything that can be checked before work starts. */
async function planStores(o: BuildOptions, spec: BundleSpec): Promise<Store[]> {
  const stores = new Map<string, Store>();
  for (const a of spec.artifacts) {
    const name = storedName(a);
    if (stores.has(name)) continue;
    if (a.encrypt && !o.aes) {
      throw new OtapackError('KEY', `${sourceLabel(a)}: the spec asks for encryption but no AES key was given (--aes-key or $OTAPACK_AES_KEY)`);
    }
    const inputSize = await sourceSize(a);
    if (a.compress === 'none' && inputSize + (a.encrypt ? 16 : 0) > MAX_ENTRY_SIZE) {
      throw new OtapackError('LIMIT', `${sourceLabel(a)}: ${inputSize} bytes stored uncompressed exceed the cpio limit of 4 GiB per entry; set "compress: zstd" (or zlib)`);
    }
    stores.set(name, { name, artifact: a, inputSize });
  }
  return [...stores.values()];
}

export async function buildBundle(o: BuildOptions): Promise<BuildResult> {
  const reporter = o.reporter ?? silentReporter;
  const encrypted = o.spec.artifacts.find((a) => a.encrypt);
  if (encrypted && !o.aes) {
    throw new OtapackError('KEY', `${sourceLabel(encrypted)}: the spec asks for encryption but no AES key was given (--aes-key or $OTAPACK_AES_KEY)`);
  }
  // delta images first: they become the plain artifacts that install them (and a .zck to publish)
  const prep = o.spec.artifacts.some((a) => a.delta)
    ? await stage('bundle: delta', () => prepareDeltas(o.spec, { aes: o.aes, outputDir: dirname(resolve(o.output)), zckName: o.zckName, bases: o.deltaBases, reporter }))
    : undefined;
  try {
    const r = await buildPrepared(o, prep?.spec ?? o.spec, reporter, prep?.outputs ?? []);
    return prep ? { ...r, deltas: prep.deltas, extraOutputs: prep.outputs.map((f) => f.final) } : r;
  } finally {
    await prep?.cleanup();
  }
}

async function buildPrepared(o: BuildOptions, spec: BundleSpec, reporter: Reporter, extra: { temp: string; final: string }[]): Promise<BuildResult> {
  const format = spec.cpioFormat;
  // --reproducible without SOURCE_DATE_EPOCH behaves as if it were set to the documented fixed time
  const mtime = o.mtime ?? (o.reproducible ? REPRODUCIBLE_EPOCH : 0);
  const stores = await stage('bundle: plan', () => planStores(o, spec));

  // ivts: random per image, or derived from the key and the payload when asked to be reproducible
  for (const s of stores) {
    if (!s.artifact.encrypt) continue;
    if (o.reproducible) {
      const p = reporter.step(`hashing ${s.name} for its ivt`, s.inputSize);
      const digest = await stage('bundle: hash for the ivt', () => hashSource(s.artifact));
      p.done();
      s.ivt = createHmac('sha256', o.aes!.key).update('otapack-ivt-v1\0').update(s.name).update('\0').update(digest).digest().subarray(0, 16);
    } else {
      s.ivt = randomBytes(16);
    }
  }

  const infoFor = (digests: Map<string, string>): Map<ArtifactSpec, StoredInfo> => {
    const m = new Map<ArtifactSpec, StoredInfo>();
    for (const a of spec.artifacts) {
      const s = stores.find((x) => x.name === storedName(a))!;
      m.set(a, { sha256: digests.get(s.name) ?? '0'.repeat(64), ivt: s.ivt?.toString('hex') });
    }
    return m;
  };
  const draft = Buffer.from(renderManifest(buildManifestTree(spec, infoFor(new Map())), spec.manifestFormat));
  // a fixed signing time makes RSA PKCS#1 signatures reproducible; only when asked for
  const signingTime = o.signingTime ?? (o.reproducible ? new Date(mtime * 1000) : new Date());
  if (o.reproducible && o.signer && o.signer.scheme !== 'pkcs1') {
    reporter.warn(`--reproducible: ${schemeName(o.signer.scheme)} signatures are randomised, so the signature (and only it) differs between runs; an RSA key without --pss (PKCS#1 v1.5) signs byte-identically`);
  }
  const sigSize = o.signer ? predictCmsSize(draft, o.signer, signingTime) : undefined;

  const out = await AtomicFile.create(o.output);
  try {
    const fh = out.handle;
    const writer = new ArchiveWriter(fh, { format, mtime, signed: !!o.signer, reserve: prefixSize(draft.length, sigSize) });
    const digests = new Map<string, string>();
    const entries: BuiltEntry[] = [];
    for (const s of stores) {
      const a = s.artifact;
      const codec = compressor(a.compress);
      const job = codec.start(typeof a.source === 'string' ? { path: a.source, open: () => openSparse(a.source as string) } : { feed: a.source.feed }, a.level ?? codec.defaultLevel);
      const progress = reporter.step(`${a.compress === 'none' ? 'storing' : 'compressing'} ${s.name}`, s.inputSize);
      const timer = setInterval(() => progress.update(job.consumed()), 200);
      let r;
      try {
        const encryption = a.encrypt ? { cipher: aesCipherName(o.aes!), key: o.aes!.key, iv: s.ivt! } : undefined;
        r = await stage(`bundle: stream (${a.compress}${a.encrypt ? '+aes' : ''})`, () => writer.addEntry(s.name, storedBytes(job, encryption), { label: sourceLabel(a) }));
      } finally {
        clearInterval(timer);
        progress.done();
      }
      digests.set(s.name, r.sha256);
      entries.push({ name: s.name, size: r.size, sha256: r.sha256, compression: a.compress, encrypted: a.encrypt, source: sourceLabel(a), inputSize: s.inputSize });
    }

    const manifest = Buffer.from(renderManifest(buildManifestTree(spec, infoFor(digests)), spec.manifestFormat));
    if (manifest.length !== draft.length) throw new OtapackError('INTERNAL', 'sw-description length changed after hashing');
    let sig: Buffer | undefined;
    if (o.signer) {
      reporter.step('signing sw-description').done();
      sig = await stage('bundle: sign (CMS)', () => signCms(manifest, o.signer!, signingTime));
    }
    const size = await writer.finish(manifest, sig);
    const sha256 = o.hashOutput === false ? undefined : await stage('bundle: hash the output (while fsync)', () => out.syncAndHash(size));
    // a .zck is published with its bundle, never without it
    await stage('bundle: fsync + rename', () => commitOutputs(async () => {
      for (const f of extra) {
        await syncFile(f.temp);
        await rename(f.temp, f.final).catch((e) => { throw ioError('IO', `cannot write ${f.final}`, e); });
        unregisterTemp(f.temp);
      }
      await out.commit();
    }));
    return {
      output: o.output,
      size,
      sha256,
      manifest: manifest.toString('utf8'),
      manifestFormat: spec.manifestFormat,
      cpioFormat: format,
      signed: !!o.signer,
      signer: o.signer?.cert.subject,
      signatureAlgorithm: o.signer ? schemeName(o.signer.scheme) : undefined,
      entries,
    };
  } catch (e) {
    await out.abort();
    throw asWriteError(e, o.output);
  }
}

/**
 * A payload's bytes as stored: the codec's output, AES-CBC encrypted when asked, in constant
 * memory. Stopped early (an error, the 4 GiB limit), it stops the codec.
 */
async function* storedBytes(job: CompressJob, encryption?: { cipher: string; key: Buffer; iv: Buffer }): AsyncGenerator<Buffer> {
  const cipher = encryption ? createCipheriv(encryption.cipher, encryption.key, encryption.iv) : undefined;
  const wait = new Meter('wait for the codec');
  const enc = new Meter('encrypt (AES)');
  let complete = false;
  try {
    wait.start();
    for await (const chunk of job.output) {
      wait.stop();
      yield cipher ? metered(enc, () => cipher.update(chunk)) : chunk;
      wait.start();
    }
    wait.stop();
    await job.done;
    if (cipher) yield cipher.final();
    complete = true;
  } finally {
    if (!complete) {
      job.abort();
      await job.done.catch(() => {});
    }
  }
}

/** A system error while producing `output` becomes an IO error naming it. */
export function asWriteError(e: unknown, output: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  return !(e instanceof OtapackError) && code && /^E[A-Z]+$/.test(code) ? ioError('IO', `cannot write ${output}`, e) : e;
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try { await fh.sync(); } finally { await fh.close(); }
}

