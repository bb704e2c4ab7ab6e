// --sign-command: any program signs, fed on stdin, answering on stdout. Scripts calling openssl
// stand in for a KMS or remote signing service; the real client judges the bundles; every way
// the command can fail is one line.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { splitCommand } from '../src/cli/command-line.js';

let dir: string;
let rsa: KeyDir;
let ec: KeyDir;
let other: KeyDir;
let spec: string;
let unsigned: string;
const script = (name: string, body: string): string => {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
};
let signDer: string;
let signDigest: string;
let envLog: string;

beforeAll(async () => {
  dir = tmp('otapack-signcmd-');
  [rsa, ec, other] = await Promise.all([
    keygen(join(dir, 'rsa'), ['--type', 'rsa2048', '--cn', 'remote signer']),
    keygen(join(dir, 'ec'), ['--type', 'ec256', '--cn', 'remote ec signer']),
    keygen(join(dir, 'other'), ['--type', 'rsa2048']),
  ]);
  const payload = await makeExt4(join(dir, 'rootfs.ext4'), 6);
  spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }));
  unsigned = join(dir, 'unsigned.swu');
  expect((await otapack(['bundle', spec, '-o', unsigned, '--unsigned'])).code).toBe(0);
  envLog = join(dir, 'env.log');
  // the "service": signs the DER it is given (openssl hashes it), key path as argument, extra openssl options after it
  signDer = script('sign-der.sh', `echo "input=$OTAPACK_SIGN_INPUT alg=$OTAPACK_SIGN_ALGORITHM key=\${OTAPACK_SIGNING_KEY-unset} pin=\${OTAPACK_PKCS11_PIN-unset} fp=$OTAPACK_SIGN_CERT_SHA256" >> "${envLog}"
key=$1; shift
exec openssl dgst -sha256 -sign "$key" "$@"`);
  // a digest signer (KMS MessageType=DIGEST style): signs the 32 bytes it is given as a SHA-256 digest
  signDigest = script('sign-digest.sh', 'exec openssl pkeyutl -sign -inkey "$1" -pkeyopt digest:sha256');
});

describe('--sign-command', () => {
  test('bundle: an RSA signature from a command; the real client accepts it; the command sees no otapack secret', async () => {
    const out = join(dir, 'cmd-rsa.swu');
    const r = await otapack(['bundle', spec, '-o', out, '--sign-command', `${signDer} ${rsa.key}`, '--cert', rsa.cert, '--json'], {
      env: { OTAPACK_SIGNING_KEY: '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----', OTAPACK_PKCS11_PIN: '1234' },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ signed: true, signerKind: 'command', signer: 'CN=remote signer' });
    expect((await swupdateOk(out, { check: true, cert: rsa.cert, select: 'stable,copy2' })).ok).toBe(true);
    expect((await swupdate(out, { check: true, cert: other.cert, select: 'stable,copy2' })).ok).toBe(false);
    expect((await otapack(['verify', out, '--trust', rsa.cert])).code).toBe(0);
    const log = readFileSync(envLog, 'utf8');
    expect(log).toMatch(/^input=der alg=rsa-pkcs1-sha256 key=unset pin=unset fp=[0-9a-f]{64}$/m);
  });

  test('sign: ECDSA and RSA-PSS from a command; --sign-input sha256 hands over the digest; r||s ECDSA is accepted', async () => {
    // signs like a PKCS#11 token or a JOSE service: ECDSA as r||s (IEEE P1363), not DER
    const p1363 = join(dir, 'p1363.mjs');
    writeFileSync(p1363, `import { sign } from 'node:crypto'; import { readFileSync } from 'node:fs';
const data = readFileSync(0);
process.stdout.write(sign('sha256', data, { key: readFileSync(process.argv[2], 'utf8'), dsaEncoding: 'ieee-p1363' }));
`);
    const outs: [string, string[], string][] = [
      ['cmd-p1363.swu', ['--sign-command', `${process.execPath} ${p1363} ${ec.key}`, '--cert', ec.cert], ec.cert],
      ['cmd-ec.swu', ['--sign-command', `${signDer} ${ec.key}`, '--cert', ec.cert], ec.cert],
      ['cmd-pss.swu', ['--pss', '--sign-command', `${signDer} ${rsa.key} -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32`, '--cert', rsa.cert], rsa.cert],
      ['cmd-digest.swu', ['--sign-command', `${signDigest} ${rsa.key}`, '--sign-input', 'sha256', '--cert', rsa.cert], rsa.cert],
      ['cmd-digest-ec.swu', ['--sign-command', `'${signDigest}' "${ec.key}"`, '--sign-input', 'sha256', '--cert', ec.cert], ec.cert],
    ];
    for (const [name, args, cert] of outs) {
      const out = join(dir, name);
      const r = await otapack(['sign', unsigned, '-o', out, ...args, '--json']);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout).method).toBe('command');
      const c = await swupdateOk(out, { check: true, cert, select: 'stable,copy2' });
      expect(c.ok, `${name}: ${c.output}`).toBe(true);
    }
  });

  test('an explicit shell works when asked for: sh -c with a pipeline (base64 round trip, as KMS CLIs print)', async () => {
    const out = join(dir, 'cmd-sh.swu');
    const cmd = `sh -c 'openssl dgst -sha256 -sign "$0" | base64 | base64 -d' ${rsa.key}`;
    const r = await otapack(['sign', unsigned, '-o', out, '--sign-command', cmd, '--cert', rsa.cert]);
    expect(r.code, r.stderr).toBe(0);
    expect((await swupdateOk(out, { check: true, cert: rsa.cert, select: 'stable,copy2' })).ok).toBe(true);
  });

  test('a failing command, empty output, a signature that does not verify: one line each, nothing written', async () => {
    const out = join(dir, 'never.swu');
    const sign = (cmd: string, extra: string[] = []) => otapack(['sign', unsigned, '-o', out, '--sign-command', cmd, '--cert', rsa.cert, ...extra]);
    const failing = script('fail.sh', 'cat >/dev/null; echo "kms: AccessDeniedException: not allowed to use key" >&2; exit 3');
    expectCleanFailure(await sign(failing), 7, /signing command "fail\.sh" failed \(exit 3\): kms: AccessDeniedException: not allowed to use key/);
    const silent = script('silent.sh', 'cat >/dev/null; exit 0');
    expectCleanFailure(await sign(silent), 5, /signing command "silent\.sh" printed no signature \(it must write the raw signature bytes to stdout\)/);
    expectCleanFailure(await sign(`${signDer} ${other.key}`), 5, /signing command "sign-der\.sh": the 256-byte signature it returned does not verify with the certificate CN=remote signer \(rsa-pkcs1-sha256\): wrong key for this certificate/);
    expectCleanFailure(await sign(`sh -c 'openssl dgst -sha256 -sign "$0" | base64' ${rsa.key}`), 5, /its output looks like text \(base64\?\); write the raw bytes/);
    expectCleanFailure(await sign(`${signDer} ${rsa.key}`, ['--sign-input', 'sha256']), 5, /hashed the 32-byte digest again/);
    // a service that hashes with another algorithm
    expectCleanFailure(await sign(`${signDer} ${rsa.key} -sha512`), 5, /does not verify .*--sign-input sha256 hands it the digest instead/);
    // the tool's own refusal comes through as its last stderr line
    expectCleanFailure(await sign(`${signDigest} ${rsa.key}`), 7, /signing command "sign-digest\.sh" failed \(exit 1\): .*too long to be a hash/);
    expectCleanFailure(await sign(join(dir, 'no-such-signer')), 7, /signing command "no-such-signer": program not found \(no such file\)/);
    expectCleanFailure(await sign('no-such-signer-on-path --key x'), 7, /program not found \(not on PATH\)/);
    const killed = script('killed.sh', 'kill -9 $$');
    expectCleanFailure(await sign(killed), 7, /signing command "killed\.sh" failed \(killed by SIGKILL\)/);
    // usage: shell syntax without a shell, conflicting options
    expectCleanFailure(await sign(`${signDer} ${rsa.key} | base64 -d`), 2, /--sign-command: "\|" needs a shell.*sh -c/);
    expectCleanFailure(await sign(`${signDer} $HOME/key`), 2, /"\$" needs a shell/);
    expectCleanFailure(await otapack(['sign', unsigned, '-o', out, '--sign-command', signDer, '--key', rsa.key, '--cert', rsa.cert]), 2, /--sign-command and --key exclude each other/);
    expectCleanFailure(await otapack(['sign', unsigned, '-o', out, '--sign-command', signDer]), 5, /--sign-command needs the signing certificate/);
    expectCleanFailure(await otapack(['sign', unsigned, '-o', out, '--key', rsa.key, '--cert', rsa.cert, '--sign-input', 'sha256']), 2, /--sign-input applies only with --sign-command/);
    expect(existsSync(out)).toBe(false);
  });

  test('command lines are split like a shell would, without expanding anything', () => {
    expect(splitCommand(`aws kms sign --key-id 'alias/fleet key' --message-type DIGEST`)).toEqual(['aws', 'kms', 'sign', '--key-id', 'alias/fleet key', '--message-type', 'DIGEST']);
    expect(splitCommand(`a "b c" d\\ e 'f"g' "h\\"i" x#y ~z`.replace(' ~z', ''))).toEqual(['a', 'b c', 'd e', 'f"g', 'h"i', 'x#y']);
    expect(splitCommand(`sh -c 'x | y > $z'`)).toEqual(['sh', '-c', 'x | y > $z']);
    expect(splitCommand(`  a  ''  b `)).toEqual(['a', '', 'b']);
    for (const bad of ['a | b', 'a; b', 'a && b', 'a > f', 'a $(b)', 'a `b`', 'a "$X"', 'a *', '~/bin/sign', 'a #comment', "a 'open", 'a "open', '   ']) {
      expect(() => splitCommand(bad), bad).toThrow(/--sign-command/);
    }
  });
});
