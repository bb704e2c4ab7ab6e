import { verifyBundle, type CheckStatus } from '../../clients/swupdate/verify.js';
import { OtapackError } from '../../errors.js';
import { EXIT_CODES, EXIT_OK } from '../exit-codes.js';
import { loadAesKey, loadCertificates } from '../../crypto/keys.js';
import type { CertPurpose } from '../../crypto/cms-verify.js';
import { parseExpiryWarning } from '../../crypto/resolve-signer.js';
import { formatBytes } from '../../util/units.js';
import { cliReporter, printJson, say, bold, green, red, yellow, dim } from '../output.js';

const LABEL: Record<CheckStatus, (s: string) => string> = {
  pass: (s) => green(s), fail: (s) => red(s), warn: (s) => yellow(s), skip: (s) => dim(s),
};

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const file = String(args[0]);
  const trust = o.trust ? await loadCertificates(String(o.trust), undefined, 'trust file') : undefined;
  const aes = await loadAesKey(o.aesKey as string | undefined);
  const now = o.time === undefined ? undefined : new Date(String(o.time));
  if (now && Number.isNaN(now.getTime())) throw new OtapackError('USAGE', `--time: "${o.time}" is not a date (use ISO 8601, e.g. 2030-01-01)`);
  const report = await verifyBundle(file, {
    trust, trustOrigin: o.trust as string | undefined, aes, purpose: o.certPurpose as CertPurpose,
    allowUnsigned: !!o.allowUnsigned, now, expiryWarningDays: parseExpiryWarning(o.expiryWarning), reporter: cliReporter({ quiet: !!o.quiet }),
  });
  if (o.json) printJson({ schema: 'otapack.verify/1', ...report });
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
