// GPT images: x86-64 EFI with GRUB on the ESP, and a RockPro64-style GPT whose boot loaders
// are GPT partitions of their own.
import { convertSuite } from './helpers/convert-suite.js';
import { buildEfiImage, buildRockpro64GptImage } from './helpers/images.js';

convertSuite({ name: 'GPT/EFI, ESP at 64, GRUB, x86-64 root type', build: () => buildEfiImage(), config: 'storage:\n  device: /dev/sda\n', deep: true });
convertSuite({ name: 'GPT/EFI, ESP at 2048, generic Linux root type', build: () => buildEfiImage({ espStartSector: 2048, rootType: 'linux-generic' }), config: 'storage:\n  device: /dev/nvme0n1\n' });
convertSuite({ name: 'RockPro64 GPT, boot loaders as GPT partitions', build: () => buildRockpro64GptImage(), deep: true });
