// Turns a key and certificate (given, or in the OTAPACK_* variables), a `pkcs11:` key URI or a
// signing command into a Signer, checking on the way that the key matches the certificate and
// that every certificate devices will check can be used today.
import { OtapackError } from '../errors.js';
import { optionName, type OptionNames, type SigningOption } from './option-names.js';
import { ENV, readSecret, parsePrivateKey, loadCertificates, assertKeyMatchesCert } from './keys.js';
import { KeyObjectSigner, schemeFor, type SignInput, type Signer } from './signer.js';
import { Pkcs11Signer } from './signer-pkcs11.js';
import { CommandSigner } from './signer-command.js';
import { isPkcs11Uri } from './pkcs11-uri.js';
import { daysLeft } from './x509.js';
import type { CertInfo } from './x509.js';

export interface SignerOptions {
  /** A key file, or a `pkcs11:` URI (else $OTAPACK_SIGNING_KEY, which may hold either). */
  key?: string;
  cert?: string;
  chain?: string;
  pss?: boolean;
  /** PKCS#11 module for a `pkcs11:` key (else the URI's module-path, else $OTAPACK_PKCS11_MODULE). */
  pkcs11Module?: string;
  /** Sign by running this program with these arguments, without a shell (signer-command.ts); needs the certificate. */
  signCommand?: string[];
  /** What the signing command gets on stdin. */
  signInput?: SignInput;
  /** Warn when the certificate expires within this many days (default 90). */
  expiryWarningDays?: number;
  env?: NodeJS.ProcessEnv;
  now?: Date;
  warn?: (msg: string) => void;
  /** How messages name these options (the CLI: '--key' …); by default `options.key` …. */
  names?: OptionNames;
}

export const DEFAULT_EXPIRY_WARNING_DAYS = 90;

const day = (d: Date): string => d.toISOString().slice(0, 10);

/** Refuses a certificate outside its validity period; warns when it expires within `warnDays`. */
export function checkCertDates(cert: CertInfo, now: Date, warnDays: number, warn?: (m: string) => void, role = 'signing certificate'): void {
  if (now < cert.notBefore) {
    throw new OtapackError('KEY', `${role} ${cert.subject} is not valid before ${day(cert.notBefore)} (valid ${day(cert.notBefore)} to ${day(cert.notAfter)}, today is ${day(now)}); devices refuse bundles signed with it (check the signing host's clock)`);
  }
  if (now > cert.notAfter) {
    throw new OtapackError('KEY', `${role} ${cert.subject} expired on ${day(cert.notAfter)} (valid ${day(cert.notBefore)} to ${day(cert.notAfter)}, today is ${day(now)}); devices refuse bundles signed with it`);
  }
  const left = daysLeft(cert, now);
  if (left < warnDays) warn?.(`${role} ${cert.subject} expires in ${left} day${left === 1 ? '' : 's'} (${day(cert.notAfter)}); devices refuse bundles signed with an expired certificate: renew it and ship the new trust anchor in an update before then`);
}

/** checkCertDates for the signer and every certificate embedded with it (intermediates, root). */
export function checkSigningChainDates(cert: CertInfo, chain: CertInfo[], now: Date, warnDays: number, warn?: (m: string) => void): void {
  checkCertDates(cert, now, warnDays, warn);
  for (const c of chain) checkCertDates(c, now, warnDays, warn, c.isCA ? 'CA certificate' : 'chain certificate');
}

export async function resolveSigner(o: SignerOptions): Promise<Signer | undefined> {
  const env = o.env ?? process.env;
  const now = o.now ?? new Date();
  const warnDays = o.expiryWarningDays ?? DEFAULT_EXPIRY_WARNING_DAYS;
  const chainExtra = async (): Promise<CertInfo[]> => (o.chain ? await loadCertificates(o.chain, undefined, 'chain', env) : undefined) ?? [];
  const n = (k: SigningOption): string => optionName(o.names, k);

  if (o.signCommand !== undefined) {
    if (o.key) throw new OtapackError('USAGE', `${n('signCommand')} and ${n('key')} exclude each other: the command holds the key`);
    const certs = await loadCertificates(o.cert, ENV.cert, 'certificate', env);
    if (!certs) throw new OtapackError('KEY', `${n('signCommand')} needs the signing certificate (${n('cert')} or $${ENV.cert})`);
    const [cert, ...rest] = certs;
    const chain = [...rest, ...(await chainExtra())];
    checkSigningChainDates(cert!, chain, now, warnDays, o.warn);
    return new CommandSigner({ command: o.signCommand, cert: cert!, chain, pss: o.pss, input: o.signInput, names: o.names });
  }
  if (o.signInput !== undefined && o.signInput !== 'der') throw new OtapackError('USAGE', `${n('signInput')} applies only with ${n('signCommand')}`);

  const keyRef = o.key ?? env[ENV.key];
  if (isPkcs11Uri(keyRef)) {
    const certs = await loadCertificates(o.cert, ENV.cert, 'certificate', env);
    const [given, ...rest] = certs ?? [];
    const chain = [...rest, ...(await chainExtra())];
    // dates first when the certificate is known: no token login for a certificate devices refuse
    if (given) checkSigningChainDates(given, chain, now, warnDays, o.warn);
    const signer = await Pkcs11Signer.open({ uri: keyRef, module: o.pkcs11Module, cert: given, chain, pss: o.pss, env, names: o.names });
    if (!given) checkSigningChainDates(signer.cert, chain, now, warnDays, o.warn);
    return signer;
  }
  if (o.pkcs11Module) throw new OtapackError('USAGE', `${n('pkcs11Module')} needs a pkcs11: URI as ${n('key')} (or in $${ENV.key})`);

  const keySecret = await readSecret(o.key, ENV.key, env);
  const certs = await loadCertificates(o.cert, ENV.cert, 'certificate', env);
  if (!keySecret && !certs) return undefined;
  if (!keySecret) {
    if (env[ENV.key] !== undefined) throw new OtapackError('KEY', `$${ENV.key} is set but empty: the secret is not available to this job (protected branch or environment?)`);
    throw new OtapackError('KEY', `a signing certificate was given but no key (${n('key')}, $${ENV.key}, a pkcs11: URI or ${n('signCommand')})`);
  }
  if (!certs) throw new OtapackError('KEY', `a signing key was given but no certificate (${n('cert')} or $${ENV.cert})`);
  const key = parsePrivateKey(keySecret, env[ENV.passphrase]);
  const [cert, ...rest] = certs;
  assertKeyMatchesCert(key, cert!, keySecret.origin);
  if (o.pss && cert!.keyType === 'ec') throw new OtapackError('KEY', `${n('pss')} needs an RSA key; this key is EC`);
  const scheme = schemeFor(cert!, !!o.pss, o.names); // before the date checks: an unusable key type is the first thing to fix
  const chain = [...rest, ...(await chainExtra())];
  checkSigningChainDates(cert!, chain, now, warnDays, o.warn);
  return new KeyObjectSigner(key, cert!, chain, scheme, keySecret.origin);
}
