// Bundles built by `otapack bundle` are judged by Debian's real SWUpdate client (check mode and a
// real install into a file target), and every tampered variant is refused by BOTH the client and
// `otapack verify`.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, truncateSync, copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp } from './helpers/run.js';
import { swupdate, swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, makeTree, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { createHash } from 'node:crypto';

let dir: string;
let rsa: KeyDir;
let ca: KeyDir;
let ec: KeyDir;
let other: KeyDir;
let payload: string;
let slotA: string;
let slotB: string;

beforeAll(async () => {
  dir = tmp();
  [rsa, ca, ec, other] = await Promise.all([
    keygen(join(dir, 'rsa')),
    keygen(join(dir, 'ca'), ['--ca']),
    keygen(join(dir, 'ec'), ['--type', 'ec256']),
    keygen(join(dir, 'other'), ['--type', 'rsa2048']),
  ]);
  // with 2 MiB of incompressible bytes, so whole 1 MiB gzip blocks go out as stored deflate blocks
  const tree = makeTree(join(dir, 'rootfs.tree'));
  writeFileSync(join(tree, 'usr/lib/random.bin'), Buffer.concat(Array.from({ length: 65536 }, (_, i) => createHash('sha256').update(`otapack ${i}`).digest())));
  payload = await makeExt4(join(dir, 'rootfs.ext4'), 8, tree);
  slotA = join(dir, 'slotA.img');
  slotB = join(dir, 'slotB.img');
});

const freshSlots = (): void => {
  for (const s of [slotA, slotB]) {
    writeFileSync(s, '');
    truncateSync(s, 8 << 20);
  }
};

interface Variant { name: string; compress: string; encrypt?: boolean; keys?: () => KeyDir; trust?: () => string; flags?: string[]; purpose?: 'codeSigning' }
const variants: Variant[] = [
  { name: 'signed, uncompressed', compress: 'none' },
  { name: 'signed + zstd', compress: 'zstd' },
  { name: 'signed + zlib (gzip framing)', compress: 'zlib' },
  { name: 'signed + encrypted', compress: 'none', encrypt: true },
  { name: 'signed + zstd + encrypted', compress: 'zstd', encrypt: true },
  { name: 'signed + zlib + encrypted', compress: 'zlib', encrypt: true },
  { name: 'CA-chain signed (device trusts only ca.crt)', compress: 'zstd', keys: () => ca, trust: () => ca.ca! },
  { name: 'RSA-PSS', compress: 'zstd', flags: ['--pss'] },
  { name: 'ECDSA P-256', compress: 'zstd', encrypt: true, keys: () => ec },
  { name: 'JSON sw-description', compress: 'zstd', flags: ['--manifest-format', 'json'] },
  { name: 'newc (070701) cpio', compress: 'zstd', flags: ['--cpio-format', 'newc'] },
  { name: 'codeSigning purpose', compress: 'zstd', purpose: 'codeSigning' },
];

describe('the real client accepts every variant (swupdate -c) and so does otapack verify', () => {
  test.each(variants)('$name', async (v) => {
    const k = v.keys?.() ?? rsa;
    const spec = writeSpec(dir, `spec-${v.name.replace(/\W+/g, '_')}.yaml`, abSpec({ slotA, slotB, file: payload, compress: v.compress, encrypt: v.encrypt }));
    const out = join(dir, `${v.name.replace(/\W+/g, '_')}.swu`);
    const b = await otapack(['bundle', spec, '-o', out, '--key', k.key, '--cert', k.cert, '--aes-key', k.aes, ...(v.flags ?? [])]);
    expect(b.code, b.stderr).toBe(0);
    const trust = v.trust?.() ?? k.cert;
    const client = await swupdateOk(out, { check: true, cert: trust, aesKey: v.encrypt ? k.aes : undefined, select: 'stable,copy2', purpose: v.purpose });
    expect(client.ok, client.output).toBe(true);
    const ver = await otapack(['verify', out, '--trust', trust, '--aes-key', k.aes, ...(v.purpose ? ['--cert-purpose', v.purpose] : [])]);
    expect(ver.code, ver.stderr).toBe(0);
    if (v.encrypt || v.compress !== 'none') expect(ver.stderr).toMatch(/PASS\s+decode/);
    // GNU cpio reads the archive too (and checks every crc sum)
    const list = await execa('cpio', ['-it', ...(v.flags?.includes('newc') ? [] : ['--only-verify-crc'])], { input: readFileSync(out), reject: false, all: true });
    expect(list.exitCode, String(list.all)).toBe(0);
  });
});

describe('a real install writes exactly the image into the selected slot', () => {
  for (const compress of ['zstd', 'zlib', 'none']) {
    test(`install ${compress} + encrypted with -e stable,copy2, then copy1`, async () => {
      const spec = writeSpec(dir, `inst-${compress}.yaml`, abSpec({ slotA, slotB, file: payload, compress, encrypt: true }));
      const out = join(dir, `inst-${compress}.swu`);
      expect((await otapack(['bundle', spec, '-o', out, '--key', rsa.key, '--cert', rsa.cert, '--aes-key', rsa.aes])).code).toBe(0);
      freshSlots();
      const r = await swupdateOk(out, { cert: rsa.cert, aesKey: rsa.aes, select: 'stable,copy2' });
      expect(r.ok, r.output).toBe(true);
      const src = readFileSync(payload);
      expect(readFileSync(slotB).subarray(0, src.length).equals(src)).toBe(true);
      expect(readFileSync(slotA).every((x) => x === 0)).toBe(true); // the other slot is untouched
      freshSlots();
      const r1 = await swupdateOk(out, { cert: rsa.cert, aesKey: rsa.aes, select: 'stable,copy1' });
      expect(r1.ok, r1.output).toBe(true);
      expect(readFileSync(slotA).subarray(0, src.length).equals(src)).toBe(true);
      expect(readFileSync(slotB).every((x) => x === 0)).toBe(true);
    });
  }
});

describe('tampered bundles are refused by both the client and otapack verify', () => {
  let good: string;
  let manifestLen: number;
  beforeAll(async () => {
    const spec = writeSpec(dir, 'tamper.yaml', abSpec({ slotA, slotB, file: payload, compress: 'zstd', encrypt: true }));
    good = join(dir, 'tamper-good.swu');
    const b = await otapack(['bundle', spec, '-o', good, '--key', rsa.key, '--cert', rsa.cert, '--aes-key', rsa.aes]);
    expect(b.code, b.stderr).toBe(0);
    manifestLen = parseInt(readFileSync(good).subarray(54, 62).toString(), 16);
  });
  const variant = (name: string, mutate: (b: Buffer) => Buffer): string => {
    const p = join(dir, `tampered-${name}.swu`);
    writeFileSync(p, mutate(Buffer.from(readFileSync(good))));
    return p;
  };
  const both = async (p: string, client: RegExp, check: RegExp, o: { cert?: string; aes?: string } = {}): Promise<void> => {
    const c = await swupdate(p, { check: true, cert: o.cert ?? rsa.cert, aesKey: o.aes ?? rsa.aes, select: 'stable,copy2' });
    expect(c.ok, c.output).toBe(false);
    expect(c.code).not.toBe(0);
    expect(c.output).toMatch(client);
    const v = await otapack(['verify', p, '--trust', o.cert ?? rsa.cert, '--aes-key', o.aes ?? rsa.aes]);
    expect(v.code, v.stderr).toBe(1);
    expect(v.stderr).toMatch(check);
  };
  const payloadOffset = (b: Buffer): number => {
    const i = b.indexOf('rootfs.ext4.zst.enc\0');
    return i + 200; // inside the payload data
  };

  test('a payload byte flipped', async () => {
    const p = variant('payload', (b) => { b[payloadOffset(b)] ^= 0x01; return b; });
    await both(p, /HASH mismatch|Checksum WRONG/, /FAIL\s+hashes/);
  });
  test('sw-description edited (cpio checksum fixed up, so only the signature can catch it)', async () => {
    const p = variant('manifest', (b) => {
      const at = b.indexOf('version = "1.0.0"');
      b[at + 11] = '9'.charCodeAt(0);
      let sum = 0;
      for (const x of b.subarray(128, 128 + manifestLen)) sum += x;
      b.write(sum.toString(16).toUpperCase().padStart(8, '0'), 102, 'latin1');
      return b;
    });
    await both(p, /Signature verification failed/, /FAIL\s+signature/);
  });
  test('a trust anchor that did not sign it', async () => {
    await both(good, /Authentication of all signatures failed/, /FAIL\s+trust/, { cert: other.cert });
  });
  test('the wrong AES key', async () => {
    await both(good, /Decryption error|decrypt|inflate failed|ZSTD_decompressStream|Installation failed/i, /FAIL\s+decode/, { aes: other.aes });
  });
  test('a truncated bundle', async () => {
    const p = variant('truncated', (b) => b.subarray(0, Math.floor(b.length * 0.6)));
    await both(p, /HASH mismatch|CPIO|magic not found/, /FAIL\s+format/);
  });
  test('entry order swapped (signature first)', async () => {
    const x = join(dir, 'extract');
    await execa('mkdir', ['-p', x]);
    await execa('cpio', ['-id', '--quiet'], { input: readFileSync(good), cwd: x });
    const p = join(dir, 'tampered-order.swu');
    const r = await execa('cpio', ['-o', '-H', 'crc', '--quiet'], { cwd: x, input: 'sw-description.sig\nsw-description\nrootfs.ext4.zst.enc\n', encoding: 'buffer' });
    writeFileSync(p, r.stdout);
    await both(p, /Image invalid or corrupted|SWUpdate \*failed\*/, /FAIL\s+order/);
  });
});

describe('otapack verify accepts bundles made by other tools', () => {
  test("Debian's swugenerator (zlib + AES + CMS)", async () => {
    const art = join(dir, 'swugen');
    await execa('mkdir', ['-p', art]);
    copyFileSync(payload, join(art, 'rootfs.ext4'));
    const [k, iv] = readFileSync(rsa.aes, 'utf8').trim().split(/\s+/);
    writeFileSync(join(dir, 'aes.swugen'), `key=${k}\niv=${iv}\n`);
    writeFileSync(join(dir, 'sw-description.in'), `software = { version = "1.0.0"; hardware-compatibility = [ "1.0" ];
  images: ( { filename = "rootfs.ext4"; type = "raw"; device = "${slotB}"; compressed = "zlib"; encrypted = true; } ); };\n`);
    const out = join(dir, 'swugen.swu');
    const g = await execa('swugenerator', ['-s', join(dir, 'sw-description.in'), '-o', out, '-a', art, '-k', `CMS,${rsa.key},${rsa.cert}`, '-K', join(dir, 'aes.swugen'), 'create'], { reject: false, all: true });
    expect(g.exitCode, String(g.all)).toBe(0);
    expect(statSync(out).size).toBeGreaterThan(0);
    const v = await otapack(['verify', out, '--trust', rsa.cert, '--aes-key', rsa.aes]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/PASS\s+decode\s+decrypted and decompressed: rootfs\.ext4\.zlib\.enc -> 8388608 bytes/);
  });
  test('a bundle put together by hand with openssl cms and GNU cpio (newc)', async () => {
    const h = join(dir, 'hand');
    await execa('mkdir', ['-p', h]);
    copyFileSync(payload, join(h, 'rootfs.ext4'));
    const sha = (await execa('sha256sum', [payload])).stdout.split(' ')[0];
    writeFileSync(join(h, 'sw-description'), `software =\n{\n  version = "2.0";\n  hardware-compatibility = [ "#RE:^1\\\\.[0-9]+$" ];\n  images: ( { filename = "rootfs.ext4"; type = "raw"; device = "${slotB}"; sha256 = "${sha}"; } );\n}\n`);
    await execa('openssl', ['cms', '-sign', '-in', join(h, 'sw-description'), '-out', join(h, 'sw-description.sig'), '-signer', rsa.cert, '-inkey', rsa.key, '-outform', 'DER', '-nosmimecap', '-binary']);
    const r = await execa('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: h, input: 'sw-description\nsw-description.sig\nrootfs.ext4\n', encoding: 'buffer' });
    const out = join(dir, 'hand.swu');
    writeFileSync(out, r.stdout);
    const v = await otapack(['verify', out, '--trust', rsa.cert, '--json']);
    expect(v.code, v.stderr).toBe(0);
    const report = JSON.parse(v.stdout);
    expect(report.ok).toBe(true);
    expect(report.manifest.hardwareCompatibility).toEqual(['#RE:^1\\.[0-9]+$']);
    const c = await swupdateOk(out, { check: true, cert: rsa.cert, hw: 'otapack:1.7' });
    expect(c.ok, c.output).toBe(true);
  });
});
