// Key and certificate generation. Certificates are built with node-forge's ASN.1 and signed with
// node:crypto, so RSA and EC keys are handled alike (forge's own X.509 code knows only RSA).
import { generateKeyPairSync, randomBytes, createHash, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  seq, set, oid, utf8, ctx, ctxPrim, smallInt, uint, time, algId, bitString, octets, bool, toDer, fromDer, OID,
  type Asn1,
} from './asn1.js';
import { parseCertificate, certPem, type CertInfo } from './x509.js';

export type KeyType = 'rsa2048' | 'rsa3072' | 'rsa4096' | 'ec256' | 'ec384';

/** Default certificate lifetime: 20 years, longer than most devices stay in the field. */
export const DEFAULT_DAYS = 7300;

export function generateKey(type: KeyType): KeyObject {
  if (type.startsWith('rsa')) {
    return generateKeyPairSync('rsa', { modulusLength: Number(type.slice(3)), publicExponent: 0x10001 }).privateKey;
  }
  return generateKeyPairSync('ec', { namedCurve: type === 'ec256' ? 'prime256v1' : 'secp384r1' }).privateKey;
}

const name = (cn: string, org?: string): Asn1 =>
  seq([
    ...(org ? [set([seq([oid(OID.organizationName), utf8(org)])])] : []),
    set([seq([oid(OID.commonName), utf8(cn)])]),
  ]);

const ext = (id: string, critical: boolean, value: Asn1): Asn1 =>
  seq([oid(id), ...(critical ? [bool(true)] : []), octets(toDer(value))]);

function spkiOf(key: KeyObject): { node: Asn1; keyBits: Buffer } {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const node = fromDer(der);
  const bits = (node.value as Asn1[])[1]!;
  return { node, keyBits: Buffer.from(bits.value as string, 'binary').subarray(1) };
}

const sigAlgFor = (key: KeyObject): Asn1 =>
  key.asymmetricKeyType === 'ec' ? algId(OID.ecdsaSha256, false) : algId(OID.sha256WithRSA, true);

export interface CertRequest {
  subjectKey: KeyObject; // the private key; its public half goes in the certificate
  cn: string;
  org?: string;
  days: number;
  notBefore?: Date;
  ca: boolean;
  issuer?: { key: KeyObject; cert: CertInfo };
}

export function makeCertificate(r: CertRequest): CertInfo {
  const { node: spki, keyBits } = spkiOf(r.subjectKey);
  const ski = createHash('sha1').update(keyBits).digest();
  const notBefore = r.notBefore ?? new Date(Date.now() - 86_400_000); // a day of slack for clock skew
  const notAfter = new Date(notBefore.getTime() + r.days * 86_400_000);
  const signingKey = r.issuer?.key ?? r.subjectKey;
  const issuerName = r.issuer ? subjectNodeOf(r.issuer.cert) : name(r.cn, r.org);
  const aki = r.issuer?.cert.subjectKeyId ?? ski;
  const exts = r.ca
    ? [
        ext(OID.basicConstraints, true, seq([bool(true)])),
        ext(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)), // keyCertSign, cRLSign
        ext(OID.subjectKeyIdentifier, false, octets(ski)),
      ]
    : [
        ext(OID.basicConstraints, true, seq([])),
        ext(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)), // digitalSignature
        ext(OID.extKeyUsage, false, seq([oid(OID.ekuEmailProtection), oid(OID.ekuCodeSigning)])),
        ext(OID.subjectKeyIdentifier, false, octets(ski)),
        ext(OID.authorityKeyIdentifier, false, seq([ctxPrim(0, aki)])),
      ];
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const tbs = seq([
    ctx(0, [smallInt(2)]),
    uint(serial),
    sigAlgFor(signingKey),
    issuerName,
    seq([time(notBefore), time(notAfter)]),
    name(r.cn, r.org),
    spki,
    ctx(3, [seq(exts)]),
  ]);
  const tbsDer = toDer(tbs);
  const sig = cryptoSign('sha256', tbsDer, signingKey.asymmetricKeyType === 'ec' ? { key: signingKey, dsaEncoding: 'der' } : signingKey);
  const der = toDer(seq([tbs, sigAlgFor(signingKey), bitString(sig)]));
  return parseCertificate(der, 'generated certificate');
}

/** The subject Name node of a parsed certificate (what a child's issuer field must equal). */
function subjectNodeOf(c: CertInfo): Asn1 {
  const root = fromDer(c.der);
  const tbs = (root.value as Asn1[])[0]!.value as Asn1[];
  const i = (tbs[0]!.tagClass === 0x80) ? 1 : 0;
  return tbs[i + 4]!;
}

export interface KeySet {
  signingKey: KeyObject;
  signingCert: CertInfo;
  ca?: { key: KeyObject; cert: CertInfo };
  aes: { key: Buffer; iv: Buffer };
}

export function generateKeySet(opts: { cn: string; org?: string; days: number; type: KeyType; ca: boolean }): KeySet {
  const signingKey = generateKey(opts.type);
  let ca: KeySet['ca'];
  let signingCert: CertInfo;
  if (opts.ca) {
    const caKey = generateKey(opts.type);
    const caCert = makeCertificate({ subjectKey: caKey, cn: `${opts.cn} CA`, org: opts.org, days: opts.days, ca: true });
    ca = { key: caKey, cert: caCert };
    signingCert = makeCertificate({
      subjectKey: signingKey, cn: opts.cn, org: opts.org, days: opts.days, ca: false,
      issuer: { key: caKey, cert: caCert },
    });
  } else {
    signingCert = makeCertificate({ subjectKey: signingKey, cn: opts.cn, org: opts.org, days: opts.days, ca: false });
  }
  return { signingKey, signingCert, ca, aes: { key: randomBytes(32), iv: randomBytes(16) } };
}

export const privateKeyPem = (k: KeyObject, passphrase?: string): string =>
  passphrase
    ? (k.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase }) as string)
    : (k.export({ format: 'pem', type: 'pkcs8' }) as string);

export const aesKeyLine = (a: { key: Buffer; iv: Buffer }): string => `${a.key.toString('hex')} ${a.iv.toString('hex')}\n`;

export { certPem };
