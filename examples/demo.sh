#!/usr/bin/env bash
# npm run demo: build the sample image, convert it, and prove the result with the real tools.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/cli/main.js ] || npm run build --silent
work=examples/work
rm -rf "$work" && mkdir -p "$work"
otapack() { node bin/otapack "$@"; }

echo "== 1. a Buildroot-style input image"
bash examples/build-sample-image.sh "$work"

echo; echo "== 2. release keys (signing key, certificate, AES key)"
otapack keygen --out "$work/keys" --cn "sample release" -q && ls -l "$work/keys"

echo; echo "== 3. what convert will do"
otapack inspect "$work/sdcard.img" -c examples/otapack.yaml

echo; echo "== 4. convert"
otapack convert "$work/sdcard.img" -c examples/otapack.yaml -o "$work/out" \
  --key "$work/keys/signing.key" --cert "$work/keys/signing.crt" --aes-key "$work/keys/aes.key"

echo; echo "== 5. verify the update bundle"
otapack verify "$work/out/sdcard.swu" --trust "$work/keys/signing.crt" --aes-key "$work/keys/aes.key"

echo; echo "== 6. cross-check with the real tools"
sfdisk --verify "$work/out/sdcard.img" | grep -v "^$"
for p in 2 3 4; do
  start=$(sfdisk --json "$work/out/sdcard.img" | node -e "let j='';process.stdin.on('data',d=>j+=d).on('end',()=>console.log(JSON.parse(j).partitiontable.partitions[$p-1].start))")
  printf 'p%s: ' "$p"; e2fsck -fn "$work/out/sdcard.img?offset=$((start*512))" 2>&1 | tail -1
done
TMPDIR=$(mktemp -d) swupdate -c -k "$work/keys/signing.crt" -K "$work/keys/aes.key" -H sample-board:1.0 \
  -e stable,copy2 -i "$work/out/sdcard.swu" 2>&1 | grep -E 'SWUPDATE successful|ERROR' || true
echo; echo "demo done: outputs in $work/out"
