// Rehearses the A/B scenario the converter's boot test will run, on a hand-built A/B disk
// (test/helpers/guest-ab.ts): the real arm64 SWUpdate client in the guest installs a signed
// bundle from /data into the other slot with -B uboot -e stable,copy2, the boot script counts the
// trial boot, the guest commits it; and a broken update (panics before any health check) is
// rolled back by the boot loader after bootlimit failed boots, all in one QEMU process each.
// When `otapack convert` lands, its output replaces buildAbRehearsalDisk; the rest stays.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAbRehearsalDisk, makeSlotImage } from '../helpers/guest-ab.js';
import { makeTestBundle } from '../helpers/guest-bundle.js';
import { readUbootEnv, writeTestInput } from '../helpers/guest.js';
import { bootQemu, describeBoot } from '../helpers/qemu.js';

const WORK = mkdtempSync(join(process.env.OTAPACK_TEST_TMP ?? tmpdir(), 'otapack-ab-'));
afterAll(() => { if (!process.env.OTAPACK_KEEP_BOOT_WORK) rmSync(WORK, { recursive: true, force: true }); });

async function scenario(name: string, broken: boolean) {
  const dir = join(WORK, name);
  const disk = await buildAbRehearsalDisk({ dir, name, bootlimit: 2 });
  const image = await makeSlotImage(disk, join(dir, 'rootfs-v2.ext4'), { version: 'B-2', broken });
  const b = await makeTestBundle(join(dir, 'bundle'), {
    payload: image, compress: 'zlib', copy1: '/dev/vda2', copy2: '/dev/vda3',
    bootenv1: { rootpart: '2', upgrade_available: '1', bootcount: '0' },
    bootenv2: { rootpart: '3', upgrade_available: '1', bootcount: '0' },
  });
  await writeTestInput(disk, 4, {
    files: { 'update.swu': readFileSync(b.swu), 'signer.crt': readFileSync(b.cert) },
    swupdateArgs: '-k /data/otapack-test/signer.crt -H otapack:1.0 -B uboot -e stable,copy2',
    boots: { 1: ['update', 'reboot'], 2: ['commit'] },
  }, dir);
  const t0 = Date.now();
  const r = await bootQemu({ arch: 'arm64', disk: disk.path, timeoutMs: 360_000, logFile: join(dir, `${name}.log`), expect: [/OTAPACK-MARKER [^\n]*boot=1/, /OTAPACK-UPDATE result=ok/] });
  console.log(describeBoot(name, r), `(slot image ${(b.payload.length / 2 ** 20).toFixed(0)} MiB, bundle ${(statSync(b.swu).size / 2 ** 20).toFixed(1)} MiB, build+boot ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const t = (re: RegExp): number => Number(r.log.match(re)?.[1] ?? NaN);
  console.log(`${name}: guest install took ${(t(/OTAPACK-UPDATE result=ok rc=\d+ t=([\d.]+)/) - t(/OTAPACK-TEST update: [^\n]* t=([\d.]+)/)).toFixed(1)} s`);
  return { disk, r };
}

describe('A/B rehearsal with the real client in the guest (hand-built A/B disk)', () => {
  it('update A→B, trial boot of B, commit from the guest', async () => {
    const { disk, r } = await scenario('commit', false);
    expect(r.missing, r.log.slice(-4000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect(r.markerFields.map((m) => [m.root, m.version, m.rootpart, m.upgrade_available, m.bootcount])).toEqual([
      ['/dev/vda2', 'A-1', '2', '0', '0'],
      ['/dev/vda3', 'B-2', '3', '1', '1'],
    ]);
    expect(await readUbootEnv(disk, 1)).toMatchObject({ rootpart: '3', upgrade_available: '0', bootcount: '0' });
  }, 600_000);

  it('a broken B panics before its health check and the boot loader falls back to A after bootlimit boots', async () => {
    const { disk, r } = await scenario('rollback', true);
    expect(r.missing, r.log.slice(-4000)).toEqual([]);
    expect(r.exitedCleanly).toBe(true);
    expect((r.log.match(/halt: simulating a broken slot/g) ?? []).length).toBe(2);
    expect(r.log).toMatch(/rehearsal: partition 3 failed 2 trial boots - falling back/);
    expect(r.markerFields.map((m) => [m.root, m.version, m.rootpart, m.upgrade_available])).toEqual([
      ['/dev/vda2', 'A-1', '2', '0'],
      ['/dev/vda2', 'A-1', '2', '0'],
    ]);
    expect(await readUbootEnv(disk, 1)).toMatchObject({ rootpart: '2', upgrade_available: '0', bootcount: '0' });
  }, 600_000);
});
