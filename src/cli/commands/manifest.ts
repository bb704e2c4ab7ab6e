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
  const bytes = await extractManifest(o.bundle);
  if (o.output) await writeFileAtomic(o.output, bytes);
  else process.stdout.write(bytes);
  return 0;
}
