// Bad input gets one clear line naming the file or field, a documented exit code, no stack trace,
// and no file left under the output name.
import { describe, test, expect, beforeAll } from 'vitest';
import { existsSync, writeFileSync, readdirSync, chmodSync, truncateSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';

let dir: string;
let keys: KeyDir;
let payload: string;
let goodSpec: string;
let out: string;

beforeAll(async () => {
  dir = tmp();
  keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  payload = await makeExt4(join(dir, 'rootfs.ext4'), 4);
  goodSpec = writeSpec(dir, 'good.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }));
  out = join(dir, 'out.swu');
});

const noOutput = (): void => {
  expect(existsSync(out)).toBe(false);
  expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
};
const sign = (): string[] => ['--key', keys.key, '--cert', keys.cert];

describe('otapack bundle refuses bad input cleanly', () => {
  test('spec file missing', async () => {
    expectCleanFailure(await otapack(['bundle', join(dir, 'nope.yaml'), '-o', out, ...sign()]), 3, /nope\.yaml: no such file/);
    noOutput();
  });
  test('payload missing (names the spec line and the key)', async () => {
    const s = writeSpec(dir, 'missing.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: 'gone.ext4' }));
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()]), 3, /missing\.yaml:\d+:\d+: images\[0\]\.file: gone\.ext4: no such file/);
    noOutput();
  });
  test('malformed YAML reports line and column', async () => {
    const s = writeSpec(dir, 'broken.yaml', 'version: "1.0"\nimages:\n  - file: x\n   type: raw\n');
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()]), 3, /broken\.yaml:4:\d+: invalid YAML/);
    noOutput();
  });
  test('unknown spec key, with a suggestion', async () => {
    const s = writeSpec(dir, 'typo.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }).replace('compress:', 'compres:'));
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()]), 3, /typo\.yaml:\d+:\d+: images\[0\]\.compres: unknown key \(did you mean "compress"\?\)/);
    noOutput();
  });
  test('a bad value names the allowed ones', async () => {
    const s = writeSpec(dir, 'lz4.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, compress: 'lz4' }));
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()]), 3, /images\[0\]\.compress: must be one of zstd, zlib, none \(got "lz4"\)/);
    noOutput();
  });
  test('missing hardware-compatibility', async () => {
    const s = writeSpec(dir, 'nohw.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }).replace(/hardware-compatibility.*\n/, ''));
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()]), 3, /hardware-compatibility/);
    noOutput();
  });
  test('no signing key and no --unsigned', async () => {
    expectCleanFailure(await otapack(['bundle', goodSpec, '-o', out], { env: { OTAPACK_SIGNING_KEY: '', OTAPACK_SIGNING_CERT: '' } }), 5, /no signing key/);
    noOutput();
  });
  test('unreadable key file', async () => {
    const k = join(dir, 'unreadable.key');
    writeFileSync(k, 'x');
    chmodSync(k, 0o000);
    // root reads anything: simulate with a directory instead when running as root
    const target = process.getuid?.() === 0 ? dir : k;
    expectCleanFailure(await otapack(['bundle', goodSpec, '-o', out, '--key', target, '--cert', keys.cert]), 5, /is a directory|permission denied/);
    noOutput();
  });
  test('a key that is not a key', async () => {
    const k = join(dir, 'notkey.pem');
    writeFileSync(k, 'hello\n');
    expectCleanFailure(await otapack(['bundle', goodSpec, '-o', out, '--key', k, '--cert', keys.cert]), 5, /notkey\.pem: not a usable private key/);
    noOutput();
  });
  test('a certificate given as the key', async () => {
    expectCleanFailure(await otapack(['bundle', goodSpec, '-o', out, '--key', keys.cert, '--cert', keys.cert]), 5, /not a private key \(found CERTIFICATE\)/);
    noOutput();
  });
  test('wrong passphrase for an encrypted key, and none at all', async () => {
    const enc = join(dir, 'enc');
    const r = await otapack(['keygen', '--out', enc, '--encrypt-key', '--type', 'rsa2048', '-q'], { env: { OTAPACK_KEY_PASSPHRASE: 'right horse' } });
    expect(r.code, r.stderr).toBe(0);
    const args = ['bundle', goodSpec, '-o', out, '--key', join(enc, 'signing.key'), '--cert', join(enc, 'signing.crt')];
    expectCleanFailure(await otapack(args, { env: { OTAPACK_KEY_PASSPHRASE: 'wrong' } }), 5, /wrong passphrase/);
    expectCleanFailure(await otapack(args, { env: { OTAPACK_KEY_PASSPHRASE: '' } }), 5, /encrypted; give its passphrase in \$OTAPACK_KEY_PASSPHRASE/);
    noOutput();
    const ok = await otapack(args, { env: { OTAPACK_KEY_PASSPHRASE: 'right horse' } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).not.toContain('right horse');
    await execa('rm', ['-f', out]);
  });
  test('key and certificate that do not belong together', async () => {
    const other = await keygen(join(dir, 'other'), ['--type', 'rsa2048']);
    expectCleanFailure(await otapack(['bundle', goodSpec, '-o', out, '--key', other.key, '--cert', keys.cert]), 5, /does not match the certificate/);
    noOutput();
  });
  test('encryption asked for without an AES key; AES key in the wrong format', async () => {
    const s = writeSpec(dir, 'enc.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, encrypt: true }));
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()], { env: { OTAPACK_AES_KEY: '' } }), 5, /asks for encryption but no AES key/);
    const bad = join(dir, 'bad-aes.key');
    writeFileSync(bad, 'deadbeef\n');
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign(), '--aes-key', bad]), 5, /AES key .*bad-aes\.key: expected one line/);
    noOutput();
  });
  test('an entry over the 4 GiB cpio limit is refused before any work', async () => {
    const big = join(dir, 'huge.img');
    writeFileSync(big, '');
    truncateSync(big, 5 * 1024 ** 3); // sparse
    const s = writeSpec(dir, 'huge.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: big, compress: 'none' }));
    const t0 = Date.now();
    expectCleanFailure(await otapack(['bundle', s, '-o', out, ...sign()]), 6, /exceed the cpio limit of 4 GiB per entry; set "compress: zstd"/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    noOutput();
  });
  test('an output directory that does not exist', async () => {
    expectCleanFailure(await otapack(['bundle', goodSpec, '-o', join(dir, 'no/such/dir/x.swu'), ...sign()]), 8, /cannot write .*x\.swu: no such file or directory/);
  });
  test('a previous output survives a failed run', async () => {
    writeFileSync(out, 'previous');
    const s = writeSpec(dir, 'lz4b.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, compress: 'lz4' }));
    expect((await otapack(['bundle', s, '-o', out, ...sign()])).code).toBe(3);
    expect(readFileSync(out, 'utf8')).toBe('previous');
    await execa('rm', ['-f', out]);
  });
});

describe('verify, sign and manifest refuse input that is not a bundle', () => {
  test('not cpio at all', async () => {
    const p = join(dir, 'notcpio.swu');
    writeFileSync(p, 'PK\x03\x04 this is a zip file, not a bundle'.padEnd(600, '.'));
    const v = await otapack(['verify', p, '--trust', keys.cert]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/FAIL\s+format\s+not a SWUpdate bundle: entry 0 at offset 0: bad cpio magic/);
    expectCleanFailure(await otapack(['sign', p, '-o', out, ...sign()]), 4, /notcpio\.swu: not a SWUpdate bundle/);
    expectCleanFailure(await otapack(['manifest', p]), 4, /notcpio\.swu: not a SWUpdate bundle/);
    noOutput();
  });
  test('an empty file', async () => {
    const p = join(dir, 'empty.swu');
    writeFileSync(p, '');
    expectCleanFailure(await otapack(['sign', p, '-o', out, ...sign()]), 4, /empty\.swu: empty file/);
    noOutput();
  });
  test('a missing bundle', async () => {
    expectCleanFailure(await otapack(['verify', join(dir, 'nothere.swu')]), 4, /nothere\.swu: no such file/);
  });
  test('usage errors exit 2', async () => {
    const r = await otapack(['bundle']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/required option '-o, --output|missing required argument/);
  });
});
