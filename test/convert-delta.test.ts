// `otapack convert --delta-from PREVIOUS.swu`: release 1 converted with rootfs.read-only, release 2
// (a package update in its rootfs) converted with the first release's bundle as the base. The
// delta bundle is installed by the real client (daemon + swupdate-client) on a device whose
// slot A was flashed by bmaptool (its free blocks hold whatever the flash held: garbage here),
// slot B ends byte-identical to release 2's slot, and verify says what the bundle needs. The
// refusals are the plan's: each a one-line error before any output exists.
import { describe, it, expect, beforeAll } from 'vitest';
import { copyFileSync, existsSync, openSync, readSync, readdirSync, readFileSync, writeFileSync, writeSync, closeSync, truncateSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { buildBuildrootImage, type FixtureImage } from './helpers/images.js';
import { swupdateDaemon } from './helpers/swupdate.js';
import { requires } from './helpers/require-tool.js';
import { documentedSchemas, validate } from './helpers/json-schema.js';
import { noise } from './helpers/delta-fixtures.js';
import { probeExt4, usedRanges } from '../src/fs/ext4.js';

const HAVE = requires({
  what: 'convert --delta-from, installed by the real SWUpdate client',
  tools: ['swupdate', 'swupdate-client', 'mke2fs', 'debugfs', 'mkenvimage', 'fw_printenv', 'zck', 'unshare', 'zstd'],
  root: true,
  install: 'apt-get install swupdate e2fsprogs u-boot-tools libubootenv-tool zchunk zstd; run as root',
});

const dir = tmp('otapack-convert-delta-');
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let keys: KeyDir;
let img1: FixtureImage;
let img2: string;
const config = (version: string, extra = ''): string => {
  const p = join(dir, `otapack-${version}-${Math.random().toString(36).slice(2, 8)}.yaml`);
  writeFileSync(p, `version: "${version}"\nstorage:\n  slot-size: 96M\n  data-size: 16M\nupdate:\n  encrypt: true\n${extra}`);
  return p;
};
const RO = 'rootfs:\n  read-only: true\n';

/** A slot's bytes out of a converted disk. */
function slotOf(image: string, report: { output: { partitions: { role: string; start: number; size: number }[] } }, role: string): Buffer {
  const p = report.output.partitions.find((x) => x.role === role)!;
  const fd = openSync(image, 'r');
  try {
    const b = Buffer.alloc(p.size);
    readSync(fd, b, 0, p.size, p.start);
    return b;
  } finally {
    closeSync(fd);
  }
}

async function convert(input: string, out: string, cfg: string, extra: string[] = []) {
  return otapack(['convert', input, '-c', cfg, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, ...extra], { env: EPOCH });
}

describe.skipIf(!HAVE)('convert --delta-from', () => {
  let r1: { image: string; swu: string; report: any };
  beforeAll(async () => {
    keys = await keygen(join(dir, 'keys'), ['--type', 'rsa2048']);
    img1 = await buildBuildrootImage(join(dir, 'in1'));
    // release 2: a package update of the same rootfs (a library replaced, a tool added)
    img2 = join(dir, 'release-2.img');
    copyFileSync(img1.path, img2);
    const root = img1.partitions.find((p) => p.number === img1.rootPartition)!;
    writeFileSync(join(dir, 'libnew.so'), noise(400_000, 4));
    writeFileSync(join(dir, 'tool'), noise(60_000, 5));
    await execa('debugfs', ['-w', '-f', '-', `${img2}?offset=${root.start * 512}`], { input: `write ${join(dir, 'libnew.so')} /usr/lib/libnew.so\nwrite ${join(dir, 'tool')} /usr/bin/tool\n` });
    const c = await convert(img1.path, join(dir, 'r1'), config('1.0.0', RO));
    expect(c.code, c.stderr).toBe(0);
    const name = readdirSync(join(dir, 'r1')).find((f) => f.endsWith('.swu'))!.replace(/\.swu$/, '');
    r1 = { image: join(dir, 'r1', `${name}.img`), swu: join(dir, 'r1', `${name}.swu`), report: JSON.parse(readFileSync(join(dir, 'r1', `${name}.json`), 'utf8')) };
  });

  it('writes <name>.delta.swu; the real client turns the bmap-flashed slot A (garbage in its free blocks) into release 2 in slot B', async () => {
    const out = join(dir, 'r2');
    const c = await convert(img2, out, config('2.0.0', RO), ['--delta-from', r1.swu, '--json']);
    expect(c.code, c.stderr).toBe(0);
    const report = JSON.parse(c.stdout);
    expect(validate(report, documentedSchemas().get('otapack.convert/1')!)).toEqual([]);
    expect(report.delta).toMatchObject({ method: 'rdiff', base: { path: r1.swu, version: '1.0.0' }, readback: 'readback' });
    expect(report.outputs.deltaBundle.path).toBe(join(out, 'release-2.delta.swu'));
    expect(c.stderr).toMatch(/release-2\.delta\.swu .*\n {2}rootfs\.ext4: rdiff delta from release 1\.0\.0/);
    const full = report.outputs.bundle.size;
    const delta = report.outputs.deltaBundle.size;
    console.log(`convert --delta-from: full ${full} B, delta ${delta} B`);
    expect(delta).toBeLessThan(full / 2);
    // the read-only root: fstab, command line, inittab
    expect(report.fstab).toContain('root mounted read-only (ro,noauto, no fsck pass)');
    expect(report.boot.edits.some((e: { kind: string; after: string }) => e.kind === 'read-only' && / ro( |$)/.test(e.after))).toBe(true);

    // verify: what base the delta needs
    const v = await otapack(['verify', report.outputs.deltaBundle.path, '--trust', keys.cert, '--aes-key', keys.aes]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/PASS {2}delta {6}rdiff delta: the running slot must hold release 1\.0\.0 \(release-1\.swu|the running slot must hold release 1\.0\.0/);

    // the device: slot A as bmaptool wrote it (the blocks in use), garbage elsewhere; B stale
    const slotA = join(dir, 'dev-slotA');
    const slotB = join(dir, 'dev-slotB');
    const a = slotOf(r1.image, r1.report, 'rootfs-a');
    const used = await usedRanges(r1.image, r1.report.output.partitions.find((x: { role: string }) => x.role === 'rootfs-a').start, (await probeExt4(r1.image, r1.report.output.partitions.find((x: { role: string }) => x.role === 'rootfs-a').start))!);
    const device = noise(a.length, 99);
    for (const [s, e] of used) a.copy(device, s, s, e);
    writeFileSync(slotA, device);
    writeFileSync(slotB, Buffer.alloc(0));
    truncateSync(slotB, a.length);
    writeFileSync(join(dir, 'env.txt'), 'rootpart=2\nupgrade_available=0\nbootcount=0\n');
    await execa('mkenvimage', ['-s', '0x4000', '-o', join(dir, 'uboot.env'), join(dir, 'env.txt')]);
    writeFileSync(join(dir, 'fw_env.config'), `${join(dir, 'uboot.env')} 0x0000 0x4000\n`);
    const r = await swupdateDaemon(report.outputs.deltaBundle.path, {
      cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2', bootloader: 'uboot', fwEnvConfig: join(dir, 'fw_env.config'),
      devices: { '/dev/mmcblk0p2': slotA, '/dev/mmcblk0p3': slotB },
    });
    expect(r.ok, r.output).toBe(true);
    expect(sha(readFileSync(slotB))).toBe(sha(slotOf(join(out, 'release-2.img'), report, 'rootfs-a')));
    const env = (await execa('fw_printenv', ['-c', join(dir, 'fw_env.config')])).stdout;
    expect(env).toMatch(/^rootpart=3$/m);

    // negative twin: the same bundle on a slot A whose metadata changed (as a read-write mount changes inodes and bitmaps)
    const fd = openSync(slotA, 'r+');
    writeSync(fd, Buffer.from([0x5a]), 0, 1, 2048 + 0x10); // a group descriptor (1 KiB blocks)
    closeSync(fd);
    writeFileSync(slotB, Buffer.alloc(0));
    truncateSync(slotB, a.length);
    const bad = await swupdateDaemon(report.outputs.deltaBundle.path, {
      cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2', bootloader: 'uboot', fwEnvConfig: join(dir, 'fw_env.config'),
      devices: { '/dev/mmcblk0p2': slotA, '/dev/mmcblk0p3': slotB },
    });
    expect(bad.ok).toBe(false);
    expect(bad.output).toMatch(/ERROR : otapack: delta refused: \/dev\/mmcblk0p2 is not release 1\.0\.0 \(\S+\.swu\), the release it was made from/);
    expect(readFileSync(slotB).every((x) => x === 0)).toBe(true);
  });

  it('--delta-method zchunk writes <name>.zck next to the bundles, for the URL given', async () => {
    const out = join(dir, 'r2z');
    const cfg = join(dir, 'zchunk.yaml');
    writeFileSync(cfg, 'version: "2.0.0"\nstorage:\n  slot-size: 96M\n  data-size: 16M\n');
    const z = await convert(img2, out, cfg, ['--delta-from', r1.swu, '--delta-method', 'zchunk', '--delta-url', 'http://updates.example.com/fleet/', '--json']);
    expect(z.code, z.stderr).toBe(0);
    const report = JSON.parse(z.stdout);
    expect(validate(report, documentedSchemas().get('otapack.convert/1')!)).toEqual([]);
    expect(report.delta.zchunk.url).toBe('http://updates.example.com/fleet/release-2.zck');
    expect(existsSync(join(out, 'release-2.zck'))).toBe(true);
    expect(report.outputs.zck.path).toBe(join(out, 'release-2.zck'));
    const v = await otapack(['verify', join(out, 'release-2.delta.swu'), '--trust', keys.cert]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/PASS {2}delta {6}zchunk delta: reuses the chunks of the running slot/);
  });

  it('refuses, before any output, what could not work on the devices', async () => {
    const cases: { name: string; cfg: string; args: string[]; code: number; re: RegExp }[] = [
      { name: 'rdiff without a read-only root', cfg: config('2.0.0'), args: ['--delta-from', r1.swu], code: 3, re: /an rdiff delta needs rootfs\.read-only: true: it copies from the running slot/ },
      { name: 'zchunk with encryption', cfg: config('2.0.0', RO), args: ['--delta-from', r1.swu, '--delta-method', 'zchunk', '--delta-url', 'http://h/x/'], code: 3, re: /update\.encrypt is set, and zchunk chunks cannot be encrypted/ },
      { name: 'zchunk without a URL', cfg: config('2.0.0', RO), args: ['--delta-from', r1.swu, '--delta-method', 'zchunk'], code: 2, re: /--delta-method zchunk needs --delta-url/ },
      { name: 'other slot sizes', cfg: config('2.0.0', RO), args: ['--delta-from', r1.swu], code: 3, re: /has 96 MiB slots and this release plans 128 MiB: devices flashed with it could not take this release; set storage\.slot-size: 96M/ },
      { name: 'a delta bundle as the base', cfg: config('2.0.0', RO), args: ['--delta-from', join(dir, 'r2', 'release-2.delta.swu')], code: 4, re: /is a delta bundle/ },
      { name: 'a missing base', cfg: config('2.0.0', RO), args: ['--delta-from', join(dir, 'nope.swu')], code: 4, re: /nope\.swu: no such file or directory/ },
    ];
    writeFileSync(cases[3]!.cfg, `version: "2.0.0"\nstorage:\n  slot-size: 128M\n  data-size: 16M\nupdate:\n  encrypt: true\n${RO}`);
    for (const c of cases) {
      const out = join(dir, `refused-${c.name.replace(/\W+/g, '-')}`);
      const r = await convert(img2, out, c.cfg, c.args);
      expectCleanFailure(r, c.code, c.re);
      expect(existsSync(out), `${c.name}: no output folder`).toBe(false);
    }
    // a previous release that mounted its root read-write: its devices no longer hold its bytes
    const rw = await convert(img1.path, join(dir, 'r1-rw'), config('1.0.0'));
    expect(rw.code, rw.stderr).toBe(0);
    const r = await convert(img2, join(dir, 'refused-rw-base'), config('2.0.0', RO), ['--delta-from', join(dir, 'r1-rw', readdirSync(join(dir, 'r1-rw')).find((f) => f.endsWith('.swu'))!)]);
    expectCleanFailure(r, 3, /its root filesystem is mounted read-write \(fstab: rw,noauto\), so devices running it no longer hold its bytes/);
  });
});
