// Files injected with debugfs land where a running system would see them (through merged-/usr
// symlinks), with root ownership, the requested modes and fixed times, and e2fsck stays clean.
import { describe, test, expect } from 'vitest';
import { mkdirSync, writeFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { injectEntries } from '../src/fs/ext4-inject.js';
import { statPath, readFile, resolvePath, probeExt4, usedRanges } from '../src/fs/ext4.js';
import { tmp } from './helpers/run.js';

describe('ext4 injection with debugfs', () => {
  test('merged /usr, new directories, replacement, symlinks, directories from the host', async () => {
    const d = tmp();
    const tree = join(d, 'tree');
    mkdirSync(join(tree, 'usr/sbin'), { recursive: true });
    mkdirSync(join(tree, 'etc'), { recursive: true });
    symlinkSync('usr/sbin', join(tree, 'sbin'));
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
});
