# board step: the board own boot script, patched by otapack to boot ${rootpart} with
# root=${otapack_root}, stored on the boot partition as @FILE@
if load ${devtype} ${devnum}:${otapack_bootpart} ${scriptaddr} @FILE@; then
  source ${scriptaddr}
else
  echo otapack: ERROR cannot load @FILE@ from partition @BOOTPART@
fi
