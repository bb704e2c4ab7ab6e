// The device-side otapack-env (templates/device/otapack-env), run on the host against real env
// files: U-Boot through Debian's libubootenv fw_setenv/fw_printenv (what SWUpdate -B uboot uses),
// GRUB through its shell fallback under BusyBox (no grub-editenv on the device) and judged by
// grub-editenv. The QEMU boot test found that `fw_setenv -s` with U-Boot's "name value" script
// lines exits 0 and changes nothing with libubootenv 0.3.2, so no commit ever stuck.
import { describe, expect, test, beforeAll } from 'vitest';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tmp } from './helpers/run.js';
import { requires } from './helpers/require-tool.js';

const TEMPLATE = readFileSync(join(ROOT, 'templates/device/otapack-env'), 'utf8');

/** otapack-env with its slots.conf moved to `dir`, and a PATH whose fw_* tools use `dir`'s config. */
function install(dir: string, slotsConf: string, fwConfig?: string): { script: string; path: string } {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'slots.conf'), slotsConf);
  const script = join(dir, 'otapack-env');
  writeFileSync(script, TEMPLATE.split('/etc/otapack/slots.conf').join(join(dir, 'slots.conf')));
  chmodSync(script, 0o755);
  if (fwConfig) {
    for (const t of ['fw_setenv', 'fw_printenv']) {
      writeFileSync(join(dir, 'bin', t), `#!/bin/sh\nexec /usr/bin/${t} -c ${fwConfig} "$@"\n`);
      chmodSync(join(dir, 'bin', t), 0o755);
    }
  }
  return { script, path: `${join(dir, 'bin')}:${process.env.PATH}` };
}

async function printenv(cfg: string): Promise<Record<string, string>> {
  const r = await execa('fw_printenv', ['-c', cfg]);
  return Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('otapack-env with U-Boot (libubootenv fw_setenv)', () => {
  let dir: string;
  let cfg: string;
  let env: { script: string; path: string };
  beforeAll(async () => {
    dir = tmp('otapack-env-');
    const txt = join(dir, 'env.txt');
    writeFileSync(txt, 'rootpart=3\nupgrade_available=1\nbootcount=2\nbootlimit=2\nustate=1\nkeep=me\n');
    await execa('mkenvimage', ['-s', '0x4000', '-o', join(dir, 'otapack.env'), txt]);
    cfg = join(dir, 'fw_env.config');
    writeFileSync(cfg, `${join(dir, 'otapack.env')} 0x0000 0x4000\n`);
    env = install(dir, 'BOOTLOADER=uboot\n', cfg);
  });

  test('set writes every variable (the commit: upgrade_available=0 bootcount=0) and get reads them back', async () => {
    const r = await execa(env.script, ['set', 'upgrade_available=0', 'bootcount=0', 'note=a b=c'], { env: { PATH: env.path }, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await printenv(cfg)).toEqual({ rootpart: '3', upgrade_available: '0', bootcount: '0', bootlimit: '2', ustate: '1', keep: 'me', note: 'a b=c' });
    expect((await execa(env.script, ['get', 'note'], { env: { PATH: env.path } })).stdout).toBe('a b=c');
    // an empty value deletes, as with fw_setenv itself
    expect((await execa(env.script, ['set', 'note='], { env: { PATH: env.path }, reject: false })).exitCode).toBe(0);
    expect(await printenv(cfg)).not.toHaveProperty('note');
  });

  test('a write that cannot happen fails (non-zero exit), so otapack-commit cannot claim a commit', async () => {
    const bad = join(dir, 'bad');
    const broken = install(bad, 'BOOTLOADER=uboot\n', join(bad, 'missing.config'));
    const r = await execa(broken.script, ['set', 'upgrade_available=0', 'bootcount=0'], { env: { PATH: broken.path }, reject: false });
    expect(r.exitCode).not.toBe(0);
  });
});

describe('otapack-env with GRUB (shell fallback under BusyBox, judged by grub-editenv)', () => {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((b) => existsSync(b));
  const haveBusybox = requires({ what: 'otapack-env under BusyBox', checks: [['busybox', !!busybox]], tools: ['grub-editenv'], install: 'apt-get install busybox-static grub-common' });
  test.skipIf(!haveBusybox)('set rewrites the 1 KiB grubenv block, keeps the other variables, and grub-editenv reads it', async () => {
    const dir = tmp('otapack-grubenv-');
    const grubenv = join(dir, 'grubenv');
    await execa('grub-editenv', [grubenv, 'create']);
    await execa('grub-editenv', [grubenv, 'set', 'rootpart=3', 'upgrade_available=1', 'bootcount=1', 'bootlimit=2']);
    // a PATH of BusyBox applets only: no grub-editenv, like the device
    const env = install(dir, `BOOTLOADER=grub\nGRUBENV=${grubenv}\n`);
    for (const a of ['sh', 'sed', 'head', 'grep', 'wc', 'tr', 'mv', 'rm', 'sync', 'cat', 'echo']) symlinkSync(busybox!, join(dir, 'bin', a));
    const r = await execa(join(dir, 'bin', 'sh'), [env.script, 'set', 'upgrade_available=0', 'bootcount=0'], { env: { PATH: join(dir, 'bin') }, reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(grubenv).length).toBe(1024);
    const list = (await execa('grub-editenv', [grubenv, 'list'])).stdout.split('\n').sort();
    expect(list).toEqual(['bootcount=0', 'bootlimit=2', 'rootpart=3', 'upgrade_available=0']);
    expect((await execa(join(dir, 'bin', 'sh'), [env.script, 'get', 'rootpart'], { env: { PATH: join(dir, 'bin') } })).stdout).toBe('3');
  });
});
