#!/usr/bin/env bash
# build-squash.sh: build REAL dracut initrds whose root sits in a squashfs or erofs image inside
# the cpio (issue 16), made by Debian trixie's dracut and its squash modules in a trixie chroot.
#
#   sample_initrds/build-squash.sh [OUTDIR]     (default: sample_initrds/real/squash/, ignored)
#
# Images, one dracut configuration (--no-hostonly, trixie's kernel, --zstd), with and without
# squash, so a reader can compare the squashed trees with the plain one:
#   dracut-trixie.img            no squash
#   dracut-trixie-squashfs.img   --add squash-squashfs (inner squashfs-root.img)
#   dracut-trixie-erofs.img      --add squash-erofs    (inner erofs-root.img)
#   trixie-vmlinuz               the chroot's kernel, for boot tests of these images
#   erofs-utils/                 the chroot's mkfs.erofs, fsck.erofs, dump.erofs, runnable here
#
# The chroot is made once with debootstrap (variant minbase) in OUTDIR/.chroot and reused; an
# image that exists is skipped (delete it to rebuild; delete .chroot to rebuild the chroot).
# Each file is written under a hidden temporary name and renamed into place once complete and
# verified. Logs go to OUTDIR/.logs/. Run as root (debootstrap, chroot, mounts).
#
# The Debian archive is the one this machine's apt already uses: the first URIs: of a
# non-security stanza in /etc/apt/sources.list.d/*.sources, else the first `deb` line of
# /etc/apt/sources.list (DEBIAN_MIRROR=URL overrides). It is never printed, so it stays out
# of CI logs. Host packages: debootstrap (apt-get installed if missing); everything else,
# verification tools included (lsinitrd, unsquashfs, dump.erofs, fsck.erofs), runs in the chroot.
set -euo pipefail

die()  { echo "build-squash: error: $*" >&2; exit 1; }
note() { echo "build-squash: $*" >&2; }

[[ $EUID -eq 0 ]] || die "run as root: debootstrap, chroot and mounting /proc, /sys, /dev need it"

SUITE=trixie
# dracut-squash ships modules.d/*squash* (squash-lib, squash-squashfs, squash-erofs) in 106;
# dracut-core only recommends systemd, which the squash modules require (systemd-initrd).
# systemd-sysv (recommended by dracut-core) gives halt/poweroff/reboot to its shutdown module.
PACKAGES=(dracut dracut-core dracut-squash squashfs-tools erofs-utils systemd systemd-sysv zstd
          cpio kmod binutils)
KERNEL_PACKAGE=linux-image-amd64
COMPRESS=--zstd

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/sample_initrds/real/squash}
mkdir -p "$OUT/.logs"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/.logs
CHROOT=$OUT/.chroot
CHROOT_STAMP=$CHROOT/.footprint-chroot      # what the chroot was made with
CHROOT_WANT="$SUITE ${PACKAGES[*]} $KERNEL_PACKAGE"

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }     # bash 5 microsecond clock
secs()   { local us=$(( $(now_us) - $1 )); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }
row()    { printf '%-28s %12s %7ss  %s\n' "$@"; }

# --- Mounts: /proc, /sys and /dev in a chroot, always unmounted (EXIT trap, also on error) ----
MOUNTED=()
chroot_mount() {    # chroot_mount ROOT
    local root=$1
    mount -t proc proc "$root/proc";   MOUNTED+=("$root/proc")
    mount -t sysfs sysfs "$root/sys";  MOUNTED+=("$root/sys")
    mount --bind /dev "$root/dev";     MOUNTED+=("$root/dev")
}
chroot_umount() {
    local i
    for (( i = ${#MOUNTED[@]} - 1; i >= 0; i-- )); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" \
            || note "could not unmount ${MOUNTED[i]}"
    done
    MOUNTED=()
}
mounts_under() { awk -v p="$1/" '{ m = $2; gsub(/\\040/, " ", m) } index(m "/", p) == 1' /proc/mounts; }
remove_tree() {     # never through a mount: a bound /dev would be emptied
    [[ -e $1 ]] || return 0
    [[ -z $(mounts_under "$1") ]] || die "$1 still has mounts: $(mounts_under "$1" | cut -d' ' -f2)"
    rm -rf --one-file-system "$1"
}
cleanup() {
    chroot_umount
    rm -f "$OUT"/.*.partial.$$
    rm -rf "$CHROOT/tmp/footprint"
    [[ -z ${CHROOT_PARTIAL:-} ]] || remove_tree "$CHROOT_PARTIAL"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

# The Debian archive this machine's apt uses: debian_mirror, from lib.sh.
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- 1. The trixie chroot, made once ----------------------------------------------------------
# debootstrap (minbase) with dracut, its squash modules, both filesystems' tools and systemd;
# then the kernel with apt-get inside the chroot, with dracut's kernel hook switched off for
# that install (run-parts skips a non-executable hook), since it would build an initrd for
# /boot we never use (a minute of CPU). The chroot is renamed into place once complete.
CHROOT_PARTIAL=""
make_chroot() {
    local mirror t0 hooks=() h
    if [[ -f $CHROOT_STAMP && $(cat "$CHROOT_STAMP") == "$CHROOT_WANT" ]]; then
        row "(chroot $SUITE)" "-" "0.0" "cached in $CHROOT"
        return 0
    fi
    t0=$(now_us)
    remove_tree "$CHROOT"
    command -v debootstrap >/dev/null || {
        note "installing debootstrap (log: $LOGS/apt.log)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >"$LOGS/apt.log" 2>&1 || note "apt-get update failed"
        apt-get install -y -qq --no-install-recommends debootstrap >>"$LOGS/apt.log" 2>&1 \
            || die "could not install debootstrap (log: $LOGS/apt.log)"
    }
    [[ -e /usr/share/debootstrap/scripts/$SUITE ]] \
        || die "this debootstrap does not know $SUITE: install a newer debootstrap"
    mirror=$(debian_mirror) \
        || die "no Debian archive found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: set DEBIAN_MIRROR=URL"
    CHROOT_PARTIAL=$OUT/.chroot.partial
    remove_tree "$CHROOT_PARTIAL"
    note "debootstrap $SUITE (minbase) from this machine's apt archive (log: $LOGS/debootstrap.log)"
    debootstrap --variant=minbase --components=main \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "$SUITE" "$CHROOT_PARTIAL" "$mirror" >"$LOGS/debootstrap.log" 2>&1 \
        || { tail -n 20 "$LOGS/debootstrap.log" >&2; die "debootstrap failed (log: $LOGS/debootstrap.log)"; }
    for h in "$CHROOT_PARTIAL"/etc/kernel/postinst.d/*dracut*; do
        [[ -x $h ]] && { chmod -x "$h"; hooks+=("$h"); }
    done
    chroot_mount "$CHROOT_PARTIAL"
    note "apt-get install $KERNEL_PACKAGE in the chroot (log: $LOGS/kernel.log)"
    chroot "$CHROOT_PARTIAL" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends $KERNEL_PACKAGE && apt-get clean" \
        >"$LOGS/kernel.log" 2>&1 \
        || { tail -n 20 "$LOGS/kernel.log" >&2; die "installing $KERNEL_PACKAGE failed (log: $LOGS/kernel.log)"; }
    chroot_umount
    for h in "${hooks[@]}"; do chmod +x "$h"; done
    echo "$CHROOT_WANT" >"$CHROOT_PARTIAL/.footprint-chroot"
    mv "$CHROOT_PARTIAL" "$CHROOT"
    CHROOT_PARTIAL=""
    row "(chroot $SUITE)" "$(du -sb "$CHROOT" | cut -f1)" "$(secs "$t0")" \
        "debootstrap minbase + $KERNEL_PACKAGE into $CHROOT"
}

# --- 2. Images ---------------------------------------------------------------------------------
# dracut runs in the chroot and writes into its /tmp; the image is verified there with the
# chroot's tools, then moved (same file system) to the hidden name and renamed into place.
FAILED=()
DETAIL=""
detail() { DETAIL+="$*"; }
build() {   # build NAME FUNCTION
    local name=$1 fn=$2 dest=$OUT/$1 t0 rc tmp=$OUT/.$1.partial.$$
    if [[ -s $dest ]]; then
        row "$name" "$(stat -c %s "$dest")" "0.0" "exists, skipped"
        return 0
    fi
    rm -rf "$CHROOT/tmp/footprint"
    mkdir -p "$CHROOT/tmp/footprint"
    TMP_IN=/tmp/footprint/$name         # path inside the chroot
    TMP_OUT=$CHROOT$TMP_IN
    t0=$(now_us)
    set +e
    ( set -e; DETAIL=""; "$fn"; printf '%s' "$DETAIL" >"$CHROOT/tmp/footprint/.detail" ) \
        >"$LOGS/$name.log" 2>&1
    rc=$?
    set -e
    if (( rc == 0 )) && [[ -s $TMP_OUT ]]; then
        chmod 0644 "$TMP_OUT"       # dracut creates 0600 files; tests may run unprivileged
        mv -f "$TMP_OUT" "$tmp"
        mv -f "$tmp" "$dest"
        row "$name" "$(stat -c %s "$dest")" "$(secs "$t0")" "$(cat "$CHROOT/tmp/footprint/.detail")"
    else
        row "$name" "-" "$(secs "$t0")" "FAILED (log: $LOGS/$name.log)"
        tail -n 15 "$LOGS/$name.log" | sed 's/^/    /' >&2
        FAILED+=("$name")
    fi
    rm -rf "$CHROOT/tmp/footprint"
}

KVER=""
# dracut in the chroot: generic (--no-hostonly), explicit kernel version (never `uname -r`,
# the host's), the same compressor for all three; extra arguments select the squash module.
run_dracut() {
    echo "+ dracut --no-hostonly $COMPRESS --force --kver $KVER $* $TMP_IN"
    in_chroot dracut --no-hostonly "$COMPRESS" --force --kver "$KVER" "$@" "$TMP_IN"
    in_chroot lsinitrd "$TMP_IN" >"$TMP_OUT.lsinitrd"
    grep -q 'usr/lib/systemd/systemd$' "$TMP_OUT.lsinitrd" \
        || { echo "no usr/lib/systemd/systemd in the image (lsinitrd)"; return 1; }
}
# The inner image, cut out with lsinitrd -f, checked by its magic and listed by its own tools.
inner_image() {     # inner_image NAME: prints the facts as detail
    local inner=$1 path files bytes comp
    path=$(awk -v n="$inner" '$NF == n || $NF ~ ("/" n "$") { print $NF; exit }' "$TMP_OUT.lsinitrd")
    [[ -n $path ]] || { echo "no $inner in the image (lsinitrd)"; return 1; }
    in_chroot lsinitrd -f "$path" "$TMP_IN" >"$TMP_OUT.inner"
    case $inner in
        squashfs-root.img)
            [[ $(head -c 4 "$TMP_OUT.inner") == hsqs ]] || { echo "$path: no squashfs magic"; return 1; }
            in_chroot unsquashfs -s "$TMP_IN.inner" | tee "$TMP_OUT.super"
            comp=$(awk '/^Compression / {print $2}' "$TMP_OUT.super")
            comp+=" $(awk '/^Block size / {print $3}' "$TMP_OUT.super")B blocks"
            in_chroot unsquashfs -lls -d '' "$TMP_IN.inner" >"$TMP_OUT.list"
            # Regular files: mode starting with '-'; size is the 3rd column.
            files=$(awk '$1 ~ /^-/ {n++} END {print n+0}' "$TMP_OUT.list")
            bytes=$(awk '$1 ~ /^-/ {s += $3} END {printf "%d", s}' "$TMP_OUT.list")
            ;;
        erofs-root.img)
            [[ $(od -An -tx4 -j1024 -N4 "$TMP_OUT.inner" | tr -d ' ') == e0f5e1e2 ]] \
                || { echo "$path: no erofs magic at 1024"; return 1; }
            in_chroot dump.erofs "$TMP_IN.inner" | tee "$TMP_OUT.super"
            in_chroot dump.erofs -S "$TMP_IN.inner" >"$TMP_OUT.stats"
            in_chroot fsck.erofs --extract="$TMP_IN.tree" "$TMP_IN.inner"
            # No -z (dracut passes none unless --squash-compressor): every file stored plain.
            if grep -q 'compressed files: *0$' "$TMP_OUT.stats"; then
                comp="uncompressed"
            else
                comp=$(awk -F': *' 'tolower($1) ~ /compr_alg|compression/ {print $2}' "$TMP_OUT.super")
                comp="compressed ${comp:-(algorithm not shown by dump.erofs)}"
            fi
            comp+=" $(awk '/^Filesystem blocksize:/ {print $3}' "$TMP_OUT.super")B blocks"
            files=$(find "$TMP_OUT.tree" -type f | wc -l)
            bytes=$(find "$TMP_OUT.tree" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
            rm -rf "$TMP_OUT.tree"
            ;;
    esac
    detail "/$path $(stat -c %s "$TMP_OUT.inner") B, ${comp:-?}, $files files $bytes B"
}
build_plain()    { run_dracut; detail "$(grep -c . "$TMP_OUT.lsinitrd") lsinitrd lines"; }
build_squashfs() { run_dracut --add squash-squashfs; inner_image squashfs-root.img; }
build_erofs()    { run_dracut --add squash-erofs; inner_image erofs-root.img; }

printf '%-28s %12s %8s  %s\n' "image" "bytes" "time" "notes"
T_ALL=$(now_us)
make_chroot
KVER=$(cd "$CHROOT/lib/modules" && ls -d [0-9]* | sort -V | tail -n 1)
[[ -n $KVER && -f $CHROOT/boot/vmlinuz-$KVER ]] || die "no kernel in $CHROOT (lib/modules, boot/vmlinuz-*)"
in_chroot dracut --list-modules --kver "$KVER" 2>/dev/null >"$LOGS/dracut-modules.txt" || true
for m in squash-squashfs squash-erofs; do
    grep -qx "$m" "$LOGS/dracut-modules.txt" || note "dracut in the chroot does not list $m"
done
chroot_mount "$CHROOT"

echo "# $SUITE dracut $(in_chroot dpkg-query -W -f='${Version}' dracut-core), kernel $KVER, in $OUT"
if [[ ! -s $OUT/trixie-vmlinuz ]]; then
    cp "$CHROOT/boot/vmlinuz-$KVER" "$OUT/.trixie-vmlinuz.partial.$$"
    mv "$OUT/.trixie-vmlinuz.partial.$$" "$OUT/trixie-vmlinuz"
fi
row trixie-vmlinuz "$(stat -c %s "$OUT/trixie-vmlinuz")" "0.0" "vmlinuz-$KVER"

# The chroot's erofs-utils (trixie's 1.8: lzma, deflate, zstd; bookworm's 1.5 has lz4 only),
# runnable on this host through the chroot's own dynamic loader and libraries, for the tests'
# FOOTPRINT_MKFS_EROFS and FOOTPRINT_FSCK_EROFS. Written every run: they name the chroot's path.
mkdir -p "$OUT/erofs-utils"
for tool in mkfs.erofs fsck.erofs dump.erofs; do
    printf '#!/bin/sh\nexec "%s" --library-path "%s" "%s" "$@"\n' \
        "$CHROOT/usr/lib64/ld-linux-x86-64.so.2" \
        "$CHROOT/usr/lib/x86_64-linux-gnu" "$CHROOT/usr/bin/$tool" >"$OUT/erofs-utils/$tool"
    chmod 755 "$OUT/erofs-utils/$tool"
done
row erofs-utils/ "-" "0.0" "$(in_chroot dpkg-query -W -f='${Version}' erofs-utils), run from $CHROOT"
build dracut-trixie.img          build_plain
build dracut-trixie-squashfs.img build_squashfs
build dracut-trixie-erofs.img    build_erofs
row "(total)" "" "$(secs "$T_ALL")" ""

(( ${#FAILED[@]} == 0 )) || die "failed: ${FAILED[*]} (logs in $LOGS)"
