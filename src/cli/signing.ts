// The signing options bundle, sign and convert share, turned into resolveSigner's input.
import { OtapackError } from '../errors.js';
import { DEFAULT_EXPIRY_WARNING_DAYS, type SignerOptions } from '../crypto/resolve-signer.js';
import type { OptionNames } from '../crypto/option-names.js';
import type { SignInput } from '../crypto/signer.js';
import { warn } from './output.js';
import { text, flag, choice, type OptionValues } from './options.js';
import { splitCommand } from './command-line.js';
import { SIGN_INPUTS } from './choices.js';

/** The signing flags as given (main.ts, signingOptions). */
export interface SigningFlags {
  key?: string;
  cert?: string;
  chain?: string;
  pss: boolean;
  pkcs11Module?: string;
  signCommand?: string;
  signInput?: SignInput;
  expiryWarning?: string;
}

export const signingFlags = (o: OptionValues): SigningFlags => ({
  key: text(o.key),
  cert: text(o.cert),
  chain: text(o.chain),
  pss: flag(o.pss),
  pkcs11Module: text(o.pkcs11Module),
  signCommand: text(o.signCommand),
  signInput: choice(o.signInput, SIGN_INPUTS),
  expiryWarning: text(o.expiryWarning),
});

/** How the library's messages name the signing options: as the flags the user typed. */
export const SIGNING_FLAG_NAMES: OptionNames = {
  key: '--key', cert: '--cert', chain: '--chain', pss: '--pss', pkcs11Module: '--pkcs11-module',
  signCommand: '--sign-command', signInput: '--sign-input', keygenType: 'otapack keygen --type',
};

export function signerOptions(o: SigningFlags): SignerOptions {
  if (o.signInput !== undefined && o.signCommand === undefined) throw new OtapackError('USAGE', '--sign-input applies only with --sign-command');
  return {
    key: o.key,
    cert: o.cert,
    chain: o.chain,
    pss: o.pss,
    pkcs11Module: o.pkcs11Module,
    signCommand: o.signCommand === undefined ? undefined : splitCommand(o.signCommand),
    signInput: o.signInput,
    expiryWarningDays: parseExpiryWarning(o.expiryWarning),
    warn,
    names: SIGNING_FLAG_NAMES,
  };
}

/** Validates an --expiry-warning value (days, 0 or more). */
export function parseExpiryWarning(v: string | undefined): number {
  if (v === undefined) return DEFAULT_EXPIRY_WARNING_DAYS;
  const s = v.trim();
  if (!/^\d{1,5}$/.test(s)) throw new OtapackError('USAGE', `--expiry-warning: "${s.slice(0, 20)}" is not a number of days (0 or more)`);
  return Number(s);
}
