#!/bin/bash
# Build footprint's sample initramfs images, and expected.json with the
# facts a reader of each image has to reproduce.
#
#   sample_initrds/build.sh [OUTDIR]      (default OUTDIR: this script's folder)
#
# Needs root (device nodes are made with mknod), GNU cpio >= 2.13,
# busybox-static (/bin/busybox, or $BUSYBOX), gzip, bzip2, xz-utils, zstd,
# lz4, lzop and coreutils.  The output is deterministic: every staging file
# gets mtime 0 and a fixed mode, file lists are sorted, cpio runs with
# --reproducible -R 0:0, and every compressor has fixed options and is fed
# from a file with mtime 0 (lzop stores the input's mtime and mode).  Running
# the script twice on the same machine gives byte-identical files.
#
# The facts in expected.json are computed without any initrd parser: counts
# come from the staging trees (find), cross-checked against `cpio -itv` of
# every segment cut back out of the finished image and decompressed with the
# compressor's own tool; unique_bytes is computed twice, by simulating the
# kernel's unpacking over the staging trees and by extracting every segment
# in order into one directory with `cpio -idu`.  Any disagreement aborts.
set -Eeuo pipefail
export LC_ALL=C TZ=UTC SOURCE_DATE_EPOCH=0
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE}
BUSYBOX=${BUSYBOX:-/bin/busybox}

die() { echo "build.sh: $*" >&2; exit 1; }
trap 'echo "build.sh: command failed at line $LINENO" >&2' ERR

[ "$(id -u)" = 0 ] || die "must run as root (mknod for /dev/console and devices.img)"
[ -x "$BUSYBOX" ] || die "no busybox at $BUSYBOX (apt-get install busybox-static)"
for tool in cpio gzip bzip2 xz zstd lz4 lzop basenc sha256sum; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done

mkdir -p "$OUT" "$OUT/bad"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/stage
mkdir -p "$STAGE"

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

fsize() { stat -c %s "$1"; }

# pattern TEXT COUNT: COUNT bytes of "TEXT\n" repeated.
pattern() {
	{ yes "$1" || true; } | head -c "$2"
}

# prng SEED COUNT: COUNT deterministic pseudo-random bytes (a sha256 chain),
# so that some payload files do not compress to nothing.
prng() {
	local h=$1 hex=""
	while (( ${#hex} < $2 * 2 )); do
		h=$(printf '%s' "$h" | sha256sum)
		h=${h%% *}
		hex+=$h
	done
	printf '%s' "${hex:0:$2*2}" | tr a-f A-F | basenc --base16 -d
}

# put FILE MODE: write stdin to FILE with MODE.
put() {
	mkdir -p "$(dirname "$1")"
	cat > "$1"
	chmod "$2" "$1"
}

# seal DIR: fixed modes for directories, mtime 0 on everything.
seal() {
	chmod 0755 "$1"
	find "$1" -type d -exec chmod 0755 {} +
	find "$1" -exec touch -h -d @0 {} +
}

# mkcpio DIR FORMAT OUT: the cpio archive of DIR, the way mkinitramfs and
# dracut make it (find . | sort | cpio -o), names without the leading "./".
mkcpio() {
	(cd "$1" && find . -print0 | sort -z |
		cpio --null --reproducible -o -H "$2" -R 0:0 --quiet) > "$3"
}

# compress CODEC IN OUT, with the options the kernel's decompressors accept.
compress() {
	chmod 0644 "$2"
	touch -d @0 "$2"
	case $1 in
	none)  cat < "$2" ;;
	gzip)  gzip -n -9 -c < "$2" ;;
	bzip2) bzip2 -9 -c < "$2" ;;
	# the kernel allocates the whole dictionary: keep it at 1 MiB
	lzma)  xz --format=lzma --lzma1=preset=9,dict=1MiB -T1 -c < "$2" ;;
	# the kernel's xz decoder only knows CRC32 (and none) as integrity check
	xz)    xz --format=xz --check=crc32 --lzma2=preset=9,dict=1MiB -T1 -c < "$2" ;;
	zstd)  zstd -q -19 -T1 -c < "$2" ;;
	# the kernel reads only lz4's legacy frame format
	lz4)   lz4 -l -9 -q -c < "$2" ;;
	lzo)   lzop -9 -c < "$2" ;;
	*) die "unknown codec $1" ;;
	esac > "$3"
}

# decompress CODEC: stdin to stdout with the codec's own tool (codecs.sh)
. "$HERE/codecs.sh"

# ---------------------------------------------------------------------------
# Image assembly and facts
# ---------------------------------------------------------------------------
# An image is built as: img_begin NAME; then img_segment / img_zeros /
# img_align in file order; then img_finish.  Each segment is one cpio archive
# (optionally compressed) of one staging directory.

IMG_NAME="" IMG_FILE="" IMG_BOOT=false
SEG_DIRS=() SEG_CODECS=() SEG_FORMATS=() SEG_OFFS=() SEG_SIZES=()
JSON_GOOD=() JSON_BAD=()

img_begin() {
	IMG_NAME=$1 IMG_BOOT=${2:-false}
	IMG_FILE=$WORK/image
	: > "$IMG_FILE"
	SEG_DIRS=() SEG_CODECS=() SEG_FORMATS=() SEG_OFFS=() SEG_SIZES=()
}

img_zeros() { head -c "$1" /dev/zero >> "$IMG_FILE"; }

img_align() {
	local size; size=$(fsize "$IMG_FILE")
	img_zeros $(( ($1 - size % $1) % $1 ))
}

# img_segment DIR CODEC [FORMAT]
img_segment() {
	local dir=$1 codec=$2 fmt=${3:-newc} n=${#SEG_DIRS[@]}
	mkcpio "$dir" "$fmt" "$WORK/seg$n.cpio"
	compress "$codec" "$WORK/seg$n.cpio" "$WORK/seg$n.z"
	SEG_DIRS+=("$dir") SEG_CODECS+=("$codec") SEG_FORMATS+=("$fmt")
	SEG_OFFS+=("$(fsize "$IMG_FILE")") SEG_SIZES+=("$(fsize "$WORK/seg$n.z")")
	cat "$WORK/seg$n.z" >> "$IMG_FILE"
}

# Count of entries of a staging tree by find's %y type letter(s).
count_type() { find "$1" -printf '%y\n' | grep -c "^[$2]\$" || true; }

img_finish() {
	local dest=$OUT/$IMG_NAME i segs="" crc=false
	local entries=0 files=0 dirs=0 symlinks=0 devices=0 hardlinks=0
	cp "$IMG_FILE" "$dest"
	chmod 0644 "$dest"

	rm -rf "$WORK/x"; mkdir "$WORK/x"
	declare -A TYPE=() SIZE=() KEY=()
	local overwritten=0
	for i in "${!SEG_DIRS[@]}"; do
		local dir=${SEG_DIRS[$i]} codec=${SEG_CODECS[$i]}
		# 1. cut the segment back out of the image, decompress it with the
		#    compressor's own tool: it must be the cpio archive we made.
		dd if="$dest" bs=64K skip="${SEG_OFFS[$i]}" count="${SEG_SIZES[$i]}" \
			iflag=skip_bytes,count_bytes status=none | decompress "$codec" > "$WORK/check.cpio"
		cmp -s "$WORK/check.cpio" "$WORK/seg$i.cpio" || die "$IMG_NAME: segment $i does not round-trip"
		# 2. counts from the staging tree ...
		local e f d l v h
		e=$(find "$dir" | wc -l)
		f=$(count_type "$dir" f); d=$(count_type "$dir" d)
		l=$(count_type "$dir" l); v=$(count_type "$dir" cbps)
		h=$(find "$dir" -type f -links +1 -printf '%i\n' | sort | uniq -c |
			awk '{ s += $1 - 1 } END { print s + 0 }')
		# ... must match what cpio itself lists for the segment
		local got want
		got=$(cpio -itv --quiet < "$WORK/check.cpio" | cut -c1 | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
		want=$(find "$dir" -printf '%y\n' | sed 's/^f$/-/' | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
		[ "$got" = "$want" ] || die "$IMG_NAME: segment $i: cpio lists '$got', staging has '$want'"
		[ "$(cpio -it --quiet < "$WORK/check.cpio" | wc -l)" = "$e" ] || die "$IMG_NAME: segment $i entry count"
		entries=$(( entries + e )) files=$(( files + f )) dirs=$(( dirs + d ))
		symlinks=$(( symlinks + l )) devices=$(( devices + v )) hardlinks=$(( hardlinks + h ))
		if [ "${SEG_FORMATS[$i]}" = crc ]; then crc=true; fi
		segs+="${segs:+, }{\"offset\": ${SEG_OFFS[$i]}, \"size\": ${SEG_SIZES[$i]}, \"codec\": \"$codec\", \"format\": \"${SEG_FORMATS[$i]}\", \"cpio_bytes\": $(fsize "$WORK/seg$i.cpio"), \"entries\": $e}"

		# 3. unpack like the kernel does: a later entry replaces an earlier one
		#    with the same path; hardlinked names share one copy of the data.
		local y s ino p
		while IFS=$'\t' read -r y s ino p; do
			p=${p:-.}
			if [ -n "${TYPE[$p]:-}" ]; then
				if [ "${TYPE[$p]}" = f ]; then
					local k=${KEY[$p]} q
					for q in "${!KEY[@]}"; do
						if [ "$q" != "$p" ] && [ "${KEY[$q]}" = "$k" ]; then
							die "$IMG_NAME: $p overwrites a hardlinked file (the kernel would truncate the shared inode)"
						fi
					done
					overwritten=$(( overwritten + SIZE[$p] ))
				fi
				if [ "${TYPE[$p]}" = d ] && [ "$y" != d ]; then
					die "$IMG_NAME: $p replaces a directory"
				fi
			fi
			TYPE[$p]=$y SIZE[$p]=$s KEY[$p]=$i:$ino
		done < <(find "$dir" -printf '%y\t%s\t%i\t%P\n')
		(cd "$WORK/x" && cpio -idu --quiet --no-absolute-filenames < "$WORK/seg$i.cpio")
	done
	local unique=0 p
	declare -A SEEN=()
	for p in "${!TYPE[@]}"; do
		[ "${TYPE[$p]}" = f ] || continue
		[ -n "${SEEN[${KEY[$p]}]:-}" ] && continue
		SEEN[${KEY[$p]}]=1
		unique=$(( unique + SIZE[$p] ))
	done
	local extracted
	extracted=$(find "$WORK/x" -type f -printf '%i %s\n' | sort -u | awk '{ s += $2 } END { print s + 0 }')
	[ "$extracted" = "$unique" ] || die "$IMG_NAME: unique_bytes $unique (simulated) != $extracted (cpio -idu)"

	JSON_GOOD+=("    \"$IMG_NAME\": {
      \"size\": $(fsize "$dest"),
      \"bootable\": $IMG_BOOT,
      \"crc\": $crc,
      \"segments\": [$segs],
      \"entries\": $entries,
      \"files\": $files,
      \"dirs\": $dirs,
      \"symlinks\": $symlinks,
      \"devices\": $devices,
      \"hardlinks\": $hardlinks,
      \"unique_bytes\": $unique,
      \"overwritten_bytes\": $overwritten
    }")
	echo "built $IMG_NAME ($(fsize "$dest") bytes, $entries entries)"
}

# bad_image NAME KERNEL_ERROR DESCRIPTION: record a file already written to
# $OUT/bad/NAME.  KERNEL_ERROR is the message the kernel prints after
# "Initramfs unpacking failed: " (or inside "rootfs image is not initramfs
# (...)" with CONFIG_BLK_DEV_RAM); see init/initramfs.c, lib/decompress_*.c.
bad_image() {
	chmod 0644 "$OUT/bad/$1"
	JSON_BAD+=("    \"bad/$1\": {
      \"size\": $(fsize "$OUT/bad/$1"),
      \"kernel_error\": \"$2\",
      \"what\": \"$3\"
    }")
	echo "built bad/$1 ($(fsize "$OUT/bad/$1") bytes)"
}

# ---------------------------------------------------------------------------
# Staging trees
# ---------------------------------------------------------------------------

# The /init of every sample.  It only does something useful where busybox is
# in the image: mount /proc and /sys, say it got there, show the memory the
# (kdump) kernel has left, and power off.
write_init() {
	put "$1/init" 0755 <<'EOF'
#!/bin/sh
# footprint sample initramfs: prove that the image unpacked and ran.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "footprint-sample: init reached"
uname -r
cat /proc/meminfo
free
echo "footprint-sample: powering off"
poweroff -f
EOF
}

# A bootable busybox root: /init, /bin/busybox and its applet links,
# /dev/console (the kernel opens it for init's stdio), /proc, /sys.
stage_busybox_root() {
	local d=$1 applet
	mkdir -p "$d/bin" "$d/dev" "$d/proc" "$d/sys" "$d/etc"
	install -m 0755 "$BUSYBOX" "$d/bin/busybox"
	for applet in sh mount umount cat echo ls sleep free poweroff reboot \
		mkdir dmesg uname sync df; do
		ln -s busybox "$d/bin/$applet"
	done
	mknod -m 0600 "$d/dev/console" c 5 1
	printf 'footprint-sample\n' | put "$d/etc/hostname" 0644
	write_init "$d"
	seal "$d"
}

# The payload of the small-* images: no busybox, but every kind of entry a
# reader must handle, in files of known sizes.
stage_small_payload() {
	local d=$1
	mkdir -p "$d/bin" "$d/etc" "$d/data/sub" "$d/proc" "$d/sys"
	write_init "$d"
	printf 'footprint-small\n' | put "$d/etc/hostname" 0644          # 16 bytes
	printf 'footprint-sample small payload: text file\n' | put "$d/etc/motd" 0644
	head -c 4096 /dev/zero | put "$d/data/zeros-4096.bin" 0644
	pattern "footprint pattern line" 10000 | put "$d/data/pattern-10000.txt" 0644
	prng small-random 3000 | put "$d/data/random-3000.bin" 0644
	: | put "$d/data/empty" 0644
	ln -s busybox "$d/bin/sh"                  # dangling on purpose
	ln -s /proc/self/mounts "$d/etc/mtab"      # absolute target
	seal "$d"
}

# ---------------------------------------------------------------------------
# Layouts (one function per image)
# ---------------------------------------------------------------------------

# initramfs-tools and dracut on x86 prepend an uncompressed "early" cpio that
# holds only the CPU microcode (the kernel looks for it before unpacking),
# then append the compressed main archive.  zstd is the default compressor of
# initramfs-tools since Debian 12 / Ubuntu 22.04 and of dracut on Fedora.
build_busybox_early_zstd() {
	local early=$STAGE/early-ucode root=$STAGE/busybox-root
	mkdir -p "$early/kernel/x86/microcode"
	pattern "GenuineIntel fake microcode for footprint samples" 4096 |
		put "$early/kernel/x86/microcode/GenuineIntel.bin" 0644
	seal "$early"
	img_begin busybox-early-zstd.img true
	img_segment "$early" none
	img_align 512            # GNU cpio already pads to 512; kernel needs 4
	img_segment "$root" zstd
	img_finish
}

# One gzip member holding the whole root: the classic layout, and what
# mkinitramfs/dracut produce with COMPRESS=gzip and no microcode (non-x86).
build_busybox_gzip() {
	img_begin busybox-gzip.img true
	img_segment "$STAGE/busybox-root" gzip
	img_finish
}

# One image per compressor the kernel can unpack (CONFIG_RD_*), each with
# the options the generators use: mkinitramfs COMPRESS=xz/lzma/bzip2/lz4/
# lzop/zstd, dracut --xz/--lzma/--bzip2/--lz4/--lzo/--zstd.
build_small_codecs() {
	local codec
	for codec in xz lzma bzip2 lz4 lzo zstd none; do
		img_begin "small-$codec.img"
		img_segment "$STAGE/small" "$codec"
		img_finish
	done
}

# The "crc" cpio format (magic 070702, per-file byte-sum checksum) that the
# kernel also accepts and verifies; gen_init_cpio and some embedded build
# systems can produce it.
build_small_crc() {
	img_begin small-crc.img
	img_segment "$STAGE/small" gzip crc
	img_finish
}

# Hardlinks: GNU cpio writes the data only once, with the last name of each
# inode (the earlier names have size 0); the kernel links the names back
# together.  dracut and mkinitramfs copy hardlinked files (e.g. busybox or
# kmod applets, firmware) as hardlinks.
build_small_hardlinks() {
	local d=$STAGE/hardlinks
	mkdir -p "$d/data" "$d/other"
	write_init "$d"
	pattern "hardlinked ten thousand" 10000 | put "$d/data/a1" 0644
	ln "$d/data/a1" "$d/data/a2"
	ln "$d/data/a1" "$d/other/a3"
	prng hardlink-b 2500 | put "$d/data/b1" 0644
	ln "$d/data/b1" "$d/other/b2"
	pattern "not hardlinked" 700 | put "$d/data/c" 0644
	seal "$d"
	img_begin small-hardlinks.img
	img_segment "$d" gzip
	img_finish
}

# Several compressed members with zero padding between them, then an
# uncompressed archive: what you get when images are concatenated (kdump
# tooling and bootloaders append extra archives, dracut --early-microcode
# with extra cpios, Ubuntu/Debian "initrd overlays").  The kernel skips zero
# bytes between members; an uncompressed archive must start 4-byte aligned.
build_multi_member() {
	local a=$STAGE/mm-gzip b=$STAGE/mm-zstd c=$STAGE/mm-xz e=$STAGE/mm-plain
	mkdir -p "$a/etc" "$a/lib" "$b/lib" "$c/usr/share/doc" "$e/etc"
	write_init "$a"
	printf 'member one (gzip)\n' | put "$a/etc/part1.conf" 0644
	prng mm-a 1500 | put "$a/lib/a.bin" 0644
	prng mm-b 2048 | put "$b/lib/b.bin" 0644
	ln -s b.bin "$b/lib/b-link.bin"
	pattern "member three (xz)" 5000 | put "$c/usr/share/doc/c.txt" 0644
	printf 'member four (uncompressed)\n' | put "$e/etc/late.conf" 0644
	seal "$a"; seal "$b"; seal "$c"; seal "$e"
	img_begin multi-member.img
	img_segment "$a" gzip
	img_zeros 100
	img_segment "$b" zstd
	img_zeros 4096
	img_segment "$c" xz
	img_zeros 3              # deliberately unaligned filler ...
	img_align 4              # ... then pad to the 4-byte boundary
	img_segment "$e" none
	img_finish
}

# Two archives where the second replaces paths of the first: how an early or
# appended archive overrides files of the main one (e.g. an appended cpio
# with a modified /etc or a newer /init).  /etc/config is replaced by a
# smaller regular file, /etc/motd (a regular file) by a symlink; the kernel
# truncates or unlinks the old file, so only the last version takes memory.
build_overwrite() {
	local a=$STAGE/ow-first b=$STAGE/ow-second
	mkdir -p "$a/etc" "$a/bin" "$b/etc"
	write_init "$a"
	pattern "first version of config" 3000 | put "$a/etc/config" 0644
	pattern "first motd" 500 | put "$a/etc/motd" 0644
	prng ow-tool 1000 | put "$a/bin/tool" 0755
	pattern "second version" 1200 | put "$b/etc/config" 0644
	ln -s config "$b/etc/motd"
	seal "$a"; seal "$b"
	img_begin overwrite.img
	img_segment "$a" none
	img_segment "$b" gzip
	img_finish
}

# Device nodes and a fifo, as every generator puts /dev/console and
# /dev/null into the image (the kernel needs /dev/console before devtmpfs is
# mounted).  They take no data bytes.
build_devices() {
	local d=$STAGE/devices
	mkdir -p "$d/dev" "$d/run"
	write_init "$d"
	mknod -m 0600 "$d/dev/console" c 5 1
	mknod -m 0666 "$d/dev/null" c 1 3
	mknod -m 0660 "$d/dev/sda" b 8 0
	mkfifo -m 0600 "$d/run/initctl"
	seal "$d"
	img_begin devices.img
	img_segment "$d" gzip
	img_finish
}

# ---------------------------------------------------------------------------
# Malformed images (bad/): the reader must fail cleanly on each, and can say
# what the kernel would say.
# ---------------------------------------------------------------------------
build_bad() {
	local d=$STAGE/small b=$OUT/bad

	# An image cut short inside the gzip stream (a full /boot, an interrupted
	# copy): the kernel's gunzip runs out of input.
	head -c 65536 "$OUT/busybox-gzip.img" > "$b/truncated.img"
	bad_image truncated.img "read error" \
		"busybox-gzip.img cut after 65536 bytes, inside the gzip stream"

	# No known magic at all.
	prng garbage 1024 > "$b/garbage.img"
	case $(head -c 1 "$b/garbage.img" | od -An -tx1 | tr -d ' ') in
	00|30|1f|42|5d|fd|89|02|28) die "garbage.img starts like an archive; change the seed" ;;
	esac
	bad_image garbage.img "invalid magic at start of compressed archive" \
		"1024 pseudo-random bytes (sha256 chain), first byte is no known magic"

	# Old portable ASCII cpio (magic 070707), which the kernel refuses.
	mkcpio "$d" odc "$b/odc.img"
	bad_image odc.img "incorrect cpio method used: use -H newc option" \
		"small payload as cpio -H odc (magic 070707), uncompressed"

	# Old binary cpio (magic 0x71c7, little-endian): starts with byte 0xc7,
	# which is neither '0' nor a compression magic.
	mkcpio "$d" bin "$b/bin.img"
	bad_image bin.img "invalid magic at start of compressed archive" \
		"small payload as cpio -H bin (binary magic c7 71), uncompressed"

	# The same binary cpio inside gzip: the decompressed data has no cpio magic.
	mkcpio "$d" bin "$WORK/bin.cpio"
	compress gzip "$WORK/bin.cpio" "$b/bin-gzip.img"
	bad_image bin-gzip.img "no cpio magic" \
		"small payload as cpio -H bin, gzip-compressed"

	# crc-format archive with one data byte changed: its header checksum no
	# longer matches the data.
	mkcpio "$d" crc "$b/crc-mismatch.img"
	local marker="footprint-sample small payload" off
	off=$(grep -obUa "$marker" "$b/crc-mismatch.img" | awk -F: 'NR == 1 { print $1 }')
	[ -n "$off" ] || die "crc-mismatch: marker not found"
	printf 'F' | dd of="$b/crc-mismatch.img" bs=1 seek="$off" conv=notrunc status=none
	bad_image crc-mismatch.img "bad data checksum" \
		"small payload as cpio -H crc, uncompressed, first data byte of etc/motd changed from 'f' to 'F' at offset $off"

	# A valid gzip member followed by non-zero bytes: after the member the
	# kernel looks for another archive and finds no magic.
	mkcpio "$d" newc "$WORK/small.cpio"
	compress gzip "$WORK/small.cpio" "$b/junk-after.img"
	local junk_at; junk_at=$(fsize "$b/junk-after.img")
	pattern "JUNK" 64 >> "$b/junk-after.img"
	bad_image junk-after.img "invalid magic at start of compressed archive" \
		"small payload, one gzip member, then 64 bytes of repeated 'JUNK' lines at offset $junk_at"

	# Non-zero bytes after the TRAILER!!! entry inside the compressed stream.
	{ cat "$WORK/small.cpio"; pattern "JUNK" 64; } > "$WORK/junk-within.cpio"
	compress gzip "$WORK/junk-within.cpio" "$b/junk-within.img"
	bad_image junk-within.img "junk within compressed archive" \
		"small payload cpio followed by 64 bytes of repeated 'JUNK' lines, all inside one gzip member"

	# A complete gzip member whose cpio stops in the middle of a file's data
	# (no TRAILER!!!): the decompressor succeeds, the cpio parser does not end
	# in its reset state.
	local cut
	cut=$(grep -obUa "footprint pattern line" "$WORK/small.cpio" | awk -F: 'NR == 1 { print $1 + 100 }')
	head -c "$cut" "$WORK/small.cpio" > "$WORK/incomplete.cpio"
	compress gzip "$WORK/incomplete.cpio" "$b/incomplete-cpio.img"
	bad_image incomplete-cpio.img "junk at the end of compressed archive" \
		"small payload cpio cut after $cut bytes (inside data/pattern-10000.txt), gzip-compressed as a complete member"
}

# ---------------------------------------------------------------------------

stage_busybox_root "$STAGE/busybox-root"
stage_small_payload "$STAGE/small"

build_busybox_early_zstd
build_busybox_gzip
build_small_codecs
build_small_crc
build_small_hardlinks
build_multi_member
build_overwrite
build_devices
build_bad

join() { local sep=$1 first=1 x; shift; for x; do (( first )) || printf '%s' "$sep"; printf '%s' "$x"; first=0; done; }

{
	cat <<'EOF'
{
  "_about": "Facts about each sample image, made by build.sh from its staging trees and checked with cpio and the compressors' own tools (no initrd parser). segments: the archives in file order; offset/size: byte range of the (compressed) member in the image, zero padding excluded; codec: none|gzip|bzip2|lzma|xz|zstd|lz4|lzo; format: cpio header format (newc 070701, crc 070702); cpio_bytes: size of the decompressed cpio stream including GNU cpio's padding to 512 bytes; entries: cpio entries excluding TRAILER!!!, '.' included. entries/files/dirs/symlinks/devices count entries (every hardlink name and every overwritten entry counts), so entries = files + dirs + symlinks + devices; devices = char + block + fifo + socket. hardlinks: entries beyond the first per inode within an archive. unique_bytes: bytes of regular-file data in the tree the kernel unpacks (each inode once, only the last version of a path). overwritten_bytes: bytes of regular files that a later entry with the same path replaces (by a file or by another type). bad: kernel_error is the message the kernel logs as 'Initramfs unpacking failed: MESSAGE', or, built with CONFIG_BLK_DEV_RAM, as 'rootfs image is not initramfs (MESSAGE); looks like an initrd'.",
  "images": {
EOF
	join $',\n' "${JSON_GOOD[@]}"
	printf '\n  },\n  "bad": {\n'
	join $',\n' "${JSON_BAD[@]}"
	printf '\n  }\n}\n'
} > "$OUT/expected.json"
echo "wrote $OUT/expected.json"
