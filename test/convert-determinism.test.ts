// Same input image, config, keys and SOURCE_DATE_EPOCH with --reproducible → byte-identical disk,
// bmap and signed bundle (RSA PKCS#1 v1.5 is deterministic; the signing time and ivts come from
// the inputs). e2fsck, resize2fs, mke2fs and debugfs all stamp times and the data partition's
// mkfs picks a random UUID and hash seed unless told otherwise: each was a differing sector once.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { keygen, type KeyDir } from './helpers/bundle-fixtures.js';
import { buildBuildrootImage, buildEfiImage, type FixtureImage } from './helpers/images.js';

let dir: string;
let keys: KeyDir;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

beforeAll(async () => {
  dir = tmp();
  keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
});

async function convert(img: FixtureImage, out: string, epoch: string): Promise<Record<string, string>> {
  const r = await otapack(['convert', img.path, '-o', out, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--reproducible', '-q'], { env: { SOURCE_DATE_EPOCH: epoch } });
  expect(r.code, r.stderr).toBe(0);
  const base = img.path.replace(/^.*\//, '').replace(/\.img$/, '');
  return Object.fromEntries(['img', 'bmap', 'swu'].map((x) => [x, sha(join(out, `${base}.${x}`))]));
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
