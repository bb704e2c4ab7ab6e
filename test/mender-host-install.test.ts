// The real Mender client 3.4 installs otapack's artifacts on this host: loop-device slots, the
// boot environment in a U-Boot env file (fw_printenv/fw_setenv -c), /etc/mender bind-mounted in a
// private mount namespace (shared/reference next-formats §C). It refuses the unsigned, the
// wrongly signed, the wrong device type and the tampered; installs release 2 into slot B byte for
// byte and commits it after the "reboot"; installs release 3 into A and rolls it back from the
// trial boot; and, after a boot loader fallback, `mender rollback` (what the device's
// otapack-commit runs then) closes the unfinished install (its state in Mender's database) and
// the next install goes through.
// About 15 s (8 MiB slots, ~20 client runs). Needs root and loop devices.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { copyFileSync, openSync, readSync, writeSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { otapack, tmp } from './helpers/run.js';
import { makeExt4, makeTree, writeSpec } from './helpers/bundle-fixtures.js';
import { requires } from './helpers/require-tool.js';
import { MenderHost, menderKeys, type KeyPair } from './helpers/mender.js';

const have = requires({
  what: 'the Mender client installing into loop-device slots', tools: ['mender', 'losetup', 'unshare', 'fw_printenv', 'fw_setenv', 'mkenvimage', 'openssl'], root: true,
  checks: [['a free loop device', (() => { try { return !!execFileSync('losetup', ['-f'], { encoding: 'utf8' }).trim(); } catch { return false; } })()]],
  install: 'apt-get install mender-client libubootenv-tool u-boot-tools; run as root',
});

const SIZE = 8 << 20;

describe.skipIf(!have)('Mender 3.4 installs, commits and rolls back otapack artifacts (loop-device slots)', () => {
  const dir = tmp('otapack-mender-host-');
  let host: MenderHost;
  let rsa: KeyPair;
  let other: KeyPair;
  const art: Record<string, string> = {};
  const img: Record<string, string> = {};

  beforeAll(async () => {
    [rsa, other] = await Promise.all([menderKeys(join(dir, 'k'), 'rsa'), menderKeys(join(dir, 'k'), 'rsa', 'other')]);
    for (const r of ['2', '3']) {
      const tree = makeTree(join(dir, `tree${r}`), 300_000 * Number(r));
      await execa('sh', ['-c', `echo release-${r} > ${join(tree, 'etc/version')}`]);
      img[r] = await makeExt4(join(dir, `rootfs${r}.ext4`), SIZE >> 20, tree);
    }
    const spec = (name: string, r: string, extra = ''): string => writeSpec(dir, `${name}.yaml`, `format: mender\nartifact-name: release-${r}\ndevice-types: [${extra || 'otapack-dev'}]\nimage: rootfs${r}.ext4\n`);
    const build = async (name: string, specFile: string, args: string[]): Promise<void> => {
      art[name] = join(dir, `${name}.mender`);
      const b = await otapack(['bundle', specFile, '-o', art[name]!, ...args]);
      if (b.code !== 0) throw new Error(`${name}: ${b.stderr}`);
    };
    await Promise.all([
      build('r2', spec('r2', '2'), ['--key', rsa.key]),
      build('r3', spec('r3', '3'), ['--key', rsa.key]),
      build('unsigned', spec('unsigned', '2'), ['--unsigned']),
      build('other-key', spec('other-key', '2'), ['--key', other.key]),
      build('other-type', spec('other-type', '2', 'other-dev'), ['--key', rsa.key]),
    ]);
    // a payload byte changed after signing (stored: the byte is the image's)
    const plain = writeSpec(dir, 'plain.yaml', 'format: mender\nartifact-name: release-2\ndevice-types: [otapack-dev]\nimage: rootfs2.ext4\ncompress: none\n');
    await build('plain', plain, ['--key', rsa.key]);
    art.tampered = join(dir, 'tampered.mender');
    copyFileSync(art.plain!, art.tampered);
    const fd = openSync(art.tampered, 'r+');
    const at = readFileSync(art.tampered).indexOf(Buffer.from('hello from the payload'));
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 1;
    writeSync(fd, b, 0, 1, at);
    closeSync(fd);
    host = await MenderHost.create(join(dir, 'host'), { size: SIZE, verifyKey: rsa.pub, deviceType: 'otapack-dev', artifactName: 'release-1' });
  });

  afterAll(async () => { await host?.close(); });

  const slotEquals = async (dev: string, image: string): Promise<boolean> => (await execa('cmp', ['-n', String(SIZE), dev, image], { reject: false })).exitCode === 0;

  it('refuses unsigned, wrongly signed, wrong device type and tampered artifacts; the boot state stays as it was', async () => {
    const before = await host.env();
    const refusals: [string, RegExp][] = [
      ['unsigned', /expecting signed artifact, but no signature file found/],
      ['other-key', /invalid signature: crypto\/rsa: verification error/],
      ['other-type', /not compatible with device otapack-dev/],
      ['tampered', /invalid checksum/],
    ];
    for (const [name, why] of refusals) {
      const r = await host.mender(['install', art[name]!]);
      expect(r.code, `${name}: ${r.out}`).not.toBe(0);
      expect(r.out, name).toMatch(why);
      expect(await host.env(), name).toEqual(before);
    }
  });

  it('installs release 2 into B byte-exact, and commits it after booting B', async () => {
    const r = await host.mender(['install', art.r2!]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/Wrote 8388608\/8388608 bytes to the inactive partition/);
    expect(await slotEquals(host.devB, img['2']!)).toBe(true);
    expect(await slotEquals(host.devA, img['2']!)).toBe(false);
    const B = host.part('B');
    expect(await host.env()).toMatchObject({ mender_boot_part: B, mender_boot_part_hex: Number(B).toString(16), upgrade_available: '1', bootcount: '0' });
    host.boot('B');
    const c = await host.mender(['commit']);
    expect(c.code, c.out).toBe(0);
    expect(await host.env()).toMatchObject({ mender_boot_part: B, upgrade_available: '0' });
    expect((await host.mender(['show-artifact'])).out.trim().split('\n').pop()).toBe('release-2');
    // nothing left to commit (negative twin)
    expect((await host.mender(['commit'])).code).not.toBe(0);
  });

  it('installs release 3 into A and rolls back from its trial boot', async () => {
    const r = await host.mender(['install', art.r3!]);
    expect(r.code, r.out).toBe(0);
    expect(await slotEquals(host.devA, img['3']!)).toBe(true);
    expect(await host.env()).toMatchObject({ mender_boot_part: host.part('A'), upgrade_available: '1' });
    host.boot('A');
    const rb = await host.mender(['rollback']);
    expect(rb.code, rb.out).toBe(0);
    expect(await host.env()).toMatchObject({ mender_boot_part: host.part('B'), upgrade_available: '0' });
    host.boot('B');
    expect((await host.mender(['show-artifact'])).out.trim().split('\n').pop()).toBe('release-2');
  });

  it('after a boot loader fallback, mender rollback (what otapack-commit runs then) closes the unfinished install; the next one goes through', async () => {
    expect((await host.mender(['install', art.r3!])).code).toBe(0);
    // the boot loader gave up on A: back to B, no trial (what the A/B boot logic's fallback writes)
    await host.setEnv({ mender_boot_part: host.part('B'), mender_boot_part_hex: Number(host.part('B')).toString(16), upgrade_available: '0', bootcount: '0' });
    host.boot('B');
    const rb = await host.mender(['rollback']);
    expect(rb.code, rb.out).toBe(0);
    expect(rb.out).toMatch(/No update available, so no rollback needed/);
    expect((await host.mender(['show-artifact'])).out.trim().split('\n').pop()).toBe('release-2');
    const again = await host.mender(['install', art.r3!]);
    expect(again.code, again.out).toBe(0);
  });
});
