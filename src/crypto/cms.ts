// CMS SignedData (RFC 5652), detached, DER: the shape `openssl cms -sign -binary -nosmimecap
// -outform DER` produces and SWUpdate's CMS_verify accepts. node-forge's ASN.1 builds and reads
// the structure; node:crypto computes digests and signatures.
import { createHash } from 'node:crypto';
import {
  seq, set, oid, octets, ctx, smallInt, time, algId, toDer, fromDer, readOid, readOctets, readTime,
  isSeq, isSet, isCtx, Type, Class, OID, fromBin, type Asn1,
} from './asn1.js';
import { parseCertificate, issuerAndSerialDer, type CertInfo } from './x509.js';
import { PSS_SALT, schemeName, type Signer } from './signer.js';

const HASH_OIDS: Record<string, string> = { [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512', [OID.sha1]: 'sha1' };

function pssParams(): Asn1 {
  const sha = algId(OID.sha256, true);
  return seq([ctx(0, [sha]), ctx(1, [seq([oid(OID.mgf1), sha])]), ctx(2, [smallInt(PSS_SALT)])]);
}

function signatureAlgorithm(signer: Signer): Asn1 {
  if (signer.scheme === 'pss') return seq([oid(OID.rsassaPss), pssParams()]);
  if (signer.scheme === 'ecdsa') return algId(OID.ecdsaSha256, false);
  return algId(OID.rsaEncryption, true);
}

/** The signed attributes, as the SET whose DER is what gets signed. */
export function signedAttributes(content: Uint8Array, signingTime: Date): Asn1 {
  const digest = createHash('sha256').update(content).digest();
  return set([
    seq([oid(OID.contentType), set([oid(OID.data)])]),
    seq([oid(OID.signingTime), set([time(signingTime)])]),
    seq([oid(OID.messageDigest), set([octets(digest)])]),
  ]);
}

function certNode(c: CertInfo): Asn1 {
  const n = fromDer(c.der);
  if (!toDer(n).equals(c.der)) throw new Error(`certificate ${c.subject} is not in DER form`);
  return n;
}

export function assembleSignedData(signer: Signer, attrs: Asn1, signature: Uint8Array): Buffer {
  const sid = seq([signer.cert.issuerNode, signer.cert.serialNode]);
  // [0] IMPLICIT SET: same content as the signed SET, context tag 0
  const implicitAttrs = ctx(0, attrs.value as Asn1[]);
  const signerInfo = seq([
    smallInt(1),
    sid,
    algId(OID.sha256, false),
    implicitAttrs,
    signatureAlgorithm(signer),
    octets(signature),
  ]);
  const certs = [signer.cert, ...signer.chain].map(certNode);
  const signedData = seq([
    smallInt(1),
    set([algId(OID.sha256, false)]),
    seq([oid(OID.data)]),
    ctx(0, certs),
    set([signerInfo]),
  ]);
  return toDer(seq([oid(OID.signedData), ctx(0, [signedData])]));
}

/** Signs `content`: returns the DER CMS blob. */
export async function signCms(content: Uint8Array, signer: Signer, signingTime: Date): Promise<Buffer> {
  const attrs = signedAttributes(content, signingTime);
  const sig = await signer.sign(toDer(attrs));
  return assembleSignedData(signer, attrs, sig);
}

/** Size the CMS blob will have (exact for RSA, the maximum for ECDSA). */
export function predictCmsSize(content: Uint8Array, signer: Signer, signingTime: Date): number {
  return assembleSignedData(signer, signedAttributes(content, signingTime), Buffer.alloc(signer.signatureLength, 0x7f)).length;
}

// ------------------------------------------------------------------------------------ parsing

export interface ParsedSignerInfo {
  /** Identifies the signer cert: IssuerAndSerialNumber DER, or a SubjectKeyIdentifier. */
  issuerSerialDer?: Buffer;
  subjectKeyId?: Buffer;
  digestAlg: string | undefined; // sha256 …
  signedAttrsDer?: Buffer; // re-tagged as SET, what was signed
  contentType?: string;
  messageDigest?: Buffer;
  signingTime?: Date;
  sigAlgOid: string | undefined;
  sigAlgParams?: Asn1;
  signature: Buffer;
}

export interface ParsedCms {
  certificates: CertInfo[];
  signers: ParsedSignerInfo[];
  eContent?: Buffer;
}

export class CmsFormatError extends Error {}

/** Parses a DER CMS SignedData. Throws CmsFormatError with a reason on anything unexpected. */
export function parseCms(der: Uint8Array): ParsedCms {
  let root: Asn1;
  try {
    root = fromDer(der);
  } catch (e) {
    throw new CmsFormatError(`not DER-encoded ASN.1 (${(e as Error).message.split('\n')[0]})`);
  }
  const bad = (why: string): never => { throw new CmsFormatError(why); };
  if (!isSeq(root) || readOid(root.value[0]) !== OID.signedData || !isCtx(root.value[1], 0)) bad('not a CMS SignedData ContentInfo');
  const sd = (root.value[1] as Asn1 & { value: Asn1[] }).value[0] as Asn1 | undefined;
  if (!isSeq(sd)) bad('SignedData is not a SEQUENCE');
  const parts = (sd as Asn1 & { value: Asn1[] }).value as Asn1[];
  const encap = parts[2];
  if (!isSeq(encap)) bad('encapContentInfo missing');
  let eContent: Buffer | undefined;
  const ec = (encap as Asn1 & { value: Asn1[] }).value[1] as Asn1 | undefined;
  if (ec && isCtx(ec, 0)) eContent = readOctets(ec.value[0]) ?? bad('encapsulated content is not an OCTET STRING');
  const certificates: CertInfo[] = [];
  let signerSet: Asn1 | undefined;
  for (const p of parts.slice(3)) {
    if (isCtx(p, 0)) {
      for (const c of p.value) {
        if (!isSeq(c)) continue; // other certificate formats are ignored
        try {
          certificates.push(parseCertificate(toDer(c), 'certificate in the signature'));
        } catch {
          bad('an embedded certificate cannot be parsed');
        }
      }
    } else if (isSet(p)) signerSet = p;
  }
  if (!signerSet || !isSet(signerSet) || signerSet.value.length === 0) bad('no SignerInfo');
  const signers = (signerSet as Asn1 & { value: Asn1[] }).value.map((si): ParsedSignerInfo => {
    if (!isSeq(si)) return bad('SignerInfo is not a SEQUENCE');
    const v = si.value;
    const out: ParsedSignerInfo = { digestAlg: undefined, sigAlgOid: undefined, signature: Buffer.alloc(0) };
    const sid = v[1];
    if (isSeq(sid)) out.issuerSerialDer = Buffer.concat(sid.value.map(toDer));
    else if (sid && sid.tagClass === Class.CONTEXT_SPECIFIC && sid.type === 0 && typeof sid.value === 'string') out.subjectKeyId = fromBin(sid.value);
    else bad('SignerInfo has no signer identifier');
    out.digestAlg = isSeq(v[2]) ? HASH_OIDS[readOid(v[2].value[0]) ?? ''] ?? readOid(v[2].value[0]) : undefined;
    let i = 3;
    if (isCtx(v[3], 0)) {
      const attrs = v[3].value;
      out.signedAttrsDer = toDer(set(attrs));
      for (const a of attrs) {
        if (!isSeq(a)) continue;
        const type = readOid(a.value[0]);
        const vals = isSet(a.value[1]) ? a.value[1].value : [];
        if (type === OID.contentType) out.contentType = readOid(vals[0]);
        else if (type === OID.messageDigest) out.messageDigest = readOctets(vals[0]);
        else if (type === OID.signingTime) out.signingTime = readTime(vals[0]);
      }
      i = 4;
    }
    const alg = v[i];
    if (!isSeq(alg)) bad('SignerInfo has no signature algorithm');
    out.sigAlgOid = readOid((alg as Asn1 & { value: Asn1[] }).value[0]);
    out.sigAlgParams = (alg as Asn1 & { value: Asn1[] }).value[1];
    out.signature = readOctets(v[i + 1]) ?? bad('SignerInfo signature is not an OCTET STRING');
    return out;
  });
  return { certificates, signers, eContent };
}

export function findSignerCert(cms: ParsedCms, si: ParsedSignerInfo): CertInfo | undefined {
  return cms.certificates.find((c) =>
    si.issuerSerialDer ? issuerAndSerialDer(c).equals(si.issuerSerialDer) : si.subjectKeyId && c.subjectKeyId?.equals(si.subjectKeyId));
}

function pssSaltFromParams(p: Asn1 | undefined): { hash: string; salt: number } {
  let hash = 'sha1';
  let salt = 20;
  if (isSeq(p)) {
    for (const f of p.value) {
      if (isCtx(f, 0) && isSeq(f.value[0])) hash = HASH_OIDS[readOid(f.value[0].value[0]) ?? ''] ?? hash;
      if (isCtx(f, 2) && f.value[0] && f.value[0].type === Type.INTEGER && typeof f.value[0].value === 'string') {
        salt = parseInt(Buffer.from(f.value[0].value, 'binary').toString('hex'), 16);
      }
    }
  }
  return { hash, salt };
}

/** Signing-key type and signature algorithm in words, for reports. */
export function describeAlgorithm(si: ParsedSignerInfo): string {
  if (si.sigAlgOid === OID.rsassaPss) return schemeName('pss', pssSaltFromParams(si.sigAlgParams).hash);
  return schemeName(si.sigAlgOid?.startsWith('1.2.840.10045') ? 'ecdsa' : 'pkcs1', si.digestAlg ?? '?');
}
