#!/usr/bin/env bash
# build-rootdisk.sh: a real Debian 12 root disk with kdump-tools, for `--root-disk`: the disk a
# capture kernel mounts to save a dump, and the kdump initrd that disk's own packages made.
#
#   sample_initrds/build-rootdisk.sh [OUTDIR]   (default: sample_initrds/real/rootdisk/, ignored)
#
# Writes OUTDIR/rootdisk.raw (raw, a whole-disk ext4: root=/dev/vda), OUTDIR/kdump-initrd.img
# (the disk's /var/lib/kdump/initrd.img-KVER, the IMAGE under test), OUTDIR/vmlinuz (the disk's
# kernel) and OUTDIR/kver. Cached: does nothing when all four exist (delete OUTDIR to rebuild).
# Needs root, debootstrap, e2fsprogs and qemu-system-x86; prints how long each step takes.
#
# Environment: KVER=6.1.0-NN-amd64 (default: the host's newest /boot/vmlinuz-*-amd64, so the
# disk's kernel is the one the tests boot; the disk gets linux-image-amd64 when that version
# is not in the archive), ACCEL=tcg|kvm (the setup boot; default tcg), DISK_SIZE (default 2G).
#
# Steps:
# 1. debootstrap bookworm minbase (+ systemd, systemd-sysv, udev) from the machine's own apt
#    sources: the archive's address is read from /etc/apt/sources.list.d/*.sources (URIs:) or
#    /etc/apt/sources.list at run time and the sources file is copied into the disk as it is.
# 2. apt-get install, in the chroot, the kernel, kdump-tools, makedumpfile, kexec-tools and
#    zstd, with USE_KDUMP=1. kdump-tools' kernel hook builds /var/lib/kdump/initrd.img-KVER with
#    MODULES=dep, which must find the device of `/`: in a plain chroot it cannot (`/` is not a
#    mount point there), so the root directory is bind-mounted onto itself while it runs.
# 3. mkfs.ext4 -d ROOTDIR into a sparse raw file (e2fsprogs; nothing is mounted).
# 4. One setup boot of the disk under QEMU (its own kernel and initrd, crashkernel=256M, 2 GiB):
#    on its first boot kdump-tools finds no latest_sysctls-KVER and rebuilds its initrd inside
#    the guest, so the disk then holds the initrd an installed system really uses; a oneshot
#    unit (footprint-setup.service, wanted only through this boot's command line) powers off.
# 5. debugfs (e2fsprogs) copies the disk's kdump initrd and kernel out.
set -euo pipefail

die()  { echo "build-rootdisk: error: $*" >&2; exit 1; }
note() { echo "build-rootdisk: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/sample_initrds/real/rootdisk}
SUITE=bookworm
DISK_SIZE=${DISK_SIZE:-2G}
ACCEL=${ACCEL:-tcg}
SETUP_TIMEOUT=${SETUP_TIMEOUT:-1200}

if [[ -s $OUT/rootdisk.raw && -s $OUT/kdump-initrd.img && -s $OUT/vmlinuz && -s $OUT/kver ]]; then
    echo "build-rootdisk: $OUT is built (kernel $(cat "$OUT/kver")); delete it to rebuild"
    exit 0
fi
(( EUID == 0 )) || die "run as root (debootstrap, chroot, mkfs.ext4 -d with owners)"
for tool in debootstrap:debootstrap mkfs.ext4:e2fsprogs debugfs:e2fsprogs \
            qemu-system-x86_64:qemu-system-x86; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing — apt-get install ${tool#*:}"
done

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }
secs()   { local us=$(( $(now_us) - $1 )); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }
T_ALL=$(now_us)
step() { printf 'build-rootdisk: %-44s %7ss\n' "$1" "$(secs "$2")"; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
ROOT=$WORK/root
MOUNTS=()
cleanup() {
    local i
    for (( i = ${#MOUNTS[@]} - 1; i >= 0; i-- )); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mount_in() { mount "$@"; MOUNTS+=("${!#}"); }
unmount_all() {
    local i
    for (( i = ${#MOUNTS[@]} - 1; i >= 0; i-- )); do umount "${MOUNTS[i]}"; done
    MOUNTS=()
}

# --- The archive, from this machine's apt sources (never written here) ------------------------
# The first URIs: of a deb822 stanza whose Suites: has $SUITE, else the first one-line `deb`.
mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk -v suite="$SUITE" '
            /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
            tolower($1) == "uris:" { u = $2 }
            tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
            END { if (u != "" && s) print u }' "$f" | head -n 1
    done
    if [[ -f /etc/apt/sources.list ]]; then
        awk -v suite="$SUITE" '$1 == "deb" && $0 ~ " " suite " " {
            for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; exit } }' /etc/apt/sources.list
    fi
}
MIRROR=$(mirror | head -n 1)
[[ -n $MIRROR ]] || die "no $SUITE archive in /etc/apt/sources.list.d/*.sources or" \
    "/etc/apt/sources.list: add one, then run again"

if [[ -z ${KVER:-} ]]; then
    KVER=$(for f in /boot/vmlinuz-*-amd64; do [[ -f $f ]] && echo "${f#/boot/vmlinuz-}"; done \
           | sort -V | tail -n 1)
fi
note "suite $SUITE, kernel ${KVER:-linux-image-amd64}, disk $DISK_SIZE, setup boot under $ACCEL"

# --- 1. debootstrap ---------------------------------------------------------------------------
t0=$(now_us)
debootstrap --variant=minbase --include=systemd,systemd-sysv,udev "$SUITE" "$ROOT" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
step "debootstrap $SUITE minbase" "$t0"

# --- 2. the kernel and kdump-tools, in the chroot ---------------------------------------------
t0=$(now_us)
rm -f "$ROOT/etc/apt/sources.list"
found=0
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
    if [[ -f $f ]]; then
        mkdir -p "$ROOT${f%/*}"
        cp "$f" "$ROOT$f"
        found=1
    fi
done
(( found )) || die "no apt sources to copy into the disk"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"    # start no service in the chroot
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
echo footprint-rootdisk >"$ROOT/etc/hostname"
echo "/dev/vda / ext4 errors=remount-ro 0 1" >"$ROOT/etc/fstab"
mount_in --bind "$ROOT" "$ROOT"     # `/` a mount point inside, for MODULES=dep (see above);
mount_in -t proc proc "$ROOT/proc"  # first, or the (non-recursive) bind would hide these
mount_in -t sysfs sysfs "$ROOT/sys"
mount_in --bind /dev "$ROOT/dev"
in_root() { chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
in_root debconf-set-selections <<'EOF'
kdump-tools kdump-tools/use_kdump boolean true
kexec-tools kexec-tools/load_kexec boolean false
EOF
in_root apt-get update -qq >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; die "apt-get update failed"; }
kernel_pkg=linux-image-amd64
if [[ -n ${KVER:-} ]] && in_root apt-cache show "linux-image-$KVER" >/dev/null 2>&1; then
    kernel_pkg=linux-image-$KVER
else
    note "linux-image-${KVER:-?} is not in the archive: installing linux-image-amd64"
fi
# zstd: what initramfs-tools recommends, for its default COMPRESS=zstd (else it falls back to gzip).
in_root apt-get install -y -qq --no-install-recommends "$kernel_pkg" kdump-tools makedumpfile \
    kexec-tools zstd >>"$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install failed"; }
KVER=$(cd "$ROOT/lib/modules" && ls | sort -V | tail -n 1)
sed -i 's/^#\?USE_KDUMP=.*/USE_KDUMP=1/' "$ROOT/etc/default/kdump-tools"
grep -qx 'USE_KDUMP=1' "$ROOT/etc/default/kdump-tools" || die "USE_KDUMP=1 not set"
# The hook ran at install time only if kdump-tools was configured before the kernel: run it.
in_root /etc/kernel/postinst.d/kdump-tools "$KVER" >>"$WORK/apt.log" 2>&1 \
    || { tail -n 30 "$WORK/apt.log" >&2; die "kdump-tools' kernel hook failed"; }
[[ -s $ROOT/var/lib/kdump/initrd.img-$KVER ]] || die "no /var/lib/kdump/initrd.img-$KVER"
cat >"$ROOT/etc/systemd/system/footprint-setup.service" <<'EOF'
# build-rootdisk.sh's setup boot only (wanted from its command line, never enabled): once
# kdump-tools has loaded (and rebuilt its initrd), say so and power off.
[Unit]
Description=footprint setup boot: power off once kdump-tools has loaded
After=kdump-tools.service
[Service]
Type=oneshot
StandardOutput=journal+console
ExecStart=/bin/sh -c 'ls -l /var/lib/kdump; echo footprint-setup: done; systemctl poweroff'
EOF
rm -f "$ROOT/usr/sbin/policy-rc.d"
in_root apt-get clean
unmount_all
step "apt-get install $kernel_pkg kdump-tools" "$t0"

# --- 3. the disk, without mounting it --------------------------------------------------------
t0=$(now_us)
DISK=$WORK/rootdisk.raw
truncate -s "$DISK_SIZE" "$DISK"
mkfs.ext4 -q -F -L footprint-root -d "$ROOT" "$DISK"
step "mkfs.ext4 -d ($(du -sh "$ROOT" | cut -f1) of files)" "$t0"

# --- 4. the setup boot ----------------------------------------------------------------------
t0=$(now_us)
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
rm -rf "$ROOT"
cpu=(); [[ $ACCEL == tcg ]] && cpu=(-cpu max)
timeout "$SETUP_TIMEOUT" qemu-system-x86_64 -machine pc -accel "$ACCEL" "${cpu[@]}" -m 2048 -smp 1 \
    -nodefaults -display none -no-reboot -serial "file:$WORK/setup-console.log" \
    -drive "file=$DISK,format=raw,if=virtio" -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 crashkernel=256M panic=-1 systemd.wants=footprint-setup.service" \
    || { tail -n 30 "$WORK/setup-console.log" >&2; die "the setup boot did not power off in $SETUP_TIMEOUT s"; }
grep -q "footprint-setup: done" "$WORK/setup-console.log" \
    || { tail -n 30 "$WORK/setup-console.log" >&2; die "the setup boot stopped before footprint-setup.service"; }
step "setup boot (kdump-tools rebuilds its initrd)" "$t0"

# --- 5. the disk's own kdump initrd and kernel -----------------------------------------------
t0=$(now_us)
debugfs -R "stat /var/lib/kdump/latest_sysctls-$KVER" "$DISK" >/dev/null 2>&1 \
    || note "no /var/lib/kdump/latest_sysctls-$KVER after the setup boot"
debugfs -R "dump /var/lib/kdump/initrd.img-$KVER $WORK/kdump-initrd.img" "$DISK" 2>/dev/null
[[ -s $WORK/kdump-initrd.img ]] || die "could not read /var/lib/kdump/initrd.img-$KVER from the disk"
echo "$KVER" >"$WORK/kver"
chmod 0644 "$WORK/kdump-initrd.img" "$WORK/vmlinuz" "$DISK"
mv -f "$DISK" "$WORK/kdump-initrd.img" "$WORK/vmlinuz" "$WORK/kver" "$OUT/"
step "export the kdump initrd ($(stat -c %s "$OUT/kdump-initrd.img") bytes)" "$t0"
step "(total)" "$T_ALL"
