// GPT images: EFI with GRUB on the ESP (x86-64 and arm64), and a RockPro64-style GPT whose
// boot loaders are GPT partitions of their own.
import { convertSuite } from './helpers/convert-suite.js';
import { VARIANTS } from './helpers/images.js';
import { execa } from 'execa';
import { join } from 'node:path';
import { openSync, writeSync, closeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';

const v = (name: string) => VARIANTS.find((x) => x.name === name)!.build;
convertSuite({ name: 'GPT/EFI x86-64, ESP at 64, GRUB, kernel in the rootfs', build: v('efi-x86_64-esp64'), config: 'storage:\n  device: /dev/sda\n', deep: true });
convertSuite({ name: 'GPT/EFI x86-64, ESP at 2048, generic Linux root type', build: v('efi-x86_64-esp2048-generic'), config: 'storage:\n  device: /dev/nvme0n1\n' });
convertSuite({ name: 'GPT/EFI x86-64, kernel on the ESP', build: v('efi-x86_64-kernel-on-esp'), config: 'storage:\n  device: /dev/sda\n', deep: true });
convertSuite({ name: 'GPT/EFI arm64', build: v('efi-arm64'), config: 'storage:\n  device: /dev/vda\n' });
convertSuite({ name: 'RockPro64 GPT, boot loaders as GPT partitions', build: v('rockpro64-gpt'), deep: true });

// Allwinner boards read their SPL from sector 16, inside a normal GPT entry array: such images
// move the array (sgdisk -j) and put the SPL at 8 KiB. Both must survive conversion.
convertSuite({
  name: 'GPT with the entry array moved to LBA 1024 and an SPL at 8 KiB',
  config: 'storage:\n  device: /dev/mmcblk0\n',
  deep: true,
  build: async (dir) => {
    const fx = await v('efi-x86_64-esp2048-generic')(dir);
    const path = join(dir, 'moved-entries.img');
    await execa('cp', ['--sparse=always', fx.path, path]);
    await execa('sgdisk', ['-j', '1024', path]);
    const spl = Buffer.concat([Buffer.from('eGON.BT0'), randomBytes(200 * 1024)]);
    const fd = openSync(path, 'r+');
    writeSync(fd, spl, 0, spl.length, 8192);
    closeSync(fd);
    return { ...fx, path, rawRegions: [...fx.rawRegions, { offset: 8192, length: spl.length, sha256: createHash('sha256').update(spl).digest('hex'), name: 'spl' }] };
  },
});
