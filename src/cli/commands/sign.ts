import { readFile } from 'node:fs/promises';
import { resignBundle } from '../../swu/resign.js';
import { resolveSigner } from '../../crypto/resolve-signer.js';
import { loadCertificates } from '../../crypto/keys.js';
import { OtapackError, ioError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { cliReporter, printJson, say, warn, bold } from '../output.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const reporter = cliReporter({ quiet: !!o.quiet });
  let signature: Buffer | undefined;
  if (o.signature) {
    signature = await readFile(String(o.signature)).catch((e) => { throw ioError('KEY', String(o.signature), e); });
  }
  const signer = signature ? undefined : await resolveSigner({ key: o.key as string, cert: o.cert as string, chain: o.chain as string, pss: !!o.pss, expiryWarningDays: Number(o.expiryWarning), warn });
  if (!signer && !signature) throw new OtapackError('KEY', 'nothing to sign with: give --key and --cert (or $OTAPACK_SIGNING_KEY/$OTAPACK_SIGNING_CERT), or --signature SIG.der');
  const expectCert = signature && o.cert ? (await loadCertificates(String(o.cert), undefined, 'certificate'))?.[0] : undefined;
  const trust = o.trust ? await loadCertificates(String(o.trust), undefined, 'trust file') : undefined;
  const r = await resignBundle({
    input: String(args[0]), output: String(o.output), signer, signature, expectCert, trust,
    expiryWarningDays: Number(o.expiryWarning), reporter,
  });
  if (o.json) printJson(r);
  if (!o.quiet) say(`${bold(r.output)}: ${formatBytes(r.size)}, signed by ${r.signer} (${r.algorithm}); ${r.payloads} payload(s) copied unchanged${r.replacedSignature ? ', previous signature replaced' : ''}`);
  return 0;
}
