import { extractManifest } from '../../swu/resign.js';
import { writeFileAtomic } from '../../util/atomic-file.js';

export async function run(args: unknown[], o: Record<string, unknown>): Promise<number> {
  const bytes = await extractManifest(String(args[0]));
  if (o.output) await writeFileAtomic(String(o.output), bytes);
  else process.stdout.write(bytes);
  return 0;
}
