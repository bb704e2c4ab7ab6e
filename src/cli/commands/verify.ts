import { verifyBundle, type CheckStatus } from '../../clients/swupdate/verify.js';
import { looksLikeMender, verifyMenderArtifact } from '../../clients/mender/verify.js';
import { loadTrustKey } from '../../clients/mender/keys.js';
import { loadAesKey, loadCertificates } from '../../crypto/keys.js';
import type { CertPurpose } from '../../crypto/cms-verify.js';
import { OtapackError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { EXIT_CODES, EXIT_OK } from '../exit-codes.js';
import { cliReporter, printJson, say, bold, green, red, yellow, dim } from '../output.js';
import { verifyJson, menderVerifyJson } from '../json.js';
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
  deviceType?: string;
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
  deviceType: text(o.deviceType),
});

export async function run(o: VerifyOptions): Promise<number> {
  const file = o.bundle;
  if (await looksLikeMender(file)) return runMender(o);
  if (o.deviceType !== undefined) throw new OtapackError('USAGE', `--device-type applies to Mender artifacts; ${file} is not one`);
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

/** A .mender: manifest, signature (--trust: a public key or certificate), checksums, device type. */
async function runMender(o: VerifyOptions): Promise<number> {
  const file = o.bundle;
  if (o.aesKey !== undefined) throw new OtapackError('USAGE', `--aes-key applies to SWUpdate bundles; ${file} is a Mender artifact (not encrypted)`);
  if (o.time !== undefined) throw new OtapackError('USAGE', `--time applies to certificate validity; a Mender artifact's signature carries no certificate`);
  const trust = o.trust ? await loadTrustKey(o.trust) : undefined;
  const report = await verifyMenderArtifact(file, { trust, deviceType: o.deviceType, reporter: cliReporter({ quiet: o.quiet }) });
  // an unsigned artifact passes only when asked (as for .swu); with --trust the device refuses it anyway
  if (!report.signature?.present && !trust) {
    const c = report.checks.find((x) => x.id === 'signature');
    if (c && !o.allowUnsigned) { c.status = 'fail'; c.message += ' (--allow-unsigned to accept)'; }
    report.ok = !report.checks.some((x) => x.status === 'fail');
  }
  if (o.json) printJson(menderVerifyJson(report));
  if (!o.quiet || !report.ok) {
    const a = report.artifact;
    say(`${bold(file)}: ${formatBytes(report.size)}, Mender artifact${a?.name ? ` ${a.name}` : ''}${a?.deviceTypes.length ? ` for ${a.deviceTypes.join(', ')}` : ''}`);
    for (const c of report.checks) {
      if (o.quiet && c.status !== 'fail') continue;
      say(`  ${LABEL[c.status](c.status.toUpperCase().padEnd(4))}  ${c.id.padEnd(11)} ${c.message}`);
    }
    const fails = report.checks.filter((c) => c.status === 'fail').length;
    const warns = report.checks.filter((c) => c.status === 'warn').length;
    say(report.ok ? green(`verified${warns ? ` (${warns} warning${warns > 1 ? 's' : ''})` : ''}`) : red(`FAILED: ${fails} check${fails > 1 ? 's' : ''} failed`));
  }
  return report.ok ? EXIT_OK : EXIT_CODES.VERIFY;
}
