// Keys for Mender artifacts. Mender signs the manifest bytes directly (no CMS, no certificate):
// RSA PKCS#1 v1.5 over SHA-256, or ECDSA over SHA-256 on P-256 with the raw r||s value (64
// bytes), each base64 in manifest.sig; the device checks it against one public key
// (ArtifactVerifyKey, a PEM SubjectPublicKeyInfo). Every signer backend (key file or
// $OTAPACK_SIGNING_KEY, PKCS#11, --sign-command) works; a key file needs no certificate here.
import { createPublicKey, sign as cryptoSign, verify as cryptoVerify, constants, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OtapackError, fileError } from '../../errors.js';
import { ENV, readSecret, parsePrivateKey } from '../../crypto/keys.js';
import { resolveSigner, type SignerOptions } from '../../crypto/resolve-signer.js';
import { optionName } from '../../crypto/option-names.js';
import type { Signer } from '../../crypto/signer.js';
import type { ManifestSigner } from './artifact.js';

/** What Mender verifies: RSA of any size, or EC on P-256 only. */
function algorithmOf(key: KeyObject, origin: string): { algorithm: 'rsa' | 'ecdsa'; rawLength: number } {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') return { algorithm: 'rsa', rawLength: Math.ceil((d.modulusLength ?? 2048) / 8) };
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve !== 'prime256v1') {
      throw new OtapackError('KEY', `${origin}: an EC key on ${d.namedCurve ?? 'an unknown curve'}; Mender verifies ECDSA on P-256 (prime256v1) only`, { reason: 'unsupported-curve', expected: 'prime256v1', actual: d.namedCurve });
    }
    return { algorithm: 'ecdsa', rawLength: 64 };
  }
  throw new OtapackError('KEY', `${origin}: a ${key.asymmetricKeyType} key; Mender verifies RSA (PKCS#1 v1.5) and ECDSA P-256 signatures only`, { reason: 'unsupported-key-type', expected: 'rsa or ec', actual: key.asymmetricKeyType });
}

const spkiPem = (k: KeyObject): string => String(k.export({ type: 'spki', format: 'pem' }));

/** r||s (32 bytes each) from a DER Ecdsa-Sig-Value; raw input is passed through. */
export function ecdsaRaw(sig: Buffer): Buffer {
  if (sig.length === 64) return sig;
  const fail = (): never => { throw new OtapackError('KEY', 'the signer returned an ECDSA signature that is neither DER nor 64 raw bytes', { reason: 'bad-signature-encoding' }); };
  if (sig[0] !== 0x30) fail();
  let at = 2;
  if (sig[1]! & 0x80) at = 2 + (sig[1]! & 0x7f);
  const ints: Buffer[] = [];
  for (let k = 0; k < 2; k++) {
    if (sig[at] !== 0x02) fail();
    const len = sig[at + 1]!;
    let v = sig.subarray(at + 2, at + 2 + len);
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    if (v.length > 32) fail();
    ints.push(Buffer.concat([Buffer.alloc(32 - v.length), v]));
    at += 2 + len;
  }
  return Buffer.concat(ints);
}

/** A Mender manifest signer from one of otapack's signers (it carries a certificate). */
export function manifestSignerFrom(s: Signer): ManifestSigner {
  if (s.scheme === 'pss') throw new OtapackError('KEY', `${s.description}: Mender verifies RSA PKCS#1 v1.5 signatures, not RSA-PSS (drop --pss)`, { reason: 'unsupported-scheme' });
  const pub = s.cert.x509.publicKey;
  const { algorithm, rawLength } = algorithmOf(pub, `certificate ${s.cert.subject}`);
  return {
    algorithm, rawLength, publicKeyPem: spkiPem(pub), description: s.description, kind: s.kind ?? 'key', subject: s.cert.subject,
    async sign(manifest) {
      const sig = await s.sign(manifest);
      if (algorithm === 'ecdsa') return ecdsaRaw(sig);
      return sig.length < rawLength ? Buffer.concat([Buffer.alloc(rawLength - sig.length), sig]) : sig;
    },
  };
}

/** A Mender manifest signer from a private key alone. */
export function manifestSignerFromKey(key: KeyObject, origin: string): ManifestSigner {
  const pub = createPublicKey(key);
  const { algorithm, rawLength } = algorithmOf(pub, origin);
  return {
    algorithm, rawLength, publicKeyPem: spkiPem(pub), description: origin, kind: 'key',
    async sign(manifest) {
      try {
        return algorithm === 'ecdsa'
          ? cryptoSign('sha256', manifest, { key, dsaEncoding: 'ieee-p1363' })
          : cryptoSign('sha256', manifest, { key, padding: constants.RSA_PKCS1_PADDING });
      } catch (e) {
        throw new OtapackError('KEY', `${origin}: the key refused to sign (${(e as Error).message})`, { reason: 'signing-failed', cause: e });
      }
    },
  };
}

/**
 * The signer for a .mender from the usual signing options. A key file (or $OTAPACK_SIGNING_KEY)
 * without a certificate signs on its own; with a certificate, a pkcs11: key or --sign-command
 * the options go through resolveSigner like a bundle's.
 */
export async function resolveManifestSigner(o: SignerOptions): Promise<ManifestSigner | undefined> {
  const env = o.env ?? process.env;
  const certGiven = o.cert !== undefined || (env[ENV.cert] ?? '').trim() !== '';
  const keyRef = o.key ?? env[ENV.key];
  if (!certGiven && o.signCommand === undefined && !(keyRef && /^pkcs11:/i.test(keyRef))) {
    if (o.chain) throw new OtapackError('USAGE', `${optionName(o.names, 'chain')} needs a certificate; a Mender artifact carries no certificates`);
    const secret = await readSecret(o.key, ENV.key, env);
    if (!secret) return undefined;
    return manifestSignerFromKey(parsePrivateKey(secret, env[ENV.passphrase]), secret.origin);
  }
  const s = await resolveSigner(o);
  return s ? manifestSignerFrom(s) : undefined;
}

/** A public key to verify against, from a PEM public key or certificate (the first one in the file). */
export interface TrustKey { key: KeyObject; origin: string; pem: string; algorithm: 'rsa' | 'ecdsa'; rawLength: number }

export async function loadTrustKey(path: string): Promise<TrustKey> {
  const data = await readFile(path).catch((e) => { throw fileError('KEY', path, e); });
  return parseTrustKey(data, path);
}

export function parseTrustKey(data: Buffer, origin: string): TrustKey {
  const text = data.toString('latin1');
  let key: KeyObject | undefined;
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  try {
    if (/-----BEGIN (RSA |EC )?PUBLIC KEY-----/.test(text)) key = createPublicKey(text);
    else if (cert) key = new X509Certificate(cert[0]).publicKey;
    else if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
      throw new OtapackError('KEY', `${origin}: a private key; give the public key (openssl pkey -pubout) or a certificate`, { reason: 'not-a-public-key' });
    } else {
      key = createPublicKey({ key: data, format: 'der', type: 'spki' });
    }
  } catch (e) {
    if (e instanceof OtapackError) throw e;
    throw new OtapackError('KEY', `${origin}: not a PEM public key or certificate (${(e as Error).message})`, { reason: 'not-a-public-key', cause: e });
  }
  const { algorithm, rawLength } = algorithmOf(key, origin);
  return { key, origin, pem: spkiPem(key), algorithm, rawLength };
}

/**
 * Mender's verdict on a manifest.sig (mender-artifact's PKISigner.Verify): base64 (Go's
 * StdEncoding, which skips newlines) of an RSA PKCS#1 v1.5 signature, or of exactly 64 bytes r||s.
 */
export function verifyManifestSignature(manifest: Buffer, sigText: Buffer, trust: TrustKey): { ok: true } | { ok: false; reason: string } {
  const b64 = sigText.toString('latin1').replace(/[\r\n]/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return { ok: false, reason: 'manifest.sig is not base64' };
  const raw = Buffer.from(b64, 'base64');
  if (trust.algorithm === 'ecdsa') {
    if (raw.length !== 64) return { ok: false, reason: `an ECDSA signature of ${raw.length} bytes (Mender expects 64: r||s), or a signature by another kind of key` };
    return cryptoVerify('sha256', manifest, { key: trust.key, dsaEncoding: 'ieee-p1363' }, raw) ? { ok: true } : { ok: false, reason: 'ECDSA verification failed (another key, or the manifest changed)' };
  }
  // Go's rsa.VerifyPKCS1v15 wants exactly the modulus length
  if (raw.length !== trust.rawLength) return { ok: false, reason: `an RSA signature of ${raw.length} bytes for a ${trust.rawLength * 8}-bit key` };
  let ok = false;
  try {
    ok = cryptoVerify('sha256', manifest, { key: trust.key, padding: constants.RSA_PKCS1_PADDING }, raw);
  } catch {
    ok = false;
  }
  return ok ? { ok: true } : { ok: false, reason: 'RSA verification failed (another key, or the manifest changed)' };
}
