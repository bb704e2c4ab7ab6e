// Writes a generated key set to a folder: private keys and the AES key 0600, certificates 0644,
// all files published together (or none, and no new folder, when the run fails); existing keys are never overwritten unless asked (a lost release key
// strands a fleet just as surely as a leaked one).
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { OtapackError } from '../errors.js';
import { stageFiles } from '../util/atomic-file.js';
import { commitOutputs } from '../util/cleanup.js';
import { optionName, type OptionNames } from './option-names.js';
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
  /** How messages name these options (the CLI: '--force'); by default `options.force`. */
  names?: OptionNames<'force'>;
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

/** The files of a key set: private keys and the AES key 0600, certificates 0644. */
export function keyFileContents(ks: KeySet, passphrase?: string): { name: string; data: string; mode: number }[] {
  return [
    { name: 'signing.key', data: privateKeyPem(ks.signingKey, passphrase), mode: 0o600 },
    { name: 'signing.crt', data: certPem(ks.signingCert.der) + (ks.ca ? certPem(ks.ca.cert.der) : ''), mode: 0o644 },
    { name: 'aes.key', data: aesKeyLine(ks.aes), mode: 0o600 },
    ...(ks.ca ? [
      { name: 'ca.key', data: privateKeyPem(ks.ca.key, passphrase), mode: 0o600 },
      { name: 'ca.crt', data: certPem(ks.ca.cert.der), mode: 0o644 },
    ] : []),
  ];
}

export async function writeKeyFiles(dir: string, o: KeyFilesOptions): Promise<KeyFiles> {
  const p = (n: string): string => join(dir, n);
  const names = ['signing.key', 'signing.crt', 'aes.key', ...(o.ca ? ['ca.key', 'ca.crt'] : [])];
  if (!o.force) {
    for (const n of names) {
      if (await access(p(n)).then(() => true, () => false)) throw new OtapackError('USAGE', `${p(n)} exists; refusing to overwrite a key (use ${optionName(o.names, 'force')})`);
    }
  }
  const ks = generateKeySet({ cn: o.cn, org: o.org, days: o.days, type: o.type, ca: o.ca });
  // all files (and the folder, if new) appear together or not at all
  const staged = await stageFiles(keyFileContents(ks, o.passphrase).map((f) => ({ path: p(f.name), data: f.data, mode: f.mode })));
  await commitOutputs(() => staged.commit());
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
