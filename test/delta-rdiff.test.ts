// otapack's rdiff encoder, judged by librsync's own `rdiff patch`, and the parser verify walks
// deltas with; the device-side check script, run by sh on files. Small synthetic images: moved,
// changed, zero and new blocks, a base of which only some ranges may be read.
import { describe, it, expect } from 'vitest';
import { writeFileSync, readFileSync, chmodSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { otapack, tmp, expectCleanFailure } from './helpers/run.js';
import { requires } from './helpers/require-tool.js';
import { noise } from './helpers/delta-fixtures.js';
import { encodeRdiff, RdiffParser, RDIFF_MAGIC } from '../src/delta/rdiff.js';
import { checkScript, rangeLines } from '../src/clients/swupdate/delta.js';
import { openDeltaBase, subtract, type DeltaBase } from '../src/delta/base.js';

const HAVE = requires({ what: 'rdiff deltas checked by librsync', tools: ['rdiff', 'sh', 'busybox', 'dd', 'sha256sum', 'mke2fs', 'debugfs'], install: 'apt-get install rdiff' });
const dir = tmp('otapack-rdiff-');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const BS = 1024;

/** A base of 64 blocks and a target: some blocks kept, some moved, some changed, zeros, and a tail. */
function pair(): { base: Buffer; target: Buffer } {
  const base = noise(64 * BS, 1);
  base.fill(0, 40 * BS, 44 * BS); // zeros in the base
  const target = Buffer.concat([
    base.subarray(0, 10 * BS), // kept in place
    base.subarray(30 * BS, 38 * BS), // moved forward
    noise(5 * BS, 2), // new
    Buffer.alloc(6 * BS), // zeros (a literal, never a copy of the base's zeros)
    base.subarray(10 * BS, 30 * BS), // moved back
    base.subarray(50 * BS, 64 * BS),
    noise(300, 3), // a partial last block
  ]);
  return { base, target };
}

describe.skipIf(!HAVE)('rdiff encoder', () => {
  it('rdiff patch rebuilds the target byte for byte; the parser agrees on what the delta produces', async () => {
    const { base, target } = pair();
    writeFileSync(join(dir, 'base'), base);
    writeFileSync(join(dir, 'target'), target);
    const st = await encodeRdiff({ base: { path: join(dir, 'base'), size: base.length, blockSize: BS, ranges: [[0, base.length]] }, target: { path: join(dir, 'target'), size: target.length }, output: join(dir, 'delta') });
    expect(st.targetSha256).toBe(sha(target));
    expect(st.baseDataSha256).toBe(sha(base));
    expect(st.copyBytes).toBe(10 * BS + 8 * BS + 20 * BS + 14 * BS);
    expect(st.literalBytes).toBe(5 * BS + 6 * BS + 300);
    expect(st.zeroLiteralBytes).toBe(6 * BS);
    await execa('rdiff', ['patch', join(dir, 'base'), join(dir, 'delta'), join(dir, 'out')]);
    expect(sha(readFileSync(join(dir, 'out')))).toBe(sha(target));
    const p = new RdiffParser();
    const delta = readFileSync(join(dir, 'delta'));
    for (let i = 0; i < delta.length; i += 777) p.write(delta.subarray(i, i + 777)); // any chunking
    expect(p.end()).toMatchObject({ outputSize: target.length, copyBytes: st.copyBytes, literalBytes: st.literalBytes, copies: st.copies, literals: st.literals });
  });

  it('copies only from the ranges the device is guaranteed to hold: patching with garbage elsewhere still rebuilds the target', async () => {
    const { base, target } = pair();
    const ranges: [number, number][] = [[0, 12 * BS], [30 * BS, 40 * BS]];
    writeFileSync(join(dir, 'base2'), base);
    writeFileSync(join(dir, 'target2'), target);
    const st = await encodeRdiff({ base: { path: join(dir, 'base2'), size: base.length, blockSize: BS, ranges }, target: { path: join(dir, 'target2'), size: target.length }, output: join(dir, 'delta2') });
    expect(st.copyBytes).toBe(10 * BS + 8 * BS + 2 * BS); // base blocks 10 and 11 are in a range too
    // the device's base: what bmaptool wrote (the ranges) and whatever the flash held elsewhere
    const device = noise(base.length, 77);
    for (const [a, b] of ranges) base.copy(device, a, a, b);
    writeFileSync(join(dir, 'device'), device);
    await execa('rdiff', ['patch', join(dir, 'device'), join(dir, 'delta2'), join(dir, 'out2')]);
    expect(sha(readFileSync(join(dir, 'out2')))).toBe(sha(target));
  });

  it('the parser refuses what is not a complete rdiff delta, naming the offset', () => {
    const run = (b: Buffer): string => {
      const p = new RdiffParser();
      try { p.write(b); p.end(); return 'ok'; } catch (e) { return (e as Error).message; }
    };
    const magic = Buffer.alloc(4);
    magic.writeUInt32BE(RDIFF_MAGIC);
    expect(run(Buffer.from('PK\x03\x04'))).toMatch(/magic 504b0304/);
    expect(run(magic)).toMatch(/ends without an END command/);
    expect(run(Buffer.concat([magic, Buffer.from([0x43, 0, 0, 0, 9, 1, 2])]))).toMatch(/ends without an END command/);
    expect(run(Buffer.concat([magic, Buffer.from([0x99])]))).toMatch(/unknown command 0x99 at offset 5/);
    expect(run(Buffer.concat([magic, Buffer.from([0x00, 0x00])]))).toMatch(/data after the END command/);
    // librsync's other encodings: a short literal and a COPY_N1_N1
    expect(run(Buffer.concat([magic, Buffer.from([0x02, 7, 7, 0x45, 1, 3, 0x00])]))).toBe('ok');
  });
});

describe.skipIf(!HAVE)('the base of an ext4 delta: what a device holds of it', () => {
  it.each([1024, 4096])('the blocks in use, without the superblock and the journal (the kernel changes them in its cache when it mounts the root, read-only too); %i-byte blocks', async (bs) => {
    const img = join(dir, `base-${bs}.ext4`);
    mkdirSync(join(dir, `tree-${bs}`), { recursive: true });
    writeFileSync(join(dir, `tree-${bs}`, 'f.bin'), noise(300_000, bs));
    await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', String(bs), '-d', join(dir, `tree-${bs}`), img, '16M']);
    const base = await openDeltaBase(img, { workDir: dir, label: 'x' });
    const journal = /\((\d+)-(\d+)\):(\d+)-(\d+)/.exec((await execa('debugfs', ['-R', 'stat <8>', img])).stdout)!;
    const [j0, j1] = [Number(journal[3]) * bs, (Number(journal[4]) + 1) * bs];
    const covered = (a: number, b: number): boolean => base.ranges.some(([x, y]) => x < b && a < y);
    expect(base.blockSize).toBe(bs);
    expect(covered(1024, 2048)).toBe(false);
    expect(covered(j0, j1)).toBe(false);
    expect(covered(2 * bs, 3 * bs)).toBe(true); // the group descriptors are data
    expect(base.ranges.every(([a, b]) => a % bs === 0 && b % bs === 0)).toBe(true);
    expect(subtract([[0, 100], [200, 300]], [[50, 250]])).toEqual([[0, 50], [250, 300]]);
  });
});

describe.skipIf(!HAVE)('the check script SWUpdate runs around a delta (sh, on files)', () => {
  const base = noise(96 * BS, 5);
  const ranges: [number, number][] = [[0, 8 * BS], [16 * BS, 80 * BS], [88 * BS, 96 * BS]];
  const data = Buffer.concat(ranges.map(([a, b]) => base.subarray(a, b)));
  const b: DeltaBase = {
    path: '', origin: '/releases/release-1.swu', bundle: { entry: 'rootfs.ext4.zst', version: '1.0.0', encrypted: false }, size: base.length,
    ext4: { blockSize: BS, uuid: 'x' }, blockSize: BS, ranges, rangesBytes: data.length, cleanup: async () => {},
  };
  const script = (target: string, image: Buffer): string => {
    const p = join(dir, `check-${Math.random().toString(36).slice(2)}.sh`);
    writeFileSync(p, checkScript({ method: 'rdiff', base: b, dataSha256: sha(data), baseDevice: join(dir, 'dev-base'), target, image: { sha256: sha(image), size: image.length }, name: 'rootfs.ext4 2.0.0', slotCheck: true })!);
    chmodSync(p, 0o755);
    return p;
  };

  it('reads ranges in 1 MiB blocks where they are aligned, their heads and tails in smaller ones', () => {
    expect(rangeLines([[0, 3 << 20], [(3 << 20) + 4096, (5 << 20) + 2048], [(6 << 20) + 1024, (6 << 20) + 3072]])).toBe(`1048576 0 3\n4096 769 255\n1048576 4 1\n2048 2560 1\n1024 6145 2`);
  });

  it('preinst passes on the base (whatever its unused blocks hold) and refuses another with one line; postinst checks the written slot', async () => {
    const image = noise(40 * BS, 9);
    const dev = Buffer.from(base);
    dev.fill(0xee, 8 * BS, 16 * BS); // outside the ranges: not checked
    writeFileSync(join(dir, 'dev-base'), dev);
    writeFileSync(join(dir, 'dev-target'), Buffer.concat([image, noise(4 * BS, 1)])); // a partition larger than the image
    const s = script(join(dir, 'dev-target'), image);
    const ok = await execa('sh', [s, 'preinst'], { reject: false });
    expect(ok.exitCode, ok.stderr).toBe(0);
    // BusyBox's ash, the device's shell, parses it the same (the heredoc inside $(…))
    const ash = await execa('busybox', ['sh', s, 'preinst'], { reject: false });
    expect(ash.exitCode, ash.stderr).toBe(0);
    expect(ok.stdout).toMatch(/otapack: base check passed: \S+dev-base holds release 1\.0\.0 \(release-1\.swu\)/);
    expect((await execa('sh', [s, 'postinst'], { reject: false })).exitCode).toBe(0);

    dev[20 * BS] ^= 1; // inside a range: another release (or a read-write mount)
    writeFileSync(join(dir, 'dev-base'), dev);
    const bad = await execa('sh', [s, 'preinst'], { reject: false });
    expect(bad.exitCode).toBe(1);
    expect((await execa('busybox', ['sh', s, 'preinst'], { reject: false })).exitCode).toBe(1);
    const line = bad.stderr.split('\n')[0]!;
    expect(line).toMatch(/^otapack: delta refused: \S+dev-base is not release 1\.0\.0 \(release-1\.swu\), the release it was made from \(data sha256 [0-9a-f]{12}\.\. not [0-9a-f]{12}\.\.\); nothing was written$/);
    expect(line.length).toBeLessThan(255); // one line of SWUpdate's log

    writeFileSync(join(dir, 'dev-target'), noise(44 * BS, 2));
    const post = await execa('sh', [s, 'postinst'], { reject: false });
    expect(post.exitCode).toBe(1);
    expect(post.stderr).toMatch(/otapack: the written slot \S+dev-target does not read back as rootfs\.ext4 2\.0\.0/);
  });

  it('preinst refuses a base it cannot read', async () => {
    const p = join(dir, 'check-missing.sh');
    writeFileSync(p, checkScript({ method: 'rdiff', base: b, dataSha256: sha(data), baseDevice: join(dir, 'no-such-device'), image: { sha256: sha(base), size: 1 }, name: 'x', slotCheck: false })!);
    const r = await execa('sh', [p, 'preinst'], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^otapack: delta refused: cannot read its base \S+no-such-device; nothing was written$/);
    // zchunk with a readback: no script at all
    expect(checkScript({ method: 'zchunk', baseDevice: '/dev/x', image: { sha256: sha(base), size: 1 }, name: 'x', slotCheck: false })).toBeUndefined();
  });
});

describe('delta: in a bundle spec, refused with one line naming the key (exit 3)', () => {
  const img = join(dir, 'spec-img.bin');
  writeFileSync(img, noise(64 * 1024, 3));
  const spec = (image: string, extra = '', slots = true): string => {
    const p = join(dir, `spec-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(p, `version: "2.0.0"\nhardware-compatibility: ["1.0"]\n${slots ? 'slots:\n  copy1: { device: /dev/mmcblk0p2 }\n  copy2: { device: /dev/mmcblk0p3 }\n' : ''}${image}${extra}`);
    return p;
  };
  const cases: [string, string, RegExp][] = [
    ['no from', `images:\n  - file: ${img}\n    delta: { method: rdiff }\n`, /images\[0\]\.delta: missing required key "from"/],
    ['a missing base', `images:\n  - file: ${img}\n    delta: { from: nope.swu }\n`, /images\[0\]\.delta\.from: nope\.swu: no such file/],
    ['an unknown method', `images:\n  - file: ${img}\n    delta: { from: ${img}, method: bsdiff }\n`, /delta\.method: must be one of rdiff, zchunk/],
    ['zchunk without url', `images:\n  - file: ${img}\n    delta: { from: ${img}, method: zchunk }\n`, /delta\.url: zchunk needs "url"/],
    ['zchunk encrypted', `images:\n  - file: ${img}\n    encrypt: true\n    delta: { from: ${img}, method: zchunk, url: "http://h/x.zck" }\n`, /encrypt: zchunk chunks cannot be encrypted/],
    ['a url without a file name', `images:\n  - file: ${img}\n    delta: { from: ${img}, method: zchunk, url: "http://h/dir/" }\n`, /delta\.url: "http:\/\/h\/dir\/" must end in the file name of the \.zck/],
    ['rdiff with a url', `images:\n  - file: ${img}\n    delta: { from: ${img}, url: "http://h/x.zck" }\n`, /delta\.url: only zchunk fetches from a URL/],
    ['a script as a delta', `scripts:\n  - file: ${img}\n    delta: { from: ${img} }\n`, /only images can be shipped as a delta, not scripts/],
    ['another handler', `images:\n  - file: ${img}\n    type: archive\n    path: /x\n    delta: { from: ${img} }\n`, /type: an image with "delta" is a whole slot image \(type raw\)/],
  ];
  it.each(cases)('%s', async (_name, body, re) => {
    const r = await otapack(['bundle', spec(`${body}`), '-o', join(dir, 'never.swu'), '--unsigned']);
    expectCleanFailure(r, 3, re);
  });
  it('a base bundle the client could not install is refused with one line naming it (exit 4): sw-description neither libconfig nor JSON, or giving the sha256 of a payload it does not hold', async () => {
    const swu = async (name: string, manifest: string, files: Record<string, Buffer> = {}): Promise<string> => {
      const d = join(dir, `base-${name}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'sw-description'), manifest);
      for (const [f, b] of Object.entries(files)) writeFileSync(join(d, f), b);
      const archive = await execa('cpio', ['-o', '-H', 'crc', '--quiet'], { cwd: d, input: ['sw-description', ...Object.keys(files)].join('\n') + '\n', encoding: 'buffer', stripFinalNewline: false });
      writeFileSync(join(d, 'base.swu'), archive.stdout);
      return join(d, 'base.swu');
    };
    const garbage = await swu('garbage', 'software = { version = "1.0"; images: ( { filename = ');
    const missing = await swu('missing', `software = { version = "1.0.0"; images: ( { filename = "rootfs.ext4"; device = "/dev/mmcblk0p2"; sha256 = "${'0'.repeat(64)}"; } ); };`);
    for (const [base, re] of [
      [garbage, /base\.swu: sw-description is not valid libconfig or JSON \(/],
      [missing, /base\.swu: sw-description references "rootfs\.ext4", which is not in the bundle$/m],
    ] as const) {
      const r = await otapack(['bundle', spec(`images:\n  - file: ${img}\n    delta: { from: ${base} }\n`), '-o', join(dir, 'never.swu'), '--unsigned']);
      expectCleanFailure(r, 4, re);
    }
  });
  it('no base without exactly two slots, unless delta.base names it', async () => {
    const r = await otapack(['bundle', spec(`images:\n  - file: ${img}\n    device: /dev/mmcblk0p3\n    delta: { from: ${img} }\n`, '', false), '-o', join(dir, 'never.swu'), '--unsigned']);
    expectCleanFailure(r, 3, /delta\.base: the base \(the running release's device\) is known only with exactly two slots; set delta\.base/);
  });
});
