// `otapack convert` as a library call: config → input (decompressed if needed) → detection →
// plan → keys → apply. Also `inspectImage`, the same up to the plan, writing nothing.
import { mkdir, mkdtemp, rm, access, readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { OtapackError, fileError, ioError } from '../errors.js';
import { silentReporter, type Reporter } from '../util/reporter.js';
import { registerTempDir, unregisterTempDir } from '../util/cleanup.js';
import { openImageInput } from '../disk/image-input.js';
import { resolveSigner, type SignerOptions } from '../crypto/resolve-signer.js';
import { loadAesKey, parsePrivateKey, parseAesKey } from '../crypto/keys.js';
import { parseCertificates, certPem, type CertInfo } from '../crypto/x509.js';
import { KeyObjectSigner, schemeFor, type Signer } from '../crypto/signer.js';
import { writeKeyFiles } from '../crypto/key-files.js';
import type { AesKey } from '../crypto/keys.js';
import { loadConvertConfig, type ConvertConfig } from './config.js';
import { detectLayout } from './detect.js';
import { planConversion, type ConvertPlan } from './plan.js';
import { applyPlan, type ConvertResult } from './apply.js';
import { stage } from '../util/profile.js';

export interface ConvertOptions extends Omit<SignerOptions, 'env' | 'now'> {
  input: string;
  config?: string;
  outDir: string;
  trust?: string;
  aesKey?: string;
  unsigned?: boolean;
  reproducible?: boolean;
  /** Also put the whole disk image's SHA-256 in the report (a second pass over the image). */
  imageSha256?: boolean;
  timestamp?: number;
  reporter?: Reporter;
}

export interface ConvertOutcome extends ConvertResult {
  devKeys?: string;
  input: { path: string; compressed: string };
}

async function withInput<T>(input: string, workParent: string, fn: (raw: string, compressed: string) => Promise<T>): Promise<T> {
  try {
    await access(input);
  } catch (e) {
    throw fileError('INPUT', input, e);
  }
  const work = await mkdtemp(join(workParent, '.otapack-input-')).catch((e) => { throw ioError('IO', `cannot write in ${workParent}`, e); });
  registerTempDir(work);
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

export async function inspectImage(input: string, configPath?: string): Promise<ConvertPlan> {
  const cfg = await loadConvertConfig(configPath);
  return withInput(input, tmpdir(), async (raw) => {
    const layout = await detectLayout(raw);
    layout.image = input; // reports and messages name the user's file
    return planConversion(layout, cfg, input);
  });
}

/** The certificates devices will trust: --trust, else the self-signed root of the signing chain. */
function trustAnchor(signer: Signer | undefined, trust: CertInfo[] | undefined): string | undefined {
  if (trust) return trust.map((c) => certPem(c.der)).join('');
  if (!signer) return undefined;
  const all = [signer.cert, ...signer.chain];
  const root = all.find((c) => c.selfIssued && (c === signer.cert || c.isCA !== false));
  if (!root) {
    throw new OtapackError('KEY', `the signing certificate is issued by ${signer.cert.issuer}; give the CA certificate devices must trust with --trust (or in --chain)`);
  }
  return certPem(root.der);
}

/** Development keys in OUTDIR/keys: reused when present so re-runs keep the same trust anchor. */
async function devKeys(outDir: string, reporter: Reporter): Promise<{ signer: Signer; aes: AesKey; dir: string }> {
  const dir = join(outDir, 'keys');
  const paths = { key: join(dir, 'signing.key'), cert: join(dir, 'signing.crt'), aes: join(dir, 'aes.key') };
  const exists = await access(paths.key).then(() => true, () => false);
  if (!exists) await writeKeyFiles(dir, { cn: 'otapack development key', days: 3650, type: 'rsa3072', ca: false, force: true });
  reporter.warn(`no signing key given: ${exists ? 'reusing' : 'generated'} a DEVELOPMENT key pair in ${dir}; devices made from this image trust only it. Use --key/--cert (or $OTAPACK_SIGNING_KEY/$OTAPACK_SIGNING_CERT) with your release key for production.`);
  const key = parsePrivateKey({ data: await readFile(paths.key), origin: paths.key });
  const cert = parseCertificates(await readFile(paths.cert), paths.cert)[0]!;
  return { signer: new KeyObjectSigner(key, cert, [], schemeFor(cert, false), paths.key), aes: parseAesKey({ data: await readFile(paths.aes), origin: paths.aes }), dir };
}

export async function convertImage(o: ConvertOptions): Promise<ConvertOutcome> {
  const reporter = o.reporter ?? silentReporter;
  const cfg: ConvertConfig = await loadConvertConfig(o.config);
  await mkdir(o.outDir, { recursive: true }).catch((e) => { throw ioError('IO', `cannot create ${o.outDir}`, e); });
  const fromCli = o.key !== undefined || o.signCommand !== undefined;
  let signer = o.unsigned ? undefined : await resolveSigner({
    ...o,
    key: o.key ?? (fromCli ? undefined : cfg.signing.key), cert: o.cert ?? cfg.signing.cert, chain: o.chain ?? cfg.signing.chain,
    warn: o.warn ?? ((m) => reporter.warn(m)),
  });
  let aes = await loadAesKey(o.aesKey);
  let devDir: string | undefined;
  if (!signer && !o.unsigned) {
    const d = await devKeys(o.outDir, reporter);
    signer = d.signer;
    aes ??= d.aes;
    devDir = d.dir;
  }
  if (cfg.update.encrypt && !aes) throw new OtapackError('KEY', `${cfg.file}: update.encrypt is set but no AES key was given (--aes-key or $OTAPACK_AES_KEY)`);
  if (!cfg.update.encrypt) aes = undefined;
  const trustCerts = o.trust ? parseCertificates(await readFile(o.trust).catch((e) => { throw fileError('KEY', o.trust!, e); }), `trust file ${o.trust}`) : undefined;
  const trustPem = trustAnchor(signer, trustCerts);
  if (!trustPem) reporter.warn('unsigned, and no --trust given: the converted devices get no trust anchor and will refuse every update until one is installed');
  return withInput(o.input, dirname(join(o.outDir, 'x')), async (raw, compressed) => {
    const layout = await stage('convert: detect layout', () => detectLayout(raw));
    layout.image = o.input; // reports and messages name the user's file
    const plan = planConversion(layout, cfg, o.input);
    for (const w of plan.warnings) reporter.warn(w);
    const r = await applyPlan({ plan, cfg, input: raw, outDir: o.outDir, signer, aes, trustPem: trustPem ?? '', timestamp: o.timestamp, reproducible: o.reproducible, imageSha256: o.imageSha256, reporter });
    return { ...r, devKeys: devDir, input: { path: o.input, compressed } };
  });
}
