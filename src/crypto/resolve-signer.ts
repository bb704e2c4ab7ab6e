// Turns --key/--cert/--chain (or the OTAPACK_* variables) into a Signer, checking on the way
// that the key matches the certificate and that the certificate can be used today.
import { OtapackError } from '../errors.js';
import { ENV, readSecret, parsePrivateKey, loadCertificates, assertKeyMatchesCert } from './keys.js';
import { KeyObjectSigner, schemeFor, type Signer } from './signer.js';
import { daysLeft } from './trust.js';
import type { CertInfo } from './x509.js';

export interface SignerOptions {
  key?: string;
  cert?: string;
  chain?: string;
  pss?: boolean;
  /** Warn when the certificate expires within this many days. */
  expiryWarningDays?: number;
  env?: NodeJS.ProcessEnv;
  now?: Date;
  warn?: (msg: string) => void;
}

const day = (d: Date): string => d.toISOString().slice(0, 10);

/** Refuses a certificate outside its validity period; warns when it expires soon. */
export function checkCertDates(cert: CertInfo, now: Date, warnDays: number, warn?: (m: string) => void): void {
  if (now < cert.notBefore) {
    throw new OtapackError('KEY', `signing certificate ${cert.subject} is not valid before ${day(cert.notBefore)} (today is ${day(now)}); devices would refuse it`);
  }
  if (now > cert.notAfter) {
    throw new OtapackError('KEY', `signing certificate ${cert.subject} expired on ${day(cert.notAfter)}; devices refuse bundles signed with it`);
  }
  const left = daysLeft(cert, now);
  if (left < warnDays) warn?.(`signing certificate ${cert.subject} expires in ${left} days (${day(cert.notAfter)}); devices refuse bundles signed with an expired certificate`);
}

export async function resolveSigner(o: SignerOptions): Promise<Signer | undefined> {
  const env = o.env ?? process.env;
  const keySecret = await readSecret(o.key, ENV.key, env);
  const certs = await loadCertificates(o.cert, ENV.cert, 'certificate', env);
  if (!keySecret && !certs) return undefined;
  if (!keySecret) throw new OtapackError('KEY', `a signing certificate was given but no key (--key or $${ENV.key})`);
  if (!certs) throw new OtapackError('KEY', `a signing key was given but no certificate (--cert or $${ENV.cert})`);
  const key = parsePrivateKey(keySecret, env[ENV.passphrase]);
  const [cert, ...rest] = certs;
  assertKeyMatchesCert(key, cert!, keySecret.origin);
  const chain = [...rest, ...((o.chain ? await loadCertificates(o.chain, undefined, 'chain', env) : undefined) ?? [])];
  checkCertDates(cert!, o.now ?? new Date(), o.expiryWarningDays ?? 90, o.warn);
  if (o.pss && cert!.keyType === 'ec') throw new OtapackError('KEY', '--pss needs an RSA key; this key is EC');
  return new KeyObjectSigner(key, cert!, chain, schemeFor(cert!, !!o.pss), keySecret.origin);
}
