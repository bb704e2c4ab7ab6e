// npm's `prepare`: a clean dist/ (tsc), then the man page and the bash completion
// (scripts/cli-docs.mjs). npm runs it on `npm ci`/`npm install` in a checkout, on `npm pack`, and
// when it installs otapack from git (it clones, installs the devDependencies, runs prepare, packs).
//
// With `npm install -g git+…`, npm 11 runs that preparing install with --global inherited from
// the outer command (npm/cli#8440): it installs no devDependency, so TypeScript is missing, and it
// links this clone into the global node_modules, where the outer install then extracts the
// package through that link into this clone, which npm deletes afterwards. Then this clone gets
// its devDependencies here (project-local, scripts off) and the stray link goes, and the install
// works as without -g.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, realpathSync, rmSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    process.stderr.write(`otapack prepare: ${[cmd, ...args].join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})\n`);
    process.exit(1);
  }
}

if (!existsSync(tsc)) {
  if (process.env.npm_config_global !== 'true') {
    process.stderr.write('otapack prepare: TypeScript is not installed: run `npm ci` (or `npm install`) first\n');
    process.exit(1);
  }
  process.stderr.write('otapack prepare: installing the build dependencies into this git checkout (npm -g does not: npm/cli#8440)\n');
  const env = { ...process.env };
  for (const k of ['npm_config_global', 'npm_config_prefix', 'npm_config_location']) delete env[k];
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
  run(npm[0], [...npm.slice(1), 'install', '--global=false', `--prefix=${root}`, '--include=dev', '--ignore-scripts', '--no-save', '--no-audit', '--no-fund'], env);
  // only a symbolic link to this very folder: never anything else in the global prefix
  for (const prefix of new Set([process.env.npm_config_global_prefix, process.env.npm_config_prefix].filter(Boolean))) {
    const link = join(prefix, 'lib/node_modules/otapack');
    try {
      if (lstatSync(link).isSymbolicLink() && realpathSync(link) === realpathSync(root)) unlinkSync(link);
    } catch { /* no such link */ }
  }
}

rmSync(join(root, 'dist'), { recursive: true, force: true });
run(process.execPath, [tsc, '-p', 'tsconfig.json']);
run(process.execPath, [join(root, 'scripts/cli-docs.mjs')]);
