// `otapack convert` as a library call: config → input (decompressed if needed) → detection →
// plan → keys → apply. Also `inspectImage`, the same up to the plan, writing nothing.
import { rm, access, readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { OtapackError, fileError, ioError } from '../errors.js';
import { silentReporter, type Reporter } from '../util/reporter.js';
import { makeTempDir, unregisterTempDir } from '../util/cleanup.js';
import { openImageInput } from '../disk/image-input.js';
import { resolveSigner, type SignerOptions } from '../crypto/resolve-signer.js';
import { loadAesKey, parsePrivateKey, parseAesKey } from '../crypto/keys.js';
import { parseCertificates, certPem, type CertInfo } from '../crypto/x509.js';
import { KeyObjectSigner, schemeFor, type Signer } from '../crypto/signer.js';
import { keyFileContents } from '../crypto/key-files.js';
import { generateKeySet } from '../crypto/keygen.js';
import { verifyChain } from '../crypto/cms-verify.js';
import type { AesKey } from '../crypto/keys.js';
import { loadConvertConfig, type ConvertConfig } from './config.js';
import { detectLayout } from './detect.js';
import { readInput } from './read-input.js';
import { clientById } from '../clients/index.js';
import type { ClientId } from '../clients/client.js';
import { manifestSignerFrom, parseTrustKey, resolveManifestSigner } from '../clients/mender/keys.js';
import type { ManifestSigner } from '../clients/mender/artifact.js';
import { planConversion, outputName, type ConvertPlan } from './plan.js';
import { applyPlan, type ConvertResult } from './apply.js';
import { stage } from '../util/profile.js';
import { makeOutputDir } from '../util/atomic-file.js';
import { refuseOverwritingInputs, keyInputs } from '../util/no-clobber.js';
import { REPRODUCIBLE_EPOCH } from '../util/reproducible.js';
import { findOtapackDisk, alreadyConverted, type OtapackDisk } from './otapack-disk.js';
import { openDeltaBase, type DeltaBase } from '../delta/base.js';
import type { DeltaBaseFacts, DeltaRequest } from '../clients/client.js';

export interface ConvertOptions extends Omit<SignerOptions, 'env' | 'now'> {
  input: string;
  config?: string;
  /** The update client to wire the device for; overrides the config's `client`. */
  client?: ClientId;
  outDir: string;
  trust?: string;
  aesKey?: string;
  unsigned?: boolean;
  reproducible?: boolean;
  /** Also put the whole disk image's SHA-256 in the report (a second pass over the image). */
  imageSha256?: boolean;
  /** Also a delta bundle from this previous release (its .swu or slot image): <name>.delta.swu. */
  deltaFrom?: string;
  deltaMethod?: DeltaRequest['method'];
  /** zchunk: the URL devices fetch <name>.zck from (a trailing / gets <name>.zck appended). */
  deltaUrl?: string;
  timestamp?: number;
  reporter?: Reporter;
}

export interface ConvertOutcome extends ConvertResult {
  devKeys?: string;
  input: { path: string; compressed: string };
}

async function checkInput(input: string): Promise<void> {
  try {
    await access(input);
  } catch (e) {
    throw fileError('INPUT', input, e);
  }
}

async function withInput<T>(input: string, workParent: string, fn: (raw: string, compressed: string) => Promise<T>): Promise<T> {
  await checkInput(input);
  const work = makeTempDir(workParent, '.otapack-input-');
  try {
    const opened = await stage('input: open (decompress)', () => openImageInput(input, work));
    try {
      return await fn(opened.path, opened.compressed);
    } catch (e) {
      // errors name the user's file, not the decompressed temp copy
      if (e instanceof OtapackError && opened.path !== input && e.path === opened.path) throw e.withPath(input);
      throw e;
    } finally {
      await opened.cleanup();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    unregisterTempDir(work);
  }
}

/** What inspect shows: the conversion plan, or, for a disk otapack already converted, its A/B layout. */
export async function inspectInput(input: string, configPath?: string, o: { client?: ClientId } = {}): Promise<{ plan: ConvertPlan; abDisk?: undefined } | { abDisk: OtapackDisk; plan?: undefined }> {
  const cfg = await loadConvertConfig(configPath, { client: o.client });
  const client = clientById(cfg.client);
  return withInput(input, tmpdir(), async (raw) => {
    const abDisk = await findOtapackDisk(raw, input);
    if (abDisk) return { abDisk };
    const layout = await detectLayout(raw);
    layout.image = input; // reports and messages name the user's file
    const facts = await readInput(raw, layout, { clientPaths: client.inputPaths(layout.bootloader), loaderBinary: cfg.boot.loaderBinary, installGrub: cfg.boot.installGrub });
    return { plan: planConversion(facts, cfg, { inputPath: input, client, keys: { pending: true } }) };
  });
}

export async function inspectImage(input: string, configPath?: string, o: { client?: ClientId } = {}): Promise<ConvertPlan> {
  const r = await inspectInput(input, configPath, o);
  if (r.abDisk) throw alreadyConverted(r.abDisk);
  return r.plan;
}

/**
 * The certificates devices will trust: --trust, else the signing chain's self-signed root and its
 * intermediates (the client builds chains from its trust file only, never from the certificates
 * a signature carries).
 */
function trustAnchors(signer: Signer | undefined, trust: CertInfo[] | undefined): CertInfo[] | undefined {
  if (trust) return trust;
  if (!signer) return undefined;
  const all = [signer.cert, ...signer.chain];
  const root = all.find((c) => c.selfIssued && (c === signer.cert || c.isCA !== false));
  if (!root) {
    throw new OtapackError('KEY', `the signing certificate is issued by ${signer.cert.issuer}; give the CA certificate devices must trust with --trust (or in --chain)`);
  }
  return [root, ...signer.chain.filter((c) => c !== root && !c.selfIssued)];
}

/** A file convert publishes with its outputs. */
export interface ExtraOutput { path: string; data: string; mode: number }

const devKeyPaths = (outDir: string): { dir: string; key: string; cert: string; aes: string } => {
  const dir = join(outDir, 'keys');
  return { dir, key: join(dir, 'signing.key'), cert: join(dir, 'signing.crt'), aes: join(dir, 'aes.key') };
};

/**
 * Development keys in OUTDIR/keys: reused when present so re-runs keep the same trust anchor;
 * otherwise generated in memory here and written only with the other outputs, at the end.
 */
async function devKeys(outDir: string, exists: boolean): Promise<{ signer: Signer; aes: AesKey; dir: string; files: ExtraOutput[] }> {
  const paths = devKeyPaths(outDir);
  const dir = paths.dir;
  if (!exists) {
    const ks = generateKeySet({ cn: 'otapack development key', days: 3650, type: 'rsa3072', ca: false });
    return {
      signer: new KeyObjectSigner(ks.signingKey, ks.signingCert, [], schemeFor(ks.signingCert, false), paths.key),
      aes: { ...ks.aes, origin: paths.aes }, dir,
      files: keyFileContents(ks).map((f) => ({ path: join(dir, f.name), data: f.data, mode: f.mode })),
    };
  }
  const read = (p: string): Promise<Buffer> => readFile(p).catch((e) => { throw ioError('KEY', p, e); });
  const key = parsePrivateKey({ data: await read(paths.key), origin: paths.key });
  const cert = parseCertificates(await read(paths.cert), paths.cert)[0]!;
  return { signer: new KeyObjectSigner(key, cert, [], schemeFor(cert, false), paths.key), aes: parseAesKey({ data: await read(paths.aes), origin: paths.aes }), dir, files: [] };
}

/** Opens the previous release for a delta in a temp folder of the output folder (removed with it). */
async function readDeltaBase(from: string, outDir: string, aes: AesKey | undefined, reporter: Reporter): Promise<DeltaBase> {
  const work = makeTempDir(outDir, '.otapack-base-');
  const done = async (): Promise<void> => {
    await rm(work, { recursive: true, force: true });
    unregisterTempDir(work);
  };
  try {
    reporter.step(`reading the previous release ${from}`).done();
    const base = await openDeltaBase(from, { workDir: work, label: 'rootfs.ext4', aes });
    return { ...base, cleanup: async () => { await base.cleanup(); await done(); } };
  } catch (e) {
    await done();
    throw e;
  }
}

/** What the plan needs to know of a delta base. */
const deltaFacts = (b: DeltaBase): DeltaBaseFacts => ({
  origin: b.origin, version: b.bundle?.version, size: b.size,
  ext4: b.ext4 && { blockSize: b.ext4.blockSize, rootOptions: b.ext4.rootOptions }, dataBytes: b.rangesBytes, ranges: b.ranges.length,
});

export async function convertImage(o: ConvertOptions): Promise<ConvertOutcome> {
  const reporter = o.reporter ?? silentReporter;
  const cfg: ConvertConfig = await loadConvertConfig(o.config, { client: o.client });
  const client = clientById(cfg.client);
  const raw = client.signing === 'raw';
  // --reproducible without SOURCE_DATE_EPOCH: a fixed time, not the clock (util/reproducible.ts)
  const timestamp = o.timestamp ?? (o.reproducible ? REPRODUCIBLE_EPOCH : undefined);
  // every input is checked before anything is generated or written
  await checkInput(o.input);
  const deltaMethod = o.deltaMethod ?? 'rdiff';
  if (o.deltaFrom === undefined && (o.deltaMethod || o.deltaUrl)) throw new OtapackError('USAGE', `--delta-method and --delta-url need --delta-from (the previous release's .swu or slot image)`);
  if (o.deltaFrom !== undefined) {
    await checkInput(o.deltaFrom);
    if (deltaMethod === 'zchunk' && !o.deltaUrl) throw new OtapackError('USAGE', '--delta-method zchunk needs --delta-url: where devices fetch the .zck (an HTTP server with Range support)');
    if (deltaMethod === 'rdiff' && o.deltaUrl) throw new OtapackError('USAGE', '--delta-url is for --delta-method zchunk; an rdiff delta travels inside the bundle');
    if (o.deltaUrl && !/^https?:\/\/[^\s"]+$/.test(o.deltaUrl)) throw new OtapackError('USAGE', `--delta-url: "${o.deltaUrl}" is not an http(s) URL`);
  }
  const fromCli = o.key !== undefined || o.signCommand !== undefined;
  const signing = { key: o.key ?? (fromCli ? undefined : cfg.signing.key), cert: o.cert ?? cfg.signing.cert, chain: o.chain ?? cfg.signing.chain };
  const warn = o.warn ?? ((m: string) => reporter.warn(m));
  if (raw && o.deltaFrom !== undefined) throw new OtapackError('USAGE', `--delta-from: delta updates are made for SWUpdate; ${client.name} artifacts carry the full image`);
  if (raw && o.aesKey !== undefined) throw new OtapackError('USAGE', `--aes-key: ${client.name} artifacts are not encrypted`);
  // SWUpdate signs CMS with a certificate; Mender signs the manifest with a bare key (no certificate needed)
  let signer = o.unsigned || raw ? undefined : await resolveSigner({ ...o, ...signing, warn });
  let manifestSigner: ManifestSigner | undefined = o.unsigned || !raw ? undefined : await resolveManifestSigner({ ...o, ...signing, warn });
  let aes = raw ? undefined : await loadAesKey(o.aesKey);
  // a previous release's bundle is decrypted with the key given, even when this one is not encrypted
  const baseAes = aes;
  const needDevKeys = !signer && !manifestSigner && !o.unsigned;
  const devKeysExist = needDevKeys && await access(devKeyPaths(o.outDir).key).then(() => true, () => false);
  const name = outputName(o.input);
  const artifactFile = `${name}.${raw ? 'mender' : 'swu'}`;
  await refuseOverwritingInputs([
    { path: o.outDir, what: 'folder' },
    { path: join(o.outDir, `${name}.img`), what: 'A/B disk' },
    { path: join(o.outDir, `${name}.bmap`), what: 'bmap' },
    { path: join(o.outDir, artifactFile), what: raw ? 'artifact' : 'bundle' },
    { path: join(o.outDir, `${name}.json`), what: 'report' },
    ...(o.deltaFrom !== undefined ? [{ path: join(o.outDir, `${name}.delta.swu`), what: 'delta bundle' }] : []),
    ...(o.deltaFrom !== undefined && deltaMethod === 'zchunk' ? [{ path: join(o.outDir, `${name}.zck`), what: 'zchunk file' }] : []),
    ...(needDevKeys && !devKeysExist ? Object.entries(devKeyPaths(o.outDir)).filter(([k]) => k !== 'dir').map(([, path]) => ({ path, what: 'development key' })) : []),
  ], [
    { path: o.input, what: 'input image' },
    { path: o.config, what: 'config' },
    { path: cfg.boot.loaderBinary, what: 'boot.loader-binary' },
    { path: o.deltaFrom, what: 'delta base' },
    ...keyInputs({ ...o, ...signing }),
    ...cfg.rootfs.files.map((f) => ({ path: f.source, what: 'rootfs.files source', from: cfg.file, tree: true })),
    ...cfg.data.files.map((f) => ({ path: f.source, what: 'data.files source', from: cfg.file, tree: true })),
  ]);
  let devDir: string | undefined;
  let extraOutputs: ExtraOutput[] = [];
  if (needDevKeys) {
    const d = await devKeys(o.outDir, devKeysExist);
    if (raw) manifestSigner = manifestSignerFrom(d.signer);
    else {
      signer = d.signer;
      aes ??= d.aes;
    }
    devDir = d.dir;
    extraOutputs = d.files;
  }
  let deviceKeys: { trustPem?: string; aesKeyLine?: string; verifyKeyPem?: string };
  if (raw) {
    // the public key devices verify artifacts with: --trust (a public key or a certificate), else the signer's
    const trust = o.trust ? parseTrustKey(await readFile(o.trust).catch((e) => { throw fileError('KEY', o.trust!, e); }), o.trust) : undefined;
    if (trust && manifestSigner && trust.pem !== manifestSigner.publicKeyPem) {
      // the devices' verdict on our own signer, before any work: a mismatch would brick updates
      throw new OtapackError('KEY', `devices would refuse every artifact signed by ${manifestSigner.description}: its public key is not the one in --trust ${o.trust}`);
    }
    const verifyKeyPem = trust?.pem ?? manifestSigner?.publicKeyPem ?? '';
    if (!verifyKeyPem) warn('unsigned, and no --trust given: the converted devices get no ArtifactVerifyKey and install unsigned artifacts');
    deviceKeys = { verifyKeyPem };
  } else {
    if (cfg.update.encrypt && !aes) throw new OtapackError('KEY', `${cfg.file}: update.encrypt is set but no AES key was given (--aes-key or $OTAPACK_AES_KEY)`);
    if (!cfg.update.encrypt) aes = undefined;
    const trustCerts = o.trust ? parseCertificates(await readFile(o.trust).catch((e) => { throw fileError('KEY', o.trust!, e); }), `trust file ${o.trust}`) : undefined;
    const anchors = trustAnchors(signer, trustCerts);
    if (signer && anchors) {
      // the devices' verdict on our own signer, before any work: a mismatch would brick updates
      const v = await verifyChain(signer.cert, { anchors, purpose: cfg.update.certPurpose, origin: o.trust ?? 'the trust file convert installs' }, signer.chain);
      if (!v.ok) throw new OtapackError('KEY', `devices would refuse every bundle signed by ${signer.cert.subject}: ${v.reason}`);
    }
    const trustPem = anchors?.map((c) => certPem(c.der)).join('');
    if (!trustPem) reporter.warn('unsigned, and no --trust given: the converted devices get no trust anchor and will refuse every update until one is installed');
    deviceKeys = { trustPem: trustPem ?? '', aesKeyLine: aes ? `${aes.key.toString('hex')} ${aes.iv.toString('hex')}\n` : undefined };
  }
  // a failed run removes the folders it made
  const outDirs = await makeOutputDir(o.outDir);
  try {
    const r = await withInput(o.input, dirname(join(o.outDir, 'x')), async (rawImage, compressed) => {
      const abDisk = await findOtapackDisk(rawImage, o.input);
      if (abDisk) throw alreadyConverted(abDisk);
      const layout = await stage('convert: detect layout', () => detectLayout(rawImage));
      layout.image = o.input; // reports and messages name the user's file
      reporter.step('checking the input rootfs (e2fsck -n) and reading its boot files').done();
      const facts = await stage('convert: read input (e2fsck -fn, boot files, fstab)', () => readInput(rawImage, layout, { clientPaths: client.inputPaths(layout.bootloader), loaderBinary: cfg.boot.loaderBinary, installGrub: cfg.boot.installGrub }));
      // the previous release, for the delta: read (out of its bundle) before anything is planned
      const base = o.deltaFrom === undefined ? undefined : await stage('convert: read the delta base', () => readDeltaBase(o.deltaFrom!, o.outDir, baseAes, reporter));
      try {
        const url = o.deltaUrl?.endsWith('/') ? `${o.deltaUrl}${outputName(o.input)}.zck` : o.deltaUrl;
        // the whole plan, before any byte of output: every refusal happens here
        const plan = planConversion(facts, cfg, {
          inputPath: o.input, client, timestamp, keys: deviceKeys,
          delta: base ? { method: deltaMethod, url, base: deltaFacts(base) } : undefined,
        });
        for (const w of plan.warnings) reporter.warn(w);
        const r = await applyPlan({ plan, cfg, input: rawImage, outDir: o.outDir, signer, manifestSigner, aes, timestamp, reproducible: o.reproducible, imageSha256: o.imageSha256, reporter, extraOutputs, deltaBase: base });
        return { ...r, devKeys: devDir, input: { path: o.input, compressed } };
      } finally {
        await base?.cleanup();
      }
    });
    outDirs.keep();
    // said once the keys exist: a run that fails writes none
    if (devDir) reporter.warn(`no signing key given: ${devKeysExist ? 'reused' : 'generated'} a DEVELOPMENT key pair in ${devDir}; devices made from this image trust only it. Use ${raw ? '--key (or $OTAPACK_SIGNING_KEY)' : '--key/--cert (or $OTAPACK_SIGNING_KEY/$OTAPACK_SIGNING_CERT)'} with your release key for production.`);
    return r;
  } catch (e) {
    await outDirs.undo();
    throw e;
  }
}
