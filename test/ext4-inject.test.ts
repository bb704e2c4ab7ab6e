// Files injected with debugfs land where a running system would see them (through merged-/usr
// symlinks), with root ownership, the requested modes and fixed times, and e2fsck stays clean.
import { describe, test, expect } from 'vitest';
import { mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { injectEntries } from '../src/fs/ext4-inject.js';
import { statPath, statPaths, readFile, resolvePath, probeExt4, usedRanges } from '../src/fs/ext4.js';
import { tmp } from './helpers/run.js';

/** A rootfs tree with merged /usr (/sbin -> usr/sbin) and an /etc, to be filled by each test. */
function mergedUsrTree(d: string): string {
  const tree = join(d, 'tree');
  mkdirSync(join(tree, 'usr/sbin'), { recursive: true });
  mkdirSync(join(tree, 'etc'), { recursive: true });
  symlinkSync('usr/sbin', join(tree, 'sbin'));
  return tree;
}

describe('ext4 injection with debugfs', () => {
  test('merged /usr, new directories, replacement, symlinks, directories from the host', async () => {
    const d = tmp();
    const tree = mergedUsrTree(d);
    writeFileSync(join(tree, 'etc/fstab'), 'old\n');
    const img = join(d, 'disk.img');
    // the filesystem sits at an offset inside a bigger file, as in a disk image
    await execa('truncate', ['-s', '40M', img]);
    await execa('mke2fs', ['-q', '-t', 'ext4', '-b', '1024', '-O', 'metadata_csum,^64bit', '-E', 'offset=1048576', '-d', tree, img, '16384']);
    const host = join(d, 'hostdir');
    mkdirSync(join(host, 'sub'), { recursive: true });
    writeFileSync(join(host, 'sub/a.txt'), 'A');
    symlinkSync('sub/a.txt', join(host, 'link'));
    const off = 1 << 20;
    await injectEntries(img, off, [
      { path: '/sbin/otapack-x', kind: 'file', data: '#!/bin/sh\n', mode: 0o755 },
      { path: '/etc/fstab', kind: 'file', data: 'new\n', mode: 0o644 },
      { path: '/etc/otapack/deep/dir', kind: 'dir', mode: 0o700 },
      { path: '/etc/otapack/deep/dir/f', kind: 'file', data: 'x', mode: 0o600 },
      { path: '/etc/l', kind: 'symlink', target: '/etc/fstab', mode: 0o777 },
      { path: '/opt/host', kind: 'dir', source: host, mode: 0o755 },
    ], { what: 'test rootfs', timestamp: 1700000000 });
    const w = 'test';
    expect((await statPath(img, off, '/usr/sbin/otapack-x', w))?.mode).toBe(0o755);
    expect((await readFile(img, off, '/etc/fstab', w)).toString()).toBe('new\n');
    expect((await statPath(img, off, '/etc/otapack/deep/dir', w))?.mode).toBe(0o700);
    expect((await statPath(img, off, '/etc/otapack/deep/dir/f', w))?.mode).toBe(0o600);
    expect((await resolvePath(img, off, '/etc/l', w))?.path).toBe('/etc/fstab');
    expect((await readFile(img, off, '/opt/host/sub/a.txt', w)).toString()).toBe('A');
    expect((await statPath(img, off, '/opt/host/link', w))?.target).toBe('sub/a.txt');
    const stat = (await execa('debugfs', ['-R', 'stat /usr/sbin/otapack-x', `${img}?offset=${off}`])).stdout;
    expect(stat).toMatch(/User:\s+0\s+Group:\s+0/);
    expect(stat).toMatch(/mtime: 0x6553f100/);
    const fsck = await execa('e2fsck', ['-fn', `${img}?offset=${off}`], { reject: false });
    expect(fsck.exitCode, fsck.stdout + fsck.stderr).toBe(0);
    // a directory cannot be replaced by a file
    await expect(injectEntries(img, off, [{ path: '/etc/otapack', kind: 'file', data: 'x', mode: 0o644 }], { what: 'test rootfs' })).rejects.toThrow(/is a directory/);
    // used ranges cover the superblock and are within the filesystem
    const info = (await probeExt4(img, off))!;
    const used = await usedRanges(img, off, info);
    expect(used[0]![0]).toBe(0);
    const total = used.reduce((s, [a, b]) => s + b - a, 0);
    expect(total).toBe((info.blocks - info.freeBlocks) * info.blockSize);
  });

  // read-input, detect and inject stat many paths in one debugfs run: each answer must be the one
  // a debugfs run of its own gives (found or absent, type, mode, size, fast-link target)
  test('statPaths (one debugfs run) answers every path as statPath (one run each) does', async () => {
    const d = tmp();
    const tree = mergedUsrTree(d);
    mkdirSync(join(tree, 'etc/deep dir'));
    symlinkSync('/' + 'x'.repeat(80), join(tree, 'etc/slow-link')); // longer than a fast link holds
    writeFileSync(join(tree, 'etc/fstab'), 'proc /proc proc defaults 0 0\n');
    writeFileSync(join(tree, 'etc/deep dir/f'), 'y'.repeat(5000));
    const img = join(d, 'fs.img');
    await execa('truncate', ['-s', '16M', img]);
    await execa('mke2fs', ['-q', '-t', 'ext4', '-d', tree, img]);
    const paths = ['/', '/etc', '/etc/fstab', '/sbin', '/usr/sbin', '/etc/deep dir', '/etc/deep dir/f', '/etc/slow-link', '/nope', '/etc/nope/deeper', '/lost+found', '/etc/fstab'];
    const batch = await statPaths(img, 0, paths, 'test');
    expect(batch.size).toBe(new Set(paths).size);
    for (const p of paths) expect(batch.get(p), p).toEqual(await statPath(img, 0, p, 'test'));
    expect(batch.get('/etc/fstab')?.type).toBe('file');
    expect(batch.get('/sbin')).toMatchObject({ type: 'symlink', target: 'usr/sbin' });
    expect(batch.get('/nope')).toBeUndefined();
    // a cache is asked again only for what it lacks, and resolvePath follows symlinks through it
    const cache = new Map(batch);
    expect((await resolvePath(img, 0, '/sbin', 'test', cache))?.path).toBe('/usr/sbin');
    expect(cache.size).toBe(batch.size);
  });
});
