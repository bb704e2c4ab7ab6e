// convert with a CA -> intermediate -> signer chain: the devices' trust file carries the
// intermediate (the client builds chains from that file only), the real client accepts the
// bundle with exactly that file, and a --trust devices would refuse the signer with is refused
// before anything is written.
import { describe, test, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { swupdateOk, swupdate } from './helpers/swupdate.js';
import { buildBuildrootImage, type FixtureImage } from './helpers/images.js';
import { ext4Cat } from './helpers/convert-suite.js';

const dir = tmp('otapack-trust-chain-');
let fx: FixtureImage;
const f = (n: string): string => join(dir, n);

async function openssl(args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: dir });
}

beforeAll(async () => {
  fx = await buildBuildrootImage(join(dir, 'input'));
  writeFileSync(f('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  writeFileSync(f('leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection,codeSigning\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'root.key', '-out', 'root.crt', '-days', '3650', '-subj', '/CN=fleet root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=release CA']);
  await openssl(['x509', '-req', '-in', 'int.csr', '-CA', 'root.crt', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'int.crt', '-days', '3650', '-extfile', 'ca.ext']);
  await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=release signer']);
  await openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'leaf.crt', '-days', '3650', '-extfile', 'leaf.ext']);
  writeFileSync(f('chain.pem'), readFileSync(f('int.crt'), 'latin1') + readFileSync(f('root.crt'), 'latin1'));
  writeFileSync(f('root-and-int.pem'), readFileSync(f('root.crt'), 'latin1') + readFileSync(f('int.crt'), 'latin1'));
});

describe('convert with an intermediate CA', () => {
  test('the devices trust root + intermediate; the real client accepts the bundle with that trust file and refuses it with the root alone', async () => {
    const out = f('out');
    const r = await otapack(['convert', fx.path, '-o', out, '--key', f('leaf.key'), '--cert', f('leaf.crt'), '--chain', f('chain.pem'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const slotA = report.output.partitions.find((p: { role: string }) => p.role === 'rootfs-a');
    const img = join(out, readdirSync(out).find((n) => n.endsWith('.img'))!);
    const bundle = join(out, readdirSync(out).find((n) => n.endsWith('.swu'))!);
    const trust = await ext4Cat(img, slotA.start, '/etc/otapack/trust.pem');
    writeFileSync(f('device-trust.pem'), trust);
    const ders = (t: string): string[] => [...t.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END/g)].map((m) => m[1]!.replace(/\s+/g, ''));
    expect(ders(trust)).toEqual(ders(readFileSync(f('root-and-int.pem'), 'latin1')));
    const ok = await swupdateOk(bundle, { check: true, cert: f('device-trust.pem'), select: 'stable,copy2' });
    expect(ok.ok, ok.output).toBe(true);
    const v = await otapack(['verify', bundle, '--trust', f('device-trust.pem')]);
    expect(v.code, v.stderr).toBe(0);
    // negative twin: the root alone, as convert used to install it
    const no = await swupdate(bundle, { check: true, cert: f('root.crt'), select: 'stable,copy2' });
    expect(no.ok).toBe(false);
    expect(no.output).toMatch(/Authentication of all signatures failed/);
    const v2 = await otapack(['verify', bundle, '--trust', f('root.crt')]);
    expect(v2.code).toBe(1);
    expect(v2.stderr).toMatch(/ignores the intermediate certificates a signature carries; add CN=release CA to/);
  });

  test('--trust with the root alone: refused before anything is written, naming what devices would do', async () => {
    const out = f('out-root-only');
    const r = await otapack(['convert', fx.path, '-o', out, '--key', f('leaf.key'), '--cert', f('leaf.crt'), '--chain', f('chain.pem'), '--trust', f('root.crt')]);
    expectCleanFailure(r, 5, /devices would refuse every bundle signed by CN=release signer: .*add CN=release CA to /);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  test('update.cert-purpose codeSigning with a signer whose EKU lacks it: refused before any work', async () => {
    await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'mail.key', '-out', 'mail.csr', '-subj', '/CN=mail only']);
    writeFileSync(f('mail.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=emailProtection\n');
    await openssl(['x509', '-req', '-in', 'mail.csr', '-CA', 'int.crt', '-CAkey', 'int.key', '-CAcreateserial', '-out', 'mail.crt', '-days', '3650', '-extfile', 'mail.ext']);
    writeFileSync(f('code.yaml'), 'update:\n  cert-purpose: codeSigning\n');
    const out = f('out-code');
    const r = await otapack(['convert', fx.path, '-c', f('code.yaml'), '-o', out, '--key', f('mail.key'), '--cert', f('mail.crt'), '--chain', f('chain.pem')]);
    expectCleanFailure(r, 5, /devices would refuse every bundle signed by CN=mail only: .*codeSigning/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});
