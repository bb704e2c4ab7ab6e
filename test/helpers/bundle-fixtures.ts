// Inputs for bundle tests, made with real tools: keys from `otapack keygen` (and openssl for
// the odd cases), an ext4 payload from mke2fs -d, and spec files.
import { execa } from 'execa';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { otapack } from './run.js';

export interface KeyDir { dir: string; key: string; cert: string; aes: string; ca?: string }

export async function keygen(dir: string, extra: string[] = []): Promise<KeyDir> {
  const r = await otapack(['keygen', '--out', dir, '-q', ...extra]);
  if (r.code !== 0) throw new Error(`keygen failed: ${r.stderr}`);
  return {
    dir, key: join(dir, 'signing.key'), cert: join(dir, 'signing.crt'), aes: join(dir, 'aes.key'),
    ca: extra.includes('--ca') ? join(dir, 'ca.crt') : undefined,
  };
}

/** A deterministic tree: text, a pseudo-random blob (incompressible) and zeros, like a rootfs. */
export function makeTree(dir: string, blobBytes = 1 << 20): string {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  mkdirSync(join(dir, 'usr/lib'), { recursive: true });
  writeFileSync(join(dir, 'etc/os-release'), 'NAME=otapack-test\nVERSION_ID=1.0\n');
  writeFileSync(join(dir, 'etc/motd'), 'hello from the payload\n'.repeat(2000));
  const blob = Buffer.alloc(blobBytes);
  let x = 0x12345678;
  for (let i = 0; i < blob.length; i++) { x = (x * 1103515245 + 12345) >>> 0; blob[i] = x >>> 24; }
  writeFileSync(join(dir, 'usr/lib/blob.bin'), blob);
  writeFileSync(join(dir, 'usr/lib/zeros.bin'), Buffer.alloc(blobBytes));
  return dir;
}

/** A real ext4 image populated from a generated tree (≥ 4 MiB so the client's exit code is reliable). */
export async function makeExt4(path: string, sizeMiB = 8, from?: string): Promise<string> {
  from ??= makeTree(`${path}.tree`);
  await execa('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', from, '-E', 'root_owner=0:0', path, `${sizeMiB}M`], {
    env: { E2FSPROGS_FAKE_TIME: '1700000000', MKE2FS_DETERMINISTIC: '1' },
  });
  return path;
}

export function writeSpec(dir: string, name: string, body: string): string {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
}

/** The reference spec shape, with slot devices pointing at files in `dir`. */
export function abSpec(o: { slotA: string; slotB: string; file: string; compress?: string; encrypt?: boolean; extra?: string }): string {
  return `version: "1.0.0"
description: "example update"
hardware-compatibility: ["1.0"]
slots:
  copy1: { device: ${o.slotA}, bootenv: { rootpart: "2" } }
  copy2: { device: ${o.slotB}, bootenv: { rootpart: "3", upgrade_available: "1", bootcount: "0" } }
images:
  - file: ${o.file}
    type: raw
    compress: ${o.compress ?? 'zstd'}
    encrypt: ${o.encrypt ? 'true' : 'false'}
${o.extra ?? ''}`;
}
