#!/bin/sh
# otapack delta check, carried in the bundle. SWUpdate runs it with "preinst" before it writes
# anything, and with "postinst" after the images are written and before the boot environment
# changes; a non-zero exit fails the install there.
@WHAT@
case "${1:-}" in
preinst)
@PREINST@
	;;
postinst)
@POSTINST@
	;;
esac
exit 0
