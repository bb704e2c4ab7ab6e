// PKCS#11 signing for real: a SoftHSM2 token per run (private SOFTHSM2_CONF), keys imported into
// it or generated on it, bundles signed by bundle / sign / convert through pkcs11-tool, and the
// real SWUpdate client as the judge. Every failure mode is one clear line.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, expectCleanFailure, ROOT } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { createToken, importKey, generateOnToken, storeCert, issueCert, type Token } from './helpers/softhsm.js';

let dir: string;
let tok: Token;
let rsa: KeyDir;
let other: KeyDir;
let ca: KeyDir;
let ecCert: string;
let spec: string;
let unsigned: string;
let shim: string;
let shimLog: string;

const RSA_URI = (t: Token): string => `pkcs11:token=${t.label};object=release;type=private`;
// by label: pkcs11-tool itself ignores --label when signing and takes the first key it finds
const EC_URI = (t: Token): string => `pkcs11:token=${t.label};object=fleet-ec`;

beforeAll(async () => {
  dir = tmp('otapack-pkcs11-');
  [rsa, other, ca] = await Promise.all([
    keygen(join(dir, 'rsa'), ['--type', 'rsa2048', '--cn', 'token release key']),
    keygen(join(dir, 'other'), ['--type', 'rsa2048']),
    keygen(join(dir, 'ca'), ['--ca', '--type', 'ec256', '--cn', 'fleet']),
  ]);
  tok = await createToken(join(dir, 'hsm'));
  // RSA: an existing release key moved onto the token
  await importKey(tok, rsa.key, 'release', '01');
  // EC: generated on the token; the CA issues its certificate, which is stored on the token too
  const pub = await generateOnToken(tok, 'EC:prime256v1', 'fleet-ec', '02');
  ecCert = await issueCert({ pubkey: pub, caCert: ca.ca!, caKey: join(ca.dir, 'ca.key'), cn: 'token ec key', out: join(dir, 'ec.crt') });
  await storeCert(tok, ecCert, 'fleet-ec', '02');

  const payload = await makeExt4(join(dir, 'rootfs.ext4'), 6);
  spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }));
  unsigned = join(dir, 'unsigned.swu');
  expect((await otapack(['bundle', spec, '-o', unsigned, '--unsigned'])).code).toBe(0);

  // pkcs11-tool wrapper that records its command line and which secrets it inherited
  shim = join(dir, 'shim');
  shimLog = join(dir, 'shim.log');
  mkdirSync(shim);
  writeFileSync(join(shim, 'pkcs11-tool'), `#!/bin/sh
printf 'argv:' >> "${shimLog}"; printf ' %s' "$@" >> "${shimLog}"; echo >> "${shimLog}"
echo "env: OTAPACK_PKCS11_PIN=\${OTAPACK_PKCS11_PIN-unset} OTAPACK_SIGNING_KEY=\${OTAPACK_SIGNING_KEY-unset} tool-pin=\${OTAPACK_PKCS11_TOOL_PIN:+set}" >> "${shimLog}"
exec /usr/bin/pkcs11-tool "$@"
`);
  chmodSync(join(shim, 'pkcs11-tool'), 0o755);
});

const env = (extra: Record<string, string> = {}): Record<string, string> => ({ ...tok.env, ...extra });

describe('PKCS#11 signing through a SoftHSM2 token', () => {
  test('bundle: RSA key on the token signs; the real client and otapack verify accept it; the PIN never reaches a command line', async () => {
    const out = join(dir, 'token-rsa.swu');
    const r = await otapack(['bundle', spec, '-o', out, '--key', RSA_URI(tok), '--pkcs11-module', tok.module, '--cert', rsa.cert, '--json'], {
      env: env({ OTAPACK_PKCS11_PIN: tok.pin, OTAPACK_SIGNING_KEY: '-----BEGIN PRIVATE KEY-----\nnot used\n-----END PRIVATE KEY-----', PATH: `${shim}:${process.env.PATH}` }),
    });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ signed: true, signerKind: 'pkcs11', signer: 'CN=token release key', signatureAlgorithm: 'RSA PKCS#1 v1.5 / SHA-256' });
    expect(r.stderr).not.toContain(tok.pin);
    const c = await swupdateOk(out, { check: true, cert: rsa.cert, select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(true);
    const v = await otapack(['verify', out, '--trust', rsa.cert]);
    expect(v.code, v.stderr).toBe(0);
    // negative twin: the client refuses it under another anchor
    expect((await swupdate(out, { check: true, cert: other.cert, select: 'stable,copy2' })).ok).toBe(false);

    const log = readFileSync(shimLog, 'utf8');
    expect(log).toMatch(/--sign --mechanism RSA-PKCS/);
    expect(log).toMatch(/--pin env:OTAPACK_PKCS11_TOOL_PIN/);
    expect(log).not.toContain(tok.pin); // not in any argv
    expect(log).toMatch(/env: OTAPACK_PKCS11_PIN=unset OTAPACK_SIGNING_KEY=unset tool-pin=set/);
    expect(log).not.toMatch(/OTAPACK_PKCS11_PIN=[^u]/);
  });

  test('sign: EC key generated on the token, certificate read from the token, PIN from pin-source, module from $OTAPACK_PKCS11_MODULE', async () => {
    const pinFile = join(dir, 'pin.txt');
    writeFileSync(pinFile, `${tok.pin}\n`, { mode: 0o600 });
    const out = join(dir, 'token-ec.swu');
    const r = await otapack(['sign', unsigned, '-o', out, '--key', `${EC_URI(tok)}?pin-source=file:${pinFile}`, '--json'], {
      env: env({ OTAPACK_PKCS11_MODULE: tok.module }),
    });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ method: 'pkcs11', signer: 'CN=token ec key', algorithm: 'ECDSA / SHA-256' });
    expect(j.certificate.issuer).toBe('CN=fleet CA');
    // devices trust only the CA; the leaf comes from the token, embedded in the signature
    const c = await swupdateOk(out, { check: true, cert: ca.ca!, select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(true);
    expect((await otapack(['verify', out, '--trust', ca.ca!])).code).toBe(0);
    expect((await swupdate(out, { check: true, cert: rsa.cert, select: 'stable,copy2' })).ok).toBe(false);
  });

  test('bundle --pss: RSA-PSS computed on the token, accepted by the client', async () => {
    const out = join(dir, 'token-pss.swu');
    const r = await otapack(['bundle', spec, '-o', out, '--pss', '--key', `${RSA_URI(tok)}?pin-value=${tok.pin}&module-path=${tok.module}`, '--cert', rsa.cert], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/RSA-PSS \/ SHA-256/);
    expect(r.stderr).not.toContain(tok.pin);
    expect((await swupdateOk(out, { check: true, cert: rsa.cert, select: 'stable,copy2' })).ok).toBe(true);
  });

  test('convert: the A/B conversion signs its bundle through the token', async () => {
    const work = join(dir, 'convert');
    await execa('bash', [join(ROOT, 'examples/build-sample-image.sh'), work]);
    const out = join(work, 'out');
    const r = await otapack(['convert', join(work, 'sdcard.img'), '-c', join(ROOT, 'examples/otapack.yaml'), '-o', out,
      '--key', RSA_URI(tok), '--cert', rsa.cert, '--aes-key', rsa.aes, '--json'], { env: env({ OTAPACK_PKCS11_PIN: tok.pin, OTAPACK_PKCS11_MODULE: tok.module }) });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).bundle.signer).toBe('CN=token release key');
    const c = await swupdateOk(join(out, 'sdcard.swu'), { check: true, cert: rsa.cert, aesKey: rsa.aes, hw: 'sample-board:1.0', select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(true);
  });

  test('a wrong PIN is one clear line, tried once, and writes nothing', async () => {
    const out = join(dir, 'wrong-pin.swu');
    writeFileSync(shimLog, '');
    const r = await otapack(['bundle', spec, '-o', out, '--key', RSA_URI(tok), '--pkcs11-module', tok.module, '--cert', rsa.cert], {
      env: env({ OTAPACK_PKCS11_PIN: '999999', PATH: `${shim}:${process.env.PATH}` }),
    });
    expectCleanFailure(r, 5, /pkcs11:token=otapack-test;object=release: wrong PIN \(CKR_PIN_INCORRECT\)/);
    expect(r.stderr).not.toContain('999999');
    expect(existsSync(out)).toBe(false);
    expect(readFileSync(shimLog, 'utf8').match(/--login/g)?.length).toBe(1);
    // the right PIN still works (the token is not locked by one failure)
    expect((await otapack(['sign', unsigned, '-o', out, '--key', RSA_URI(tok), '--pkcs11-module', tok.module, '--cert', rsa.cert], { env: env({ OTAPACK_PKCS11_PIN: tok.pin }) })).code).toBe(0);
  });

  test('each misconfiguration is refused with one line naming it', async () => {
    const out = join(dir, 'never.swu');
    const run = (key: string, extra: string[] = [], e: Record<string, string> = { OTAPACK_PKCS11_PIN: tok.pin }) =>
      otapack(['sign', unsigned, '-o', out, '--key', key, ...extra], { env: env(e) });
    const mod = ['--pkcs11-module', tok.module];
    expectCleanFailure(await run(RSA_URI(tok), [...mod, '--cert', rsa.cert], {}), 5, /no PIN: set \$OTAPACK_PKCS11_PIN/);
    expectCleanFailure(await run(RSA_URI(tok), ['--cert', rsa.cert]), 5, /no PKCS#11 module: give --pkcs11-module/);
    expectCleanFailure(await run(RSA_URI(tok), ['--pkcs11-module', join(dir, 'nope.so'), '--cert', rsa.cert]), 5, /PKCS#11 module .*nope\.so: no such file/);
    const notLib = join(dir, 'not-a-module.so');
    writeFileSync(notLib, 'not an ELF file\n');
    expectCleanFailure(await run(RSA_URI(tok), ['--pkcs11-module', notLib, '--cert', rsa.cert]), 5, /PKCS#11 module .*not-a-module\.so cannot be loaded: sc_dlopen failed: .*(file too short|invalid ELF header)/);
    expectCleanFailure(await run(`pkcs11:token=nosuch;object=release`, [...mod, '--cert', rsa.cert]), 5, /no token matches the URI \(tokens found: "otapack-test"/);
    const absent = await run(`pkcs11:token=${tok.label};object=absent`, [...mod, '--cert', rsa.cert]);
    expectCleanFailure(absent, 5, /no private key with this id\/object on the token \(private keys: /);
    expect(absent.stderr).toContain('release (RSA, id 01)');
    expect(absent.stderr).toContain('fleet-ec (EC, id 02)');
    expectCleanFailure(await run(`pkcs11:token=${tok.label};object=release;id=%02`, [...mod, '--cert', rsa.cert]), 5, /no private key with this id\/object/);
    expectCleanFailure(await run(`pkcs11:token=${tok.label};object=release`, [...mod, '--cert', ecCert]), 5, /the key on the token is RSA but the certificate CN=token ec key has an EC key/);
    expectCleanFailure(await run(`pkcs11:token=${tok.label}`, [...mod, '--cert', rsa.cert]), 5, /does not name a key: add object=LABEL/);
    expectCleanFailure(await run(`pkcs11:token=${tok.label};objet=release`, [...mod, '--cert', rsa.cert]), 5, /unknown path attribute "objet"/);
    expectCleanFailure(await run(`pkcs11:token=${tok.label};object=release`, [...mod]), 5, /no certificate with the key.s id \(01\) on the token; give the key's certificate with --cert/);
    expectCleanFailure(await run(RSA_URI(tok), [...mod, '--cert', other.cert]), 5, /the key on the token does not match the certificate CN=otapack signer/);
    expectCleanFailure(await run(EC_URI(tok), [...mod, '--pss']), 5, /--pss needs an RSA key/);
    expect(existsSync(out)).toBe(false);
  });
});
