// Signers: where the private-key operation happens. A file or environment key signs in-process
// with node:crypto; other backends (PKCS#11 token, external command) implement the same shape.
import { sign as cryptoSign, constants, type KeyObject } from 'node:crypto';
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
}

/** Salt length used for RSA-PSS: the digest length, as RFC 8017 recommends. */
export const PSS_SALT = 32;

export function schemeFor(cert: CertInfo, pss: boolean): SigScheme {
  if (cert.keyType === 'ec') return 'ecdsa';
  if (cert.keyType === 'rsa' || cert.keyType === 'rsa-pss') return pss || cert.keyType === 'rsa-pss' ? 'pss' : 'pkcs1';
  throw new Error(`unsupported key type ${cert.keyType}`);
}

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
