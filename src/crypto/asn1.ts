// Thin helpers over node-forge's ASN.1 module. forge works on "binary strings"; these helpers
// keep Buffers at the edges. Only structures are built and read here: every signature and digest
// is computed by node:crypto. Only forge's asn1 and util parts are loaded (the whole library,
// ciphers, TLS and all, would cost several times the start-up of `otapack verify`).
import { createRequire } from 'node:module';
import type * as Forge from 'node-forge';

const require = createRequire(import.meta.url);
require('node-forge/lib/asn1.js'); // registers forge.asn1 (and forge.util, forge.oids)
const forge = require('node-forge/lib/forge.js') as typeof Forge;

export type Asn1 = Forge.asn1.Asn1;
const { asn1 } = forge;
const T = asn1.Type;
const C = asn1.Class;

export const OID = {
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sha1: '1.3.14.3.2.26',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  prime256v1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  authorityKeyIdentifier: '2.5.29.35',
  ekuServerAuth: '1.3.6.1.5.5.7.3.1',
  ekuClientAuth: '1.3.6.1.5.5.7.3.2',
  ekuCodeSigning: '1.3.6.1.5.5.7.3.3',
  ekuEmailProtection: '1.3.6.1.5.5.7.3.4',
  ekuAny: '2.5.29.37.0',
} as const;

export const toBin = (b: Uint8Array): string => Buffer.from(b).toString('binary');
export const fromBin = (s: string): Buffer => Buffer.from(s, 'binary');

export const seq = (items: Asn1[]): Asn1 => asn1.create(C.UNIVERSAL, T.SEQUENCE, true, items);
export const set = (items: Asn1[]): Asn1 => asn1.create(C.UNIVERSAL, T.SET, true, items);
export const oid = (o: string): Asn1 => asn1.create(C.UNIVERSAL, T.OID, false, asn1.oidToDer(o).getBytes());
export const nul = (): Asn1 => asn1.create(C.UNIVERSAL, T.NULL, false, '');
export const octets = (b: Uint8Array): Asn1 => asn1.create(C.UNIVERSAL, T.OCTETSTRING, false, toBin(b));
export const bool = (v: boolean): Asn1 => asn1.create(C.UNIVERSAL, T.BOOLEAN, false, v ? '\xff' : '\x00');
export const utf8 = (s: string): Asn1 => asn1.create(C.UNIVERSAL, T.UTF8, false, forge.util.encodeUtf8(s));
export const ctx = (tag: number, items: Asn1[], constructed = true): Asn1 => asn1.create(C.CONTEXT_SPECIFIC, tag, constructed, items);
export const ctxPrim = (tag: number, bytes: Uint8Array): Asn1 => asn1.create(C.CONTEXT_SPECIFIC, tag, false, toBin(bytes));
export const bitString = (bytes: Uint8Array, unused = 0): Asn1 =>
  asn1.create(C.UNIVERSAL, T.BITSTRING, false, String.fromCharCode(unused) + toBin(bytes));

/** INTEGER from an unsigned big-endian magnitude (adds the leading zero DER needs). */
export function uint(bytes: Uint8Array): Asn1 {
  let b = Buffer.from(bytes);
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return asn1.create(C.UNIVERSAL, T.INTEGER, false, toBin(b));
}
export const smallInt = (n: number): Asn1 => asn1.create(C.UNIVERSAL, T.INTEGER, false, asn1.integerToDer(n).getBytes());

/** UTCTime until 2049, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5). */
export function time(d: Date): Asn1 {
  return d.getUTCFullYear() < 2050
    ? asn1.create(C.UNIVERSAL, T.UTCTIME, false, asn1.dateToUtcTime(d))
    : asn1.create(C.UNIVERSAL, T.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
}

export const algId = (o: string, withNull: boolean): Asn1 => seq(withNull ? [oid(o), nul()] : [oid(o)]);

export const toDer = (a: Asn1): Buffer => fromBin(asn1.toDer(a).getBytes());

/** Parses DER strictly (no trailing bytes). Throws on malformed or excessively nested input. */
export function fromDer(b: Uint8Array): Asn1 {
  const opts = { strict: true, parseAllBytes: true, decodeBitStrings: false };
  return asn1.fromDer(forge.util.createBuffer(toBin(b)), opts as unknown as boolean);
}

export const isSeq = (a: Asn1 | undefined): a is Asn1 & { value: Asn1[] } =>
  !!a && a.tagClass === C.UNIVERSAL && a.type === T.SEQUENCE && Array.isArray(a.value);
export const isSet = (a: Asn1 | undefined): a is Asn1 & { value: Asn1[] } =>
  !!a && a.tagClass === C.UNIVERSAL && a.type === T.SET && Array.isArray(a.value);
export const isCtx = (a: Asn1 | undefined, tag: number): a is Asn1 & { value: Asn1[] } =>
  !!a && a.tagClass === C.CONTEXT_SPECIFIC && a.type === tag && Array.isArray(a.value);

export function readOid(a: Asn1 | undefined): string | undefined {
  if (!a || a.tagClass !== C.UNIVERSAL || a.type !== T.OID || typeof a.value !== 'string') return undefined;
  try {
    return asn1.derToOid(forge.util.createBuffer(a.value));
  } catch {
    return undefined;
  }
}

export function readOctets(a: Asn1 | undefined): Buffer | undefined {
  if (!a || a.tagClass !== C.UNIVERSAL || a.type !== T.OCTETSTRING) return undefined;
  if (typeof a.value === 'string') return fromBin(a.value);
  // BER constructed OCTET STRING: concatenate the parts
  if (Array.isArray(a.value)) {
    const parts = a.value.map(readOctets);
    if (parts.some((p) => !p)) return undefined;
    return Buffer.concat(parts as Buffer[]);
  }
  return undefined;
}

/** A UTCTime or GeneralizedTime; undefined when absent or not a real time (forge yields Invalid Date for "991399…"). */
export function readTime(a: Asn1 | undefined): Date | undefined {
  if (!a || a.tagClass !== C.UNIVERSAL || typeof a.value !== 'string') return undefined;
  let d: Date | undefined;
  try {
    if (a.type === T.UTCTIME) d = asn1.utcTimeToDate(a.value);
    else if (a.type === T.GENERALIZEDTIME) d = asn1.generalizedTimeToDate(a.value);
  } catch {
    return undefined;
  }
  return d && Number.isFinite(d.getTime()) ? d : undefined;
}

export const Type = T;
export const Class = C;
