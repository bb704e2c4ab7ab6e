#!/usr/bin/env bash
# Proves an installed otapack works as a user runs it: OTAPACK (the installed command, outside
# this checkout) run from a scratch folder outside the checkout, on files of that folder only.
# It prints its version report, converts the sample image (zstd, encrypted, signed), builds a gzip
# bundle unsigned, signs it and verifies both; Debian's swupdate client accepts both.
#
# usage: scripts/smoke-installed.sh OTAPACK GZIP_ENGINE
#   GZIP_ENGINE: the engine `otapack --version` must report for gzip (libdeflate or node:zlib)
# needs: what examples/build-sample-image.sh needs, and swupdate
set -euo pipefail
otapack=${1:?usage: $0 OTAPACK libdeflate|node:zlib}
engine=${2:?usage: $0 OTAPACK libdeflate|node:zlib}
checkout=$(cd "$(dirname "$0")/.." && pwd)
real=$(readlink -f "$(command -v "$otapack")")
case "$real" in "$checkout"/*) echo "smoke: $otapack is $real, inside the checkout: not an installed otapack" >&2; exit 1 ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/otapack-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
step() { echo "smoke: $*"; }

step "$otapack --version"
"$otapack" --version | tee version.txt
grep -q "^gzip codec: $engine " version.txt || { echo "smoke: expected the gzip codec to be $engine" >&2; exit 1; }
if grep -q ' MISSING ' version.txt; then echo "smoke: a tool is missing (see above)" >&2; exit 1; fi

# the user's own files: the image, the configuration (with the file it installs), the keys
bash "$checkout/examples/build-sample-image.sh" "$work/build" >/dev/null
cp "$checkout/examples/otapack.yaml" "$checkout/examples/motd" .
"$otapack" keygen --out keys --cn "smoke release" -q

step "convert the sample image (zstd, AES, signed)"
"$otapack" convert build/sdcard.img -c otapack.yaml -o out --key keys/signing.key --cert keys/signing.crt --aes-key keys/aes.key -q
"$otapack" verify out/sdcard.swu --trust keys/signing.crt --aes-key keys/aes.key -q

step "bundle a gzip payload unsigned, sign it, verify it"
head -c 3000000 build/sdcard.img > payload.img
cat > update.yaml <<'EOF'
version: "1.0.1"
hardware-compatibility: ["1.0"]
slots:
  copy1: { device: /dev/mmcblk0p2 }
  copy2: { device: /dev/mmcblk0p3 }
images:
  - { file: payload.img, type: raw, compress: zlib }
EOF
"$otapack" bundle update.yaml -o unsigned.swu --unsigned -q
"$otapack" sign unsigned.swu -o signed.swu --key keys/signing.key --cert keys/signing.crt -q
"$otapack" verify signed.swu --trust keys/signing.crt -q

# the real client is the judge: success is its success line and no [ERROR] (retried: see
# the oracle notes on its exit status)
client_ok() {
  local try out
  for try in 1 2 3; do
    out=$(TMPDIR=$(mktemp -d -p "$work") swupdate -c -k keys/signing.crt -H sample-board:1.0 -e stable,copy2 "$@" 2>&1 || true)
    if grep -q 'SWUPDATE successful' <<<"$out" && ! grep -q '\[ERROR\]' <<<"$out"; then return 0; fi
  done
  echo "$out" >&2
  return 1
}
step "swupdate -c accepts both bundles"
client_ok -K keys/aes.key -i out/sdcard.swu
client_ok -i signed.swu
step "ok ($otapack)"
