// otapack as a user gets it: this checkout's npm tarball, installed with `npm install --global`.
// The examples' tests run the installed command, never the checkout's bin/otapack.
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './run.js';

/**
 * The npm tarball of this checkout, as `npm run package` makes it, in `dir`. Packed without
 * scripts: `prepare` would rebuild dist/ under the other test files' feet; `pretest` built it.
 */
export async function packTarball(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const { name, version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
  await execa('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT });
  const tgz = join(dir, `${name}-${version}.tgz`);
  if (!existsSync(tgz)) throw new Error(`npm pack wrote no ${tgz}`);
  return tgz;
}

/** The environment under which `npm install --global` installs into `prefix` (a runner with a warm npm cache). */
export const npmGlobalEnv = (prefix: string): Record<string, string> => ({
  npm_config_prefix: prefix, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false',
});

/** `npm install --global TARBALL` into `prefix`, as a user runs it; returns the folder holding the `otapack` command. */
export async function installTarball(tarball: string, prefix: string): Promise<string> {
  mkdirSync(join(prefix, 'lib'), { recursive: true });
  await execa('npm', ['install', '--global', `--allow-scripts=${tarball}`, tarball], { env: npmGlobalEnv(prefix) });
  const bin = join(prefix, 'bin');
  if (!existsSync(join(bin, 'otapack'))) throw new Error(`npm install --global put no otapack in ${bin}`);
  return bin;
}
