# boot.scr of the otapack "Buildroot-style" test disk: kernel and initramfs on p1 (FAT), root on p2.
# The devicetree is the one QEMU builds for -M virt (fdt_addr); the initramfs is a raw cpio.gz,
# so booti gets its size from filesize.
setenv bootargs "@@BOOTARGS@@"
fatload ${devtype} ${devnum}:1 ${kernel_addr_r} Image
fatload ${devtype} ${devnum}:1 ${ramdisk_addr_r} initrd
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}
