import { readFile } from 'node:fs/promises';
import { resignBundle } from '../../clients/swupdate/resign.js';
import { resolveSigner, parseExpiryWarning } from '../../crypto/resolve-signer.js';
import { loadCertificates } from '../../crypto/keys.js';
import { OtapackError, fileError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { cliReporter, printJson, say, bold } from '../output.js';
import { signerOptions } from '../signing.js';
import type { CertPurpose } from '../../crypto/cms-verify.js';
import { refuseOverwritingInputs, keyInputs } from '../../util/no-clobber.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const reporter = cliReporter({ quiet: !!o.quiet });
  // re-signing in place is allowed: the new bundle is renamed over the old one only when complete
  await refuseOverwritingInputs([{ path: String(o.output) }], [
    { path: String(args[0]), what: 'bundle', replaceable: true },
    ...keyInputs(o as Parameters<typeof keyInputs>[0]),
  ]);
  const expiryWarningDays = parseExpiryWarning(o.expiryWarning);
  let signature: Buffer | undefined;
  if (o.signature) {
    for (const [flag, v] of [['--key', o.key], ['--sign-command', o.signCommand], ['--pkcs11-module', o.pkcs11Module], ['--chain', o.chain], ['--pss', o.pss]] as const) {
      if (v) throw new OtapackError('USAGE', `--signature attaches a finished signature; ${flag} cannot apply to it`);
    }
    signature = await readFile(String(o.signature)).catch((e) => { throw fileError('KEY', String(o.signature), e); });
  }
  const signer = signature ? undefined : await resolveSigner(signerOptions(o));
  if (!signer && !signature) {
    throw new OtapackError('KEY', 'nothing to sign with: give --key and --cert (or $OTAPACK_SIGNING_KEY/$OTAPACK_SIGNING_CERT), a pkcs11: --key, --sign-command with --cert, or --signature SIG.der');
  }
  const expectCert = signature && o.cert ? (await loadCertificates(String(o.cert), undefined, 'certificate'))?.[0] : undefined;
  const trust = o.trust ? await loadCertificates(String(o.trust), undefined, 'trust file') : undefined;
  const r = await resignBundle({
    input: String(args[0]), output: String(o.output), signer, signature, expectCert, trust, purpose: o.certPurpose as CertPurpose | undefined, expiryWarningDays, reporter,
  });
  if (o.json) {
    printJson({
      schema: 'otapack.sign/1', output: r.output, size: r.size, signer: r.signer, algorithm: r.algorithm, method: r.method,
      certificate: r.certificate, payloads: r.payloads, replacedSignature: r.replacedSignature,
    });
  }
  if (!o.quiet) say(`${bold(r.output)}: ${formatBytes(r.size)}, signed by ${r.signer} (${r.algorithm}${r.method === 'key' ? '' : `, ${r.method === 'attached' ? 'signature made elsewhere' : r.method === 'pkcs11' ? 'PKCS#11 token' : 'signing command'}`}); ${r.payloads} payload(s) copied unchanged${r.replacedSignature ? ', previous signature replaced' : ''}`);
  return 0;
}
