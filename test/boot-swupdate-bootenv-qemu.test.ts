// End to end: Debian's real SWUpdate client installs a signed bundle whose `bootenv` is
// trialBootEnv(SWUPDATE_BOOT_SCHEME, 3) into the boot state the A/B logic reads, and the
// bootloader then boots the new slot.
//   U-Boot: swupdate -B uboot writes the env file through libubootenv (/etc/fw_env.config is
//           compiled in, so it is provided inside a private mount namespace), then QEMU boots slot B
//           on trial; fw_setenv (what a commit does on the device) makes it permanent.
//   GRUB:   swupdate -B grub rewrites /boot/grub/grubenv (compiled in; a tmpfs over /boot inside a
//           private mount namespace), then OVMF + GRUB boots slot B on trial.
// Needs root for unshare -m; skipped otherwise, but failed under CI (test/helpers/require-tool.ts).
// Success is judged by SWUpdate's output, not its exit code (racy on small bundles in this build),
// with up to 3 attempts.
import { afterAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeUbootEnv, encodeUbootEnv } from '../src/boot/uboot-env.js';
import { encodeScriptImage } from '../src/boot/uboot-image.js';
import { initialUbootAbEnv, type UbootAbOptions } from '../src/boot/uboot-ab.js';
import { trialBootEnv } from '../src/boot/scheme.js';
import { buildUbootAbScript, parseAbMarkers } from './helpers/boot-ab.js';
import { SWUPDATE_BOOT_SCHEME } from '../src/clients/swupdate/scheme.js';
import { decodeGrubenv, encodeGrubenv } from '../src/boot/grubenv.js';
import { generateGrubAbConfig, initialGrubAbEnv, type GrubAbOptions } from '../src/boot/grub-ab.js';
import { bootOvmf, bootUboot, buildDisk, buildGrubEfi, OVMF_CODE, readFatFile, UBOOT_BIN, writeFatFile } from './helpers/boot-disk.js';
import { makeTmp, must, saveArtifact, tool } from './helpers/boot-tools.js';
import { requires } from './helpers/require-tool.js';

const base = {
  root: true, tools: ['swupdate', 'openssl', 'cpio', 'fw_setenv', 'unshare'],
  checks: [['a private mount namespace (unshare -m)', process.getuid?.() === 0 && tool('unshare', ['-m', 'true']).status === 0]] as [string, boolean][],
  install: 'run as root; apt-get install swupdate openssl cpio libubootenv-tool u-boot-qemu qemu-system-arm ovmf qemu-system-x86',
};
const canUboot = requires({ ...base, what: 'SWUpdate -B uboot into U-Boot under QEMU', files: [UBOOT_BIN], tools: [...base.tools, 'qemu-system-aarch64'] });
const canGrub = requires({ ...base, what: 'SWUpdate -B grub into GRUB under QEMU', files: [OVMF_CODE], tools: [...base.tools, 'qemu-system-x86_64'] });
const tmp = makeTmp('swu-bootenv');
afterAll(() => tmp.cleanup());
const time = 1700000000;

/** A signed bundle (newc cpio: sw-description, .sig, image) that writes `payload` to `target` and sets `bootenv`. */
function makeBundle(dir: string, target: string, bootenv: { name: string; value: string }[]): { swu: string; crt: string } {
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'signer.key');
  const crt = join(dir, 'signer.crt');
  must('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '30', '-subj', '/CN=otapack boot test',
    '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature', '-addext', 'extendedKeyUsage=emailProtection']);
  const payload = Buffer.alloc(64 * 1024, 0x5a);
  writeFileSync(join(dir, 'rootfs.img'), payload);
  const sha = createHash('sha256').update(payload).digest('hex');
  const env = bootenv.map((e) => `{ name = "${e.name}"; value = "${e.value}"; }`).join(', ');
  writeFileSync(join(dir, 'sw-description'), `software = {
  version = "1.0.0";
  hardware-compatibility = [ "1.0" ];
  images: ( { filename = "rootfs.img"; type = "raw"; device = "${target}"; sha256 = "${sha}"; } );
  bootenv: ( ${env} );
};
`);
  must('openssl', ['cms', '-sign', '-in', join(dir, 'sw-description'), '-out', join(dir, 'sw-description.sig'), '-signer', crt, '-inkey', key, '-outform', 'DER', '-nosmimecap', '-binary']);
  const swu = join(dir, 'bundle.swu');
  must('cpio', ['-o', '-H', 'newc', '--quiet', '-O', swu], { cwd: dir, input: 'sw-description\nsw-description.sig\nrootfs.img\n' });
  return { swu, crt };
}

/** Runs swupdate in a private mount namespace prepared by `setup` (a sh snippet); judged by its output. */
function swupdateInNamespace(dir: string, setup: string, args: string[]): string {
  let out = '';
  for (let i = 0; i < 3; i++) {
    const t = join(dir, `tmp${i}`);
    mkdirSync(t, { recursive: true });
    const r = tool('unshare', ['-m', 'sh', '-c', `${setup} && exec swupdate "$@"`, 'sh', ...args], { env: { TMPDIR: t }, timeoutMs: 120_000 });
    out = r.out;
    if (out.includes('SWUPDATE successful') && !out.includes('[ERROR]')) return out;
  }
  saveArtifact('boot-swupdate-bootenv.swupdate.log', out);
  throw new Error(`swupdate did not succeed:\n${out}`);
}

describe.skipIf(!canUboot)('SWUpdate -B uboot bootenv → U-Boot A/B script', () => {
  it('the bundle selects slot B for a trial boot; a commit with fw_setenv keeps it', async () => {
    const dir = join(tmp.dir, 'uboot');
    mkdirSync(dir, { recursive: true });
    const opts: UbootAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, bootPart: 1, slotA: 2, slotB: 3, boardStep: { kind: 'slot-script' } };
    const stub = (p: number): Buffer => encodeScriptImage(`echo STUB slot ${p} root=\${otapack_root}\npoweroff\n`, 'stub', { time });
    const disk = buildDisk(dir, [
      { fs: 'fat', sizeMiB: 8, files: { 'boot.scr': buildUbootAbScript(opts, { time }), 'otapack.env': encodeUbootEnv(initialUbootAbEnv(opts)) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/boot.scr': stub(2) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/boot.scr': stub(3) } },
    ]);
    // the env file as Linux would see it on the mounted boot partition
    const envFile = join(dir, 'otapack.env');
    writeFileSync(envFile, readFatFile(disk, 1, 'otapack.env')!);
    const cfg = join(dir, 'fw_env.config');
    writeFileSync(cfg, `${envFile} 0x0 0x4000\n`);
    const slotB = join(dir, 'slotB.img');
    writeFileSync(slotB, Buffer.alloc(0));
    const { swu, crt } = makeBundle(join(dir, 'bundle'), slotB, trialBootEnv(SWUPDATE_BOOT_SCHEME, 3));
    mkdirSync(join(dir, 'ovl/u'), { recursive: true });
    mkdirSync(join(dir, 'ovl/w'), { recursive: true });
    const setup = `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/ovl/u,workdir=${dir}/ovl/w /etc && cp ${cfg} /etc/fw_env.config`;
    swupdateInNamespace(dir, setup, ['-B', 'uboot', '-k', crt, '-H', 'otapack:1.0', '-i', swu]);
    const after = decodeUbootEnv(readFileSync(envFile));
    expect(after.crcOk).toBe(true);
    expect(after.vars).toMatchObject({ rootpart: '3', upgrade_available: '1', bootcount: '0', ustate: '1' });
    expect(existsSync('/etc/fw_env.config') && readFileSync('/etc/fw_env.config', 'utf8').includes(dir)).toBe(false); // host /etc untouched

    writeFatFile(disk, 1, 'otapack.env', readFileSync(envFile));
    const r1 = await bootUboot(disk, 60);
    if (!/STUB slot 3/.test(r1.log)) saveArtifact('boot-swupdate-bootenv.uboot-trial.log', r1.log);
    expect(parseAbMarkers(r1.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(r1.log).toContain('STUB slot 3 root=PARTUUID=');
    const trial = decodeUbootEnv(readFatFile(disk, 1, 'otapack.env')!);
    expect(trial.vars).toMatchObject({ rootpart: '3', bootcount: '1', ustate: '1' }); // U-Boot kept SWUpdate's ustate

    // commit from "Linux": clear upgrade_available with the real fw_setenv on the file U-Boot wrote
    writeFileSync(envFile, readFatFile(disk, 1, 'otapack.env')!);
    must('fw_setenv', ['-c', cfg, 'upgrade_available', '0']);
    writeFatFile(disk, 1, 'otapack.env', readFileSync(envFile));
    const r2 = await bootUboot(disk, 60);
    expect(parseAbMarkers(r2.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '0' }]);
    // negative twin: without -B uboot the client reports success but the env is untouched (bootloader "none")
    writeFileSync(envFile, encodeUbootEnv(initialUbootAbEnv(opts)));
    swupdateInNamespace(dir, setup, ['-k', crt, '-H', 'otapack:1.0', '-i', swu]);
    expect(decodeUbootEnv(readFileSync(envFile)).vars.rootpart).toBe('2');
  });
});

describe.skipIf(!canGrub)('SWUpdate -B grub bootenv → GRUB A/B config', () => {
  it('swupdate rewrites /boot/grub/grubenv and GRUB boots slot B on trial', async () => {
    const dir = join(tmp.dir, 'grub');
    mkdirSync(join(dir, 'bootdir/grub'), { recursive: true });
    const opts: GrubAbOptions = { scheme: SWUPDATE_BOOT_SCHEME, slotA: 2, slotB: 3, boardStep: { kind: 'configfile', location: 'slot', path: '/boot/grub/grub.cfg' } };
    const stub = (p: number): string => `echo "STUB grub slot ${p}"\necho "STUB otapack_root=\${otapack_root}"\nhalt\n`;
    const disk = buildDisk(dir, [
      { fs: 'fat', sizeMiB: 8, files: { 'EFI/BOOT/BOOTX64.EFI': buildGrubEfi(dir), 'EFI/BOOT/grub.cfg': generateGrubAbConfig(opts), 'EFI/BOOT/grubenv': encodeGrubenv(initialGrubAbEnv(opts)) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': stub(2) } },
      { fs: 'ext4', sizeMiB: 4, files: { 'boot/grub/grub.cfg': stub(3) } },
    ], 'gpt');
    const staged = join(dir, 'bootdir/grub/grubenv');
    writeFileSync(staged, readFatFile(disk, 1, 'EFI/BOOT/grubenv')!);
    const slotB = join(dir, 'slotB.img');
    writeFileSync(slotB, Buffer.alloc(0));
    const { swu, crt } = makeBundle(join(dir, 'bundle'), slotB, trialBootEnv(SWUPDATE_BOOT_SCHEME, 3));
    const setup = `mount -t tmpfs tmpfs /boot && mkdir -p /boot/grub && cp ${staged} /boot/grub/grubenv && trap 'cp /boot/grub/grubenv ${staged}' EXIT`;
    // swupdate runs as a child so the trap can copy the result back out of the namespace
    const t = join(dir, 'tmp');
    mkdirSync(t, { recursive: true });
    let out = '';
    for (let i = 0; i < 3; i++) {
      const r = tool('unshare', ['-m', 'sh', '-c', `${setup}; swupdate "$@"`, 'sh', '-B', 'grub', '-k', crt, '-H', 'otapack:1.0', '-i', swu], { env: { TMPDIR: t }, timeoutMs: 120_000 });
      out = r.out;
      if (out.includes('SWUPDATE successful') && !out.includes('[ERROR]')) break;
    }
    if (!out.includes('SWUPDATE successful')) saveArtifact('boot-swupdate-bootenv.grub.log', out);
    expect(out).toContain('SWUPDATE successful');
    const env = decodeGrubenv(readFileSync(staged));
    expect(env.valid).toBe(true);
    expect(env.vars).toMatchObject({ rootpart: '3', upgrade_available: '1', bootcount: '0', ustate: '1' });
    expect(must('grub-editenv', [staged, 'list']).stdout).toContain('rootpart=3\n');

    const ours = readFileSync(staged);

    // negative twin: a block made by grub-editenv 2.06 (with its "# WARNING" line) is mangled by
    // SWUpdate's strtok parser: the old rootpart survives as the last entry and wins in GRUB
    must('grub-editenv', [staged + '.editenv', 'create']);
    must('grub-editenv', [staged + '.editenv', 'set', 'rootpart=2', 'upgrade_available=0', 'bootcount=0', 'bootlimit=3']);
    writeFileSync(staged, readFileSync(staged + '.editenv'));
    for (let i = 0; i < 3; i++) {
      tool('unshare', ['-m', 'sh', '-c', `${setup}; swupdate "$@"`, 'sh', '-B', 'grub', '-k', crt, '-H', 'otapack:1.0', '-i', swu], { env: { TMPDIR: t }, timeoutMs: 120_000 });
      if (readFileSync(staged, 'latin1').includes('rootpart=3')) break;
    }
    expect(readFileSync(staged, 'latin1')).toContain('rootpart=3\n');
    expect(must('grub-editenv', [staged, 'list']).stdout).toMatch(/rootpart=3\n(.*\n)*rootpart=2\n/);
    expect(decodeGrubenv(readFileSync(staged)).vars.rootpart).toBe('2');

    writeFatFile(disk, 1, 'EFI/BOOT/grubenv', ours);
    const r = await bootOvmf(disk, 90);
    if (!/STUB grub slot 3/.test(r.log)) saveArtifact('boot-swupdate-bootenv.grub-trial.log', r.log);
    expect(parseAbMarkers(r.log)).toEqual([{ slot: 'B', partition: 3, bootcount: '1', upgradeAvailable: '1' }]);
    expect(r.log).toContain('STUB grub slot 3');
    expect(decodeGrubenv(readFatFile(disk, 1, 'EFI/BOOT/grubenv')!).vars).toMatchObject({ rootpart: '3', bootcount: '1', ustate: '1' });
  });
});
