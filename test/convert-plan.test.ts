// The conversion plan is pure and complete: from what was read of an input (read-input.ts) and a
// config it decides the layout, every boot file and patched line, every file installed into the
// slots, the data seed and the update artifact — and every refusal happens there, before a byte is
// written. Facts are read once from real fixture images; each row then plans from them (or from a
// deliberately damaged copy of them) without touching a file.
import { describe, test, expect, beforeAll } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBuildrootImage, buildArmbianImage, buildEfiImage } from './helpers/images.js';
import { tmp } from './helpers/run.js';
import { detectLayout } from '../src/convert/detect.js';
import { readInput, type InputFacts } from '../src/convert/read-input.js';
import { planConversion, type ConvertPlan } from '../src/convert/plan.js';
import { loadConvertConfig, type ConvertConfig } from '../src/convert/config.js';
import { clientById } from '../src/clients/index.js';
import { decodeScriptImage } from '../src/boot/uboot-image.js';
import { decodeUbootEnv } from '../src/boot/uboot-env.js';

const dir = tmp('otapack-plan-');
const facts: Record<string, InputFacts> = {};
const defaults = async (yaml?: string): Promise<ConvertConfig> => {
  if (!yaml) return loadConvertConfig(undefined);
  const f = join(dir, `c${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(f, yaml);
  return loadConvertConfig(f);
};
const plan = async (name: string, yaml?: string, mutate?: (f: InputFacts) => InputFacts): Promise<ConvertPlan> => {
  const base = facts[name]!;
  // copies of what the rows change (a structured clone would turn Buffers into Uint8Arrays)
  const f = mutate ? mutate({ ...base, layout: { ...base.layout }, board: { ...base.board } }) : base;
  return planConversion(f, await defaults(yaml), { client: clientById('swupdate'), keys: { trustPem: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n' }, timestamp: 1700000000 });
};

beforeAll(async () => {
  const images = {
    buildroot: await buildBuildrootImage(join(dir, 'b')),
    extlinux: await buildBuildrootImage(join(dir, 'x'), { bootKind: 'extlinux' }),
    armbian: await buildArmbianImage(join(dir, 'a')),
    efi: await buildEfiImage(join(dir, 'e')),
  };
  for (const [k, fx] of Object.entries(images)) facts[k] = await readInput(fx.path, await detectLayout(fx.path));
}, 300_000);

describe('the plan decides everything convert writes', () => {
  test.each([
    // name, expected bootloader, boot files written, files moved aside, rootfs boot files, a new boot partition
    ['buildroot', 'uboot', ['/otapack/board.scr', '/otapack/board.cmd', '/boot.scr', '/otapack/boot.cmd', '/otapack.env'], [], [], false],
    ['extlinux', 'uboot', ['/otapack/extlinux.conf', '/boot.scr', '/otapack/boot.cmd', '/otapack.env'], ['/extlinux/extlinux.conf'], [], false],
    ['armbian', 'uboot', ['/boot.scr', '/otapack/boot.cmd', '/otapack.env'], [], ['/boot/boot.scr'], true],
    ['efi', 'grub', ['/otapack/board.cfg', '/EFI/BOOT/grub.cfg', '/otapack/grubenv'], [], [], false],
  ] as const)('%s: boot files, moves, patched rootfs files, partition', async (name, bootloader, writes, removes, rootfsFiles, format) => {
    const p = await plan(name);
    expect(p.boot.bootloader).toBe(bootloader);
    expect(p.boot.writes.map((w) => w.path).sort()).toEqual([...writes].sort());
    expect(p.boot.remove).toEqual(removes);
    expect(p.boot.rootfsFiles.map((f) => f.path).filter((x) => !x.endsWith('.cmd'))).toEqual(rootfsFiles);
    expect(!!p.boot.format).toBe(format);
    expect(p.createBootPartition).toBe(format);
    // every patched line names its file, and every edit is visible in the written bytes
    expect(p.boot.edits.length).toBeGreaterThan(0);
    for (const e of p.boot.edits) {
      const written = [...p.boot.writes.map((w) => w.data), ...p.boot.rootfsFiles.map((f) => f.data!)]
        .map((d) => (Buffer.isBuffer(d) && d.readUInt32BE(0) === 0x27051956 ? decodeScriptImage(d).text : d.toString()));
      for (const part of e.after.split(' + ')) expect(written.some((t) => t.includes(part)), `${e.file}: ${part}`).toBe(true);
      expect(written.some((t) => t.split('\n').includes(e.before)), `${e.file}: ${e.before} still there`).toBe(false);
    }
    // the device files come from the plan, including the client's, with their bytes
    const paths = p.files.map((f) => f.path);
    for (const f of ['/etc/fstab', '/etc/otapack/slots.conf', '/etc/otapack/trust.pem', '/etc/swupdate.cfg', '/etc/hwrevision', '/usr/sbin/otapack-update']) expect(paths).toContain(f);
    expect(paths).toContain(bootloader === 'uboot' ? '/etc/fw_env.config' : '/boot/grub');
    expect(p.files.find((f) => f.path === '/etc/swupdate.cfg')!.data).toContain(`bootloader = "${bootloader}";`);
    expect(p.artifact.file).toBe(`${p.name}.swu`);
  });

  test('the initial A/B state file says slot A, with the bootlimit from the config', async () => {
    const p = await plan('buildroot', 'bootlimit: 5\n');
    const env = decodeUbootEnv(Buffer.from(p.boot.writes.find((w) => w.path === '/otapack.env')!.data));
    const A = p.partitions.find((x) => x.role === 'rootfs-a')!;
    expect(env.vars).toMatchObject({ rootpart: String(A.number), bootlimit: '5', upgrade_available: '0', bootcount: '0' });
  });

  test.each([
    ['no keys (inspect): key files are pending, never empty', { pending: true }, 'pending'],
    ['keys: the trust anchor is in the plan', { trustPem: 'PEM' }, 'data'],
  ] as const)('%s', async (_n, keys, field) => {
    const p = planConversion(facts.buildroot!, await defaults('update:\n  encrypt: true\n  install-aes-key: true\n'), { client: clientById('swupdate'), keys: { ...keys, aesKeyLine: 'pending' in keys ? undefined : 'k i\n' } });
    const trust = p.files.find((f) => f.path === '/etc/otapack/trust.pem')!;
    const aes = p.files.find((f) => f.path === '/etc/otapack/aes.key')!;
    expect(trust[field]).toBeDefined();
    expect(aes.secret).toBe(true);
    expect(aes[field]).toBeDefined();
  });

  test('the artifact installs slot A into either slot and starts a trial boot there', async () => {
    const p = await plan('buildroot', 'update:\n  compress: zlib\n  collection: prod\n');
    const spec = p.artifact.spec as { collection: string; slots: { name: string; device: string; bootenv: Record<string, string> }[]; artifacts: { compress: string }[] };
    const [A, B] = ['rootfs-a', 'rootfs-b'].map((r) => p.partitions.find((x) => x.role === r)!);
    expect(spec.collection).toBe('prod');
    expect(spec.artifacts[0]!.compress).toBe('zlib');
    expect(spec.slots).toEqual([
      { name: 'copy1', device: A!.device, bootenv: { rootpart: String(A!.number), upgrade_available: '1', bootcount: '0' } },
      { name: 'copy2', device: B!.device, bootenv: { rootpart: String(B!.number), upgrade_available: '1', bootcount: '0' } },
    ]);
  });
});

describe('every refusal happens at planning time', () => {
  test.each([
    ['a boot.scr whose data CRC is wrong', 'buildroot', undefined, (f: InputFacts) => {
      if (f.board.kind === 'uboot-script' && f.board.image) { f.board.image = Buffer.from(f.board.image); f.board.image[f.board.image.length - 1]! ^= 0xff; }
      return f;
    }, /boot\.scr on the boot partition is not a valid U-Boot script image/],
    ['a boot partition with a second extlinux.conf distro boot would start', 'buildroot', undefined, (f: InputFacts) => {
      f.layout.bootFiles = [...f.layout.bootFiles, '/extlinux/extlinux.conf'];
      return f;
    }, /holds \/extlinux\/extlinux\.conf besides \/boot\.scr; U-Boot would boot it/],
    ['a slot too small for the rootfs', 'buildroot', 'storage:\n  slot-size: 8M\n', undefined, /slot-size 8 MiB is too small/],
    ['a bootloader the image does not have', 'efi', 'bootloader: uboot\n', undefined, /bootloader: uboot was asked for, but this image boots with GRUB/],
    ['a disk size the slots do not fit', 'buildroot', 'storage:\n  total-size: 64M\n', undefined, /total-size 64 MiB is too small/],
  ] as const)('%s', async (_n, name, yaml, mutate, message) => {
    await expect(plan(name, yaml, mutate as ((f: InputFacts) => InputFacts) | undefined)).rejects.toThrow(message);
  });
});
