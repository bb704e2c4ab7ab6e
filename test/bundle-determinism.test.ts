// Same inputs and SOURCE_DATE_EPOCH give byte-identical bundles: unsigned always, encrypted with
// --reproducible, and signed with RSA PKCS#1 v1.5 (a deterministic scheme) when the signing time
// comes from SOURCE_DATE_EPOCH. Each claim has a twin showing the test could fail.
import { describe, test, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { swupdateOk } from './helpers/swupdate.js';
import { keygen, makeExt4, writeSpec, abSpec, type KeyDir } from './helpers/bundle-fixtures.js';

let dir: string;
let keys: KeyDir;
let spec: string;
let encSpec: string;
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const env = { SOURCE_DATE_EPOCH: '1700000000' };

beforeAll(async () => {
  dir = tmp();
  keys = await keygen(join(dir, 'k'), ['--type', 'rsa2048']);
  const payload = await makeExt4(join(dir, 'rootfs.ext4'), 6);
  spec = writeSpec(dir, 'plain.yaml', abSpec({ slotA: '/dev/mmcblk0p2', slotB: '/dev/mmcblk0p3', file: payload, compress: 'zstd' }));
  encSpec = writeSpec(dir, 'enc.yaml', abSpec({ slotA: '/dev/mmcblk0p2', slotB: '/dev/mmcblk0p3', file: payload, compress: 'zlib', encrypt: true }));
});

const build = async (name: string, args: string[], e: Record<string, string | undefined> = env): Promise<string> => {
  const out = join(dir, name);
  const r = await otapack(['bundle', ...args, '-o', out], { env: e });
  expect(r.code, r.stderr).toBe(0);
  return out;
};

describe('deterministic bundles', () => {
  test('unsigned: byte-identical across runs, with SOURCE_DATE_EPOCH in every cpio mtime', async () => {
    const a = await build('u1.swu', [spec, '--unsigned']);
    const b = await build('u2.swu', [spec, '--unsigned']);
    expect(sha(a)).toBe(sha(b));
    // mtime field of the first header is the epoch
    expect(parseInt(readFileSync(a).subarray(46, 54).toString(), 16)).toBe(1700000000);
    const c = await build('u3.swu', [spec, '--unsigned'], { SOURCE_DATE_EPOCH: '1700000001' });
    expect(sha(c)).not.toBe(sha(a));
  });

  test('encrypted: random ivts differ by default, --reproducible makes them identical and still valid', async () => {
    const a = await build('e1.swu', [encSpec, '--unsigned', '--aes-key', keys.aes]);
    const b = await build('e2.swu', [encSpec, '--unsigned', '--aes-key', keys.aes]);
    expect(sha(a)).not.toBe(sha(b));
    const c = await build('e3.swu', [encSpec, '--unsigned', '--aes-key', keys.aes, '--reproducible']);
    const d = await build('e4.swu', [encSpec, '--unsigned', '--aes-key', keys.aes, '--reproducible']);
    expect(sha(c)).toBe(sha(d));
    const v = await otapack(['verify', c, '--allow-unsigned', '--aes-key', keys.aes]);
    expect(v.code, v.stderr).toBe(0);
  });

  test('--reproducible without SOURCE_DATE_EPOCH: signed and encrypted, identical across runs at different times, the same as SOURCE_DATE_EPOCH=1704067200, and the client accepts it', async () => {
    const args = [encSpec, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--reproducible'];
    const noEpoch = { SOURCE_DATE_EPOCH: undefined };
    const a = await build('n1.swu', args, noEpoch);
    await sleep(1100);
    const b = await build('n2.swu', args, noEpoch);
    expect(sha(b)).toBe(sha(a));
    expect(sha(await build('n3.swu', args, { SOURCE_DATE_EPOCH: '1704067200' }))).toBe(sha(a));
    // the twin: without --reproducible the signing time (and the ivt) come from the clock and chance
    const c = await build('n4.swu', args.slice(0, -1), noEpoch);
    expect(sha(c)).not.toBe(sha(a));
    // the fixed signing time (2024-01-01) is older than this certificate: the client does not mind
    const r = await swupdateOk(a, { check: true, cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2' });
    expect(r.ok, r.output).toBe(true);
  });

  test('signed with RSA PKCS#1 v1.5: identical with SOURCE_DATE_EPOCH, and the client accepts it', async () => {
    const args = [encSpec, '--key', keys.key, '--cert', keys.cert, '--aes-key', keys.aes, '--reproducible'];
    const a = await build('s1.swu', args);
    const b = await build('s2.swu', args);
    expect(sha(a)).toBe(sha(b));
    const r = await swupdateOk(a, { check: true, cert: keys.cert, aesKey: keys.aes, select: 'stable,copy2' });
    expect(r.ok, r.output).toBe(true);
  });
});
