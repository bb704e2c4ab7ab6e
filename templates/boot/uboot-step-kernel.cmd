# board step: kernel, optional initrd and device tree from the chosen slot, then @BOOTCMD@
setenv bootargs "@BOOTARGS@"
setenv otapack_initrd -
setenv otapack_fdt ${fdt_addr}
if test -z "${otapack_fdt}"; then setenv otapack_fdt ${fdtcontroladdr}; fi
setenv otapack_loaded 1
if test -z "${kernel_addr_r}"; then
  echo otapack: ERROR this U-Boot defines no kernel_addr_r
  setenv otapack_loaded 0
elif load ${devtype} ${devnum}:${rootpart} ${kernel_addr_r} @KERNEL@; then
  echo otapack: kernel @KERNEL@ loaded
else
  setenv otapack_loaded 0
fi
@INITRD@
@FDT@
if test "${otapack_loaded}" = "1"; then
  @BOOTCMD@ ${kernel_addr_r} ${otapack_initrd} ${otapack_fdt}
fi
