// The bad-input corpus: broken images, bad configuration, unusable certificates and hostile
// bundles. Every case gets one clear line naming the problem, a documented exit code, no stack
// trace, leaves no file under a final output name and no temp file behind, and never changes
// its input. (Bundle-spec and key-file cases live in bundle-bad-input.test.ts.)
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, readdirSync, existsSync, statSync, mkdirSync } from 'node:fs';
import { createHash, createPrivateKey, sign as signWith } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, expectCleanFailure, type CliResult } from './helpers/run.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';
import { badImages, buildBuildrootImage, buildRockpro64GptImage, buildRpiImage } from './helpers/images.js';
import { encodeHeader, encodeTrailer, byteSum, pad4 } from '../src/clients/swupdate/cpio.js';
import { generateKey, makeCertificate, privateKeyPem, certPem } from '../src/crypto/keygen.js';
import { swupdate, swupdateOk, type ClientRun } from './helpers/swupdate.js';
import { berWithin, parseDer, encodeDer, type Tlv } from './helpers/der.js';

let dir: string;
let keys: KeyDir;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const DAY = 86_400_000;

/** Nothing under a final output name, no temp file or work folder left behind. */
function expectNothingLeft(out: string): void {
  if (!existsSync(out)) return;
  const st = statSync(out);
  const names = st.isDirectory() ? readdirSync(out) : [];
  expect(names.filter((n) => /\.(img|bmap|swu|json)$|\.tmp$|^\.otapack-/.test(n)), `left in ${out}`).toEqual([]);
}

beforeAll(async () => {
  dir = tmp('otapack-bad-');
  keys = await keygen(join(dir, 'keys'), ['--type', 'rsa2048']);
});

describe('convert refuses broken images (21 cases) without touching them', async () => {
  // expected exit code and reason per bad image; the fixture's own hint where it matches otapack's words
  const expected: Record<string, [number, RegExp]> = {
    'zero-length': [4, /empty file/],
    tiny: [4, /300 bytes is less than one 512-byte sector/],
    'random-junk': [4, /no partition table/],
    'bare-ext4': [4, /no partition table/],
    truncated: [4, /not a whole number of 512-byte sectors \(truncated or padded image\?\)/],
    'gpt-smaller-than-table': [4, /extends past the end of the image|backup GPT/],
    'mbr-out-of-range': [4, /extends past the end of the image/],
    'gpt-out-of-range': [4, /partition 2 \(sectors .*\) lies outside the GPT usable range/],
    'mbr-overlap': [4, /overlaps partition 1/],
    'gpt-overlap': [4, /overlaps partition 1/],
    'mbr-over-table': [4, /overlaps the partition table/],
    'gpt-over-table': [4, /partition 1 \(sectors 10.*\) lies outside the GPT usable range 34/],
    'gpt-bad-header-crc': [4, /primary GPT is corrupt \(header CRC mismatch\), while the backup GPT is intact; repair the image first/],
    'gpt-bad-entries-crc': [4, /primary GPT is corrupt \(partition entries CRC mismatch\), while the backup/],
    'gpt-backup-only': [4, /primary GPT is corrupt \(no "EFI PART" signature\), while the backup GPT is intact/],
    'protective-mbr-no-gpt': [4, /protective MBR \(type 0xEE\) without a valid GPT/],
    'corrupt-ext4-superblock': [4, /rootfs in partition 2: the ext4 filesystem has errors .*Superblock checksum/],
    'no-linux-rootfs': [4, /no Linux root filesystem found/],
    'mbr-extended': [4, /follow the rootfs/],
    'mbr-full': [4, /follow the rootfs/],
    'truncated-xz': [4, /corrupt or truncated xz data \(Unexpected end of input\)/],
  };
  const bad = await badImages(join(tmp('otapack-badimgs-'), 'bad'));
  test('the corpus is complete', () => expect(bad.map((b) => b.name).sort()).toEqual(Object.keys(expected).sort()));
  test.each(bad.map((b) => [b.name, b] as const))('%s', async (_n, b) => {
    const before = sha(b.path);
    const out = join(dir, `out-${b.name}`);
    const r = await otapack(['convert', b.path, '-o', out, '--key', keys.key, '--cert', keys.cert]);
    const [code, re] = expected[b.name]!;
    expectCleanFailure(r, code, re);
    expect(r.stderr).toContain(b.path.split('/').pop()!.replace(/\.xz$/, '')); // names the file
    expectNothingLeft(out);
    expect(sha(b.path), 'input changed').toBe(before);
  });
});

describe('convert refuses bad configuration, naming the key', () => {
  let image: string;
  beforeAll(async () => {
    image = (await buildBuildrootImage(join(dir, 'good'))).path;
  });
  const cases: [string, string, number, RegExp][] = [
    ['unknown key', 'storage:\n  slot-sise: 1G\n', 3, /otapack\.yaml:2:3: storage\.slot-sise: unknown key \(did you mean "slot-size"\?\)/],
    ['wrong type', 'bootlimit: three\n', 3, /otapack\.yaml:1:\d+: bootlimit: expected an integer/],
    ['out of range', 'bootlimit: 42\n', 3, /bootlimit: must be at most 9/],
    ['a partition given as the device', 'storage:\n  device: /dev/mmcblk0p1\n', 3, /storage\.device: "\/dev\/mmcblk0p1" looks like a partition/],
    ['a size that is not a size', 'storage:\n  data-size: lots\n', 3, /storage\.data-size: "lots" is not a size/],
    ['a rootfs larger than the slot', 'storage:\n  slot-size: 9M\n', 3, /storage\.slot-size 9 MiB is too small for the rootfs, which uses/],
    ['a disk too small', 'storage:\n  total-size: 40M\n', 3, /storage\.total-size 40 MiB is too small/],
    ['data-size and total-size', 'storage:\n  data-size: 64M\n  total-size: 2G\n', 3, /give data-size or total-size, not both/],
    ['the wrong boot loader', 'bootloader: grub\n', 3, /bootloader: grub was asked for, but this image boots with U-Boot/],
    ['a missing rootfs file', 'rootfs:\n  files:\n    - { source: nothere.txt, target: /etc/x }\n', 3, /rootfs\.files\[0\]\.source: nothere\.txt: no such file/],
    ['a relative target', 'rootfs:\n  files:\n    - { source: otapack.yaml, target: etc/x }\n', 3, /rootfs\.files\[0\]\.target: "etc\/x" is not valid \(an absolute path/],
    ['hawkbit without url', 'hawkbit:\n  tenant: DEFAULT\n', 3, /hawkbit: missing required key "url"/],
    ['install-aes-key without encryption', 'update:\n  install-aes-key: true\n', 3, /install-aes-key: only makes sense with encrypt: true/],
    ['an uncompressed slot over 4 GiB', 'storage:\n  slot-size: 5G\nupdate:\n  compress: none\n', 6, /exceeds the cpio limit of 4 GiB per bundle entry; set update\.compress: zstd/],
    ['malformed YAML', 'storage:\n  device: /dev/sda\n device2: x\n', 3, /otapack\.yaml:3:\d+: invalid YAML/],
    ['encryption without a key', 'update:\n  encrypt: true\n', 5, /update\.encrypt is set but no AES key was given/],
  ];
  test.each(cases)('%s', async (name, yaml, code, re) => {
    const cdir = join(dir, `cfg-${name.replace(/\W+/g, '_')}`);
    mkdirSync(cdir, { recursive: true });
    writeFileSync(join(cdir, 'otapack.yaml'), yaml);
    const before = sha(image);
    const out = join(cdir, 'out');
    const r = await otapack(['convert', image, '-c', join(cdir, 'otapack.yaml'), '-o', out, '--key', keys.key, '--cert', keys.cert], { env: { OTAPACK_AES_KEY: '' } });
    expectCleanFailure(r, code, re);
    expectNothingLeft(out);
    expect(sha(image)).toBe(before);
  });
  test('too many partitions for MBR', async () => {
    const rk = (await buildRockpro64GptImage(join(dir, 'rk'))).path;
    const c = join(dir, 'mbr.yaml');
    writeFileSync(c, 'storage:\n  table: mbr\n');
    expectCleanFailure(await otapack(['convert', rk, '-c', c, '-o', join(dir, 'out-mbr'), '--key', keys.key, '--cert', keys.cert]), 6, /6 partitions are needed .* but an MBR holds 4 primary partitions; set storage\.table: gpt/);
    expectNothingLeft(join(dir, 'out-mbr'));
  });
  test('a Raspberry Pi firmware image without U-Boot', async () => {
    const rpi = (await buildRpiImage(join(dir, 'rpi'))).path;
    expectCleanFailure(await otapack(['convert', rpi, '-o', join(dir, 'out-rpi'), '--key', keys.key, '--cert', keys.cert]), 4, /Raspberry Pi firmware .* A\/B switching needs U-Boot/);
    expectNothingLeft(join(dir, 'out-rpi'));
  });
  test('a key that is not a key, to convert', async () => {
    const notkey = join(dir, 'notakey.pem');
    writeFileSync(notkey, '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n');
    expectCleanFailure(await otapack(['convert', image, '-o', join(dir, 'out-k'), '--key', notkey, '--cert', keys.cert]), 5, /notakey\.pem: not a private key \(found PUBLIC KEY\)/);
    expectNothingLeft(join(dir, 'out-k'));
  });
});

describe('certificates that devices would refuse are refused', () => {
  const certWith = (name: string, o: { notBefore: Date; days: number; eku?: boolean }): { key: string; cert: string } => {
    const key = generateKey('ec256');
    const cert = makeCertificate({ subjectKey: key, cn: name, days: o.days, notBefore: o.notBefore, ca: false });
    const k = join(dir, `${name}.key`);
    const c = join(dir, `${name}.crt`);
    writeFileSync(k, privateKeyPem(key), { mode: 0o600 });
    writeFileSync(c, certPem(cert.der));
    return { key: k, cert: c };
  };
  let spec: string;
  beforeAll(async () => {
    const payload = await makeExt4(join(dir, 'p.ext4'), 4);
    spec = writeSpec(dir, 'p.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: payload }));
  });
  test('an expired signing certificate', async () => {
    const c = certWith('expired', { notBefore: new Date(Date.now() - 400 * DAY), days: 30 });
    const out = join(dir, 'x.swu');
    expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', c.key, '--cert', c.cert]), 5, /signing certificate CN=expired expired on \d{4}-\d\d-\d\d \(valid \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d, today is \d{4}-\d\d-\d\d\); devices refuse/);
    expect(existsSync(out)).toBe(false);
  });
  test('a certificate that is not valid yet', async () => {
    const c = certWith('future', { notBefore: new Date(Date.now() + 30 * DAY), days: 365 });
    const out = join(dir, 'y.swu');
    expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', c.key, '--cert', c.cert]), 5, /is not valid before \d{4}-\d\d-\d\d/);
    expect(existsSync(out)).toBe(false);
  });
  test('a certificate close to expiry is signed with, with a warning naming the date', async () => {
    const c = certWith('soon', { notBefore: new Date(Date.now() - DAY), days: 20 });
    const r = await otapack(['bundle', spec, '-o', join(dir, 'soon.swu'), '--key', c.key, '--cert', c.cert]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: signing certificate CN=soon expires in 1[89] days \(\d{4}-\d\d-\d\d\)/);
    // and verify, judged at a later device time, fails trust on expiry
    const v = await otapack(['verify', join(dir, 'soon.swu'), '--trust', c.cert, '--time', new Date(Date.now() + 60 * DAY).toISOString()]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/FAIL\s+trust\s+.*CN=soon: expired on \d{4}-\d\d-\d\d/);
  });
  test('a certificate for the wrong purpose', async () => {
    const both = join(dir, 'both.swu');
    expect((await otapack(['bundle', spec, '-o', both, '--key', keys.key, '--cert', keys.cert])).code).toBe(0);
    const r = await otapack(['verify', both, '--trust', keys.cert, '--cert-purpose', 'codeSigning']);
    expect(r.code, r.stderr).toBe(0); // keygen certificates carry both purposes
    // a TLS server certificate (EKU serverAuth only), made with openssl
    const key = generateKey('ec256');
    const k = join(dir, 'tls.key');
    const c = join(dir, 'tls.crt');
    writeFileSync(k, privateKeyPem(key), { mode: 0o600 });
    await execa('openssl', ['req', '-x509', '-key', k, '-out', c, '-days', '30', '-subj', '/CN=tls-only', '-addext', 'extendedKeyUsage=serverAuth', '-addext', 'keyUsage=critical,digitalSignature']);
    const out = join(dir, 'tls.swu');
    expect((await otapack(['bundle', spec, '-o', out, '--key', k, '--cert', c])).code).toBe(0);
    const v = await otapack(['verify', out, '--trust', c]);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/FAIL\s+trust\s+.*CN=tls-only: unsuitable certificate purpose .*its extended key usage serverAuth is without emailProtection/);
  });
});

describe('hostile or broken bundles: verify names the problem, sign and manifest refuse cleanly', () => {
  let good: Buffer;
  let manifest: Buffer;
  let sig: Buffer;
  let payload: Buffer;
  beforeAll(async () => {
    const p = await makeExt4(join(dir, 'b.ext4'), 4);
    const spec = writeSpec(dir, 'b.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: p }));
    const out = join(dir, 'good.swu');
    expect((await otapack(['bundle', spec, '-o', out, '--key', keys.key, '--cert', keys.cert])).code).toBe(0);
    good = readFileSync(out);
    const x = join(dir, 'good-x');
    mkdirSync(x, { recursive: true });
    await execa('cpio', ['-id', '--quiet'], { input: good, cwd: x });
    manifest = readFileSync(join(x, 'sw-description'));
    sig = readFileSync(join(x, 'sw-description.sig'));
    payload = readFileSync(join(x, 'b.ext4.zst'));
  });
  /** A crc-format archive of the given entries, in order, with correct sums. */
  const cpio = (entries: [string, Buffer][], trailer = true): Buffer => {
    const parts: Buffer[] = [];
    let pos = 0;
    entries.forEach(([name, data], i) => {
      const h = encodeHeader(name, { size: data.length, check: byteSum(data), ino: i + 1 }, 'crc');
      parts.push(h, data, Buffer.alloc(pad4(data.length)));
      pos += h.length + data.length + pad4(data.length);
    });
    if (trailer) parts.push(encodeTrailer(pos, 'crc'));
    return Buffer.concat(parts);
  };
  const run = async (name: string, bytes: Buffer): Promise<{ verify: CliResult; sign: CliResult; manifestOut: CliResult; out: string }> => {
    const p = join(dir, `${name}.swu`);
    writeFileSync(p, bytes);
    const out = join(dir, `${name}-signed.swu`);
    return {
      verify: await otapack(['verify', p, '--trust', keys.cert]),
      sign: await otapack(['sign', p, '-o', out, '--key', keys.key, '--cert', keys.cert]),
      manifestOut: await otapack(['manifest', p]),
      out,
    };
  };
  const refused = (r: { verify: CliResult; sign: CliResult; out: string }, check: RegExp, signRe: RegExp): void => {
    expect(r.verify.code, r.verify.stderr).toBe(1);
    expect(r.verify.stderr).toMatch(check);
    expect(r.verify.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expectCleanFailure(r.sign, 4, signRe);
    expect(existsSync(r.out)).toBe(false);
  };

  test('odc (070707) cpio', async () => {
    const x = join(dir, 'odc');
    mkdirSync(x, { recursive: true });
    writeFileSync(join(x, 'sw-description'), manifest);
    const o = await execa('cpio', ['-o', '-H', 'odc', '--quiet'], { cwd: x, input: 'sw-description\n', encoding: 'buffer' });
    const r = await run('odc', Buffer.from(o.stdout));
    refused(r, /FAIL\s+format\s+.*odc \(070707\) cpio is not accepted by SWUpdate/, /odc \(070707\) cpio is not accepted/);
  });
  test('an entry named ../escape', async () => {
    refused(await run('dotdot', cpio([['sw-description', manifest], ['sw-description.sig', sig], ['b.ext4.zst', payload], ['../escape', Buffer.from('x')]])), /FAIL\s+names\s+"\.\.\/escape" is not a bare file name/, /"\.\.\/escape" is not a bare file name/);
  });
  test('an absolute entry name', async () => {
    refused(await run('abs', cpio([['sw-description', manifest], ['sw-description.sig', sig], ['b.ext4.zst', payload], ['/etc/passwd', Buffer.from('x')]])), /FAIL\s+names\s+"\/etc\/passwd" is not a bare file name/, /"\/etc\/passwd" is not a bare file name/);
  });
  test('a header claiming a 4 GiB entry in a 1 KiB file', async () => {
    const b = Buffer.concat([encodeHeader('sw-description', { size: 0xfffffff0, check: 0, ino: 1 }, 'crc'), Buffer.alloc(1024)]);
    const t0 = Date.now();
    refused(await run('huge-claim', b), /FAIL\s+format\s+.*claims 4294967280 bytes .* only \d+ left/, /claims 4294967280 bytes/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
  test('duplicate entries', async () => {
    refused(await run('dup', cpio([['sw-description', manifest], ['sw-description.sig', sig], ['b.ext4.zst', payload], ['b.ext4.zst', payload]])), /FAIL\s+names\s+"b\.ext4\.zst" appears twice/, /"b\.ext4\.zst" appears twice/);
  });
  test('a missing trailer', async () => {
    refused(await run('notrailer', cpio([['sw-description', manifest], ['sw-description.sig', sig], ['b.ext4.zst', payload]], false)), /FAIL\s+format\s+.*without a TRAILER!!! entry/, /without a TRAILER!!! entry/);
  });
  test('sw-description that is neither libconfig nor JSON', async () => {
    refused(await run('garbage-manifest', cpio([['sw-description', Buffer.from('software = { version = "1.0"; images: ( { filename = ')], ['b.ext4.zst', payload]])), /FAIL\s+manifest\s+sw-description: not valid libconfig/, /sw-description is not valid libconfig or JSON/);
  });
  test('deep nesting', async () => {
    // the client's libconfig takes lists about 5000 deep (its parser stack holds 10000 states)
    const deep = Buffer.from(`software = { a = ${'('.repeat(5000)}${')'.repeat(5000)}; };`);
    refused(await run('deep', cpio([['sw-description', deep], ['b.ext4.zst', payload]])), /FAIL\s+manifest\s+.*nesting too deep for libconfig/, /nesting too deep for libconfig/);
    const deepJson = Buffer.from(`{"software":${'{"a":'.repeat(100000)}1${'}'.repeat(100000)}}`);
    const r = await run('deep-json', cpio([['sw-description', deepJson], ['b.ext4.zst', payload]]));
    expect(r.verify.code).toBe(1);
    expect(r.verify.stderr).toMatch(/FAIL\s+manifest\s+sw-description: .*(nesting|JSON)/);
    expectCleanFailure(r.sign, 4, /sw-description is not valid/);
  });
  test('huge strings', async () => {
    // the client's libconfig has no string limit (the 4 MiB manifest cap bounds memory): a 2 MiB
    // version parses, and the manifest is refused for what it lacks
    const big = Buffer.from(`software = { version = "${'x'.repeat(2 << 20)}"; };`);
    const r = await run('bigstring', cpio([['sw-description', big], ['b.ext4.zst', payload]]));
    expect(r.verify.code, r.verify.stderr).toBe(1);
    expect(r.verify.stderr).toMatch(/FAIL\s+manifest\s+no hardware-compatibility/);
    const tooBig = Buffer.alloc((4 << 20) + 1, 0x20);
    refused(await run('toobig', cpio([['sw-description', tooBig]])), /FAIL\s+manifest\s+.*more than the 4194304 allowed/, /more than the 4194304 allowed/);
  });
  test('a referenced payload that is missing', async () => {
    refused(await run('missing-payload', cpio([['sw-description', manifest], ['sw-description.sig', sig]])), /FAIL\s+references\s+.*"b\.ext4\.zst", which is not in the bundle/, /references "b\.ext4\.zst", which is not in the bundle/);
  });
});

describe('keys and certificates otapack cannot use are named (exit 5); odd ones it can use agree with the client; never exit 70', () => {
  let k: string;
  let spec: string;
  let signed: string;
  let image: string;
  const openssl = async (args: string[]): Promise<void> => void (await execa('openssl', args));
  /** A key (openssl genpkey options) and a self-signed certificate for it. */
  const pair = async (name: string, genpkey: string[]): Promise<{ key: string; cert: string }> => {
    const key = join(k, `${name}.key`);
    const cert = join(k, `${name}.crt`);
    if (genpkey[1] === 'dsa') {
      // DSA keys come from parameters made first (genpkey cannot do both in one step)
      await openssl(['genpkey', '-genparam', ...genpkey, '-out', `${key}.param`]);
      await openssl(['genpkey', '-paramfile', `${key}.param`, '-out', key]);
    } else await openssl(['genpkey', ...genpkey, '-out', key]);
    await openssl(['req', '-x509', '-key', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`]);
    return { key, cert };
  };
  const derOf = (pem: string): Buffer => Buffer.from(readFileSync(pem, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const pemOf = (der: Buffer): string => certPem(der);
  /** The bundle's three entries, and a way to put them back together with another signature. */
  const entries = (swu: string): [string, Buffer][] => {
    const b = readFileSync(swu);
    const out: [string, Buffer][] = [];
    for (let at = 0; ;) {
      const nameLen = parseInt(b.subarray(at + 94, at + 102).toString(), 16);
      const size = parseInt(b.subarray(at + 54, at + 62).toString(), 16);
      const name = b.subarray(at + 110, at + 110 + nameLen - 1).toString();
      if (name === 'TRAILER!!!') return out;
      const data = at + 110 + nameLen + pad4(110 + nameLen);
      out.push([name, b.subarray(data, data + size)]);
      at = data + size + pad4(size);
    }
  };
  const archive = (list: [string, Buffer][]): Buffer => {
    const parts: Buffer[] = [];
    let pos = 0;
    list.forEach(([name, data], i) => {
      const h = encodeHeader(name, { size: data.length, check: byteSum(data), ino: i + 1 }, 'crc');
      parts.push(h, data, Buffer.alloc(pad4(data.length)));
      pos += h.length + data.length + pad4(data.length);
    });
    parts.push(encodeTrailer(pos, 'crc'));
    return Buffer.concat(parts);
  };
  const withSignature = (name: string, sig: Buffer): string => {
    const p = join(k, `${name}.swu`);
    writeFileSync(p, archive(entries(signed).map(([n, d]) => [n, n === 'sw-description.sig' ? sig : d])));
    return p;
  };
  /** otapack verify and the real client, on the same bundle and anchor: the same verdict. */
  const bothJudge = async (swu: string, trust: string): Promise<{ verify: CliResult; client: ClientRun }> => {
    const verify = await otapack(['verify', swu, '--trust', trust]);
    const client = await (verify.code === 0 ? swupdateOk : swupdate)(swu, { check: true, cert: trust, select: 'stable,copy2' });
    expect(verify.code, verify.stderr).not.toBe(70);
    expect(verify.code === 0, `otapack verify exit ${verify.code}, client ${client.ok ? 'accepts' : 'refuses'}:\n${verify.stderr}\n${client.output.split('\n').filter((l) => /ERROR/.test(l)).join('\n')}`).toBe(client.ok);
    return { verify, client };
  };

  beforeAll(async () => {
    k = join(dir, 'odd-keys');
    mkdirSync(k, { recursive: true });
    const p = await makeExt4(join(k, 'p.ext4'), 4);
    spec = writeSpec(k, 'p.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: p }));
    signed = join(k, 'signed.swu');
    expect((await otapack(['bundle', spec, '-o', signed, '--key', keys.key, '--cert', keys.cert])).code).toBe(0);
    image = (await buildBuildrootImage(join(dir, 'odd-img'))).path;
  });

  test.each([
    ['Ed25519', ['-algorithm', 'ed25519'], /CN=Ed25519: Ed25519 keys cannot sign SWUpdate bundles; otapack signs with RSA .* or EC/],
    ['Ed448', ['-algorithm', 'ed448'], /Ed448 keys cannot sign SWUpdate bundles/],
    ['DSA', ['-algorithm', 'dsa', '-pkeyopt', 'dsa_paramgen_bits:1024'], /DSA keys cannot sign SWUpdate bundles/],
    ['RSA-PSS restricted to SHA-512', ['-algorithm', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_pss_keygen_md:sha512', '-pkeyopt', 'rsa_pss_keygen_mgf1_md:sha512'], /its RSA-PSS key is restricted to digest sha512, MGF1 digest sha512/],
    ['RSA-PSS restricted to 64-byte salts', ['-algorithm', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_pss_keygen_md:sha256', '-pkeyopt', 'rsa_pss_keygen_mgf1_md:sha256', '-pkeyopt', 'rsa_pss_keygen_saltlen:64'], /restricted to salt length of at least 64 bytes; otapack signs RSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt/],
  ] as [string, string[], RegExp][])('%s key: bundle, sign and convert refuse it, naming the key type', async (name, genpkey, re) => {
    const c = await pair(name.replace(/\W+/g, '_'), genpkey);
    const reName = new RegExp(re.source.replace(/^CN=Ed25519/, `CN=${name}`));
    const out = join(k, 'x.swu');
    expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', c.key, '--cert', c.cert]), 5, reName);
    expectCleanFailure(await otapack(['sign', signed, '-o', out, '--key', c.key, '--cert', c.cert]), 5, reName);
    expect(existsSync(out)).toBe(false);
    const conv = join(k, `conv-${name.replace(/\W+/g, '_')}`);
    expectCleanFailure(await otapack(['convert', image, '-o', conv, '--key', c.key, '--cert', c.cert]), 5, reName);
    expectNothingLeft(conv);
  });

  test('an Ed25519 certificate as the trust anchor: verify and the client both refuse the bundle', async () => {
    const ed = await pair('ed-anchor', ['-algorithm', 'ed25519']);
    const { verify } = await bothJudge(signed, ed.cert);
    expect(verify.stderr).toMatch(/FAIL\s+trust/);
  });

  test('BER (not DER) certificates as --cert, in --chain, in --trust: one KEY line each', async () => {
    const der = derOf(keys.cert);
    const ber = join(k, 'ber.crt');
    writeFileSync(ber, pemOf(berWithin(der, der))); // the certificate's own length in long form
    const re = /ber\.crt: BER-encoded, not DER \(re-encode it with openssl x509 -in CERT -out NEW\.pem, or have it reissued\)/;
    const out = join(k, 'ber.swu');
    expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', keys.key, '--cert', ber]), 5, re);
    expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', keys.key, '--cert', keys.cert, '--chain', ber]), 5, re);
    expectCleanFailure(await otapack(['verify', signed, '--trust', ber]), 5, re);
    expectCleanFailure(await otapack(['convert', image, '-o', join(k, 'conv-ber'), '--unsigned', '--trust', ber]), 5, re);
    expect(existsSync(out)).toBe(false);
    // the advice works: openssl writes it back as DER, the same certificate
    await openssl(['x509', '-in', ber, '-out', join(k, 'fixed.pem')]);
    expect(derOf(join(k, 'fixed.pem')).equals(der)).toBe(true);
  });

  test('a BER certificate inside a bundle\'s signature: verify judges as the client does', async () => {
    const sig = entries(signed).find(([n]) => n === 'sw-description.sig')![1];
    const swu = withSignature('ber-in-sig', berWithin(sig, derOf(keys.cert)));
    await bothJudge(swu, keys.cert);
  });

  test('an X.509 v1 certificate and one with a negative serial sign bundles the client accepts, and verify agrees', async () => {
    const ecKey = join(k, 'odd.key');
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecKey]);
    const v1 = join(k, 'v1.crt');
    await openssl(['req', '-new', '-key', ecKey, '-subj', '/CN=v1', '-out', join(k, 'v1.csr')]);
    await openssl(['x509', '-req', '-in', join(k, 'v1.csr'), '-signkey', ecKey, '-days', '30', '-out', v1]);
    expect((await execa('openssl', ['x509', '-in', v1, '-noout', '-text'])).stdout).toMatch(/Version: 1 \(0x0\)/);
    const neg = join(k, 'neg.crt');
    await openssl(['req', '-x509', '-key', ecKey, '-subj', '/CN=negative serial', '-days', '30', '-set_serial', '-12345', '-out', neg]);
    expect((await execa('openssl', ['x509', '-in', neg, '-noout', '-serial'])).stdout).toBe('serial=-3039');
    for (const cert of [v1, neg]) {
      const out = join(k, `${cert.endsWith('v1.crt') ? 'v1' : 'neg'}.swu`);
      const r = await otapack(['bundle', spec, '-o', out, '--key', ecKey, '--cert', cert]);
      expect(r.code, r.stderr).toBe(0);
      const { verify } = await bothJudge(out, cert);
      expect(verify.code).toBe(0);
    }
  });

  test('a certificate whose validity OpenSSL cannot read: refused as --cert; inside a signature, verify and the client refuse', async () => {
    // a real certificate with its notBefore turned into "99AA01000000Z", re-signed with its key
    const ecKey = join(k, 'badtime.key');
    const good = join(k, 'badtime-src.crt');
    await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecKey]);
    await openssl(['req', '-x509', '-key', ecKey, '-subj', '/CN=bad time', '-days', '30', '-out', good]);
    const cert = parseDer(derOf(good));
    const [tbs, alg] = cert.children!;
    tbs!.children![4]!.children![0]!.content = Buffer.from('99AA01000000Z');
    const sig = signWith('sha256', encodeDer(tbs!), { key: createPrivateKey(readFileSync(ecKey)), dsaEncoding: 'der' });
    const bad = join(k, 'badtime.crt');
    writeFileSync(bad, pemOf(encodeDer({ id: 0x30, children: [tbs!, alg!, { id: 0x03, content: Buffer.concat([Buffer.from([0]), sig]) }] })));
    expect((await execa('openssl', ['x509', '-in', bad, '-noout', '-dates'])).stdout).toMatch(/notBefore=Bad time value/);
    expectCleanFailure(await otapack(['bundle', spec, '-o', join(k, 'bt.swu'), '--key', ecKey, '--cert', bad]), 5, /badtime\.crt: its validity dates cannot be read \(notBefore "Bad time value"/);
    // signed elsewhere (openssl cms), embedded as it is: otapack verify exited 70 here before
    const manifest = join(k, 'bt-manifest');
    writeFileSync(manifest, entries(signed)[0]![1]);
    const cms = join(k, 'bt.sig');
    await openssl(['cms', '-sign', '-binary', '-nosmimecap', '-outform', 'DER', '-in', manifest, '-signer', bad, '-inkey', ecKey, '-out', cms]);
    const { verify } = await bothJudge(withSignature('badtime-in-sig', readFileSync(cms)), bad.replace('badtime.crt', 'badtime-src.crt'));
    expect(verify.stderr).toMatch(/FAIL\s+signature\s+.*an embedded certificate cannot be parsed/);
  });

  test('a signature whose signing time is not a time: verify names the signature, the client refuses', async () => {
    const sig = Buffer.from(entries(signed).find(([n]) => n === 'sw-description.sig')![1]);
    const at = sig.indexOf(Buffer.from('170d', 'hex'), sig.indexOf(Buffer.from('2a864886f70d010905', 'hex'))); // signingTime's UTCTime
    sig.write('9912AAxx9999', at + 2, 'latin1');
    const { verify } = await bothJudge(withSignature('bad-signing-time', sig), keys.cert);
    expect(verify.stderr).toMatch(/FAIL\s+signature/);
  });

  test('certificates Node reads only in part: an empty subject or issuer, a key algorithm OpenSSL does not know', async () => {
    const der = derOf(keys.cert);
    const variant = (name: string, edit: (cert: Tlv) => void): string => {
      const t = parseDer(der);
      edit(t);
      const p = join(k, `${name}.crt`);
      writeFileSync(p, pemOf(encodeDer(t)));
      return p;
    };
    // tbsCertificate: [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, [3] extensions
    const emptySubject = variant('empty-subject', (c) => { c.children![0]!.children![5] = { id: 0x30, children: [] }; });
    const emptyIssuer = variant('empty-issuer', (c) => { c.children![0]!.children![3] = { id: 0x30, children: [] }; });
    for (const anchor of [emptySubject, emptyIssuer]) {
      const { verify } = await bothJudge(signed, anchor); // otapack verify exited 70 on these before
      expect(verify.stderr).toMatch(/FAIL\s+trust/);
    }
    // the SPKI algorithm OID's last arc changed: rsaEncryption becomes 1.2.840.113549.1.1.9, no key algorithm
    const unknownAlg = variant('unknown-alg', (c) => {
      const spki = c.children![0]!.children![6]!;
      const alg = spki.children![0]!.children![0]!;
      alg.content = Buffer.from(alg.content!.toString('hex').replace(/01$/, '09'), 'hex');
    });
    const re = /unknown-alg\.crt: its public key cannot be read \(an algorithm OpenSSL does not know\)/;
    expectCleanFailure(await otapack(['verify', signed, '--trust', unknownAlg]), 5, re);
    expectCleanFailure(await otapack(['bundle', spec, '-o', join(k, 'ua.swu'), '--key', keys.key, '--cert', unknownAlg]), 5, re);
  });

  test('directories and files over 2 GiB where a key, certificate, spec or bundle goes', async () => {
    const d = join(k, 'a-directory');
    mkdirSync(d, { recursive: true });
    const huge = join(k, 'huge.bin');
    writeFileSync(huge, '');
    await execa('truncate', ['-s', '3G', huge]);
    const out = join(k, 'y.swu');
    for (const f of [d, huge]) {
      const why = f === d ? /is a directory/ : /file is larger than 2 GiB/;
      expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', f, '--cert', keys.cert]), 5, why);
      expectCleanFailure(await otapack(['bundle', spec, '-o', out, '--key', keys.key, '--cert', f]), 5, why);
      expectCleanFailure(await otapack(['verify', signed, '--trust', f]), 5, why);
      expectCleanFailure(await otapack(['sign', signed, '-o', out, '--signature', f]), 5, why);
      expectCleanFailure(await otapack(['bundle', f, '-o', out, '--unsigned']), 3, why);
    }
    expectCleanFailure(await otapack(['verify', d]), 4, /a-directory: not a regular file/);
    expectCleanFailure(await otapack(['convert', d, '-o', join(k, 'conv-dir'), '--unsigned']), 4, /a-directory: is a directory/);
    expect(existsSync(out)).toBe(false);
  });
});
