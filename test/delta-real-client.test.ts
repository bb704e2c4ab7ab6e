// Delta bundles made by `otapack bundle`, judged by the real SWUpdate client run as a daemon and
// fed by swupdate-client (next-formats §0: `swupdate -i` can end a delta install early), with
// regular files as slots and the U-Boot environment in a file (-B uboot, in a private mount
// namespace). Release 2 is rebuilt from scratch by mke2fs -d, as Buildroot does.
//   rdiff (plain, zstd, zstd + AES from the previous release's encrypted .swu): the inactive slot
//     ends byte-identical to release 2, and `rdiff patch` (librsync) agrees with the same delta;
//   a wrong base is refused by the base check, with one line in the log, the target and the
//     boot environment untouched; a tampered delta is refused; a written slot that does not
//     read back as the image is refused before the boot environment changes;
//   zchunk through nginx-light on 127.0.0.1: byte-identical, bytes fetched from nginx's log,
//     a tampered chunk on the server refused.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, readFileSync, writeFileSync, truncateSync, statSync, openSync, writeSync, closeSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp } from './helpers/run.js';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { swupdateDaemon } from './helpers/swupdate.js';
import { requires } from './helpers/require-tool.js';
import { documentedSchemas, validate } from './helpers/json-schema.js';
import { baseTree, nextRelease, writeTree, ext4Of, startNginx, type WebServer } from './helpers/delta-fixtures.js';
import { ArchiveReader } from '../src/clients/swupdate/archive.js';
import { byteSum } from '../src/clients/swupdate/cpio.js';
import { buildBundle } from '../src/clients/swupdate/bundle.js';
import { loadBundleSpec } from '../src/clients/swupdate/spec.js';
import { loadAesKey } from '../src/crypto/keys.js';
import { resolveSigner } from '../src/crypto/resolve-signer.js';

const HAVE = requires({
  what: 'delta bundles installed by the real SWUpdate client',
  tools: ['swupdate', 'swupdate-client', 'mke2fs', 'mkenvimage', 'fw_printenv', 'zck', 'zck_read_header', 'rdiff', 'nginx', 'unshare', 'zstd'],
  root: true,
  install: 'apt-get install swupdate e2fsprogs u-boot-tools libubootenv-tool zchunk rdiff nginx-light zstd; run as root',
});

const dir = tmp('otapack-delta-');
const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
let keys: KeyDir;
const rel1 = join(dir, 'rel1.ext4');
const rel2 = join(dir, 'rel2.ext4');
const slotA = join(dir, 'slotA.img');
const slotB = join(dir, 'slotB.img');
const envFile = join(dir, 'uboot.env');
const fwEnv = join(dir, 'fw_env.config');

/** Slot A runs release 1 (the base), slot B holds an older image; the env says A. */
async function freshDevice(): Promise<void> {
  copyFileSync(rel1, slotA);
  writeFileSync(slotB, Buffer.alloc(0));
  truncateSync(slotB, 48 << 20);
  writeFileSync(join(dir, 'env.txt'), 'rootpart=2\nupgrade_available=0\nbootcount=0\n');
  await execa('mkenvimage', ['-s', '0x4000', '-o', envFile, join(dir, 'env.txt')]);
}

async function env(): Promise<Record<string, string>> {
  const r = await execa('fw_printenv', ['-c', fwEnv]);
  return Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

const install = (bundle: string) => swupdateDaemon(bundle, { cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2', bootloader: 'uboot', fwEnvConfig: fwEnv });

function spec(name: string, image: string, opts: { from: string; method?: string; compress?: string; encrypt?: boolean; url?: string }): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `version: "2.0.0"
hardware-compatibility: ["1.0"]
slots:
  copy1: { device: ${slotA}, bootenv: { rootpart: "2", upgrade_available: "1", bootcount: "0" } }
  copy2: { device: ${slotB}, bootenv: { rootpart: "3", upgrade_available: "1", bootcount: "0" } }
images:
  - file: ${image}
    compress: ${opts.compress ?? 'zstd'}
    encrypt: ${opts.encrypt ? 'true' : 'false'}
    delta: { from: ${opts.from}, method: ${opts.method ?? 'rdiff'}${opts.url ? `, url: "${opts.url}"` : ''} }
`);
  return p;
}

async function bundle(name: string, specPath: string): Promise<string> {
  const out = join(dir, `${name}.swu`);
  const r = await otapack(['bundle', specPath, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--json'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  expect(r.code, r.stderr).toBe(0);
  // --json, delta images included, is what docs/json.md says
  expect(validate(JSON.parse(r.stdout), documentedSchemas().get('otapack.bundle/1')!)).toEqual([]);
  return out;
}

describe.skipIf(!HAVE)('delta bundles, installed by the real client (daemon + swupdate-client)', () => {
  let rel1Swu: string;
  beforeAll(async () => {
    keys = await keygen(join(dir, 'keys'), ['--type', 'rsa2048']);
    writeFileSync(fwEnv, `${envFile} 0x0000 0x4000\n`);
    const t1 = baseTree(20 << 20);
    await ext4Of(writeTree(join(dir, 'tree1'), t1), rel1, '48M');
    await ext4Of(writeTree(join(dir, 'tree2'), nextRelease(t1, 0.05)), rel2, '48M');
    // the previous release as CI keeps it: its full, encrypted bundle
    const full = join(dir, 'rel1.yaml');
    writeFileSync(full, `version: "1.0.0"\nhardware-compatibility: ["1.0"]\nslots:\n  copy1: { device: ${slotA} }\n  copy2: { device: ${slotB} }\nimages:\n  - file: ${rel1}\n    filename: rootfs.ext4.zst.enc\n    compress: zstd\n    encrypt: true\n`);
    rel1Swu = await bundle('rel1', full);
  });

  const variants = [
    { name: 'plain', compress: 'none', encrypt: false, from: () => rel1 },
    { name: 'zstd', compress: 'zstd', encrypt: false, from: () => rel1 },
    { name: 'zstd+AES, base taken out of the previous encrypted .swu', compress: 'zstd', encrypt: true, from: () => rel1Swu },
  ];
  for (const v of variants) {
    it(`rdiff (${v.name}): the inactive slot becomes release 2, byte for byte; the boot environment switches`, async () => {
      const b = await bundle(`rdiff-${v.compress}${v.encrypt ? '-aes' : ''}`, spec(`rdiff-${v.compress}${v.encrypt ? '-aes' : ''}`, rel2, { from: v.from(), compress: v.compress, encrypt: v.encrypt }));
      await freshDevice();
      const r = await install(b);
      expect(r.ok, r.output).toBe(true);
      expect(sha(slotB)).toBe(sha(rel2));
      expect(sha(slotA)).toBe(sha(rel1)); // the base is only read
      expect(await env()).toMatchObject({ rootpart: '3', upgrade_available: '1', bootcount: '0' });
      const full = statSync(rel2).size;
      console.log(`rdiff ${v.name}: bundle ${statSync(b).size} B for a ${full} B image; install ${r.ms} ms`);
      if (v.compress === 'none') {
        // librsync's own patch tool agrees with the client on the same delta
        const reader = await ArchiveReader.open(b);
        try {
          const layout = await reader.bundle();
          const e = layout.payloads.find((x) => x.name.endsWith('.rdiff'))!;
          writeFileSync(join(dir, 'payload.rdiff'), await reader.readEntry(e, 64 << 20));
        } finally {
          await reader.close();
        }
        await execa('rdiff', ['patch', rel1, join(dir, 'payload.rdiff'), join(dir, 'patched.ext4')]);
        expect(sha(join(dir, 'patched.ext4'))).toBe(sha(rel2));
      }
    });
  }

  it('refuses a wrong base before writing anything: one line in the log, target and boot environment untouched', async () => {
    const b = await bundle('rdiff-wrongbase', spec('rdiff-wrongbase', rel2, { from: rel1 }));
    await freshDevice();
    copyFileSync(rel2, slotA); // the device runs another release than the delta's base
    const before = sha(slotB);
    const r = await install(b);
    expect(r.ok).toBe(false);
    const lines = r.output.split('\n').filter((l) => l.includes('otapack: delta refused'));
    expect(lines, r.output).toHaveLength(1);
    expect(lines[0]).toMatch(/ERROR : otapack: delta refused: \S+slotA\.img is not rel1\.ext4, the release it was made from \(data sha256 [0-9a-f]{12}\.\. not [0-9a-f]{12}\.\.\); nothing was written$/);
    expect(r.output).toMatch(/execute preinstall scripts failed/);
    expect(sha(slotB)).toBe(before);
    expect(await env()).toMatchObject({ rootpart: '2', upgrade_available: '0' });
    // one byte of the base's metadata changed (what a read-write mount does to inodes and bitmaps)
    await freshDevice();
    const fd = openSync(slotA, 'r+');
    writeSync(fd, Buffer.from([0xa5]), 0, 1, 2048 + 0x10); // a group descriptor (1 KiB blocks)
    closeSync(fd);
    expect((await install(b)).output).toMatch(/otapack: delta refused/);
    expect(sha(slotB)).toBe(before);
  });

  it('refuses a tampered delta (its sha256), and a slot that does not read back as the image (before the boot environment changes)', async () => {
    const b = await bundle('rdiff-tamper', spec('rdiff-tamper', rel2, { from: rel1, compress: 'none' }));
    const bad = join(dir, 'tampered.swu');
    copyFileSync(b, bad);
    const reader = await ArchiveReader.open(bad);
    const e = (await reader.bundle()).payloads.find((x) => x.name.endsWith('.rdiff'))!;
    await reader.close();
    const fd = openSync(bad, 'r+');
    writeSync(fd, Buffer.from([0x55]), 0, 1, e.dataOffset + Math.floor(e.size / 2));
    closeSync(fd);
    await freshDevice();
    const r = await install(bad);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/HASH mismatch|Checksum WRONG/);
    expect(await env()).toMatchObject({ rootpart: '2' });

    // a correctly signed bundle whose readback hash is not the written bytes': the client's
    // readback handler fails the install and the boot environment is not switched
    const s = await loadBundleSpec(spec('rdiff-readback', rel2, { from: rel1, compress: 'none' }));
    const signer = (await resolveSigner({ key: keys.key, cert: keys.cert }))!;
    const liar = join(dir, 'readback-liar.swu');
    const built = await buildBundle({ spec: s, output: liar, signer, aes: await loadAesKey(keys.aes), hashOutput: false });
    expect(built.deltas?.[0]?.readback).toBe('readback');
    const text = readFileSync(liar);
    const lr = await ArchiveReader.open(liar);
    const manifest = (await lr.bundle()).manifestEntry;
    await lr.close();
    const good = built.deltas![0]!.image.sha256;
    // rewrite the manifest's readback digest and sign it again with the real key (`otapack sign`)
    let hits = 0;
    for (let idx = text.indexOf(Buffer.from(`sha256 = "${good}"`)); idx >= 0; idx = text.indexOf(Buffer.from(`sha256 = "${good}"`), idx + 1)) {
      text.write(sha(rel1), idx + 10, 'latin1'); // a well-formed digest, of another image
      hits++;
    }
    expect(hits).toBe(2); // copy1's and copy2's readback
    // the manifest's cpio byte sum (crc format) follows its bytes
    text.write(byteSum(text.subarray(manifest.dataOffset, manifest.dataOffset + manifest.size)).toString(16).padStart(8, '0').toUpperCase(), manifest.headerOffset + 102, 'latin1');
    const forged = join(dir, 'forged.swu');
    writeFileSync(forged, text);
    const re = await otapack(['sign', forged, '-o', join(dir, 'forged-signed.swu'), '--key', keys.key, '--cert', keys.cert]);
    // sign checks payloads against the (changed) manifest: the readback digest is no payload's, so it signs
    expect(re.code, re.stderr).toBe(0);
    await freshDevice();
    const r2 = await install(join(dir, 'forged-signed.swu'));
    expect(r2.ok).toBe(false);
    expect(r2.output).toMatch(/Readback verification failed/);
    expect(sha(slotB)).toBe(sha(rel2)); // written, but not trusted: the boot environment stays
    expect(await env()).toMatchObject({ rootpart: '2', upgrade_available: '0' });
  });

  it('verify says what base a delta bundle needs, walks the rdiff stream, and fails one the client would refuse at install only', async () => {
    const b = join(dir, 'rdiff-zstd-aes.swu');
    const v = await otapack(['verify', b, '--trust', keys.cert, '--aes-key', keys.aes, '--json']);
    expect(v.code, v.stdout).toBe(0);
    const report = JSON.parse(v.stdout);
    expect(validate(report, documentedSchemas().get('otapack.verify/1')!)).toEqual([]);
    const delta = report.checks.find((c: { id: string }) => c.id === 'delta');
    expect(delta.status).toBe('pass');
    expect(delta.message).toMatch(/^rdiff delta: the running slot must hold release 1\.0\.0 \(rel1\.swu\) \(50331648 bytes, data sha256 [0-9a-f]{12}…\); stable\.copy1 writes \S+slotA\.img from \S+slotB\.img \(base checked first\), read back after; stable\.copy2/);
    expect(report.delta).toHaveLength(2);
    expect(report.delta[1]).toMatchObject({ method: 'rdiff', device: slotB, base: { device: slotA, name: 'release 1.0.0 (rel1.swu)', size: 48 << 20 }, baseCheck: true, readback: { sha256: sha(rel2), size: 48 << 20 } });
    expect(report.delta[1].rdiff.outputSize).toBe(48 << 20);

    // an rdiff image without rdiffbase: swupdate -c passes it (it never runs the handler), verify does not
    const raw = join(dir, 'payload.rdiff');
    writeFileSync(join(dir, 'nobase.yaml'), `version: "2.0.0"\nhardware-compatibility: ["1.0"]\nimages:\n  - file: ${raw}\n    type: rdiff_image\n    device: ${slotB}\n    compress: none\n`);
    const nb = await bundle('nobase', join(dir, 'nobase.yaml'));
    const c = await execa('swupdate', ['-c', '-k', keys.cert, '-H', 'otapack:1.0', '-i', nb], { reject: false, all: true, env: { TMPDIR: dir } });
    expect(c.all).toMatch(/SWUPDATE successful/);
    const bad = await otapack(['verify', nb, '--trust', keys.cert]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/FAIL {2}delta {6}\(top level\): no properties\.rdiffbase: the client fails at install/);
  });

  describe('zchunk through nginx-light on 127.0.0.1', () => {
    let web: WebServer;
    beforeAll(async () => { web = await startNginx(join(dir, 'nginx')); });
    afterAll(async () => { await web?.stop(); });

    it('installs byte-identical, fetching only the changed chunks (nginx log); a tampered chunk is refused', async () => {
      const url = `${web.url}/rel2.zck`;
      const b = await bundle('zchunk', spec('zchunk', rel2, { from: rel1, method: 'zchunk', url }));
      // the .zck goes next to the bundle, named after the url; the user publishes it
      const zck = join(dir, 'rel2.zck');
      expect(readdirSync(dir)).toContain('rel2.zck');
      copyFileSync(zck, join(web.root, 'rel2.zck'));
      await freshDevice();
      web.reset();
      const r = await install(b);
      expect(r.ok, r.output).toBe(true);
      expect(sha(slotB)).toBe(sha(rel2));
      expect(await env()).toMatchObject({ rootpart: '3', upgrade_available: '1' });
      const fetched = web.bytesSent();
      const reqs = web.requests();
      expect(reqs.every((q) => q.status === 206), reqs.map((q) => q.line).join('\n')).toBe(true);
      console.log(`zchunk: bundle ${statSync(b).size} B, fetched ${fetched} B of the ${statSync(zck).size} B .zck in ${reqs.length} request(s); install ${r.ms} ms`);
      expect(fetched).toBeGreaterThan(0);
      expect(fetched).toBeLessThan(statSync(zck).size * 0.5);

      // a chunk changed on the server: the client refuses it, the boot environment stays
      const served = readFileSync(zck);
      const header = (await execa('zck_read_header', ['-v', zck])).stdout;
      const hsize = Number(/Header size:\s*(\d+)/.exec(header)![1]);
      for (let i = hsize + 100; i < served.length; i += 4096) served[i] ^= 0xff;
      writeFileSync(join(web.root, 'rel2.zck'), served);
      await freshDevice();
      const bad = await install(b);
      expect(bad.ok).toBe(false);
      expect(bad.output).toMatch(/ERROR/);
      expect(await env()).toMatchObject({ rootpart: '2', upgrade_available: '0' });
    });
  });
});
