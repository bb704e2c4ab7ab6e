// The one place otapack judges a CMS signature and its signer's chain, with the device's verdict.
//
// Debian's SWUpdate (2022.12+deb12u3, CONFIG_SIGALG_CMS + CONFIG_CMS_SKIP_UNKNOWN_SIGNERS) does:
//   1. CMS_verify(cms, content, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY): every SignerInfo's signature
//      over the exact sw-description bytes, no chain check;
//   2. for each signer certificate, X509_verify_cert() against an X509_STORE loaded from its `-k`
//      file (every PEM CERTIFICATE in it, no system store) with NO untrusted certificates — the
//      intermediates a signature carries are ignored (measured: "[verify_signer_certs] Failed to
//      verify certificate 0" with the intermediate only in the CMS) — and the store's purpose:
//      OpenSSL's "smime_sign" for emailProtection, or SWUpdate's own code-signing purpose;
//      at least one signer must pass ("Authentication of all signatures failed" otherwise).
// Rather than re-implement X.509 path validation, both steps are OpenSSL's own: `openssl cms
// -verify -noverify` for 1 and `openssl verify -CAfile <the trust certificates only> -no-CApath
// -no-CAstore -purpose …` for 2, with the same store and flags. OpenSSL 3.0's command line has no
// code-signing purpose; SWUpdate's check_code_sign() is "OCSP-helper rules (check_ca) for CAs,
// plus: a CA with an EKU must list codeSigning, the leaf must have EKU codeSigning", so that
// purpose is `-purpose ocsphelper` plus those two EKU rules on the chain OpenSSL built.
// test/verify-trust-differential.test.ts holds this module to the real client, case by case.
import { writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OtapackError } from '../errors.js';
import { run } from '../util/tools.js';
import { makeTempDir, unregisterTempDir } from '../util/cleanup.js';
import { OID } from './asn1.js';
import { certPem, splitPem, parseCertificate, type CertInfo } from './x509.js';
import { parseCms, findSignerCert, describeAlgorithm, type ParsedCms } from './cms.js';

export type CertPurpose = 'emailProtection' | 'codeSigning';

export interface TrustStore {
  /** Every certificate of the device's trust file, in file order. */
  anchors: CertInfo[];
  purpose: CertPurpose;
  /** Judge validity at this time instead of now (`-attime`). */
  at?: Date;
  /** Names the trust file in messages. */
  origin?: string;
}

export interface ChainVerdict {
  ok: boolean;
  /** The chain OpenSSL built, leaf first, as certificates of the store where they could be matched. */
  chain: CertInfo[];
  /** OpenSSL's verification error, when it failed. */
  error?: { code: number; depth: number; text: string };
  /** One line: why the device refuses (or accepts) this signer. */
  reason: string;
}

export interface SignerVerdict {
  cert?: CertInfo;
  algorithm: string;
  signingTime?: Date;
  /** With a trust store: the chain verdict for this signer. */
  chain?: ChainVerdict;
}

export interface CmsVerdict {
  /** otapack's own parse, used to describe the signature; absent when only OpenSSL could read it. */
  cms?: ParsedCms;
  /** Every SignerInfo's signature is valid over the content (the client's CMS_verify). */
  signatureOk: boolean;
  /** Why not, in one line. */
  signatureProblem?: string;
  signers: SignerVerdict[];
  /** With a trust store: at least one signer chains to it under the purpose (the client's rule). */
  trusted?: boolean;
}

/** A private folder for the files OpenSSL reads; removed afterwards and on interruption. */
async function withWorkDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = makeTempDir(tmpdir(), 'otapack-verify-');
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
    unregisterTempDir(dir);
  }
}

const storePem = (anchors: CertInfo[]): string => anchors.map((c) => certPem(c.der)).join('');

/** OpenSSL's error lines ("…:error:…:lib:function:reason:file:line:"), as [library, function, reason]. */
const opensslErrors = (text: string): [string, string, string][] => text.split('\n')
  .map((l) => /^[0-9A-F]+:error:[0-9A-F]+:([^:]*):([^:]*):([^:]*)/.exec(l.trim()))
  .filter((m): m is RegExpExecArray => !!m)
  .map((m) => [m[1]!, m[2]!, m[3]!.trim()]);

/** Why `openssl cms -verify` refused a signature, in the words a release engineer needs. */
function cmsFailure(text: string): string {
  const errs = opensslErrors(text);
  const has = (fn: string, reason?: string): boolean => errs.some(([, f, r]) => f === fn && (!reason || r === reason));
  const first = errs[0];
  const raw = first ? ` (OpenSSL ${first[0]}:${first[1]}: ${first[2]})` : '';
  if (/Error reading/.test(text) || errs.some(([lib]) => lib.startsWith('asn1'))) return `not a DER-encoded CMS signature${raw}`;
  if (has('CMS_verify', 'signer certificate not found')) return 'signer certificate not embedded in the signature (the client needs it; do not sign with -nocerts)';
  if (has('CMS_SignerInfo_verify_content') && !errs.some(([, , r]) => /bad signature|padding/.test(r))) {
    return `message digest does not match the signed content (sw-description changed after signing)${raw}`;
  }
  if (has('CMS_SignerInfo_verify') || errs.some(([, , r]) => r === 'bad signature')) return `signature value does not verify with the signer certificate${raw}`;
  if (first) return `${first[2]} (OpenSSL ${first[0]}:${first[1]})`;
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !/^(CMS )?Verification (failure|successful)/.test(l)).pop() ?? 'refused by OpenSSL without a reason';
}

/** Parses `openssl verify -show_chain` output: the depth lines and the first error. */
function parseVerifyOutput(out: string): { ok: boolean; depths: { depth: number; subject: string; untrusted: boolean }[]; error?: ChainVerdict['error'] } {
  const depths: { depth: number; subject: string; untrusted: boolean }[] = [];
  let error: ChainVerdict['error'];
  for (const line of out.split('\n')) {
    const d = /^depth=(\d+): (.*?)( \(untrusted\))?$/.exec(line);
    if (d) depths.push({ depth: Number(d[1]), subject: d[2]!, untrusted: !!d[3] });
    const e = /^error (\d+) at (\d+) depth lookup: (.*)$/.exec(line);
    if (e && !error) error = { code: Number(e[1]), depth: Number(e[2]), text: e[3]!.trim() };
  }
  return { ok: /: OK$/m.test(out) && !error, depths, error };
}

/**
 * The chain as the store can build it, leaf first: each step the first store certificate (file
 * order, as OpenSSL's lookup) that issued the one below. Used to name certificates in reports;
 * the verdict itself is OpenSSL's.
 */
function storeChain(leaf: CertInfo, anchors: CertInfo[], at: Date, maxLength = 16): CertInfo[] {
  const chain = [leaf];
  while (chain.length < maxLength) {
    const below = chain[chain.length - 1]!;
    if (below.selfIssued && anchors.some((a) => a.der.equals(below.der))) break;
    const issuers = anchors.filter((a) => {
      if (chain.includes(a)) return false;
      try {
        return below.x509.checkIssued(a.x509) && below.x509.verify(a.x509.publicKey);
      } catch {
        return false;
      }
    });
    // like OpenSSL's store lookup: a currently valid issuer first
    const issuer = issuers.find((a) => a.notBefore <= at && at <= a.notAfter) ?? issuers[issuers.length - 1];
    if (!issuer) break;
    chain.push(issuer);
  }
  return chain;
}

const hasEku = (c: CertInfo, oid: string): boolean => !!c.extKeyUsage?.includes(oid);

/** The words a user needs for OpenSSL's verification errors, with what the device does about it. */
function explain(cert: CertInfo, error: NonNullable<ChainVerdict['error']>, chain: CertInfo[], carried: CertInfo[], store: TrustStore): string {
  const at = chain[error.depth] ?? (error.depth === 0 ? cert : undefined);
  const who = at ? at.subject : `the certificate at depth ${error.depth}`;
  const file = store.origin ?? 'the trust file';
  const base = `${who}: ${error.text} (OpenSSL verify error ${error.code} at depth ${error.depth})`;
  if (error.code === 20 || error.code === 2) {
    // unable to get (local) issuer certificate
    const top = chain[chain.length - 1] ?? cert;
    const inSignature = carried.find((c) => c !== top && c.x509.subject === top.x509.issuer);
    if (inSignature) {
      return `${base}: the device builds the chain from ${file} only and ignores the intermediate certificates a signature carries; add ${inSignature.subject} to ${file}`;
    }
    if (store.anchors.some((a) => a.der.equals(top.der))) {
      return `${base}: ${top.subject} is in ${file} but its issuer ${top.issuer} is not; the device accepts only chains that end in a self-signed certificate of ${file} (no partial chains)`;
    }
    return `${base}: no certificate in ${file} issued ${top.subject}`;
  }
  if (error.code === 18 && chain.length <= 1) return `${base}: the signer is self-signed and not in ${file}`;
  if (error.code === 10) return `${who}: expired on ${at?.notAfter.toISOString().slice(0, 10) ?? '?'} (OpenSSL verify error 10 at depth ${error.depth}); the device refuses the signature`;
  if (error.code === 9) return `${who}: not valid before ${at?.notBefore.toISOString().slice(0, 10) ?? '?'} (OpenSSL verify error 9 at depth ${error.depth}); the device refuses the signature`;
  if (error.code === 26) return `${base}: not usable for --cert-purpose ${store.purpose}${purposeHint(at, error.depth, store.purpose)}`;
  return base;
}

const EKU_NAMES: Record<string, string> = {
  [OID.ekuEmailProtection]: 'emailProtection', [OID.ekuCodeSigning]: 'codeSigning', '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth', '2.5.29.37.0': 'anyExtendedKeyUsage', '1.3.6.1.5.5.7.3.8': 'timeStamping', '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};

/** Which extension most likely made OpenSSL call the purpose unsuitable: words for the report only. */
function purposeHint(c: CertInfo | undefined, depth: number, purpose: CertPurpose): string {
  if (!c) return '';
  const want = purpose === 'codeSigning' ? OID.ekuCodeSigning : OID.ekuEmailProtection;
  if (c.extKeyUsage && !c.extKeyUsage.includes(want)) {
    return ` (its extended key usage ${c.extKeyUsage.map((o) => EKU_NAMES[o] ?? o).join(', ')} is without ${purpose})`;
  }
  if (depth === 0 && purpose === 'emailProtection' && c.keyUsage && !c.keyUsage.has('digitalSignature') && !c.keyUsage.has('nonRepudiation')) {
    return ` (its key usage ${[...c.keyUsage].join(', ')} has neither digitalSignature nor nonRepudiation)`;
  }
  if (depth > 0) return ' (not a usable CA: basicConstraints / keyUsage keyCertSign)';
  return '';
}

/**
 * Verifies `cert`'s chain against the store as the device does (X509_verify_cert, trust file only,
 * the device's purpose). `carried` are certificates a signature embeds: never used to build the
 * chain, only to explain a refusal.
 */
export async function verifyChain(cert: CertInfo, store: TrustStore, carried: CertInfo[] = []): Promise<ChainVerdict> {
  if (store.anchors.length === 0) throw new OtapackError('KEY', `${store.origin ?? 'trust file'}: no certificate in it`);
  return withWorkDir(async (dir) => {
    await writeFile(join(dir, 'trust.pem'), storePem(store.anchors));
    await writeFile(join(dir, 'cert.pem'), certPem(cert.der));
    const args = ['verify', '-CAfile', join(dir, 'trust.pem'), '-no-CApath', '-no-CAstore', '-show_chain',
      '-purpose', store.purpose === 'codeSigning' ? 'ocsphelper' : 'smimesign'];
    if (store.at) args.push('-attime', String(Math.floor(store.at.getTime() / 1000)));
    args.push(join(dir, 'cert.pem'));
    const r = await run('openssl', args, { okCodes: [0, 2], what: 'openssl verify' });
    const out = `${r.stdout}\n${r.stderr}`;
    const parsed = parseVerifyOutput(out);
    const chain = storeChain(cert, store.anchors, store.at ?? new Date(), parsed.depths.length || 16);
    if (!parsed.ok) {
      const error = parsed.error ?? { code: -1, depth: 0, text: opensslErrors(out)[0]?.[2] ?? (out.trim().split('\n').pop() || 'no output') };
      return { ok: false, chain, error, reason: explain(cert, error, chain, carried, store) };
    }
    if (store.purpose === 'codeSigning') {
      // SWUpdate's check_code_sign(): the leaf needs EKU codeSigning; a CA with an EKU must list it
      if (!hasEku(cert, OID.ekuCodeSigning)) {
        const error = { code: 26, depth: 0, text: 'unsuitable certificate purpose' };
        return { ok: false, chain, error, reason: `${cert.subject}: has no extended key usage codeSigning, which the device's --cert-purpose codeSigning requires` };
      }
      const badCa = chain.slice(1).findIndex((c) => c.extKeyUsage && !hasEku(c, OID.ekuCodeSigning));
      if (badCa >= 0) {
        const c = chain[badCa + 1]!;
        const error = { code: 26, depth: badCa + 1, text: 'unsuitable certificate purpose' };
        return { ok: false, chain, error, reason: `${c.subject}: a CA whose extended key usage lacks codeSigning cannot issue for --cert-purpose codeSigning` };
      }
    }
    return { ok: true, chain, reason: `chains to ${chain[chain.length - 1]!.subject} in ${store.origin ?? 'the trust file'} (purpose ${store.purpose})` };
  });
}

/**
 * Judges a detached (or attached) CMS signature over `content` exactly as the device does; with
 * `store`, also whether a signer is trusted. Never throws for a bad signature: the verdict says why.
 */
export async function verifyCms(sig: Buffer, content: Buffer, store?: TrustStore): Promise<CmsVerdict> {
  let cms: ParsedCms | undefined;
  try {
    cms = parseCms(sig);
  } catch {
    cms = undefined; // OpenSSL below is the judge; our parse only describes
  }
  const checked = await withWorkDir(async (dir) => {
    const files = { sig: join(dir, 'sig.der'), content: join(dir, 'content'), signers: join(dir, 'signers.pem') };
    await writeFile(files.sig, sig);
    await writeFile(files.content, content);
    const r = await run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', files.sig, '-content', files.content,
      '-noverify', '-signer', files.signers, '-out', '/dev/null'], { okCodes: [0, 1, 2, 3, 4, 5], what: 'openssl cms -verify' });
    if (r.exitCode !== 0) return { ok: false, problem: cmsFailure(`${r.stdout}\n${r.stderr}`), signerCerts: [] as CertInfo[] };
    // the signer certificates exactly as OpenSSL matched them to the SignerInfos, in their order
    const pem = await readFile(files.signers, 'latin1');
    try {
      const signerCerts = splitPem(pem).map((d, i) => parseCertificate(d, `signer certificate ${i + 1} in the signature`));
      return { ok: true, problem: undefined, signerCerts };
    } catch (e) {
      // a certificate OpenSSL can carry but not judge (its validity cannot be read, say): the
      // client's chain check fails on it too, so the signature counts as refused
      return { ok: false, problem: `an embedded certificate cannot be parsed (${e instanceof OtapackError ? e.detail ?? e.message : (e as Error).message})`, signerCerts: [] as CertInfo[] };
    }
  });
  const verdict: CmsVerdict = { cms, signatureOk: checked.ok, signatureProblem: checked.problem, signers: [] };
  const infos = cms?.signers ?? [];
  const count = Math.max(infos.length, checked.signerCerts.length);
  for (let i = 0; i < count; i++) {
    const si = infos[i];
    const cert = checked.signerCerts[i] ?? (si && cms ? findSignerCert(cms, si) : undefined);
    verdict.signers.push({ cert, algorithm: si ? describeAlgorithm(si) : 'unknown', signingTime: si?.signingTime });
  }
  if (store) {
    const carried = cms?.certificates ?? [];
    for (const s of verdict.signers) {
      if (s.cert) s.chain = await verifyChain(s.cert, store, carried);
    }
    // the client checks the chain only after every signature verified
    verdict.trusted = verdict.signatureOk && verdict.signers.some((s) => s.chain?.ok);
  }
  return verdict;
}
