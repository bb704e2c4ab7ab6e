// `npm run package [-- OUTDIR]`: the npm tarball otapack-VERSION.tgz (`npm pack`: prepare builds
// dist/, the man page and the bash completion) and, from that same tarball, the Debian package
// otapack_VERSION_all.deb, built without root (dpkg-deb --root-owner-group), in OUTDIR (default:
// the checkout).
//
// The .deb holds the app with its production node_modules in /usr/lib/otapack, /usr/bin/otapack,
// the man page, the bash completion and /usr/share/doc/otapack. It is "all" because it carries no
// native code: the optional libdeflate addon is left out (it would make the package
// architecture-specific and need a build per architecture), so gzip payloads run on node:zlib —
// same format, slower (README "Performance"); zstd, the default, is the zstd program either way.
// Depends/Recommends come from the programs otapack calls (src/util/tool-report.ts).
// SOURCE_DATE_EPOCH (default: the last commit's time) fixes every timestamp, so the same commit
// gives the same .deb.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = resolve(process.argv[2] ?? root);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const licenceOrReadme = new Map();
const MAINTAINER = process.env.DEB_MAINTAINER ?? 'otapack maintainers <maintainers@otapack.invalid>';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });
  if (r.status !== 0) {
    process.stderr.write(`package: ${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})\n${r.stdout ?? ''}`);
    process.exit(1);
  }
  return r.stdout;
}
const say = (s) => process.stderr.write(`package: ${s}\n`);

if (!process.env.SOURCE_DATE_EPOCH) {
  const git = spawnSync('git', ['-C', root, 'log', '-1', '--format=%ct'], { encoding: 'utf8' });
  process.env.SOURCE_DATE_EPOCH = git.status === 0 && git.stdout.trim() ? git.stdout.trim() : String(Math.floor(Date.now() / 1000));
}
const epoch = Number(process.env.SOURCE_DATE_EPOCH);

// 1. the npm tarball (prepare: clean dist/, man page, completion)
mkdirSync(outDir, { recursive: true });
const tgz = join(outDir, `${pkg.name}-${pkg.version}.tgz`);
rmSync(tgz, { force: true });
run('npm', ['pack', '--silent', '--pack-destination', outDir], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
if (!existsSync(tgz)) { say(`npm pack did not write ${tgz}`); process.exit(1); }
const shown = (p) => (relative(process.cwd(), p).startsWith('..') ? p : relative(process.cwd(), p));
say(`${shown(tgz)}  ${(statSync(tgz).size / 1024).toFixed(0)} KiB`);

// 2. the tree of the Debian package
const work = mkdtempSync(join(tmpdir(), 'otapack-deb-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const tree = join(work, 'root');
const app = join(tree, 'usr/lib/otapack');
const doc = join(tree, 'usr/share/doc/otapack');
run('tar', ['-xzf', tgz, '-C', work]);
mkdirSync(dirname(app), { recursive: true });
renameSync(join(work, 'package'), app);

// production dependencies, exactly as locked (no scripts: none of them has any to run)
cpSync(join(root, 'package-lock.json'), join(app, 'package-lock.json'));
run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app });
rmSync(join(app, 'package-lock.json'));
rmSync(join(app, 'node_modules/.package-lock.json'), { force: true });
rmSync(join(app, 'node_modules/.bin'), { recursive: true, force: true }); // the modules' own commands: not otapack's

// what the .deb does not carry: the addon's sources (no compiler at install), type declarations
// (no library users under /usr/lib), browser bundles of dependencies (node uses their lib/), and
// licence files and READMEs outside /usr/share/doc (the licences are in its copyright file)
rmSync(join(app, 'native'), { recursive: true });
rmSync(join(app, 'LICENSE'));
for (const name of readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.'))) {
  for (const f of readdirSync(join(app, 'node_modules', name))) if (/^(licen[cs]e|readme|changelog|history)(\.\w+)?$/i.test(f)) licenceOrReadme.set(join(name, f), join(app, 'node_modules', name, f));
}
for (const f of walk(join(app, 'dist'))) if (f.endsWith('.d.ts')) rmSync(f);
rmSync(join(app, 'node_modules/node-forge/dist'), { recursive: true, force: true });
rmSync(join(app, 'node_modules/node-forge/flash'), { recursive: true, force: true });
rmSync(join(app, 'node_modules/yaml/browser'), { recursive: true, force: true });

// the command, its man page and completion; the README goes with the other docs
mkdirSync(join(tree, 'usr/bin'), { recursive: true });
symlinkSync('../lib/otapack/bin/otapack', join(tree, 'usr/bin/otapack'));
writeGz(join(tree, 'usr/share/man/man1/otapack.1.gz'), readFileSync(join(app, 'dist/man/otapack.1')));
mkdirSync(join(tree, 'usr/share/bash-completion/completions'), { recursive: true });
renameSync(join(app, 'dist/completion/otapack'), join(tree, 'usr/share/bash-completion/completions/otapack'));
rmSync(join(app, 'dist/man'), { recursive: true });
rmSync(join(app, 'dist/completion'), { recursive: true });
writeGz(join(doc, 'README.md.gz'), readFileSync(join(app, 'README.md')));
rmSync(join(app, 'README.md'));
writeGz(join(doc, 'changelog.gz'), Buffer.from(changelog()));
writeFileSync(join(doc, 'copyright'), copyright());
for (const f of licenceOrReadme.values()) rmSync(f);
mkdirSync(join(tree, 'usr/share/lintian/overrides'), { recursive: true });
writeFileSync(join(tree, 'usr/share/lintian/overrides/otapack'), [
  '# The device scripts are templates: otapack fills in their @NAME@ fields and installs them,',
  '# executable, into the images it converts (device/) or carries them in the bundles it writes for',
  '# the update client to run (swupdate/). Run as they are on the build host they would be wrong.',
  'otapack: script-not-executable [usr/lib/otapack/templates/device/*]',
  'otapack: script-not-executable [usr/lib/otapack/templates/swupdate/*]',
  '# Node modules keep the layout they are published with (their lib/ folders), under /usr/lib/otapack.',
  'otapack: repeated-path-segment lib [usr/lib/otapack/node_modules/*/lib/]',
  '',
].join('\n'));

// 3. control files
const { TOOL_SOURCES } = await import(pathToFileURL(join(root, 'dist/util/tool-report.js')).href);
const depends = [`nodejs (>= ${pkg.engines.node.replace(/^>=\s*/, '')})`, ...TOOL_SOURCES.filter((t) => t.required).map((t) => t.package)];
// bmap-tools flashes the .bmap convert writes; the rest serve features some users need
const recommends = [...TOOL_SOURCES.filter((t) => !t.required).map((t) => t.package), 'bmap-tools'];
// swupdate (to try a bundle as a device would) starts its daemon on install: never pulled in by default
const suggests = ['swupdate', 'softhsm2'];
for (const f of walk(tree)) normalise(f);
const installedKiB = walk(tree).reduce((n, f) => n + (lstatSync(f).isFile() ? Math.ceil(lstatSync(f).size / 1024) : 1), 0);
mkdirSync(join(tree, 'DEBIAN'));
writeFileSync(join(tree, 'DEBIAN/control'), [
  `Package: ${pkg.name}`,
  `Version: ${pkg.version}`,
  'Architecture: all',
  `Maintainer: ${MAINTAINER}`,
  `Installed-Size: ${installedKiB}`,
  `Depends: ${depends.join(', ')}`,
  `Recommends: ${recommends.join(', ')}`,
  `Suggests: ${suggests.join(', ')}`,
  'Section: utils',
  'Priority: optional',
  'Description: A/B disks and signed SWUpdate bundles from embedded-Linux images',
  ' otapack converts a built disk image (Buildroot, Armbian or GPT/EFI) into an',
  ' A/B disk to flash once, with U-Boot or GRUB fallback logic and SWUpdate',
  ' wired in, its bmap, and signed, optionally encrypted SWUpdate bundles for',
  ' every update after. It needs no root: partition tables are written by',
  ' otapack itself and filesystems are edited with e2fsprogs and mtools.',
  ' .',
  ' This package runs gzip payloads on Node.js zlib; the npm package also',
  ' builds an optional, faster libdeflate codec.',
  '',
].join('\n'));
const sums = walk(tree).filter((f) => lstatSync(f).isFile() && !relative(tree, f).startsWith('DEBIAN'))
  .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(tree, f)}`).sort();
writeFileSync(join(tree, 'DEBIAN/md5sums'), sums.join('\n') + '\n');
for (const f of walk(join(tree, 'DEBIAN'))) normalise(f);
normalise(tree);

// 4. the package: owned by root:root without being root
const deb = join(outDir, `${pkg.name}_${pkg.version}_all.deb`);
rmSync(deb, { force: true });
run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', tree, deb]);
say(`${shown(deb)}  ${(statSync(deb).size / 1024).toFixed(0)} KiB, ${sums.length} files, installed ${installedKiB} KiB`);

// ---------------------------------------------------------------------------------------------

function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

/** Debian's modes (0755 folders and programs, 0644 the rest) and one timestamp for everything. */
function normalise(f) {
  const st = lstatSync(f);
  if (st.isSymbolicLink()) return;
  const exec = st.isDirectory() || f === join(app, 'bin/otapack') || /^#!/.test(readFileSync(f).subarray(0, 2).toString()) && (st.mode & 0o111) !== 0;
  chmodSync(f, exec ? 0o755 : 0o644);
  utimesSync(f, epoch, epoch);
}

function writeGz(path, data) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, gzipSync(data, { level: 9 })); // no name, no time in the header (gzip -9n)
}

function changelog() {
  const date = new Date(epoch * 1000).toUTCString().replace(/GMT$/, '+0000');
  return `${pkg.name} (${pkg.version}) unstable; urgency=medium\n\n  * Release ${pkg.version}: see /usr/share/doc/otapack/README.md.gz.\n\n -- ${MAINTAINER}  ${date}\n`;
}

/** DEP-5: otapack (MIT), then each bundled module with its own licence text. */
function copyright() {
  const para = (text) => text.trim().split('\n').map((l) => (l.trim() ? ` ${l.trimEnd()}` : ' .')).join('\n');
  const stanzas = [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    `Upstream-Name: ${pkg.name}`,
    '',
    'Files: *',
    `Copyright: ${new Date(epoch * 1000).getUTCFullYear()} the otapack authors`,
    `License: ${pkg.license}`,
    para(readFileSync(join(root, 'LICENSE'), 'utf8').replace(/^MIT License\s*\n/, '').replace(/^Copyright.*\n/m, '')),
  ];
  const modules = readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.')).sort();
  for (const name of modules) {
    const dir = join(app, 'node_modules', name);
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const file = [...licenceOrReadme.keys()].find((k) => k.startsWith(`${name}/`) && /\/licen[cs]e/i.test(k))?.slice(name.length + 1);
    if (!file) throw new Error(`node_modules/${name} has no licence file`);
    // a GPL text goes by reference, as Debian wants (lintian: copyright-file-contains-full-gpl-license)
    let text = readFileSync(join(dir, file), 'utf8');
    const gpl = text.search(/^\s*GNU GENERAL PUBLIC LICENSE\s*$/m);
    if (gpl >= 0 && /GPL-2/.test(meta.license)) text = `${text.slice(0, gpl).trimEnd()}\n\nOn Debian systems, the complete text of the GNU General Public License version 2\nis in /usr/share/common-licenses/GPL-2.\n`;
    else if (gpl >= 0) throw new Error(`node_modules/${name}: a GPL text under licence ${meta.license}: say which GPL in scripts/package.mjs`);
    const holders = text.split('\n').filter((l) => /^\s*Copyright\b/i.test(l) && /\d{4}/.test(l)).map((l) => l.trim().replace(/^Copyright\s*(\(c\))?\s*/i, ''));
    const license = String(meta.license).replace(/^\((.*)\)$/, '$1').replace(/ OR /g, ' or ');
    stanzas.push('', `Files: usr/lib/otapack/node_modules/${name}/*`, `Copyright: ${holders.length ? holders.join('\n ') : meta.author?.name ?? meta.author ?? name}`, `License: ${license}`, para(text));
  }
  return stanzas.join('\n') + '\n';
}
