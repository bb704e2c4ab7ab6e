// `otapack sign` re-signs without touching payloads, attaches signatures made elsewhere after
// checking them, and refuses to sign a bundle whose manifest does not describe its payloads.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';

let dir: string;
let a: KeyDir;
let b: KeyDir;
let unsigned: string;
let signedA: string;

beforeAll(async () => {
  dir = tmp();
  [a, b] = await Promise.all([keygen(join(dir, 'a'), ['--type', 'rsa2048']), keygen(join(dir, 'b'), ['--type', 'ec256'])]);
  const payload = await makeExt4(join(dir, 'rootfs.ext4'), 6);
  const spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, encrypt: true }));
  unsigned = join(dir, 'unsigned.swu');
  signedA = join(dir, 'a.swu');
  expect((await otapack(['bundle', spec, '-o', unsigned, '--unsigned', '--aes-key', a.aes])).code).toBe(0);
  expect((await otapack(['bundle', spec, '-o', signedA, '--key', a.key, '--cert', a.cert, '--aes-key', a.aes])).code).toBe(0);
});

const payloadBytes = (p: string): Buffer => {
  const buf = readFileSync(p);
  const i = buf.indexOf('rootfs.ext4.zst.enc\0');
  return buf.subarray(i + 20, i + 20 + 4096);
};

describe('otapack sign', () => {
  test('signs an unsigned bundle; the client accepts it; payload bytes are unchanged', async () => {
    const out = join(dir, 'signed-later.swu');
    const r = await otapack(['sign', unsigned, '-o', out, '--key', a.key, '--cert', a.cert]);
    expect(r.code, r.stderr).toBe(0);
    expect(payloadBytes(out).equals(payloadBytes(unsigned))).toBe(true);
    const c = await swupdateOk(out, { check: true, cert: a.cert, aesKey: a.aes, select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(true);
  });

  test('re-signs with another key: the new anchor accepts it, the old one no longer does', async () => {
    const out = join(dir, 'resigned.swu');
    const r = await otapack(['sign', signedA, '-o', out, '--key', b.key, '--cert', b.cert, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).replacedSignature).toBe(true);
    expect((await swupdateOk(out, { check: true, cert: b.cert, aesKey: a.aes, select: 'stable,copy2' })).ok).toBe(true);
    const old = await swupdate(out, { check: true, cert: a.cert, aesKey: a.aes, select: 'stable,copy2' });
    expect(old.ok).toBe(false);
    expect(old.output).toMatch(/Authentication of all signatures failed/);
  });

  test('sign elsewhere: manifest out, openssl cms -sign, signature attached, client accepts', async () => {
    const m = join(dir, 'sw-description');
    expect((await otapack(['manifest', unsigned, '-o', m])).code).toBe(0);
    const stdoutBytes = (await execa(process.execPath, [join(process.cwd(), 'bin/otapack'), 'manifest', unsigned], { encoding: 'buffer', stripFinalNewline: false })).stdout;
    expect(Buffer.from(stdoutBytes).equals(readFileSync(m))).toBe(true);
    const sig = join(dir, 'ext.sig');
    await execa('openssl', ['cms', '-sign', '-in', m, '-binary', '-outform', 'DER', '-nosmimecap', '-signer', b.cert, '-inkey', b.key, '-out', sig]);
    const out = join(dir, 'attached.swu');
    const r = await otapack(['sign', unsigned, '--signature', sig, '--cert', b.cert, '--trust', b.cert, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect((await swupdateOk(out, { check: true, cert: b.cert, aesKey: a.aes, select: 'stable,copy2' })).ok).toBe(true);
  });

  test('a signature over other bytes, or by another certificate, is refused loudly', async () => {
    const other = join(dir, 'other-content');
    writeFileSync(other, 'software = { version = "6.6.6"; };\n');
    const sig = join(dir, 'wrong.sig');
    await execa('openssl', ['cms', '-sign', '-in', other, '-binary', '-outform', 'DER', '-nosmimecap', '-signer', b.cert, '-inkey', b.key, '-out', sig]);
    const out = join(dir, 'never.swu');
    expectCleanFailure(await otapack(['sign', unsigned, '--signature', sig, '-o', out]), 5, /does not match this bundle's sw-description/);
    const m = join(dir, 'm2');
    await otapack(['manifest', unsigned, '-o', m]);
    const sig2 = join(dir, 'byb.sig');
    await execa('openssl', ['cms', '-sign', '-in', m, '-binary', '-outform', 'DER', '-nosmimecap', '-signer', b.cert, '-inkey', b.key, '-out', sig2]);
    expectCleanFailure(await otapack(['sign', unsigned, '--signature', sig2, '--cert', a.cert, '-o', out]), 5, /made with another certificate/);
    expectCleanFailure(await otapack(['sign', unsigned, '--signature', sig2, '--trust', a.cert, '-o', out]), 5, /is not trusted/);
    const pem = join(dir, 'pem.sig');
    writeFileSync(pem, '-----BEGIN CMS-----\nAAAA\n-----END CMS-----\n');
    expectCleanFailure(await otapack(['sign', unsigned, '--signature', pem, '-o', out]), 5, /not a DER CMS signature/);
    expect(existsSync(out)).toBe(false);
  });

  test('sign elsewhere, the wrong way round: a signature over another build\'s manifest, or mixed with a local key, is refused', async () => {
    // the same spec rebuilt: another random ivt, so another sw-description
    const spec2 = join(dir, 's.yaml');
    const rebuilt = join(dir, 'rebuilt.swu');
    expect((await otapack(['bundle', spec2, '-o', rebuilt, '--unsigned', '--aes-key', a.aes])).code).toBe(0);
    const m = join(dir, 'm-first');
    await otapack(['manifest', unsigned, '-o', m]);
    const sig = join(dir, 'first.sig');
    await execa('openssl', ['cms', '-sign', '-in', m, '-binary', '-outform', 'DER', '-nosmimecap', '-signer', b.cert, '-inkey', b.key, '-out', sig]);
    const out = join(dir, 'never3.swu');
    expectCleanFailure(await otapack(['sign', rebuilt, '--signature', sig, '--cert', b.cert, '-o', out]), 5,
      /signature does not match this bundle's sw-description: message digest does not match the signed content/);
    expectCleanFailure(await otapack(['sign', unsigned, '--signature', sig, '--key', b.key, '--cert', b.cert, '-o', out]), 2,
      /--signature attaches a finished signature; --key cannot apply to it/);
    expect(existsSync(out)).toBe(false);
  });

  test('refuses to sign a bundle whose payload does not match sw-description', async () => {
    const bad = join(dir, 'corrupt.swu');
    const buf = Buffer.from(readFileSync(unsigned));
    buf[buf.indexOf('rootfs.ext4.zst.enc\0') + 300] ^= 0xff;
    writeFileSync(bad, buf);
    const out = join(dir, 'never2.swu');
    expectCleanFailure(await otapack(['sign', bad, '-o', out, '--key', a.key, '--cert', a.cert]), 4, /refusing to sign a corrupt bundle/);
    expect(existsSync(out)).toBe(false);
  });
});
