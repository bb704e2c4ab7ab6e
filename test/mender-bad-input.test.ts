// Bad input to the Mender paths gets one clear line and a documented exit status, never a stack
// trace or exit 70: spec mistakes (with their line), keys Mender cannot verify, options that do
// not apply, and artifacts that are not artifacts. No external judge needed; about 10 s.
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectCleanFailure, otapack, tmp } from './helpers/run.js';
import { writeSpec } from './helpers/bundle-fixtures.js';

describe('Mender: bad input is refused in one line', () => {
  const dir = tmp('otapack-mender-bad-');
  const spec = (name: string, body: string): string => writeSpec(dir, `${name}.yaml`, body);
  let ec: string;
  let rsa: string;

  beforeAll(async () => {
    writeFileSync(join(dir, 'rootfs.ext4'), Buffer.alloc(1 << 20, 7));
    writeFileSync(join(dir, 'Bad_Script'), '#!/bin/sh\n');
    writeFileSync(join(dir, 'ArtifactCommit_Enter_01_ok'), '#!/bin/sh\nexit 0\n');
    ec = join(dir, 'p384.key');
    rsa = join(dir, 'rsa.key');
    await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', ec]);
    await execa('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', rsa]);
  });

  const base = 'format: mender\nartifact-name: r1\ndevice-types: [dev]\nimage: rootfs.ext4\n';
  it.each([
    ['no device types', 'format: mender\nartifact-name: r1\nimage: rootfs.ext4\n', /missing "device-types"/],
    ['a name with a space', 'format: mender\nartifact-name: "release 1"\ndevice-types: [dev]\nimage: rootfs.ext4\n', /artifact-name.*"release 1" is not a valid artifact-name/],
    ['zstd', `${base}compress: zstd\n`, /zstd: Debian's Mender client 3\.4 .* read gzip, lzma or uncompressed/],
    ['a missing image', 'format: mender\nartifact-name: r1\ndevice-types: [dev]\nimage: nope.ext4\n', /image.*nope\.ext4: no such file/],
    ['a payload name the client refuses', `${base}payload-name: "root fs"\n`, /accepts payload names of letters, digits/],
    ['an unknown key', `${base}compres: gzip\n`, /compres.*unknown key.*did you mean "compress"/],
    ['a state script with the wrong name', `${base}state-scripts: [Bad_Script]\n`, /"Bad_Script" is not a state script name/],
    ['rootfs-image.checksum given by hand', `${base}type-provides: { rootfs-image.checksum: abc }\n`, /otapack writes rootfs-image\.checksum itself/],
    ['a gzip level out of range', `${base}compress-level: 12\n`, /compress-level/],
  ])('spec: %s (exit 3, with the line)', async (_name, body, why) => {
    const out = join(dir, 'x.mender');
    const r = await otapack(['bundle', spec('s', body), '-o', out, '--unsigned']);
    expectCleanFailure(r, 3, why);
    expect(r.stderr).toMatch(/s\.yaml(:\d+:\d+)?/);
    expect(existsSync(out)).toBe(false);
  });

  it('keys Mender cannot verify, and options that do not apply', async () => {
    const s = spec('ok', `${base}state-scripts: [ArtifactCommit_Enter_01_ok]\n`);
    expectCleanFailure(await otapack(['bundle', s, '-o', join(dir, 'a.mender'), '--key', ec]), 5, /EC key on secp384r1; Mender verifies ECDSA on P-256 \(prime256v1\) only/);
    expectCleanFailure(await otapack(['bundle', s, '-o', join(dir, 'a.mender')]), 5, /no signing key: give --key/);
    expectCleanFailure(await otapack(['bundle', s, '-o', join(dir, 'a.mender'), '--key', rsa, '--aes-key', rsa]), 2, /--aes-key applies to SWUpdate bundles/);
    expectCleanFailure(await otapack(['bundle', s, '-o', join(dir, 'a.mender'), '--key', rsa, '--chain', rsa]), 2, /--chain needs a certificate/);
    // negative twin: the same spec and an RSA key work, and the state script is in the artifact
    const ok = await otapack(['bundle', s, '-o', join(dir, 'a.mender'), '--key', rsa, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ compression: 'gzip', signatureAlgorithm: 'RSA PKCS#1 v1.5 / SHA-256 (2048 bit)' });
    const pub = join(dir, 'rsa.pub');
    await execa('openssl', ['pkey', '-in', rsa, '-pubout', '-out', pub]);
    const v = await otapack(['verify', join(dir, 'a.mender'), '--trust', pub, '--json']);
    expect(v.code, v.stdout).toBe(0);
    expect(JSON.parse(v.stdout).artifact.scripts).toEqual(['ArtifactCommit_Enter_01_ok']);
    expectCleanFailure(await otapack(['verify', join(dir, 'a.mender'), '--trust', pub, '--aes-key', rsa]), 2, /--aes-key applies to SWUpdate bundles/);
    expectCleanFailure(await otapack(['verify', join(dir, 'a.mender'), '--trust', rsa]), 5, /a private key; give the public key/);
    expectCleanFailure(await otapack(['sign', join(dir, 'a.mender'), '-o', join(dir, 'b.mender'), '--key', rsa]), 2, /is a Mender artifact; sign covers \.swu bundles/);
    expectCleanFailure(await otapack(['manifest', join(dir, 'a.mender')]), 2, /is a Mender artifact; manifest prints a \.swu's sw-description/);
  });

  it('a signing command with its certificate signs a .mender; verify takes the certificate as --trust', async () => {
    const cert = join(dir, 'rsa.crt');
    await execa('openssl', ['req', '-x509', '-key', rsa, '-subj', '/CN=mender command signer', '-days', '30', '-out', cert]);
    const s = spec('cmd', base);
    const out = join(dir, 'cmd.mender');
    const r = await otapack(['bundle', s, '-o', out, '--sign-command', `openssl dgst -sha256 -sign ${rsa}`, '--cert', cert, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ signerKind: 'command', signer: 'CN=mender command signer' });
    expect((await otapack(['verify', out, '--trust', cert])).code).toBe(0);
    // negative twin: a command signing with another key than the certificate's is refused before anything is written
    const other = join(dir, 'other.key');
    await execa('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', other]);
    const bad = await otapack(['bundle', s, '-o', join(dir, 'bad.mender'), '--sign-command', `openssl dgst -sha256 -sign ${other}`, '--cert', cert]);
    expect(bad.code).toBe(5);
    expect(existsSync(join(dir, 'bad.mender'))).toBe(false);
  });

  it('verify of things that are not artifacts: a plain tar, a truncated header, a .swu with --device-type', async () => {
    await execa('tar', ['-cf', join(dir, 'plain.tar'), '-C', dir, 'rootfs.ext4']);
    const r = await otapack(['verify', join(dir, 'plain.tar'), '--allow-unsigned']);
    // not a .mender by its first member: read as a .swu, which it is not either
    expect(r.code).toBe(1);
    writeFileSync(join(dir, 'short.mender'), Buffer.concat([Buffer.from('version\0'), Buffer.alloc(249), Buffer.from('ustar\x0000'), Buffer.alloc(200)]));
    const s = await otapack(['verify', join(dir, 'short.mender'), '--json']);
    expect(s.code).toBe(1);
    expect(JSON.parse(s.stdout).checks[0]).toMatchObject({ id: 'format', status: 'fail' });
    expectCleanFailure(await otapack(['verify', join(dir, 'plain.tar'), '--device-type', 'dev']), 2, /--device-type applies to Mender artifacts/);
  });
});
