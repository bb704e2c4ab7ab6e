// The boot layer: codecs for the boot-state formats and generators of the A/B boot logic.
export * from './uboot-env.js';
export * from './uboot-image.js';
export * from './grubenv.js';
export * from './uboot-ab.js';
export * from './board-script.js';
export * from './grub-ab.js';
export { BOOT_TEMPLATE_DIR } from './template.js';
