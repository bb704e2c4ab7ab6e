// The one way a test may depend on something the machine might lack (a program, firmware, a
// built addon, root): `requires()`. Outside CI a missing requirement skips the test with one
// line on stderr naming what is missing and how to install it. Under CI=true it fails instead:
// CI installs everything (.ci/run), so a skip there would hide a broken install step. The
// meta-test test/skips.test.ts refuses any other way of skipping.
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** True under CI (CI set to anything but "", "0" or "false"). */
export const inCI = (): boolean => {
  const v = process.env.CI;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
};

/** A program on PATH (or in the sbin directories), as the tests' helpers find it. */
export function onPath(name: string): boolean {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']) {
    if (!d) continue;
    try {
      accessSync(join(d, name), constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

export interface Requirement {
  /** What the tests need it for, for the message ("U-Boot A/B boot under QEMU"). */
  what: string;
  tools?: string[];
  files?: string[];
  /** Root, able to make a private mount namespace (unshare -m). */
  root?: boolean;
  /** Anything else, already evaluated: [description, present]. */
  checks?: [string, boolean][];
  /** How to get what is missing ("apt-get install …"). */
  install?: string;
  /** What happens instead outside CI, when not a skip ("a stub EFI app stands in"). */
  fallback?: string;
}

/** What of `r` is missing (empty when everything is there). */
export function missing(r: Requirement): string[] {
  const out: string[] = [];
  for (const t of r.tools ?? []) if (!onPath(t)) out.push(t);
  for (const f of r.files ?? []) if (!existsSync(f)) out.push(f);
  if (r.root && process.getuid?.() !== 0) out.push('root (for unshare -m)');
  for (const [d, ok] of r.checks ?? []) if (!ok) out.push(d);
  return out;
}

/**
 * True when everything `r` lists is present. Otherwise: under CI, throws (the test file fails,
 * naming what is missing); elsewhere, says on stderr what is skipped and why, and returns false
 * for `describe.skipIf(!…)` / `test.skipIf(!…)`.
 */
export function requires(r: Requirement): boolean {
  const gone = missing(r);
  if (gone.length === 0) return true;
  const why = `${r.what}: missing ${gone.join(', ')}${r.install ? ` (${r.install})` : ''}`;
  if (inCI()) throw new Error(`CI=true and ${why}; in CI every requirement is installed, so this fails instead of skipping`);
  process.stderr.write(`${r.fallback ? `${r.fallback}: ` : 'skipped: '}${why}\n`);
  return false;
}
