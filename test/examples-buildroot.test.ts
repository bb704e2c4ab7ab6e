// examples/buildroot/post-image.sh, run as Buildroot runs post-image scripts (from the top of
// the tree, BINARIES_DIR first, the shared post-script args after, Buildroot's environment), so
// it cannot rot. otapack is installed into the tree's host folder from this checkout's npm
// tarball, as the README says. The real client judges the result.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync, mkdirSync, copyFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, ROOT } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { installTarball, packTarball } from './helpers/install.js';

let dir: string;
let keys: KeyDir;
let other: KeyDir;
let tarball: string;
let keyPem: string;
let certPem: string;
const client = (bundle: string, cert: string) => swupdateOk(bundle, { check: true, cert, hw: 'sample-board:1.0', select: 'stable,copy2' });

beforeAll(async () => {
  dir = tmp('otapack-examples-');
  [keys, other] = await Promise.all([keygen(join(dir, 'keys'), ['--cn', 'release']), keygen(join(dir, 'other'))]);
  tarball = await packTarball(join(dir, 'release'));
  keyPem = readFileSync(keys.key, 'utf8');
  certPem = readFileSync(keys.cert, 'utf8');
});

describe('Buildroot post-image script (examples/buildroot/post-image.sh)', () => {
  /** A Buildroot tree as the script sees it: board folder, .config, output/{images,host,target,build}. */
  async function buildrootTree(name: string, config: string): Promise<{ top: string; env: Record<string, string>; images: string }> {
    const top = join(dir, name);
    const out = join(top, 'output');
    for (const d of ['board/acme', 'output/images', 'output/host/bin', 'output/target', 'output/build', 'output/staging']) mkdirSync(join(top, d), { recursive: true });
    copyFileSync(join(ROOT, 'examples/buildroot/post-image.sh'), join(top, 'board/acme/post-image.sh'));
    copyFileSync(join(ROOT, 'examples/buildroot/otapack.yaml'), join(top, 'board/acme/otapack.yaml'));
    // README "Integrations": npm install --global --prefix "$HOST_DIR" otapack-X.Y.Z.tgz
    await installTarball(tarball, join(out, 'host'));
    expect(realpathSync(join(out, 'host/bin/otapack'))).toBe(realpathSync(join(out, 'host/lib/node_modules/otapack/bin/otapack')));
    writeFileSync(join(top, 'board/acme/genimage.cfg'), '# genimage config of the board (not ours)\n');
    writeFileSync(join(out, '.config'), config);
    const env = {
      // what Buildroot exports to post-image scripts (manual §9.6, EXTRA_ENV)
      BR2_CONFIG: join(out, '.config'), HOST_DIR: join(out, 'host'), STAGING_DIR: join(out, 'staging'), TARGET_DIR: join(out, 'target'),
      BUILD_DIR: join(out, 'build'), BINARIES_DIR: join(out, 'images'), BASE_DIR: out, CONFIG_DIR: out, O: out,
      PATH: `${join(out, 'host/bin')}:${join(out, 'host/sbin')}:${process.env.PATH}`,
    };
    return { top, env, images: join(out, 'images') };
  }
  // Buildroot: cd $(TOPDIR); $(EXTRA_ENV) $(s) $(BINARIES_DIR) $(BR2_ROOTFS_POST_SCRIPT_ARGS)
  const runAsBuildroot = (t: { top: string; env: Record<string, string>; images: string }, extraEnv: Record<string, string> = {}) =>
    execa('board/acme/post-image.sh', [t.images, '-c', 'board/acme/genimage.cfg'], { cwd: t.top, env: { ...t.env, ...extraEnv }, extendEnv: false, reject: false, all: true });

  // each test installs the tarball (the native codec is compiled at install time) and converts a
  // disk: well under a minute alone, but past the default 2 minutes on a runner busy with the suite
  test('with release keys in the environment: signed A/B outputs the client accepts; BR2_REPRODUCIBLE passes SOURCE_DATE_EPOCH through; re-runs work', async () => {
    const t = await buildrootTree('br', 'BR2_HAVE_DOT_CONFIG=y\nBR2_REPRODUCIBLE=y\n');
    await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), t.images]); // genimage's sdcard.img
    const keyEnv = { OTAPACK_SIGNING_KEY: keyPem, OTAPACK_SIGNING_CERT: certPem, SOURCE_DATE_EPOCH: '1700000000', HOME: process.env.HOME ?? '/root' };
    const r = await runAsBuildroot(t, keyEnv);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/post-image: otapack convert .*sdcard\.img -c .*board\/acme\/otapack\.yaml -o .*images\/otapack --reproducible/);
    expect(r.all).not.toContain('PRIVATE KEY');
    const swu = join(t.images, 'otapack/sdcard.swu');
    for (const f of ['sdcard.img', 'sdcard.bmap', 'sdcard.swu', 'sdcard.json']) expect(existsSync(join(t.images, 'otapack', f)), f).toBe(true);
    const v = await otapack(['verify', swu, '--trust', keys.cert, '--json']);
    expect(v.code, v.stderr).toBe(0);
    // --reproducible: the signing time is SOURCE_DATE_EPOCH, not the wall clock
    expect(JSON.parse(v.stdout).signature.signers[0].signingTime).toBe(new Date(1700000000 * 1000).toISOString());
    const c = await client(swu, keys.cert);
    expect(c.ok, c.output).toBe(true);
    expect((await swupdate(swu, { check: true, cert: other.cert, hw: 'sample-board:1.0', select: 'stable,copy2' })).ok).toBe(false);
    // a second `make` runs the script again over the existing outputs
    const again = await runAsBuildroot(t, keyEnv);
    expect(again.exitCode, again.all).toBe(0);
    expect((await client(swu, keys.cert)).ok).toBe(true);
  }, 300_000);

  test('without a key but with OTAPACK_TRUST: an unsigned bundle that otapack sign finishes; missing inputs are one clear line', async () => {
    const t = await buildrootTree('br-unsigned', 'BR2_HAVE_DOT_CONFIG=y\n');
    const missing = await runAsBuildroot(t, { OTAPACK_TRUST: keys.cert });
    expect(missing.exitCode).toBe(1);
    expect(missing.all).toMatch(/post-image: .*sdcard\.img not found: run genimage before this script/);
    await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), t.images]);
    const r = await runAsBuildroot(t, { OTAPACK_TRUST: keys.cert });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/--unsigned --trust/);
    const unsigned = join(t.images, 'otapack/sdcard.swu');
    expect((await client(unsigned, keys.cert)).ok).toBe(false); // devices refuse it as it is
    const signed = join(dir, 'br-signed.swu');
    expect((await otapack(['sign', unsigned, '-o', signed, '--key', keys.key, '--cert', keys.cert])).code).toBe(0);
    const c = await client(signed, keys.cert);
    expect(c.ok, c.output).toBe(true);
  }, 300_000);
});

