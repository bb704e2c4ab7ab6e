// convert --client mender (and client: mender): the A/B disk wired for Mender and the first
// .mender for its slots. Checked with the real tools: mender-artifact validates the artifact
// against the public key the device got, its payload is slot A byte for byte, fw_printenv reads
// Mender's variables from the U-Boot env, grub-editenv from GRUB's; debugfs reads the device files.
// And the refusals, at planning time with nothing written: an image without the Mender client
// (named, with what to add), zstd and encryption (Mender reads neither), a key that is not the
// --trust key, a /var/lib/mender with content. About 40 s (three small fixture images, four converts).
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBuildrootImage, buildEfiImage } from './helpers/images.js';
import { expectCleanFailure, otapack, tmp } from './helpers/run.js';
import { requires } from './helpers/require-tool.js';
import { menderArtifact, menderKeys, type KeyPair } from './helpers/mender.js';

const have = requires({ what: 'convert --client mender, judged by mender-artifact', tools: ['mender-artifact', 'fw_printenv', 'grub-editenv', 'debugfs', 'mcopy', 'sfdisk', 'openssl'], install: 'apt-get install mender-artifact libubootenv-tool grub-common e2fsprogs mtools fdisk' });

// stand-ins: convert looks for the client's binaries in the image, it does not run them
const MENDER_BITS = { '/usr/bin/mender': '#!/bin/sh\necho mender stand-in\n', '/usr/bin/fw_printenv': '#!/bin/sh\n', '/usr/bin/fw_setenv': '#!/bin/sh\n' };

interface Parts { number: number; role: string; start: number; size: number; device: string }
const partsOf = (report: string): Parts[] => (JSON.parse(readFileSync(report, 'utf8')) as { output: { partitions: Parts[] } }).output.partitions;

async function ext4File(img: string, p: Parts, path: string): Promise<string | undefined> {
  const r = await execa('debugfs', ['-R', `cat ${path}`, `${img}?offset=${p.start}`], { reject: false });
  return /not found|File not found/.test(r.stderr) ? undefined : r.stdout;
}

describe.skipIf(!have)('convert --client mender', () => {
  const dir = tmp('otapack-convert-mender-');
  let keys: KeyPair;
  let other: KeyPair;
  let uboot: string;
  let bare: string;
  let efi: string;

  beforeAll(async () => {
    [keys, other] = await Promise.all([menderKeys(join(dir, 'k'), 'ec'), menderKeys(join(dir, 'k'), 'rsa', 'other')]);
    const [u, b, e] = await Promise.all([
      buildBuildrootImage(join(dir, 'in-uboot'), { rootfsExtra: MENDER_BITS }),
      buildBuildrootImage(join(dir, 'in-bare')),
      buildEfiImage(join(dir, 'in-efi'), { rootfsExtra: { '/usr/bin/mender': MENDER_BITS['/usr/bin/mender'] } }),
    ]);
    uboot = u.path;
    bare = b.path;
    efi = e.path;
  }, 300_000);

  it('U-Boot: the disk, its boot state in Mender\'s variables, the device files, and a .mender of slot A that mender-artifact validates', async () => {
    const out = join(dir, 'out-uboot');
    const cfg = join(dir, 'uboot.yaml');
    writeFileSync(cfg, 'client: mender\nversion: 1.2.0\nhardware: { board: bitbox-base }\nmender: { artifact-name: release-1 }\nstorage: { device: /dev/mmcblk0, data-size: 16M }\n');
    const r = await otapack(['convert', uboot, '-o', out, '-c', cfg, '--key', keys.key, '--json'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(r.code, r.stderr).toBe(0);
    const name = readdirSync(out).find((f) => f.endsWith('.mender'))!.replace(/\.mender$/, '');
    expect(readdirSync(out).sort()).toEqual([`${name}.bmap`, `${name}.img`, `${name}.json`, `${name}.mender`]);
    const report = JSON.parse(r.stdout) as { client: string; bundle: { format: string; artifactName: string; deviceTypes: string[]; signed: boolean; signatureAlgorithm: string; entries: { sha256: string; size: number }[] }; outputs: { bundle: { path: string } } };
    expect(report.client).toBe('mender');
    expect(report.bundle).toMatchObject({ format: 'mender', artifactName: 'release-1', deviceTypes: ['bitbox-base'], signed: true, signatureAlgorithm: 'ECDSA P-256 / SHA-256' });
    const art = report.outputs.bundle.path;

    // the artifact: mender-artifact's verdict with the device's own key; its payload is slot A
    const img = join(out, `${name}.img`);
    const parts = partsOf(join(out, `${name}.json`));
    const A = parts.find((p) => p.role === 'rootfs-a')!;
    const B = parts.find((p) => p.role === 'rootfs-b')!;
    const data = parts.find((p) => p.role === 'data')!;
    const boot = parts.find((p) => p.role === 'boot')!;
    const devKey = await ext4File(img, A, '/etc/mender/artifact-verify-key.pem');
    expect(devKey).toBe(readFileSync(keys.pub, 'utf8').trim());
    writeFileSync(join(dir, 'device.pub'), `${devKey}\n`);
    const v = await menderArtifact(['validate', '-k', join(dir, 'device.pub'), art]);
    expect(v.code, v.out).toBe(0);
    const read = await menderArtifact(['read', '-k', join(dir, 'device.pub'), art]);
    expect(read.out).toMatch(/Name: release-1/);
    expect(read.out).toMatch(/Compatible devices: '\[bitbox-base\]'/);
    const slotA = Buffer.alloc(A.size);
    const fd = (await import('node:fs')).openSync(img, 'r');
    (await import('node:fs')).readSync(fd, slotA, 0, A.size, A.start);
    (await import('node:fs')).closeSync(fd);
    const slotSha = createHash('sha256').update(slotA).digest('hex');
    expect(read.out).toContain(`checksum: ${slotSha}`);
    expect(report.bundle.entries[0]).toMatchObject({ sha256: slotSha, size: A.size });
    // negative twin: another key is refused by mender-artifact and otapack verify alike
    expect((await menderArtifact(['validate', '-k', other.pub, art])).code).not.toBe(0);
    expect((await otapack(['verify', art, '--trust', other.pub])).code).toBe(1);
    expect((await otapack(['verify', art, '--trust', keys.pub, '--device-type', 'bitbox-base'])).code).toBe(0);

    // boot state: Mender's variables, nothing of SWUpdate's
    writeFileSync(join(dir, 'otapack.env'), (await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, '::/otapack.env', '-'], { encoding: 'buffer' })).stdout);
    writeFileSync(join(dir, 'fw.cfg'), `${join(dir, 'otapack.env')} 0x0 0x4000\n`);
    const env = (await execa('fw_printenv', ['-c', join(dir, 'fw.cfg')])).stdout.split('\n').sort();
    expect(env).toEqual(['bootcount=0', 'bootlimit=3', `mender_boot_part=${A.number}`, `mender_boot_part_hex=${A.number.toString(16)}`, 'upgrade_available=0']);
    const script = (await execa('mcopy', ['-n', '-i', `${img}@@${boot.start}`, '::/otapack/boot.cmd', '-'])).stdout;
    expect(script).toContain('env import -c ${otapack_envaddr} 0x4000 mender_boot_part mender_boot_part_hex upgrade_available bootcount bootlimit');
    expect(script).not.toMatch(/ustate/);

    // device files
    const conf = JSON.parse((await ext4File(img, A, '/etc/mender/mender.conf'))!) as Record<string, string>;
    expect(conf).toEqual({ RootfsPartA: A.device, RootfsPartB: B.device, ArtifactVerifyKey: '/etc/mender/artifact-verify-key.pem' });
    expect(await ext4File(img, A, '/etc/mender/artifact_info')).toBe('artifact_name=release-1');
    expect((await execa('debugfs', ['-R', 'stat /var/lib/mender', `${img}?offset=${A.start}`])).stdout).toMatch(/Type: symlink[\s\S]*Fast link dest: "\/data\/mender"/);
    expect(await ext4File(img, data, '/mender/device_type')).toBe('device_type=bitbox-base');
    expect(await ext4File(img, A, '/etc/fw_env.config')).toMatch(/otapack\.env\t0x0000\t0x4000/);
    const commit = (await ext4File(img, A, '/usr/sbin/otapack-commit'))!;
    expect(commit).toMatch(/^if mender commit; then$/m);
    expect(commit).toMatch(/^\tmender rollback >\/dev\/null 2>&1 \|\| true$/m);
    expect(commit).toContain('/etc/otapack/health.d/*');
    expect(await ext4File(img, A, '/usr/sbin/otapack-update')).toMatch(/exec mender install "\$artifact" "\$@"/);
    expect(await ext4File(img, A, '/usr/sbin/otapack-slot')).toContain('otapack-env get mender_boot_part');
    expect(await ext4File(img, A, '/etc/swupdate.cfg')).toBeUndefined();
  }, 300_000);

  it('GRUB (x86-64 EFI): grubenv in Mender\'s variables, and mender.conf points Mender at otapack\'s environment tools', async () => {
    const out = join(dir, 'out-efi');
    const r = await otapack(['convert', efi, '-o', out, '--client', 'mender', '--key', keys.key, '--trust', keys.pub], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(r.code, r.stderr).toBe(0);
    const name = readdirSync(out).find((f) => f.endsWith('.mender'))!.replace(/\.mender$/, '');
    const img = join(out, `${name}.img`);
    const parts = partsOf(join(out, `${name}.json`));
    const A = parts.find((p) => p.role === 'rootfs-a')!;
    const esp = parts.find((p) => p.role === 'boot')!;
    writeFileSync(join(dir, 'grubenv'), (await execa('mcopy', ['-n', '-i', `${img}@@${esp.start}`, '::/otapack/grubenv', '-'], { encoding: 'buffer' })).stdout);
    expect((await execa('grub-editenv', [join(dir, 'grubenv'), 'list'])).stdout.split('\n').sort()).toEqual(['bootcount=0', 'bootlimit=3', `mender_boot_part=${A.number}`, `mender_boot_part_hex=${A.number.toString(16)}`, 'upgrade_available=0']);
    const conf = JSON.parse((await ext4File(img, A, '/etc/mender/mender.conf'))!) as Record<string, string>;
    expect(conf).toMatchObject({ BootUtilitiesSetActivePart: '/usr/sbin/otapack-mender-setenv', BootUtilitiesGetNextActivePart: '/usr/sbin/otapack-mender-printenv' });
    expect((await execa('debugfs', ['-R', 'stat /usr/sbin/otapack-mender-setenv', `${img}?offset=${A.start}`])).stdout).toMatch(/Fast link dest: "otapack-mender-env"/);
    expect((await menderArtifact(['validate', '-k', keys.pub, join(out, `${name}.mender`)])).code).toBe(0);
  }, 300_000);

  it('an image without the Mender client is refused at planning time, naming what to add; nothing is written', async () => {
    const out = join(dir, 'out-bare');
    const r = await otapack(['convert', bare, '-o', out, '--client', 'mender', '--key', keys.key]);
    expectCleanFailure(r, 4, /no Mender client \(looked for \/usr\/bin\/mender.*BR2_PACKAGE_MENDER.*apt-get install mender-client/);
    expect(existsSync(out)).toBe(false);
    // inspect says the same before anything is run
    const i = await otapack(['inspect', bare, '--client', 'mender']);
    expectCleanFailure(i, 4, /no Mender client/);
    // negative twin: the same image converts for SWUpdate (which is not looked for)
    expect((await otapack(['inspect', bare])).code).toBe(0);
  }, 120_000);

  it('refuses what Mender cannot read (zstd, encryption) and a signing key that is not the --trust key, before writing', async () => {
    const cases: [string, string[], number, RegExp][] = [
      ['client: mender\nupdate: { compress: zstd }\n', [], 3, /update\.compress: zstd: Debian's Mender client 3\.4 reads gzip or uncompressed/],
      ['client: mender\nupdate: { encrypt: true }\n', [], 3, /update\.encrypt: Mender artifacts are not encrypted/],
      ['client: swupdate\nmender: { device-type: x }\n', [], 3, /mender: applies with client: mender/],
      ['client: mender\n', ['--trust', other.pub], 5, /devices would refuse every artifact signed by .*ec\.key: its public key is not the one in --trust/],
      ['client: mender\n', ['--aes-key', keys.key], 2, /--aes-key: Mender artifacts are not encrypted/],
    ];
    for (const [i, [yaml, extra, code, why]] of cases.entries()) {
      const cfg = join(dir, `bad${i}.yaml`);
      writeFileSync(cfg, yaml);
      const out = join(dir, `out-bad${i}`);
      const r = await otapack(['convert', uboot, '-o', out, '-c', cfg, '--key', keys.key, ...extra]);
      expectCleanFailure(r, code, why);
      expect(existsSync(out), yaml).toBe(false);
    }
  }, 120_000);

  it('an empty /var/lib/mender in the image becomes the link to /data/mender; one with content is refused', async () => {
    const copy = async (name: string, cmds: string[]): Promise<string> => {
      const p = join(dir, `${name}.img`);
      await execa('cp', ['--sparse=always', uboot, p]);
      const root = JSON.parse((await execa('sfdisk', ['--json', p])).stdout).partitiontable.partitions[1].start * 512;
      for (const c of cmds) await execa('debugfs', ['-w', '-R', c, `${p}?offset=${root}`]);
      return p;
    };
    const empty = await copy('empty-var-lib-mender', ['mkdir /var/lib/mender']);
    const out = join(dir, 'out-empty');
    const r = await otapack(['convert', empty, '-o', out, '--client', 'mender', '--key', keys.key]);
    expect(r.code, r.stderr).toBe(0);
    const parts = partsOf(join(out, 'empty-var-lib-mender.json'));
    const A = parts.find((p) => p.role === 'rootfs-a')!;
    expect((await execa('debugfs', ['-R', 'stat /var/lib/mender', `${join(out, 'empty-var-lib-mender.img')}?offset=${A.start}`])).stdout).toMatch(/Type: symlink/);
    expect((await execa('e2fsck', ['-fn', `${join(out, 'empty-var-lib-mender.img')}?offset=${A.start}`], { reject: false })).exitCode).toBe(0);
    const full = await copy('full-var-lib-mender', ['mkdir /var/lib/mender', 'mkdir /var/lib/mender/old-store']);
    const f = await otapack(['convert', full, '-o', join(dir, 'out-full'), '--client', 'mender', '--key', keys.key]);
    expectCleanFailure(f, 4, /\/var\/lib\/mender in the rootfs holds 1 entries/);
  }, 120_000);

  it('inspect --client mender shows the artifact, the device files and the data seed', async () => {
    const r = await otapack(['inspect', uboot, '--client', 'mender', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = (JSON.parse(r.stdout) as { plan: { client: string; artifact: { file: string; summary: string }; files: { path: string; pending?: string }[]; clientDataFiles: { path: string }[] } }).plan;
    expect(j.client).toBe('mender');
    expect(j.clientDataFiles.map((f) => f.path)).toEqual(['/mender', '/mender/device_type']);
    expect(j.artifact.file).toMatch(/\.mender$/);
    expect(j.artifact.summary).toMatch(/Mender artifact 1\.0\.0 \(rootfs-image, gzip\) for device type otapack/);
    expect(j.files.find((f) => f.path === '/etc/mender/artifact-verify-key.pem')?.pending).toMatch(/public key/);
  }, 120_000);
});
