#!/usr/bin/env bash
# build-arm64.sh: real arm64 images from Debian 12's arm64 packages, made by the real
# generators running in an arm64 chroot under qemu-user-static.
#
#   sample_initrds/build-arm64.sh [OUTDIR]     (default: sample_initrds/real/arm64/, ignored)
#
# Writes, in OUTDIR:
#   vmlinuz              linux-image-arm64's kernel (an EFI zboot image holding a gzip'ed arm64
#                        Image on Debian 12), with config and System.map beside it
#   initramfs-tools.img  what the kernel package's postinst hook runs: update-initramfs -c,
#                        Debian's defaults (MODULES=most, COMPRESS=zstd, BUSYBOX=auto); the
#                        slow one under qemu-user (ITOOLS=0 skips it)
#   kdump-tools.img      kdump-tools' own initrd: its kernel hook's steps replayed (confdir
#                        /var/lib/kdump/initramfs-tools, MODULES=dep, KDUMP=y); MODULES=dep cannot
#                        find the root device in a chroot, so, as build-real.sh does, MODULES=list
#                        with the modules dep picks on a virtio VM with an ext4 root
#   root/                the chroot itself: arm64 kexec-tools and busybox-static, what
#                        `calibrate --kdump --stage1-root` runs `kexec -p` with
#   manifest.json        kver, package versions, the files
#
# Steps (each cached: an output that exists is kept; delete OUTDIR to rebuild):
# 1. mmdebstrap --arch=arm64 bookworm (variant apt, no recommends) with linux-image-arm64,
#    initramfs-tools, kdump-tools, kexec-tools, busybox-static, zstd, from the machine's own
#    Debian archive (read from /etc/apt/sources.list* at run time: lib.sh's debian_mirror;
#    DEBIAN_MIRROR=URL overrides). The kernel hooks of kdump-tools and initramfs-tools are
#    kept out of this install (dpkg path-exclude): kdump-tools' MODULES=dep fails in a chroot
#    and would fail the kernel's postinst, and the steps below run each one as its own cached
#    step.
# 2. kdump-tools.img: mkinitramfs -d /var/lib/kdump/initramfs-tools in the chroot (a private
#    mount namespace with /proc, /sys and /dev mounted).
# 3. initramfs-tools.img: update-initramfs -c -k KVER in the chroot, as the hook would.
# Measured on a 2-core x86_64 machine under qemu-user: see sample_initrds/README.md.
# Environment: ITOOLS=0 (no initramfs-tools.img), SUITE (default bookworm), DEBIAN_MIRROR=URL.
# Needs root, mmdebstrap, arch-test, qemu-user-static and binfmt-support (binfmt_misc registered).
set -euo pipefail

die()  { echo "build-arm64: error: $*" >&2; exit 1; }
note() { echo "build-arm64: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/sample_initrds/real/arm64}
SUITE=${SUITE:-bookworm}
PACKAGES="linux-image-arm64 initramfs-tools kdump-tools kexec-tools busybox-static zstd"
KDUMP_FALLBACK_MODULES="virtio_pci virtio_mmio virtio_blk virtio_scsi sd_mod nvme ext4"

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }
secs()   { local us=$(( $(now_us) - $1 )); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }
step()   { printf 'build-arm64: %-40s %7ss\n' "$1" "$(secs "$2")"; }

if [[ -s $OUT/vmlinuz && ( ${ITOOLS:-1} == 0 || -s $OUT/initramfs-tools.img ) && -s $OUT/kdump-tools.img \
      && -s $OUT/manifest.json && -x $OUT/root/sbin/kexec ]]; then
    echo "build-arm64: $OUT is built (kernel $(sed -n 's/.*"kver": "\([^"]*\)".*/\1/p' "$OUT/manifest.json")); delete it to rebuild"
    exit 0
fi
(( EUID == 0 )) || die "run as root (mmdebstrap, chroot, mount namespaces)"
for tool in mmdebstrap:mmdebstrap arch-test:arch-test qemu-aarch64-static:qemu-user-static unshare:util-linux; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing — apt-get install ${tool#*:}"
done
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    [[ -e /proc/sys/fs/binfmt_misc/register ]] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    command -v update-binfmts >/dev/null && update-binfmts --enable qemu-aarch64 2>/dev/null || true
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] \
        || die "arm64 binaries cannot run here: no binfmt_misc entry qemu-aarch64 (apt-get install qemu-user-static binfmt-support)"
fi

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$OUT/.logs"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/.logs
ROOT=$OUT/root
T_ALL=$(now_us)

# --- 1. the chroot ------------------------------------------------------------------------------
if [[ ! -x $ROOT/sbin/kexec || ! -f $ROOT/.complete ]]; then
    mirror=$(debian_mirror) \
        || die "no Debian archive in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: set DEBIAN_MIRROR=URL"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    signed=""; [[ -f $keyring ]] && signed="[signed-by=$keyring] "
    rm -rf "$ROOT" "$OUT/.root.partial"
    t0=$(now_us)
    # shellcheck disable=SC2086  # PACKAGES is a list
    mmdebstrap --arch=arm64 --variant=apt --mode=root \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/etc/kernel/postinst.d/kdump-tools' \
        --dpkgopt='path-exclude=/etc/kernel/postinst.d/initramfs-tools' \
        --include="${PACKAGES// /,}" \
        "$SUITE" "$OUT/.root.partial" "deb $signed$mirror $SUITE main" \
        >"$LOGS/mmdebstrap.log" 2>&1 \
        || { sed -E 's#//[^/ ]+#//ARCHIVE#g' "$LOGS/mmdebstrap.log" | tail -n 15 >&2
             die "mmdebstrap failed (log: $LOGS/mmdebstrap.log)"; }
    touch "$OUT/.root.partial/.complete"
    mv "$OUT/.root.partial" "$ROOT"
    step "chroot (mmdebstrap arm64 $SUITE)" "$t0"
fi
KVER=$(basename "$(compgen -G "$ROOT/lib/modules/*-arm64" | sort -V | tail -n 1)")
[[ -n $KVER && -f $ROOT/boot/vmlinuz-$KVER ]] || die "no arm64 kernel in $ROOT/boot"

in_root() {         # in_root CMD...: run in the chroot with /proc, /sys, /dev of its own
    unshare -m --propagation private sh -c '
        r=$1; shift
        mount -t proc proc "$r/proc" && mount --rbind /sys "$r/sys" && mount --rbind /dev "$r/dev" || exit 1
        exec chroot "$r" "$@"' in_root "$ROOT" "$@"
}

for f in vmlinuz config System.map; do
    [[ -s $OUT/$f ]] || cp "$ROOT/boot/$f-$KVER" "$OUT/$f"
done

# --- 2. kdump-tools.img: kdump-tools' kernel hook, replayed (build-real.sh's step 2) -----------
if [[ ! -s $OUT/kdump-tools.img ]]; then
    t0=$(now_us)
    in_root sh -eu -c '
        kver=$1 fallback=$2 dir=/var/lib/kdump/initramfs-tools
        mkdir -p /var/lib/kdump
        rm -rf "$dir"; cp -pr /etc/initramfs-tools "$dir"
        mkdir -p "$dir/conf.d"; echo "MODULES=list" >"$dir/conf.d/zzz-kdump"
        printf "%s\n" $fallback >>"$dir/modules"
        echo "KDUMP=y" >>"$dir/initramfs.conf"
        rm -f /tmp/kdump-tools.img
        mkinitramfs -d "$dir" -o /tmp/kdump-tools.img "$kver"' \
        kdump "$KVER" "$KDUMP_FALLBACK_MODULES" >"$LOGS/kdump-tools.log" 2>&1 \
        || die "mkinitramfs (kdump-tools) failed (log: $LOGS/kdump-tools.log)"
    mv "$ROOT/tmp/kdump-tools.img" "$OUT/kdump-tools.img"
    step "kdump-tools.img (MODULES=list)" "$t0"
fi

# --- 3. initramfs-tools.img: update-initramfs, as the kernel's postinst hook runs it -----------
if [[ ${ITOOLS:-1} == 1 && ! -s $OUT/initramfs-tools.img ]]; then
    t0=$(now_us)
    if [[ ! -s $ROOT/boot/initrd.img-$KVER ]]; then
        in_root update-initramfs -c -k "$KVER" >"$LOGS/initramfs-tools.log" 2>&1 \
            || die "update-initramfs failed (log: $LOGS/initramfs-tools.log)"
    fi
    cp "$ROOT/boot/initrd.img-$KVER" "$OUT/.initramfs-tools.img.partial"
    mv "$OUT/.initramfs-tools.img.partial" "$OUT/initramfs-tools.img"
    step "initramfs-tools.img" "$t0"
fi

version() { chroot "$ROOT" dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
cat >"$OUT/manifest.json" <<EOF
{
  "arch": "aarch64",
  "suite": "$SUITE",
  "kver": "$KVER",
  "linux-image": "$(version "linux-image-$KVER")",
  "initramfs-tools": "$(version initramfs-tools)",
  "kdump-tools": "$(version kdump-tools)",
  "kexec-tools": "$(version kexec-tools)",
  "kernel": "vmlinuz",
  "images": {"initramfs-tools": "$( [[ -s $OUT/initramfs-tools.img ]] && echo initramfs-tools.img || true)", "kdump-tools": "kdump-tools.img"},
  "kdump_modules": "list: $KDUMP_FALLBACK_MODULES",
  "stage1_root": "root"
}
EOF
step "all" "$T_ALL"

