// Certificate hygiene: expired and not-yet-valid signing certificates (or chain certificates)
// are refused by bundle / sign / sign --signature, naming the dates; those expiring within the
// --expiry-warning window (default 90 days) are signed with a warning. verify FAILs what the
// real client refuses (an expired signer) and WARNs within the window; the client is the judge.
import { describe, test, expect, beforeAll } from 'vitest';
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { makeExt4, writeSpec, abSpec } from './helpers/bundle-fixtures.js';
import { makeCertificate, privateKeyPem, certPem } from '../src/crypto/keygen.js';
import { KeyObjectSigner, schemeFor } from '../src/crypto/signer.js';
import { resignBundle } from '../src/clients/swupdate/resign.js';
import type { CertInfo } from '../src/crypto/x509.js';

const DAY = 86_400_000;
const ymd = (d: Date): string => d.toISOString().slice(0, 10);

interface Pair { key: string; cert: string; info: CertInfo; k: KeyObject }
let dir: string;
let spec: string;
let unsigned: string;

function pair(name: string, notBefore: Date, days: number, issuer?: Pair, ca = false): Pair {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const info = makeCertificate({ subjectKey: k, cn: name, days, notBefore, ca, issuer: issuer ? { key: issuer.k, cert: issuer.info } : undefined });
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  writeFileSync(key, privateKeyPem(k), { mode: 0o600 });
  writeFileSync(cert, certPem(info.der));
  return { key, cert, info, k };
}

let expired: Pair;
let future: Pair;
let soon: Pair;
let fine: Pair;
let oldCa: Pair;
let leafOfOldCa: Pair;

beforeAll(async () => {
  dir = tmp('otapack-expiry-');
  const now = Date.now();
  expired = pair('expired signer', new Date(now - 400 * DAY), 365); // ended 35 days ago
  future = pair('future signer', new Date(now + 30 * DAY), 3650); // issued on a host whose clock runs ahead
  soon = pair('soon signer', new Date(now - DAY), 31); // 30 days left
  fine = pair('fine signer', new Date(now - DAY), 3650);
  oldCa = pair('old CA', new Date(now - 3000 * DAY), 2990, undefined, true); // CA expired 10 days ago
  leafOfOldCa = pair('leaf of old CA', new Date(now - 100 * DAY), 3650, oldCa);
  const payload = await makeExt4(join(dir, 'rootfs.ext4'), 6);
  spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }));
  unsigned = join(dir, 'unsigned.swu');
  expect((await otapack(['bundle', spec, '-o', unsigned, '--unsigned'])).code).toBe(0);
});

/** A bundle signed with any certificate, bypassing the CLI's date checks (what an old pipeline could have produced). */
async function signedWith(p: Pair, name: string, chain: CertInfo[] = []): Promise<string> {
  const out = join(dir, name);
  await resignBundle({ input: unsigned, output: out, signer: new KeyObjectSigner(p.k, p.info, chain, schemeFor(p.info, false), p.key) });
  return out;
}

describe('signing refuses certificates devices would refuse, naming the dates', () => {
  test('expired and not-yet-valid signers: bundle and sign refuse them (key file, signing command, expired CA in --chain); nothing is written', async () => {
    const out = join(dir, 'never.swu');
    const exp = expired.info;
    const r1 = await otapack(['bundle', spec, '-o', out, '--key', expired.key, '--cert', expired.cert]);
    expectCleanFailure(r1, 5, new RegExp(`signing certificate CN=expired signer expired on ${ymd(exp.notAfter)} \\(valid ${ymd(exp.notBefore)} to ${ymd(exp.notAfter)}, today is ${ymd(new Date())}\\); devices refuse bundles signed with it`));
    const r2 = await otapack(['sign', unsigned, '-o', out, '--key', future.key, '--cert', future.cert]);
    expectCleanFailure(r2, 5, new RegExp(`signing certificate CN=future signer is not valid before ${ymd(future.info.notBefore)} .*check the signing host's clock`));
    // a --sign-command never runs for a certificate devices would refuse
    const r3 = await otapack(['sign', unsigned, '-o', out, '--sign-command', 'false', '--cert', expired.cert]);
    expectCleanFailure(r3, 5, /expired on/);
    // an expired CA in --chain is refused too, even when the leaf is fine
    const r4 = await otapack(['sign', unsigned, '-o', out, '--key', leafOfOldCa.key, '--cert', leafOfOldCa.cert, '--chain', oldCa.cert]);
    expectCleanFailure(r4, 5, new RegExp(`CA certificate CN=old CA expired on ${ymd(oldCa.info.notAfter)}`));
    expect(existsSync(out)).toBe(false);
  });

  test('a certificate expiring within the window signs, with one warning naming the date; --expiry-warning moves the window', async () => {
    const out = join(dir, 'soon.swu');
    const r = await otapack(['sign', unsigned, '-o', out, '--key', soon.key, '--cert', soon.cert]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: signing certificate CN=soon signer expires in (29|30) days \\(${ymd(soon.info.notAfter)}\\)`));
    const quiet = await otapack(['sign', unsigned, '-o', out, '--key', soon.key, '--cert', soon.cert, '--expiry-warning', '10']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toMatch(/warning/);
    const fineRun = await otapack(['bundle', spec, '-o', join(dir, 'fine.swu'), '--key', fine.key, '--cert', fine.cert]);
    expect(fineRun.stderr).not.toMatch(/warning/);
    expectCleanFailure(await otapack(['sign', unsigned, '-o', out, '--key', soon.key, '--cert', soon.cert, '--expiry-warning', 'soon']), 2, /--expiry-warning: "soon" is not a number of days/);
    expectCleanFailure(await otapack(['verify', out, '--expiry-warning', '-3']), 2, /--expiry-warning/);
  });

  test('sign --signature: a signature made elsewhere with an expired certificate is refused; one expiring soon is attached with a warning', async () => {
    const m = join(dir, 'sw-description');
    expect((await otapack(['manifest', unsigned, '-o', m])).code).toBe(0);
    const cms = async (p: Pair, name: string): Promise<string> => {
      const sig = join(dir, name);
      // openssl signs with any certificate (-noverify is about verification; signing never checks dates)
      await execa('openssl', ['cms', '-sign', '-in', m, '-binary', '-outform', 'DER', '-nosmimecap', '-signer', p.cert, '-inkey', p.key, '-out', sig]);
      return sig;
    };
    const out = join(dir, 'attached.swu');
    expectCleanFailure(await otapack(['sign', unsigned, '--signature', await cms(expired, 'expired.sig'), '-o', out]), 5,
      new RegExp(`signing certificate CN=expired signer expired on ${ymd(expired.info.notAfter)}`));
    expect(existsSync(out)).toBe(false);
    const r = await otapack(['sign', unsigned, '--signature', await cms(soon, 'soon.sig'), '--cert', soon.cert, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: signing certificate CN=soon signer expires in/);
    expect(JSON.parse(r.stdout)).toMatchObject({ method: 'attached', certificate: { subject: 'CN=soon signer', notAfter: soon.info.notAfter.toISOString() } });
  });
});

describe('verify judges expiry the way the client does', () => {
  test('expired signer: verify FAILs naming the date, with or without --trust; the real client refuses it too', async () => {
    const b = await signedWith(expired, 'expired.swu');
    const c = await swupdate(b, { check: true, cert: expired.cert, select: 'stable,copy2' });
    expect(c.ok).toBe(false);
    expect(c.output).toMatch(/Authentication of all signatures failed/);
    for (const extra of [['--trust', expired.cert], []]) {
      const v = await otapack(['verify', b, ...extra, '--json']);
      expect(v.code).toBe(1);
      const expiry = JSON.parse(v.stdout).checks.find((x: { id: string }) => x.id === 'expiry');
      expect(expiry.status).toBe('fail');
      expect(expiry.message).toContain(`certificate CN=expired signer expired on ${ymd(expired.info.notAfter)}`);
    }
    expect((await otapack(['verify', b, '--trust', expired.cert])).stderr).toMatch(/FAIL {2}expiry {5}certificate CN=expired signer expired on/);
  });

  test('a not-yet-valid signer (build host clock ahead of the fleet): verify FAILs naming the date, the client refuses', async () => {
    const b = await signedWith(future, 'future.swu');
    expect((await swupdate(b, { check: true, cert: future.cert, select: 'stable,copy2' })).ok).toBe(false);
    const v = await otapack(['verify', b, '--trust', future.cert]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(new RegExp(`FAIL {2}expiry {5}certificate CN=future signer is not valid before ${ymd(future.info.notBefore)}`));
  });

  test('an expired CA above a valid leaf: verify FAILs, the client refuses', async () => {
    const b = await signedWith(leafOfOldCa, 'old-ca.swu', [oldCa.info]);
    expect((await swupdate(b, { check: true, cert: oldCa.cert, select: 'stable,copy2' })).ok).toBe(false);
    const v = await otapack(['verify', b, '--trust', oldCa.cert, '--json']);
    expect(v.code).toBe(1);
    const j = JSON.parse(v.stdout);
    expect(j.checks.find((x: { id: string }) => x.id === 'expiry')).toMatchObject({ status: 'fail' });
    expect(j.checks.find((x: { id: string }) => x.id === 'expiry').message).toContain('CN=old CA expired on');
  });

  test('expiring within the window: the client accepts, verify passes with a WARN; outside the window it is a PASS', async () => {
    const b = await signedWith(soon, 'soon-lib.swu');
    expect((await swupdateOk(b, { check: true, cert: soon.cert, select: 'stable,copy2' })).ok).toBe(true);
    const v = await otapack(['verify', b, '--trust', soon.cert]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/WARN {2}expiry {5}certificate CN=soon signer expires in (29|30) days/);
    expect(v.stderr).toMatch(/verified \(1 warning\)/);
    const narrow = await otapack(['verify', b, '--trust', soon.cert, '--expiry-warning', '7']);
    expect(narrow.code).toBe(0);
    expect(narrow.stderr).toMatch(/PASS {2}expiry {5}1 certificate valid; the first to expire is CN=soon signer/);
  });
});

describe('keygen lifetimes', () => {
  test('the default lifetime is 20 years and says so; a short one warns that it strands devices', async () => {
    const d = await otapack(['keygen', '--out', join(dir, 'k1'), '--json']);
    expect(d.code, d.stderr).toBe(0);
    const j = JSON.parse(d.stdout);
    expect(j.days).toBe(7300);
    expect(new Date(j.notAfter).getTime() - Date.now()).toBeGreaterThan(7290 * DAY);
    expect(d.stderr).toMatch(/7300 days\),\nso the default lifetime outlasts a typical fleet/);
    expect(d.stderr).not.toMatch(/warning/);
    const s = await otapack(['keygen', '--out', join(dir, 'k2'), '--days', '365']);
    expect(s.code).toBe(0);
    expect(s.stderr).toMatch(/warning: --days 365: the certificate expires on \d{4}-\d\d-\d\d; a device still in the field then refuses every update signed with it/);
  });
});
