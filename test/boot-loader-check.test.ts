// convert reads the boot loader the image really has and generates only what it can run:
//  - the U-Boot command detector on Debian's real board builds (u-boot-sunxi, u-boot-rockchip,
//    u-boot-qemu; a MIPS build without FAT write as the board that cannot run otapack's script),
//    table-driven, each expectation cross-checked against the binary's own strings;
//  - the GRUB EFI reader on grub-mkimage builds (Buildroot's default module list, with and without
//    otapack's minimum);
//  - end to end through the CLI: a Buildroot image with Debian's sunxi U-Boot in its raw area
//    (inspect shows it), a U-Boot without FAT write and a GRUB without loadenv refused at planning
//    time with nothing written, and boot.install-grub putting in a GRUB built with grub-mkimage.
// About 11 s with the fixture cache warm, ~20 s cold (three small fixture images; the detector reads ~8 binaries in < 1 s).
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { readUbootCommands, envSubcommands } from '../src/boot/uboot-commands.js';
import { readGrubImage, BUILDROOT_GRUB_EFI_MODULES } from '../src/boot/grub-image.js';
import { decodeScriptImage } from '../src/boot/uboot-image.js';
import { checkGrub, checkUboot, GRUB_MINIMUM_MODULES, type LoaderFacts } from '../src/boot/loader.js';
import { buildBuildrootImage, buildEfiImage, buildRockpro64GptImage } from './helpers/images.js';
import { expectCleanFailure, otapack, tmp } from './helpers/run.js';
import { requires } from './helpers/require-tool.js';
import { buildGrubEfi } from './helpers/boot-disk.js';

const UB = '/usr/lib/u-boot';
const SUNXI = `${UB}/pine64_plus/u-boot-sunxi-with-spl.fit.itb`;
const ROCKPRO64 = `${UB}/rockpro64-rk3399/u-boot.bin`;
const BOARDS = [
  // [package, file, pointer width, has setexpr, has fatwrite, has load]
  ['u-boot-sunxi', `${UB}/pine64_plus/u-boot-sunxi-with-spl.fit.itb`, 8, true, true, true],
  ['u-boot-sunxi', `${UB}/pine64_plus/u-boot.bin`, 8, true, true, true],
  ['u-boot-sunxi', `${UB}/orangepi_one_plus/u-boot.bin`, 8, true, true, true],
  ['u-boot-rockchip', `${UB}/rockpro64-rk3399/u-boot.itb`, 8, false, true, true],
  ['u-boot-rockchip', `${UB}/rock64-rk3328/u-boot.itb`, 8, false, true, true],
  ['u-boot-rockchip', `${UB}/rock-pi-e-rk3328/u-boot.img`, 8, true, true, true],
  ['u-boot-qemu', `${UB}/qemu_arm64/u-boot.bin`, 8, true, true, true],
  ['u-boot-qemu', `${UB}/qemu_arm/u-boot.bin`, 4, true, true, true],
  ['u-boot-qemu', `${UB}/maltael/u-boot.bin`, 4, false, false, false],
] as const;

const haveBoards = requires({
  what: "U-Boot command detection on Debian's board builds", files: BOARDS.map((b) => b[1]),
  install: 'dpkg --add-architecture arm64 && apt-get update && apt-get install u-boot-sunxi:arm64 u-boot-rockchip:arm64 u-boot-qemu',
});
const haveGrub = requires({ what: 'GRUB EFI images built like Buildroot', tools: ['grub-mkimage', 'mdir', 'mcopy'], files: ['/usr/lib/grub/x86_64-efi/loadenv.mod'], install: 'apt-get install grub-common grub-efi-amd64-bin mtools' });

/** The binary holds the command's name as a NUL-terminated string at all (independent of the table reader; the
 * linker merges string tails, so only names that are no other string's tail tell presence this way). */
const nameIn = (bin: Buffer, name: string): boolean => bin.includes(Buffer.from(`${name}\0`, 'latin1'));

describe.skipIf(!haveBoards)("U-Boot command tables of Debian's board builds", () => {
  it.each(BOARDS)('%s %s', (_pkg, file, width, setexpr, fatwrite, load) => {
    const bin = readFileSync(file);
    const t = readUbootCommands(bin)!;
    expect(t).toBeDefined();
    expect(t.width).toBe(width);
    const has = (c: string): boolean => t.commands.includes(c);
    expect([has('setexpr'), has('fatwrite'), has('load')]).toEqual([setexpr, fatwrite, load]);
    // cross-check with the bytes: a command the table lacks has no name string either, one it has does
    for (const c of ['setexpr', 'fatwrite']) expect(nameIn(bin, c), c).toBe(has(c));
    for (const c of ['env', 'echo', 'setenv', 'source', 'test', 'reset']) expect(has(c), c).toBe(true);
    expect(envSubcommands(t)).toEqual(expect.arrayContaining(['import', 'export']));
    expect(t.commands.length).toBeGreaterThan(50);
    expect(t.commands.length).toBeLessThan(130);

    // what the plan makes of it
    const c = checkUboot({ kind: 'uboot', source: file, table: t, notes: [] }, { step: 'boot-script' });
    expect(c.missing.map((m) => m.command)).toEqual([...(load ? [] : ['load']), ...(fatwrite ? [] : ['fatwrite'])]);
    expect(c.counter).toBe(setexpr && has('itest') ? 'setexpr' : 'test');
    expect(c.bakePartuuids).toBe(!has('part'));
  });

  it('finds nothing where there is no little-endian U-Boot: a GRUB image, an SPL alone, a big-endian build, zeros', () => {
    for (const f of [`${UB}/rockpro64-rk3399/idbloader.img`, `${UB}/qemu-ppce500/u-boot.bin`]) expect(readUbootCommands(readFileSync(f)), f).toBeUndefined();
    expect(readUbootCommands(Buffer.alloc(1 << 20))).toBeUndefined();
  });

  it('no U-Boot found: the script keeps its full form and the plan says what was not checked', () => {
    const c = checkUboot({ kind: 'none', bootloader: 'uboot', looked: ['raw area before partition 1'], notes: [] }, { step: 'boot-script' });
    expect(c).toMatchObject({ counter: 'setexpr', bakePartuuids: false, missing: [] });
    expect(c.report.source).toBeNull();
    expect(c.report.notes.join('\n')).toMatch(/no U-Boot found \(looked at raw area before partition 1\): its commands were not checked.*boot\.loader-binary/);
  });
});

describe.skipIf(!haveGrub)('GRUB EFI images built like Buildroot', () => {
  const dir = tmp('otapack-grub-image-');
  const mk = async (name: string, mods: readonly string[]): Promise<Buffer> => buildGrubEfi(dir, mods, name);
  const facts = (bytes: Buffer): LoaderFacts => ({ kind: 'grub', source: 'ESP /EFI/BOOT/BOOTX64.EFI', path: '/EFI/BOOT/BOOTX64.EFI', image: readGrubImage(bytes)!, notes: [] });

  it("Buildroot's default list: its modules read back, and loadenv test echo configfile are missing", async () => {
    const f = facts(await mk('br.efi', BUILDROOT_GRUB_EFI_MODULES));
    if (f.kind !== 'grub') throw new Error('no GRUB');
    const names = f.image.modules.map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining([...BUILDROOT_GRUB_EFI_MODULES]));
    expect(names).not.toContain('loadenv');
    expect(f.image).toMatchObject({ platform: 'x86_64-efi', prefix: '/EFI/BOOT', signed: false });
    const c = checkGrub(f, { partmap: 'gpt', readsSlot: true, step: 'configfile' });
    expect(c.missing).toEqual(['loadenv', 'test', 'echo', 'configfile']);
    expect(c.reboot).toBe(false);
  });

  it('the same plus the documented minimum: nothing missing, nothing to insmod, no regexp or probe needed', async () => {
    const f = facts(await mk('br-min.efi', [...BUILDROOT_GRUB_EFI_MODULES, ...GRUB_MINIMUM_MODULES]));
    const c = checkGrub(f, { partmap: 'gpt', readsSlot: true, step: 'configfile' });
    expect(c).toMatchObject({ missing: [], insmod: [], reboot: true });
    expect(c.report.uses).not.toContain('regexp');
    expect(c.report.adaptations[0]).toMatch(/no regexp or probe/);
  });

  it('not a GRUB: a PE without a module area is not read as one', () => {
    expect(readGrubImage(Buffer.from('MZ'.padEnd(4096, '\0')))).toBeUndefined();
  });
});

const haveCli = requires({
  what: 'convert/inspect of images carrying real boot loaders', files: [SUNXI, ROCKPRO64, `${UB}/maltael/u-boot.bin`, `${UB}/pine64_plus/u-boot.bin`, '/usr/lib/grub/x86_64-efi/loadenv.mod'],
  tools: ['grub-mkimage', 'mcopy'], install: 'apt-get install u-boot-sunxi:arm64 u-boot-qemu grub-common grub-efi-amd64-bin mtools',
});

describe.skipIf(!haveCli)('convert and inspect read the boot loader (CLI)', () => {
  const dir = tmp('otapack-loader-cli-');
  let sunxi: string;
  let rockchip: string;
  let efiBr: string;
  let efiFolder: string;
  let rkGpt: string;
  let key: string;
  let cert: string;

  beforeAll(async () => {
    const [s, rk, e, ef, rg] = await Promise.all([
      buildBuildrootImage(join(dir, 'in-sunxi'), { splFile: SUNXI }),
      buildBuildrootImage(join(dir, 'in-rockchip'), { bootPartitionFiles: { '/u-boot.bin': ROCKPRO64 } }),
      buildEfiImage(join(dir, 'in-efi-br'), { grubModules: [...BUILDROOT_GRUB_EFI_MODULES] }),
      // grub-install style: the same GRUB, its modules in /EFI/BOOT/x86_64-efi on the ESP
      buildEfiImage(join(dir, 'in-efi-folder'), {
        grubModules: [...BUILDROOT_GRUB_EFI_MODULES],
        espFiles: Object.fromEntries(['loadenv', 'test', 'echo', 'configfile', 'reboot', 'extcmd', 'disk'].map((m) => [`/EFI/BOOT/x86_64-efi/${m}.mod`, `/usr/lib/grub/x86_64-efi/${m}.mod`])),
      }),
      buildRockpro64GptImage(join(dir, 'in-rk-gpt'), { idbloaderFile: `${UB}/rockpro64-rk3399/idbloader.img`, ubootItbFile: `${UB}/rockpro64-rk3399/u-boot.itb` }),
    ]);
    efiFolder = ef.path;
    rkGpt = rg.path;
    sunxi = s.path;
    rockchip = rk.path;
    efiBr = e.path;
    const k = await otapack(['keygen', '--out', join(dir, 'keys'), '-q']);
    expect(k.code, k.stderr).toBe(0);
    key = join(dir, 'keys', 'signing.key');
    cert = join(dir, 'keys', 'signing.crt');
  }, 300_000);

  it("inspect shows Debian's sunxi U-Boot read from the raw area, its commands and what the script uses", async () => {
    const j = await otapack(['inspect', sunxi, '--json']);
    expect(j.code, j.stderr).toBe(0);
    const loader = (JSON.parse(j.stdout) as { plan: { boot: { loader: { kind: string; source: string; builtIn: string[]; extra: string[]; uses: string[]; adaptations: string[] } } } }).plan.boot.loader;
    expect(loader.kind).toBe('uboot');
    expect(loader.source).toMatch(/^raw area before partition 1 \(bytes 8192-/);
    expect(loader.builtIn).toEqual(expect.arrayContaining(['fatwrite', 'setexpr', 'load', 'env', 'source']));
    expect(loader.extra).toEqual(expect.arrayContaining(['import', 'export']));
    expect(loader.uses).toEqual(expect.arrayContaining(['env import', 'env export', 'fatwrite', 'setexpr']));
    expect(loader.adaptations).toEqual([]);
    const t = await otapack(['inspect', sunxi]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/boot loader: raw area before partition 1 .*: U-Boot \(64-bit\): \d+ commands; env [a-z ]*\bimport\b/);
    expect(t.stderr).toMatch(/the A\/B logic uses: .*fatwrite/);
  }, 120_000);

  it("Debian's RockPro64 U-Boot (no setexpr) as u-boot.bin on the boot partition: convert's boot.scr counts without setexpr; the sunxi one's uses it", async () => {
    const script = async (img: string, name: string): Promise<string> => {
      const out = join(dir, `out-${name}`);
      const r = await otapack(['convert', img, '-o', out, '--key', key, '--cert', cert, '--json'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as { boot: { loader: { source: string; adaptations: string[] } }; output: { partitions: { role: string; start: number }[] } };
      const got = join(dir, `${name}.boot.scr`);
      const disk = join(out, readdirSync(out).find((f) => f.endsWith('.img'))!);
      await execa('mcopy', ['-n', '-i', `${disk}@@${report.output.partitions.find((p) => p.role === 'boot')!.start}`, '::/boot.scr', got]);
      const text = decodeScriptImage(readFileSync(got)).text;
      return `${report.boot.loader.source}\n${report.boot.loader.adaptations.join('\n')}\n--\n${text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n')}`;
    };
    const rk = await script(rockchip, 'rockchip');
    expect(rk).toMatch(/^boot partition \(partition 1\) \/u-boot\.bin\nno setexpr: trial boots are counted with a decimal lookup chain and test\n--/);
    expect(rk).not.toMatch(/\bsetexpr\b.*\+ 1/);
    expect(rk).toMatch(/elif test "\$\{bootcount\}" = "1"; then setenv bootcount 2/);
    // the negative twin: the sunxi U-Boot has setexpr, and the script counts with it
    const sx = await script(sunxi, 'sunxi');
    expect(sx).toMatch(/^raw area before partition 1 [^\n]*\n\n--/); // no adaptations
    expect(sx).toMatch(/setexpr bootcount \$\{bootcount\} \+ 1/);
  }, 180_000);

  it("Debian's RockPro64 idbloader + u-boot.itb as GPT loader partitions: the U-Boot in loader2 is read, the SPL in loader1 is not taken for one", async () => {
    const j = await otapack(['inspect', rkGpt, '--json']);
    expect(j.code, j.stderr).toBe(0);
    const loader = (JSON.parse(j.stdout) as { plan: { boot: { loader: { source: string; builtIn: string[]; uses: string[]; adaptations: string[] } } } }).plan.boot.loader;
    expect(loader.source).toBe('partition 2 (loader2)');
    expect(loader.builtIn).toEqual(expect.arrayContaining(['sysboot', 'fatwrite', 'itest']));
    expect(loader.builtIn).not.toContain('setexpr');
    expect(loader.uses).toContain('sysboot'); // the board boots an extlinux.conf
    expect(loader.adaptations).toEqual(['no setexpr: trial boots are counted with a decimal lookup chain and test']);
  }, 120_000);

  it('a U-Boot without FAT write (boot.loader-binary: a real build) is refused at planning time, naming the commands and options; nothing is written', async () => {
    const cfg = join(dir, 'malta.yaml');
    writeFileSync(cfg, `boot: { loader-binary: ${UB}/maltael/u-boot.bin }\n`);
    const out = join(dir, 'out-malta');
    const r = await otapack(['convert', sunxi, '-o', out, '-c', cfg, '--key', key, '--cert', cert]);
    expectCleanFailure(r, 4, /boot\.loader-binary .*maltael\/u-boot\.bin: this U-Boot has no load, fatwrite .*CONFIG_CMD_FS_GENERIC.*CONFIG_FAT_WRITE/);
    expect(existsSync(out)).toBe(false);
    // the negative twin: the same image with a sunxi U-Boot named as the board's plans
    const cfgOk = join(dir, 'pine64.yaml');
    writeFileSync(cfgOk, `boot: { loader-binary: ${UB}/pine64_plus/u-boot.bin }\n`);
    const ok = await otapack(['inspect', sunxi, '-c', cfgOk]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/boot loader: boot\.loader-binary .*pine64_plus\/u-boot\.bin: U-Boot \(64-bit\)/);
  }, 120_000);

  it("a GRUB built with Buildroot's default modules (no loadenv) is refused at planning time with the module list to build; nothing is written", async () => {
    const out = join(dir, 'out-efi-br');
    const r = await otapack(['convert', efiBr, '-o', out, '--key', key, '--cert', cert]);
    expectCleanFailure(r, 4, /ESP \(partition 1\) \/EFI\/BOOT\/BOOTX64\.EFI: GRUB lacks the modules loadenv, test, echo, configfile .*BR2_TARGET_GRUB2_BUILTIN_MODULES_EFI="boot linux ext2 fat squash4 part_msdos part_gpt normal efi_gop loadenv test echo configfile reboot".*boot\.install-grub: true/);
    expect(existsSync(out)).toBe(false);
    const i = await otapack(['inspect', efiBr]);
    expectCleanFailure(i, 4, /GRUB lacks the modules loadenv/);
    // --json: the stable reason a program matches on
    const j = await otapack(['inspect', efiBr, '--json']);
    expect(j.code).toBe(4);
    expect(JSON.parse(j.stdout)).toMatchObject({ schema: 'otapack.error/1', code: 'INPUT', reason: 'boot-loader-lacks-modules' });
  }, 120_000);

  it('a GRUB whose missing modules sit in its module folder on the ESP: found, insmod-ed, converted', async () => {
    const j = await otapack(['inspect', efiFolder, '--json']);
    expect(j.code, j.stderr).toBe(0);
    const loader = (JSON.parse(j.stdout) as { plan: { boot: { loader: { extra: string[]; uses: string[]; adaptations: string[] } } } }).plan.boot.loader;
    expect(loader.extra).toEqual(expect.arrayContaining(['loadenv', 'test', 'echo', 'configfile', 'reboot']));
    expect(loader.adaptations).toContain('insmod loadenv test echo configfile reboot from /EFI/BOOT/x86_64-efi');
    expect(loader.uses).toEqual(expect.arrayContaining(['loadenv', 'reboot']));
    const t = await otapack(['inspect', efiFolder]);
    expect(t.stderr).toMatch(/boot loader: ESP \(partition 1\) \/EFI\/BOOT\/BOOTX64\.EFI: GRUB x86_64-efi: \d+ modules built in, prefix \/EFI\/BOOT, 7 more modules in \/EFI\/BOOT\/x86_64-efi/);
  }, 120_000);

  it('boot.install-grub: true puts in an unsigned GRUB built by grub-mkimage with the missing modules, and says so', async () => {
    const cfg = join(dir, 'install-grub.yaml');
    writeFileSync(cfg, 'boot: { install-grub: true }\n');
    const out = join(dir, 'out-install');
    const r = await otapack(['convert', efiBr, '-o', out, '-c', cfg, '--key', key, '--cert', cert, '--json'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/boot\.install-grub: \/EFI\/BOOT\/BOOTX64\.EFI .* is replaced by an unsigned GRUB built with grub-mkimage/);
    const report = JSON.parse(r.stdout) as { boot: { installGrub: { modules: string[]; prefix: string; replaced: { signed: boolean } } }; input: { partitions: { number: number; start: number }[] }; output: { partitions: { role: string; start: number }[] } };
    expect(report.boot.installGrub.modules).toEqual([...BUILDROOT_GRUB_EFI_MODULES, ...GRUB_MINIMUM_MODULES]);
    expect(report.boot.installGrub).toMatchObject({ prefix: '/EFI/BOOT', replaced: { signed: false } });
    // the GRUB on the output's ESP is the new one: read back with mtools
    const img = join(out, readdirSync(out).find((f) => f.endsWith('.img'))!);
    const esp = report.output.partitions.find((p) => p.role === 'boot')!;
    const got = join(dir, 'BOOTX64.EFI');
    await execa('mcopy', ['-n', '-i', `${img}@@${esp.start}`, '::/EFI/BOOT/BOOTX64.EFI', got]);
    const mods = readGrubImage(readFileSync(got))!.modules.map((m) => m.name);
    expect(mods).toEqual(expect.arrayContaining([...GRUB_MINIMUM_MODULES]));
    // the negative twin: the input's GRUB, read the same way, did not have them
    const before = join(dir, 'BOOTX64-input.EFI');
    await execa('mcopy', ['-n', '-i', `${efiBr}@@${report.input.partitions.find((p) => p.number === 1)!.start}`, '::/EFI/BOOT/BOOTX64.EFI', before]);
    expect(readGrubImage(readFileSync(before))!.modules.map((m) => m.name)).not.toContain('loadenv');
  }, 180_000);
});
