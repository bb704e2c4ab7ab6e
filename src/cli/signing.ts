// The signing options bundle, sign and convert share, turned into resolveSigner's input.
import { OtapackError } from '../errors.js';
import { parseExpiryWarning, type SignerOptions } from '../crypto/resolve-signer.js';
import type { SignInput } from '../crypto/signer.js';
import { warn } from './output.js';

export function signerOptions(o: Record<string, unknown>): SignerOptions {
  const signInput = o.signInput as SignInput | undefined;
  if (signInput !== undefined && o.signCommand === undefined) throw new OtapackError('USAGE', '--sign-input applies only with --sign-command');
  return {
    key: o.key as string | undefined,
    cert: o.cert as string | undefined,
    chain: o.chain as string | undefined,
    pss: !!o.pss,
    pkcs11Module: o.pkcs11Module as string | undefined,
    signCommand: o.signCommand as string | undefined,
    signInput,
    expiryWarningDays: parseExpiryWarning(o.expiryWarning),
    warn,
  };
}
