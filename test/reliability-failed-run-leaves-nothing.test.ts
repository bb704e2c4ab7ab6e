// A run that fails leaves no new file and no new folder anywhere: for each command, failures
// before any work (missing input, bad key, bad config), failures after its output folder and temp
// files exist (not a disk image, a plan that does not fit, a signing command that fails, a corrupt
// bundle) and a failure at the very end (convert's development keys cannot be published) leave
// the folder exactly as it was, including not creating OUTDIR. Development keys are written only
// with the other outputs, after every input was checked.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { writeFileSync, mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, expectCleanFailure, ROOT, type CliResult } from './helpers/run.js';
import { keygen, makeExt4, writeSpec, abSpec } from './helpers/bundle-fixtures.js';
import { snapshot } from './helpers/tree.js';
import { stageFiles } from '../src/util/atomic-file.js';

let dir: string;
const SIGN = ['--key', 'k/signing.key', '--cert', 'k/signing.crt'];

beforeAll(async () => {
  dir = tmp('otapack-failed-run-');
  await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  await makeExt4(join(dir, 'rootfs.ext4'), 6);
  writeSpec(dir, 'spec.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: 'rootfs.ext4' }));
  writeSpec(dir, 'enc.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: 'rootfs.ext4', encrypt: true }));
  writeSpec(dir, 'missing.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: 'nope.ext4' }));
  writeFileSync(join(dir, 'bad.yaml'), 'storage: [unclosed\n');
  writeFileSync(join(dir, 'tiny-slot.yaml'), 'storage:\n  slot-size: 8M\n');
  writeFileSync(join(dir, 'garbage.key'), '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
  writeFileSync(join(dir, 'notadisk.img'), 'this is not a disk image\n'.repeat(4000));
  const b = await otapack(['bundle', 'spec.yaml', '-o', 'b.swu', ...SIGN, '-q'], { cwd: dir });
  expect(b.code, b.stderr).toBe(0);
  const bad = Buffer.from(readFileSync(join(dir, 'b.swu')));
  bad[bad.indexOf('rootfs.ext4.zst\0') + 300] ^= 1;
  writeFileSync(join(dir, 'corrupt.swu'), bad);
  await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), join(dir, 'img')]);
}, 300_000);

/** Runs a command that must fail with `code`, leaving the test folder exactly as it was. */
async function leavesNothing(args: string[], code: number, pattern: RegExp): Promise<CliResult> {
  const before = snapshot(dir);
  const r = await otapack(args, { cwd: dir });
  expectCleanFailure(r, code, pattern);
  expect(snapshot(dir)).toEqual(before);
  return r;
}

describe('convert', () => {
  test('a missing image: no OUTDIR (nor its parents), no development keys, in a new or an existing folder', async () => {
    const r = await leavesNothing(['convert', 'missing.img', '-o', 'new/out'], 4, /missing\.img: no such file or directory/);
    expect(r.stderr).not.toMatch(/DEVELOPMENT/);
    mkdirSync(join(dir, 'existing'));
    await leavesNothing(['convert', 'missing.img', '-o', 'existing'], 4, /missing\.img/);
    expect(existsSync(join(dir, 'existing/keys'))).toBe(false);
  });

  test('a bad key, a bad config', async () => {
    await leavesNothing(['convert', 'img/sdcard.img', '--key', 'garbage.key', '--cert', 'k/signing.crt', '-o', 'new/out'], 5, /garbage\.key/);
    await leavesNothing(['convert', 'img/sdcard.img', '-c', 'bad.yaml', '-o', 'new/out'], 3, /bad\.yaml:\d+:\d+/);
  });

  test('failures after OUTDIR and its work folders were made: not a disk image, a slot too small for the rootfs', async () => {
    await leavesNothing(['convert', 'notadisk.img', '-o', 'new/out'], 4, /notadisk\.img/);
    await leavesNothing(['convert', 'img/sdcard.img', '-c', 'tiny-slot.yaml', '-o', 'new/out'], 3, /slot-size/);
    mkdirSync(join(dir, 'kept'));
    await leavesNothing(['convert', 'img/sdcard.img', '-c', 'tiny-slot.yaml', '-o', 'kept'], 3, /slot-size/);
  });

  test('a failure at the end, when the development keys are published: none of the outputs appear', async () => {
    mkdirSync(join(dir, 'late'));
    writeFileSync(join(dir, 'late/keys'), 'a file where OUTDIR/keys/ would go\n');
    await leavesNothing(['convert', 'img/sdcard.img', '-o', 'late'], 8, /late\/keys/);
  });

  test('the control: the same run without the obstacle writes every output and the keys together', async () => {
    const r = await otapack(['convert', 'img/sdcard.img', '-o', 'fine', '-q'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(snapshot(join(dir, 'fine')))).toEqual(['keys/', 'keys/aes.key', 'keys/signing.crt', 'keys/signing.key', 'sdcard.bmap', 'sdcard.img', 'sdcard.json', 'sdcard.swu']);
    expect(r.stderr).toMatch(/generated a DEVELOPMENT key pair in fine\/keys/);
  });
});

describe('bundle, sign, manifest, keygen', () => {
  test('bundle: a missing payload, a bad key, no AES key for an encrypted image, a folder that does not exist', async () => {
    await leavesNothing(['bundle', 'missing.yaml', '-o', 'x.swu', '--unsigned'], 3, /nope\.ext4: no such file/);
    await leavesNothing(['bundle', 'spec.yaml', '-o', 'x.swu', '--key', 'garbage.key', '--cert', 'k/signing.crt'], 5, /garbage\.key/);
    await leavesNothing(['bundle', 'enc.yaml', '-o', 'x.swu', ...SIGN], 5, /no AES key/);
    await leavesNothing(['bundle', 'spec.yaml', '-o', 'new/x.swu', '--unsigned'], 8, /new\/x\.swu/);
  });

  test('bundle and sign: a signing command that fails once the output\'s temp file exists', async () => {
    await leavesNothing(['bundle', 'spec.yaml', '-o', 'x.swu', '--sign-command', 'false', '--cert', 'k/signing.crt'], 7, /false/);
    await leavesNothing(['sign', 'b.swu', '-o', 'x.swu', '--sign-command', 'false', '--cert', 'k/signing.crt'], 7, /false/);
  });

  test('sign: a corrupt payload found while copying', async () => {
    await leavesNothing(['sign', 'corrupt.swu', '-o', 'x.swu', ...SIGN], 4, /corrupt\.swu/);
  });

  test('manifest: a missing bundle, not a bundle', async () => {
    await leavesNothing(['manifest', 'missing.swu', '-o', 'm.txt'], 4, /missing\.swu/);
    await leavesNothing(['manifest', 'notadisk.img', '-o', 'm.txt'], 4, /notadisk\.img/);
  });

  test('keygen: a bad option in a new folder, existing keys, and a key file that cannot be written (none of the set appears)', async () => {
    await leavesNothing(['keygen', '--out', 'new/keys', '--days', '0'], 2, /--days/);
    await leavesNothing(['keygen', '--out', 'k'], 2, /exists; refusing to overwrite a key/);
    mkdirSync(join(dir, 'half/aes.key'), { recursive: true });
    await leavesNothing(['keygen', '--out', 'half', '--force', '--type', 'ec256'], 8, /half\/aes\.key/);
  });

  test('staged files: when one cannot be written, the others and the folders made for them are removed', async () => {
    writeFileSync(join(dir, 'plain'), 'a file, not a folder\n');
    const before = snapshot(dir);
    await expect(stageFiles([
      { path: join(dir, 'made/for/a.txt'), data: 'a' },
      { path: join(dir, 'plain/b.txt'), data: 'b' },
    ])).rejects.toThrow(/plain/);
    expect(snapshot(dir)).toEqual(before);
  });
});
