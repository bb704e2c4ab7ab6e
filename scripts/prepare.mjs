// npm's `prepare`: a clean dist/ (tsc), then the man page and the bash completion
// (scripts/cli-docs.mjs). npm runs it on `npm ci`/`npm install` in a checkout, on `npm pack`, and
// when it installs otapack from git (it clones, installs the devDependencies, runs prepare, packs).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

function fail(message) {
  process.stderr.write(`otapack prepare: ${message}\n`);
  process.exit(1);
}

if (!existsSync(tsc)) {
  // `npm install -g git+…`: npm 11 prepares the clone with --global inherited (npm/cli#8440), which
  // installs no devDependency (and links the clone into the global folder, so no fix-up here helps)
  if (process.env.npm_config_global === 'true') {
    fail('this npm cannot install otapack globally from git (npm/cli#8440: no devDependencies while preparing); '
      + 'pack it first, then install the tarball: npm install -g "$(npm pack --silent git+URL)"');
  }
  fail('TypeScript is not installed here: run `npm ci` (or `npm install`) first');
}

rmSync(join(root, 'dist'), { recursive: true, force: true });
for (const args of [[tsc, '-p', 'tsconfig.json'], [join(root, 'scripts/cli-docs.mjs')]]) {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(`node ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
}
