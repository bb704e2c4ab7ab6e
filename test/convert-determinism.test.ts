// Same input image, config, keys and SOURCE_DATE_EPOCH with --reproducible → byte-identical disk,
// bmap and signed bundle (RSA PKCS#1 v1.5 is deterministic; the signing time and ivts come from
// the inputs). e2fsck, resize2fs, mke2fs and debugfs all stamp times and the data partition's
// mkfs picks a random UUID and hash seed unless told otherwise: each was a differing sector once.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { buildBuildrootImage, buildEfiImage, buildArmbianImage, type FixtureImage } from './helpers/images.js';

let dir: string;
let keys: KeyDir;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(async () => {
  dir = tmp();
  keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
});

let lastStderr = '';
async function convert(img: FixtureImage, out: string, epoch: string | undefined, env: Record<string, string> = {}, flags = ['--reproducible']): Promise<Record<string, string>> {
  const r = await otapack(['convert', img.path, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, ...flags, '-q'], { env: { SOURCE_DATE_EPOCH: epoch, ...env } });
  expect(r.code, r.stderr).toBe(0);
  lastStderr = r.stderr;
  const base = img.path.replace(/^.*\//, '').replace(/\.img$/, '');
  const sums = Object.fromEntries(['img', 'bmap', 'swu'].map((x) => [x, sha(join(out, `${base}.${x}`))]));
  // without --image-sha256 the report leaves the whole image's digest out; the others are real
  const report = JSON.parse(readFileSync(join(out, `${base}.json`), 'utf8')) as { outputs: Record<string, { sha256: string | null }> };
  expect(report.outputs.image!.sha256).toBeNull();
  expect([report.outputs.bmap!.sha256, report.outputs.bundle!.sha256]).toEqual([sums.bmap, sums.swu]);
  return sums;
}

describe('convert --reproducible', () => {
  for (const [name, build] of [['Buildroot (MBR, U-Boot)', buildBuildrootImage], ['x86-64 EFI (GPT, GRUB)', buildEfiImage]] as const) {
    test(`${name}: disk, bmap and signed bundle are byte-identical across runs; another SOURCE_DATE_EPOCH changes them`, async () => {
      const img = await build(join(dir, name.replace(/\W+/g, '_')));
      const a = await convert(img, join(dir, `${img.layout}-1`), '1700000000');
      const b = await convert(img, join(dir, `${img.layout}-2`), '1700000000');
      expect(b).toEqual(a);
      // the twin that shows the comparison can fail: a later epoch stamps the filesystems differently
      const c = await convert(img, join(dir, `${img.layout}-3`), '1800000000');
      expect(c.img).not.toBe(a.img);
      expect(c.swu).not.toBe(a.swu);
    });
  }
});

// --reproducible is reproducible by itself: without SOURCE_DATE_EPOCH every time otapack would
// take from the clock is the documented fixed time, 2024-01-01T00:00:00Z (src/util/reproducible.ts).
test('--reproducible without SOURCE_DATE_EPOCH: byte-identical across folders and wall-clock times, the same as SOURCE_DATE_EPOCH=1704067200', async () => {
  const img = await buildBuildrootImage(join(dir, 'no-epoch'));
  const a = await convert(img, join(dir, 'no-epoch-1'), undefined);
  await sleep(1100); // every timestamp the tools could take from the clock moves on
  const b = await convert(img, join(dir, 'elsewhere/no-epoch-2'), undefined);
  expect(b).toEqual(a);
  expect(await convert(img, join(dir, 'no-epoch-3'), '1704067200')).toEqual(a);
  const v = await otapack(['verify', join(dir, 'no-epoch-1', `${img.path.replace(/^.*\//, '').replace(/\.img$/, '')}.swu`), '--trust', keys.cert, '--aes-key', keys.aes, '--json']);
  expect(v.code, v.stderr).toBe(0);
  expect((JSON.parse(v.stdout) as { signature: { signers: { signingTime: string }[] } }).signature.signers[0]!.signingTime).toBe('2024-01-01T00:00:00.000Z');
  // the twin that shows the comparison can fail: without --reproducible the clock shows through
  const c = await convert(img, join(dir, 'no-epoch-4'), undefined, {}, []);
  await sleep(1100);
  const d = await convert(img, join(dir, 'no-epoch-5'), undefined, {}, []);
  expect(d.img).not.toBe(c.img);
  expect(d.swu).not.toBe(c.swu);
});

test('--reproducible without SOURCE_DATE_EPOCH for the other layouts: EFI (GRUB, ESP) and Armbian (a new FAT boot partition)', async () => {
  for (const [name, build] of [['efi', buildEfiImage], ['armbian', buildArmbianImage]] as const) {
    const img = await build(join(dir, `no-epoch-${name}`));
    const a = await convert(img, join(dir, `no-epoch-${name}-1`), undefined);
    await sleep(1100);
    const b = await convert(img, join(dir, `no-epoch-${name}-2`), undefined);
    expect(b, name).toEqual(a);
  }
});

// Slot A is grown in place: resize2fs runs with stdin closed, so it never truncates the disk image
// to the filesystem's size (fs/ext4.ts). The fallback grows a copy of the rootfs and copies it in.
// Both must give the very same disk, for a rootfs filled far enough that a cut would show.
test('slot A grown in place and grown in a copy (OTAPACK_RESIZE=copy) give byte-identical outputs', async () => {
  let x = 0x9e3779b9;
  let filler = '';
  while (filler.length < 40 << 20) { x = (x * 1103515245 + 12345) >>> 0; filler += x.toString(36).padStart(7, '0'); }
  const img = await buildBuildrootImage(join(dir, 'filled'), { p1StartSector: 32768, rootfsExtra: { '/usr/share/filler.txt': filler } });
  const inPlace = await convert(img, join(dir, 'filled-in-place'), '1700000000', { OTAPACK_PROFILE: '1' });
  expect(lastStderr).toMatch(/convert: resize2fs/);
  const viaCopy = await convert(img, join(dir, 'filled-copy'), '1700000000', { OTAPACK_PROFILE: '1', OTAPACK_RESIZE: 'copy' });
  expect(lastStderr).not.toMatch(/convert: resize2fs/);
  expect(viaCopy).toEqual(inPlace);
});
