#!/usr/bin/env bash
# Builds a small Buildroot-style SD card image, sdcard.img, for `npm run demo` to convert:
#   MBR, p1 FAT boot (Image, a dtb, boot.scr from boot.cmd), p2 ext4 rootfs (busybox-static,
#   sysvinit-style /etc), laid out the way Buildroot's genimage lays out sunxi boards.
# No root, no mount, no loop devices: mke2fs -d, mkfs.vfat + mtools, sfdisk, dd conv=notrunc.
# Deterministic: SOURCE_DATE_EPOCH fixes every timestamp, the UUIDs and ids are fixed.
#
# usage: examples/build-sample-image.sh [OUTDIR]     (default: examples/work)
# needs: e2fsprogs dosfstools mtools fdisk u-boot-tools busybox-static (or busybox)
set -euo pipefail

OUT=${1:-"$(cd "$(dirname "$0")" && pwd)/work"}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C MTOOLS_SKIP_CHECK=1

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-sample-image: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need mke2fs e2fsprogs; need debugfs e2fsprogs; need mkfs.vfat dosfstools; need mcopy mtools; need mlabel mtools
need sfdisk fdisk; need mkimage u-boot-tools
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || echo "build-sample-image: no busybox here (apt-get install busybox-static); using a stand-in /bin/busybox" >&2

ROOTFS_UUID=5a7c0d1e-0b1a-4c2f-9e3d-6f1e2d3c4b5a
DISK_ID=0x0ad5ca1e
BOOT_MIB=16
ROOT_MIB=32
P1=2048                                   # 1 MiB: room for the SPL at 8 KiB
P2=$((P1 + BOOT_MIB * 2048))
SIZE_SECTORS=$((P2 + ROOT_MIB * 2048))

WORK=$(mktemp -d "$OUT/.build-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s%N)

# ---------------------------------------------------------------- rootfs tree
R=$WORK/rootfs
mkdir -p "$R"/{bin,sbin,lib,usr/bin,usr/sbin,usr/lib,dev,proc,sys,run,mnt,opt,root,tmp,etc/init.d,var/lib}
chmod 1777 "$R/tmp"; chmod 700 "$R/root"
if [ -n "$BUSYBOX" ]; then
  cp "$BUSYBOX" "$R/bin/busybox"
  applets() { "$BUSYBOX" --list-full; }
else
  printf '#!/bin/sh\necho "stand-in busybox (the sample was built without busybox-static)"\n' >"$R/bin/busybox"
  applets() { printf '%s\n' bin/sh bin/ls bin/cat bin/mount bin/umount bin/hostname bin/mkdir sbin/init sbin/getty usr/bin/env; }
fi
chmod 755 "$R/bin/busybox"
applets | sort | while read -r applet; do
  [ "$applet" = bin/busybox ] && continue
  dir=$(dirname "$applet")
  mkdir -p "$R/$dir"
  # relative links, as busybox's own installer writes them
  case "$dir" in bin) t=busybox ;; sbin) t=../bin/busybox ;; *) t=../../bin/busybox ;; esac
  ln -sfn "$t" "$R/$applet"
done
ln -s ../run "$R/var/run"; ln -s ../tmp "$R/var/log"; ln -s ../proc/self/mounts "$R/etc/mtab"

cat >"$R/etc/fstab" <<'EOF'
# <file system>	<mount pt>	<type>	<options>	<dump>	<pass>
/dev/root	/		ext2	rw,noauto	0	1
proc		/proc		proc	defaults	0	0
devpts		/dev/pts	devpts	defaults,gid=5,mode=620,ptmxmode=0666	0	0
tmpfs		/tmp		tmpfs	mode=1777	0	0
tmpfs		/run		tmpfs	mode=0755,nosuid,nodev	0	0
sysfs		/sys		sysfs	defaults	0	0
EOF
cat >"$R/etc/inittab" <<'EOF'
::sysinit:/bin/mount -t proc proc /proc
::sysinit:/bin/mount -o remount,rw /
::sysinit:/bin/mkdir -p /dev/pts /dev/shm
::sysinit:/bin/mount -a
::sysinit:/bin/hostname -F /etc/hostname
::sysinit:/etc/init.d/rcS
console::respawn:/sbin/getty -L console 0 vt100
::shutdown:/bin/umount -a -r
EOF
cat >"$R/etc/init.d/rcS" <<'EOF'
#!/bin/sh
for s in /etc/init.d/S??*; do [ -x "$s" ] && "$s" start; done
EOF
cat >"$R/etc/init.d/S50hello" <<'EOF'
#!/bin/sh
[ "$1" = start ] && echo "hello from the otapack sample image ($(cat /etc/hostname))"
EOF
chmod 755 "$R/etc/init.d/rcS" "$R/etc/init.d/S50hello"
printf 'NAME=Buildroot\nVERSION=2024.02.1\nID=buildroot\nVERSION_ID=2024.02.1\nPRETTY_NAME="Buildroot 2024.02.1"\n' >"$R/etc/os-release"
echo sample >"$R/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n' >"$R/etc/group"
printf 'root::19675:0:99999:7:::\ndaemon:*:::::::\nnobody:*:::::::\n' >"$R/etc/shadow"; chmod 600 "$R/etc/shadow"
printf 'sample image built by examples/build-sample-image.sh\n' >"$R/etc/issue"
head -c 1048576 /dev/zero | tr '\0' 'x' >"$R/var/lib/filler.txt"   # some data to copy
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ---------------------------------------------------------------- rootfs.ext4 (Buildroot: -O ^64bit, 1 KiB blocks, label rootfs)
truncate -s "${ROOT_MIB}M" "$WORK/rootfs.ext4"
mke2fs -q -F -t ext4 -b 1024 -O ^64bit -L rootfs -U "$ROOTFS_UUID" -m 5 -I 256 \
  -E "root_owner=0:0,hash_seed=$ROOTFS_UUID" -d "$R" "$WORK/rootfs.ext4"
# mke2fs -d copies each file's host ctime and owner; pin them so the image is reproducible.
( cd "$R" && find . -mindepth 0 | LC_ALL=C sort | while read -r p; do
    p=${p#.}; p=${p:-/}
    printf 'sif "%s" ctime 0x%x\nsif "%s" uid 0\nsif "%s" gid 0\n' "$p" "$SOURCE_DATE_EPOCH" "$p" "$p"
  done ) >"$WORK/pin.debugfs"
debugfs -w -f "$WORK/pin.debugfs" "$WORK/rootfs.ext4" >/dev/null 2>"$WORK/debugfs.err"
if grep -v '^debugfs ' "$WORK/debugfs.err" | grep -q .; then cat "$WORK/debugfs.err" >&2; exit 1; fi

# ---------------------------------------------------------------- boot.vfat
cat >"$WORK/boot.cmd" <<'EOF'
setenv bootargs console=ttyS0,115200 earlycon root=/dev/mmcblk0p2 rootwait
fatload mmc 0:1 ${kernel_addr_r} Image
load mmc 0:1 ${fdt_addr_r} sun50i-h5-orangepi-pc2.dtb
booti ${kernel_addr_r} - ${fdt_addr_r}
EOF
mkimage -A arm64 -O linux -T script -C none -n "boot script" -d "$WORK/boot.cmd" "$WORK/boot.scr" >/dev/null
# stand-ins for the kernel and the device tree (a real arm64 Image header, "ARM\x64" at 0x38)
{ printf 'MZ'; head -c 54 /dev/zero; printf 'ARM\x64'; head -c 4 /dev/zero; head -c 1048512 /dev/zero | tr '\0' 'K'; } >"$WORK/Image"
printf '\xd0\x0d\xfe\xed\x00\x00\x04\x00' >"$WORK/sun50i-h5-orangepi-pc2.dtb"; head -c 1016 /dev/zero >>"$WORK/sun50i-h5-orangepi-pc2.dtb"
touch -d "@$SOURCE_DATE_EPOCH" "$WORK/Image" "$WORK/sun50i-h5-orangepi-pc2.dtb" "$WORK/boot.scr"
truncate -s "${BOOT_MIB}M" "$WORK/boot.vfat"
mkfs.vfat --invariant "$WORK/boot.vfat" >/dev/null       # mkfs.vfat's label entry ignores SOURCE_DATE_EPOCH
mlabel -i "$WORK/boot.vfat" -N 0b007ab1 ::BOOT
mcopy -m -i "$WORK/boot.vfat" "$WORK/Image" "$WORK/boot.scr" "$WORK/sun50i-h5-orangepi-pc2.dtb" ::/

# ---------------------------------------------------------------- sdcard.img
IMG=$OUT/sdcard.img
rm -f "$IMG"
truncate -s $((SIZE_SECTORS * 512)) "$IMG"
sfdisk --no-reread --no-tell-kernel -q --wipe never "$IMG" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors

start=$P1, size=$((BOOT_MIB * 2048)), type=c, bootable
start=$P2, size=$((ROOT_MIB * 2048)), type=83
EOF
dd if="$WORK/boot.vfat" of="$IMG" bs=512 seek=$P1 conv=notrunc,sparse status=none
dd if="$WORK/rootfs.ext4" of="$IMG" bs=512 seek=$P2 conv=notrunc,sparse status=none

ms=$(( ($(date +%s%N) - start) / 1000000 ))
sum=$(sha256sum "$IMG" | cut -d' ' -f1)
cat <<EOF
built $IMG in ${ms} ms
  size     $((SIZE_SECTORS * 512)) bytes ($((SIZE_SECTORS / 2048)) MiB), sha256 $sum
  table    MBR, disk id $DISK_ID
  p1       sectors $P1+$((BOOT_MIB * 2048))  FAT  BOOT: Image, sun50i-h5-orangepi-pc2.dtb, boot.scr (root=/dev/mmcblk0p2)
  p2       sectors $P2+$((ROOT_MIB * 2048))  ext4 rootfs, UUID $ROOTFS_UUID, 1 KiB blocks, ^64bit
  rootfs   busybox $([ -n "$BUSYBOX" ] && "$BUSYBOX" 2>&1 | head -1 | awk '{print $2}' || echo stand-in) with $(applets | wc -l) applets, fstab "/dev/root / ext2 rw,noauto"
next: otapack convert $IMG
EOF
