// examples/release/Makefile: the plain release pipeline, and the sign-elsewhere flow through it,
// with otapack on PATH as `npm install --global` of this checkout's tarball puts it. The real
// client judges the results.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { tmp, ROOT } from './helpers/run.js';
import { swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { installTarball, packTarball } from './helpers/install.js';

let dir: string;
let keys: KeyDir;
let other: KeyDir;
let bin: string;
let keyPem: string;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(async () => {
  dir = tmp('otapack-examples-');
  [keys, other] = await Promise.all([keygen(join(dir, 'keys'), ['--cn', 'release']), keygen(join(dir, 'other'))]);
  bin = await installTarball(await packTarball(join(dir, 'release')), join(dir, 'npm-global'));
  keyPem = readFileSync(keys.key, 'utf8');
});

describe('release Makefile (examples/release/Makefile)', () => {
  let spec: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    const payload = await makeExt4(join(dir, 'mk-rootfs.ext4'), 6);
    spec = writeSpec(join(dir, 'mk'), 'update.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }));
    env = { PATH: `${bin}:${process.env.PATH}` };
  });
  const make = (args: string[], extra: Record<string, string> = {}) =>
    execa('make', ['-f', join(ROOT, 'examples/release/Makefile'), ...args], { cwd: join(dir, 'mk'), env: { ...env, ...extra }, reject: false, all: true });

  test('make release: bundle, sign with the key from $OTAPACK_SIGNING_KEY, verify, checksums', async () => {
    const r = await make(['release', `SPEC=${spec}`, 'OUT=out', `CERT=${keys.cert}`], { OTAPACK_SIGNING_KEY: keyPem });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toContain('PRIVATE KEY');
    const signed = join(dir, 'mk/out/update.swu');
    expect(readFileSync(join(dir, 'mk/out/SHA256SUMS'), 'utf8')).toBe(`${sha(signed)}  update.swu\n`);
    const c = await swupdateOk(signed, { check: true, cert: keys.cert, select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(true);
  });

  test('make manifest → sign elsewhere with openssl → make attach; a signature over other bytes fails the build', async () => {
    const r1 = await make(['manifest', `SPEC=${spec}`, 'OUT=elsewhere']);
    expect(r1.exitCode, r1.all).toBe(0);
    const m = join(dir, 'mk/elsewhere/sw-description');
    const sig = join(dir, 'mk/elsewhere/sw-description.sig');
    await execa('openssl', ['cms', '-sign', '-in', m, '-binary', '-outform', 'DER', '-nosmimecap', '-signer', other.cert, '-inkey', other.key, '-out', sig]);
    const r2 = await make(['attach', `SPEC=${spec}`, 'OUT=elsewhere', `CERT=${other.cert}`]);
    expect(r2.exitCode, r2.all).toBe(0);
    const c = await swupdateOk(join(dir, 'mk/elsewhere/update.swu'), { check: true, cert: other.cert, select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(true);
    // negative twin: a signature over something else is refused and leaves no signed bundle
    writeFileSync(join(dir, 'mk/other'), 'not the manifest');
    const bad = join(dir, 'mk/bad.sig');
    await execa('openssl', ['cms', '-sign', '-in', join(dir, 'mk/other'), '-binary', '-outform', 'DER', '-nosmimecap', '-signer', other.cert, '-inkey', other.key, '-out', bad]);
    const r3 = await make(['attach', `SPEC=${spec}`, 'OUT=elsewhere2', `CERT=${other.cert}`, `SIG=${bad}`]);
    expect(r3.exitCode).not.toBe(0);
    expect(r3.all).toMatch(/otapack: error: signature does not match this bundle's sw-description/);
    expect(existsSync(join(dir, 'mk/elsewhere2/update.swu'))).toBe(false);
  });
});
