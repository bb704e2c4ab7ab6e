import { OtapackError } from '../../errors.js';
import { DEFAULT_DAYS, type KeyType } from '../../crypto/keygen.js';
import { writeKeyFiles } from '../../crypto/key-files.js';
import { ENV } from '../../crypto/keys.js';
import { say, warn, printJson, bold } from '../output.js';
import { keygenJson } from '../json.js';
import { KEY_TYPES } from '../choices.js';
import { text, flag, chosen, requiredText, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';

/** Lifetimes below this (5 years) get a warning: shorter than devices usually stay in the field. */
const SHORT_LIFETIME_DAYS = 1826;

export interface KeygenOptions extends GlobalOptions {
  out: string;
  cn: string;
  org?: string;
  days?: string;
  type: KeyType;
  ca: boolean;
  encryptKey: boolean;
  force: boolean;
}

export const options = (_args: string[], o: OptionValues): KeygenOptions => ({
  ...globalOptions(o),
  out: requiredText(o.out, '--out <dir>'),
  cn: requiredText(o.cn, '--cn <name>'),
  org: text(o.org),
  days: text(o.days),
  type: chosen(o.type, KEY_TYPES, '--type <type>'),
  ca: flag(o.ca),
  encryptKey: flag(o.encryptKey),
  force: flag(o.force),
});

export async function run(o: KeygenOptions): Promise<number> {
  const dir = o.out;
  const days = o.days === undefined ? DEFAULT_DAYS : Number(o.days);
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw new OtapackError('USAGE', `--days: "${o.days}" is not a number of days between 1 and 36500`);
  const passphrase = o.encryptKey ? process.env[ENV.passphrase] : undefined;
  if (o.encryptKey && !passphrase) throw new OtapackError('USAGE', `--encrypt-key needs the passphrase in $${ENV.passphrase}`);
  const kf = await writeKeyFiles(dir, { cn: o.cn, org: o.org, days, type: o.type, ca: o.ca, passphrase, force: o.force, names: { force: '--force' } });
  const ks = kf.keys;
  const until = ks.signingCert.notAfter.toISOString().slice(0, 10);
  const result = keygenJson(kf, { directory: dir, type: o.type, days, encrypted: !!passphrase });
  if (o.json) printJson(result);
  if (!o.quiet) {
    say(`${bold('keys written to')} ${dir}`);
    say(`  signing.key  private key (${o.type}${passphrase ? ', encrypted' : ''}), mode 0600: keep it off devices and out of git`);
    say(`  signing.crt  certificate "${ks.signingCert.subject}", valid until ${until}${ks.ca ? ' (followed by ca.crt)' : ''}`);
    say(`  aes.key      AES-256 key and IV for encrypted images, mode 0600 (SWUpdate -K format)`);
    if (ks.ca) say(`  ca.crt       CA certificate: what devices trust (swupdate -k); ca.key signs new signing certificates`);
    say(`devices trust ${result.trustAnchor}; they refuse updates once it or the signing certificate expires (${until}, ${days} days),`);
    say(days >= DEFAULT_DAYS
      ? `so the default lifetime outlasts a typical fleet; rotate before then by shipping a new trust anchor in an update.`
      : `so plan the rotation: ship a new trust anchor in an update well before then.`);
  }
  if (days < SHORT_LIFETIME_DAYS) {
    warn(`--days ${days}: the certificate expires on ${until}; a device still in the field then refuses every update signed with it and can only be recovered by hand (the default, ${DEFAULT_DAYS} days, avoids stranding a fleet)`);
  }
  return 0;
}
