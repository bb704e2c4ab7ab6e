// Signing an existing bundle: the payloads are stream-copied untouched (never recompressed or
// re-encrypted) while their sha256 and cpio sums are checked against sw-description, so a
// bundle is only ever signed when its manifest really describes its contents. The signature is
// made here, or made elsewhere over `otapack manifest` output and attached after checking it.
import { OtapackError } from '../../errors.js';
import { AtomicFile } from '../../util/atomic-file.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { ArchiveReader, ArchiveWriter, prefixSize, safeName } from './archive.js';
import { readBundleManifest } from './manifest-read.js';
import { signCms } from '../../crypto/cms.js';
import { verifyCms, type CertPurpose } from '../../crypto/cms-verify.js';
import { checkCertDates } from '../../crypto/resolve-signer.js';
import { schemeName, type Signer, type SignerKind } from '../../crypto/signer.js';
import type { CertInfo } from '../../crypto/x509.js';

/** The exact bytes of a bundle's sw-description: what a signature must cover. */
export async function extractManifest(path: string): Promise<Buffer> {
  const reader = await ArchiveReader.open(path);
  try {
    return (await reader.bundle()).manifest;
  } finally {
    await reader.close();
  }
}

export interface ResignOptions {
  input: string;
  output: string;
  signer?: Signer;
  /** A DER CMS signature made elsewhere over the manifest bytes. */
  signature?: Buffer;
  /** With `signature`: the certificate it must have been made with. */
  expectCert?: CertInfo;
  /** With `signature`: anchors it must chain to. */
  trust?: CertInfo[];
  /** With `trust`: the purpose devices check (default emailProtection). */
  purpose?: CertPurpose;
  expiryWarningDays?: number;
  now?: Date;
  reporter?: Reporter;
}

export interface SignerCertSummary {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the certificate's DER, hex. */
  fingerprint: string;
}

export const certSummary = (c: CertInfo): SignerCertSummary => ({
  subject: c.subject, issuer: c.issuer, serial: c.serialHex, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), fingerprint: c.fingerprint,
});

export interface ResignResult {
  output: string;
  size: number;
  signer: string;
  algorithm: string;
  /** How the signature was made: in-process key, PKCS#11 token, external command, or attached (made elsewhere). */
  method: SignerKind | 'attached';
  certificate: SignerCertSummary;
  payloads: number;
  replacedSignature: boolean;
}

/**
 * Checks a signature made elsewhere before attaching it, with the device's verdict
 * (crypto/cms-verify.ts); throws a KEY error naming the problem.
 */
export async function checkDetachedSignature(
  sig: Buffer, manifest: Buffer, o: Pick<ResignOptions, 'expectCert' | 'trust' | 'now' | 'expiryWarningDays' | 'purpose'> & { warn?: (m: string) => void },
): Promise<{ subject: string; algorithm: string; cert: CertInfo }> {
  const now = o.now ?? new Date();
  const store = o.trust ? { anchors: o.trust, purpose: o.purpose ?? 'emailProtection' as const, at: o.now, origin: 'the --trust file' } : undefined;
  const v = await verifyCms(sig, manifest, store);
  if (!v.cms && !v.signatureOk) {
    throw new OtapackError('KEY', `signature: not a DER CMS signature the client can read (${v.signatureProblem}); make it with openssl cms -sign -binary -outform DER -nosmimecap`);
  }
  if (!v.signatureOk) throw new OtapackError('KEY', `signature does not match this bundle's sw-description: ${v.signatureProblem}`);
  const first = v.signers[0];
  const cert = first?.cert;
  if (!first || !cert) throw new OtapackError('KEY', 'signature: the signer certificate is not embedded (do not use -nocerts)');
  if (o.expectCert && !o.expectCert.der.equals(cert.der)) {
    const id = (c: CertInfo): string => `${c.subject}, SHA-256 fingerprint ${c.fingerprint.slice(0, 16)}…`;
    throw new OtapackError('KEY', `signature was made with another certificate (${id(cert)}) than the one given with --cert (${id(o.expectCert)})`);
  }
  const warnDays = o.expiryWarningDays ?? 90;
  checkCertDates(cert, now, warnDays, o.warn);
  for (const c of v.cms?.certificates ?? []) if (!c.der.equals(cert.der)) checkCertDates(c, now, warnDays, o.warn, c.isCA ? 'CA certificate in the signature' : 'certificate in the signature');
  if (store) {
    if (!v.trusted) throw new OtapackError('KEY', `signature by ${cert.subject} is not trusted: ${[...new Set(v.signers.map((s) => s.chain?.reason ?? 'no signer certificate'))].join('; ')}`);
    const chain = v.signers.find((s) => s.chain?.ok)!.chain!.chain;
    for (const c of chain.slice(1)) checkCertDates(c, now, warnDays, o.warn, 'trust anchor');
  }
  return { subject: cert.subject, algorithm: first.algorithm, cert };
}

export async function resignBundle(o: ResignOptions): Promise<ResignResult> {
  const reporter = o.reporter ?? silentReporter;
  const reader = await ArchiveReader.open(o.input);
  let out: AtomicFile | undefined;
  try {
    const layout = await reader.bundle();
    const manifest = readBundleManifest(o.input, layout);
    const digests = new Map<string, string>();
    for (const r of manifest.refs) if (r.filename && typeof r.sha256 === 'string') digests.set(r.filename, r.sha256.toLowerCase());

    let sig: Buffer;
    let who: { subject: string; algorithm: string; cert: CertInfo; method: ResignResult['method'] };
    if (o.signature) {
      who = { ...(await checkDetachedSignature(o.signature, layout.manifest, { ...o, warn: (m) => reporter.warn(m) })), method: 'attached' };
      sig = o.signature;
    } else if (o.signer) {
      sig = await signCms(layout.manifest, o.signer, o.now ?? new Date());
      who = { subject: o.signer.cert.subject, algorithm: schemeName(o.signer.scheme), cert: o.signer.cert, method: o.signer.kind ?? 'key' };
    } else {
      throw new OtapackError('USAGE', 'no signer and no signature given');
    }

    // the payloads are copied as stored, their headers' mode and mtime kept; sums and digests are
    // checked on the way so a corrupt bundle is never signed
    out = await AtomicFile.create(o.output);
    const writer = new ArchiveWriter(out.handle, {
      format: layout.format, mtime: layout.manifestEntry.header.mtime, signed: true, reserve: prefixSize(layout.manifest.length, sig.length),
    });
    for (const e of layout.payloads) {
      const progress = reporter.step(`copying ${safeName(e.name)}`, e.size);
      const w = await writer.addEntry(e.name, (write) => reader.streamEntry(e, write), { mode: e.header.mode, mtime: e.header.mtime, onData: (n) => progress.update(n) });
      progress.done();
      if (layout.format === 'crc' && w.check !== e.header.check) throw new OtapackError('INPUT', `${o.input}: entry "${safeName(e.name)}" fails its cpio checksum; refusing to sign a corrupt bundle`);
      const want = digests.get(e.name);
      if (want && want !== w.sha256) throw new OtapackError('INPUT', `${o.input}: "${safeName(e.name)}" does not match its sha256 in sw-description; refusing to sign a corrupt bundle`);
    }
    const size = await writer.finish(layout.manifest, sig);
    await out.commit();
    return {
      output: o.output, size, signer: who.subject, algorithm: who.algorithm, method: who.method, certificate: certSummary(who.cert),
      payloads: layout.payloads.length, replacedSignature: !!layout.signatureEntry,
    };
  } catch (e) {
    await out?.abort();
    throw e;
  } finally {
    await reader.close();
  }
}
