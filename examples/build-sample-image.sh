#!/usr/bin/env bash
# Builds a small Buildroot-style SD card image, rootless, with real tools:
#   p1  FAT boot partition: kernel placeholder, boot.scr (U-Boot script, root=/dev/mmcblk0p2)
#   p2  ext4 rootfs (1 KiB blocks, metadata_csum, no 64bit, as Buildroot makes it) with BusyBox
# Usage: examples/build-sample-image.sh OUTDIR   ->   OUTDIR/sdcard.img
set -euo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} E2FSPROGS_FAKE_TIME=${SOURCE_DATE_EPOCH:-1700000000} MTOOLS_SKIP_CHECK=1

root=$work/rootfs
mkdir -p "$root"/{bin,sbin,etc/init.d,usr/bin,usr/sbin,dev,proc,sys,tmp,root,var/log,boot,mnt}
cp /bin/busybox "$root/bin/busybox"
for a in sh ls cat echo mount umount mkdir sed grep tr head wc cut sync sleep poweroff reboot; do ln -s busybox "$root/bin/$a"; done
ln -s ../bin/busybox "$root/sbin/init"
printf '/dev/root\t/\text2\trw,noauto\t0\t1\nproc\t/proc\tproc\tdefaults\t0\t0\nsysfs\t/sys\tsysfs\tdefaults\t0\t0\n' > "$root/etc/fstab"
printf '::sysinit:/bin/mount -a\n::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n' > "$root/etc/inittab"
printf '#!/bin/sh\nfor s in /etc/init.d/S??*; do [ -x "$s" ] && "$s" start; done\n' > "$root/etc/init.d/rcS"
chmod 755 "$root/etc/init.d/rcS"
printf 'NAME=Buildroot\nVERSION_ID=2024.02\nID=buildroot\n' > "$root/etc/os-release"
echo sample-board > "$root/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
head -c 4M /dev/zero | tr '\0' 'x' > "$root/usr/bin/app-data"

mke2fs -q -F -t ext4 -b 1024 -O '^64bit,metadata_csum' -U 0f1e2d3c-4b5a-4697-8877-665544332211 \
  -E root_owner=0:0,hash_seed=1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d -d "$root" "$work/rootfs.ext4" 64M

cat > "$work/boot.cmd" <<'CMD'
setenv bootargs console=ttyAMA0 root=/dev/mmcblk0p2 rootwait
load ${devtype} ${devnum}:1 ${kernel_addr_r} Image
booti ${kernel_addr_r} - ${fdt_addr}
CMD
mkimage -A arm64 -O linux -T script -C none -n "sample boot script" -d "$work/boot.cmd" "$work/boot.scr" >/dev/null
head -c 2M /dev/zero | tr '\0' 'K' > "$work/Image"
truncate -s 16M "$work/boot.vfat"
mkfs.vfat --invariant -i 5a4b3c2d -n BOOT "$work/boot.vfat" >/dev/null
mcopy -m -i "$work/boot.vfat" "$work/boot.scr" "$work/boot.cmd" "$work/Image" ::/

img=$out/sdcard.img
rm -f "$img"
truncate -s $(( (2048 + 32768 + 131072) * 512 )) "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" <<'TABLE'
label: dos
label-id: 0x5a3c0001
start=2048, size=32768, type=c, bootable
start=34816, size=131072, type=83
TABLE
dd if="$work/boot.vfat" of="$img" bs=512 seek=2048 conv=notrunc,sparse status=none
dd if="$work/rootfs.ext4" of="$img" bs=512 seek=34816 conv=notrunc,sparse status=none
echo "built $img: MBR, p1 FAT boot (boot.scr, Image), p2 ext4 rootfs (BusyBox), $(du -h --apparent-size "$img" | cut -f1)"
