// Reading certificates: node:crypto's X509Certificate for validity, keys and issuance checks, and
// a small ASN.1 walk (node-forge) for what Node does not expose: the issuer Name and serial as
// DER (for CMS), key-usage bits, basic constraints and EKU OIDs.
import { X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { OtapackError } from '../errors.js';
import { fromDer, toDer, readOid, readOctets, isSeq, isCtx, Type, Class, type Asn1, OID, fromBin } from './asn1.js';

export interface CertInfo {
  der: Buffer;
  x509: X509Certificate;
  version: number;
  subject: string;
  issuer: string;
  /** DER of the issuer Name and the serial INTEGER, for CMS IssuerAndSerialNumber. */
  issuerNode: Asn1;
  serialNode: Asn1;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** KU bits by name when the extension is present. */
  keyUsage?: Set<string>;
  keyUsageCritical: boolean;
  extKeyUsage?: string[];
  isCA?: boolean; // basicConstraints cA, undefined when the extension is absent
  subjectKeyId?: Buffer;
  selfIssued: boolean;
  fingerprint: string;
  keyType: string; // rsa, ec, rsa-pss, ed25519
  keyBits?: number;
}

const KU_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];

export function splitPem(text: string, label = 'CERTIFICATE'): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+?)-----END ${label}-----`, 'g');
  const out: Buffer[] = [];
  for (const m of text.matchAll(re)) out.push(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  return out;
}

/** Certificates from PEM text (one or more) or a single DER blob. `what` names the source in errors. */
export function parseCertificates(data: Buffer, what: string): CertInfo[] {
  const text = data.toString('latin1');
  const ders = text.includes('-----BEGIN') ? splitPem(text) : [data];
  if (ders.length === 0) throw new OtapackError('KEY', `${what}: no PEM CERTIFICATE block found`, { reason: 'not-a-certificate', expected: 'PEM CERTIFICATE' });
  return ders.map((d, i) => parseCertificate(d, ders.length > 1 ? `${what} (certificate ${i + 1})` : what));
}

export function parseCertificate(der: Buffer, what: string): CertInfo {
  let x509: X509Certificate;
  let root: Asn1;
  try {
    x509 = new X509Certificate(der);
    root = fromDer(der);
  } catch {
    throw new OtapackError('KEY', `${what}: not an X.509 certificate`, { reason: 'not-a-certificate' });
  }
  if (!isSeq(root) || !isSeq(root.value[0])) throw new OtapackError('KEY', `${what}: not an X.509 certificate`, { reason: 'not-a-certificate' });
  // A certificate is embedded in signatures byte for byte and its own signature covers its
  // encoding: only DER has one encoding. BER (indefinite or long-form lengths …) is refused here
  // rather than failing later inside the CMS writer.
  if (!toDer(root).equals(der)) {
    throw new OtapackError('KEY', `${what}: BER-encoded, not DER (re-encode it with openssl x509 -in CERT -out NEW.pem, or have it reissued)`, {
      reason: 'ber-encoding', expected: 'DER', actual: 'BER',
    });
  }
  // OpenSSL refuses a certificate whose validity it cannot read ("format error in certificate's
  // notBefore field"): so does otapack, before an Invalid Date reaches a comparison or a report
  const notBefore = new Date(x509.validFrom);
  const notAfter = new Date(x509.validTo);
  if (!Number.isFinite(notBefore.getTime()) || !Number.isFinite(notAfter.getTime())) {
    throw new OtapackError('KEY', `${what}: its validity dates cannot be read (notBefore "${x509.validFrom}", notAfter "${x509.validTo}")`, {
      reason: 'bad-validity', actual: `${x509.validFrom} - ${x509.validTo}`,
    });
  }
  // Node throws on first use of a public key OpenSSL cannot decode (an unknown algorithm): here, once
  let publicKey: KeyObject;
  try {
    publicKey = x509.publicKey;
  } catch {
    throw new OtapackError('KEY', `${what}: its public key cannot be read (an algorithm OpenSSL does not know)`, { reason: 'unsupported-key-type' });
  }
  // an empty subject or issuer Name is legal DER; Node gives undefined for it
  const subject = (x509.subject ?? '').replace(/\n/g, ', ');
  const issuer = (x509.issuer ?? '').replace(/\n/g, ', ');
  const tbs = root.value[0].value;
  let i = 0;
  if (isCtx(tbs[0], 0)) i = 1; // explicit version
  const serialNode = tbs[i]!;
  const issuerNode = tbs[i + 2]!;
  const extsWrap = tbs.find((n) => isCtx(n, 3));
  const info: CertInfo = {
    der,
    x509,
    version: i === 1 ? 3 : 1,
    subject: subject || '(empty subject)',
    issuer: issuer || '(empty issuer)',
    issuerNode,
    serialNode,
    serialHex: x509.serialNumber,
    notBefore,
    notAfter,
    keyUsageCritical: false,
    selfIssued: subject === issuer,
    fingerprint: createHash('sha256').update(der).digest('hex'),
    keyType: publicKey.asymmetricKeyType ?? 'unknown',
  };
  const det = publicKey.asymmetricKeyDetails;
  if (det?.modulusLength) info.keyBits = det.modulusLength;
  if (det?.namedCurve) info.keyBits = det.namedCurve === 'prime256v1' ? 256 : det.namedCurve === 'secp384r1' ? 384 : det.namedCurve === 'secp521r1' ? 521 : undefined;
  const exts = extsWrap && isSeq(extsWrap.value[0]) ? extsWrap.value[0].value : [];
  for (const ext of exts) {
    if (!isSeq(ext)) continue;
    const id = readOid(ext.value[0]);
    const critical = ext.value.length === 3 && ext.value[1]!.type === Type.BOOLEAN && ext.value[1]!.value !== '\x00';
    const body = readOctets(ext.value[ext.value.length - 1]);
    if (!id || !body) continue;
    let inner: Asn1;
    try { inner = fromDer(body); } catch { continue; }
    if (id === OID.keyUsage && inner.type === Type.BITSTRING && typeof inner.value === 'string') {
      const bytes = fromBin(inner.value).subarray(1);
      const set = new Set<string>();
      KU_BITS.forEach((name, bit) => {
        const byte = bytes[bit >> 3];
        if (byte !== undefined && byte & (0x80 >> (bit & 7))) set.add(name);
      });
      info.keyUsage = set;
      info.keyUsageCritical = critical;
    } else if (id === OID.extKeyUsage && isSeq(inner)) {
      info.extKeyUsage = inner.value.map((o) => readOid(o) ?? '?');
    } else if (id === OID.basicConstraints && isSeq(inner)) {
      const ca = inner.value[0];
      info.isCA = !!ca && ca.tagClass === Class.UNIVERSAL && ca.type === Type.BOOLEAN && ca.value !== '\x00';
    } else if (id === OID.subjectKeyIdentifier) {
      info.subjectKeyId = readOctets(inner);
    }
  }
  return info;
}

export const certPem = (der: Buffer): string =>
  `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;

/** Subject CN for messages. */
export const commonName = (c: CertInfo): string => /CN=([^,\n]+)/.exec(c.subject)?.[1] ?? c.subject;

export const issuerAndSerialDer = (c: CertInfo): Buffer => Buffer.concat([toDer(c.issuerNode), toDer(c.serialNode)]);

/** Days until the certificate expires (negative when expired). */
export const daysLeft = (c: CertInfo, now: Date): number => Math.floor((c.notAfter.getTime() - now.getTime()) / 86_400_000);
