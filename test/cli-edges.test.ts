// The command line at its edges: a typo in a required option is named as the typo (with the
// suggestion), not as the missing option; with --json every failure, option-parsing errors
// included, prints exactly one otapack.error/1 object; a disk otapack already converted is listed
// as such by inspect and refused by convert with that reason; a checkout that was never built
// says how to build it, in one line.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { mkdirSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, expectCleanFailure, ROOT, type CliResult } from './helpers/run.js';
import { keygen, makeExt4, writeSpec, abSpec } from './helpers/bundle-fixtures.js';
import { buildEfiImage } from './helpers/images.js';
import { documentedSchemas, validate } from './helpers/json-schema.js';

const errorSchema = documentedSchemas().get('otapack.error/1')!;
let dir: string;

beforeAll(async () => {
  dir = tmp('otapack-cli-edges-');
  await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  await makeExt4(join(dir, 'rootfs.ext4'), 4);
  writeSpec(dir, 'spec.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: 'rootfs.ext4' }));
  const b = await otapack(['bundle', 'spec.yaml', '-o', 'b.swu', '--unsigned', '-q'], { cwd: dir });
  expect(b.code, b.stderr).toBe(0);
}, 120_000);

/** stdout is exactly one JSON object, a valid otapack.error/1 whose exitCode is the exit status. */
function jsonError(r: CliResult, code: string, exitCode: number): { message: string } {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`stdout is not exactly one JSON object (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  expect(validate(j, errorSchema)).toEqual([]);
  expect(j).toMatchObject({ schema: 'otapack.error/1', ok: false, code, exitCode });
  expect(r.code).toBe(exitCode);
  expect(String(j.message)).not.toContain('\n');
  return j as { message: string };
}

describe('a typo in a required option', () => {
  const cases: [string, string[], string, string][] = [
    ['bundle', ['bundle', 'spec.yaml', '--unsigned', '--ouput', 'x.swu'], '--ouput', '--output'],
    ['sign', ['sign', 'b.swu', '--key', 'k/signing.key', '--cert', 'k/signing.crt', '--ouput', 'x.swu'], '--ouput', '--output'],
    ['convert', ['convert', 'disk.img', '--outptu', 'out'], '--outptu', '--output'],
    ['keygen', ['keygen', '--otu', 'keys'], '--otu', '--out'],
  ];
  for (const [name, args, typo, meant] of cases) {
    test(`${name} ${typo}: "unknown option ... (Did you mean ${meant}?)", exit 2, nothing written; with --json one error object`, async () => {
      const r = await otapack(args, { cwd: dir });
      expectCleanFailure(r, 2, new RegExp(`error: unknown option '${typo}' \\(Did you mean ${meant}\\?\\)`));
      expect(r.stderr).not.toMatch(/required option/);
      expect(existsSync(join(dir, 'x.swu')) || existsSync(join(dir, 'keys')) || existsSync(join(dir, 'out'))).toBe(false);
      const j = jsonError(await otapack([...args, '--json'], { cwd: dir }), 'USAGE', 2);
      expect(j.message).toBe(`unknown option '${typo}' (Did you mean ${meant}?)`);
    });
  }

  test('a required option that is really missing is still named', async () => {
    const r = await otapack(['bundle', 'spec.yaml', '--unsigned'], { cwd: dir });
    expectCleanFailure(r, 2, /error: required option '-o, --output <file>' not specified/);
    jsonError(await otapack(['bundle', 'spec.yaml', '--unsigned', '--json'], { cwd: dir }), 'USAGE', 2);
    expectCleanFailure(await otapack(['keygen']), 2, /required option '--out <dir>' not specified/);
  });
});

describe('--json: every option-parsing failure prints one otapack.error/1 object', () => {
  const cases: [string, string[], RegExp][] = [
    ['a missing argument', ['bundle', '-o', 'x.swu', '--json'], /missing required argument 'spec'/],
    ['a value not among the choices', ['keygen', '--out', 'k2', '--type', 'rsa512', '--json'], /argument 'rsa512' is invalid\. Allowed choices are/],
    ['an option without its value', ['sign', 'b.swu', '--json', '-o'], /option '-o, --output <file>' argument missing/],
    ['an unknown command', ['bundel', 'spec.yaml', '--json'], /unknown command 'bundel'/],
    ['too many arguments', ['verify', 'b.swu', 'c.swu', '--json'], /too many arguments/],
    ['an unknown option on a command without --json of its own', ['manifest', 'b.swu', '--jsn', '--json'], /unknown option '--jsn'/],
  ];
  for (const [name, args, pattern] of cases) {
    test(name, async () => {
      const r = await otapack(args, { cwd: dir });
      expect(jsonError(r, 'USAGE', 2).message).toMatch(pattern);
      expect(r.stderr).toMatch(pattern);
      // the twin without --json: the same message, nothing on stdout
      const plain = await otapack(args.filter((a) => a !== '--json'), { cwd: dir });
      expect(plain.code).toBe(2);
      expect(plain.stdout).toBe('');
    });
  }
});

describe('a disk otapack already converted', () => {
  let ab: string;
  let efiAb: string;
  beforeAll(async () => {
    await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), join(dir, 'img')]);
    const c = await otapack(['convert', 'img/sdcard.img', '-o', 'conv', '-q'], { cwd: dir });
    expect(c.code, c.stderr).toBe(0);
    ab = join(dir, 'conv/sdcard.img');
    const efi = await buildEfiImage(join(dir, 'efi'));
    const e = await otapack(['convert', efi.path, '-o', join(dir, 'conv-efi'), '-q']);
    expect(e.code, e.stderr).toBe(0);
    efiAb = join(dir, 'conv-efi', efi.path.replace(/^.*\//, ''));
  }, 300_000);

  test('inspect lists its table with the roles and says it is already an A/B disk (U-Boot)', async () => {
    const r = await otapack(['inspect', ab]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^input: otapack A\/B disk, MBR .*U-Boot, converted for \/dev\/mmcblk0$/m);
    expect(r.stderr).toMatch(/^ {2}p1 .* boot \(A\/B boot files: \/boot\.scr, \/otapack\.env/m);
    expect(r.stderr).toMatch(/^ {2}p2 .* rootfs-a \(slot A; \/etc\/otapack\/slots\.conf\)$/m);
    expect(r.stderr).toMatch(/^ {2}p3 .* rootfs-b \(slot B\)$/m);
    expect(r.stderr).toMatch(/^ {2}p4 .* data$/m);
    expect(r.stderr).toMatch(/^already an otapack A\/B disk: convert refuses it/m);
    // the twin: the original image is planned as usual
    const orig = await otapack(['inspect', join(dir, 'img/sdcard.img')]);
    expect(orig.code).toBe(0);
    expect(orig.stderr).toMatch(/^plan: rootfs -> slot A/m);
    expect(orig.stderr).not.toMatch(/already an otapack/);
  });

  test('convert refuses it: exit 4, one line with the reason, no OUTDIR', async () => {
    const r = await otapack(['convert', ab, '-o', join(dir, 'again/out')]);
    expectCleanFailure(r, 4, /conv\/sdcard\.img: already an otapack A\/B disk \(slots A and B are partitions 2 and 3, named by \/etc\/otapack\/slots\.conf in partition 2\); convert the original image instead/);
    expect(r.stderr).not.toMatch(/follow the rootfs/);
    expect(existsSync(join(dir, 'again'))).toBe(false);
    jsonError(await otapack(['convert', ab, '-o', join(dir, 'again/out'), '--json']), 'INPUT', 4);
  });

  test('the same for a GPT/EFI disk (GRUB)', async () => {
    const r = await otapack(['inspect', efiAb]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^input: otapack A\/B disk, GPT .*GRUB/m);
    expect(r.stderr).toMatch(/^already an otapack A\/B disk/m);
    expectCleanFailure(await otapack(['convert', efiAb, '-o', join(dir, 'again-efi')]), 4, /already an otapack A\/B disk/);
  });
});

test('bin/otapack in a checkout that was never built: one line saying to build, exit 7 (and the JSON error with --json)', async () => {
  const clone = tmp('otapack-unbuilt-');
  mkdirSync(join(clone, 'bin'));
  copyFileSync(join(ROOT, 'bin/otapack'), join(clone, 'bin/otapack'));
  copyFileSync(join(ROOT, 'package.json'), join(clone, 'package.json'));
  const run = async (args: string[]): Promise<CliResult> => {
    const r = await execa(process.execPath, [join(clone, 'bin/otapack'), ...args], { reject: false, env: { NO_COLOR: '1' } });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const r = await run(['--version']);
  expectCleanFailure(r, 7, /^otapack: error: otapack is not built: run `npm install` and `npm run build` in /);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(jsonError(await run(['verify', 'x.swu', '--json']), 'TOOL', 7).message).toMatch(/npm run build/);
  // the twin: the built checkout starts
  expect((await otapack(['--version'])).code).toBe(0);
});
