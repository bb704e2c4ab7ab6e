// Signers: where the private-key operation happens. A file or environment key signs in-process
// with node:crypto; other backends (PKCS#11 token, external command) implement the same shape.
import { sign as cryptoSign, verify as cryptoVerify, createHash, constants, type KeyObject } from 'node:crypto';
import { OtapackError } from '../errors.js';
import { seq, uint, toDer } from './asn1.js';
import { optionName, type OptionNames } from './option-names.js';
import type { CertInfo } from './x509.js';

export type SigScheme = 'pkcs1' | 'pss' | 'ecdsa';

/** One spelling of each signature algorithm for every report. */
export const schemeName = (scheme: SigScheme, hash = 'sha256'): string =>
  `${{ pkcs1: 'RSA PKCS#1 v1.5', pss: 'RSA-PSS', ecdsa: 'ECDSA' }[scheme]} / ${hash.toUpperCase().replace('SHA', 'SHA-')}`;

export interface Signer {
  readonly cert: CertInfo;
  /** Extra certificates to embed after the signer's (intermediates). */
  readonly chain: CertInfo[];
  readonly scheme: SigScheme;
  /** Exact (RSA) or maximum (ECDSA) length of the raw signature value in bytes. */
  readonly signatureLength: number;
  /** Signs `data` with SHA-256 and returns the raw signature value (ECDSA: DER Ecdsa-Sig-Value). */
  sign(data: Buffer): Promise<Buffer>;
  /** For messages: where the key lives (a path, a token, a command), never the key itself. */
  readonly description: string;
  /** Which backend signs: an in-process key, a PKCS#11 token, or an external command. */
  readonly kind?: SignerKind;
}

export type SignerKind = 'key' | 'pkcs11' | 'command';

/** Salt length used for RSA-PSS: the digest length, as RFC 8017 recommends. */
export const PSS_SALT = 32;

/**
 * The signature scheme for a certificate's key. Refuses (KEY) keys otapack cannot sign SWUpdate
 * bundles with: Ed25519, Ed448, DSA, X25519 … (otapack signs RSA PKCS#1 v1.5, RSA-PSS and
 * ECDSA, all with SHA-256), and RSA-PSS keys restricted to other parameters than the SHA-256,
 * MGF1-SHA-256, 32-byte-salt PSS otapack writes (OpenSSL would refuse to sign with them).
 */
export function schemeFor(cert: CertInfo, pss: boolean, names?: OptionNames): SigScheme {
  if (cert.keyType === 'ec') return 'ecdsa';
  if (cert.keyType === 'rsa') return pss ? 'pss' : 'pkcs1';
  if (cert.keyType === 'rsa-pss') {
    const d = cert.x509.publicKey.asymmetricKeyDetails ?? {};
    const wrong = [
      d.hashAlgorithm && d.hashAlgorithm !== 'sha256' ? `digest ${d.hashAlgorithm}` : undefined,
      d.mgf1HashAlgorithm && d.mgf1HashAlgorithm !== 'sha256' ? `MGF1 digest ${d.mgf1HashAlgorithm}` : undefined,
      d.saltLength !== undefined && d.saltLength > PSS_SALT ? `salt length of at least ${d.saltLength} bytes` : undefined,
    ].filter(Boolean);
    if (wrong.length) {
      throw new OtapackError('KEY', `certificate ${cert.subject}: its RSA-PSS key is restricted to ${wrong.join(', ')}; otapack signs RSA-PSS with SHA-256, MGF1-SHA-256 and a ${PSS_SALT}-byte salt (make the key without restrictions, e.g. openssl genpkey -algorithm RSA, and sign with ${optionName(names, 'pss')})`, {
        reason: 'key-restricted', expected: `sha256, mgf1 sha256, salt ${PSS_SALT}`, actual: wrong.join(', '),
      });
    }
    return 'pss';
  }
  throw new OtapackError('KEY', `certificate ${cert.subject}: ${KEY_TYPE_NAMES[cert.keyType] ?? cert.keyType} keys cannot sign SWUpdate bundles; otapack signs with RSA (PKCS#1 v1.5 or PSS) or EC (ECDSA) keys (e.g. ${optionName(names, 'keygenType')} rsa3072 or ec256)`, {
    reason: 'unsupported-key-type', expected: 'rsa, rsa-pss or ec', actual: cert.keyType,
  });
}

const KEY_TYPE_NAMES: Record<string, string> = { ed25519: 'Ed25519', ed448: 'Ed448', dsa: 'DSA', x25519: 'X25519', x448: 'X448', dh: 'DH' };

export function maxSignatureLength(cert: CertInfo): number {
  if (cert.keyType === 'ec') {
    const n = Math.ceil((cert.keyBits ?? 256) / 8);
    // SEQUENCE { INTEGER r, INTEGER s }, each with a possible leading zero
    const intLen = n + 1 + 2;
    const body = 2 * intLen;
    return body + (body < 128 ? 2 : 3);
  }
  return Math.ceil((cert.keyBits ?? 2048) / 8);
}

export class KeyObjectSigner implements Signer {
  readonly signatureLength: number;
  readonly kind = 'key' as const;
  constructor(
    private readonly key: KeyObject,
    readonly cert: CertInfo,
    readonly chain: CertInfo[],
    readonly scheme: SigScheme,
    readonly description: string,
  ) {
    this.signatureLength = maxSignatureLength(cert);
  }

  async sign(data: Buffer): Promise<Buffer> {
    try {
      return this.signWithKey(data);
    } catch (e) {
      // OpenSSL refusing the operation (a restricted or unusable key): name the key, not a stack
      throw new OtapackError('KEY', `${this.description}: the key refused to sign (${(e as Error).message.replace(/^error:[0-9A-F]+:/, '')})`, {
        reason: 'signing-failed', cause: e,
      });
    }
  }

  private signWithKey(data: Buffer): Buffer {
    if (this.scheme === 'pss') {
      return cryptoSign('sha256', data, { key: this.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT });
    }
    if (this.scheme === 'ecdsa') {
      // ECDSA signatures vary in DER length; retry a few times for the maximum length so the
      // bundle writer's reserved space fits exactly (it falls back to a shift copy otherwise).
      let sig = cryptoSign('sha256', data, { key: this.key, dsaEncoding: 'der' });
      for (let i = 0; i < 24 && sig.length !== this.signatureLength; i++) sig = cryptoSign('sha256', data, { key: this.key, dsaEncoding: 'der' });
      return sig;
    }
    return cryptoSign('sha256', data, { key: this.key, padding: constants.RSA_PKCS1_PADDING });
  }
}

// ------------------------------------------------------------ signatures made outside node:crypto

/**
 * What an outside signer is handed: `der`, the DER of the CMS signed attributes (the signer
 * hashes it with SHA-256 and signs, as `openssl pkeyutl -rawin`/`openssl dgst -sign` and most
 * signing services do), or `sha256`, the 32-byte SHA-256 digest of those bytes (for services
 * that sign a precomputed digest: AWS KMS MessageType=DIGEST, Google Cloud KMS, Vault prehashed).
 */
export type SignInput = 'der' | 'sha256';

/** DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1): what RSA PKCS#1 v1.5 pads and signs. */
export const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

export const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/** Short names handed to outside signers ($OTAPACK_SIGN_ALGORITHM) and shown in reports. */
export const algorithmId = (scheme: SigScheme): string => ({ pkcs1: 'rsa-pkcs1-sha256', pss: 'rsa-pss-sha256', ecdsa: 'ecdsa-sha256' }[scheme]);

/** True when `sig` is a raw signature value over `data` (SHA-256) by the certificate's key. */
export function signatureVerifies(cert: CertInfo, scheme: SigScheme, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    const key = cert.x509.publicKey;
    if (scheme === 'pss') return cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT }, sig);
    if (scheme === 'ecdsa') return cryptoVerify('sha256', data, { key, dsaEncoding: 'der' }, sig);
    return cryptoVerify('sha256', data, { key, padding: constants.RSA_PKCS1_PADDING }, sig);
  } catch {
    return false;
  }
}

/** True when `sig` is exactly one DER SEQUENCE of two INTEGERs. */
function isDerEcdsa(sig: Buffer): boolean {
  const readLen = (at: number): [number, number] | undefined => {
    const b = sig[at];
    if (b === undefined) return undefined;
    if (b < 0x80) return [b, at + 1];
    if (b === 0x81 && sig[at + 1] !== undefined) return [sig[at + 1]!, at + 2];
    if (b === 0x82 && sig[at + 2] !== undefined) return [(sig[at + 1]! << 8) | sig[at + 2]!, at + 3];
    return undefined;
  };
  if (sig[0] !== 0x30) return false;
  const outer = readLen(1);
  if (!outer || outer[1] + outer[0] !== sig.length) return false;
  let at = outer[1];
  for (let k = 0; k < 2; k++) {
    if (sig[at] !== 0x02) return false;
    const l = readLen(at + 1);
    if (!l || l[0] === 0) return false;
    at = l[1] + l[0];
  }
  return at === sig.length;
}

/**
 * Brings a raw signature from an outside signer to the form CMS carries: ECDSA as a DER
 * Ecdsa-Sig-Value (PKCS#11 tokens and some services return r||s, IEEE P1363), RSA left-padded
 * to the modulus length (some services drop leading zero bytes).
 */
export function normalizeSignature(cert: CertInfo, scheme: SigScheme, sig: Buffer): Buffer {
  if (scheme === 'ecdsa') {
    if (isDerEcdsa(sig)) return sig;
    const n = Math.ceil((cert.keyBits ?? 256) / 8);
    if (sig.length !== 2 * n) return sig;
    return toDer(seq([uint(sig.subarray(0, n)), uint(sig.subarray(n))]));
  }
  const n = Math.ceil((cert.keyBits ?? 2048) / 8);
  return sig.length < n && sig.length > n - 8 ? Buffer.concat([Buffer.alloc(n - sig.length), sig]) : sig;
}
