#!/bin/sh
# One cell of a CI matrix: measure IMAGE with KERNEL for one machine shape and write the
# result document (calibrate/boot/profile --json) into OUT, for the job to upload as an
# artifact; footprint-merge.sh combines them all in a final job.
#
#   footprint-job.sh OUT IMAGE KERNEL SHAPE [MODE]
#
# SHAPE  direct (QEMU -m is bisected), or RAMxCPUS for kdump's first kernel (2Gx1, 8Gx4):
#        crashkernel= is bisected with a real panic and kexec -p
# MODE   calibrate (the default), boot (one boot; SHAPE is its -m, like 512M), measure (the
#        userspace under a memory cgroup, no kernel: KERNEL is "none"; SHAPE is the limit, like
#        128M, or "bisect"; needs root) or profile (static, no boot; KERNEL may be "none")
# $FOOTPRINT       the command (default: footprint)
# $FOOTPRINT_ARGS  more options for it, split on spaces (like "--accel tcg --resolution 8M")
#
# A run that finds no minimum still writes its document and exits 0: the final job's
# `footprint check` gates it, with every other cell. Errors exit with footprint's code.
set -eu
[ $# -ge 4 ] || { echo "usage: $0 OUT IMAGE KERNEL SHAPE [MODE]" >&2; exit 2; }
out=$1 image=$2 kernel=$3 shape=$4 mode=${5:-calibrate}
footprint=${FOOTPRINT:-footprint}
name=$(basename "$image")_$(basename "$kernel")_${shape}_${mode}
mkdir -p "$out"
tmp=$out/.$name.json.part
kernel_opt="--kernel $kernel"
[ "$kernel" = none ] && kernel_opt=
# shellcheck disable=SC2086  # FOOTPRINT_ARGS and kernel_opt are lists of options
case $mode in
calibrate)
    case $shape in
    direct) set -- ;;
    *x*) set -- --kdump --ram "${shape%x*}" --cpus "${shape#*x}" ;;
    *) echo "$0: SHAPE is direct or RAMxCPUS (like 2Gx1), not $shape" >&2; exit 2 ;;
    esac
    status=0
    $footprint calibrate "$image" $kernel_opt "$@" ${FOOTPRINT_ARGS:-} --json >"$tmp" || status=$?
    ;;
boot)
    status=0
    $footprint boot "$image" $kernel_opt --memory "$shape" ${FOOTPRINT_ARGS:-} --json >"$tmp" \
        || status=$?
    ;;
measure)
    status=0
    limit="--memory $shape"
    [ "$shape" = bisect ] && limit=--bisect
    $footprint measure "$image" $limit ${FOOTPRINT_ARGS:-} --json >"$tmp" || status=$?
    ;;
profile)
    status=0
    $footprint profile "$image" $kernel_opt ${FOOTPRINT_ARGS:-} -o "$tmp" || status=$?
    ;;
*) echo "$0: MODE is calibrate, boot, measure or profile, not $mode" >&2; exit 2 ;;
esac
# exit 1 is a result (no minimum, a failed boot) with its document; anything else is not
if [ "$status" -gt 1 ] || [ ! -s "$tmp" ]; then
    rm -f "$tmp"
    exit $((status > 1 ? status : 70)) # no document and no error: footprint's bug
fi
mv "$tmp" "$out/$name.json"
echo "$0: wrote $out/$name.json" >&2
