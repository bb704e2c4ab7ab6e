// GPT images: EFI with GRUB on the ESP (x86-64 and arm64), and a RockPro64-style GPT whose
// boot loaders are GPT partitions of their own.
import { convertSuite } from './helpers/convert-suite.js';
import { VARIANTS } from './helpers/images.js';

const v = (name: string) => VARIANTS.find((x) => x.name === name)!.build;
convertSuite({ name: 'GPT/EFI x86-64, ESP at 64, GRUB, kernel in the rootfs', build: v('efi-x86_64-esp64'), config: 'storage:\n  device: /dev/sda\n', deep: true });
convertSuite({ name: 'GPT/EFI x86-64, ESP at 2048, generic Linux root type', build: v('efi-x86_64-esp2048-generic'), config: 'storage:\n  device: /dev/nvme0n1\n' });
convertSuite({ name: 'GPT/EFI x86-64, kernel on the ESP', build: v('efi-x86_64-kernel-on-esp'), config: 'storage:\n  device: /dev/sda\n', deep: true });
convertSuite({ name: 'GPT/EFI arm64', build: v('efi-arm64'), config: 'storage:\n  device: /dev/vda\n' });
convertSuite({ name: 'RockPro64 GPT, boot loaders as GPT partitions', build: v('rockpro64-gpt'), deep: true });
