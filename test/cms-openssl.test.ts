// otapack's CMS signatures verify with `openssl cms -verify` for every key type, and signatures
// made by openssl verify with otapack's parser, including -noattr and attached variants.
import { describe, test, expect, beforeAll } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateKeySet, certPem, privateKeyPem, type KeyType } from '../src/crypto/keygen.js';
import { KeyObjectSigner, schemeFor } from '../src/crypto/signer.js';
import { signCms, parseCms, findSignerCert, predictCmsSize } from '../src/crypto/cms.js';
import { verifyCms, verifyChain } from '../src/crypto/cms-verify.js';
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
    const v = await verifyCms(sig, Buffer.concat([content, Buffer.from(' ')]));
    expect(v.signatureOk).toBe(false);
    expect(v.signatureProblem).toMatch(/content verify error|digest/i);
    expect((await verifyCms(sig, content)).signatureOk).toBe(true);
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
    const v = await verifyCms(readFileSync(s), content, { anchors: parseCertificates(readFileSync(crt), 'crt'), purpose: 'emailProtection' });
    expect(v.signatureOk).toBe(true);
    expect(v.trusted).toBe(true);
  });

  // the verdicts themselves are held to the real client in verify-trust-differential.test.ts;
  // here: the reasons are named, and --time reaches OpenSSL
  test('chain reasons: partial chain, purpose, expiry, --time', async () => {
    const ks = generateKeySet({ cn: 'leaf', days: 30, type: 'ec256', ca: true });
    const now = new Date();
    const partial = await verifyChain(ks.signingCert, { anchors: [ks.signingCert], purpose: 'emailProtection' });
    expect(partial.ok).toBe(false);
    expect(partial.reason).toMatch(/no partial chains/);
    expect((await verifyChain(ks.signingCert, { anchors: [ks.ca!.cert], purpose: 'codeSigning' })).ok).toBe(true);
    const later = new Date(now.getTime() + 40 * 86400_000);
    expect((await verifyChain(ks.signingCert, { anchors: [ks.ca!.cert], purpose: 'emailProtection', at: later })).reason).toMatch(/expired on/);
    const earlier = new Date(now.getTime() - 10 * 86400_000);
    expect((await verifyChain(ks.signingCert, { anchors: [ks.ca!.cert], purpose: 'emailProtection', at: earlier })).reason).toMatch(/not valid before/);
    // the CA key itself (KU keyCertSign only) is not a valid signer
    expect((await verifyChain(ks.ca!.cert, { anchors: [ks.ca!.cert], purpose: 'emailProtection' })).reason).toMatch(/unsuitable certificate purpose/);
  });
});
