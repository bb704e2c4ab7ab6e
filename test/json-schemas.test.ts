// Every command's --json output, in the variants that change its shape, is validated against the
// JSON Schema block docs/json.md gives for its `schema` id (undocumented fields fail), every id
// the code prints is documented, and every documented id is exercised here.
import { describe, test, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, ROOT, type CliResult } from './helpers/run.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { buildArmbianImage, buildBuildrootImage, buildEfiImage } from './helpers/images.js';
import { documentedSchemas, validate } from './helpers/json-schema.js';
import { ERROR_CODES } from '../src/errors.js';

const schemas = documentedSchemas();
const exercised = new Set<string>();
let dir: string;
let keys: KeyDir;
let ca: KeyDir;
let spec: string;
let signed: string;
let unsigned: string;
let sampleImage: string;

/** Parses stdout as one JSON object and validates it against its documented schema. */
function check(r: CliResult, expectSchema: string): Record<string, unknown> {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`stdout is not one JSON object (exit ${r.code}):\n${r.stdout.slice(0, 400)}\n${r.stderr}`);
  }
  expect(j.schema).toBe(expectSchema);
  const schema = schemas.get(expectSchema);
  expect(schema, `${expectSchema} is not documented in docs/json.md`).toBeDefined();
  const problems = validate(j, schema!);
  expect(problems, `${expectSchema}:\n${problems.join('\n')}`).toEqual([]);
  exercised.add(expectSchema);
  return j;
}

beforeAll(async () => {
  dir = tmp('otapack-json-');
  [keys, ca] = await Promise.all([keygen(join(dir, 'keys'), ['--type', 'ec256']), keygen(join(dir, 'ca'), ['--ca', '--type', 'rsa2048'])]);
  const payload = await makeExt4(join(dir, 'rootfs.ext4'), 6);
  spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload, encrypt: true, extra: '  - file: s.yaml\n    filename: notes.txt\n    type: rawfile\n    path: /etc/notes.txt\n    compress: none\n' }));
  signed = join(dir, 'signed.swu');
  unsigned = join(dir, 'unsigned.swu');
  expect((await otapack(['bundle', spec, '-o', signed, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes])).code).toBe(0);
  expect((await otapack(['bundle', spec, '-o', unsigned, '--unsigned', '--aes-key', keys.aes])).code).toBe(0);
  await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), join(dir, 'img')]);
  sampleImage = join(dir, 'img/sdcard.img');
});

describe('--json output matches docs/json.md', () => {
  test('bundle: signed with a key, unsigned, signed by a command', async () => {
    const s = check(await otapack(['bundle', spec, '-o', join(dir, 'b1.swu'), '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--json']), 'otapack.bundle/1');
    expect(s).toMatchObject({ signed: true, signerKind: 'key', signatureAlgorithm: 'ECDSA / SHA-256' });
    const u = check(await otapack(['bundle', spec, '-o', join(dir, 'b2.swu'), '--unsigned', '--aes-key', keys.aes, '--manifest-format', 'json', '--cpio-format', 'newc', '--json']), 'otapack.bundle/1');
    expect(u).toMatchObject({ signed: false, signer: null, signatureAlgorithm: null, signerKind: null, manifestFormat: 'json', cpioFormat: 'newc' });
    const c = check(await otapack(['bundle', spec, '-o', join(dir, 'b3.swu'), '--sign-command', `openssl dgst -sha256 -sign ${keys.key}`, '--cert', keys.cert, '--aes-key', keys.aes, '--json']), 'otapack.bundle/1');
    expect(c.signerKind).toBe('command');
  });

  test('sign: with a key (re-sign), by a command, attached from elsewhere', async () => {
    check(await otapack(['sign', signed, '-o', join(dir, 's1.swu'), '--key', join(ca.dir, 'signing.key'), '--cert', ca.cert, '--json']), 'otapack.sign/1');
    check(await otapack(['sign', unsigned, '-o', join(dir, 's2.swu'), '--sign-command', `openssl dgst -sha256 -sign ${keys.key}`, '--cert', keys.cert, '--json']), 'otapack.sign/1');
    const m = join(dir, 'sw-description');
    await otapack(['manifest', unsigned, '-o', m]);
    await execa('openssl', ['cms', '-sign', '-in', m, '-binary', '-outform', 'DER', '-nosmimecap', '-md', 'sha512', '-signer', keys.cert, '-inkey', keys.key, '-out', join(dir, 'sig.der')]);
    const a = check(await otapack(['sign', unsigned, '--signature', join(dir, 'sig.der'), '-o', join(dir, 's3.swu'), '--json']), 'otapack.sign/1');
    expect(a).toMatchObject({ method: 'attached', algorithm: 'ECDSA / SHA-512' });
  });

  test('verify: passing, failing, unsigned, chain through a CA, not a bundle at all', async () => {
    const ok = await otapack(['verify', signed, '--trust', keys.cert, '--aes-key', keys.aes, '--json']);
    expect(ok.code).toBe(0);
    expect(check(ok, 'otapack.verify/1').ok).toBe(true);
    const chained = join(dir, 'ca-signed.swu');
    await otapack(['sign', signed, '-o', chained, '--key', join(ca.dir, 'signing.key'), '--cert', ca.cert]);
    const viaCa = check(await otapack(['verify', chained, '--trust', ca.ca!, '--json']), 'otapack.verify/1') as { signature: { signers: { chain: string[] }[] } };
    expect(viaCa.signature.signers[0]!.chain).toHaveLength(2);
    const tampered = join(dir, 'tampered.swu');
    const buf = Buffer.from(readFileSync(signed));
    buf[buf.indexOf('rootfs.ext4.zst.enc\0') + 500] ^= 1;
    writeFileSync(tampered, buf);
    const bad = await otapack(['verify', tampered, '--json']);
    expect(bad.code).toBe(1);
    expect(check(bad, 'otapack.verify/1').ok).toBe(false);
    check(await otapack(['verify', unsigned, '--allow-unsigned', '--json']), 'otapack.verify/1');
    const junk = join(dir, 'junk.swu');
    writeFileSync(junk, 'this is not a cpio archive at all, just text\n'.repeat(20));
    const j = check(await otapack(['verify', junk, '--json']), 'otapack.verify/1');
    expect(j.format).toBeUndefined();
  });

  test('Mender: bundle (ECDSA gzip, unsigned none), verify (passing, tampered), convert and inspect --client mender', async () => {
    const ec = join(dir, 'mender-ec.key');
    await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ec]);
    await execa('openssl', ['pkey', '-in', ec, '-pubout', '-out', `${ec}.pub`]);
    const mspec = writeSpec(dir, 'm.yaml', 'format: mender\nartifact-name: r2\ndevice-types: [dev]\nimage: rootfs.ext4\n');
    const mnone = writeSpec(dir, 'mn.yaml', 'format: mender\nartifact-name: r2\ndevice-types: [dev]\nimage: rootfs.ext4\ncompress: none\n');
    const art = join(dir, 'a.mender');
    const b = check(await otapack(['bundle', mspec, '-o', art, '--key', ec, '--json']), 'otapack.mender-bundle/1');
    expect(b).toMatchObject({ signed: true, signerKind: 'key', signatureAlgorithm: 'ECDSA P-256 / SHA-256', compression: 'gzip' });
    check(await otapack(['bundle', mnone, '-o', join(dir, 'u.mender'), '--unsigned', '--json']), 'otapack.mender-bundle/1');
    const ok = await otapack(['verify', art, '--trust', `${ec}.pub`, '--device-type', 'dev', '--json']);
    expect(ok.code).toBe(0);
    expect(check(ok, 'otapack.mender-verify/1').ok).toBe(true);
    const t = join(dir, 't.mender');
    const buf = Buffer.from(readFileSync(art));
    buf[buf.indexOf('"artifact_name"') + 3] ^= 1; // inside header.tar.gz (stored deflate: the JSON is plain)
    writeFileSync(t, buf);
    const bad = await otapack(['verify', t, '--trust', `${ec}.pub`, '--json']);
    expect(bad.code).toBe(1);
    expect(check(bad, 'otapack.mender-verify/1').ok).toBe(false);
    const withMender = await buildBuildrootImage(join(dir, 'fx-mender'), { rootfsExtra: { '/usr/bin/mender': '#!/bin/sh\n', '/usr/bin/fw_printenv': '#!/bin/sh\n', '/usr/bin/fw_setenv': '#!/bin/sh\n' } });
    const conv = check(await otapack(['convert', withMender.path, '-o', join(dir, 'conv-mender'), '--client', 'mender', '--key', ec, '--json']), 'otapack.convert/1');
    expect(conv).toMatchObject({ client: 'mender', bundle: { format: 'mender' } });
    const ins = check(await otapack(['inspect', withMender.path, '--client', 'mender', '--json']), 'otapack.inspect/1') as { plan: { client: string } };
    expect(ins.plan.client).toBe('mender');
  });

  test('keygen: plain, and with a CA and encrypted keys', async () => {
    check(await otapack(['keygen', '--out', join(dir, 'k1'), '--json']), 'otapack.keygen/1');
    const k = check(await otapack(['keygen', '--out', join(dir, 'k2'), '--ca', '--encrypt-key', '--type', 'ec384', '--json'], { env: { OTAPACK_KEY_PASSPHRASE: 'correct horse' } }), 'otapack.keygen/1');
    expect(k).toMatchObject({ ca: true, encrypted: true, keyType: 'ec384' });
    expect(JSON.stringify(k)).not.toMatch(/PRIVATE KEY|correct horse/);
  });

  test('convert and inspect: Buildroot (boot partition script), Armbian (script in the rootfs), EFI (GRUB)', async () => {
    const conv = check(await otapack(['convert', sampleImage, '-c', join(ROOT, 'examples/otapack.yaml'), '-o', join(dir, 'conv'), '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--json']), 'otapack.convert/1');
    // the report file holds the same object
    expect(JSON.parse(readFileSync(join(dir, 'conv/sdcard.json'), 'utf8'))).toEqual(conv);
    const armbian = await buildArmbianImage(join(dir, 'fx'));
    const arm = check(await otapack(['convert', armbian.path, '-o', join(dir, 'conv-armbian'), '--unsigned', '--trust', keys.cert, '--json']), 'otapack.convert/1') as { boot: { rootfsFiles: unknown[] } };
    expect(arm.boot.rootfsFiles.length).toBeGreaterThan(0);
    check(await otapack(['inspect', sampleImage, '-c', join(ROOT, 'examples/otapack.yaml'), '--json']), 'otapack.inspect/1');
    check(await otapack(['inspect', armbian.path, '--json']), 'otapack.inspect/1');
    const efi = await buildEfiImage(join(dir, 'fx'));
    const e = check(await otapack(['inspect', efi.path, '--json']), 'otapack.inspect/1') as { input: { table: { kind: string } } };
    expect(e.input.table.kind).toBe('gpt');
  });

  test('inspect of a disk otapack already converted: its A/B layout, no plan', async () => {
    const ab = check(await otapack(['inspect', join(dir, 'conv/sdcard.img'), '--json']), 'otapack.abdisk/1');
    expect(ab).toMatchObject({ slotA: 2, slotB: 3, bootPartition: 1, dataPartition: 4, bootloader: 'uboot', markedBy: 2 });
  });

  test('errors: one otapack.error/1 object on stdout whose exitCode is the exit status', async () => {
    const missing = await otapack(['bundle', join(dir, 'nope.yaml'), '-o', join(dir, 'x.swu'), '--unsigned', '--json']);
    expect(missing.code).not.toBe(0);
    // structured fields: the file and the errno name, so no consumer parses the message
    expect(check(missing, 'otapack.error/1')).toMatchObject({ exitCode: missing.code, code: 'CONFIG', path: join(dir, 'nope.yaml'), reason: 'ENOENT' });
    const wrongKey = await otapack(['sign', unsigned, '-o', join(dir, 'x.swu'), '--key', keys.key, '--cert', ca.cert, '--json']);
    expect(wrongKey.code).toBe(5);
    expect(check(wrongKey, 'otapack.error/1')).toMatchObject({ code: 'KEY', exitCode: 5, reason: 'key-cert-mismatch' });
    // a tool that failed: its name and exit status
    const xz = join(dir, 'broken.img.xz');
    writeFileSync(xz, Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(64, 0x41)]));
    const tool = await otapack(['inspect', xz, '--json']);
    expect(check(tool, 'otapack.error/1')).toMatchObject({ code: 'INPUT', exitCode: 4, path: xz, tool: 'xz', status: 1, reason: 'corrupt-compressed-input' });
    // a key type SWUpdate bundles cannot be signed with: what was expected and what was found
    const ed = join(dir, 'ed25519.key');
    const edCrt = join(dir, 'ed25519.crt');
    await execa('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', ed]);
    await execa('openssl', ['req', '-x509', '-key', ed, '-out', edCrt, '-days', '30', '-subj', '/CN=ed25519']);
    const edErr = check(await otapack(['sign', unsigned, '-o', join(dir, 'x.swu'), '--key', ed, '--cert', edCrt, '--json']), 'otapack.error/1');
    expect(edErr).toMatchObject({ code: 'KEY', exitCode: 5, reason: 'unsupported-key-type', actual: 'ed25519' });
    // the documented codes are exactly the library's
    const codes = ((schemas.get('otapack.error/1')!.properties as Record<string, { enum?: string[] }>).code!.enum)!;
    expect([...codes].sort()).toEqual([...ERROR_CODES].sort());
    const pin = await otapack(['sign', unsigned, '-o', join(dir, 'x.swu'), '--key', 'pkcs11:token=x;object=y?pin-value=314159', '--cert', keys.cert, '--json']);
    expect(check(pin, 'otapack.error/1').message).not.toContain('314159');
  });

  test('the validator is not a rubber stamp: undocumented fields, wrong types, missing fields and bad values fail', () => {
    const s = schemas.get('otapack.sign/1')!;
    const good = { schema: 'otapack.sign/1', output: 'o', size: 1, signer: 'CN=x', algorithm: 'a', method: 'key', certificate: { subject: 's', issuer: 'i', serial: '0A', notBefore: '2026-01-01T00:00:00.000Z', notAfter: '2046-01-01T00:00:00.000Z', fingerprint: 'a'.repeat(64) }, payloads: 1, replacedSignature: false };
    expect(validate(good, s)).toEqual([]);
    expect(validate({ ...good, extra: 1 }, s)).toEqual(['$: field "extra" is not documented']);
    expect(validate({ ...good, size: '1' }, s)).toEqual(['$.size: string where integer is documented']);
    expect(validate({ ...good, method: 'magic' }, s)[0]).toMatch(/\$\.method: "magic" not in/);
    const { payloads: _p, ...noPayloads } = good;
    expect(validate(noPayloads, s)).toEqual(['$: required field "payloads" missing']);
    expect(validate({ ...good, certificate: { ...good.certificate, notAfter: 'tomorrow' } }, s)[0]).toMatch(/not an ISO 8601/);
  });
});

afterAll(() => {
  // every schema id the code prints is documented, and every documented one was exercised above
  const inCode = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ts')) for (const m of readFileSync(join(d, e.name), 'utf8').matchAll(/'(otapack\.[a-z-]+\/\d+)'/g)) inCode.add(m[1]!);
    }
  };
  walk(join(ROOT, 'src'));
  expect([...inCode].sort()).toEqual([...schemas.keys()].sort());
  expect([...exercised].sort()).toEqual([...schemas.keys()].sort());
});
