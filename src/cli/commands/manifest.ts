import { extractManifest } from '../../clients/swupdate/resign.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { refuseOverwritingInputs } from '../../util/no-clobber.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  if (o.output) await refuseOverwritingInputs([{ path: String(o.output) }], [{ path: String(args[0]), what: 'bundle' }]);
  const bytes = await extractManifest(String(args[0]));
  if (o.output) await writeFileAtomic(String(o.output), bytes);
  else process.stdout.write(bytes);
  return 0;
}
