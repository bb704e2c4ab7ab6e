// grub-mkimage (grub-common) with Debian's modules (grub-efi-amd64-bin): the GRUB EFI image
// boot.install-grub puts on the ESP. Its output depends only on its inputs (no time stamp), so
// convert stays reproducible.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../util/tools.js';

export interface MkimageOptions {
  platform: string;
  /** Module folder, e.g. /usr/lib/grub/x86_64-efi. */
  directory: string;
  prefix: string;
  modules: string[];
  /** Embedded config text (-c). */
  config?: string;
}

/** Builds the image in `work` and returns its bytes. */
export async function grubMkimage(o: MkimageOptions, work: string): Promise<Buffer> {
  const out = join(work, 'grub-mkimage.efi');
  const args = ['-O', o.platform, '-d', o.directory, '-p', o.prefix, '-o', out];
  if (o.config !== undefined) {
    const cfg = join(work, 'grub-embedded.cfg');
    await writeFile(cfg, o.config);
    args.push('-c', cfg);
  }
  await run('grub-mkimage', [...args, ...o.modules], { what: 'grub-mkimage' });
  return readFile(out);
}
