// Writes a generated key set to a folder: private keys and the AES key 0600, certificates 0644,
// each file atomically; existing keys are never overwritten unless asked (a lost release key
// strands a fleet just as surely as a leaked one).
import { mkdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { OtapackError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { generateKeySet, privateKeyPem, aesKeyLine, certPem, type KeySet, type KeyType } from './keygen.js';

export interface KeyFilesOptions {
  cn: string;
  org?: string;
  days: number;
  type: KeyType;
  /** also a CA (ca.key, ca.crt) that signs the signing certificate */
  ca: boolean;
  /** encrypts the private keys (PKCS#8, AES-256) */
  passphrase?: string;
  /** overwrite existing key files */
  force?: boolean;
}

export interface KeyFiles {
  directory: string;
  signingKey: string;
  signingCert: string;
  aesKey: string;
  caKey?: string;
  caCert?: string;
  /** what devices trust: ca.crt with a CA, else signing.crt */
  trustAnchor: string;
  keys: KeySet;
}

export async function writeKeyFiles(dir: string, o: KeyFilesOptions): Promise<KeyFiles> {
  await mkdir(dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => { throw new OtapackError('IO', `${dir}: cannot create (${e.code})`); });
  const p = (n: string): string => join(dir, n);
  const names = ['signing.key', 'signing.crt', 'aes.key', ...(o.ca ? ['ca.key', 'ca.crt'] : [])];
  if (!o.force) {
    for (const n of names) {
      if (await access(p(n)).then(() => true, () => false)) throw new OtapackError('USAGE', `${p(n)} exists; refusing to overwrite a key (use --force)`);
    }
  }
  const ks = generateKeySet({ cn: o.cn, org: o.org, days: o.days, type: o.type, ca: o.ca });
  await writeFileAtomic(p('signing.key'), privateKeyPem(ks.signingKey, o.passphrase), 0o600);
  await writeFileAtomic(p('signing.crt'), certPem(ks.signingCert.der) + (ks.ca ? certPem(ks.ca.cert.der) : ''), 0o644);
  await writeFileAtomic(p('aes.key'), aesKeyLine(ks.aes), 0o600);
  if (ks.ca) {
    await writeFileAtomic(p('ca.key'), privateKeyPem(ks.ca.key, o.passphrase), 0o600);
    await writeFileAtomic(p('ca.crt'), certPem(ks.ca.cert.der), 0o644);
  }
  return {
    directory: dir,
    signingKey: p('signing.key'),
    signingCert: p('signing.crt'),
    aesKey: p('aes.key'),
    ...(ks.ca ? { caKey: p('ca.key'), caCert: p('ca.crt') } : {}),
    trustAnchor: p(ks.ca ? 'ca.crt' : 'signing.crt'),
    keys: ks,
  };
}
