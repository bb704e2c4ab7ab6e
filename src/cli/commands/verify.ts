import { verifyBundle, type CheckStatus } from '../../clients/swupdate/verify.js';
import { loadAesKey, loadCertificates } from '../../crypto/keys.js';
import type { CertPurpose } from '../../crypto/cms-verify.js';
import { OtapackError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { EXIT_CODES, EXIT_OK } from '../exit-codes.js';
import { cliReporter, printJson, say, bold, green, red, yellow, dim } from '../output.js';
import { verifyJson } from '../json.js';
import { CERT_PURPOSES } from '../choices.js';
import { parseExpiryWarning } from '../signing.js';
import { text, flag, chosen, required, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';

const LABEL: Record<CheckStatus, (s: string) => string> = {
  pass: (s) => green(s), fail: (s) => red(s), warn: (s) => yellow(s), skip: (s) => dim(s),
};

export interface VerifyOptions extends GlobalOptions {
  bundle: string;
  trust?: string;
  aesKey?: string;
  certPurpose: CertPurpose;
  allowUnsigned: boolean;
  expiryWarning?: string;
  time?: string;
}

export const options = (args: string[], o: OptionValues): VerifyOptions => ({
  ...globalOptions(o),
  bundle: required(args, 0, 'bundle'),
  trust: text(o.trust),
  aesKey: text(o.aesKey),
  certPurpose: chosen(o.certPurpose, CERT_PURPOSES, '--cert-purpose <purpose>'),
  allowUnsigned: flag(o.allowUnsigned),
  expiryWarning: text(o.expiryWarning),
  time: text(o.time),
});

export async function run(o: VerifyOptions): Promise<number> {
  const file = o.bundle;
  const trust = o.trust ? await loadCertificates(o.trust, undefined, 'trust file') : undefined;
  const aes = await loadAesKey(o.aesKey);
  const now = o.time === undefined ? undefined : new Date(o.time);
  if (now && Number.isNaN(now.getTime())) throw new OtapackError('USAGE', `--time: "${o.time}" is not a date (use ISO 8601, e.g. 2030-01-01)`);
  const report = await verifyBundle(file, {
    trust, trustOrigin: o.trust, aes, purpose: o.certPurpose,
    allowUnsigned: o.allowUnsigned, now, expiryWarningDays: parseExpiryWarning(o.expiryWarning), reporter: cliReporter({ quiet: o.quiet }),
  });
  if (o.json) printJson(verifyJson(report));
  if (!o.quiet || !report.ok) {
    say(`${bold(file)}: ${formatBytes(report.size)}, ${report.entries.length} entries`);
    for (const c of report.checks) {
      if (o.quiet && c.status !== 'fail') continue;
      say(`  ${LABEL[c.status](c.status.toUpperCase().padEnd(4))}  ${c.id.padEnd(10)} ${c.message}`);
    }
    const fails = report.checks.filter((c) => c.status === 'fail').length;
    const warns = report.checks.filter((c) => c.status === 'warn').length;
    say(report.ok ? green(`verified${warns ? ` (${warns} warning${warns > 1 ? 's' : ''})` : ''}`) : red(`FAILED: ${fails} check${fails > 1 ? 's' : ''} failed`));
  }
  return report.ok ? EXIT_OK : EXIT_CODES.VERIFY;
}
