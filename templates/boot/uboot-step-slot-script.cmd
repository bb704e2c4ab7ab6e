# board step: the boot script inside the chosen slot (Armbian style), patched by otapack so its
# loads use ${devtype} ${devnum}:${rootpart} and the kernel gets root=${otapack_root}
setenv prefix @PREFIX@
setenv distro_bootpart ${rootpart}
if load ${devtype} ${devnum}:${rootpart} ${scriptaddr} @PATH@; then
  source ${scriptaddr}
else
  echo otapack: ERROR cannot load @PATH@ from slot ${otapack_slot}
fi
