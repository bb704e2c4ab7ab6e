import { readFile } from 'node:fs/promises';
import { resignBundle } from '../../clients/swupdate/resign.js';
import { resolveSigner } from '../../crypto/resolve-signer.js';
import { loadCertificates } from '../../crypto/keys.js';
import type { CertPurpose } from '../../crypto/cms-verify.js';
import { looksLikeMender } from '../../clients/mender/verify.js';
import { OtapackError, fileError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { refuseOverwritingInputs, keyInputs } from '../../util/no-clobber.js';
import { cliReporter, printJson, say, bold } from '../output.js';
import { signJson } from '../json.js';
import { signerOptions, signingFlags, parseExpiryWarning, type SigningFlags } from '../signing.js';
import { CERT_PURPOSES } from '../choices.js';
import { text, chosen, required, requiredText, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';

export interface SignOptions extends GlobalOptions, SigningFlags {
  bundle: string;
  output: string;
  signature?: string;
  trust?: string;
  certPurpose: CertPurpose;
}

export const options = (args: string[], o: OptionValues): SignOptions => ({
  ...globalOptions(o),
  ...signingFlags(o),
  bundle: required(args, 0, 'bundle'),
  output: requiredText(o.output, '-o, --output <file>'),
  signature: text(o.signature),
  trust: text(o.trust),
  certPurpose: chosen(o.certPurpose, CERT_PURPOSES, '--cert-purpose <purpose>'),
});

export async function run(o: SignOptions): Promise<number> {
  const reporter = cliReporter({ quiet: o.quiet });
  if (await looksLikeMender(o.bundle)) throw new OtapackError('USAGE', `${o.bundle} is a Mender artifact; sign covers .swu bundles: build the .mender signed (otapack bundle or convert with --key)`);
  // re-signing in place is allowed: the new bundle is renamed over the old one only when complete
  await refuseOverwritingInputs([{ path: o.output }], [
    { path: o.bundle, what: 'bundle', replaceable: true },
    ...keyInputs(o),
  ]);
  const expiryWarningDays = parseExpiryWarning(o.expiryWarning);
  let signature: Buffer | undefined;
  if (o.signature) {
    for (const [flag, v] of [['--key', o.key], ['--sign-command', o.signCommand], ['--pkcs11-module', o.pkcs11Module], ['--chain', o.chain], ['--pss', o.pss]] as const) {
      if (v) throw new OtapackError('USAGE', `--signature attaches a finished signature; ${flag} cannot apply to it`);
    }
    const path = o.signature;
    signature = await readFile(path).catch((e) => { throw fileError('KEY', path, e); });
  }
  const signer = signature ? undefined : await resolveSigner(signerOptions(o));
  if (!signer && !signature) {
    throw new OtapackError('KEY', 'nothing to sign with: give --key and --cert (or $OTAPACK_SIGNING_KEY/$OTAPACK_SIGNING_CERT), a pkcs11: --key, --sign-command with --cert, or --signature SIG.der');
  }
  const expectCert = signature && o.cert ? (await loadCertificates(o.cert, undefined, 'certificate'))?.[0] : undefined;
  const trust = o.trust ? await loadCertificates(o.trust, undefined, 'trust file') : undefined;
  const r = await resignBundle({
    input: o.bundle, output: o.output, signer, signature, expectCert, trust, purpose: o.certPurpose, expiryWarningDays, reporter,
  });
  if (o.json) printJson(signJson(r));
  if (!o.quiet) say(`${bold(r.output)}: ${formatBytes(r.size)}, signed by ${r.signer} (${r.algorithm}${r.method === 'key' ? '' : `, ${r.method === 'attached' ? 'signature made elsewhere' : r.method === 'pkcs11' ? 'PKCS#11 token' : 'signing command'}`}); ${r.payloads} payload(s) copied unchanged${r.replacedSignature ? ', previous signature replaced' : ''}`);
  return 0;
}
