// The library entry (package.json "main": dist/index.js) does what the CLI does, from code:
// keys → spec → signed, encrypted bundle → verify, and the real client agrees.
import { afterAll, expect, test } from 'vitest';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeExt4, writeSpec, abSpec } from './helpers/bundle-fixtures.js';
import { swupdateOk } from './helpers/swupdate.js';

const dir = mkdtempSync(join(tmpdir(), 'otapack-lib-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('import otapack: writeKeyFiles, loadBundleSpec, resolveSigner, buildBundle, verifyBundle, extractManifest', async () => {
  const lib = await import('../dist/index.js');
  const kf = await lib.writeKeyFiles(join(dir, 'keys'), { cn: 'library test', days: 3650, type: 'ec256', ca: false });
  expect(statSync(kf.signingKey).mode & 0o777).toBe(0o600);
  expect(statSync(kf.aesKey).mode & 0o777).toBe(0o600);
  await expect(lib.writeKeyFiles(join(dir, 'keys'), { cn: 'again', days: 10, type: 'ec256', ca: false })).rejects.toThrow(/exists; refusing to overwrite/);

  await makeExt4(join(dir, 'rootfs.ext4'), 8);
  const specPath = writeSpec(dir, 'spec.yaml', abSpec({ slotA: '/dev/mmcblk0p2', slotB: '/dev/mmcblk0p3', file: 'rootfs.ext4', compress: 'zstd', encrypt: true }));
  const spec = await lib.loadBundleSpec(specPath);
  const signer = await lib.resolveSigner({ key: kf.signingKey, cert: kf.signingCert, env: {} });
  const aes = await lib.loadAesKey(kf.aesKey, {});
  const out = join(dir, 'lib.swu');
  const built = await lib.buildBundle({ spec, output: out, signer, aes, mtime: 1700000000 });
  expect(built.signed).toBe(true);
  expect(built.entries.map((e) => e.name)).toEqual(['rootfs.ext4.zst.enc']);
  // GNU cpio reads it: manifest first, then its signature, then the payload
  expect((await execa('cpio', ['-it', '--quiet'], { inputFile: out })).stdout.split('\n')).toEqual(['sw-description', 'sw-description.sig', 'rootfs.ext4.zst.enc']);

  const trust = lib.parseCertificates(readFileSync(kf.signingCert), kf.signingCert);
  const good = await lib.verifyBundle(out, { trust, aes });
  expect(good.checks.filter((c) => c.status === 'fail')).toEqual([]);
  expect(good.ok).toBe(true);
  expect((await lib.extractManifest(out)).toString('utf8')).toContain('rootfs.ext4.zst.enc');
  // the spec is an A/B one: the client installs a slot's collection (without -e it finds nothing to
  // install, which this test once awaited and ignored)
  for (const select of ['stable,copy1', 'stable,copy2']) {
    const client = await swupdateOk(out, { cert: kf.signingCert, aesKey: kf.aesKey, hw: 'otapack:1.0', select, check: true });
    expect(client.ok, `the real client refused the library's bundle (${select}):\n${client.output}`).toBe(true);
  }

  // errors are OtapackError with a code and structured fields, not crashes; a flipped payload byte fails verify
  const missing = join(dir, 'missing.yaml');
  await expect(lib.loadBundleSpec(missing)).rejects.toBeInstanceOf(lib.OtapackError);
  await expect(lib.loadBundleSpec(missing)).rejects.toMatchObject({ code: 'CONFIG', path: missing, reason: 'ENOENT' });
  const bad = readFileSync(out);
  bad[bad.length - 2048] ^= 0xff;
  writeFileSync(join(dir, 'bad.swu'), bad);
  const r = await lib.verifyBundle(join(dir, 'bad.swu'), { trust, aes });
  expect(r.ok).toBe(false);
});
