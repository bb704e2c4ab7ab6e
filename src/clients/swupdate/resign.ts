// Signing an existing bundle: the payloads are stream-copied untouched (never recompressed or
// re-encrypted) while their sha256 and cpio sums are checked against sw-description, so a
// bundle is only ever signed when its manifest really describes its contents. The signature is
// made here, or made elsewhere over `otapack manifest` output and attached after checking it.
import { createHash } from 'node:crypto';
import { OtapackError } from '../../errors.js';
import { AtomicFile } from '../../util/atomic-file.js';
import { silentReporter, type Reporter } from '../../util/reporter.js';
import { CpioReader, safeName, type CpioEntry } from './cpio-reader.js';
import { MAGIC_CRC, byteSum, encodeHeader, encodeTrailer, headerSpan, pad4, type CpioFormat } from './cpio.js';
import { readManifest } from './manifest-read.js';
import { encodePrefix } from './bundle.js';
import { PositionalWriter, writeAll } from '../../util/positional-writer.js';
import { signCms } from '../../crypto/cms.js';
import { verifyCms, type CertPurpose } from '../../crypto/cms-verify.js';
import { checkCertDates } from '../../crypto/resolve-signer.js';
import { schemeName, type Signer, type SignerKind } from '../../crypto/signer.js';
import type { CertInfo } from '../../crypto/x509.js';

interface Layout {
  manifest: Buffer;
  manifestEntry: CpioEntry;
  oldSig?: CpioEntry;
  payloads: CpioEntry[];
  format: CpioFormat;
}

async function readLayout(reader: CpioReader): Promise<Layout> {
  const entries: CpioEntry[] = [];
  for await (const e of reader.entries()) entries.push(e);
  const first = entries[0];
  if (!first || first.name !== 'sw-description') {
    throw new OtapackError('INPUT', `${reader.path}: first entry is "${safeName(first?.name ?? '')}", not sw-description: not a SWUpdate bundle`);
  }
  const names = new Set<string>();
  for (const e of entries) {
    if (names.has(e.name)) throw new OtapackError('INPUT', `${reader.path}: entry "${safeName(e.name)}" appears twice`);
    if (e.name.includes('/') || e.name === '..' || e.name === '.') throw new OtapackError('INPUT', `${reader.path}: entry "${safeName(e.name)}" is not a bare file name`);
    names.add(e.name);
  }
  const manifest = await reader.readEntry(first, 4 << 20);
  if (first.header.magic === MAGIC_CRC && byteSum(manifest) !== first.header.check) {
    throw new OtapackError('INPUT', `${reader.path}: sw-description fails its cpio checksum`);
  }
  const oldSig = entries.find((e) => e.name === 'sw-description.sig');
  return {
    manifest,
    manifestEntry: first,
    oldSig,
    payloads: entries.filter((e) => e !== first && e !== oldSig),
    format: first.header.magic === MAGIC_CRC ? 'crc' : 'newc',
  };
}

/** The exact bytes of a bundle's sw-description: what a signature must cover. */
export async function extractManifest(path: string): Promise<Buffer> {
  const reader = await CpioReader.open(path);
  try {
    return (await readLayout(reader)).manifest;
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
  const reader = await CpioReader.open(o.input);
  let out: AtomicFile | undefined;
  try {
    const layout = await readLayout(reader);
    let manifest;
    try {
      manifest = readManifest(layout.manifest);
    } catch (e) {
      throw new OtapackError('INPUT', `${o.input}: sw-description is not valid libconfig or JSON (${(e as Error).message})`);
    }
    const digests = new Map<string, string>();
    for (const r of manifest.refs) if (r.filename && typeof r.sha256 === 'string') digests.set(r.filename, r.sha256.toLowerCase());
    for (const [name] of digests) {
      if (!layout.payloads.some((p) => p.name === name)) throw new OtapackError('INPUT', `${o.input}: sw-description references "${safeName(name)}", which is not in the bundle`);
    }

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

    out = await AtomicFile.create(o.output);
    const mtime = layout.manifestEntry.header.mtime;
    const prefix = encodePrefix(layout.manifest, sig, layout.format, mtime);
    await writeAll(out.handle, prefix, prefix.length, 0);
    let pos = prefix.length;
    let ino = 3;
    for (const e of layout.payloads) {
      const hash = createHash('sha256');
      let sum = 0;
      const header = encodeHeader(e.name, { size: e.size, check: e.header.check, ino: ino++, mode: e.header.mode, mtime: e.header.mtime }, layout.format);
      await writeAll(out.handle, header, header.length, pos);
      const w = new PositionalWriter(out.handle, pos + headerSpan(e.name));
      const progress = reporter.step(`copying ${safeName(e.name)}`, e.size);
      await reader.readRange(e.dataOffset, e.size, async (chunk) => {
        hash.update(chunk);
        sum = byteSum(chunk, sum);
        await w.write(chunk);
        progress.update(w.position - pos);
      });
      progress.done();
      pos = await w.finish();
      const padding = pad4(e.size);
      if (padding) await writeAll(out.handle, Buffer.alloc(padding), padding, pos);
      pos += padding;
      if (layout.format === 'crc' && sum !== e.header.check) throw new OtapackError('INPUT', `${o.input}: entry "${safeName(e.name)}" fails its cpio checksum; refusing to sign a corrupt bundle`);
      const want = digests.get(e.name);
      if (want && want !== hash.digest('hex')) throw new OtapackError('INPUT', `${o.input}: "${safeName(e.name)}" does not match its sha256 in sw-description; refusing to sign a corrupt bundle`);
    }
    const trailer = encodeTrailer(pos, layout.format);
    await writeAll(out.handle, trailer, trailer.length, pos);
    const size = pos + trailer.length;
    await out.commit();
    return {
      output: o.output, size, signer: who.subject, algorithm: who.algorithm, method: who.method, certificate: certSummary(who.cert),
      payloads: layout.payloads.length, replacedSignature: !!layout.oldSig,
    };
  } catch (e) {
    await out?.abort();
    throw e;
  } finally {
    await reader.close();
  }
}
