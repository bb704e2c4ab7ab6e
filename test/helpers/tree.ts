// A folder's whole state (every name; every file's size, inode and mtime, which a write or a
// rename-over changes; every symlink's target), to show that a refused or failed command changed
// nothing: no new file, no new folder, nothing rewritten. Files are not hashed (GiB images); tests
// hash the inputs they care about with sha256().
import { readdirSync, readFileSync, lstatSync, readlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

export const sha256 = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

export function snapshot(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const rel = prefix + name;
    const s = lstatSync(p, { bigint: true });
    if (s.isSymbolicLink()) out[rel] = `-> ${readlinkSync(p)}`;
    else if (s.isDirectory()) Object.assign(out, { [`${rel}/`]: 'dir' }, snapshot(p, `${rel}/`));
    else out[rel] = `${s.size} bytes, inode ${s.ino}, mtime ${s.mtimeNs}`;
  }
  return out;
}
