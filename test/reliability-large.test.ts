// Large inputs in constant memory: a bundle of a sparse 6 GiB image and a convert of a sparse
// 4 GiB image, each run under /usr/bin/time -v; peak RSS must stay under 200 MiB. (Memory is
// the claim here, not speed: no timing is asserted.)
import { describe, test, expect } from 'vitest';
import { execa } from 'execa';
import { writeFileSync, truncateSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, tmp } from './helpers/run.js';
import { keygen, writeSpec, abSpec } from './helpers/bundle-fixtures.js';

const LIMIT_KIB = 200 * 1024;

async function measured(args: string[]): Promise<{ code: number; rssKiB: number; seconds: number; stderr: string; stdout: string }> {
  const r = await execa('/usr/bin/time', ['-v', process.execPath, BIN, ...args], { reject: false, env: { CI: 'true', NO_COLOR: '1' } });
  const err = String(r.stderr);
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? NaN);
  const m = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(err);
  const seconds = m ? Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) : NaN;
  return { code: r.exitCode ?? -1, rssKiB: rss, seconds, stderr: err, stdout: String(r.stdout) };
}

describe('large inputs keep peak RSS under 200 MiB', () => {
  test('bundle of a sparse 6 GiB image (zstd + AES)', async () => {
    const dir = tmp('otapack-large-');
    const keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
    const big = join(dir, 'six.img');
    writeFileSync(big, 'start of a 6 GiB image');
    truncateSync(big, 6 * 1024 ** 3);
    const spec = writeSpec(dir, 's.yaml', abSpec({ slotA: '/dev/a', slotB: '/dev/b', file: big, compress: 'zstd', encrypt: true }));
    const r = await measured(['bundle', spec, '-o', join(dir, 'six.swu'), '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '-q']);
    console.log(`bundle 6 GiB sparse: peak RSS ${(r.rssKiB / 1024).toFixed(1)} MiB, ${r.seconds} s, output ${statSync(join(dir, 'six.swu')).size} bytes`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.rssKiB).toBeLessThan(LIMIT_KIB);
    const v = await measured(['verify', join(dir, 'six.swu'), '--trust', keys.cert, '--aes-key', keys.aes, '-q']);
    console.log(`verify (decrypt + decompress 6 GiB): peak RSS ${(v.rssKiB / 1024).toFixed(1)} MiB, ${v.seconds} s`);
    expect(v.code, v.stderr).toBe(0);
    expect(v.rssKiB).toBeLessThan(LIMIT_KIB);
  }, 900_000);

  test('convert of a sparse 4 GiB image', async () => {
    const dir = tmp('otapack-large-');
    const keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
    // a Buildroot-shaped 4 GiB disk written sparsely in place: FAT boot + a 4 GiB ext4 root
    const img = join(dir, 'big.img');
    const rootStart = 2048 + 65536;
    const rootSectors = 8 * 1024 * 1024 - 65536 - 2048; // the disk is exactly 4 GiB
    writeFileSync(img, '');
    truncateSync(img, (rootStart + rootSectors) * 512);
    await execa('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', img], { input: `label: dos\nstart=2048, size=65536, type=c, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n` });
    await execa('mkfs.vfat', ['-F', '16', '--offset', '2048', '-n', 'BOOT', img, String(65536 / 2)]);
    const cmd = join(dir, 'boot.cmd');
    writeFileSync(cmd, 'setenv bootargs console=ttyAMA0 root=/dev/mmcblk0p2 rootwait\nload ${devtype} ${devnum}:1 ${kernel_addr_r} Image\nbooti ${kernel_addr_r} - ${fdt_addr}\n');
    await execa('mkimage', ['-A', 'arm64', '-T', 'script', '-C', 'none', '-d', cmd, join(dir, 'boot.scr')]);
    await execa('mcopy', ['-i', `${img}@@${2048 * 512}`, join(dir, 'boot.scr'), '::/boot.scr'], { env: { MTOOLS_SKIP_CHECK: '1' } });
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc/fstab'), '/dev/root / ext4 defaults 0 1\n');
    await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', `offset=${rootStart * 512}`, '-d', tree, img, `${Math.floor((rootSectors * 512) / 4096)}`, '-b', '4096']);
    const r = await measured(['convert', img, '-o', join(dir, 'out'), '--key', keys.key, '--cert', keys.cert, '-q', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    console.log(`convert 4 GiB sparse: peak RSS ${(r.rssKiB / 1024).toFixed(1)} MiB, ${r.seconds} s, output disk ${(report.outputs.image.size / 2 ** 30).toFixed(2)} GiB (${(report.outputs.image.allocated / 2 ** 20).toFixed(0)} MiB allocated)`);
    expect(report.outputs.image.size).toBeGreaterThan(8 * 1024 ** 3);
    expect(r.rssKiB).toBeLessThan(LIMIT_KIB);
  }, 1_200_000);
});
