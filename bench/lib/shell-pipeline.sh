#!/usr/bin/env bash
# The practical limit otapack is measured against: the same bundle made by a shell pipeline
# of the standard tools, one pass over the image (zstd on every core | openssl AES-256-CBC |
# tee into sha256sum through a fifo), then sw-description, its CMS signature (openssl cms) and the cpio
# archive (GNU cpio -H crc, which computes the checksums).
# Usage: shell-pipeline.sh IMAGE OUT.swu SIGNING.key SIGNING.crt AES.key [LEVEL]
set -euo pipefail
img=$1 out=$2 key=$3 crt=$4 aes=$5 level=${6:-3}
read -r K IV <"$aes"
work=$(mktemp -d "$(dirname "$out")/.shell-pipeline.XXXXXX")
trap 'rm -rf "$work"' EXIT
name=rootfs.ext4.zst.enc
ivt=$(openssl rand -hex 16)
mkfifo "$work/tee"
sha256sum <"$work/tee" >"$work/sum" &
summer=$!
zstd -q -c -T0 "-$level" --no-progress "$img" \
  | openssl enc -aes-256-cbc -K "$K" -iv "$ivt" \
  | tee "$work/tee" >"$work/$name"
wait "$summer"
sha=$(cut -d' ' -f1 "$work/sum")
cat >"$work/sw-description" <<SWD
software =
{
    version = "1.0.0";
    description = "shell pipeline";
    hardware-compatibility = [ "1.0" ];
    stable =
    {
        copy1 =
        {
            images: (
                {
                    filename = "$name";
                    type = "raw";
                    device = "/dev/mmcblk0p2";
                    compressed = "zstd";
                    encrypted = true;
                    ivt = "$ivt";
                    sha256 = "$sha";
                }
            );
        };
        copy2 =
        {
            images: (
                {
                    filename = "$name";
                    type = "raw";
                    device = "/dev/mmcblk0p3";
                    compressed = "zstd";
                    encrypted = true;
                    ivt = "$ivt";
                    sha256 = "$sha";
                }
            );
        };
    };
}
SWD
openssl cms -sign -in "$work/sw-description" -out "$work/sw-description.sig" -signer "$crt" -inkey "$key" \
  -outform DER -nosmimecap -binary
(cd "$work" && printf '%s\n' sw-description sw-description.sig "$name" | cpio -o -H crc --quiet) >"$out"
