// otapack's CMS signatures verify with `openssl cms -verify` for every key type, and signatures
// made by openssl verify with otapack's parser, including -noattr and attached variants.
import { describe, test, expect, beforeAll } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateKeySet, certPem, privateKeyPem, type KeyType } from '../src/crypto/keygen.js';
import { KeyObjectSigner, schemeFor } from '../src/crypto/signer.js';
import { signCms, parseCms, findSignerCert, verifySignerInfo, predictCmsSize } from '../src/crypto/cms.js';
import { validateChain } from '../src/crypto/trust.js';
import { parseCertificates } from '../src/crypto/x509.js';
import { tmp } from './helpers/run.js';

const dir = tmp();
const content = Buffer.from('software = { version = "1.0"; };\n');
beforeAll(() => writeFileSync(join(dir, 'content'), content));

describe('CMS interop with openssl', () => {
  test.each([
    ['rsa2048', false, false], ['rsa3072', true, false], ['ec256', false, false], ['ec384', false, false], ['rsa2048', false, true],
  ] as [KeyType, boolean, boolean][])('%s pss=%s ca=%s: openssl verifies ours, size prediction exact', async (type, pss, ca) => {
    const ks = generateKeySet({ cn: 'interop', days: 30, type, ca });
    const signer = new KeyObjectSigner(ks.signingKey, ks.signingCert, [], schemeFor(ks.signingCert, pss), 'test');
    const t = new Date();
    const sig = await signCms(content, signer, t);
    if (!type.startsWith('ec')) expect(sig.length).toBe(predictCmsSize(content, signer, t));
    else expect(sig.length).toBeLessThanOrEqual(predictCmsSize(content, signer, t));
    const s = join(dir, `${type}${pss}${ca}.sig`);
    const anchor = join(dir, `${type}${pss}${ca}.pem`);
    writeFileSync(s, sig);
    writeFileSync(anchor, certPem((ks.ca?.cert ?? ks.signingCert).der));
    const r = await execa('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', s, '-content', join(dir, 'content'), '-CAfile', anchor, '-purpose', 'smimesign', '-out', '/dev/null'], { reject: false, all: true });
    expect(r.exitCode, String(r.all)).toBe(0);
    // and a one-byte change of the content is refused by openssl and by us
    writeFileSync(join(dir, 'content2'), Buffer.concat([content, Buffer.from(' ')]));
    const r2 = await execa('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', s, '-content', join(dir, 'content2'), '-CAfile', anchor, '-out', '/dev/null'], { reject: false });
    expect(r2.exitCode).not.toBe(0);
    const p = parseCms(sig);
    expect(verifySignerInfo(p.signers[0]!, Buffer.concat([content, Buffer.from(' ')]), ks.signingCert.x509.publicKey)).toMatch(/message digest does not match/);
  });

  test.each([['detached'], ['-noattr'], ['-nodetach'], ['-md sha512']])('openssl %s signatures verify with otapack', async (variant) => {
    const ks = generateKeySet({ cn: 'openssl', days: 30, type: 'rsa2048', ca: false });
    const key = join(dir, 'o.key');
    const crt = join(dir, 'o.crt');
    writeFileSync(key, privateKeyPem(ks.signingKey));
    writeFileSync(crt, certPem(ks.signingCert.der));
    const extra = variant === 'detached' ? [] : variant.split(' ');
    const s = join(dir, 'o.sig');
    await execa('openssl', ['cms', '-sign', '-in', join(dir, 'content'), '-binary', '-outform', 'DER', '-nosmimecap', '-signer', crt, '-inkey', key, '-out', s, ...extra]);
    const p = parseCms(readFileSync(s));
    const cert = findSignerCert(p, p.signers[0]!)!;
    expect(cert.subject).toBe('CN=openssl');
    expect(verifySignerInfo(p.signers[0]!, p.eContent ?? content, cert.x509.publicKey)).toBeUndefined();
    expect(validateChain(cert, p.certificates, parseCertificates(readFileSync(crt), 'crt'), 'emailProtection', new Date()).ok).toBe(true);
  });

  test('trust rules match the client: partial chains, purpose, expiry', async () => {
    const ks = generateKeySet({ cn: 'leaf', days: 30, type: 'ec256', ca: true });
    const now = new Date();
    // leaf alone in the trust file: partial chain, refused like SWUpdate does
    const partial = validateChain(ks.signingCert, [], [ks.signingCert], 'emailProtection', now);
    expect(partial.ok).toBe(false);
    expect(partial.problems.join()).toMatch(/partial chain/);
    expect(validateChain(ks.signingCert, [], [ks.ca!.cert], 'codeSigning', now).ok).toBe(true);
    const later = new Date(now.getTime() + 40 * 86400_000);
    expect(validateChain(ks.signingCert, [], [ks.ca!.cert], 'emailProtection', later).problems.join()).toMatch(/expired on/);
    const earlier = new Date(now.getTime() - 10 * 86400_000);
    expect(validateChain(ks.signingCert, [], [ks.ca!.cert], 'emailProtection', earlier).problems.join()).toMatch(/not valid before/);
    // the CA key itself (KU keyCertSign only) is not a valid signer
    expect(validateChain(ks.ca!.cert, [], [ks.ca!.cert], 'emailProtection', now).problems.join()).toMatch(/neither digitalSignature nor nonRepudiation/);
  });
});
