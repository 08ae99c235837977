"""The compressions the kernel accepts for an initramfs member, recognised by magic bytes.

One Codec per format, in the kernel's order (lib/decompress.c); each opens a Source that
decompresses one member and leaves the image positioned right after it (the reader bounds
what it may produce: stream.BoundedSource).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from footprint.errors import BadImage, UnsupportedCodec
from footprint.image.stream import FileSource, Source, TooLarge

FEED = 1 << 16  # compressed bytes handed to a decompressor at a time: bounds each output
# Decompressed bytes asked for at a time. CPython's decompressors return an output of up to
# 32 KiB as it is and copy a larger one together from blocks: initramfs-tools-zstd's scan took
# 129 ms with 32 KiB, 138 with 1 MiB (xz 1293, 1316). gzip and bzip2 ask for 1 MiB: zlib
# copies its unconsumed input on every call (dracut-systemd 428 ms, 438 with 32 KiB); bzip2
# checks a block's CRC once the whole block (900 kB at most) is out, so that a corrupt block
# is reported as corrupt data, not as whatever the parser makes of its first 32 KiB.
MAX_OUT, MAX_OUT_WHOLE = 1 << 15, 1 << 20
ZSTD_WINDOW_LOG_MAX = 27  # the kernel accepts windows up to 128 MiB (lib/decompress_unzstd.c)
SLOW_BOUND, FAST_BOUND = 2 << 30, 8 << 30  # gzip, bzip2, lzma, xz, lzo: ~0.2-0.4 GiB/s


@dataclass(frozen=True)
class Codec:
    name: str
    magic: bytes  # the two bytes the kernel's decompress_method() compares
    open: Callable[[FileSource, int], Source]
    package: str = ""  # the Python package that provides it, for error messages
    # The most an image's members may decompress to, all together, when this one ends it:
    # past it, a decompression bomb is refused. No real initramfs comes near either; the
    # slow decompressors get less so that no image takes more than ~10 s (bench/bounds.py).
    max_unpacked: int = SLOW_BOUND


class StreamSource(Source):
    """One member decompressed by a streaming decompressor (zlib, bz2, lzma, zstd).

    Every one of them takes max_length, so no single call can balloon memory, and each says
    where its member ended (unused_data), which is where the next member starts.
    """

    def __init__(self, codec: str, src: FileSource, offset: int, dec: Any) -> None:
        super().__init__()
        self._codec, self._src, self._start, self._dec = codec, src, offset, dec
        self._zlib = codec == "gzip"  # keeps the input it did not reach in unconsumed_tail
        self._max_out = MAX_OUT_WHOLE if codec in ("gzip", "bzip2") else MAX_OUT
        self.end_offset: int | None = None

    def _fill(self) -> bytes:
        dec = self._dec
        while not dec.eof:
            if self._pending_output():
                inp: bytes | memoryview = b""
            else:
                inp = self._src.take(FEED)
                if not inp:
                    raise BadImage(f"{self._codec} member is truncated", self._start)
            try:
                out = self._decompress(inp)
            except Exception as e:  # zlib.error, lzma.LZMAError, OSError, ZstdError, …
                raise BadImage(f"corrupt {self._codec} data: {e}", self._start) from None
            if out:
                if dec.eof:
                    self._finish()
                return out
        self._finish()
        return b""

    def _pending_output(self) -> bool:
        dec = self._dec
        if self._zlib:
            return bool(dec.unconsumed_tail)
        return not getattr(dec, "needs_input", True)

    def _decompress(self, inp: bytes | memoryview) -> bytes:
        dec = self._dec
        if self._zlib:
            # Either the tail it left last time or fresh input, never both: so what it
            # leaves unused at the end of the member is always a suffix of the last take().
            return bytes(dec.decompress(dec.unconsumed_tail or inp, self._max_out))
        return bytes(dec.decompress(inp, self._max_out))

    def _finish(self) -> None:
        if self.end_offset is None:
            self._src.give_back(len(self._dec.unused_data))
            self.end_offset = self._src.offset


def _open_gzip(src: FileSource, offset: int) -> Source:
    return StreamSource("gzip", src, offset, zlib.decompressobj(wbits=31))


def _open_bzip2(src: FileSource, offset: int) -> Source:
    import bz2  # each decompressor is imported where an image needs it (inspect's start-up)

    return StreamSource("bzip2", src, offset, bz2.BZ2Decompressor())


def _open_lzma(src: FileSource, offset: int) -> Source:
    import lzma

    dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    return StreamSource("lzma", src, offset, dec)


def _open_xz(src: FileSource, offset: int) -> Source:
    import lzma

    dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    return StreamSource("xz", src, offset, dec)


def _open_zstd(src: FileSource, offset: int) -> Source:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14
    except ImportError:
        try:
            from backports import zstd
        except ImportError:
            raise UnsupportedCodec(
                "zstd member found but backports.zstd is not installed — "
                "pip install backports.zstd",
                offset,
            ) from None
    dec = zstd.ZstdDecompressor(
        options={zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
    )
    return StreamSource("zstd", src, offset, dec)


class Lz4LegacySource(Source):
    """lz4 legacy frame (lz4 -l): a magic, then blocks of at most 8 MiB, no end marker.

    Like the kernel's unlz4, a repeated magic is skipped and the member ends at the end of
    the image or at a block size that cannot be a block (zero padding or another member).
    """

    BLOCK = 8 << 20

    def __init__(self, src: FileSource, offset: int) -> None:
        super().__init__()
        import lz4.block

        self._lz4 = lz4.block
        self._src, self._start = src, offset
        src.skip(4)
        self.end_offset: int | None = None

    def _fill(self) -> bytes:
        src = self._src
        bound = self.BLOCK + self.BLOCK // 255 + 16  # LZ4_compressBound(8 MiB)
        while self.end_offset is None:
            head = src.peek(4)
            if len(head) < 4:
                self.end_offset = src.offset
                break
            (size,) = struct.unpack("<I", head)
            if size == 0x184C2102:
                src.skip(4)
                continue
            if size == 0 or size > bound:
                self.end_offset = src.offset
                break
            src.skip(4)
            block = src.read(size, "an lz4 block")
            try:
                return bytes(self._lz4.decompress(block, uncompressed_size=self.BLOCK))
            except Exception as e:
                raise BadImage(f"corrupt lz4 block: {e}", src.offset - size) from None
        return b""


class LzopSource(Source):
    """lzop (lzo1x) member: a header, then blocks until a zero-length block."""

    F_ADLER32_D, F_ADLER32_C, F_H_FILTER, F_CRC32_D, F_CRC32_C = 0x1, 0x2, 0x800, 0x100, 0x200

    def __init__(self, src: FileSource, offset: int) -> None:
        super().__init__()
        try:
            import lzo  # python-lzo, an optional extra
        except ImportError:
            raise UnsupportedCodec(
                "lzo member found but python-lzo is not installed — "
                "apt-get install liblzo2-dev && pip install 'footprint[lzo]'",
                offset,
            ) from None
        self._lzo, self._src, self._start = lzo, src, offset
        self.end_offset: int | None = None
        self._flags = self._header()

    def _header(self) -> int:
        src = self._src
        src.skip(9)
        (
            version,
            _lib,
        ) = struct.unpack(">HH", src.read(4, "the lzop header"))
        if version >= 0x0940:
            src.skip(2)
        method = src.read(1, "the lzop header")[0]
        if method not in (1, 2, 3):  # M_LZO1X_1, M_LZO1X_1_15, M_LZO1X_999
            raise BadImage(f"lzop method {method} is not lzo1x", self._start)
        if version >= 0x0940:
            src.skip(1)
        (flags,) = struct.unpack(">I", src.read(4, "the lzop header"))
        if flags & self.F_H_FILTER:
            src.skip(4)
        src.skip(12 if version >= 0x0940 else 8)  # mode, mtime low[, mtime high]
        name_len = src.read(1, "the lzop header")[0]
        src.skip(name_len + 4)  # name, header checksum
        return int(flags)

    def _fill(self) -> bytes:
        if self.end_offset is not None:
            return b""
        src, flags = self._src, self._flags
        (dst_len,) = struct.unpack(">I", src.read(4, "an lzop block"))
        if dst_len == 0:
            self.end_offset = src.offset
            return b""
        (src_len,) = struct.unpack(">I", src.read(4, "an lzop block"))
        if dst_len > 64 << 20 or src_len > dst_len:
            raise BadImage(f"lzop block sizes {src_len}/{dst_len} are impossible", src.offset)
        checksums = bool(flags & self.F_ADLER32_D) + bool(flags & self.F_CRC32_D)
        if src_len < dst_len:
            checksums += bool(flags & self.F_ADLER32_C) + bool(flags & self.F_CRC32_C)
        src.skip(4 * checksums)
        block = src.read(src_len, "an lzop block")
        if src_len == dst_len:
            return block
        try:
            return bytes(self._lzo.decompress(block, False, dst_len))
        except Exception as e:
            raise BadImage(f"corrupt lzo block: {e}", src.offset - src_len) from None


# The kernel's table (lib/decompress.c), in its order; it compares the first two bytes only.
CODECS: tuple[Codec, ...] = (
    Codec("gzip", b"\x1f\x8b", _open_gzip),
    Codec("gzip", b"\x1f\x9e", _open_gzip),
    Codec("bzip2", b"BZ", _open_bzip2),
    Codec("lzma", b"\x5d\x00", _open_lzma),
    Codec("xz", b"\xfd7", _open_xz),
    Codec("lzo", b"\x89L", LzopSource, "python-lzo"),
    Codec("lz4", b"\x02!", Lz4LegacySource, "lz4", FAST_BOUND),
    Codec("zstd", b"\x28\xb5", _open_zstd, "backports.zstd", FAST_BOUND),
)


def detect(head: bytes) -> Codec | None:
    """The codec whose magic starts `head`, as the kernel's decompress_method() decides."""
    for codec in CODECS:
        if head.startswith(codec.magic):
            return codec
    return None


def unpack(data: bytes, limit: int) -> Iterator[bytes]:
    """The decompressed chunks of `data`, one compressed member held in memory (a .ko.xz
    module, a .zst firmware file); BadImage if it is corrupt, not compressed, or unpacks
    to more than `limit` bytes."""
    codec = detect(data[:8])
    if codec is None:
        raise BadImage("not compressed by any codec the kernel knows", 0)
    member = codec.open(FileSource(io.BytesIO(data), 0, len(data)), 0)
    produced = 0
    try:
        while chunk := member._fill():
            produced += len(chunk)
            if produced > limit:
                raise TooLarge(limit)
            yield bytes(chunk)
    finally:
        member.close()


# -- single blocks of a filesystem image (squashfs, erofs) ---------------------------------
# A filesystem compresses each block on its own, without the stream framing the kernel's
# initramfs decompressors read: zlib (squashfs "gzip"), raw deflate (erofs), lzma-alone, xz,
# a bare lz4 block, a bare lzo1x block, a zstd frame. Every one is bounded by `limit`: a
# block that would unpack to more is corrupt (a filesystem knows its block size).
BLOCK_METHODS = ("zlib", "deflate", "lzma", "xz", "lzo", "lz4", "zstd")


def decompress_block(method: str, data: bytes, limit: int) -> bytes:
    """One compressed block of a filesystem image; BadImage if it is corrupt or unpacks to
    more than `limit` bytes, UnsupportedCodec if its decompressor is not installed."""
    try:
        if method in ("zlib", "deflate"):
            dec = zlib.decompressobj(wbits=15 if method == "zlib" else -15)
            out = dec.decompress(data, limit)
            if dec.unconsumed_tail:
                raise TooLarge(limit)
            return out
        if method in ("lzma", "xz"):
            import lzma

            fmt = lzma.FORMAT_XZ if method == "xz" else lzma.FORMAT_ALONE
            ldec = lzma.LZMADecompressor(format=fmt)
            out = ldec.decompress(data, limit)
            if not ldec.eof and not ldec.needs_input:
                raise TooLarge(limit)
            return out
        if method == "lz4":
            import lz4.block

            return bytes(lz4.block.decompress(data, uncompressed_size=limit))
        if method == "lzo":
            try:
                import lzo
            except ImportError:
                raise UnsupportedCodec(
                    "lzo block found but python-lzo is not installed — "
                    "apt-get install liblzo2-dev && pip install 'footprint[lzo]'"
                ) from None
            return bytes(lzo.decompress(data, False, limit))
        if method == "zstd":
            try:
                from compression import zstd  # Python 3.14
            except ImportError:
                from backports import zstd
            zdec = zstd.ZstdDecompressor(
                options={zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
            )
            out = zdec.decompress(data, max_length=limit)
            if not zdec.eof and not zdec.needs_input:
                raise TooLarge(limit)
            return bytes(out)
    except (BadImage, ImportError):
        raise
    except Exception as e:  # zlib.error, LZMAError, LZ4BlockError, lzo.error, ZstdError
        raise BadImage(f"corrupt {method} block: {e}") from None
    raise UnsupportedCodec(f"{method} blocks are not supported")
