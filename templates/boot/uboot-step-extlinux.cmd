# board step: extlinux.conf (U-Boot sysboot). Its append line uses root=${otapack_root};
# sysboot expands variables there. Paths in it are relative to the partition it is read from.
sysboot ${devtype} ${devnum}:@PART@ any ${scriptaddr} @PATH@
