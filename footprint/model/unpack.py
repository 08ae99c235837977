"""The kernel decompressor's own memory while it unpacks a compressed member, from the member's
header — the windows and buffers lib/decompress_*.c allocate (vmalloc/kmalloc) for each
member and free when it ends, so they sit beside the held initrd and the rootfs at the peak.

Linux 6.1, the initramfs path (decompress(buf, len, NULL, flush_buffer, NULL, …): input in
memory, output streamed):
- zstd (decompress_unzstd.c): zstd_dstream_workspace_bound(window) — the window, its
  decoding buffer (window + a 128 KiB block + 64), an input block of 128 KiB, the DCtx (about
  96 KiB in zstd 1.5.2) — plus its own 128 KiB output chunk (ZSTD_IOBUF_SIZE).
- xz (decompress_unxz.c, XZ_DYNALLOC): the LZMA2 dictionary of the block header, the decoder
  state (about 28 KiB) and a 4 KiB output buffer.
- lz4 legacy (decompress_unlz4.c): an 8 MiB output chunk.
- bzip2 (decompress_bunzip2.c): 100000 × the level ints (up to 3.6 MB), about 40 KiB more.
- lzma (decompress_unlzma.c): min(dictionary, output size) and 2 × (1846 + 768 << (lc+lp)).
- lzo (decompress_unlzo.c): a 256 KiB output block.
- gzip (decompress_inflate.c): the 32 KiB window, the inflate state and a 16 KiB buffer.
"""

from __future__ import annotations

import struct

KIB = 1024
ZSTD_BLOCK = 128 * KIB
ZSTD_DCTX = 96 * KIB
ZSTD_IOBUF = 128 * KIB
XZ_STATE = 28 * KIB + 4 * KIB
LZ4_CHUNK = 8 << 20
BZIP2_EXTRA = 40 * KIB
LZO_BLOCK = 256 * KIB
GZIP = 32 * KIB + 8 * KIB + 16 * KIB
HEAD = 64  # bytes of a member's start that hold every field read here


def zstd_window(head: bytes) -> int:
    """The frame header's window size (RFC 8878 3.1.1.1): the Window_Descriptor, or the
    frame content size for a single-segment frame. 0 if the header is cut short."""
    if len(head) < 6:
        return 0
    fhd = head[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    if not single:
        wd = head[5]
        log = 10 + (wd >> 3)
        return (1 << log) + ((1 << log) >> 3) * (wd & 7)
    at = 5 + (0, 1, 2, 4)[dict_flag]
    size = (1, 2, 4, 8)[fcs_flag]
    if len(head) < at + size:
        return 0
    value = int.from_bytes(head[at : at + size], "little")
    return value + 256 if size == 2 else value


def _varint(b: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(b):
        byte = b[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            break
        shift += 7
    return value, at


def xz_dictionary(head: bytes) -> int:
    """The LZMA2 dictionary size in the first block header of an .xz stream; 0 if not found."""
    at = 12  # the stream header
    if len(head) < at + 2 or head[at] == 0:
        return 0
    flags = head[at + 1]
    at += 2
    if flags & 0x40:
        _, at = _varint(head, at)
    if flags & 0x80:
        _, at = _varint(head, at)
    for _ in range((flags & 3) + 1):
        fid, at = _varint(head, at)
        size, at = _varint(head, at)
        if fid == 0x21 and size == 1 and at < len(head):
            bits = head[at] & 0x3F
            return 0xFFFFFFFF if bits == 40 else (2 | (bits & 1)) << (bits // 2 + 11)
        at += size
    return 0


def workspace_bytes(codec: str, head: bytes) -> int:
    """What the kernel allocates to decompress one member with `codec`, starting with `head`."""
    if codec == "zstd":
        window = zstd_window(head)
        return window + min(window, ZSTD_BLOCK) * 2 + 64 + ZSTD_DCTX + ZSTD_IOBUF
    if codec == "xz":
        return xz_dictionary(head) + XZ_STATE
    if codec == "lz4":
        return LZ4_CHUNK
    if codec == "bzip2":
        level = head[3] - ord("0") if len(head) > 3 and 0x31 <= head[3] <= 0x39 else 9
        return 100000 * level * 4 + BZIP2_EXTRA
    if codec == "lzma" and len(head) >= 13:
        props = head[0]
        dictionary: int = struct.unpack_from("<I", head, 1)[0]
        out: int = struct.unpack_from("<Q", head, 5)[0]
        lc, lp = props % 9, (props // 9) % 5
        return min(dictionary, out) + 2 * (1846 + (768 << (lc + lp)))
    if codec == "lzo":
        return LZO_BLOCK
    if codec == "gzip":
        return GZIP
    return 0
