#!/usr/bin/env bash
# Buildroot post-image script: turns the board's sdcard.img into an A/B disk, its bmap and a
# signed (or, for signing later, unsigned) SWUpdate bundle, in $BINARIES_DIR/otapack/.
#
# In the board's defconfig (keep genimage first, it makes sdcard.img):
#   BR2_ROOTFS_POST_IMAGE_SCRIPT="support/scripts/genimage.sh board/acme/post-image.sh"
#   BR2_ROOTFS_POST_SCRIPT_ARGS="-c board/acme/genimage.cfg"
# and copy this script to board/acme/post-image.sh, next to an otapack.yaml.
#
# Buildroot runs it from the top of the Buildroot tree with $BINARIES_DIR as first argument,
# followed by BR2_ROOTFS_POST_SCRIPT_ARGS (shared by every post-image script, so this one
# ignores them), and exports BR2_CONFIG, HOST_DIR, TARGET_DIR, BUILD_DIR, BINARIES_DIR,
# BASE_DIR. Everything else comes from the environment of `make`:
#   OTAPACK             otapack command (default: $HOST_DIR/bin/otapack if present, else otapack on
#                       PATH). Install it on the build host (apt-get install ./otapack_X.Y.Z_all.deb,
#                       or npm install --global otapack-X.Y.Z.tgz), or into the tree's host folder:
#                       npm install --global --prefix "$HOST_DIR" otapack-X.Y.Z.tgz
#   OTAPACK_CONFIG      convert configuration (default: otapack.yaml next to this script)
#   OTAPACK_IMAGE       input image (default: $BINARIES_DIR/sdcard.img)
#   OTAPACK_OUTPUT      output folder (default: $BINARIES_DIR/otapack)
#   OTAPACK_SIGNING_KEY / OTAPACK_SIGNING_CERT / OTAPACK_AES_KEY   release keys (PEM text or paths)
#   OTAPACK_TRUST       with no signing key: the certificate devices will trust; the bundle is
#                       left unsigned for a protected job to sign (otapack sign)
# With neither a key nor OTAPACK_TRUST, otapack makes a development key pair and says so loudly.
# BR2_REPRODUCIBLE=y adds --reproducible (SOURCE_DATE_EPOCH is exported by Buildroot then).
set -euo pipefail

binaries=${1:?usage: $0 BINARIES_DIR [ignored post-script args]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

otapack=${OTAPACK:-}
if [ -z "$otapack" ]; then
  if [ -n "${HOST_DIR:-}" ] && [ -x "$HOST_DIR/bin/otapack" ]; then otapack=$HOST_DIR/bin/otapack; else otapack=otapack; fi
fi
command -v "$otapack" >/dev/null || { echo "post-image: $otapack not found (install otapack on the build host or set OTAPACK)" >&2; exit 1; }

config=${OTAPACK_CONFIG:-$here/otapack.yaml}
image=${OTAPACK_IMAGE:-$binaries/sdcard.img}
out=${OTAPACK_OUTPUT:-$binaries/otapack}
[ -f "$config" ] || { echo "post-image: $config not found (set OTAPACK_CONFIG)" >&2; exit 1; }
[ -f "$image" ] || { echo "post-image: $image not found: run genimage before this script (or set OTAPACK_IMAGE)" >&2; exit 1; }

args=(convert "$image" -c "$config" -o "$out")
if [ -z "${OTAPACK_SIGNING_KEY:-}" ] && [ -n "${OTAPACK_TRUST:-}" ]; then
  args+=(--unsigned --trust "$OTAPACK_TRUST")
fi
if [ -n "${BR2_CONFIG:-}" ] && grep -qx 'BR2_REPRODUCIBLE=y' "$BR2_CONFIG" 2>/dev/null; then
  args+=(--reproducible)
fi

echo "post-image: otapack ${args[*]}"
"$otapack" "${args[@]}"
