#!/usr/bin/env bash
# build-kernels.sh: Debian kernels side by side, each with the kdump-tools initrd made for it,
# for `calibrate --kernel K1 --kernel K2 ...` and the `crashkernel=Y,cma` experiments.
#
#   sample_initrds/build-kernels.sh [OUTDIR]     (default: sample_initrds/real/kernels/, ignored)
#
# Kernels: the host's own (newest /boot/vmlinuz-*-amd64 with its modules; Debian 12: 6.1), and
# linux-image-amd64 of each suite in $KERNEL_SUITES (default "trixie trixie-backports": 6.12
# and the newest backport, >= 6.17, the first with crashkernel=,cma). The packages are
# DOWNLOADED (apt-get download with a private sources list, package lists and cache under
# OUTDIR/.cache/apt; the machine's apt configuration and state are only read), extracted with
# dpkg-deb -x and never installed. The archive's address is the machine's own, read from
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list at run time (DEBIAN_MIRROR=URL
# overrides), and never printed.
#
# Per kernel KVER, in OUTDIR:
#   vmlinuz-KVER config-KVER System.map-KVER   the kernel's /boot files (trixie-backports'
#                                       packages ship them in /usr/lib/modules/KVER/ instead)
#   kdump-tools-KVER.img                what Debian 12's kdump-tools makes for that kernel:
#                                       build-real.sh's kdump-tools.img step (the host's
#                                       initramfs-tools configuration copied to
#                                       /var/lib/kdump/initramfs-tools, MODULES=dep, KDUMP=y,
#                                       the host's mkinitramfs and hooks), run in a private
#                                       mount namespace where /lib/modules, /boot and
#                                       /var/lib/kdump are this kernel's extracted tree and a
#                                       scratch directory (the host's stay untouched)
#   root/KVER/{boot,lib/modules/KVER}   the extracted packages, depmod run on them
#   manifest.json                       per kernel: kver, suite, package version, the files,
#                                       CONFIG_CMA / CONFIG_CRASH_DUMP / CONFIG_KEXEC_FILE,
#                                       whether crashkernel=,cma can work (>= 6.17 and CMA=y)
#
# Cached: the package lists are refreshed when older than a day (REFRESH=1: always), a .deb
# or an extracted tree or an output that exists is kept; each output is written under a
# hidden name and renamed when complete. Needs root (mount namespace, mkinitramfs reading
# every module), and the host's initramfs-tools, kdump-tools, cpio, zstd, kmod, dpkg.
# Environment: KERNEL_SUITES (default "trixie trixie-backports"), HOST_KERNEL=0 (skip the
# host's kernel), DEBIAN_MIRROR=URL, REFRESH=1.
set -euo pipefail

die()  { echo "build-kernels: error: $*" >&2; exit 1; }
note() { echo "build-kernels: $*" >&2; }

[[ $EUID -eq 0 ]] || die "run as root (a private mount namespace for mkinitramfs needs it)"
for tool in apt-get:apt dpkg-deb:dpkg depmod:kmod mkinitramfs:initramfs-tools unshare:util-linux; do
    command -v "${tool%%:*}" >/dev/null || die "${tool%%:*} is missing — apt-get install ${tool#*:}"
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/sample_initrds/real/kernels}
KERNEL_SUITES=${KERNEL_SUITES:-trixie trixie-backports}
HOST_KERNEL=${HOST_KERNEL:-1}
mkdir -p "$OUT/.logs" "$OUT/.cache"
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/.logs
CACHE=$OUT/.cache
APTDIR=$CACHE/apt
DEBS=$CACHE/debs
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/build-kernels.XXXXXX")
cleanup() {
    rm -rf "$SCRATCH"
    rm -rf "$OUT"/.*.partial.$$ "$OUT"/root/.*.partial.$$
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$t"; }     # bash 5 microsecond clock
secs()   { local us=$(( $(now_us) - $1 )); printf '%d.%d' $((us / 1000000)) $((us % 1000000 / 100000)); }
row()    { printf '%-44s %12s %7ss  %s\n' "$@"; }

# The Debian archive this machine's apt uses: debian_mirror, from lib.sh.
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- A private apt: its own sources list, package lists and cache -----------------------------
APT_OPTS=(-o "Dir::Etc::sourcelist=$APTDIR/sources.list" -o Dir::Etc::sourceparts=-
          -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache"
          -o APT::Sandbox::User=root -o APT::Architectures=amd64 -o APT::Architecture=amd64
          -o "Dir::State::status=$APTDIR/status"
          # Docker-style hosts turn apt's binary caches off (Dir::Cache::pkgcache ""): each
          # apt-cache call would parse the lists again (a second or more each).
          -o Dir::Cache::pkgcache=pkgcache.bin -o Dir::Cache::srcpkgcache=srcpkgcache.bin)
apt_lists() {       # write the sources list and refresh the package lists when stale
    local mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg signed="" s want t0
    mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
    [[ -f $APTDIR/status ]] || : >"$APTDIR/status"      # nothing is installed by this apt
    [[ -f $keyring ]] && signed="[signed-by=$keyring] "
    if (( ${#SUITES[@]} == 0 )); then return 0; fi
    mirror=$(debian_mirror) \
        || die "no Debian archive in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list: set DEBIAN_MIRROR=URL"
    want=""
    for s in "${SUITES[@]}"; do want+="deb $signed$mirror $s main"$'\n'; done
    if [[ ! -f $APTDIR/sources.list || $(cat "$APTDIR/sources.list") != "${want%$'\n'}" ]]; then
        printf '%s' "$want" >"$APTDIR/sources.list"
        rm -f "$APTDIR/.updated"
    fi
    if [[ ${REFRESH:-0} == 1 || ! -f $APTDIR/.updated \
          || -n $(find "$APTDIR/.updated" -mmin +1440 2>/dev/null) ]]; then
        t0=$(now_us)
        apt-get -q "${APT_OPTS[@]}" update >"$LOGS/apt-update.log" 2>&1 \
            || { sed -E 's#//[^/ ]+#//ARCHIVE#g' "$LOGS/apt-update.log" | tail -n 5 >&2
                 die "apt-get update failed (log: $LOGS/apt-update.log)"; }
        touch "$APTDIR/.updated"
        row "(apt-get update: ${SUITES[*]})" "-" "$(secs "$t0")" "private lists in $APTDIR"
    else
        row "(apt-get update: ${SUITES[*]})" "-" "0.0" "lists less than a day old, kept"
    fi
}
apt_cache() { apt-cache "${APT_OPTS[@]}" "$@"; }

suite_version() {   # suite_version PKG SUITE: its version in that suite (newest if several)
    apt_cache madison "$1" 2>/dev/null \
        | awk -F' *[|] *' -v s="$2" '{ split($3, a, " "); if (a[2] ~ ("^" s "/")) print $2 }' \
        | sort -V | tail -n 1
}
# The packages linux-image-amd64=VER pulls in: every Depends of the form linux-*(= VER),
# recursively (trixie: the signed linux-image-KVER; trixie-backports' split packaging:
# linux-image-KVER, linux-binary-KVER, linux-modules-KVER, linux-base-KVER). Alternatives
# (dracut | initramfs-tools ...) and the tools (kmod, apparmor) are not kernel files.
closure() {         # closure PKG VER: one "pkg=ver" a line
    local todo=("$1") seen=" " p d
    while (( ${#todo[@]} )); do
        p=${todo[0]}; todo=("${todo[@]:1}")
        [[ $seen == *" $p "* ]] && continue
        seen+="$p "
        echo "$p=$2"
        for d in $(apt_cache show "$p=$2" 2>/dev/null | awk -v v="$2" '
                /^Depends:/ { sub(/^Depends: */, ""); n = split($0, a, / *, */)
                              for (i = 1; i <= n; i++) if (a[i] !~ /[|]/ && a[i] ~ /^linux-/ && index(a[i], "(= " v ")"))
                                  { split(a[i], w, " "); print w[1] } }
                /^$/ { exit }'); do
            todo+=("$d")
        done
    done
}
deb_file() {        # deb_file PKG VER: the cached .deb (apt-get download's name: epoch : is %3a)
    local v=${2//:/%3a}
    compgen -G "$DEBS/${1}_${v}_*.deb" | head -n 1
}

# --- One suite's kernel: download, extract, normalise to boot/ + lib/modules/KVER, depmod ------
# Sets KVER and ROOT. The extracted tree is OUT/root/KVER, renamed into place when complete.
fetch_kernel() {    # fetch_kernel SUITE
    local suite=$1 ver pkgs=() miss=() p t0 tree kdir m f
    ver=$(suite_version linux-image-amd64 "$suite")
    [[ -n $ver ]] || die "no linux-image-amd64 in $suite (log: $LOGS/apt-update.log)"
    mapfile -t pkgs < <(closure linux-image-amd64 "$ver")
    mkdir -p "$DEBS"
    for p in "${pkgs[@]}"; do [[ -n $(deb_file "${p%%=*}" "$ver") ]] || miss+=("$p"); done
    t0=$(now_us)
    if (( ${#miss[@]} )); then
        ( cd "$DEBS" && apt-get -q "${APT_OPTS[@]}" download "${miss[@]}" ) \
            >"$LOGS/download-$suite.log" 2>&1 \
            || { sed -E 's#//[^/ ]+#//ARCHIVE#g' "$LOGS/download-$suite.log" | tail -n 5 >&2
                 die "apt-get download ${miss[*]} failed (log: $LOGS/download-$suite.log)"; }
        row "(download $suite $ver)" "-" "$(secs "$t0")" "${#miss[@]} .debs into $DEBS"
    fi
    PKG_VERSION=$ver
    PKG_LIST="${pkgs[*]}"
    # The kernel version: the one directory under (usr/)lib/modules in the packages (listing
    # them takes seconds: remembered per package version).
    f=$DEBS/.kver-${ver//:/%3a}
    if [[ -s $f ]]; then
        KVER=$(cat "$f")
    else
        KVER=$(for p in "${pkgs[@]}"; do dpkg-deb -c "$(deb_file "${p%%=*}" "$ver")"; done \
               | awk '{ print $6 }' | sed -nE 's#^\./(usr/)?lib/modules/([^/]+)/.*#\2#p' | sort -u)
        [[ -n $KVER && $KVER != *$'\n'* ]] || die "$suite $ver: not one kernel version in the packages: '$KVER'"
        echo "$KVER" >"$f"
    fi
    ROOT=$OUT/root/$KVER
    if [[ -f $ROOT/.done ]]; then
        row "(extract $KVER)" "-" "0.0" "cached in $ROOT"
        return 0
    fi
    t0=$(now_us)
    tree=$OUT/root/.$KVER.partial.$$
    rm -rf "$tree"; mkdir -p "$tree"
    for p in "${pkgs[@]}"; do dpkg-deb -x "$(deb_file "${p%%=*}" "$ver")" "$tree"; done
    # trixie: lib/modules/KVER in usr/ (merged /usr) and the kernel in boot/; trixie-backports
    # (linux >= 6.16 packaging): vmlinuz, config and System.map in usr/lib/modules/KVER/.
    mkdir -p "$tree/lib/modules" "$tree/boot"
    if [[ -d $tree/usr/lib/modules/$KVER ]]; then
        mv "$tree/usr/lib/modules/$KVER" "$tree/lib/modules/$KVER"
    fi
    kdir=$tree/lib/modules/$KVER
    for f in vmlinuz config System.map; do
        if [[ ! -e $tree/boot/$f-$KVER && -e $kdir/$f ]]; then cp -p "$kdir/$f" "$tree/boot/$f-$KVER"; fi
        [[ -s $tree/boot/$f-$KVER ]] || die "$suite $ver: no $f for $KVER in the packages"
    done
    rm -rf "$tree/usr/share/doc" "$tree/usr/share/bug" "$tree/usr/share/lintian"
    depmod -b "$tree" "$KVER" >"$LOGS/depmod-$KVER.log" 2>&1 \
        || die "depmod -b for $KVER failed (log: $LOGS/depmod-$KVER.log)"
    m=$(find "$kdir" -name '*.ko*' | wc -l)
    touch "$tree/.done"
    rm -rf "$ROOT"; mv "$tree" "$ROOT"
    row "(extract $KVER)" "$(du -sb "$ROOT" | cut -f1)" "$(secs "$t0")" "$m modules, depmod -b"
}

# --- Outputs -------------------------------------------------------------------------------------
put() {             # put SRC NAME: copy to OUT/NAME through a hidden name, unless it exists
    local dest=$OUT/$2 tmp=$OUT/.$2.partial.$$
    [[ -s $dest ]] && return 0
    cp "$1" "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$dest"
}
# kdump-tools-KVER.img: build-real.sh's kdump-tools.img (ONLY=kdump-tools.img) with KVER's
# tree bind-mounted over /lib/modules and /boot, and a scratch /var/lib/kdump (build-real.sh
# moves "the machine's" /var/lib/kdump/initramfs-tools aside: here it is the scratch one).
# Tree "/" (the host's kernel) binds only /var/lib/kdump.
kdump_image() {     # kdump_image KVER TREE
    local kver=$1 tree=$2 name=kdump-tools-$1.img build=$SCRATCH/build-$1 t0 rc
    if [[ -s $OUT/$name ]]; then
        row "$name" "$(stat -c %s "$OUT/$name")" "0.0" "exists, skipped"
        return 0
    fi
    mkdir -p "$build" "$SCRATCH/var-lib-kdump-$kver" /var/lib/kdump
    t0=$(now_us)
    set +e
    # shellcheck disable=SC2016  # expanded by the inner sh
    unshare --mount --propagation private -- sh -ec '
        tree=$1 kdump=$2; shift 2
        if [ "$tree" != / ]; then
            mount --bind "$tree/lib/modules" /lib/modules
            mount --bind "$tree/boot" /boot
        fi
        mount --bind "$kdump" /var/lib/kdump
        exec "$@"' sh "$tree" "$SCRATCH/var-lib-kdump-$kver" \
        env ONLY=kdump-tools.img KVER="$kver" "$REPO/sample_initrds/build-real.sh" "$build" \
        >"$LOGS/$name.log" 2>&1
    rc=$?
    set -e
    if (( rc == 0 )) && [[ -s $build/kdump-tools.img ]]; then
        mv -f "$build/kdump-tools.img" "$OUT/.$name.partial.$$"
        mv -f "$OUT/.$name.partial.$$" "$OUT/$name"
        row "$name" "$(stat -c %s "$OUT/$name")" "$(secs "$t0")" \
            "$(awk '$1 == "kdump-tools.img" { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' "$LOGS/$name.log")"
    else
        row "$name" "-" "$(secs "$t0")" "FAILED (log: $LOGS/$name.log)"
        tail -n 15 "$LOGS/$name.log" "$build/.logs/kdump-tools.img.log" 2>/dev/null | sed 's/^/    /' >&2
        FAILED+=("$name")
    fi
    cp -f "$build/.logs/kdump-tools.img.log" "$LOGS/$name.mkinitramfs.log" 2>/dev/null || true
}

config_value() {    # config_value CONFIG SYMBOL: y, m, a value, or n
    local v
    v=$(sed -n "s/^CONFIG_$2=//p" "$1" | head -n 1)
    echo "${v:-n}"
}
ver_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]; }

MANIFEST=()
manifest_entry() {  # manifest_entry KVER SUITE PKGVER PACKAGES
    local kver=$1 cfg=$OUT/config-$1 cma crash kfile upstream cma_ok=false
    cma=$(config_value "$cfg" CMA); crash=$(config_value "$cfg" CRASH_DUMP)
    kfile=$(config_value "$cfg" KEXEC_FILE)
    upstream=${kver%%[-+]*}
    if [[ $cma == y ]] && ver_ge "$upstream" 6.17; then cma_ok=true; fi
    MANIFEST+=("$(printf '    {"kver": "%s", "version": "%s", "suite": "%s", "package_version": "%s",
     "packages": "%s",
     "vmlinuz": "vmlinuz-%s", "config": "config-%s", "system_map": "System.map-%s",
     "modules": "%s", "kdump_tools_image": "kdump-tools-%s.img",
     "config_cma": "%s", "config_crash_dump": "%s", "config_kexec_file": "%s",
     "crashkernel_cma": %s}' \
        "$kver" "$upstream" "$2" "$3" "$4" "$kver" "$kver" "$kver" \
        "$( [[ $2 == host ]] && echo "/lib/modules/$kver" || echo "root/$kver/lib/modules/$kver" )" \
        "$kver" "$cma" "$crash" "$kfile" "$cma_ok")")
}

# --- Main -------------------------------------------------------------------------------------
read -r -a SUITES <<<"$KERNEL_SUITES"
FAILED=()
printf '%-44s %12s %8s  %s\n' "kernel / file" "bytes" "time" "notes"
T_ALL=$(now_us)
if [[ $HOST_KERNEL == 1 ]]; then
    HKVER=$(for d in /lib/modules/*-amd64; do
                v=${d##*/}
                if [[ -d $d && -f /boot/config-$v && -f /boot/vmlinuz-$v ]]; then echo "$v"; fi
            done | sort -V | tail -n 1)
    if [[ -n $HKVER ]]; then
        put "/boot/vmlinuz-$HKVER" "vmlinuz-$HKVER"
        put "/boot/config-$HKVER" "config-$HKVER"
        [[ -f /boot/System.map-$HKVER ]] && put "/boot/System.map-$HKVER" "System.map-$HKVER"
        row "vmlinuz-$HKVER" "$(stat -c %s "$OUT/vmlinuz-$HKVER")" "0.0" "the host's kernel (/boot)"
        kdump_image "$HKVER" /
        manifest_entry "$HKVER" host "$(dpkg-query -W -f='${Version}' "linux-image-$HKVER" 2>/dev/null || echo '?')" \
            "linux-image-$HKVER"
    else
        note "no host kernel with /lib/modules, /boot/config-* and /boot/vmlinuz-*: skipped"
    fi
fi
apt_lists
for suite in "${SUITES[@]}"; do
    fetch_kernel "$suite"
    for f in vmlinuz config System.map; do put "$ROOT/boot/$f-$KVER" "$f-$KVER"; done
    row "vmlinuz-$KVER" "$(stat -c %s "$OUT/vmlinuz-$KVER")" "0.0" \
        "$suite linux-image-amd64 $PKG_VERSION; CONFIG_CMA=$(config_value "$OUT/config-$KVER" CMA)"
    kdump_image "$KVER" "$ROOT"
    manifest_entry "$KVER" "$suite" "$PKG_VERSION" "$PKG_LIST"
done
{
    echo '{"kernels": ['
    for i in "${!MANIFEST[@]}"; do
        printf '%s%s\n' "${MANIFEST[i]}" "$( (( i + 1 < ${#MANIFEST[@]} )) && echo ,)"
    done
    echo ']}'
} >"$OUT/.manifest.json.partial.$$"
mv -f "$OUT/.manifest.json.partial.$$" "$OUT/manifest.json"
row "manifest.json" "$(stat -c %s "$OUT/manifest.json")" "0.0" "${#MANIFEST[@]} kernels"
row "(total)" "" "$(secs "$T_ALL")" ""
(( ${#FAILED[@]} == 0 )) || die "failed: ${FAILED[*]} (logs in $LOGS)"
