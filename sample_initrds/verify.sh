#!/bin/bash
# Check the sample images against expected.json with tools other than
# footprint (needs jq, cpio, the compressors, initramfs-tools; --boot also
# needs root, busybox-static, qemu-system-x86 and a kernel):
#
#   sample_initrds/verify.sh [--boot] [DIR]       (default DIR: this folder)
#
#  1. every segment, cut out of the image at its offset and decompressed
#     with the compressor's tool, lists `entries` entries with cpio -it;
#  2. lsinitramfs lists `entries` entries in total (multi-member.img is
#     skipped: lsinitramfs cannot read more than one compressed member);
#  3. --boot: boots every image in qemu (TCG) with $KERNEL (default: the
#     host's /boot/vmlinuz-$(uname -r), else the newest /boot/vmlinuz-*).  A bootable image must reach its
#     /init and print the marker; every good image, with a helper archive
#     appended whose rdinit sums the regular files the kernel unpacked, must
#     give `unique_bytes`; every bad image must make the kernel print its
#     `kernel_error`.
set -euo pipefail
export LC_ALL=C

BOOT=false
if [ "${1:-}" = --boot ]; then BOOT=true; shift; fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=$(cd "${1:-$HERE}" && pwd)
EXP=$DIR/expected.json
KERNEL=${KERNEL:-/boot/vmlinuz-$(uname -r)}
if [ ! -r "$KERNEL" ]; then   # running in a container: take the newest /boot kernel
	KERNEL=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1 || true)
fi
BUSYBOX=${BUSYBOX:-/bin/busybox}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILS=0 PASSES=0

ok()   { PASSES=$((PASSES + 1)); echo "ok   $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }

# decompress CODEC: stdin to stdout with the codec's own tool (codecs.sh)
. "$HERE/codecs.sh"

images=$(jq -r '.images | keys_unsorted[]' "$EXP")

for img in $images; do
	want=$(jq ".images[\"$img\"].entries" "$EXP")
	# 1. segments, with cpio directly
	total=0
	while read -r off size codec entries; do
		n=$(dd if="$DIR/$img" bs=64K skip="$off" count="$size" iflag=skip_bytes,count_bytes status=none |
			decompress "$codec" | cpio -it --quiet 2>/dev/null | wc -l || true)
		[ "$n" = "$entries" ] || fail "$img: segment at $off ($codec) lists $n entries, expected $entries"
		total=$((total + n))
	done < <(jq -r ".images[\"$img\"].segments[] | \"\(.offset) \(.size) \(.codec) \(.entries)\"" "$EXP")
	if [ "$total" = "$want" ]; then ok "$img: cpio per segment: $total entries"; else fail "$img: cpio per segment: $total, expected $want"; fi
	# 2. lsinitramfs
	if [ "$img" = multi-member.img ]; then
		echo "skip $img: lsinitramfs reads at most one compressed member"
		continue
	fi
	n=$(lsinitramfs "$DIR/$img" 2>/dev/null | wc -l || true)
	if [ "$n" = "$want" ]; then ok "$img: lsinitramfs: $n entries"; else fail "$img: lsinitramfs lists $n, expected $want"; fi
done

if $BOOT; then
	[ -r "$KERNEL" ] || { echo "no kernel at $KERNEL" >&2; exit 1; }
	# helper archive: /.fpcheck/busybox and an rdinit that sums the regular
	# files of the unpacked tree (each inode once), its own files excepted
	h=$WORK/helper
	mkdir -p "$h/.fpcheck"
	install -m 0755 "$BUSYBOX" "$h/.fpcheck/busybox"
	cat > "$h/.fpcheck/run" <<'EOF'
#!/.fpcheck/busybox sh
B=/.fpcheck/busybox
$B find / -xdev -path /.fpcheck -prune -o -type f -print |
	while read -r f; do $B stat -c '%i %s' "$f"; done |
	$B sort -u | $B awk '{ s += $2 } END { print "FPCHECK unique_bytes=" s + 0 }'
$B poweroff -f
EOF
	chmod 0755 "$h/.fpcheck/run"
	(cd "$h" && find . | sort | cpio --reproducible -o -H newc -R 0:0 --quiet) > "$WORK/helper.cpio"

	boot() { # INITRD LOG [extra kernel args]
		timeout 300 qemu-system-x86_64 -accel tcg -m 256 -display none -monitor none \
			-serial "file:$2" -no-reboot -kernel "$KERNEL" -initrd "$1" \
			-append "console=ttyS0 panic=-1 ${3:-}" >/dev/null 2>&1 || true
	}

	for img in $images; do
		if [ "$(jq ".images[\"$img\"].bootable" "$EXP")" = true ]; then
			boot "$DIR/$img" "$WORK/log"
			if grep -q '^footprint-sample: init reached' "$WORK/log" && grep -q 'reboot: Power down' "$WORK/log"; then
				ok "$img: boots, init reached, powered off"
			else
				fail "$img: did not reach init (see below)"; tail -20 "$WORK/log"
			fi
		fi
		# the image, zero padding (lz4's legacy format stops at a zero chunk
		# size), the helper archive at a 512-byte boundary
		{ cat "$DIR/$img"; head -c 512 /dev/zero; } > "$WORK/test.img"
		pad=$(( (512 - $(stat -c %s "$WORK/test.img") % 512) % 512 ))
		{ head -c "$pad" /dev/zero; cat "$WORK/helper.cpio"; } >> "$WORK/test.img"
		boot "$WORK/test.img" "$WORK/log" "rdinit=/.fpcheck/run"
		want=$(jq ".images[\"$img\"].unique_bytes" "$EXP")
		got=$(sed -n 's/^FPCHECK unique_bytes=\([0-9]*\).*/\1/p' "$WORK/log")
		if [ "$got" = "$want" ]; then ok "$img: kernel unpacked $got bytes of regular files"
		else fail "$img: kernel unpacked '${got}' bytes, expected $want"; grep -iE 'initramfs|FPCHECK' "$WORK/log" || true; fi
	done

	for img in $(jq -r '.bad | keys_unsorted[]' "$EXP"); do
		want=$(jq -r ".bad[\"$img\"].kernel_error" "$EXP")
		boot "$DIR/$img" "$WORK/log"
		got=$(sed -n -e 's/.*Initramfs unpacking failed: \(.*\)$/\1/p' \
			-e 's/.*rootfs image is not initramfs (\(.*\)); looks like an initrd.*/\1/p' "$WORK/log" | tr -d '\r' | awk 'NR == 1')
		if [ "$got" = "$want" ]; then ok "$img: kernel says '$got'"; else fail "$img: kernel says '$got', expected '$want'"; fi
	done
fi

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
