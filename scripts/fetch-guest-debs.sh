#!/usr/bin/env bash
# fetch-guest-debs.sh [ARCH]: downloads and extracts the Debian 12 packages a QEMU test guest
# needs (a kernel, busybox-static, the SWUpdate and Mender clients and fw_printenv/fw_setenv with
# every runtime dependency), for ARCH = arm64 (default) or amd64, whatever the host architecture.
#
# apt itself resolves the dependencies, with a private state directory (lists, an empty dpkg
# status, cache) and APT::Architecture=ARCH: the host's dpkg database and architecture list are
# never touched, and no `dpkg --add-architecture` is needed. Packages are unpacked with
# `dpkg-deb -x` (no maintainer scripts run).
#
# Cache (OTAPACK_GUEST_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/otapack-guest):
#   apt-ARCH/        private apt state; apt-ARCH/resolved.txt = the pinned "name arch version" set
#   debs/ARCH/       the .deb files (apt's names carry the version)
#   sets/ARCH-KEY/   the unpacked tree; KEY = sha256 of resolved.txt, so a new package version
#                    gives a new directory and an unchanged set is reused without network access
# The set is resolved against the mirror once and then pinned (resolved.want records the package
# list it answers; another list resolves anew); OTAPACK_GUEST_REFRESH=1 re-resolves, and so does a
# download that fails because the mirror dropped a pinned version.
#
# Output on stdout, one KEY=VALUE a line (read by test/helpers/debs.ts):
#   ARCH KVER KERNEL MODULES ROOT RESOLVED DEBS PACKAGES DOWNLOADED_BYTES SECONDS
# Progress goes to stderr.
set -euo pipefail

ARCH=${1:-arm64}
case "$ARCH" in arm64|amd64) ;; *) echo "fetch-guest-debs: unsupported architecture $ARCH" >&2; exit 2 ;; esac
CACHE=${OTAPACK_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/otapack-guest}
KERNEL_META=${OTAPACK_GUEST_KERNEL:-linux-image-cloud-$ARCH}
# what the guest runs: busybox for everything, the SWUpdate and Mender clients, fw_printenv/fw_setenv
PACKAGES=${OTAPACK_GUEST_PACKAGES:-busybox-static swupdate libubootenv-tool mender-client}
STATE=$CACHE/apt-$ARCH
POOL=$CACHE/debs/$ARCH
start=$(date +%s.%N)

mkdir -p "$STATE/lists/partial" "$STATE/cache/archives/partial" "$POOL" "$CACHE/sets"
[ -e "$STATE/status" ] || : >"$STATE/status"

exec 9>"$CACHE/.lock-$ARCH"
flock 9   # one fetch per architecture at a time (parallel test files share the cache)

APT=(
  -o "APT::Architecture=$ARCH" -o "APT::Architectures::=$ARCH"
  -o "Dir::State::Lists=$STATE/lists" -o "Dir::State::status=$STATE/status"
  -o "Dir::Cache=$STATE/cache" -o "Dir::Cache::archives=$STATE/cache/archives"
  -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1"
  -o "APT::Install-Recommends=0" -o "APT::Install-Suggests=0"
  -o "Acquire::Retries=3"
)
log() { echo "fetch-guest-debs: $*" >&2; }

updated=0
apt_update() {
  [ $updated = 1 ] && return 0
  log "apt-get update (private $ARCH lists in $STATE)"
  apt-get -q "${APT[@]}" update >&2
  updated=1
}

# deb file name as apt writes it: name_version_arch.deb with ':' quoted as %3a
debname() { echo "${1}_${3//:/%3a}_${2}.deb"; }

resolve() {
  apt_update
  local kpkg kver_pkg tmp
  # the versioned kernel package the meta-package points at (the meta itself and its
  # initramfs-tools/kmod dependencies are not wanted: the harness builds its own initramfs)
  kpkg=$(apt-cache "${APT[@]}" depends "$KERNEL_META" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$kpkg" ] || { log "cannot resolve $KERNEL_META"; exit 1; }
  kver_pkg=$(apt-cache "${APT[@]}" policy "$kpkg" | awk '/Candidate:/{print $2}')
  tmp=$STATE/resolved.txt.new
  {
    # apt simulates installing the packages on an empty system: the full Depends/Pre-Depends closure
    # shellcheck disable=SC2086
    apt-get -s -q "${APT[@]}" install $PACKAGES |
      sed -n 's/^Inst \([^ ]*\) (\([^ ]*\) .*\[\([a-z0-9]*\)\]).*/\1 \3 \2/p'
    echo "$kpkg $ARCH $kver_pkg"
  } | LC_ALL=C sort -u >"$tmp"
  # "Inst NAME (VERSION ORIGINS [ARCH])": apt's simulation output, one line per package
  grep -q '^busybox-static ' "$tmp" || { log "resolution failed:"; cat "$tmp" >&2; exit 1; }
  mv "$tmp" "$STATE/resolved.txt"
  log "resolved $(wc -l <"$STATE/resolved.txt") packages"
}

resolved_now=0
# the pinned set answers one request: another package list (or kernel) resolves anew
WANT="$PACKAGES $KERNEL_META"
if [ "${OTAPACK_GUEST_REFRESH:-0}" = 1 ] || [ ! -s "$STATE/resolved.txt" ] || [ "$(cat "$STATE/resolved.want" 2>/dev/null)" != "$WANT" ]; then
  resolve
  resolved_now=1
  echo "$WANT" >"$STATE/resolved.want"
fi

# download what the pool lacks, by exact version
bytes=0
download_missing() {
  local missing=() name arch ver before
  while read -r name arch ver; do
    [ -s "$POOL/$(debname "$name" "$arch" "$ver")" ] || missing+=("$name:$arch=$ver")
  done <"$STATE/resolved.txt"
  [ ${#missing[@]} -gt 0 ] || return 0
  apt_update
  log "downloading ${#missing[@]} packages into $POOL"
  before=$(du -sb "$POOL" | cut -f1)
  (cd "$POOL" && apt-get -q "${APT[@]}" download "${missing[@]}" >&2) || return 1
  bytes=$(( bytes + $(du -sb "$POOL" | cut -f1) - before ))
}
if ! download_missing; then
  # a pinned version the mirror no longer has (Debian replaces security updates): resolve anew once
  [ $resolved_now = 0 ] || { log "download failed"; exit 1; }
  log "a pinned version is gone from the mirror; resolving the set again"
  resolve
  download_missing || { log "download failed"; exit 1; }
fi

KEY=$(sha256sum "$STATE/resolved.txt" | cut -c1-16)
SET=$CACHE/sets/$ARCH-$KEY
if [ ! -e "$SET/.complete" ]; then
  log "unpacking into $SET"
  rm -rf "$SET.tmp"
  mkdir -p "$SET.tmp/root"
  : >"$SET.tmp/debs.sha256"
  while read -r name arch ver; do
    f=$POOL/$(debname "$name" "$arch" "$ver")
    dpkg-deb -x "$f" "$SET.tmp/root"
    (cd "$POOL" && sha256sum "$(basename "$f")") >>"$SET.tmp/debs.sha256"
  done <"$STATE/resolved.txt"
  cp "$STATE/resolved.txt" "$SET.tmp/resolved.txt"
  rm -rf "$SET"
  mv "$SET.tmp" "$SET"
  touch "$SET/.complete"
fi

KPKG=$(awk '$1 ~ /^linux-image-[0-9]/{print $1}' "$SET/resolved.txt")
KVER=${KPKG#linux-image-}
KERNEL=$SET/root/boot/vmlinuz-$KVER
[ -s "$KERNEL" ] || { log "kernel $KERNEL missing"; exit 1; }
MODULES=$SET/root/lib/modules/$KVER
[ -d "$MODULES" ] || MODULES=$SET/root/usr/lib/modules/$KVER
end=$(date +%s.%N)

echo "ARCH=$ARCH"
echo "KVER=$KVER"
echo "KERNEL=$KERNEL"
echo "MODULES=$MODULES"
echo "ROOT=$SET/root"
echo "RESOLVED=$SET/resolved.txt"
echo "DEBS=$POOL"
echo "PACKAGES=$(wc -l <"$SET/resolved.txt")"
echo "DOWNLOADED_BYTES=$bytes"
echo "SECONDS=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')"
