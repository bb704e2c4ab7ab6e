import { looksLikeMender } from '../../clients/mender/verify.js';
import { OtapackError } from '../../errors.js';
import { extractManifest } from '../../clients/swupdate/resign.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { refuseOverwritingInputs } from '../../util/no-clobber.js';
import { text, required, globalOptions, type GlobalOptions, type OptionValues } from '../options.js';

export interface ManifestOptions extends GlobalOptions {
  bundle: string;
  output?: string;
}

export const options = (args: string[], o: OptionValues): ManifestOptions => ({
  ...globalOptions(o),
  bundle: required(args, 0, 'bundle'),
  output: text(o.output),
});

export async function run(o: ManifestOptions): Promise<number> {
  if (o.output) await refuseOverwritingInputs([{ path: o.output }], [{ path: o.bundle, what: 'bundle' }]);
  if (await looksLikeMender(o.bundle)) throw new OtapackError('USAGE', `${o.bundle} is a Mender artifact; manifest prints a .swu's sw-description (a .mender's manifest: tar -xOf ${o.bundle} manifest)`);
  const bytes = await extractManifest(o.bundle);
  if (o.output) await writeFileAtomic(o.output, bytes);
  else process.stdout.write(bytes);
  return 0;
}
