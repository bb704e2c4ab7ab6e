// What an installation of otapack consists of and says about itself: the npm tarball's contents,
// the production dependencies, `otapack --version` (judged against dpkg's own versions of the
// tools), and the man page and bash completion generated from the command line. The tarball
// installed and run as a user runs it is the examples' tests (test/examples-*.test.ts) and, with
// the Debian package, .ci/run.
import { describe, test, expect } from 'vitest';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, ROOT, expectCleanFailure } from './helpers/run.js';
import { requires } from './helpers/require-tool.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; man: string[] };
const COMMANDS = ['keygen', 'bundle', 'sign', 'manifest', 'verify', 'convert', 'inspect'];
const haveDpkg = requires({ what: "judging otapack --version by dpkg's versions", tools: ['dpkg-query'], install: 'a Debian system' });
const haveGroff = requires({ what: 'checking the man page and completion', tools: ['groff', 'bash'], install: 'apt-get install groff-base bash' });

/** The option flags `otapack [cmd] --help` lists. */
async function helpFlags(cmd?: string): Promise<string[]> {
  const r = await otapack(cmd ? [cmd, '--help'] : ['--help']);
  expect(r.code).toBe(0);
  const options = r.stdout.split(/^Options:$/m)[1]!.split(/^Commands:$/m)[0]!;
  return [...options.matchAll(/^ {2}(-[\w-]+)(?:, (--[\w-]+))?/gm)].flatMap((m) => m.slice(1).filter((f): f is string => !!f)).filter((f) => f !== '-h' && f !== '--help');
}

describe('the npm package', () => {
  test('npm pack holds the built CLI, its man page and completion, the templates and the native codec sources; no source maps, sources or tests', async () => {
    const r = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT });
    const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    for (const f of ['bin/otapack', 'dist/cli/main.js', 'dist/cli/version.js', 'dist/index.js', 'dist/index.d.ts', 'dist/man/otapack.1', 'dist/completion/otapack',
      'native/deflate.c', 'native/deflate-walk.h', 'native/build.mjs', 'templates/boot/uboot-ab.cmd', 'templates/device/otapack-update', 'README.md', 'LICENSE', 'package.json']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /\.map$|^(src|test|scripts|examples|bench|\.ci)\/|^native\/build\//.test(f))).toEqual([]);
    expect(pkg.man).toEqual(['./dist/man/otapack.1']);
  });

  test('production dependencies are exactly the packages src/ imports at run time', () => {
    const sources = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const imported = new Set<string>();
    for (const f of sources(join(ROOT, 'src'))) {
      // static and dynamic imports, and require() (node-forge's parts are loaded that way)
      for (const m of readFileSync(f, 'utf8').matchAll(/^\s*import\s+(type\s+)?[^'";]*?from\s+'([^'.][^']*)'|(?:import|require)\('([^'.][^']*)'\)/gm)) {
        const spec = m[2] ?? m[3]!;
        if (m[1] || spec.startsWith('node:')) continue; // types vanish at run time; node: is Node itself
        imported.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    }
    expect(Object.keys(pkg.dependencies).sort()).toEqual([...imported].sort());
  });
});

test('every program src/ runs is listed with its Debian package (what --version reports and the .deb depends on)', async () => {
  const { TOOL_SOURCES } = await import('../dist/util/tool-report.js');
  const listed = new Set(TOOL_SOURCES.flatMap((t: { programs: string[] }) => t.programs));
  const sources = (dir: string): string[] => readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  const run = new Set<string>();
  for (const f of sources(join(ROOT, 'src'))) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\b(?:run|runBuffer|requireTool|spawnStream|which)\(\s*'([\w.+-]+)'/g)) run.add(m[1]!);
    for (const m of text.matchAll(/\btool = [^;]*/g)) for (const q of m[0].matchAll(/'([\w.+-]+)'/g)) run.add(q[1]!); // a tool chosen by a condition
  }
  run.delete('sh'); // dash: essential in Debian
  run.delete('mkfifo'); // coreutils: essential in Debian
  expect(run.size).toBeGreaterThan(10);
  expect([...run].filter((p) => !listed.has(p)).sort()).toEqual([]);
});

test('run by a Node.js older than package.json\'s engines: one line naming both versions, exit 7 (not a stack trace)', async () => {
  // this Node stands in for an old one: the copy's engines ask for a newer one (its twin, the
  // real package.json, starts: every other test)
  const copy = tmp('otapack-engines-');
  mkdirSync(join(copy, 'bin'));
  copyFileSync(join(ROOT, 'bin/otapack'), join(copy, 'bin/otapack'));
  writeFileSync(join(copy, 'package.json'), JSON.stringify({ ...pkg, engines: { node: '>=99.1' } }));
  const r = await execa(process.execPath, [join(copy, 'bin/otapack'), '--version'], { reject: false });
  expectCleanFailure({ code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) }, 7,
    new RegExp(`^otapack: error: otapack needs Node\\.js 99\\.1 or later; ${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is ${process.versions.node.replace(/\./g, '\\.')}$`, 'm'));
});

describe('otapack --version', () => {
  /** `otapack --version`'s tool rows: [package, version or MISSING, programs…]. */
  const toolRows = (stdout: string): string[][] => stdout.trim().split('\n').slice(4).map((l) => l.trim().split(/\s+/));

  test('the version, where it runs from, the gzip engine, and each package otapack runs programs from', async () => {
    const r = await otapack(['--version']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`otapack ${pkg.version} (${ROOT.replace(/\/$/, '')})`);
    expect(lines[1]).toBe(`node ${process.versions.node} (${process.execPath})`);
    const { deflateEngine } = await import('../dist/compress/native-deflate.js');
    expect(lines[2]).toMatch(new RegExp(`^gzip codec: ${deflateEngine().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(`));
    expect(lines[3]).toBe('external tools:');
    expect(toolRows(r.stdout).map((row) => row[0])).toEqual(['e2fsprogs', 'mtools', 'dosfstools', 'zstd', 'openssl', 'xz-utils', 'zchunk', 'opensc', 'grub-common']);
  });

  test.skipIf(!haveDpkg)('each version it reports is the one dpkg has installed', async () => {
    const r = await otapack(['--version']);
    for (const [name, version] of toolRows(r.stdout)) {
      // the judge is dpkg: the version a program reports is part of its package's version
      const installed = (await execa('dpkg-query', ['-W', '-f', '${Version}', name!])).stdout;
      expect(installed, `${name}: otapack says ${version}`).toContain(version!);
    }
  });

  test('a tool that is missing is named with its package and what needs it; OTAPACK_DEFLATE=zlib shows in the gzip line; exit 0 all the same', async () => {
    // PATH holds only node: otapack still looks in /usr/sbin and /sbin (e2fsprogs, mkfs.vfat)
    const bin = join(tmp('otapack-version-'), 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const r = await otapack(['--version'], { env: { PATH: bin, OTAPACK_DEFLATE: 'zlib' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^gzip codec: node:zlib \S+ \(libdeflate addon off: OTAPACK_DEFLATE=zlib\)$/m);
    expect(r.stdout).toMatch(/^ {2}zstd +MISSING +zstd: needed for zstd payloads, \.img\.zst input \(apt-get install zstd\)$/m);
    expect(r.stdout).toMatch(/^ {2}opensc +MISSING +pkcs11-tool: only for signing with a pkcs11: key \(apt-get install opensc\)$/m);
    expect(r.stdout).toMatch(/^ {2}e2fsprogs +\d[\d.]* +mke2fs/m); // its twin: found in /usr/sbin
  });

  test('--help does not probe anything: it stays fast (no tool report)', async () => {
    const r = await otapack(['--help'], { env: { PATH: '/nonexistent' } });
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('-V, --version print the version, the gzip codec engine and the external tools found');
    expect(r.stdout).not.toMatch(/external tools:/);
  });
});

describe.skipIf(!haveGroff)('man page and bash completion (generated from the command line)', () => {
  const man = readFileSync(join(ROOT, 'dist/man/otapack.1'), 'utf8');
  const completion = join(ROOT, 'dist/completion/otapack');

  test('the man page is valid roff, has every command and every option --help lists, and the exit codes', async () => {
    const g = await execa('groff', ['-man', '-ww', '-z', join(ROOT, 'dist/man/otapack.1')], { reject: false, all: true });
    expect(g.exitCode, g.all).toBe(0);
    expect(g.all).toBe('');
    expect(man).toMatch(new RegExp(`^\\.TH OTAPACK 1 \\S+ "otapack ${pkg.version.replace(/\./g, '\\.')}"`, 'm'));
    const roffFlag = (f: string): string => `\\fB${f.replace(/-/g, '\\-')}\\fR`;
    for (const f of await helpFlags()) expect(man, f).toContain(roffFlag(f));
    for (const c of COMMANDS) {
      expect(man).toContain(`.SS "otapack ${c} `);
      const section = man.split(`.SS "otapack ${c} `)[1]!.split('.SS ')[0]!;
      for (const f of await helpFlags(c)) expect(section, `${c} ${f}`).toContain(roffFlag(f));
    }
    expect(man).toMatch(/^\.SH EXIT STATUS\n\.TP\n\.B 0\nsuccess$/m);
    expect(man).toContain('.B 70\ninternal error');
  });

  /** COMPREPLY after `words` (the last one being completed) in a bash with the completion loaded. */
  async function complete(words: string[], cwd?: string): Promise<string[]> {
    const script = `source ${JSON.stringify(completion)}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _otapack; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = await execa('bash', ['--norc', '--noprofile', '-c', script], { cwd });
    return r.stdout.split('\n').filter(Boolean).sort();
  }

  test('bash completion: commands, each command\'s options as --help lists them, choices, folders for --out', async () => {
    expect(await complete(['otapack', ''])).toEqual([...COMMANDS, 'help'].sort());
    expect(await complete(['otapack', 'con'])).toEqual(['convert']);
    expect(await complete(['otapack', '--'])).toEqual(['--debug', '--help', '--quiet', '--version']);
    for (const c of COMMANDS) {
      const flags = (await helpFlags(c)).filter((f) => f.startsWith('--'));
      expect(await complete(['otapack', c, '--']), c).toEqual([...flags, '--help'].sort());
    }
    const keygenHelp = (await otapack(['keygen', '--help'])).stdout.replace(/\s+/g, ' ');
    const types = /--type <type> key type \(choices: ([^)]*?)(?:, default: [^)]*)?\)/.exec(keygenHelp)![1]!.split(', ').map((s) => s.replace(/"/g, ''));
    expect(await complete(['otapack', 'keygen', '--type', ''])).toEqual(types.sort());
    expect(await complete(['otapack', 'verify', '--cert-purpose', 'c'])).toEqual(['codeSigning']);
    const here = tmp('otapack-complete-');
    mkdirSync(join(here, 'outdir'));
    writeFileSync(join(here, 'outfile'), '');
    expect(await complete(['otapack', 'convert', 'x.img', '-o', 'out'], here)).toEqual(['outdir']);
    // a file argument: nothing from us, so bash's own filename completion (complete -o default) runs
    expect(await complete(['otapack', 'verify', 'out'], here)).toEqual([]);
  });
});
