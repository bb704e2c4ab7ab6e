// No command writes over one of its inputs. Every output that is an input (the same path, the
// same file through a symlink, a hard link of it, or a path inside an input folder) is refused
// before any work: exit 2, one line naming both paths, the input's bytes unchanged and nothing
// new anywhere in the folder (the whole tree is compared: names, bytes, inodes). Re-signing a
// bundle in place stays allowed (temp file + rename) and gives a bundle the real client accepts.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { writeFileSync, mkdirSync, symlinkSync, linkSync, copyFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, expectCleanFailure, ROOT } from './helpers/run.js';
import { keygen, makeExt4, writeSpec, abSpec } from './helpers/bundle-fixtures.js';
import { swupdateOk } from './helpers/swupdate.js';
import { snapshot, sha256 } from './helpers/tree.js';

let dir: string;
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const SIGN = ['--key', 'k/signing.key', '--cert', 'k/signing.crt'];

beforeAll(async () => {
  dir = tmp('otapack-noclobber-');
  await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  await keygen(join(dir, 'ca'), ['--ca', '--type', 'rsa2048']);
  await makeExt4(join(dir, 'rootfs.ext4'), 6);
  writeFileSync(join(dir, 'post.sh'), '#!/bin/sh\necho done\n');
  writeSpec(dir, 'spec.yaml', abSpec({ slotA: '/dev/mmcblk0p2', slotB: '/dev/mmcblk0p3', file: 'rootfs.ext4', encrypt: true, extra: 'scripts:\n  - file: post.sh\n' }));
  const b = await otapack(['bundle', 'spec.yaml', '-o', 'b.swu', ...SIGN, '--aes-key', 'k/aes.key', '-q'], { cwd: dir });
  expect(b.code, b.stderr).toBe(0);
  writeFileSync(join(dir, 'sig.der'), 'not a signature yet');
  writeFileSync(join(dir, 'fake.so'), 'not a module');
  await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), join(dir, 'img')]);
}, 300_000);

/**
 * Runs a command that must be refused: exit 2 with one line naming the output and the input, the
 * input's bytes the same as before, and the whole test folder exactly as it was.
 */
async function refused(args: string[], o: { out: string; input: string; inputFile?: string; via?: string; cwd?: string; env?: Record<string, string> }): Promise<string> {
  const cwd = o.cwd ?? dir;
  const inputFile = join(cwd, o.inputFile ?? o.input);
  const before = snapshot(dir);
  const bytes = sha256(inputFile);
  const r = await otapack(args, { cwd, env: o.env });
  expectCleanFailure(r, 2, new RegExp(`output (\\S+ )*${esc(o.out)} (is the same file as|is|is inside) the [^;]*${esc(o.input)}[^;]*${o.via ? esc(o.via) : ''}; refusing to`));
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stdout).toBe('');
  expect(sha256(inputFile)).toBe(bytes);
  expect(snapshot(dir)).toEqual(before);
  return r.stderr;
}

describe('bundle refuses an output that is one of its inputs', () => {
  const B = ['bundle', 'spec.yaml', ...SIGN, '--aes-key', 'k/aes.key'];
  test('the image payload, the script payload, the spec', async () => {
    await refused([...B, '-o', 'rootfs.ext4'], { out: 'rootfs.ext4', input: 'rootfs.ext4 (from spec.yaml)', inputFile: 'rootfs.ext4' });
    await refused([...B, '-o', 'post.sh'], { out: 'post.sh', input: 'post.sh (from spec.yaml)', inputFile: 'post.sh' });
    await refused([...B, '-o', 'spec.yaml'], { out: 'spec.yaml', input: 'spec.yaml' });
  });

  test('the signing key, its certificate, the AES key, the chain, the PKCS#11 module', async () => {
    const msg = await refused([...B, '-o', 'k/signing.key'], { out: 'k/signing.key', input: 'k/signing.key' });
    expect(msg).toMatch(/the signing key k\/signing\.key/);
    await refused([...B, '-o', 'k/signing.crt'], { out: 'k/signing.crt', input: 'k/signing.crt' });
    await refused([...B, '-o', 'k/aes.key'], { out: 'k/aes.key', input: 'k/aes.key' });
    await refused(['bundle', 'spec.yaml', '--key', 'ca/signing.key', '--cert', 'ca/signing.crt', '--chain', 'ca/ca.crt', '--aes-key', 'k/aes.key', '-o', 'ca/ca.crt'], { out: 'ca/ca.crt', input: 'ca/ca.crt' });
    await refused(['bundle', 'spec.yaml', '--key', 'pkcs11:token=t;object=o', '--pkcs11-module', 'fake.so', '--aes-key', 'k/aes.key', '-o', 'fake.so'], { out: 'fake.so', input: 'fake.so' });
  });

  test('keys named by $OTAPACK_SIGNING_KEY, $OTAPACK_SIGNING_CERT and $OTAPACK_AES_KEY (paths)', async () => {
    const env = { OTAPACK_SIGNING_KEY: 'k/signing.key', OTAPACK_SIGNING_CERT: 'k/signing.crt', OTAPACK_AES_KEY: 'k/aes.key' };
    await refused(['bundle', 'spec.yaml', '-o', 'k/signing.key'], { out: 'k/signing.key', input: 'k/signing.key', env });
    await refused(['bundle', 'spec.yaml', '-o', 'k/aes.key'], { out: 'k/aes.key', input: 'k/aes.key', env });
  });

  test('a hard link of the payload, a symlink to the key, a path through a symlinked folder', async () => {
    linkSync(join(dir, 'rootfs.ext4'), join(dir, 'hard.swu'));
    symlinkSync('k/signing.key', join(dir, 'key.swu'));
    symlinkSync('.', join(dir, 'here'));
    await refused([...B, '-o', 'hard.swu'], { out: 'hard.swu', input: 'rootfs.ext4', via: '(a hard link to it)' });
    await refused([...B, '-o', 'key.swu'], { out: 'key.swu', input: 'k/signing.key', via: '(through a symlink)' });
    await refused([...B, '-o', 'here/spec.yaml'], { out: 'here/spec.yaml', input: 'spec.yaml', via: '(through a symlink)' });
  });

  test('the control: a fresh output is written', async () => {
    const r = await otapack([...B, '-o', 'fresh.swu', '-q'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('sign and manifest', () => {
  test('sign refuses its key, certificate, signature and trust file as output', async () => {
    await refused(['sign', 'b.swu', ...SIGN, '-o', 'k/signing.key'], { out: 'k/signing.key', input: 'k/signing.key' });
    await refused(['sign', 'b.swu', ...SIGN, '-o', 'k/signing.crt'], { out: 'k/signing.crt', input: 'k/signing.crt' });
    await refused(['sign', 'b.swu', '--signature', 'sig.der', '-o', 'sig.der'], { out: 'sig.der', input: 'sig.der' });
    await refused(['sign', 'b.swu', '--signature', 'sig.der', '--trust', 'ca/ca.crt', '-o', 'ca/ca.crt'], { out: 'ca/ca.crt', input: 'trust file ca/ca.crt' , inputFile: 'ca/ca.crt' });
  });

  test('manifest refuses to write over the bundle it reads', async () => {
    await refused(['manifest', 'b.swu', '-o', 'b.swu'], { out: 'b.swu', input: 'b.swu' });
  });

  test('sign may re-sign a bundle in place: atomic (a new inode, no temp left), and the client accepts the result', async () => {
    const b = join(dir, 'inplace.swu');
    copyFileSync(join(dir, 'b.swu'), b);
    const ino = statSync(b).ino;
    const r = await otapack(['sign', 'inplace.swu', '-o', 'inplace.swu', '--key', 'ca/signing.key', '--cert', 'ca/signing.crt', '-q'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(b).ino).not.toBe(ino);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const v = await otapack(['verify', 'inplace.swu', '--trust', 'ca/ca.crt', '--aes-key', 'k/aes.key'], { cwd: dir });
    expect(v.code, v.stderr).toBe(0);
    const c = await swupdateOk(b, { check: true, cert: join(dir, 'ca/ca.crt'), aesKey: join(dir, 'k/aes.key'), select: 'stable,copy1' });
    expect(c.ok, c.output).toBe(true);
  });
});

describe('convert refuses outputs in OUTDIR that are its inputs', () => {
  const img = (): string => join(dir, 'img');
  test('-o the input image\'s own folder, through a symlinked folder, and a hard link of the image', async () => {
    await refused(['convert', 'sdcard.img', '-o', '.'], { cwd: img(), out: 'sdcard.img', input: 'input image sdcard.img', inputFile: 'sdcard.img' });
    symlinkSync('.', join(img(), 'same'));
    await refused(['convert', 'sdcard.img', '-o', 'same'], { cwd: img(), out: 'same/sdcard.img', input: 'sdcard.img', via: '(through a symlink)' });
    mkdirSync(join(img(), 'out'));
    linkSync(join(img(), 'sdcard.img'), join(img(), 'out/sdcard.img'));
    await refused(['convert', 'sdcard.img', '-o', 'out'], { cwd: img(), out: 'out/sdcard.img', input: 'sdcard.img', via: '(a hard link to it)' });
  });

  test('the config, a key, the trust file and the AES key where an output goes', async () => {
    mkdirSync(join(dir, 'cfg'));
    writeFileSync(join(dir, 'cfg/sdcard.json'), '{ "version": "1.0.0" }\n');
    await refused(['convert', 'img/sdcard.img', '-c', 'cfg/sdcard.json', '-o', 'cfg'], { out: 'cfg/sdcard.json', input: 'config cfg/sdcard.json', inputFile: 'cfg/sdcard.json' });
    mkdirSync(join(dir, 'o2'));
    copyFileSync(join(dir, 'k/signing.key'), join(dir, 'o2/sdcard.swu'));
    await refused(['convert', 'img/sdcard.img', '--key', 'o2/sdcard.swu', '--cert', 'k/signing.crt', '-o', 'o2'], { out: 'o2/sdcard.swu', input: 'signing key o2/sdcard.swu', inputFile: 'o2/sdcard.swu' });
    mkdirSync(join(dir, 'o3'));
    copyFileSync(join(dir, 'k/signing.crt'), join(dir, 'o3/sdcard.bmap'));
    await refused(['convert', 'img/sdcard.img', '--unsigned', '--trust', 'o3/sdcard.bmap', '-o', 'o3'], { out: 'o3/sdcard.bmap', input: 'trust file o3/sdcard.bmap', inputFile: 'o3/sdcard.bmap' });
  });

  test('generated development keys would replace the --aes-key in OUTDIR/keys', async () => {
    mkdirSync(join(dir, 'o4/keys'), { recursive: true });
    copyFileSync(join(dir, 'k/aes.key'), join(dir, 'o4/keys/aes.key'));
    await refused(['convert', 'img/sdcard.img', '--aes-key', 'o4/keys/aes.key', '-o', 'o4'], { out: 'development key o4/keys/aes.key', input: 'AES key o4/keys/aes.key', inputFile: 'o4/keys/aes.key' });
  });

  test('files and folders the config copies into the image (data.files, rootfs.files)', async () => {
    mkdirSync(join(dir, 'o5'));
    writeFileSync(join(dir, 'o5/sdcard.img'), 'seed for the data partition\n');
    writeFileSync(join(dir, 'data.yaml'), 'data:\n  files:\n    - source: o5/sdcard.img\n      target: /seed.txt\n');
    await refused(['convert', 'img/sdcard.img', '-c', 'data.yaml', '--unsigned', '-o', 'o5'], { out: 'o5/sdcard.img', input: 'data.files source', inputFile: 'o5/sdcard.img' });
    mkdirSync(join(dir, 'tree/etc'), { recursive: true });
    writeFileSync(join(dir, 'tree/etc/motd'), 'hello\n');
    writeFileSync(join(dir, 'rootfs.yaml'), 'rootfs:\n  files:\n    - source: tree\n      target: /opt/tree\n');
    const msg = await refused(['convert', 'img/sdcard.img', '-c', 'rootfs.yaml', '--unsigned', '-o', 'tree/out'], { out: 'tree/out', input: 'rootfs.files source', inputFile: 'tree/etc/motd' });
    expect(msg).toMatch(/is inside the rootfs\.files source \S+\/tree \(from rootfs\.yaml\); refusing to write into an input folder/);
  });
});
