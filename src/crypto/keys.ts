// Loading secrets: signing keys, certificates and AES keys, from a file or from an environment
// variable (for CI). Error messages name the file or the variable, never any of its content.
import { readFile } from 'node:fs/promises';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { OtapackError, errnoOf, fileError } from '../errors.js';
import { parseCertificates, type CertInfo } from './x509.js';

export const ENV = {
  key: 'OTAPACK_SIGNING_KEY',
  cert: 'OTAPACK_SIGNING_CERT',
  aes: 'OTAPACK_AES_KEY',
  passphrase: 'OTAPACK_KEY_PASSPHRASE',
} as const;

export interface Secret {
  data: Buffer;
  /** Where it came from, for messages: a path or "$OTAPACK_…". */
  origin: string;
}

/** Whether a variable's value is the secret itself (PEM, an AES key line) rather than a path to it. */
const isSecretText = (v: string): boolean =>
  v.includes('-----BEGIN') || /^\s*[0-9a-fA-F]{32,64}\s+[0-9a-fA-F]{32}\s*$/.test(v) || /^\s*key\s*=/.test(v);

/** The file readSecret would read (the path, or the one the variable names), if any. */
export function secretPath(path: string | undefined, envName: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (path) return path;
  const v = envName ? env[envName] : undefined;
  return v === undefined || v.trim() === '' || isSecretText(v) ? undefined : v.trim();
}

/** From an explicit path, else from the environment variable (its text, or a path it names). */
export async function readSecret(path: string | undefined, envName: string, env: NodeJS.ProcessEnv = process.env): Promise<Secret | undefined> {
  if (path) {
    try {
      return { data: await readFile(path), origin: path };
    } catch (e) {
      throw fileError('KEY', path, e);
    }
  }
  const v = env[envName];
  if (v === undefined || v.trim() === '') return undefined;
  if (isSecretText(v)) return { data: Buffer.from(v), origin: `$${envName}` };
  try {
    return { data: await readFile(v.trim()), origin: `${v.trim()} (from $${envName})` };
  } catch (e) {
    throw new OtapackError('KEY', `$${envName}: neither key text nor a readable file (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { reason: errnoOf(e) });
  }
}

export function parsePrivateKey(s: Secret, passphrase?: string): KeyObject {
  const text = s.data.toString('latin1');
  const isPem = text.includes('-----BEGIN');
  if (isPem && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    const found = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1] ?? 'other PEM data';
    throw new OtapackError('KEY', `${s.origin}: not a private key (found ${found})`, { reason: 'not-a-private-key', expected: 'PRIVATE KEY', actual: found });
  }
  const encrypted = /ENCRYPTED/.test(text);
  try {
    const opts = isPem
      ? { key: text, format: 'pem' as const, passphrase: passphrase ?? '' }
      : { key: s.data, format: 'der' as const, type: 'pkcs8' as const, passphrase: passphrase ?? '' };
    return createPrivateKey(opts);
  } catch (e) {
    if (!isPem) {
      for (const type of ['pkcs1', 'sec1'] as const) {
        try { return createPrivateKey({ key: s.data, format: 'der', type }); } catch { /* next */ }
      }
    }
    if (encrypted && (passphrase === undefined || passphrase === '')) {
      throw new OtapackError('KEY', `${s.origin}: the key is encrypted; give its passphrase in $${ENV.passphrase}`, { reason: 'key-encrypted' });
    }
    // OpenSSL's error code, not its text: a wrong passphrase fails the decryption
    const code = (e as { code?: string }).code;
    if (encrypted || code === 'ERR_OSSL_BAD_DECRYPT' || code === 'ERR_MISSING_PASSPHRASE') {
      throw new OtapackError('KEY', `${s.origin}: wrong passphrase for the encrypted key`, { reason: 'wrong-passphrase' });
    }
    throw new OtapackError('KEY', `${s.origin}: not a usable private key (PEM or DER, PKCS#1, PKCS#8 or SEC1 expected)`, { reason: 'not-a-private-key' });
  }
}

export async function loadPrivateKey(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<KeyObject | undefined> {
  const s = await readSecret(path, ENV.key, env);
  if (!s) return undefined;
  return parsePrivateKey(s, env[ENV.passphrase]);
}

export async function loadCertificates(path: string | undefined, envName: string | undefined, what: string, env: NodeJS.ProcessEnv = process.env): Promise<CertInfo[] | undefined> {
  const s = path || envName ? await readSecret(path, envName ?? '', env) : undefined;
  if (!s) return undefined;
  return parseCertificates(s.data, `${what} ${s.origin}`);
}

/** Checks that a private key and a certificate belong together. */
export function assertKeyMatchesCert(key: KeyObject, cert: CertInfo, keyOrigin: string): void {
  const a = createPublicKey(key).export({ format: 'der', type: 'spki' });
  const b = cert.x509.publicKey.export({ format: 'der', type: 'spki' });
  if (!a.equals(b)) throw new OtapackError('KEY', `${keyOrigin}: the private key does not match the certificate ${cert.subject}`, { reason: 'key-cert-mismatch' });
}

export interface AesKey {
  key: Buffer;
  iv: Buffer;
  origin: string;
}

/** SWUpdate's -K format: one line "<key hex> <iv hex>"; swugenerator's key=/iv= lines are accepted too. */
export function parseAesKey(s: Secret): AesKey {
  const text = s.data.toString('latin1');
  let keyHex: string | undefined;
  let ivHex: string | undefined;
  const kv = /^\s*key\s*=\s*([0-9a-fA-F]+)\s*$/m.exec(text);
  const iv = /^\s*iv\s*=\s*([0-9a-fA-F]+)\s*$/m.exec(text);
  if (kv && iv) {
    keyHex = kv[1];
    ivHex = iv[1];
  } else {
    const parts = text.trim().split(/\s+/);
    if (parts.length === 2) [keyHex, ivHex] = parts;
  }
  const fmt = `expected one line "<64 hex digits key> <32 hex digits IV>" (SWUpdate's -K format)`;
  if (!keyHex || !ivHex || !/^[0-9a-fA-F]+$/.test(keyHex) || !/^[0-9a-fA-F]+$/.test(ivHex)) {
    throw new OtapackError('KEY', `AES key ${s.origin}: ${fmt}`);
  }
  if (![32, 48, 64].includes(keyHex.length)) throw new OtapackError('KEY', `AES key ${s.origin}: key has ${keyHex.length} hex digits, ${fmt}`);
  if (ivHex.length !== 32) throw new OtapackError('KEY', `AES key ${s.origin}: IV has ${ivHex.length} hex digits, ${fmt}`);
  return { key: Buffer.from(keyHex, 'hex'), iv: Buffer.from(ivHex, 'hex'), origin: s.origin };
}

export async function loadAesKey(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<AesKey | undefined> {
  const s = await readSecret(path, ENV.aes, env);
  return s ? parseAesKey(s) : undefined;
}

export const aesCipherName = (k: AesKey): string => `aes-${k.key.length * 8}-cbc`;
