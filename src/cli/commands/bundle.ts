import { loadBundleSpec } from '../../clients/swupdate/spec.js';
import { buildBundle } from '../../clients/swupdate/bundle.js';
import { resolveSigner } from '../../crypto/resolve-signer.js';
import { signerOptions } from '../signing.js';
import { loadAesKey } from '../../crypto/keys.js';
import { OtapackError } from '../../errors.js';
import { formatBytes } from '../../util/units.js';
import { cliReporter, printJson, say, warn, bold } from '../output.js';
import { sourceDateEpoch } from '../env.js';
import { refuseOverwritingInputs, keyInputs } from '../../util/no-clobber.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const reporter = cliReporter({ quiet: !!o.quiet });
  const spec = await loadBundleSpec(String(args[0]));
  await refuseOverwritingInputs([{ path: String(o.output) }], [
    { path: String(args[0]), what: 'bundle spec' },
    ...spec.artifacts.map((a) => ({ path: typeof a.source === 'string' ? a.source : undefined, what: 'payload', from: String(args[0]) })),
    ...keyInputs(o as Parameters<typeof keyInputs>[0]),
  ]);
  if (o.manifestFormat) spec.manifestFormat = o.manifestFormat as 'libconfig' | 'json';
  if (o.cpioFormat) spec.cpioFormat = o.cpioFormat as 'crc' | 'newc';
  const signer = o.unsigned ? undefined : await resolveSigner(signerOptions(o));
  if (!signer && !o.unsigned) {
    throw new OtapackError('KEY', 'no signing key: give --key and --cert (or $OTAPACK_SIGNING_KEY and $OTAPACK_SIGNING_CERT), a pkcs11: --key, or --sign-command with --cert; or --unsigned to build a bundle devices will refuse');
  }
  const needsAes = spec.artifacts.some((a) => a.encrypt);
  const aes = needsAes ? await loadAesKey(o.aesKey as string | undefined) : undefined;
  const r = await buildBundle({ spec, output: String(o.output), signer, aes, mtime: sourceDateEpoch(), reproducible: !!o.reproducible, reporter, hashOutput: !!o.json });
  if (o.json) {
    printJson({
      schema: 'otapack.bundle/1', output: r.output, size: r.size, sha256: r.sha256, signed: r.signed,
      signer: r.signer ?? null, signatureAlgorithm: r.signatureAlgorithm ?? null, signerKind: signer?.kind ?? null,
      manifestFormat: r.manifestFormat, cpioFormat: r.cpioFormat, entries: r.entries, manifestText: r.manifest,
    });
  }
  if (!o.quiet) {
    say(`${bold(r.output)}: ${formatBytes(r.size)}, ${r.signed ? `signed by ${r.signer} (${r.signatureAlgorithm})` : 'UNSIGNED'}`);
    for (const e of r.entries) {
      say(`  ${e.name}  ${formatBytes(e.inputSize)} -> ${formatBytes(e.size)}  ${e.compression}${e.encrypted ? '+aes' : ''}  sha256 ${e.sha256.slice(0, 16)}…`);
    }
    if (!r.signed) warn('the bundle is unsigned: SWUpdate built with signature checking refuses it');
  }
  return 0;
}
