#!/usr/bin/env bash
# build-other-arches.sh: the next architectures after aarch64 (issue 17): Debian 12's kernel and
# static busybox for ppc64el and s390x, for a boot to a marker under qemu-system-ppc64 -machine
# pseries and qemu-system-s390x.
#
#   sample_initrds/build-other-arches.sh [OUTDIR]   (default: sample_initrds/real/other-arches/, ignored)
#
# OTHER_ARCHES (default "ppc64el s390x"): linux-image-<flavour> and busybox-static of each
# Debian architecture, DOWNLOADED with a private apt (its own sources list, lists and cache
# under OUTDIR/.cache/apt-ARCH; never installed) and extracted into OUTDIR/ARCH/: vmlinux or
# vmlinuz (the kernel), busybox (static), kver. A boot to a marker needs no more
# (tests/test_arm64.py writes the initrd with footprint's cpio writer).
set -euo pipefail

die()  { echo "build-other-arches: error: $*" >&2; exit 1; }
now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }
secs()   { local us=$(( $(now_us) - $1 )); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }
step()   { printf 'build-other-arches: %-40s %7ss\n' "$1" "$(secs "$2")"; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/sample_initrds/real/other-arches}
SUITE=${SUITE:-bookworm}
mkdir -p "$OUT/.logs"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/.logs
for tool in apt-get:apt dpkg-deb:dpkg; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing — apt-get install ${tool#*:}"
done
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
declare -A FLAVOUR=([ppc64el]=powerpc64le [s390x]=s390x [arm64]=arm64)
for darch in ${OTHER_ARCHES:-ppc64el s390x}; do
    [[ -n ${FLAVOUR[$darch]:-} ]] || die "OTHER_ARCHES: no kernel flavour known for $darch"
    dest=$OUT/$darch
    [[ -s $dest/kver && -s $dest/busybox ]] && continue
    t0=$(now_us)
    apt=$OUT/.cache/apt-$darch
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$dest"
    : >"$apt/status"
    mirror=$(debian_mirror) || die "no Debian archive: set DEBIAN_MIRROR=URL"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    signed=""; [[ -f $keyring ]] && signed="[signed-by=$keyring] "
    echo "deb $signed$mirror $SUITE main" >"$apt/sources.list"
    opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
          -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
          -o "Dir::State::status=$apt/status" -o APT::Sandbox::User=root
          -o "APT::Architectures=$darch" -o "APT::Architecture=$darch")
    apt-get -q "${opts[@]}" update >"$LOGS/apt-$darch.log" 2>&1 \
        || die "apt-get update ($darch) failed (log: $LOGS/apt-$darch.log)"
    meta=linux-image-${FLAVOUR[$darch]}
    pkg=$(apt-cache "${opts[@]}" depends "$meta" 2>/dev/null \
          | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [[ -n $pkg ]] || die "no kernel package behind $meta ($darch)"
    ( cd "$apt/debs" && apt-get -q "${opts[@]}" download "$pkg:$darch" "busybox-static:$darch" ) \
        >>"$LOGS/apt-$darch.log" 2>&1 || die "apt-get download ($darch) failed (log: $LOGS/apt-$darch.log)"
    rm -rf "$apt/x"; mkdir -p "$apt/x"
    for deb in "$apt"/debs/*.deb; do dpkg-deb -x "$deb" "$apt/x"; done
    kver=${pkg#linux-image-}
    k=$(compgen -G "$apt/x/boot/vmlinu[xz]-$kver" | head -n 1)
    [[ -n $k ]] || die "no kernel in $pkg"
    cp "$k" "$dest/$(basename "${k%-"$kver"}")"
    bb=$(compgen -G "$apt/x/bin/busybox" || compgen -G "$apt/x/usr/bin/busybox") \
        || die "no busybox in busybox-static ($darch)"
    cp "$bb" "$dest/busybox"
    echo "$kver" >"$dest/kver"
    rm -rf "$apt/x"
    step "$darch: $pkg, busybox-static" "$t0"
done
