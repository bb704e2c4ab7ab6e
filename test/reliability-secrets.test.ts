// Secrets stay secret: the private key, its passphrase and the AES key — given as files or as
// environment text — appear in no stdout, stderr, --json output, bundle or disk image (except an
// AES key the config explicitly asks to install), including on error paths; key files otapack
// writes are 0600.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, type CliResult } from './helpers/run.js';
import { makeExt4, writeSpec, abSpec } from './helpers/bundle-fixtures.js';
import { buildBuildrootImage } from './helpers/images.js';

const PASS = 'correct-horse-battery-staple-4711';
let dir: string;
let keyPem: string;
let aesLine: string;
let needles: string[];
const outputs: { what: string; text: string | Buffer }[] = [];

const record = (what: string, r: CliResult): CliResult => {
  outputs.push({ what: `${what} stdout`, text: r.stdout }, { what: `${what} stderr`, text: r.stderr });
  return r;
};

beforeAll(async () => {
  dir = tmp('otapack-secrets-');
  const kg = await otapack(['keygen', '--out', join(dir, 'keys'), '--encrypt-key', '--type', 'rsa2048', '--json'], { env: { OTAPACK_KEY_PASSPHRASE: PASS } });
  expect(kg.code, kg.stderr).toBe(0);
  record('keygen', kg);
  keyPem = readFileSync(join(dir, 'keys/signing.key'), 'utf8');
  aesLine = readFileSync(join(dir, 'keys/aes.key'), 'utf8');
  // an unencrypted copy of the key too, to look for its material in the clear
  const clear = (await execa('openssl', ['pkey', '-in', join(dir, 'keys/signing.key'), '-passin', `pass:${PASS}`])).stdout;
  const b64 = (pem: string): string[] => pem.split('\n').filter((l) => l && !l.startsWith('-----') && l.length >= 40);
  needles = [...b64(keyPem), ...b64(clear), aesLine.split(' ')[0]!, aesLine.split(' ')[1]!.trim(), PASS];
});

describe('no secret in any output', () => {
  test('every command, keys from files and from the environment, success and failure', async () => {
    const payload = await makeExt4(join(dir, 'p.ext4'), 4);
    const spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, encrypt: true }));
    const env = {
      OTAPACK_SIGNING_KEY: keyPem,
      OTAPACK_SIGNING_CERT: readFileSync(join(dir, 'keys/signing.crt'), 'utf8'),
      OTAPACK_AES_KEY: aesLine,
      OTAPACK_KEY_PASSPHRASE: PASS,
    };
    const b = record('bundle', await otapack(['bundle', spec, '-o', join(dir, 'b.swu'), '--json'], { env }));
    expect(b.code, b.stderr).toBe(0);
    record('sign', await otapack(['sign', join(dir, 'b.swu'), '-o', join(dir, 's.swu'), '--json'], { env }));
    record('verify', await otapack(['verify', join(dir, 's.swu'), '--trust', join(dir, 'keys/signing.crt'), '--json'], { env }));
    record('manifest', await otapack(['manifest', join(dir, 's.swu')], { env }));
    // error paths
    const wrong = record('wrong passphrase', await otapack(['bundle', spec, '-o', join(dir, 'x.swu')], { env: { ...env, OTAPACK_KEY_PASSPHRASE: 'nope' } }));
    expect(wrong.code).toBe(5);
    const badAes = record('bad AES key', await otapack(['bundle', spec, '-o', join(dir, 'x.swu')], { env: { ...env, OTAPACK_AES_KEY: aesLine.replace(' ', 'Z ') } }));
    expect(badAes.code).toBe(5);
    const notKey = record('AES key as signing key', await otapack(['bundle', spec, '-o', join(dir, 'x.swu')], { env: { ...env, OTAPACK_SIGNING_KEY: aesLine } }));
    expect(notKey.code).toBe(5);
    const dbg = record('--debug failure', await otapack(['--debug', 'bundle', spec, '-o', join(dir, 'x.swu')], { env: { ...env, OTAPACK_KEY_PASSPHRASE: 'nope' } }));
    expect(dbg.code).toBe(5);
    // convert, without installing the AES key
    const img = (await buildBuildrootImage(join(dir, 'in'))).path;
    writeFileSync(join(dir, 'enc.yaml'), 'update:\n  encrypt: true\n');
    const c = record('convert', await otapack(['convert', img, '-c', join(dir, 'enc.yaml'), '-o', join(dir, 'out'), '--json'], { env }));
    expect(c.code, c.stderr).toBe(0);
    record('inspect', await otapack(['inspect', img, '--json'], { env }));
    for (const f of ['b.swu', 's.swu']) outputs.push({ what: f, text: readFileSync(join(dir, f)) });
    for (const f of readdirSync(join(dir, 'out')).filter((n) => /\.(img|swu|bmap|json)$/.test(n))) outputs.push({ what: `convert output ${f}`, text: readFileSync(join(dir, 'out', f)) });

    const found: string[] = [];
    for (const o of outputs) {
      const hay = Buffer.isBuffer(o.text) ? o.text : Buffer.from(o.text);
      for (const n of needles) if (hay.includes(n)) found.push(`${o.what} contains ${n.slice(0, 12)}…`);
    }
    console.log(`searched ${outputs.length} outputs for ${needles.length} pieces of key material`);
    expect(found).toEqual([]);
  }, 300_000);

  test('the AES key is on the disk only when the config asks for it, then 0600', async () => {
    const img = (await buildBuildrootImage(join(dir, 'in2'))).path;
    writeFileSync(join(dir, 'install.yaml'), 'update:\n  encrypt: true\n  install-aes-key: true\n');
    const r = await otapack(['convert', img, '-c', join(dir, 'install.yaml'), '-o', join(dir, 'out2'), '--key', join(dir, 'keys/signing.key'), '--cert', join(dir, 'keys/signing.crt'), '--aes-key', join(dir, 'keys/aes.key'), '--json'], { env: { OTAPACK_KEY_PASSPHRASE: PASS } });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const disk = readFileSync(report.outputs.image.path);
    expect(disk.includes(aesLine.split(' ')[0]!)).toBe(true);
    expect(r.stdout.includes(aesLine.split(' ')[0]!)).toBe(false);
    const A = report.output.partitions.find((p: { role: string }) => p.role === 'rootfs-a');
    const st = (await execa('debugfs', ['-R', 'stat /etc/otapack/aes.key', `${report.outputs.image.path}?offset=${A.start}`])).stdout;
    expect(st).toMatch(/Mode:\s+0600/);
    expect((await execa('debugfs', ['-R', 'cat /etc/swupdate.cfg', `${report.outputs.image.path}?offset=${A.start}`])).stdout).toMatch(/aes-key-file = "\/etc\/otapack\/aes\.key";/);
  }, 300_000);

  test('key files otapack writes are 0600 (keygen, --ca, convert development keys)', async () => {
    const r = await otapack(['keygen', '--out', join(dir, 'ca'), '--ca', '--type', 'ec256', '-q']);
    expect(r.code).toBe(0);
    for (const f of ['keys/signing.key', 'keys/aes.key', 'ca/signing.key', 'ca/aes.key', 'ca/ca.key']) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
    for (const f of ['ca/signing.crt', 'ca/ca.crt']) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o644); // public
    const img = (await buildBuildrootImage(join(dir, 'in3'))).path;
    const c = await otapack(['convert', img, '-o', join(dir, 'out3')], { env: { OTAPACK_SIGNING_KEY: '', OTAPACK_SIGNING_CERT: '' } });
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/warning: no signing key given: generated a DEVELOPMENT key pair/);
    for (const f of ['signing.key', 'aes.key']) expect(statSync(join(dir, 'out3/keys', f)).mode & 0o777, f).toBe(0o600);
  }, 300_000);
});
