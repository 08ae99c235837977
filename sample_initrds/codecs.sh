# Shared by build.sh and verify.sh: decompress a member with its codec's own tool.
# shellcheck shell=bash
decompress() {
	case $1 in
	none)  cat ;;
	gzip)  gzip -d -c ;;
	bzip2) bzip2 -d -c ;;
	lzma)  xz --format=lzma -d -c ;;
	xz)    xz -d -c ;;
	zstd)  zstd -q -d -c ;;
	lz4)   lz4 -d -q -c ;;
	lzo)   lzop -d -c ;;
	esac
}
