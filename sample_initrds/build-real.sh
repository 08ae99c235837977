#!/usr/bin/env bash
# build-real.sh: build large REAL initrd images from Debian's own packages, for the installed
# Debian kernel, so that footprint's integration tests run against images nobody here wrote.
#
#   sample_initrds/build-real.sh [OUTDIR]        (default: sample_initrds/real/, git-ignored)
#
# Environment:
#   KVER=6.1.0-NN-amd64   kernel to build for (default: newest /lib/modules/*-amd64)
#   KDUMP_MODULES=dep|list|most|netboot   force the kdump-tools image's MODULES= (see step 2)
#   ONLY="kdump-tools.img ..."   build only these images (build-kernels.sh uses it)
#
# Idempotent: an image that already exists is skipped (delete it to rebuild). Each image is
# written to a hidden temporary name in OUTDIR and renamed into place only once complete.
# Build logs go to OUTDIR/.logs/. Run as root: mkinitramfs/dracut need to read every module,
# and missing packages are installed with apt-get only when running as root.
#
# Debian 12 packages used: linux-image-amd64 (must be installed beforehand), initramfs-tools
# zstd xz-utils lz4 cpio kdump-tools dracut-core systemd binutils
# debian-installer-12-netboot-amd64 systemd-boot-efi. As root the script apt-get installs the
# missing ones (--no-install-recommends). busybox or busybox-static (kdump-tools depends on one)
# changes what mkinitramfs puts in (BUSYBOX=auto), as does any package adding initramfs hooks.
# The *-firmware and *-amdgpu images (step 6) also need iucode-tool, and Debian's
# non-free-firmware packages, which are downloaded to OUTDIR/.cache/ but never installed.
set -euo pipefail

die()  { echo "build-real: error: $*" >&2; exit 1; }
note() { echo "build-real: $*" >&2; }

# --- Kernel: the newest Debian kernel whose modules AND /boot files are present --------------
# (an orphan /lib/modules dir left by a removed kernel has no /boot/config-*, which
# mkinitramfs needs to check the kernel supports the codec, nor a vmlinuz for the UKI).
if [[ -z ${KVER:-} ]]; then
    KVER=$(for d in /lib/modules/*-amd64; do
               v=${d##*/}
               if [[ -d $d && -f /boot/config-$v && -f /boot/vmlinuz-$v ]]; then echo "$v"; fi
           done | sort -V | tail -n 1)
fi
[[ -n $KVER ]] || die "no Debian kernel found in /lib/modules/*-amd64 (with /boot/config-* and" \
    "/boot/vmlinuz-*): install linux-image-amd64, or set KVER"
[[ -d /lib/modules/$KVER ]] || die "KVER=$KVER: /lib/modules/$KVER does not exist"
[[ -f /boot/config-$KVER ]] || die "KVER=$KVER: /boot/config-$KVER is missing"
VMLINUZ=/boot/vmlinuz-$KVER

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/sample_initrds/real}
mkdir -p "$OUT/.logs"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/.logs
IS_ROOT=0; [[ $EUID -eq 0 ]] && IS_ROOT=1

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/build-real.XXXXXX")

# kdump-tools.img (step 2) is built with the confdir /var/lib/kdump/initramfs-tools, exactly as
# kdump-tools does; as root we borrow that path and give the machine's own copy back on exit.
KDUMP_CONF=/var/lib/kdump/initramfs-tools
KDUMP_SAVED=""      # "none" or the saved copy, while we own $KDUMP_CONF
kdump_save() {      # root only: move the machine's own $KDUMP_CONF aside (restored on exit)
    mkdir -p /var/lib/kdump
    KDUMP_SAVED=none
    if [[ -e $KDUMP_CONF ]]; then
        KDUMP_SAVED=$SCRATCH/kdump-initramfs-tools.saved
        mv "$KDUMP_CONF" "$KDUMP_SAVED"
    fi
}
kdump_restore() {
    [[ -n ${KDUMP_SAVED:-} ]] || return 0
    rm -rf "$KDUMP_CONF"
    [[ $KDUMP_SAVED == none ]] || mv "$KDUMP_SAVED" "$KDUMP_CONF"
    KDUMP_SAVED=""
}
cleanup() {
    kdump_restore
    rm -rf "$SCRATCH"
    rm -f "$OUT"/.*.partial.$$
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }     # bash 5 microsecond clock
secs()   { local us=$(( $(now_us) - $1 )); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }

# First member's format, by magic (never by file name), to print the layout and to catch
# mkinitramfs silently falling back to gzip when the kernel lacks a codec.
magic() {
    local hex
    hex=$(od -An -tx1 -N6 "$1" | tr -d ' \n')
    case $hex in
        1f8b*)         echo gzip ;;
        28b52ffd*)     echo zstd ;;
        fd377a585a00)  echo xz ;;
        02214c18*)     echo lz4-legacy ;;
        425a68*)       echo bzip2 ;;
        5d0000*)       echo lzma ;;
        894c5a4f*)     echo lzop ;;
        303730373031|303730373032) echo "cpio(uncompressed early)+..." ;;
        4d5a*)         echo PE ;;
        *)             echo "unknown($hex)" ;;
    esac
}

# --- Packages ---------------------------------------------------------------------------------
# Which Debian packages each image needs. Only the ones for images still to build are checked,
# and all missing ones are installed in one apt-get call (as root only).
declare -A NEEDS=(
    [initramfs-tools-zstd.img]="initramfs-tools cpio zstd"
    [initramfs-tools-gzip.img]="initramfs-tools cpio"
    [initramfs-tools-xz.img]="initramfs-tools cpio xz-utils"
    [initramfs-tools-lz4.img]="initramfs-tools cpio lz4"
    [kdump-tools.img]="kdump-tools initramfs-tools cpio zstd"
    [dracut-systemd.img]="dracut-core systemd binutils cpio"
    [dracut-nosystemd.img]="dracut-core systemd binutils cpio"
    [debian-installer.img]="debian-installer-12-netboot-amd64"
    [uki.efi]="systemd-boot-efi binutils"
    [initramfs-tools-firmware.img]="initramfs-tools cpio zstd iucode-tool"
    [dracut-firmware.img]="dracut-core systemd binutils cpio"
    [dracut-amdgpu.img]="dracut-core systemd binutils cpio"
)
IMAGES=(initramfs-tools-zstd.img initramfs-tools-gzip.img initramfs-tools-xz.img
        initramfs-tools-lz4.img kdump-tools.img dracut-systemd.img dracut-nosystemd.img
        debian-installer.img uki.efi initramfs-tools-firmware.img dracut-firmware.img
        dracut-amdgpu.img)

installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }
missing_pkgs() { local p; for p in "$@"; do installed "$p" || echo "$p"; done; }

wanted() { [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]; }
want=""
for img in "${IMAGES[@]}"; do
    wanted "$img" || continue
    [[ -s $OUT/$img ]] || want+=" ${NEEDS[$img]}"
done
# shellcheck disable=SC2046,SC2086  # word splitting of the package lists is intended
MISSING=$(missing_pkgs $(printf '%s\n' $want | sort -u) | tr '\n' ' ')
if [[ -n $MISSING ]]; then
    if (( IS_ROOT )); then
        t0=$(now_us)
        note "installing $MISSING(log: $LOGS/apt.log)"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine (or container) may have no package lists yet. If the one-shot
        # install fails (a package unavailable), install one by one so the rest still builds.
        apt-get update -qq >"$LOGS/apt.log" 2>&1 || note "apt-get update failed"
        # shellcheck disable=SC2086
        if ! apt-get install -y -qq --no-install-recommends $MISSING >>"$LOGS/apt.log" 2>&1; then
            for p in $MISSING; do
                apt-get install -y -qq --no-install-recommends "$p" >>"$LOGS/apt.log" 2>&1 \
                    || note "could not install $p"
            done
        fi
        printf '%-30s %14s %7ss  %s\n' "(apt-get install)" "-" "$(secs "$t0")" "$MISSING"
    else
        note "not root: cannot install $MISSING; images needing them are skipped"
    fi
fi

# --- Driver: build one image atomically, time it, print one line -----------------------------
# FUNCTION runs in a subshell with errexit really on (it would be ignored inside an `if`), so
# any failing command fails the image; it writes $TMP_OUT and may add notes with detail().
FAILED=()
detail() { printf '%s' "$*" >>"$SCRATCH/detail"; }
build() {   # build NAME FUNCTION
    local name=$1 fn=$2 dest=$OUT/$1 t0 miss rc
    wanted "$name" || return 0
    if [[ -s $dest ]]; then
        printf '%-30s %14s %7ss  %s\n' "$name" "$(stat -L -c %s "$dest")" "0.0" "exists, skipped"
        return 0
    fi
    # shellcheck disable=SC2086
    miss=$(missing_pkgs ${NEEDS[$name]} | tr '\n' ' ')
    if [[ -n $miss ]]; then
        printf '%-30s %14s %7ss  %s\n' "$name" "-" "0.0" "SKIPPED: missing packages $miss"
        return 0
    fi
    TMP_OUT=$OUT/.$name.partial.$$
    rm -f "$TMP_OUT" "$SCRATCH/detail"
    t0=$(now_us)
    set +e
    ( set -e; "$fn" ) >"$LOGS/$name.log" 2>&1
    rc=$?
    set -e
    if (( rc == 0 )) && [[ -s $TMP_OUT ]]; then
        chmod 0644 "$TMP_OUT"       # dracut creates 0600 files; tests may run unprivileged
        mv -f "$TMP_OUT" "$dest"
        printf '%-30s %14s %7ss  %s\n' "$name" "$(stat -c %s "$dest")" "$(secs "$t0")" \
            "first member: $(magic "$dest")$( [[ -s $SCRATCH/detail ]] && printf '; %s' "$(cat "$SCRATCH/detail")")"
    else
        rm -f "$TMP_OUT"
        printf '%-30s %14s %7ss  %s\n' "$name" "-" "$(secs "$t0")" "FAILED (log: $LOGS/$name.log)"
        tail -n 15 "$LOGS/$name.log" | sed 's/^/    /' >&2
        FAILED+=("$name")
    fi
}

# --- 1. initramfs-tools, the Debian default, in four codecs ----------------------------------
# mkinitramfs reads the host's /etc/initramfs-tools (initramfs.conf, shipped by
# initramfs-tools-core: MODULES=most, BUSYBOX=auto) and runs every hook installed under
# /usr/share/initramfs-tools/hooks, so the content follows what is installed on the host.
# It needs /boot/config-KVER: without CONFIG_RD_<codec>=y it silently falls back to gzip
# (hence the magic check below). An early UNCOMPRESSED cpio is prepended only when a hook
# calls prepend_earlyinitramfs, i.e. the intel-microcode / amd64-microcode packages (from
# non-free-firmware, not installed here): without them each image is ONE compressed cpio.
host_modules() {    # MODULES= as initramfs.conf + conf.d/* set it (the way kdump-tools reads it)
    # shellcheck disable=SC1090,SC1091  # the host's config files
    ( set +u
      . /etc/initramfs-tools/initramfs.conf
      for f in /etc/initramfs-tools/conf.d/*; do
          [[ -f $f ]] && basename "$f" | grep '^[[:alnum:]][[:alnum:]\._-]*$' \
              | grep -qv '\.dpkg-.*$' && . "$f"
      done
      echo "${MODULES-most}" )
}
mkinitramfs_codec() {
    local codec=$1
    mkinitramfs -c "$codec" -o "$TMP_OUT" "$KVER"
    [[ $(magic "$TMP_OUT") == "${codec/lz4/lz4-legacy}"* ]] \
        || { echo "expected $codec, got $(magic "$TMP_OUT")"; return 1; }
    detail "MODULES=$(host_modules)"
}
build_it_zstd() { mkinitramfs_codec zstd; }
build_it_gzip() { mkinitramfs_codec gzip; }
build_it_xz()   { mkinitramfs_codec xz; }
build_it_lz4()  { mkinitramfs_codec lz4; }

# --- 2. kdump-tools: the small initrd Debian's kdump-tools builds for the capture kernel -----
# kdump-config does not build it itself: `kdump-config symlinks`/load call the kernel hook
# /etc/kernel/postinst.d/kdump-tools, which copies /etc/initramfs-tools to
# /var/lib/kdump/initramfs-tools, writes conf.d/zzz-kdump with MODULES=dep (only when the host
# has MODULES=most), appends loaded scsi_dh_* modules to its `modules`, appends KDUMP=y to its
# initramfs.conf and runs `mkinitramfs -d /var/lib/kdump/initramfs-tools -o OUT KVER` (codec:
# the host's COMPRESS=, zstd on Debian 12). We replay those steps into OUT rather than run the
# hook, which would replace the machine's real /var/lib/kdump/initrd.img-KVER.
# The confdir must be exactly /var/lib/kdump/initramfs-tools: kdump-tools' own mkinitramfs hook
# adds /etc/kdump/sysctl.conf only when CONFDIR is that path. As root we use it (moving any
# existing one aside and restoring it on exit); otherwise a scratch copy (without that file).
# MODULES=dep resolves the block device under / via /proc/mounts and /sys. In a container
# (overlay root, no /dev node for the disk) it fails with "failed to determine device for /
# ... workaround is MODULES=most". MODULES=most would just give image 1 again, so we then fall
# back to MODULES=list with what dep picks on a virtio/NVMe VM with an ext4 root (the modules
# below, plus their dependencies): a small kdump-like initrd on any machine. KDUMP_MODULES=...
# forces a mode. The line printed says which mode was used.
KDUMP_FALLBACK_MODULES="virtio_pci virtio_mmio virtio_blk virtio_scsi sd_mod nvme ext4"
kdump_confdir() {   # kdump_confdir DIR MODULES: replay the kernel hook's config steps
    local dir=$1 mods=$2 m
    rm -rf "$dir"
    cp -pr /etc/initramfs-tools "$dir"
    if [[ $mods != "$(host_modules)" ]]; then
        mkdir -p "$dir/conf.d"
        echo "MODULES=$mods" >"$dir/conf.d/zzz-kdump"
    fi
    # (LP: #1635597) scsi_dh_* in use must be in the initrd; lsmod fails without /proc/modules.
    for m in $( (lsmod 2>/dev/null || true) | awk '$1 ~ /^scsi_dh/ {print $1}'); do
        echo "$m" >>"$dir/modules"
    done
    # shellcheck disable=SC2086  # one module per line
    if [[ $mods == list ]]; then printf '%s\n' $KDUMP_FALLBACK_MODULES >>"$dir/modules"; fi
    echo "KDUMP=y" >>"$dir/initramfs.conf"
}
build_kdump() {
    local dir mods fallback=0
    if [[ -n $KDUMP_SAVED ]]; then
        dir=$KDUMP_CONF
    else
        dir=$SCRATCH/kdump-initramfs-tools
        detail "not root: confdir is not $KDUMP_CONF, so no etc/kdump/sysctl.conf; "
    fi
    mods=${KDUMP_MODULES:-}
    if [[ -z $mods ]]; then
        mods=$(host_modules); [[ $mods == most ]] && mods=dep
    fi
    kdump_confdir "$dir" "$mods"
    echo "+ mkinitramfs -d $dir -o $TMP_OUT $KVER   (MODULES=$mods)"
    if ! mkinitramfs -d "$dir" -o "$TMP_OUT" "$KVER" 2>&1 | tee "$SCRATCH/kdump.err"; then
        # Only the "cannot find the root device" failures of MODULES=dep fall back.
        if [[ -z ${KDUMP_MODULES:-} && $mods == dep ]] \
           && grep -q 'workaround is MODULES=most\|MODULES dep requires' "$SCRATCH/kdump.err"; then
            fallback=1; mods=list
            kdump_confdir "$dir" "$mods"
            echo "+ MODULES=dep failed to find the root device; retry with MODULES=list"
            rm -f "$TMP_OUT"
            mkinitramfs -d "$dir" -o "$TMP_OUT" "$KVER" || return 1
        else
            return 1
        fi
    fi
    detail "MODULES=$mods"
    if (( fallback )); then
        detail " (dep could not find the root device; list = $KDUMP_FALLBACK_MODULES)"
    fi
}

# --- 3. dracut (dracut-core), generic (--no-hostonly), with and without systemd -------------
# --no-hostonly avoids everything that inspects the running machine (root device, /proc/cmdline),
# which is what breaks dracut in containers/VMs; KVER is explicit so `uname -r` (the host's
# kernel, whose modules are not installed here) is never used. Host /etc/dracut.conf.d still
# applies. dracut skips (and only warns about) any module whose tools are missing, so check
# the result: with systemd installed the image must have usr/lib/systemd/systemd (PID 1).
# dracut compresses with pigz when installed, else `gzip -9` (most of its runtime).
# dracut writes its image mode 0600; the driver makes it 0644.
has_entry() { lsinitramfs "$1" | grep -x "$2" >/dev/null; }   # no -q: SIGPIPE + pipefail
build_dracut_systemd() {
    dracut --no-hostonly --gzip --force "$TMP_OUT" "$KVER"
    has_entry "$TMP_OUT" usr/lib/systemd/systemd \
        || { echo "no usr/lib/systemd/systemd in the image"; return 1; }
    detail "has usr/lib/systemd/systemd"
}
# Without systemd: with dracut 059 `--omit systemd` alone already drops systemd-initrd and
# dracut-systemd (they depend on it); to stay right if a host config adds systemd-* modules or
# a newer dracut changes the dependencies, omit every module named *systemd* this dracut ships
# (059: systemd, systemd-initrd, dracut-systemd, systemd-{udevd,journald,...}). The image then
# boots dracut's shell init (99base); udevd (usr/lib/systemd/systemd-udevd, from udev-rules)
# and libsystemd-shared stay, as on any udev system. The 90crypt module is picked without
# cryptsetup installed and dracut logs "dracut-install: ERROR: installing 'cryptsetup'" /
# "FAILED: ... dracut-install": harmless, the image is still written and dracut exits 0.
nosystemd_omit() {
    for d in /usr/lib/dracut/modules.d/[0-9][0-9]*systemd*; do n=${d##*/}; echo "${n:2}"; done \
        | tr '\n' ' '
}
build_dracut_nosystemd() {
    local omit
    omit=$(nosystemd_omit)
    echo "+ --omit \"$omit\""
    dracut --no-hostonly --gzip --force --omit "$omit" "$TMP_OUT" "$KVER"
    ! has_entry "$TMP_OUT" usr/lib/systemd/systemd \
        || { echo "usr/lib/systemd/systemd is still in the image"; return 1; }
    detail "no usr/lib/systemd/systemd"
}

# --- 4. Debian installer netboot initrd (a gzip cpio built by debian-installer's own tools) --
build_debian_installer() {
    local src
    src=$(dpkg -L debian-installer-12-netboot-amd64 | grep -E '/initrd\.gz$' | grep -v /gtk/ | head -n 1)
    [[ -n $src ]] || { echo "no initrd.gz in debian-installer-12-netboot-amd64"; return 1; }
    cp "$src" "$TMP_OUT"
    detail "$src"
}

# --- 5. Unified kernel image: systemd-stub + os-release + cmdline + vmlinuz + initrd ---------
# The classic objcopy recipe (systemd-boot docs / Arch wiki, before ukify): sections at VMAs
# above the stub's own image (252's stub ends below 0x20000). .linux goes at 0x2000000 and
# .initrd at 0x3000000, moved up if the kernel is over 16 MiB so the two never overlap.
build_uki() {
    local stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub initrd=$OUT/initramfs-tools-zstd.img
    local ksize initrd_vma osrel=/etc/os-release
    [[ -f $stub ]] || { echo "no $stub"; return 1; }
    [[ -s $initrd ]] || { echo "needs $initrd (step 1)"; return 1; }
    [[ -f /usr/lib/os-release ]] && osrel=/usr/lib/os-release
    echo "console=ttyS0 quiet" >"$SCRATCH/cmdline.txt"
    ksize=$(stat -c %s "$VMLINUZ")
    initrd_vma=$(( 0x2000000 + ksize > 0x3000000 ? (0x2000000 + ksize + 0xfffff) & ~0xfffff : 0x3000000 ))
    objcopy \
        --add-section .osrel="$osrel"                --change-section-vma .osrel=0x20000 \
        --add-section .cmdline="$SCRATCH/cmdline.txt" --change-section-vma .cmdline=0x30000 \
        --add-section .linux="$VMLINUZ"              --change-section-vma .linux=0x2000000 \
        --add-section .initrd="$initrd"              --change-section-vma .initrd=$initrd_vma \
        "$stub" "$TMP_OUT"
    detail ".initrd = initramfs-tools-zstd.img"
}

# --- 6. Firmware and early microcode: Debian's non-free-firmware packages, never installed ----
# The images above must stay without firmware (their tests count exact bytes), also on a CI
# machine that is reused, so the packages are not installed: their .debs are downloaded once
# into OUTDIR/.cache/ (apt-get with its own sources list, package lists and cache there; the
# machine's apt configuration and state are only read), extracted into the scratch dir, merged
# with the host's own files in $FW_DIRS, and bind-mounted over those directories in a private
# mount namespace for the one generator run. What the generators read there:
#   lib/firmware       firmware for the modules they include (modinfo -F firmware); the
#                      microcode hooks' and dracut's early cpio from {amd,intel}-ucode/
#   usr/share/initramfs-tools/hooks   the packages' amd64_microcode and intel_microcode hooks
#                      (so they run in the same sorted order as on an installed host)
#   etc/default        the hooks' settings (amd64-microcode, intel-microcode)
#   etc/modprobe.d     the packages' blacklist files, which mkinitramfs copies into the image
# One difference from an installed host: amd64-microcode's hook, in its default mode (auto),
# adds the AMD microcode only when /proc/cpuinfo says AuthenticAMD; AMD64UCODE_INITRAMFS=early
# (its documented setting) makes the image the same on Intel and AMD build machines, i.e. what
# an AMD host gets. intel-microcode's hook already includes everything with MODULES=most.
# The hooks prepend one uncompressed cpio each (AMD's, then iucode_tool's for Intel) before
# the zstd main archive. dracut --no-hostonly --early-microcode puts both vendors' microcode in
# one early cpio (it does not look at the CPU).
FW_PKGS="firmware-amd-graphics firmware-misc-nonfree firmware-realtek amd64-microcode intel-microcode"
FW_DIRS="lib/firmware usr/share/initramfs-tools/hooks etc/default etc/modprobe.d"
FW_CACHE=$OUT/.cache/non-free-firmware
FW_ROOT=$SCRATCH/fw-root

archive_uri() {     # archive_uri SUITE: the Debian archive's address, from the apt sources
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        awk '
            function stanza() {
                if (uri != "" && index(" " types " ", " deb ") && index(" " suites " ", " " suite " "))
                    { print uri; done = 1; exit }
                types = suites = uri = ""
            }
            /^[[:space:]]*#/   { next }
            /^[[:space:]]*$/   { stanza(); next }
            tolower($1) == "types:"  { $1 = ""; types = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "uris:"   { uri = $2 }
            END { if (!done) stanza() }' suite="$1" "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        sed -E 's/\[[^]]*\]//' "$f" | awk -v suite="$1" '$1 == "deb" && $3 == suite { print $2 }'
    done
}
fw_debs() {         # the .debs of $FW_PKGS in $FW_CACHE, downloaded only if one is missing
    local p miss="" suite uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    for p in $FW_PKGS; do compgen -G "$FW_CACHE/${p}_*.deb" >/dev/null || miss+=" $p"; done
    [[ -n $miss ]] || return 0
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    uri=$(archive_uri "$suite" | sed -n 1p)
    [[ -n $suite && -n $uri ]] || { echo "no deb entry for '$suite' in the apt sources"; return 1; }
    mkdir -p "$FW_CACHE/apt/lists/partial" "$FW_CACHE/apt/cache/archives/partial"
    echo "deb $( [[ -f $keyring ]] && echo "[signed-by=$keyring] " )$uri $suite non-free-firmware" \
        >"$FW_CACHE/apt/sources.list"
    local apt=(apt-get -q -o "Dir::Etc::sourcelist=$FW_CACHE/apt/sources.list"
               -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$FW_CACHE/apt/lists"
               -o "Dir::Cache=$FW_CACHE/apt/cache" -o APT::Sandbox::User=root)
    echo "+ apt-get update; apt-get download$miss   ($suite non-free-firmware)"
    "${apt[@]}" update
    # shellcheck disable=SC2086  # one package per word
    ( cd "$FW_CACHE" && "${apt[@]}" download $miss )
}
fw_root() {         # $FW_ROOT: the packages' files merged with the host's own, in $FW_DIRS
    local p deb d
    [[ -e $FW_ROOT/.done ]] && return 0
    fw_debs
    rm -rf "$FW_ROOT"; mkdir -p "$FW_ROOT"
    for p in $FW_PKGS; do
        deb=$(printf '%s\n' "$FW_CACHE/${p}"_*.deb | sort -V | tail -n 1)
        echo "+ dpkg-deb -x ${deb##*/}"
        dpkg-deb -x "$deb" "$FW_ROOT"
    done
    for d in $FW_DIRS; do       # -n: a package's file wins over the host's, as dpkg would have it
        mkdir -p "$FW_ROOT/$d"
        if [[ -d /$d ]]; then cp -an "/$d/." "$FW_ROOT/$d/"; fi
    done
    echo "AMD64UCODE_INITRAMFS=early" >>"$FW_ROOT/etc/default/amd64-microcode"
    touch "$FW_ROOT/.done"
}
with_firmware() {   # with_firmware CMD...: CMD sees $FW_DIRS as on a host with $FW_PKGS installed
    fw_root
    # A mount point must exist; an empty /lib/firmware changes no other image.
    mkdir -p /lib/firmware
    echo "+ unshare --mount: bind $FW_ROOT/{${FW_DIRS// /,}}; $*"
    # shellcheck disable=SC2016  # expanded by the inner sh
    unshare --mount --propagation private -- sh -ec '
        root=$1 dirs=$2; shift 2
        for d in $dirs; do [ -d "/$d" ] && mount --bind "$root/$d" "/$d"; done
        exec "$@"' sh "$FW_ROOT" "$FW_DIRS" "$@"
}
fw_facts() {        # fw_facts IMAGE: the early microcode and the firmware, for the table line
    local ucode ubytes files bytes
    read -r files bytes ubytes ucode < <(lsinitramfs -l "$1" | awk '
        $1 !~ /^-/ { next }
        $NF ~ /^(usr\/)?lib\/firmware\// { n++; b += $5 }
        $NF ~ /^kernel\/x86\/microcode\/[^.\/][^\/]*\.bin$/ { u = u "," substr($NF, 22); ub += $5 }
        END { print n + 0, b + 0, ub + 0, substr(u, 2) }')
    [[ $ucode == *AuthenticAMD.bin*GenuineIntel.bin* ]] \
        || { echo "early microcode: '$ucode', expected AuthenticAMD.bin and GenuineIntel.bin"; return 1; }
    (( files > 0 )) || { echo "no firmware files in the image"; return 1; }
    detail "microcode $ucode $ubytes B; $files firmware files, $bytes B"
}
build_it_firmware() {
    with_firmware mkinitramfs -c zstd -o "$TMP_OUT" "$KVER"
    [[ $(magic "$TMP_OUT") == cpio* ]] || { echo "no early cpio: $(magic "$TMP_OUT")"; return 1; }
    fw_facts "$TMP_OUT"
}
build_dracut_firmware() {   # dracut-nosystemd.img's options with the firmware installed
    with_firmware dracut --no-hostonly --gzip --force --early-microcode --omit "$(nosystemd_omit)" \
        "$TMP_OUT" "$KVER"
    fw_facts "$TMP_OUT"
}
build_dracut_amdgpu() {     # the same with the GPU driver that desktop hosts' initrds include
    with_firmware dracut --no-hostonly --gzip --force --early-microcode --omit "$(nosystemd_omit)" \
        --add-drivers amdgpu "$TMP_OUT" "$KVER"
    lsinitramfs "$TMP_OUT" | grep '/amdgpu\.ko' >/dev/null || { echo "no amdgpu.ko"; return 1; }
    fw_facts "$TMP_OUT"
}

echo "# footprint real images for $KVER in $OUT"
printf '%-30s %14s %8s  %s\n' "image" "bytes" "time" "notes"
T_ALL=$(now_us)
build initramfs-tools-zstd.img build_it_zstd
build initramfs-tools-gzip.img build_it_gzip
build initramfs-tools-xz.img   build_it_xz
build initramfs-tools-lz4.img  build_it_lz4
if (( IS_ROOT )) && wanted kdump-tools.img && [[ ! -s $OUT/kdump-tools.img ]]; then kdump_save; fi
build kdump-tools.img          build_kdump
kdump_restore
build dracut-systemd.img       build_dracut_systemd
build dracut-nosystemd.img     build_dracut_nosystemd
build debian-installer.img     build_debian_installer
if ! wanted uki.efi; then
    :
elif [[ -s $OUT/uki.efi ]] || installed systemd-boot-efi; then
    build uki.efi build_uki
else
    note "systemd-boot-efi is not installed: uki.efi skipped"
fi
for img in initramfs-tools-firmware.img:build_it_firmware dracut-firmware.img:build_dracut_firmware \
           dracut-amdgpu.img:build_dracut_amdgpu; do
    if ! wanted "${img%%:*}"; then
        :
    elif (( IS_ROOT )) || [[ -s $OUT/${img%%:*} ]]; then
        build "${img%%:*}" "${img#*:}"
    else
        note "not root (a mount namespace needs it): ${img%%:*} skipped"
    fi
done
printf '%-30s %14s %7ss\n' "(total)" "" "$(secs "$T_ALL")"

(( ${#FAILED[@]} == 0 )) || die "failed: ${FAILED[*]} (logs in $LOGS)"
