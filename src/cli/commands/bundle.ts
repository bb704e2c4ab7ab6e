import { basename, dirname, join } from 'node:path';
import { loadBundleSpec } from '../../clients/swupdate/spec.js';
import { describeDelta } from '../delta.js';
import { buildBundle } from '../../clients/swupdate/bundle.js';
import { resolveSigner } from '../../crypto/resolve-signer.js';
import { loadAesKey } from '../../crypto/keys.js';
import { OtapackError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { refuseOverwritingInputs, keyInputs } from '../../util/no-clobber.js';
import { signerOptions, signingFlags, type SigningFlags } from '../signing.js';
import { cliReporter, printJson, say, warn, bold } from '../output.js';
import { bundleJson } from '../json.js';
import { sourceDateEpoch } from '../env.js';
import { MANIFEST_FORMATS, CPIO_FORMATS } from '../choices.js';
import { text, flag, choice, required, requiredText, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';

export interface BundleOptions extends GlobalOptions, SigningFlags {
  spec: string;
  output: string;
  aesKey?: string;
  unsigned: boolean;
  reproducible: boolean;
  manifestFormat?: 'libconfig' | 'json';
  cpioFormat?: 'crc' | 'newc';
}

export const options = (args: string[], o: OptionValues): BundleOptions => ({
  ...globalOptions(o),
  ...signingFlags(o),
  spec: required(args, 0, 'spec'),
  output: requiredText(o.output, '-o, --output <file>'),
  aesKey: text(o.aesKey),
  unsigned: flag(o.unsigned),
  reproducible: flag(o.reproducible),
  manifestFormat: choice(o.manifestFormat, MANIFEST_FORMATS),
  cpioFormat: choice(o.cpioFormat, CPIO_FORMATS),
});

export async function run(o: BundleOptions): Promise<number> {
  const reporter = cliReporter({ quiet: o.quiet });
  const spec = await loadBundleSpec(o.spec);
  const zcks = spec.artifacts.filter((a) => a.delta?.url).map((a) => ({ path: join(dirname(o.output), basename(new URL(a.delta!.url!).pathname)), what: 'zchunk file' }));
  await refuseOverwritingInputs([{ path: o.output }, ...zcks], [
    { path: o.spec, what: 'bundle spec' },
    ...spec.artifacts.map((a) => ({ path: typeof a.source === 'string' ? a.source : undefined, what: 'payload', from: o.spec })),
    ...spec.artifacts.map((a) => ({ path: a.delta?.from, what: 'delta base', from: o.spec })),
    ...keyInputs(o),
  ]);
  if (o.manifestFormat) spec.manifestFormat = o.manifestFormat;
  if (o.cpioFormat) spec.cpioFormat = o.cpioFormat;
  const signer = o.unsigned ? undefined : await resolveSigner(signerOptions(o));
  if (!signer && !o.unsigned) {
    throw new OtapackError('KEY', 'no signing key: give --key and --cert (or $OTAPACK_SIGNING_KEY and $OTAPACK_SIGNING_CERT), a pkcs11: --key, or --sign-command with --cert; or --unsigned to build a bundle devices will refuse');
  }
  // a delta's base may come out of an encrypted bundle even when the new one is not encrypted
  const needsAes = spec.artifacts.some((a) => a.encrypt || a.delta);
  const aes = needsAes ? await loadAesKey(o.aesKey) : undefined;
  const r = await buildBundle({ spec, output: o.output, signer, aes, mtime: sourceDateEpoch(), reproducible: o.reproducible, reporter, hashOutput: o.json });
  if (o.json) printJson(bundleJson(r, signer?.kind));
  if (!o.quiet) {
    say(`${bold(r.output)}: ${formatBytes(r.size)}, ${r.signed ? `signed by ${r.signer} (${r.signatureAlgorithm})` : 'UNSIGNED'}`);
    for (const e of r.entries) {
      say(`  ${e.name}  ${formatBytes(e.inputSize)} -> ${formatBytes(e.size)}  ${e.compression}${e.encrypted ? '+aes' : ''}  sha256 ${e.sha256.slice(0, 16)}…`);
    }
    for (const d of r.deltas ?? []) say(`  ${describeDelta(d)}`);
    if (!r.signed) warn('the bundle is unsigned: SWUpdate built with signature checking refuses it');
  }
  return 0;
}
